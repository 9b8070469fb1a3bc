// Command knotmtls manages the Knot mTLS client certificate lifecycle with
// the private key kept in HashiCorp Vault: it creates the key and the CSR
// Knot asks for (csr), stores the certificate Knot returns (import), reports
// what is stored for monitoring (status) and makes a real mTLS call (check).
//
// Run "knotmtls help" or "knotmtls <command> --help" for the flags and the
// exit codes. The logic lives in package
// github.com/knotmtls/knotmtls/internal/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/knotmtls/knotmtls/internal/cli"
)

// main turns the first Ctrl-C or SIGTERM into a cancelled context: the
// command stops, says what it did, and exits 1. After that first one the
// default signal handling is back, so a second Ctrl-C ends the process at
// once (while csr or import finishes a Vault write, for instance).
func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Command demo walks the whole knotmtls lifecycle end to end, with live
// output: a real Vault dev server (vaulttest: a container when a Docker engine
// is reachable, else a local "vault server -dev" process), knottest playing
// Knot, and the knotmtls CLI run through the same cli.Run code path as the
// binary:
//
//	csr (KV) -> Knot signs -> import -> status -> check -> typed calls over mTLS
//	-> rotation under load (8 goroutines calling continuously while a new key
//	   is provisioned, signed and imported: 0 failed calls, both serials seen)
//	-> status -> the Transit path (the key never leaves Vault)
//
// It prints a progress line per step with timings and a summary table, and
// exits non-zero if any step fails. Run it with "make demo" at the repository
// root, or "cd integration && go run ./cmd/demo".
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	cfg := defaultConfig()
	flag.IntVar(&cfg.Workers, "workers", cfg.Workers, "goroutines calling Knot during the rotation")
	flag.DurationVar(&cfg.LoadAfter, "load-after", cfg.LoadAfter, "keep the load running this long after Knot saw the new certificate")
	flag.StringVar(&cfg.Rotation, "rotation", cfg.Rotation, `how the KV key is rotated: "rotate" (stage the new key; the old certificate serves until the import) or "force" (replace key and certificate; the provider keeps serving the one it has)`)
	flag.DurationVar(&cfg.Poll, "poll", cfg.Poll, "provider poll interval")
	flag.BoolVar(&cfg.Transit, "transit", cfg.Transit, "also walk the Transit path")
	flag.StringVar(&cfg.Backend, "backend", cfg.Backend, `Vault backend: "container", "process" or "" (auto)`)
	flag.BoolVar(&cfg.Verbose, "v", cfg.Verbose, "show the library's logs")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "demo: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		// The reaper image cannot be pulled on offline machines; the demo
		// terminates what it starts itself. Set before testcontainers
		// reads its configuration.
		_ = os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	code := run(ctx, cfg, os.Stdout)
	cancel()
	stop()
	os.Exit(code)
}

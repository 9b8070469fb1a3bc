package cli_test

import (
	"context"
	"fmt"
	"os"

	"github.com/knotmtls/knotmtls/internal/cli"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// Run is the whole command line; main passes os.Args[1:]. A bad command
// line is reported before Vault is contacted and exits with ExitUsage.
func ExampleRun() {
	code := cli.Run(context.Background(), []string{"status", "--client-id", "6d2f"}, nil, os.Stdout, os.Stdout)
	fmt.Println("exit code:", code)
	// Output:
	// knotmtls status: --env is required: development or production
	// usage: knotmtls status --client-id ID --env development|production [--transit] [--warn DURATION] [--json] [--knot-ca FILE] [flags]
	// Run 'knotmtls status --help' for the flags.
	// exit code: 2
}

// ExitCodeOf turns the library's typed errors into the documented exit
// codes, so scripts can tell a Vault problem from a refused certificate.
func ExampleExitCodeOf() {
	denied := &vaultsource.Error{Op: "read", Path: "secret/data/knot/production/6d2f",
		Capability: "read", Err: vaultsource.ErrPermissionDenied}
	mismatch := &vaultsource.Error{Op: "import", Path: "secret/data/knot/production/6d2f",
		Err: &provider.CheckError{Err: provider.ErrKeyMismatch}}
	expired := &provider.CheckError{Err: provider.ErrExpired}
	fmt.Println(cli.ExitCodeOf(denied) == cli.ExitVault)
	fmt.Println(cli.ExitCodeOf(mismatch) == cli.ExitRefused)
	fmt.Println(cli.ExitCodeOf(expired) == cli.ExitExpired)
	fmt.Println(cli.Hint(denied))
	// Output:
	// true
	// true
	// true
	// the Vault token's policy lacks "read" on secret/data/knot/production/6d2f; add
	//     path "secret/data/knot/production/6d2f" { capabilities = ["read"] }
	//   (see docs/policies/ for complete runtime and provisioning policies)
}

// --warn takes days and weeks as well as Go durations.
func ExampleParseDays() {
	for _, s := range []string{"30d", "2w", "36h"} {
		d, err := cli.ParseDays(s)
		fmt.Println(d, err)
	}
	// Output:
	// 720h0m0s <nil>
	// 336h0m0s <nil>
	// 36h0m0s <nil>
}

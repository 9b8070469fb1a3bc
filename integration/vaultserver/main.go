// Command vaultserver builds the HashiCorp Vault server binary from the Go
// module proxy. It exists only so the integration tests can run a real Vault
// dev server on machines where no container image can be pulled. Vault is
// licensed BUSL-1.1; it is used here for testing only and is never linked
// into the knotmtls library.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}

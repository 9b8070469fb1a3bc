package cli

import (
	"fmt"
	"os"
	"strconv"
)

// warnVaultTLS prints a one-line warning on stderr when the environment
// asks to skip the verification of Vault's TLS certificate: knotmtls
// follows VAULT_SKIP_VERIFY as every Vault client does, and says so, since
// it makes the key readable by anyone who can impersonate Vault.
// VAULT_TLS_SKIP_VERIFY is not read by the Vault client library; an
// operator who set it is told that verification stays on.
func (e *env) warnVaultTLS() {
	if v, err := strconv.ParseBool(os.Getenv("VAULT_SKIP_VERIFY")); err == nil && v {
		fmt.Fprintln(e.stderr, "knotmtls: warning: VAULT_SKIP_VERIFY is set: Vault's TLS certificate is NOT verified, so whoever can intercept the connection sees the token and the key; unset it and set VAULT_CACERT to Vault's CA instead")
		return
	}
	if v, err := strconv.ParseBool(os.Getenv("VAULT_TLS_SKIP_VERIFY")); err == nil && v {
		fmt.Fprintln(e.stderr, "knotmtls: warning: VAULT_TLS_SKIP_VERIFY is set but has no effect (the Vault client reads VAULT_SKIP_VERIFY): Vault's TLS certificate is verified; set VAULT_CACERT if Vault's CA is not in the system roots")
	}
}

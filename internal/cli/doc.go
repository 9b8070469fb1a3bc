// Package cli implements the knotmtls command line: the Knot mTLS client
// certificate lifecycle with the private key kept in HashiCorp Vault.
//
//	knotmtls csr    create the key in Vault (KV, or inside Transit) and print the CSR for Knot
//	knotmtls import check the certificate Knot signed and store it next to the key
//	knotmtls status report what is stored; exit codes for monitoring
//	knotmtls check  make a real mTLS request with the stored material
//
// [Run] is the whole program; cmd/knotmtls's main only calls it, and the
// integration tests and the demo call it too (through
// integration/clitest), so all of them go through the same code paths. The
// package is internal: the command line, not this Go API, is the contract. It uses the library packages exactly as a service does:
// vaultsource for Vault (KV and Transit sources, provisioning, login),
// provider for Knot's rules and the certificate cache, knotclient for the
// mTLS call.
//
// The Vault client is configured from the standard VAULT_* environment
// variables (api.DefaultConfig), with --vault-addr and --vault-namespace
// overriding them, and logs in with a token ($VAULT_TOKEN, --token-file or
// ~/.vault-token), AppRole or Kubernetes (--auth). Errors are mapped to exit
// codes (see the Exit constants and [ExitCodeOf]) and come with a hint that
// names the Vault path and capability, the mount, or the flag to fix; the
// library's advice in terms of Go options is printed as the flags that do
// the same. Ctrl-C (the caller's context cancelled) exits ExitError in every
// command and says what was done; a Vault write once begun is finished
// first. VAULT_SKIP_VERIFY prints a one-line warning on stderr.
//
// Nothing this package prints contains key material: the CSR and
// certificates are public, and status describes the key by its location,
// version and public-key fingerprint only.
package cli

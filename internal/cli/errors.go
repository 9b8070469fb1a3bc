package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultauth"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// Sentinels grouped by the exit code they map to.
var (
	vaultSentinels = []error{
		vaultsource.ErrUnavailable, vaultsource.ErrPermissionDenied, vaultsource.ErrMountNotFound,
		vaultsource.ErrWrongKVVersion, vaultsource.ErrRejected, vaultsource.ErrUnexpectedResponse,
		vaultsource.ErrBadSignature,
	}
	refusedSentinels = []error{
		vaultsource.ErrSecretNotFound, vaultsource.ErrVersionDeleted, vaultsource.ErrMissingField,
		vaultsource.ErrFieldType, vaultsource.ErrKeyNotFound, vaultsource.ErrNoCertificateChain,
		vaultsource.ErrUnsupportedKeyType, vaultsource.ErrKeyExportable, vaultsource.ErrKeyExists,
		vaultsource.ErrConflict, vaultsource.ErrUnsupportedSignature,
	}
)

// ExitCodeOf maps an error returned by the commands (or by the vaultsource,
// provider and knotclient packages they use) to the documented exit code:
// nil is ExitOK, a bad command line ExitUsage, a Vault problem (unreachable,
// login, permission, mount, KV version) ExitVault, refused or missing
// material ExitRefused, an expired certificate ExitExpired, a failed mTLS
// request ExitCheckFailed, anything else ExitError.
func ExitCodeOf(err error) int {
	var (
		ue    *usageError
		ee    *exitError
		ie    *interruptedError
		lf    *loginFailure
		se    *vaultSetupError
		cf    *checkFailure
		check *provider.CheckError
	)
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ie):
		return ExitError
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue), errors.Is(err, vaultsource.ErrInvalidArgument):
		return ExitUsage
	case errors.As(err, &lf), errors.As(err, &se):
		return ExitVault
	case errors.As(err, &cf):
		return ExitCheckFailed
	case errors.Is(err, provider.ErrExpired):
		return ExitExpired
	}
	for _, s := range vaultSentinels {
		if errors.Is(err, s) {
			return ExitVault
		}
	}
	for _, s := range refusedSentinels {
		if errors.Is(err, s) {
			return ExitRefused
		}
	}
	if errors.As(err, &check) {
		return ExitRefused
	}
	return ExitError
}

// reportError prints err and, when there is one, an actionable hint.
func reportError(w io.Writer, cmd string, err error) {
	fmt.Fprintf(w, "knotmtls %s: %s\n", cmd, message(err))
	if h := Hint(err); h != "" {
		fmt.Fprintf(w, "hint: %s\n", h)
	}
}

// message is err's text as the CLI prints it: on one line, with the
// library's advice in terms of Go options turned into the flags that do
// the same (see flagWords).
func message(err error) string { return flagWords(oneLine(err.Error())) }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// goOptionWords maps the Go options and methods that the library's error
// messages advise to what an operator of the CLI does instead. Every Go
// option named in a message of vaultsource, provider, knotclient or
// filesource must be here (TestFlagWordsCoverLibraryMessages reads their
// source to check it).
var goOptionWords = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`construct the source with WithKVVersion\((\d)\)`), "use --kv-version $1"},
	{regexp.MustCompile(`WithKVVersion\((\d)\)`), "--kv-version $1"},
	// The CLI reads KV metadata only for version numbers; the remedy for a
	// token without it is the policy, which the hint names.
	{regexp.MustCompile(`\s*\(or construct the source WithoutMetadata[^)]*\)`), ""},
	{regexp.MustCompile(`WithKeyVersion\((\d+)\)`), "--key-version $1"},
	{regexp.MustCompile(`\(fields are configurable with WithFields\)`), "(knotmtls uses the fields " + fieldList() + ")"},
	{regexp.MustCompile(`get its CSR again with CSR|get its CSR again \(existing\)`), "print its CSR again with --existing"},
	// The provisioning modes (vaultsource.ProvisionRotate, ProvisionForce)
	// as the messages name them.
	{regexp.MustCompile(`\(force\)`), "(--force)"},
	{regexp.MustCompile(`\b(, |or )(rotate|force) to\b`), "$1--$2 to"},
	{regexp.MustCompile(`\bWithForce\b`), "--force"},
	{regexp.MustCompile(`\bWithRotate\b`), "--rotate"},
	{regexp.MustCompile(`\bWithKVVersion\b`), "--kv-version"},
	{regexp.MustCompile(`\bWithKeyVersion\b`), "--key-version"},
	{regexp.MustCompile(`\bWithFields\b`), "the fixed field names " + fieldList()},
}

func fieldList() string {
	f := vaultsource.DefaultFields
	return strings.Join([]string{f.PrivateKey, f.Certificate, f.PendingPrivateKey}, ", ")
}

// flagWords rewrites a library message for the command line: "use
// WithKVVersion(1)" becomes "use --kv-version 1".
func flagWords(msg string) string {
	for _, w := range goOptionWords {
		msg = w.re.ReplaceAllString(msg, w.repl)
	}
	return msg
}

// Hint returns what an operator should do about err, or "" when there is
// nothing more to say than the error itself. It names Vault paths,
// capabilities and flags, never secret values.
func Hint(err error) string {
	if h := schemeHint(err); h != "" {
		return h
	}
	var ie *interruptedError
	if errors.As(err, &ie) {
		return "" // the outcome says what to do
	}
	var lf *loginFailure
	if errors.As(err, &lf) {
		return loginHint(lf)
	}
	var se *vaultSetupError
	if errors.As(err, &se) {
		return "check VAULT_ADDR, VAULT_CACERT, VAULT_CLIENT_CERT and the other VAULT_* variables, and the --vault-addr and --auth flags"
	}
	var ve *vaultsource.Error
	hasVE := errors.As(err, &ve)
	switch {
	case errors.Is(err, vaultsource.ErrUnavailable):
		return "Vault is unreachable, sealed or overloaded: check VAULT_ADDR (or --vault-addr), the network, VAULT_CACERT for its TLS certificate, and that \"vault status\" shows it unsealed; then run the command again"
	case errors.Is(err, vaultsource.ErrPermissionDenied):
		if hasVE && ve.Path != "" && ve.Capability != "" {
			return fmt.Sprintf("the Vault token's policy lacks %q on %s; add\n    path %q { capabilities = [%q] }\n  (see docs/policies/ for complete runtime and provisioning policies)", ve.Capability, ve.Path, ve.Path, ve.Capability)
		}
		return "the Vault token's policy does not allow this request; see docs/policies/ for the policies knotmtls needs"
	case errors.Is(err, vaultsource.ErrMountNotFound):
		return "no secrets engine is mounted there: enable it (\"vault secrets enable -path=secret kv-v2\" or \"vault secrets enable transit\") or point --kv-mount / --transit-mount at the right mount"
	case errors.Is(err, vaultsource.ErrWrongKVVersion):
		return "the KV mount's version differs from --kv-version: check \"vault secrets list -detailed\" and pass --kv-version 1 or 2 to match"
	case errors.Is(err, vaultsource.ErrKeyExists):
		return "a key is already stored: use --existing to print its CSR again, --rotate to stage a new key while the current certificate keeps serving, or --force to replace key and certificate"
	case errors.Is(err, vaultsource.ErrConflict):
		return "the secret changed while this command ran (another operator or pipeline?); nothing was written: run the command again"
	case errors.Is(err, vaultsource.ErrSecretNotFound), errors.Is(err, vaultsource.ErrKeyNotFound):
		return "nothing is stored for this client_id and environment: run \"knotmtls csr\" first, or check --client-id, --env, --kv-path, --transit-key and --transit"
	case errors.Is(err, vaultsource.ErrVersionDeleted):
		return "the latest version of the secret is deleted: undelete it (\"vault kv undelete\") or provision again with \"knotmtls csr --force\""
	case errors.Is(err, vaultsource.ErrNoCertificateChain):
		return "the Transit key has no certificate yet: import the certificate Knot returned with \"knotmtls import --transit\""
	case errors.Is(err, vaultsource.ErrMissingField):
		if hasVE && ve.Field == vaultsource.DefaultFields.Certificate {
			return "a key is stored but no certificate yet: import the certificate Knot returned with \"knotmtls import\""
		}
		return "the secret lacks a field knotmtls needs; provision it with \"knotmtls csr\""
	case errors.Is(err, vaultsource.ErrKeyExportable), errors.Is(err, vaultsource.ErrUnsupportedKeyType):
		return "use a new Transit key name (--transit-key): knotmtls creates rsa-2048 keys that cannot be exported"
	case errors.Is(err, provider.ErrUnexpectedPEMType):
		return "pass only the certificate PEM Knot returned (BEGIN CERTIFICATE blocks); never paste a private key anywhere"
	case errors.Is(err, provider.ErrSubjectCN):
		return "the certificate was issued for another client_id: check --client-id, or ask Knot for a certificate for this client_id"
	case errors.Is(err, provider.ErrKeyMismatch):
		return "the certificate was not issued for the key stored in Vault: print the CSR of the stored key with \"knotmtls csr --existing\", send it to Knot, and import the certificate they return for it"
	case errors.Is(err, provider.ErrExpired):
		return "request a new certificate: \"knotmtls csr --rotate\", send the CSR to Knot, then \"knotmtls import\""
	case errors.Is(err, provider.ErrNotYetValid):
		return "the certificate is not valid yet: check this machine's clock, or wait until its NotBefore"
	case errors.Is(err, provider.ErrUntrustedChain), errors.Is(err, provider.ErrChainOrder):
		return "the certificate does not chain to --knot-ca: check that you were given the right CA file and that the chain is leaf first"
	case errors.Is(err, provider.ErrKeySize), errors.Is(err, provider.ErrKeyType), errors.Is(err, provider.ErrSignatureAlgorithm):
		return "Knot requires RSA-2048 with SHA-256: create the key and CSR with \"knotmtls csr\""
	case errors.Is(err, provider.ErrNotPEM), errors.Is(err, provider.ErrEmpty), errors.Is(err, provider.ErrTruncatedPEM):
		return "the input must be PEM text (-----BEGIN CERTIFICATE-----), as Knot sends it"
	case errors.Is(err, context.DeadlineExceeded):
		return "the command timed out: check connectivity, or raise --timeout"
	}
	var cf *checkFailure
	if errors.As(err, &cf) {
		return cf.hint
	}
	return ""
}

func loginHint(lf *loginFailure) string {
	var re *api.ResponseError
	switch {
	case errors.As(lf.err, &re) && re.StatusCode >= 500:
		return fmt.Sprintf("Vault at %s answered %d: it may be sealed or overloaded; check \"vault status\"", lf.addr, re.StatusCode)
	case errors.As(lf.err, &re):
		switch lf.method {
		case AuthAppRole:
			return "Vault refused the AppRole login: check --approle-role-id, that the secret id in --approle-secret-id-file is current (and unwrapped unless --approle-wrapped), and --approle-mount"
		case AuthKubernetes:
			return "Vault refused the Kubernetes login: check --k8s-role, that the role binds this service account and namespace, and --k8s-mount"
		default:
			return "Vault refused the token: it is wrong, expired or revoked; log in again (\"vault login\") or renew the token file"
		}
	case isNetworkError(lf.err):
		return fmt.Sprintf("cannot reach Vault at %s: check VAULT_ADDR (or --vault-addr), the network and VAULT_CACERT for its TLS certificate", lf.addr)
	case errors.Is(lf.err, vaultauth.ErrEmptyToken):
		return "the token is empty: check VAULT_TOKEN or the --token-file contents"
	}
	return "check the --auth flags and the credential files they name"
}

// Go's HTTP server and client say these when the scheme of the address
// does not match the server: plain HTTP sent to a TLS listener, and a TLS
// handshake answered by a plain HTTP server.
const (
	httpToHTTPS = "Client sent an HTTP request to an HTTPS server"
	httpsToHTTP = "server gave HTTP response to HTTPS client"
)

// schemeHint says what to change when err shows that the scheme of the
// Vault address (http:// or https://) does not match the server, or "".
func schemeHint(err error) string {
	var re *api.ResponseError
	plainToTLS := strings.Contains(err.Error(), httpToHTTPS)
	if errors.As(err, &re) {
		for _, e := range re.Errors {
			plainToTLS = plainToTLS || strings.Contains(e, httpToHTTPS)
		}
	}
	var rh tls.RecordHeaderError
	switch {
	case plainToTLS:
		return "Vault serves HTTPS but the address is http://: use https:// in VAULT_ADDR (or --vault-addr), and VAULT_CACERT for Vault's CA if it is not in the system roots"
	case strings.Contains(err.Error(), httpsToHTTP), errors.As(err, &rh):
		return "Vault answers plain HTTP but the address is https://: use http:// in VAULT_ADDR (or --vault-addr) for a dev server, or enable TLS on Vault's listener"
	}
	return ""
}

func isNetworkError(err error) bool {
	var ne net.Error
	var ue *url.Error
	return errors.As(err, &ne) || errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded)
}

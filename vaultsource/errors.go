package vaultsource

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/knotmtls/knotmtls/internal/vaultresp"
	"github.com/knotmtls/knotmtls/provider"
)

// Sentinel errors. Every error the sources and provisioning return is an
// [*Error] that wraps exactly one of them (or, for malformed or non-compliant PEM, a
// [*provider.CheckError] wrapping a provider sentinel such as
// provider.ErrKeyMismatch), so callers branch with errors.Is and read the
// mount, path and field with errors.As. No message ever contains secret data.
var (
	// ErrSecretNotFound: the KV secret does not exist (or the path is wrong).
	ErrSecretNotFound = errors.New("secret not found")
	// ErrVersionDeleted: the latest KV v2 version was deleted or destroyed.
	// Vault answers such a read with metadata and no data, not an error.
	ErrVersionDeleted = errors.New("latest secret version is deleted")
	// ErrMissingField: a required field is absent or empty in the secret.
	ErrMissingField = errors.New("missing field")
	// ErrFieldType: a field holds something other than a PEM string (or,
	// for the chain, a list of PEM strings).
	ErrFieldType = errors.New("field has the wrong type")
	// ErrPermissionDenied: Vault answered 403 and the login could not fix
	// it. The [*Error] names the path and the capability the token needs;
	// its Detail says whether lookup-self found the token valid (a policy
	// problem: no re-login is attempted) or invalid ([ErrInvalidToken]).
	ErrPermissionDenied = errors.New("permission denied")
	// ErrInvalidToken: Vault answered 403 because the token is invalid,
	// expired or revoked, and no new login fixed it. It wraps
	// [ErrPermissionDenied].
	ErrInvalidToken = fmt.Errorf("%w: token invalid, expired or revoked", ErrPermissionDenied)
	// ErrMountNotFound: no secrets engine is mounted at the configured mount.
	ErrMountNotFound = errors.New("mount not found")
	// ErrWrongKVVersion: the mount is not a KV engine of the configured
	// version (for example a KV v1 mount read as v2).
	ErrWrongKVVersion = errors.New("mount is not the configured KV version")
	// ErrKeyNotFound: the Transit key does not exist.
	ErrKeyNotFound = errors.New("transit key not found")
	// ErrNoCertificateChain: no usable Transit key version has a certificate
	// chain yet (import one with ImportCertificate).
	ErrNoCertificateChain = errors.New("transit key version has no certificate chain")
	// ErrUnsupportedKeyType: the Transit key cannot sign TLS handshakes
	// (symmetric, Ed25519, post-quantum) or is not what Knot requires.
	ErrUnsupportedKeyType = errors.New("unsupported transit key type")
	// ErrKeyExportable: the Transit key is exportable or allows plaintext
	// backup, so it could leave Vault; provisioning refuses it.
	ErrKeyExportable = errors.New("transit key is exportable")
	// ErrKeyExists: provisioning would replace an existing private key.
	ErrKeyExists = errors.New("a private key already exists")
	// ErrConflict: the secret changed between read and write (KV v2
	// check-and-set failed); nothing was written.
	ErrConflict = errors.New("secret changed concurrently")
	// ErrUnsupportedSignature: the signing request cannot be served by
	// Transit (hash function, padding or digest length).
	ErrUnsupportedSignature = errors.New("unsupported signature request")
	// ErrBadSignature: the signature Vault returned does not verify against
	// the key version's public key; it is never handed to TLS.
	ErrBadSignature = errors.New("signature from vault does not verify")
	// ErrUnavailable: Vault could not be reached, is sealed, overloaded or
	// answered with a server error.
	ErrUnavailable = errors.New("vault unavailable")
	// ErrSealed: Vault answered 503, sealed. It wraps [ErrUnavailable].
	ErrSealed = fmt.Errorf("%w: sealed", ErrUnavailable)
	// ErrRateLimited: Vault answered 429 (a rate-limit quota). It wraps
	// [ErrUnavailable].
	ErrRateLimited = fmt.Errorf("%w: rate limited", ErrUnavailable)
	// ErrRejected: Vault rejected the request for another reason; the
	// [*Error] carries Vault's messages.
	ErrRejected = errors.New("vault rejected the request")
	// ErrUnexpectedResponse: Vault's answer did not have the expected shape.
	ErrUnexpectedResponse = errors.New("unexpected response from vault")
	// ErrInvalidArgument: a caller-supplied argument or option is invalid.
	ErrInvalidArgument = errors.New("invalid argument")
)

// Error describes a failed operation against one Vault path. It never holds
// secret values: only the operation, the API path, the field name, Vault's
// status and messages.
type Error struct {
	// Op is what was being done: "read", "read metadata", "write", "sign",
	// "parse", "import", ...
	Op string
	// Path is the Vault API path without /v1/, e.g. "secret/data/knot/client".
	Path string
	// Field is the KV field involved, if any.
	Field string
	// Capability is the Vault policy capability the operation needs on Path
	// ("read", "create", "update"); set for [ErrPermissionDenied].
	Capability string
	// Status is Vault's HTTP status code, 0 when no response arrived.
	Status int
	// Err is a sentinel of this package or a [*provider.CheckError].
	Err error
	// Detail explains the failure and what to do about it.
	Detail string
	// Cause is the underlying error (an *api.ResponseError, a network
	// error, a context error), if any.
	Cause error

	retryAfter time.Duration // Retry-After of a 429 or 503 answer
}

// RetryAfter is the wait Vault asked for with the Retry-After header of a
// 429 (rate-limit quota, with response headers enabled) or 503 answer, 0
// when it sent none. [provider.Provider] waits at least that long before
// its next attempt (up to its maximum backoff).
func (e *Error) RetryAfter() time.Duration { return e.retryAfter }

// Error formats the error on one line, without secret data.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("vaultsource: ")
	b.WriteString(e.Op)
	if e.Path != "" {
		b.WriteString(" ")
		b.WriteString(e.Path)
	}
	if e.Field != "" {
		b.WriteString(" field \"")
		b.WriteString(e.Field)
		b.WriteString("\"")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if s := causeSummary(e.Cause); s != "" {
		b.WriteString(" (")
		b.WriteString(s)
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the sentinel (or provider check error) and the cause, so
// errors.Is works for both and errors.As finds an *api.ResponseError.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

// Temporary reports whether the failure may go away by itself (Vault
// unreachable, sealed, overloaded, too slow): true exactly when the error
// wraps [ErrUnavailable]. knotclient uses it to retry a call whose TLS
// handshake failed on a Transit signature; a permission or key problem is
// never temporary.
func (e *Error) Temporary() bool { return errors.Is(e.Err, ErrUnavailable) }

// ErrorClass sorts the error into one of provider's bounded classes, which
// [provider.ErrorClass] (and so Status.Health and metrics) reports: "sealed",
// "rate_limited", "permission_denied", "unavailable", "not_found", or
// "invalid_bundle" for a secret or key that cannot be used as it is. It
// returns "" when none fits, and provider's own classification applies.
func (e *Error) ErrorClass() string {
	switch {
	case errors.Is(e.Err, ErrSealed):
		return provider.ClassSealed
	case errors.Is(e.Err, ErrRateLimited):
		return provider.ClassRateLimited
	case errors.Is(e.Err, ErrUnavailable):
		return provider.ClassUnavailable
	case errors.Is(e.Err, ErrPermissionDenied):
		return provider.ClassPermission
	case errors.Is(e.Err, ErrSecretNotFound), errors.Is(e.Err, ErrVersionDeleted),
		errors.Is(e.Err, ErrKeyNotFound), errors.Is(e.Err, ErrMountNotFound):
		return provider.ClassNotFound
	case errors.Is(e.Err, ErrMissingField), errors.Is(e.Err, ErrFieldType),
		errors.Is(e.Err, ErrNoCertificateChain), errors.Is(e.Err, ErrUnsupportedKeyType),
		errors.Is(e.Err, ErrWrongKVVersion):
		return provider.ClassInvalidBundle
	}
	return ""
}

// causeSummary renders a cause on one line. Vault's multi-line
// ResponseError becomes "vault responded 403: permission denied"; a body
// that is not Vault's JSON is not echoed.
func causeSummary(err error) string {
	if err == nil {
		return ""
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		if re.RawError || len(re.Errors) == 0 {
			return "vault responded " + strconv.Itoa(re.StatusCode)
		}
		return "vault responded " + strconv.Itoa(re.StatusCode) + ": " + oneLine(strings.Join(re.Errors, "; "))
	}
	return oneLine(err.Error())
}

func oneLine(s string) string { return vaultresp.OneLine(s) }

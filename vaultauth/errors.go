package vaultauth

import (
	"errors"
	"fmt"

	"github.com/knotmtls/knotmtls/internal/vaultresp"
)

// Sentinel errors. Test them with errors.Is.
var (
	// ErrClosed is returned by Start, Relogin and HandleDenied after Close.
	ErrClosed = errors.New("vaultauth: closed")
	// ErrNotStarted is returned by Relogin and HandleDenied before Start
	// succeeded.
	ErrNotStarted = errors.New("vaultauth: not started")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("vaultauth: already started")
	// ErrNoClientToken is wrapped by the error of a login whose response
	// carries no client token (for example a login that asks for MFA).
	ErrNoClientToken = errors.New("vaultauth: login response has no client token")
	// ErrEmptyToken is wrapped by the error of a token method whose token is
	// empty (an empty static token or an empty token file).
	ErrEmptyToken = errors.New("vaultauth: empty token")
	// ErrPermissionDenied is wrapped by the error of HandleDenied when
	// lookup-self says the token is valid: Vault's 403 comes from the
	// policy, which a new login cannot fix. The error names the path and
	// the capability. vaultsource reports it as its own
	// vaultsource.ErrPermissionDenied.
	ErrPermissionDenied = vaultresp.ErrTokenValid
	// ErrInvalidToken is wrapped by the error of HandleDenied when the
	// token is invalid, expired or revoked and no new login may happen yet
	// (one per backoff step) or the last login failed.
	ErrInvalidToken = errors.New("vaultauth: the token is invalid, expired or revoked")
	// ErrUnavailable is wrapped by the error of HandleDenied when the
	// lookup that tells the cases apart did not get an answer.
	ErrUnavailable = errors.New("vaultauth: vault unavailable")
)

// LoginError is the error of a failed login. It names the method and the
// reason for the login and wraps the cause (a Vault *api.ResponseError, a
// file error, [ErrNoClientToken], [ErrEmptyToken], a context error). It never
// contains a token, secret-id, role-id or password.
type LoginError struct {
	Method string // e.g. "approle", "kubernetes", "token file"
	Reason string // why the login happened: "start", "relogin", "expiring", ...
	Err    error  // the cause, never holding a credential
}

// Error formats the error on one line (Vault's multi-line API errors are
// folded).
func (e *LoginError) Error() string {
	cause := "<nil>"
	if e.Err != nil {
		cause = oneLine(e.Err)
	}
	return fmt.Sprintf("vaultauth: login with %s (%s): %s", e.Method, e.Reason, cause)
}

// Unwrap returns the cause.
func (e *LoginError) Unwrap() error { return e.Err }

func oneLine(err error) string { return vaultresp.OneLine(err.Error()) }

// deniedError builds the error of a valid token denied on path.
func deniedError(path, capability string, policies []string) error {
	return fmt.Errorf("vaultauth: %w: the token's policies %v lack %q on %s", ErrPermissionDenied, policies, capability, path)
}

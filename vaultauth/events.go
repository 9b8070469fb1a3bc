package vaultauth

import (
	"fmt"
	"time"
)

// EventKind says what an [Event] reports.
type EventKind int

// Kinds of [Event].
const (
	// EventLogin: a login succeeded and its token is set on the client.
	EventLogin EventKind = iota + 1
	// EventLoginFailed: a login failed; the previous token stays set.
	EventLoginFailed
	// EventRenewal: the token was renewed.
	EventRenewal
	// EventExpiring: renewal stopped (the token reached its max TTL, is
	// not renewable, or renewing failed); a new login follows.
	EventExpiring
	// EventDenied: lookup-self found the token valid after a 403: the
	// policy denies Path (Capability). Reported once per backoff step.
	EventDenied
	// EventRevoked: a replaced token was revoked (Err set: revoking failed).
	EventRevoked
)

// String names the kind: "login", "login failed", "renewal", "expiring",
// "denied", "revoked".
func (k EventKind) String() string {
	switch k {
	case EventLogin:
		return "login"
	case EventLoginFailed:
		return "login failed"
	case EventRenewal:
		return "renewal"
	case EventExpiring:
		return "expiring"
	case EventDenied:
		return "denied"
	case EventRevoked:
		return "revoked"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is passed to the hooks registered with [OnEvent]. It never carries
// the token.
type Event struct {
	Kind       EventKind     // what happened
	Method     string        // the auth method's name, e.g. "approle"
	Reason     string        // for logins: why the login happened
	TTL        time.Duration // for logins and renewals: the token's TTL, 0 = never expires
	Renewable  bool          // for logins and renewals
	Err        error         // for failures; for EventExpiring the watcher's error, if any
	Failures   int           // for failures: consecutive failed logins
	RetryIn    time.Duration // for failures: about when the background loop tries again (0 for Start)
	Path       string        // for EventDenied: the Vault path denied
	Capability string        // for EventDenied: the capability the policy lacks
}

// Status is a snapshot of an [Auth], for operators and tests. It never
// holds the token.
type Status struct {
	// Method is the auth method's name, e.g. "approle".
	Method string
	// LoggedIn is true once a login succeeded: its token is set on the client.
	LoggedIn bool
	// Logins counts successful logins, the first one included.
	Logins int
	// LoginFailures counts failed logins; ConsecutiveFailures those since the
	// last success.
	LoginFailures       int
	ConsecutiveFailures int // failed logins since the last successful one
	// Renewals counts successful token renewals.
	Renewals    int
	LastLogin   time.Time // when the last successful login finished
	LastRenewal time.Time // when the last renewal succeeded
	// LastError is the most recent failure (login, or renewal that ended the
	// watch). A later success does not clear it: compare LastErrorTime with
	// LastLogin, or look at ConsecutiveFailures.
	LastError     error
	LastErrorTime time.Time // when LastError happened
	// TokenTTL is the TTL reported by the last login or renewal, 0 when the
	// token never expires. TokenExpires is when it runs out (zero if never).
	TokenTTL     time.Duration
	TokenExpires time.Time // zero when the token never expires
	Renewable    bool      // whether Vault said the token can be renewed
	// Watching is true while an api.LifetimeWatcher watches the token.
	Watching bool
	// Lookups counts lookup-self requests made to diagnose a 403; Denials
	// the diagnoses that found the token valid (a policy problem).
	Lookups int
	Denials int
	// Revoked counts replaced tokens revoked; RevokeFailures the attempts
	// that failed (retried once more on Close).
	Revoked        int
	RevokeFailures int
}

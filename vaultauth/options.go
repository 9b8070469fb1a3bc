package vaultauth

import (
	"errors"
	"log/slog"
	"time"
)

// Defaults for an [Auth] and a [Proxy].
const (
	// DefaultInitialBackoff is the wait after the first failed login, and
	// the first step between two diagnoses of a denied request.
	DefaultInitialBackoff = time.Second
	// DefaultMaxBackoff caps the wait between failed logins.
	DefaultMaxBackoff = 5 * time.Minute
	// DefaultTimeout bounds each login, renewal, lookup and revocation
	// request.
	DefaultTimeout = 30 * time.Second
	// DefaultRevokeTimeout bounds the revocation of a replaced token.
	DefaultRevokeTimeout = 5 * time.Second
	// DefaultProxyWait is how long a [Proxy] waits, after its Vault Proxy
	// answered 403 for an invalid token, before the request is retried
	// (the proxy logs in again after such an answer).
	DefaultProxyWait = time.Second
	// Jitter is the fraction by which each backoff wait is randomized
	// (± of the step), so that a fleet does not retry in lock step.
	Jitter = 0.2
)

type authConfig struct {
	initialBackoff time.Duration
	maxBackoff     time.Duration
	timeout        time.Duration
	revokeTimeout  time.Duration
	logger         *slog.Logger
	hooks          []func(Event)
}

type proxyConfig struct {
	wait    time.Duration
	timeout time.Duration
	logger  *slog.Logger
}

// Option configures an [Auth] (see [New]).
type Option interface {
	configureAuth(*authConfig) error
}

// ProxyOption configures a [Proxy] (see [NewProxy]).
type ProxyOption interface {
	configureProxy(*proxyConfig) error
}

// SharedOption configures both an [Auth] and a [Proxy].
type SharedOption interface {
	Option
	ProxyOption
}

type authOption func(*authConfig) error

func (o authOption) configureAuth(c *authConfig) error { return o(c) }

type proxyOption func(*proxyConfig) error

func (o proxyOption) configureProxy(c *proxyConfig) error { return o(c) }

type sharedOption struct {
	auth  func(*authConfig) error
	proxy func(*proxyConfig) error
}

func (o sharedOption) configureAuth(c *authConfig) error   { return o.auth(c) }
func (o sharedOption) configureProxy(c *proxyConfig) error { return o.proxy(c) }

// WithBackoff sets the exponential backoff between failed logins: initial,
// doubling, capped at limit (defaults [DefaultInitialBackoff] and
// [DefaultMaxBackoff]), each wait randomized by ±[Jitter]. The same steps
// space re-logins after a 403 with an invalid token and the diagnoses of a
// 403 with a valid one; initial is also the least time between two logins
// of the background loop.
func WithBackoff(initial, limit time.Duration) Option {
	return authOption(func(c *authConfig) error {
		if initial <= 0 || limit < initial {
			return errors.New("vaultauth: backoff needs 0 < initial <= max")
		}
		c.initialBackoff, c.maxBackoff = initial, limit
		return nil
	})
}

// WithTimeout bounds each request to Vault: login, renewal, lookup-self
// (default [DefaultTimeout]). The timeout belongs to the shared login, not
// to a caller of Relogin: a caller that gives up does not abort it.
func WithTimeout(d time.Duration) SharedOption {
	check := func(d time.Duration) error {
		if d <= 0 {
			return errors.New("vaultauth: timeout must be positive")
		}
		return nil
	}
	return sharedOption{
		auth:  func(c *authConfig) error { c.timeout = d; return check(d) },
		proxy: func(c *proxyConfig) error { c.timeout = d; return check(d) },
	}
}

// WithRevokeTimeout bounds the revocation of each replaced token (default
// [DefaultRevokeTimeout]).
func WithRevokeTimeout(d time.Duration) Option {
	return authOption(func(c *authConfig) error {
		if d <= 0 {
			return errors.New("vaultauth: revoke timeout must be positive")
		}
		c.revokeTimeout = d
		return nil
	})
}

// WithLogger sets the logger (default slog.Default()). Log lines carry the
// method, the reason, TTLs, paths and errors, never a token or a credential.
func WithLogger(l *slog.Logger) SharedOption {
	check := func() error {
		if l == nil {
			return errors.New("vaultauth: nil logger")
		}
		return nil
	}
	return sharedOption{
		auth:  func(c *authConfig) error { c.logger = l; return check() },
		proxy: func(c *proxyConfig) error { c.logger = l; return check() },
	}
}

// OnEvent registers a hook called after each login, failed login, renewal,
// end of renewal, denial diagnosis and revocation. Hooks are called in
// order on one goroutine of the Auth, after [Auth.Status] reflects the
// event; a caller of Relogin may return before the hooks of its login ran.
// A hook may call Status and Relogin. Keep hooks short.
func OnEvent(fn func(Event)) Option {
	return authOption(func(c *authConfig) error {
		if fn == nil {
			return errors.New("vaultauth: nil event hook")
		}
		c.hooks = append(c.hooks, fn)
		return nil
	})
}

// WithProxyWait sets how long a [Proxy] waits before retrying a request
// its Vault Proxy refused with an invalid token (default
// [DefaultProxyWait]).
func WithProxyWait(d time.Duration) ProxyOption {
	return proxyOption(func(c *proxyConfig) error {
		if d <= 0 {
			return errors.New("vaultauth: proxy wait must be positive")
		}
		c.wait = d
		return nil
	})
}

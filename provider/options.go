package provider

import (
	"errors"
	"log/slog"
	"time"
)

// Defaults for a [Provider]. Knot issues long-lived client certificates, so
// the windows are days, while rotation is noticed within a poll interval.
const (
	DefaultPollInterval   = time.Minute
	DefaultRefreshBefore  = 72 * time.Hour
	DefaultWarnBefore     = 14 * 24 * time.Hour
	DefaultInitialBackoff = time.Second
	DefaultMaxBackoff     = 5 * time.Minute
	DefaultFetchTimeout   = 30 * time.Second
	DefaultJitter         = 0.1
)

type config struct {
	req            Requirements
	pollInterval   time.Duration
	refreshBefore  time.Duration
	warnBefore     time.Duration
	initialBackoff time.Duration
	maxBackoff     time.Duration
	fetchTimeout   time.Duration
	jitter         float64
	logger         *slog.Logger
	now            func() time.Time
	onRotated      []func(old, new *Bundle)
	onFailed       []func(err error, failures int, retryIn time.Duration)
	onNearing      []func(b *Bundle, remaining time.Duration)
}

// Option configures a [Provider].
type Option func(*config) error

// WithRequirements sets the Knot rules every bundle must pass. Set at least
// ClientID; without it the CN is not checked.
func WithRequirements(r Requirements) Option {
	return func(c *config) error { c.req = r; return nil }
}

// WithPollInterval sets how often the Provider checks its source for a new
// version (default [DefaultPollInterval]). Sources implementing [Versioner]
// make each poll a cheap version check.
func WithPollInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return errors.New("provider: poll interval must be positive")
		}
		c.pollInterval = d
		return nil
	}
}

// WithRefreshBefore sets how long before the leaf's NotAfter the Provider
// starts refreshing (default [DefaultRefreshBefore]), with jitter.
func WithRefreshBefore(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return errors.New("provider: refresh window must not be negative")
		}
		c.refreshBefore = d
		return nil
	}
}

// WithWarnBefore sets how long before NotAfter the nearing-expiry hook fires
// and a warning is logged at each poll (default [DefaultWarnBefore]).
func WithWarnBefore(d time.Duration) Option {
	return func(c *config) error { c.warnBefore = d; return nil }
}

// WithBackoff sets the exponential backoff between failed refreshes:
// initial, doubling, capped at max (defaults 1 s and 5 min), with jitter.
func WithBackoff(initial, max time.Duration) Option {
	return func(c *config) error {
		if initial <= 0 || max < initial {
			return errors.New("provider: backoff needs 0 < initial <= max")
		}
		c.initialBackoff, c.maxBackoff = initial, max
		return nil
	}
}

// WithJitter sets the fraction (0 to 0.5) by which timers are randomised so
// that a fleet does not refresh in lock step (default [DefaultJitter]).
func WithJitter(f float64) Option {
	return func(c *config) error {
		if f < 0 || f > 0.5 {
			return errors.New("provider: jitter must be within [0, 0.5]")
		}
		c.jitter = f
		return nil
	}
}

// WithFetchTimeout bounds each Fetch and Version call (default
// [DefaultFetchTimeout]). The timeout belongs to the shared refresh, not to
// any caller: a caller that gives up does not abort it.
func WithFetchTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return errors.New("provider: fetch timeout must be positive")
		}
		c.fetchTimeout = d
		return nil
	}
}

// WithLogger sets the logger (default slog.Default()). Log lines carry the
// certificate's CN, serial, NotAfter and version, never key material.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("provider: nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option {
	return func(c *config) error { c.now = now; return nil }
}

// OnRotated registers a hook called after a new bundle replaced the served
// one (old is nil for the first load). Hooks run on the refresh goroutine:
// keep them short and never block.
func OnRotated(fn func(old, new *Bundle)) Option {
	return func(c *config) error { c.onRotated = append(c.onRotated, fn); return nil }
}

// OnRefreshFailed registers a hook called after each failed refresh with the
// error, the number of consecutive failures and the delay before the next try.
func OnRefreshFailed(fn func(err error, failures int, retryIn time.Duration)) Option {
	return func(c *config) error { c.onFailed = append(c.onFailed, fn); return nil }
}

// OnNearingExpiry registers a hook called at each poll while the served
// certificate has less than the warn window left.
func OnNearingExpiry(fn func(b *Bundle, remaining time.Duration)) Option {
	return func(c *config) error { c.onNearing = append(c.onNearing, fn); return nil }
}

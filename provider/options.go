package provider

import (
	"errors"
	"log/slog"
	"reflect"
	"runtime"
	"sync/atomic"
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
	onRotated      []hookFn[func(old, new *Bundle)]
	onFailed       []hookFn[func(err error, failures int, retryIn time.Duration)]
	onNearing      []hookFn[func(b *Bundle, remaining time.Duration)]
}

// hook names a user callback for the log line of its first panic.
type hook struct {
	kind     string // the option that registered it: "OnRotated", "Notify", ...
	name     string // the function's name, as the runtime knows it
	panicked atomic.Bool
}

func newHook(kind string, fn any) *hook {
	name := "unknown"
	if f := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()); f != nil {
		name = f.Name()
	}
	return &hook{kind: kind, name: name}
}

type hookFn[F any] struct {
	h  *hook
	fn F
}

func register[F any](list *[]hookFn[F], kind string, fn F, isNil bool) error {
	if isNil {
		return errors.New("provider: " + kind + " with a nil hook")
	}
	*list = append(*list, hookFn[F]{h: newHook(kind, fn), fn: fn})
	return nil
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

// WithWarnBefore sets the nearing-expiry window (default
// [DefaultWarnBefore]): see [OnNearingExpiry] for when the hook fires and a
// warning is logged.
func WithWarnBefore(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return errors.New("provider: warn window must not be negative")
		}
		c.warnBefore = d
		return nil
	}
}

// WithBackoff sets the exponential backoff between failed attempts: initial,
// doubling, capped at max (defaults [DefaultInitialBackoff] and
// [DefaultMaxBackoff]), each delay randomised by the jitter fraction
// ([WithJitter]). It applies to every failure, a served certificate that
// expired with nothing newer at the source included; polls do not reset it,
// only a success does.
//
// A failure may ask for a longer wait: when an error in its chain has a
// method RetryAfter() time.Duration (vaultsource's errors do, with the
// Retry-After of a 429 or 503 answer), the next attempt waits at least
// that long, capped at max. The wait is what [OnRefreshFailed] reports and
// [Status].RetryAt shows.
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

// OnRotated registers a hook called after a new bundle replaced the served
// one (old is nil for the first load). Hooks run on the refresh goroutine:
// keep them short and never block. A panic in a hook is recovered and
// logged (once per hook, with its name); the provider carries on. [New]
// refuses a nil fn.
func OnRotated(fn func(old, new *Bundle)) Option {
	return func(c *config) error { return register(&c.onRotated, "OnRotated", fn, fn == nil) }
}

// OnRefreshFailed registers a hook called after each failed attempt with the
// error, the number of consecutive failures and the delay before the next
// background attempt. Panics are handled as for [OnRotated]; [New] refuses a
// nil fn.
func OnRefreshFailed(fn func(err error, failures int, retryIn time.Duration)) Option {
	return func(c *config) error { return register(&c.onFailed, "OnRefreshFailed", fn, fn == nil) }
}

// OnNearingExpiry registers a hook called when the served certificate's
// remaining lifetime crosses a threshold: first when it drops below the warn
// window W ([WithWarnBefore]), then each time it drops below half of the
// previous threshold (W/2, W/4, ...; with the default 14 days: 7 days, 3.5
// days, 42 hours, ...), and a last time once it has expired. Each threshold
// fires once per bundle, checked at each background wake-up (every poll
// interval at most), so the hook fires about log2(W/poll interval) times for
// one certificate, not at every poll; a rotated bundle starts over. A warning
// (an error once expired) is logged at the same moments. Panics are handled as
// for [OnRotated]; [New] refuses a nil fn.
func OnNearingExpiry(fn func(b *Bundle, remaining time.Duration)) Option {
	return func(c *config) error { return register(&c.onNearing, "OnNearingExpiry", fn, fn == nil) }
}

package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// HealthState answers "will the client certificate still work?".
type HealthState int

// The health states, from good to bad.
const (
	// Healthy: a valid certificate is served, with more than the degraded
	// window left, and refreshes succeed (or failed fewer times than the
	// policy tolerates).
	Healthy HealthState = iota
	// Degraded: the certificate still works, but someone should look: it
	// expires within the degraded window, or refreshes keep failing, or the
	// last failure is one that does not heal by itself.
	Degraded
	// Failing: no valid certificate can be presented (none loaded yet,
	// expired, not yet valid, provider closed), or less than the failing
	// window is left, or refreshes failed more times than allowed.
	Failing
)

// String returns "healthy", "degraded" or "failing".
func (h HealthState) String() string {
	switch h {
	case Healthy:
		return "healthy"
	case Degraded:
		return "degraded"
	case Failing:
		return "failing"
	}
	return fmt.Sprintf("HealthState(%d)", int(h))
}

// Defaults of a [HealthPolicy] for its zero fields.
const (
	DefaultDegradedBelow         = DefaultWarnBefore
	DefaultDegradedAfterFailures = 3
)

// HealthPolicy holds the thresholds [Status.Health] applies. The zero value
// means the defaults: degraded within [DefaultDegradedBelow] of NotAfter or
// after [DefaultDegradedAfterFailures] consecutive failures (at the first for
// a failure that does not heal by itself: see [ErrorClass]); failing only
// when no valid certificate can be presented.
type HealthPolicy struct {
	// DegradedBelow: remaining lifetime under which health is at least
	// degraded. Zero means DefaultDegradedBelow; negative disables it.
	DegradedBelow time.Duration
	// FailingBelow: remaining lifetime under which health is failing,
	// although the certificate still works (to take an instance out of
	// rotation before it breaks). Zero disables it.
	FailingBelow time.Duration
	// DegradedAfterFailures: consecutive failures from which health is at
	// least degraded. Zero means DefaultDegradedAfterFailures.
	DegradedAfterFailures int
	// FailingAfterFailures: consecutive failures from which health is
	// failing, although the certificate still works. Zero disables it.
	FailingAfterFailures int
}

// Health is the verdict of [Status.Health].
type Health struct {
	State     HealthState
	Reason    string        // one line for a probe's body or a log; no secrets
	Remaining time.Duration // time to the served leaf's NotAfter (0 without a bundle)
	Failures  int           // consecutive failed attempts
	LastError string        // ErrorClass of the last failure, "" after a success
}

// Error classes returned by [ErrorClass]. Sources may report their own (for
// example "permission_denied") through an error that has an ErrorClass()
// string method.
const (
	ClassClosed        = "closed"
	ClassExpired       = "expired"
	ClassNotYetValid   = "not_yet_valid"
	ClassInvalidBundle = "invalid_bundle"
	ClassTimeout       = "timeout"
	ClassUnavailable   = "unavailable"
	ClassSourcePanic   = "source_panic"
	ClassPermission    = "permission_denied"
	// ClassSealed: the store (Vault) is sealed; an operator must unseal it.
	ClassSealed = "sealed"
	// ClassRateLimited: the store refused the request under a rate-limit
	// quota; it passes once the quota allows requests again.
	ClassRateLimited = "rate_limited"
	// ClassNotFound: what the source reads does not exist (a wrong path or
	// a deleted secret or key).
	ClassNotFound = "not_found"
)

// ErrorClass sorts a refresh error into a small, bounded set of classes for
// health checks and metric labels: the ErrorClass() string of the first
// error in the chain that has one (a source's own classification), else
// "closed", "expired", "not_yet_valid", "invalid_bundle" (a bundle Knot's
// rules refuse), "timeout", "source_panic", and "unavailable" for anything
// else. It returns "" for nil.
func ErrorClass(err error) string {
	if err == nil {
		return ""
	}
	var c interface{ ErrorClass() string }
	if errors.As(err, &c) {
		if class := c.ErrorClass(); class != "" {
			return class
		}
	}
	var ne net.Error
	var ce *CheckError
	switch {
	case errors.Is(err, ErrClosed):
		return ClassClosed
	case errors.Is(err, ErrExpired):
		return ClassExpired
	case errors.Is(err, ErrNotYetValid):
		return ClassNotYetValid
	case errors.As(err, &ce):
		return ClassInvalidBundle
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ClassTimeout
	case errors.Is(err, ErrSourcePanicked):
		return ClassSourcePanic
	}
	return ClassUnavailable
}

// selfHealing reports whether failures of this class may end without anyone
// acting (a network blip, Vault restarting).
func selfHealing(class string) bool {
	return class == ClassTimeout || class == ClassUnavailable || class == ClassRateLimited
}

// Health judges the snapshot with pol: will the certificate still work, and
// should someone look? Wire it to a readiness probe by answering 503 when
// the state is [Failing] and 200 otherwise (a degraded instance still works;
// alert on it instead); see the package example. Without a bundle, with an
// invalid one, or from a closed provider it is always Failing.
func (s Status) Health(pol HealthPolicy) Health {
	if pol.DegradedBelow == 0 {
		pol.DegradedBelow = DefaultDegradedBelow
	}
	if pol.DegradedAfterFailures == 0 {
		pol.DegradedAfterFailures = DefaultDegradedAfterFailures
	}
	h := Health{Failures: s.Failures, LastError: ErrorClass(s.LastError)}
	failed := ""
	if s.Failures > 0 {
		failed = fmt.Sprintf("%d consecutive refresh failure(s), last %s", s.Failures, h.LastError)
	}
	if s.Bundle == nil || s.Bundle.Leaf() == nil || s.Closed {
		h.State, h.Reason = Failing, "no certificate loaded"
		if s.Closed {
			h.Reason = "provider closed"
		}
		if failed != "" {
			h.Reason += "; " + failed
		}
		return h
	}
	leaf := s.Bundle.Leaf()
	h.Remaining = max(leaf.NotAfter.Sub(now()), 0)
	serving := fmt.Sprintf("serial %s expires in %s", SerialHex(leaf), h.Remaining.Round(time.Second))
	switch {
	case !s.Valid:
		h.State, h.Reason = Failing, fmt.Sprintf("certificate serial %s is not valid now (valid %s to %s)", SerialHex(leaf),
			leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	case pol.FailingBelow > 0 && h.Remaining < pol.FailingBelow:
		h.State, h.Reason = Failing, fmt.Sprintf("%s, under the failing threshold %s", serving, pol.FailingBelow)
	case pol.FailingAfterFailures > 0 && s.Failures >= pol.FailingAfterFailures:
		h.State, h.Reason = Failing, failed
	case s.Failures >= pol.DegradedAfterFailures, s.Failures > 0 && !selfHealing(h.LastError):
		h.State, h.Reason = Degraded, failed+"; "+serving
	case pol.DegradedBelow > 0 && h.Remaining < pol.DegradedBelow:
		h.State, h.Reason = Degraded, fmt.Sprintf("%s, under the degraded threshold %s", serving, pol.DegradedBelow)
	default:
		h.State, h.Reason = Healthy, serving
		if failed != "" {
			h.Reason = serving + "; " + failed
		}
	}
	return h
}

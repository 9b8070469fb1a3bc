package provider

import "time"

// SetClock replaces the wall clock every validity decision reads, and
// returns a function that restores it. Call it before New, and restore
// after Close (t.Cleanup registered before the provider's own Close does).
func SetClock(f func() time.Time) (restore func()) {
	old := now
	now = f
	return func() { now = old }
}

// SetRecheck replaces how long the hot path trusts its hint without reading
// the clock, and returns a function that restores it.
func SetRecheck(d time.Duration) (restore func()) {
	old := recheck
	recheck = d
	return func() { recheck = old }
}

// ExpiryTier exposes the nearing-expiry thresholds for a table test.
func ExpiryTier(remaining, window time.Duration) int { return int(expiryTier(remaining, window)) }

// ExpiredTier is the tier of an expired certificate.
const ExpiredTier = expiredTier

// WantedAttempts is the attempt number callers of Refresh (and polls and
// change notices) are waiting for; it rises when one of them starts waiting.
func WantedAttempts(p *Provider) uint64 { return p.want.Load() }

// Replan wakes the background loop to plan its next attempt again from the
// clock, as it does after a rotation: a test that stepped a fake clock past
// the planned time calls it instead of waiting out the real timer.
func Replan(p *Provider) { p.signal() }

// Hinted reports whether the hot path currently trusts its hint (serves the
// cached certificate without reading the clock).
func Hinted(p *Provider) bool {
	s := p.cur.Load()
	return s != nil && s.hint.Load()
}

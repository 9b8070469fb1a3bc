package provider_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/provider"
)

// frozenClock is a wall clock that moves only when the test moves it, so
// attempt times and backoff delays compare exactly.
type frozenClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *frozenClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *frozenClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// outageSource is a Versioner that fails with err while err is set and
// records, by the fake clock, when each attempt reached it.
type outageSource struct {
	clk      *frozenClock
	mu       sync.Mutex
	bundle   *provider.Bundle
	err      error
	attempts []time.Time // Version calls: one per attempt once a bundle is served
	fetches  int
}

func (s *outageSource) set(b *provider.Bundle, err error) {
	s.mu.Lock()
	s.bundle, s.err = b, err
	s.mu.Unlock()
}

func (s *outageSource) Version(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts = append(s.attempts, s.clk.now())
	if s.err != nil {
		return "", s.err
	}
	return s.bundle.Version, nil
}

func (s *outageSource) Fetch(context.Context) (*provider.Bundle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetches++
	if s.err != nil {
		return nil, s.err
	}
	return s.bundle, nil
}

func (s *outageSource) calls() (attempts []time.Time, fetches int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.attempts...), s.fetches
}

// retryAfterError is a store's refusal that asks for a wait, as
// vaultsource's errors do for a 429 with Retry-After.
type retryAfterError struct{ wait time.Duration }

func (e *retryAfterError) Error() string {
	return fmt.Sprintf("store: rate limited, retry after %s", e.wait)
}
func (e *retryAfterError) RetryAfter() time.Duration { return e.wait }

// TestRetryAfterFloorsTheBackoff: a failure whose error chain carries a
// RetryAfter() hint longer than the backoff step delays the next attempt by
// the hint, capped at the maximum backoff; a shorter, zero or negative hint
// leaves the backoff as it is. The next attempt (a caller's, here) does not
// reach the source a nanosecond before the wait ends, and does at its end.
func TestRetryAfterFloorsTheBackoff(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		initial    time.Duration
		max        time.Duration
		wantDelays []time.Duration // of three consecutive failures
	}{
		{"hint above the step", &retryAfterError{30 * time.Second}, time.Second, 5 * time.Minute,
			[]time.Duration{30 * time.Second, 30 * time.Second, 30 * time.Second}},
		{"hint wrapped deep in the chain", fmt.Errorf("vault: %w", errors.Join(errors.New("x"), &retryAfterError{30 * time.Second})),
			time.Second, 5 * time.Minute, []time.Duration{30 * time.Second, 30 * time.Second, 30 * time.Second}},
		{"hint capped by the max backoff", &retryAfterError{time.Hour}, time.Second, 10 * time.Second,
			[]time.Duration{10 * time.Second, 10 * time.Second, 10 * time.Second}},
		{"hint below the step: backoff grows past it", &retryAfterError{1500 * time.Millisecond}, time.Second, time.Minute,
			[]time.Duration{1500 * time.Millisecond, 2 * time.Second, 4 * time.Second}},
		{"zero hint", &retryAfterError{0}, time.Second, time.Minute,
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second}},
		{"negative hint", &retryAfterError{-time.Minute}, time.Second, time.Minute,
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second}},
		{"no hint", errors.New("store: down"), time.Second, time.Minute,
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now().Truncate(time.Second)
			clk := &frozenClock{t: start}
			t.Cleanup(provider.SetClock(clk.now))
			src := &outageSource{clk: clk, err: tc.err}
			var mu sync.Mutex
			var delays []time.Duration
			p := newProvider(t, src, provider.WithJitter(0), provider.WithBackoff(tc.initial, tc.max),
				provider.OnRefreshFailed(func(_ error, _ int, d time.Duration) { mu.Lock(); delays = append(delays, d); mu.Unlock() }))

			at := start
			for i, want := range tc.wantDelays {
				// Nothing was loaded, so a caller's Bundle is the attempt;
				// until the wait has passed it gets the last error instead.
				clk.set(at)
				_, err := p.Bundle(context.Background())
				require.ErrorIs(t, err, tc.err, "attempt %d", i+1)
				st := p.Status()
				assert.Equal(t, i+1, st.Failures)
				assert.Equal(t, want, st.RetryAt.Sub(at), "wait after failure %d", i+1)
				_, fetches := src.calls()
				require.Equal(t, i+1, fetches)

				clk.set(at.Add(want - time.Nanosecond))
				_, err = p.Bundle(context.Background())
				require.ErrorIs(t, err, provider.ErrNoValidBundle)
				assert.Contains(t, err.Error(), "next attempt in")
				_, fetches = src.calls()
				require.Equal(t, i+1, fetches, "no attempt before the wait of failure %d ended", i+1)
				at = at.Add(want)
			}
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, tc.wantDelays, delays, "the delays OnRefreshFailed reports")
		})
	}
}

// TestMultiHourOutageCrossesNotAfter drives a source outage of 4 h on a
// fake clock: it starts 3 h before the served certificate's NotAfter and
// ends 1 h after it. Every attempt is the background loop's: the delays
// double from 1 s to the 5 min cap and stay there, attempts are spaced by
// exactly the previous delay, Status.Failures counts them all; the cached
// certificate is served until the last nanosecond before NotAfter and not
// at NotAfter; once the source answers again, the first attempt loads the
// new certificate and the next handshake presents it.
func TestMultiHourOutageCrossesNotAfter(t *testing.T) {
	is := newIssuer()
	start := time.Now().Truncate(time.Second)
	// NotAfter falls between two attempts (attempt k+1 of the capped phase is
	// at start + 511 s + k·300 s), so the handshakes at NotAfter decide alone.
	notAfter := start.Add(3*time.Hour + 7*time.Second)
	outageEnd := notAfter.Add(time.Hour)
	clk := &frozenClock{t: start}
	t.Cleanup(provider.SetClock(clk.now))
	t.Cleanup(provider.SetRecheck(time.Millisecond))
	old := is.bundle(t, start.Add(-24*time.Hour), notAfter)
	src := &outageSource{clk: clk, bundle: old}
	type failure struct {
		n     int
		delay time.Duration
		err   error
	}
	failures := make(chan failure, 10)
	p := newProvider(t, src, provider.WithPollInterval(time.Hour), provider.WithRefreshBefore(time.Minute),
		provider.WithJitter(0), provider.WithBackoff(provider.DefaultInitialBackoff, provider.DefaultMaxBackoff),
		provider.OnRefreshFailed(func(err error, n int, d time.Duration) { failures <- failure{n, d, err} }))
	require.True(t, served(p))

	outage := errors.New("store: connection refused")
	src.set(old, outage)
	require.ErrorIs(t, p.Refresh(context.Background()), outage) // the poll that meets the outage
	next := func(t *testing.T, n int) failure {
		t.Helper()
		select {
		case f := <-failures:
			require.Equal(t, n, f.n)
			require.ErrorIs(t, f.err, outage)
			return f
		case <-time.After(10 * time.Second):
			t.Fatalf("attempt %d did not come", n)
		}
		return failure{}
	}
	f := next(t, 1)

	var delays []time.Duration
	var handshakesAfter int
	crossed := false
	last := start // fake time of the last attempt
	for n := 2; ; n++ {
		delays = append(delays, f.delay)
		st := p.Status()
		require.Equal(t, n-1, st.Failures, "consecutive failures")
		require.Equal(t, last.Add(f.delay), st.RetryAt)
		due := st.RetryAt

		// Between attempts: handshakes are served from the cache while
		// the certificate is valid and never reach the source.
		attempts, _ := src.calls()
		if mid := last.Add(f.delay / 2); mid.Before(notAfter) {
			clk.set(mid)
			p.Bundle(context.Background()) //nolint:errcheck // served or not, decided below
			require.True(t, served(p), "served at %s before NotAfter", notAfter.Sub(mid))
		}
		if !crossed && due.After(notAfter) {
			crossed = true
			// The last stretch before NotAfter is decided by the clock on
			// every handshake (no hint within 100 ms of NotAfter).
			clk.set(notAfter.Add(-50 * time.Millisecond))
			require.Eventually(t, func() bool { _, err := p.Bundle(context.Background()); return err == nil && !provider.Hinted(p) },
				5*time.Second, time.Millisecond)
			clk.set(notAfter.Add(-time.Nanosecond))
			c, err := p.GetClientCertificate(&tls.CertificateRequestInfo{})
			require.NoError(t, err, "one nanosecond before NotAfter")
			require.Same(t, old.Leaf(), c.Leaf)
			clk.set(notAfter)
			_, err = p.GetClientCertificate(&tls.CertificateRequestInfo{})
			require.ErrorIs(t, err, provider.ErrNoValidBundle, "at NotAfter")
			require.ErrorIs(t, err, outage, "the refusal names the outage")
			assert.False(t, p.Status().Valid)
		}
		if crossed {
			clk.set(due.Add(-time.Second))
			_, err := p.GetClientCertificate(&tls.CertificateRequestInfo{})
			require.ErrorIs(t, err, provider.ErrNoValidBundle)
			handshakesAfter++
		}
		now, _ := src.calls()
		require.Len(t, now, len(attempts), "no attempt between backoff steps")

		if !due.Before(outageEnd) {
			break
		}
		clk.set(due)
		provider.Replan(p)
		f = next(t, n)
		attempts, _ = src.calls()
		require.Equal(t, due, attempts[len(attempts)-1], "attempt %d at the end of the previous delay", n)
		last = due
	}

	// The delays: 1 s doubling to the cap, then the cap for hours.
	want := provider.DefaultInitialBackoff
	for i, d := range delays {
		require.Equal(t, want, d, "delay after failure %d", i+1)
		want = min(2*want, provider.DefaultMaxBackoff)
	}
	capped := 0
	for _, d := range delays {
		if d == provider.DefaultMaxBackoff {
			capped++
		}
	}
	assert.Greater(t, capped, 40, "hours at the cap")
	require.True(t, crossed)

	// The source is back with a renewed certificate: the first attempt
	// after that loads it and the next handshake presents it.
	fresh := is.bundle(t, outageEnd.Add(-time.Hour), outageEnd.Add(30*24*time.Hour))
	fresh.Version = "renewed"
	src.set(fresh, nil)
	due := p.Status().RetryAt
	attempts, fetches := src.calls()
	clk.set(due)
	provider.Replan(p)
	require.Eventually(t, func() bool { return p.Status().Failures == 0 }, 10*time.Second, time.Millisecond)
	c, err := p.GetClientCertificate(&tls.CertificateRequestInfo{})
	require.NoError(t, err)
	require.Same(t, fresh.Leaf(), c.Leaf, "the new certificate is served at once")
	st := p.Status()
	assert.Same(t, fresh, st.Bundle)
	assert.True(t, st.Valid)
	assert.Equal(t, due, st.LastSuccess)
	after, fetchesAfter := src.calls()
	assert.Len(t, after, len(attempts)+1, "recovery on the first attempt after the source returned")
	assert.Equal(t, fetches+1, fetchesAfter, "one full read: the new version")
	t.Logf("outage %s: %d attempts (%d at the %s cap), %d refused handshakes after NotAfter, recovered at the first attempt after the source returned",
		outageEnd.Sub(start), len(delays)+1, capped, provider.DefaultMaxBackoff, handshakesAfter)
}

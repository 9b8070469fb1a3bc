package provider_test

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/provider"
)

// served reports whether the hot path presents a certificate now.
func served(p *provider.Provider) bool {
	c, err := p.GetClientCertificate(&tls.CertificateRequestInfo{})
	return err == nil && c != nil
}

// TestClockStepsNeverLatch steps the wall clock back and forth across the
// certificate's validity. After every step the provider serves exactly when
// the clock says the certificate is valid: through Bundle (which reads the
// clock) at once, and through the hot path within the recheck period.
// Stepping past NotAfter and back must not leave a refusal behind.
func TestClockStepsNeverLatch(t *testing.T) {
	is := newIssuer()
	start := time.Now().Truncate(time.Second)
	notBefore, notAfter := start.Add(-time.Hour), start.Add(30*24*time.Hour)
	b := is.bundle(t, notBefore, notAfter)
	clk := newClock(start)
	t.Cleanup(provider.SetClock(clk.now))
	t.Cleanup(provider.SetRecheck(20 * time.Millisecond))
	src := &versionedSource{fakeSource: &fakeSource{bundle: b}}
	p := newProvider(t, src, provider.WithPollInterval(time.Hour), provider.WithBackoff(time.Millisecond, time.Millisecond))
	require.True(t, served(p))

	steps := []struct {
		name  string
		at    time.Time
		valid bool
	}{
		{"a month ahead, past NotAfter", notAfter.Add(24 * time.Hour), false},
		{"corrected back", start, true},
		{"exactly NotAfter", notAfter, false},
		{"one second before NotAfter", notAfter.Add(-time.Second), true},
		{"years ahead", start.Add(5 * 365 * 24 * time.Hour), false},
		{"before NotBefore", notBefore.Add(-time.Minute), false},
		{"corrected again", start.Add(time.Minute), true},
	}
	for _, step := range steps {
		clk.set(step.at)
		b, err := p.Bundle(context.Background())
		if step.valid {
			require.NoError(t, err, step.name)
			require.NoError(t, p.Refresh(context.Background()), step.name)
			assert.Zero(t, p.Status().Failures, step.name)
		} else {
			require.ErrorIs(t, err, provider.ErrNoValidBundle, step.name)
			assert.Nil(t, b)
			require.Error(t, p.Refresh(context.Background()), step.name)
			assert.Positive(t, p.Status().Failures, step.name)
		}
		assert.Equal(t, step.valid, p.Status().Valid, step.name)
		require.Eventually(t, func() bool { return served(p) == step.valid }, 5*time.Second, time.Millisecond,
			"%s: the hot path must follow the clock", step.name)
	}
	assert.EqualValues(t, 1, src.fetches.Load(), "the version never changed: one full read")
}

// TestBundleNotAfterIsNotTrusted: a source that sets Bundle.NotAfter later
// than the leaf's gets its certificate refused at the leaf's NotAfter, and
// the provider never writes into a bundle it was handed (two providers share
// one; the race detector watches).
func TestBundleNotAfterIsNotTrusted(t *testing.T) {
	is := newIssuer()
	start := time.Now().Truncate(time.Second)
	leafNotAfter := start.Add(time.Hour)
	b := is.bundle(t, start.Add(-time.Hour), leafNotAfter)
	lying := &provider.Bundle{Chain: b.Chain, Key: b.Key, Version: "v1", NotAfter: start.Add(365 * 24 * time.Hour)}
	unset := &provider.Bundle{Chain: b.Chain, Key: b.Key, Version: "v1"}
	clk := newClock(start)
	t.Cleanup(provider.SetClock(clk.now))

	for _, shared := range []*provider.Bundle{lying, unset} {
		before := *shared
		p1 := newProvider(t, provider.Static(shared))
		p2 := newProvider(t, provider.Static(shared))
		var wg sync.WaitGroup
		for _, p := range []*provider.Provider{p1, p2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := p.Bundle(context.Background())
				assert.NoError(t, err)
				assert.Same(t, shared, got)
			}()
		}
		wg.Wait()
		assert.Equal(t, before, *shared, "the provider does not modify a bundle handed in")

		clk.set(leafNotAfter)
		for _, p := range []*provider.Provider{p1, p2} {
			_, err := p.Bundle(context.Background())
			require.ErrorIs(t, err, provider.ErrNoValidBundle)
			require.ErrorIs(t, err, provider.ErrExpired)
			assert.False(t, p.Status().Valid)
		}
		clk.set(start)
	}
}

// TestRealTimerExpiry runs the production path, real clock and real timers,
// with a certificate about 1-2 s from its NotAfter: the hot path serves it
// until NotAfter and never after.
func TestRealTimerExpiry(t *testing.T) {
	is := newIssuer()
	notAfter := time.Now().Add(2 * time.Second).Truncate(time.Second) // x509 keeps whole seconds
	b := is.bundle(t, time.Now().Add(-time.Hour), notAfter)
	p := newProvider(t, provider.Static(b), provider.WithBackoff(time.Hour, time.Hour))
	cri := &tls.CertificateRequestInfo{}
	var hits int
	var err error
	deadline := notAfter.Add(5 * time.Second)
	for time.Now().Before(deadline) {
		began := time.Now()
		var c *tls.Certificate
		c, err = p.GetClientCertificate(cri)
		if err != nil {
			require.False(t, time.Now().Before(notAfter), "refused %s before NotAfter: %v", notAfter.Sub(time.Now()), err)
			break
		}
		require.True(t, began.Before(notAfter), "served %s after NotAfter", began.Sub(notAfter))
		require.Same(t, b.Leaf(), c.Leaf)
		hits++
		time.Sleep(100 * time.Microsecond)
	}
	require.Error(t, err, "still served after the deadline")
	require.ErrorIs(t, err, provider.ErrNoValidBundle)
	require.ErrorIs(t, err, provider.ErrExpired)
	assert.Positive(t, hits)
	t.Logf("served %d handshakes until NotAfter, refused from then on", hits)
}

// TestBackoffAfterNotAfter: once the served certificate expired and the
// source offers nothing newer, attempts back off (here 10 ms doubling to
// 80 ms, no jitter) although the poll interval is 1 ms; every attempt is one
// cheap version check, never a full read; Failures counts 1, 2, 3, ...
func TestBackoffAfterNotAfter(t *testing.T) {
	is := newIssuer()
	start := time.Now().Truncate(time.Second)
	notAfter := start.Add(time.Hour)
	clk := newClock(start)
	t.Cleanup(provider.SetClock(clk.now))
	t.Cleanup(provider.SetRecheck(time.Millisecond)) // the hot path notices the clock step at once
	src := &versionedSource{fakeSource: &fakeSource{bundle: is.bundle(t, start.Add(-time.Hour), notAfter)}}
	type failure struct {
		n     int
		delay time.Duration
		err   error
		at    time.Time // real time
	}
	failures := make(chan failure, 100)
	p := newProvider(t, src, provider.WithPollInterval(time.Millisecond), provider.WithJitter(0),
		provider.WithBackoff(10*time.Millisecond, 80*time.Millisecond),
		provider.OnRefreshFailed(func(err error, n int, d time.Duration) { failures <- failure{n, d, err, time.Now()} }))
	_, err := p.Bundle(context.Background())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return src.versions.Load() >= 5 }, 5*time.Second, time.Millisecond, "polls run")

	clk.set(notAfter.Add(time.Second))
	versionsAtExpiry := src.versions.Load()
	want := []time.Duration{10, 20, 40, 80, 80, 80}
	var prev failure
	for i, d := range want {
		select {
		case f := <-failures:
			if i > 0 {
				assert.GreaterOrEqual(t, f.at.Sub(prev.at), prev.delay-2*time.Millisecond,
					"attempt %d came before the backoff of attempt %d ran out", i+1, i)
			}
			prev = f
			assert.Equal(t, i+1, f.n, "consecutive failures are counted, never reset by a poll")
			assert.Equal(t, d*time.Millisecond, f.delay)
			require.ErrorIs(t, f.err, provider.ErrExpired)
			assert.Contains(t, f.err.Error(), "source still holds version")
		case <-time.After(5 * time.Second):
			t.Fatalf("attempt %d never failed", i+1)
		}
	}
	assert.EqualValues(t, 1, src.fetches.Load(), "no full read after NotAfter: the version is unchanged")
	// Each attempt was one version check (one more may be in flight).
	attempts := src.versions.Load() - versionsAtExpiry
	assert.GreaterOrEqual(t, attempts, int64(len(want)))
	assert.LessOrEqual(t, attempts, int64(len(want)+1), "polls add no version checks while backing off")
	st := p.Status()
	assert.GreaterOrEqual(t, st.Failures, len(want))
	assert.False(t, st.Valid)

	// A renewed certificate under a new version ends it.
	fresh := is.bundle(t, start, notAfter.Add(24*time.Hour))
	fresh.Version = "renewed"
	src.set(fresh, nil)
	require.Eventually(t, func() bool { return p.Status().Bundle == fresh }, 5*time.Second, time.Millisecond)
	assert.True(t, served(p))
	assert.EqualValues(t, 2, src.fetches.Load())
	assert.Zero(t, p.Status().Failures)
}

// TestFailingSourceBacksOffFromTheLoop: a source that keeps failing is
// retried by the background loop at the backoff's pace, not the poll's, also
// before anything was ever loaded.
func TestFailingSourceBacksOffFromTheLoop(t *testing.T) {
	src := &fakeSource{err: errors.New("vault: connection refused")}
	type failure struct {
		delay time.Duration
		at    time.Time
	}
	failures := make(chan failure, 100)
	p := newProvider(t, src, provider.WithPollInterval(time.Millisecond), provider.WithJitter(0),
		provider.WithBackoff(10*time.Millisecond, 40*time.Millisecond),
		provider.OnRefreshFailed(func(_ error, _ int, d time.Duration) { failures <- failure{d, time.Now()} }))
	_, err := p.Bundle(context.Background())
	require.Error(t, err)
	var got []time.Duration
	var prev failure
	for i := range 5 {
		select {
		case f := <-failures:
			if i > 0 {
				assert.GreaterOrEqual(t, f.at.Sub(prev.at), prev.delay-2*time.Millisecond,
					"attempt %d came before the backoff of attempt %d ran out", i+1, i)
			}
			prev = f
			got = append(got, f.delay)
		case <-time.After(5 * time.Second):
			t.Fatal("the loop never retried")
		}
	}
	assert.Equal(t, []time.Duration{10, 20, 40, 40, 40}, func() []time.Duration {
		for i := range got {
			got[i] /= time.Millisecond
		}
		return got
	}())
	n := src.fetches.Load()
	assert.GreaterOrEqual(t, n, int64(5))
	assert.LessOrEqual(t, n, int64(6), "one fetch per backoff step")
}

// TestNearingExpiryFiresOncePerThreshold: with an 8 h window the hook fires
// when the remaining time drops below 8 h, 4 h, 2 h, ... and once at
// expiry; never again at later polls for the same threshold, and a jump
// across several thresholds fires once.
func TestNearingExpiryFiresOncePerThreshold(t *testing.T) {
	is := newIssuer()
	start := time.Now().Truncate(time.Second)
	notAfter := start.Add(10 * time.Hour)
	clk := newClock(start)
	t.Cleanup(provider.SetClock(clk.now))
	src := &versionedSource{fakeSource: &fakeSource{bundle: is.bundle(t, start.Add(-time.Hour), notAfter)}}
	var mu sync.Mutex
	var fired []time.Duration
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(fired) }
	logs := &lockedBuffer{}
	p := newProvider(t, src, provider.WithPollInterval(time.Millisecond), provider.WithRefreshBefore(0),
		provider.WithWarnBefore(8*time.Hour), provider.WithBackoff(time.Millisecond, time.Millisecond),
		provider.WithLogger(slog.New(slog.NewTextHandler(logs, nil))),
		provider.OnNearingExpiry(func(_ *provider.Bundle, rem time.Duration) { mu.Lock(); fired = append(fired, rem); mu.Unlock() }))
	_, err := p.Bundle(context.Background())
	require.NoError(t, err)

	// waitPolls waits for n more background wake-ups (each one version check).
	waitPolls := func(n int64) {
		v := src.versions.Load()
		require.Eventually(t, func() bool { return src.versions.Load() >= v+n }, 5*time.Second, time.Millisecond)
	}
	waitPolls(5)
	assert.Zero(t, count(), "10 h left, window 8 h")

	steps := []struct {
		at    time.Time
		fires int
	}{
		{notAfter.Add(-7 * time.Hour), 1},    // below 8 h
		{notAfter.Add(-5 * time.Hour), 1},    // still above 4 h
		{notAfter.Add(-3 * time.Hour), 2},    // below 4 h
		{notAfter.Add(-10 * time.Minute), 3}, // below 2 h, 1 h, 30 min and 15 min at once: one call
		{notAfter.Add(-9 * time.Minute), 3},  // same tier
		{notAfter.Add(time.Second), 4},       // expired: the last one
		{notAfter.Add(time.Hour), 4},         // nothing further
	}
	for _, s := range steps {
		clk.set(s.at)
		require.Eventually(t, func() bool { return count() == s.fires }, 5*time.Second, time.Millisecond,
			"at %s before NotAfter", notAfter.Sub(s.at))
		waitPolls(3)
		assert.Equal(t, s.fires, count(), "no further call at later polls (%s before NotAfter)", notAfter.Sub(s.at))
	}
	mu.Lock()
	assert.InDelta(t, (7 * time.Hour).Seconds(), fired[0].Seconds(), 1)
	assert.LessOrEqual(t, fired[3], time.Duration(0))
	mu.Unlock()
	assert.Equal(t, 3, strings.Count(logs.String(), "client certificate nearing expiry"))
	assert.Equal(t, 1, strings.Count(logs.String(), "client certificate expired"))
}

func TestExpiryTiers(t *testing.T) {
	const w = 8 * time.Hour
	cases := []struct {
		remaining time.Duration
		tier      int
	}{
		{9 * time.Hour, 0}, {w, 0}, {w - time.Nanosecond, 1}, {4 * time.Hour, 1},
		{4*time.Hour - time.Nanosecond, 2}, {2 * time.Hour, 2}, {time.Hour + time.Minute, 3},
		{10 * time.Minute, 6}, {0, provider.ExpiredTier},
		{-time.Hour, provider.ExpiredTier},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.tier, provider.ExpiryTier(tc.remaining, w), "remaining %s", tc.remaining)
	}
	assert.Equal(t, 0, provider.ExpiryTier(time.Hour, 0), "no window: never nearing")
	last := 0
	for rem := w; rem > 0; rem /= 3 {
		tier := provider.ExpiryTier(rem, w)
		assert.GreaterOrEqual(t, tier, last, "tiers only rise as time runs out")
		assert.Less(t, tier, provider.ExpiredTier)
		last = tier
	}
}

// lockedBuffer is an io.Writer safe for a logger and a reading test.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

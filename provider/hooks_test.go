package provider_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/provider"
)

func TestNilHooksAreRefused(t *testing.T) {
	src := provider.Static(newIssuer().valid(t))
	cases := map[string]provider.Option{
		"OnRotated":       provider.OnRotated(nil),
		"OnRefreshFailed": provider.OnRefreshFailed(nil),
		"OnNearingExpiry": provider.OnNearingExpiry(nil),
	}
	for name, opt := range cases {
		t.Run(name, func(t *testing.T) {
			p, err := provider.New(src, opt)
			require.EqualError(t, err, "provider: "+name+" with a nil hook")
			assert.Nil(t, p)
		})
	}
	_, err := provider.New(src, nil)
	require.EqualError(t, err, "provider: nil option")

	p := newProvider(t, src)
	assert.PanicsWithValue(t, "provider: Notify called with a nil func", func() { p.Notify(nil) },
		"a nil listener is refused where it is registered, not inside a refresh")
}

func panickyRotated(_, _ *provider.Bundle) { panic("rotated hook bug") }

// TestPanickingHooksAreRecovered: every kind of hook panics at every call;
// the provider keeps rotating and serving, and each hook's first panic is
// logged once, with the hook's kind and function name.
func TestPanickingHooksAreRecovered(t *testing.T) {
	is := newIssuer()
	src := &fakeSource{bundle: is.valid(t)}
	logs := &lockedBuffer{}
	var failedCalls, notifyCalls atomic.Int64
	p := newProvider(t, src, provider.WithLogger(slog.New(slog.NewTextHandler(logs, nil))),
		provider.OnRotated(panickyRotated),
		provider.OnRefreshFailed(func(error, int, time.Duration) { failedCalls.Add(1); panic(errors.New("failed hook bug")) }))
	stop := p.Notify(func(_, _ *provider.Bundle) { notifyCalls.Add(1); panic("listener bug") })
	defer stop()

	for i := range 3 {
		next := is.valid(t)
		src.set(next, nil)
		require.NoError(t, p.Refresh(context.Background()), "rotation %d", i)
		b, err := p.Bundle(context.Background())
		require.NoError(t, err)
		assert.Same(t, next, b)

		src.set(nil, errors.New("vault down"))
		require.Error(t, p.Refresh(context.Background()))
	}
	assert.EqualValues(t, 3, failedCalls.Load())
	assert.EqualValues(t, 3, notifyCalls.Load(), "a panicking listener stays registered")
	assert.True(t, served(p), "the provider still serves")

	out := logs.String()
	assert.Equal(t, 3, strings.Count(out, "provider hook panicked"), out)
	for _, want := range []string{
		"hook=OnRotated func=github.com/knotmtls/knotmtls/provider_test.panickyRotated",
		"hook=OnRefreshFailed func=github.com/knotmtls/knotmtls/provider_test.TestPanickingHooksAreRecovered.func",
		"hook=Notify func=github.com/knotmtls/knotmtls/provider_test.TestPanickingHooksAreRecovered.func",
		`panic="rotated hook bug"`, `panic="failed hook bug"`, `panic="listener bug"`,
	} {
		assert.Contains(t, out, want)
	}
}

// TestPanickingSourceIsAFailure: a Fetch that panics is a failed attempt
// with its own sentinel, not a crash.
func TestPanickingSourceIsAFailure(t *testing.T) {
	p := newProvider(t, provider.SourceFunc(func(context.Context) (*provider.Bundle, error) { panic("source bug") }))
	err := p.Refresh(context.Background())
	require.ErrorIs(t, err, provider.ErrSourcePanicked)
	assert.NotContains(t, err.Error(), "source bug", "the panic value may hold anything: only its type is reported")
	_, err = p.Bundle(context.Background())
	require.ErrorIs(t, err, provider.ErrNoValidBundle)
	assert.Equal(t, 1, p.Status().Failures)
}

// TestWatcherNoticeBeforeFirstLoad: a change notice that arrives before
// anything was loaded loads at once: with nobody calling yet, and after a
// failed first load that is backing off for an hour.
func TestWatcherNoticeBeforeFirstLoad(t *testing.T) {
	is := newIssuer()
	t.Run("nobody called yet", func(t *testing.T) {
		src := &watchingSource{fakeSource: &fakeSource{bundle: is.valid(t)}, changed: make(chan func(), 1)}
		p := newProvider(t, src, provider.WithPollInterval(time.Hour))
		notify := <-src.changed
		assert.Zero(t, src.fetches.Load(), "New does no I/O")
		notify()
		require.Eventually(t, func() bool { return p.Status().Bundle != nil }, 5*time.Second, time.Millisecond)
		assert.True(t, served(p))
		assert.EqualValues(t, 1, src.fetches.Load())
	})
	t.Run("first load failed and backs off", func(t *testing.T) {
		src := &watchingSource{fakeSource: &fakeSource{err: errors.New("open tls.crt: no such file")}, changed: make(chan func(), 1)}
		p := newProvider(t, src, provider.WithPollInterval(time.Hour), provider.WithBackoff(time.Hour, time.Hour))
		notify := <-src.changed
		_, err := p.Bundle(context.Background())
		require.Error(t, err)
		_, err = p.Bundle(context.Background())
		require.ErrorContains(t, err, "next attempt in", "backing off")

		b := is.valid(t)
		src.set(b, nil) // Vault Agent rendered the files
		notify()
		require.Eventually(t, func() bool { return p.Status().Bundle == b }, 5*time.Second, time.Millisecond)
		assert.True(t, served(p))
		assert.EqualValues(t, 2, src.fetches.Load())
		assert.Zero(t, p.Status().Failures)
	})
}

// TestRefreshSeesChangesMadeBeforeTheCall: a Refresh called while an older
// attempt is in flight (it read the old material and stalls) does not report
// that attempt's outcome: it returns after an attempt that started after the
// call, which sees the new material.
func TestRefreshSeesChangesMadeBeforeTheCall(t *testing.T) {
	is := newIssuer()
	a, b, c := is.valid(t), is.valid(t), is.valid(t)
	src := &fakeSource{bundle: a}
	p := newProvider(t, src, provider.WithPollInterval(time.Hour))
	_, err := p.Bundle(context.Background())
	require.NoError(t, err)

	gate := make(chan struct{})
	src.mu.Lock()
	src.bundle, src.gate = b, gate
	src.mu.Unlock()
	older := make(chan error, 1)
	go func() { older <- p.Refresh(context.Background()) }()
	require.Eventually(t, func() bool { return src.fetches.Load() == 2 }, 5*time.Second, time.Millisecond)

	src.set(c, nil) // the caller's change, then its Refresh
	wanted := provider.WantedAttempts(p)
	mine := make(chan error, 1)
	go func() { mine <- p.Refresh(context.Background()) }()
	require.Eventually(t, func() bool { return provider.WantedAttempts(p) > wanted }, 5*time.Second, time.Millisecond)
	select {
	case err := <-mine:
		t.Fatalf("Refresh returned (%v) while only an older attempt had run", err)
	default:
	}
	close(gate)
	require.NoError(t, <-older)
	require.NoError(t, <-mine)
	got, err := p.Bundle(context.Background())
	require.NoError(t, err)
	assert.Same(t, c, got, "after Refresh returns, the change made before it is served")
	assert.EqualValues(t, 3, src.fetches.Load())
}

// TestNotifyAttemptReportsEveryAttempt: each attempt that asks the source is
// reported once, with its error; a cached answer is not an attempt; stop
// unregisters; a nil func is refused where it is registered.
func TestNotifyAttemptReportsEveryAttempt(t *testing.T) {
	is := newIssuer()
	src := &fakeSource{bundle: is.valid(t)}
	p := newProvider(t, src)
	var mu sync.Mutex
	var got []provider.Attempt
	stop := p.NotifyAttempt(func(a provider.Attempt) { mu.Lock(); got = append(got, a); mu.Unlock() })
	attempts := func() []provider.Attempt {
		mu.Lock()
		defer mu.Unlock()
		return append([]provider.Attempt(nil), got...)
	}

	_, err := p.Bundle(context.Background())
	require.NoError(t, err)
	_, err = p.Bundle(context.Background()) // served from the cache: no attempt
	require.NoError(t, err)
	down := errors.New("vault down")
	src.set(nil, down)
	require.Error(t, p.Refresh(context.Background()))
	src.set(is.valid(t), nil)
	require.NoError(t, p.Refresh(context.Background()))

	a := attempts()
	require.Len(t, a, 3)
	assert.NoError(t, a[0].Err)
	assert.ErrorIs(t, a[1].Err, down)
	assert.Equal(t, provider.ClassUnavailable, provider.ErrorClass(a[1].Err))
	assert.NoError(t, a[2].Err)
	for _, x := range a {
		assert.GreaterOrEqual(t, x.Duration, time.Duration(0))
	}
	assert.EqualValues(t, 3, src.fetches.Load(), "one report per source call")

	stop()
	require.NoError(t, p.Refresh(context.Background()))
	assert.Len(t, attempts(), 3, "stopped listeners are not called")
	assert.PanicsWithValue(t, "provider: NotifyAttempt called with a nil func", func() { p.NotifyAttempt(nil) })
}

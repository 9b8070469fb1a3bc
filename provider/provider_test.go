package provider_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/knotmtls/knotmtls/internal/pkitest"
	"github.com/knotmtls/knotmtls/provider"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeSource hands out whatever bundle or error it currently holds, counts
// fetches and can hold them at a gate.
type fakeSource struct {
	mu      sync.Mutex
	bundle  *provider.Bundle
	err     error
	gate    chan struct{} // when non-nil, Fetch waits for it (or ctx)
	fetches atomic.Int64
	ctxErrs atomic.Int64 // fetches whose ctx was cancelled
}

func (f *fakeSource) set(b *provider.Bundle, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bundle, f.err = b, err
}

func (f *fakeSource) Fetch(ctx context.Context) (*provider.Bundle, error) {
	f.fetches.Add(1)
	f.mu.Lock()
	gate, b, err := f.gate, f.bundle, f.err
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			f.ctxErrs.Add(1)
			return nil, ctx.Err()
		}
	}
	return b, err
}

type versionedSource struct {
	*fakeSource
	versions atomic.Int64
}

func (v *versionedSource) Version(context.Context) (string, error) {
	v.versions.Add(1)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.err != nil {
		return "", v.err
	}
	return v.bundle.Version, nil
}

type issuer struct {
	ca *pkitest.CA
	n  int
}

func newIssuer() *issuer { return &issuer{ca: pkitest.NewCA("Knot test CA")} }

// bundle issues a fresh certificate for clientID valid within [from, to).
func (is *issuer) bundle(t testing.TB, from, to time.Time) *provider.Bundle {
	t.Helper()
	key := pkitest.CachedRSAKey(2048, is.n%3)
	is.n++
	cert := is.ca.Issue(pkitest.Leaf{CN: clientID, Key: key, NotBefore: from, NotAfter: to})
	b, err := provider.NewBundle([]*x509.Certificate{cert}, key, provider.SerialHex(cert))
	require.NoError(t, err)
	return b
}

func (is *issuer) valid(t testing.TB) *provider.Bundle {
	return is.bundle(t, time.Now().Add(-time.Hour), time.Now().Add(30*24*time.Hour))
}

func newProvider(t *testing.T, src provider.CertificateSource, opts ...provider.Option) *provider.Provider {
	t.Helper()
	opts = append([]provider.Option{provider.WithLogger(quiet),
		provider.WithRequirements(provider.Requirements{ClientID: clientID})}, opts...)
	p, err := provider.New(src, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func serialOf(c *tls.Certificate) string { return provider.SerialHex(c.Leaf) }

func TestColdStormFetchesOnce(t *testing.T) {
	is := newIssuer()
	src := &fakeSource{bundle: is.valid(t), gate: make(chan struct{})}
	p := newProvider(t, src)

	const callers = 1000
	var wg sync.WaitGroup
	var ok, entered atomic.Int64
	start := make(chan struct{})
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			entered.Add(1)
			c, err := p.GetClientCertificate(&tls.CertificateRequestInfo{})
			if err == nil && c != nil {
				ok.Add(1)
			}
		}()
	}
	close(start)
	// Let the storm pile up behind the gated fetch, then release it. A
	// caller that joins late finds the bundle and must not fetch again.
	require.Eventually(t, func() bool { return src.fetches.Load() == 1 && entered.Load() == callers },
		5*time.Second, time.Millisecond)
	close(src.gate)
	wg.Wait()
	assert.EqualValues(t, callers, ok.Load())
	assert.EqualValues(t, 1, src.fetches.Load(), "exactly one Fetch for %d cold callers", callers)
}

func TestCancelledCallerDoesNotAbortSharedRefresh(t *testing.T) {
	is := newIssuer()
	src := &fakeSource{bundle: is.valid(t), gate: make(chan struct{})}
	p := newProvider(t, src)

	ctx, cancel := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	go func() { _, err := p.Bundle(ctx); errA <- err }()
	require.Eventually(t, func() bool { return src.fetches.Load() == 1 }, 5*time.Second, time.Millisecond)

	bCh := make(chan *provider.Bundle, 1)
	go func() { b, _ := p.Bundle(context.Background()); bCh <- b }()

	cancel()
	require.ErrorIs(t, <-errA, context.Canceled, "the cancelled caller stops waiting")
	close(src.gate) // the shared fetch was not cancelled and now completes
	b := <-bCh
	require.NotNil(t, b, "the other caller gets the bundle from the same fetch")
	assert.EqualValues(t, 1, src.fetches.Load())
	assert.EqualValues(t, 0, src.ctxErrs.Load(), "the shared fetch's context was never cancelled")
}

// clock is a wall clock that can be stepped: it runs at the real clock's
// pace from wherever it was last set, as a stepped system clock does.
type clock struct{ offset atomic.Int64 }

func newClock(t time.Time) *clock    { c := &clock{}; c.set(t); return c }
func (c *clock) now() time.Time      { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) set(t time.Time)     { c.offset.Store(int64(time.Until(t))) }
func (c *clock) add(d time.Duration) { c.offset.Add(int64(d)) }

func TestFailingSourceKeepsLastGoodUntilNotAfter(t *testing.T) {
	is := newIssuer()
	start := time.Now()
	notAfter := start.Add(2 * time.Hour)
	good := is.bundle(t, start.Add(-time.Hour), notAfter)
	src := &fakeSource{bundle: good}
	clk := newClock(start)
	t.Cleanup(provider.SetClock(clk.now))
	var failures atomic.Int64
	p := newProvider(t, src,
		provider.OnRefreshFailed(func(error, int, time.Duration) { failures.Add(1) }))

	c, err := p.GetClientCertificate(&tls.CertificateRequestInfo{})
	require.NoError(t, err)
	require.Equal(t, serialOf(c), provider.SerialHex(good.Leaf()))

	outage := errors.New("vault: connection refused")
	src.set(nil, outage)
	err = p.Refresh(context.Background())
	require.ErrorIs(t, err, outage)
	assert.EqualValues(t, 1, failures.Load())

	// Still inside validity: the last good bundle keeps serving.
	clk.set(notAfter.Add(-time.Second))
	c, err = p.GetClientCertificate(&tls.CertificateRequestInfo{})
	require.NoError(t, err)
	assert.Equal(t, provider.SerialHex(good.Leaf()), serialOf(c))
	st := p.Status()
	assert.True(t, st.Valid)
	assert.Equal(t, 1, st.Failures)
	assert.ErrorIs(t, st.LastError, outage)

	// At NotAfter it is never served again.
	clk.set(notAfter)
	c, err = p.Certificate(context.Background())
	require.Error(t, err)
	assert.Nil(t, c)
	assert.ErrorIs(t, err, provider.ErrNoValidBundle)
	assert.ErrorIs(t, err, outage)
	assert.False(t, p.Status().Valid)

	// Recovery: a new certificate appears and is served at once.
	fresh := is.bundle(t, start.Add(-time.Hour), start.Add(48*time.Hour))
	src.set(fresh, nil)
	clk.add(time.Hour) // past any backoff
	c, err = p.Certificate(context.Background())
	require.NoError(t, err)
	assert.Equal(t, provider.SerialHex(fresh.Leaf()), serialOf(c))
	assert.Equal(t, 0, p.Status().Failures)
}

func TestInvalidBundleKeepsLastGood(t *testing.T) {
	is := newIssuer()
	good := is.valid(t)
	src := &fakeSource{bundle: good}
	var got []error
	var mu sync.Mutex
	p := newProvider(t, src, provider.OnRefreshFailed(func(err error, _ int, _ time.Duration) {
		mu.Lock()
		got = append(got, err)
		mu.Unlock()
	}))
	_, err := p.Bundle(context.Background())
	require.NoError(t, err)

	expired := is.bundle(t, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	src.set(expired, nil)
	require.ErrorIs(t, p.Refresh(context.Background()), provider.ErrExpired)

	b, err := p.Bundle(context.Background())
	require.NoError(t, err)
	assert.Same(t, good, b)
	mu.Lock()
	require.Len(t, got, 1)
	mu.Unlock()
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	src := &fakeSource{err: errors.New("boom")}
	var delays []time.Duration
	var mu sync.Mutex
	p := newProvider(t, src, provider.WithJitter(0), provider.WithBackoff(time.Second, 8*time.Second),
		provider.OnRefreshFailed(func(_ error, _ int, d time.Duration) { mu.Lock(); delays = append(delays, d); mu.Unlock() }))
	for range 6 {
		require.Error(t, p.Refresh(context.Background()))
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second, 8 * time.Second}, delays)

	// While backing off, a caller without a valid bundle gets the last
	// error without hitting the source again.
	n := src.fetches.Load()
	_, err := p.Bundle(context.Background())
	require.ErrorIs(t, err, provider.ErrNoValidBundle)
	assert.Equal(t, n, src.fetches.Load())
}

func TestPollUsesVersionCheck(t *testing.T) {
	is := newIssuer()
	first := is.valid(t)
	src := &versionedSource{fakeSource: &fakeSource{bundle: first}}
	rotated := make(chan string, 4)
	p := newProvider(t, src, provider.WithPollInterval(20*time.Millisecond), provider.WithJitter(0),
		provider.OnRotated(func(_, b *provider.Bundle) { rotated <- provider.SerialHex(b.Leaf()) }))
	_, err := p.Bundle(context.Background())
	require.NoError(t, err)
	require.Equal(t, provider.SerialHex(first.Leaf()), <-rotated)

	require.Eventually(t, func() bool { return src.versions.Load() >= 3 }, 5*time.Second, 5*time.Millisecond)
	assert.EqualValues(t, 1, src.fetches.Load(), "unchanged version: no re-fetch")

	second := is.valid(t)
	src.set(second, nil)
	select {
	case s := <-rotated:
		assert.Equal(t, provider.SerialHex(second.Leaf()), s)
	case <-time.After(5 * time.Second):
		t.Fatal("rotation not noticed by polling")
	}
	assert.EqualValues(t, 2, src.fetches.Load())
}

type watchingSource struct {
	*fakeSource
	changed chan func()
}

func (w *watchingSource) Watch(ctx context.Context, changed func()) error {
	w.changed <- changed
	<-ctx.Done()
	return nil
}

func TestWatcherTriggersRefresh(t *testing.T) {
	is := newIssuer()
	src := &watchingSource{fakeSource: &fakeSource{bundle: is.valid(t)}, changed: make(chan func(), 1)}
	p := newProvider(t, src, provider.WithPollInterval(time.Hour))
	_, err := p.Bundle(context.Background())
	require.NoError(t, err)
	notify := <-src.changed
	next := is.valid(t)
	src.set(next, nil)
	notify()
	require.Eventually(t, func() bool {
		b, err := p.Bundle(context.Background())
		return err == nil && b == next
	}, 5*time.Second, 5*time.Millisecond)
}

func TestNearingExpiryHook(t *testing.T) {
	is := newIssuer()
	b := is.bundle(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	src := &fakeSource{bundle: b}
	got := make(chan time.Duration, 8)
	p := newProvider(t, src, provider.WithPollInterval(10*time.Millisecond), provider.WithRefreshBefore(0),
		provider.WithWarnBefore(2*time.Hour),
		provider.OnNearingExpiry(func(_ *provider.Bundle, rem time.Duration) {
			select {
			case got <- rem:
			default:
			}
		}))
	_, err := p.Bundle(context.Background())
	require.NoError(t, err)
	select {
	case rem := <-got:
		assert.InDelta(t, time.Hour.Seconds(), rem.Seconds(), 60)
	case <-time.After(5 * time.Second):
		t.Fatal("nearing-expiry hook never fired")
	}
}

func TestRotationNextHandshakePresentsNewCertificate(t *testing.T) {
	is := newIssuer()
	first := is.valid(t)
	src := &fakeSource{bundle: first}
	var rotations atomic.Int64
	p := newProvider(t, src, provider.OnRotated(func(_, _ *provider.Bundle) { rotations.Add(1) }))

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, provider.SerialHex(r.TLS.PeerCertificates[0]))
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: is.ca.Pool()}
	srv.StartTLS()
	defer srv.Close()

	cfg := provider.MTLSClientConfig(p, srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs)
	assert.Equal(t, uint16(tls.VersionTLS12), cfg.MinVersion)
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	stop := p.Notify(func(_, _ *provider.Bundle) { tr.CloseIdleConnections() })
	defer stop()
	client := &http.Client{Transport: tr}

	get := func() string {
		resp, err := client.Get(srv.URL)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	assert.Equal(t, provider.SerialHex(first.Leaf()), get())

	second := is.valid(t)
	src.set(second, nil)
	require.NoError(t, p.Refresh(context.Background()))
	assert.EqualValues(t, 2, rotations.Load())
	assert.Equal(t, provider.SerialHex(second.Leaf()), get(), "the handshake after rotation presents the new certificate")
}

func TestCloseIsIdempotentAndFinal(t *testing.T) {
	is := newIssuer()
	src := &watchingSource{fakeSource: &fakeSource{bundle: is.valid(t)}, changed: make(chan func(), 1)}
	p, err := provider.New(src, provider.WithLogger(quiet), provider.WithPollInterval(time.Millisecond))
	require.NoError(t, err)
	_, err = p.Bundle(context.Background())
	require.NoError(t, err)
	require.NoError(t, p.Close())
	require.NoError(t, p.Close())
	_, err = p.Bundle(context.Background())
	require.ErrorIs(t, err, provider.ErrClosed)
	_, err = p.GetClientCertificate(&tls.CertificateRequestInfo{})
	require.ErrorIs(t, err, provider.ErrClosed)
	require.ErrorIs(t, p.Refresh(context.Background()), provider.ErrClosed)
	goleak.VerifyNone(t)
}

func TestCloseAbortsFetchInFlight(t *testing.T) {
	src := &fakeSource{gate: make(chan struct{})}
	p, err := provider.New(src, provider.WithLogger(quiet))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { _, err := p.Bundle(context.Background()); done <- err }()
	require.Eventually(t, func() bool { return src.fetches.Load() == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, p.Close())
	require.ErrorIs(t, <-done, provider.ErrClosed)
	assert.EqualValues(t, 1, src.ctxErrs.Load())
	goleak.VerifyNone(t)
}

func TestHookMTLSClientConfigRaisesMinVersion(t *testing.T) {
	p := newProvider(t, &fakeSource{})
	cfg := &tls.Config{MinVersion: tls.VersionTLS10, Certificates: []tls.Certificate{{}}, ServerName: "x"}
	provider.HookMTLSClientConfig(cfg, p)
	assert.Equal(t, uint16(tls.VersionTLS12), cfg.MinVersion)
	assert.Nil(t, cfg.Certificates)
	assert.Equal(t, "x", cfg.ServerName)
	assert.NotNil(t, cfg.GetClientCertificate)
}

func providerFor(b *provider.Bundle) (*provider.Provider, error) {
	return provider.New(provider.Static(b), provider.WithLogger(quiet),
		provider.WithRequirements(provider.Requirements{ClientID: clientID}))
}

func TestSameIdentityNewVersionIsNotARotation(t *testing.T) {
	is := newIssuer()
	first := is.valid(t)
	src := &fakeSource{bundle: first}
	var rotations atomic.Int64
	p := newProvider(t, src, provider.OnRotated(func(_, _ *provider.Bundle) { rotations.Add(1) }))
	_, err := p.Bundle(context.Background())
	require.NoError(t, err)

	again := *first
	again.Version = "v2"
	src.set(&again, nil)
	require.NoError(t, p.Refresh(context.Background()))
	b, err := p.Bundle(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "v2", b.Version, "the new version is adopted")
	assert.EqualValues(t, 1, rotations.Load(), "same certificate and key: no rotation hook")
}

func TestChangeNoticeNeverRacesAnOlderFetch(t *testing.T) {
	is := newIssuer()
	a, b, c := is.valid(t), is.valid(t), is.valid(t)
	src := &watchingSource{fakeSource: &fakeSource{bundle: a}, changed: make(chan func(), 1)}
	p := newProvider(t, src, provider.WithPollInterval(time.Hour))
	_, err := p.Bundle(context.Background())
	require.NoError(t, err)
	notify := <-src.changed

	// A refresh reads b, then stalls (a slow Vault).
	gate := make(chan struct{})
	src.mu.Lock()
	src.bundle, src.gate = b, gate
	src.mu.Unlock()
	refreshed := make(chan error, 1)
	go func() { refreshed <- p.Refresh(context.Background()) }()
	require.Eventually(t, func() bool { return src.fetches.Load() == 2 }, 5*time.Second, time.Millisecond)

	// Meanwhile the material changes to c and the watcher says so.
	src.set(c, nil)
	wanted := provider.WantedAttempts(p)
	notify()
	require.Eventually(t, func() bool { return provider.WantedAttempts(p) > wanted }, 5*time.Second, time.Millisecond,
		"the notice asks for an attempt newer than the one in flight")
	assert.EqualValues(t, 2, src.fetches.Load(), "the notice waits for the older fetch")

	close(gate)
	require.NoError(t, <-refreshed)
	require.Eventually(t, func() bool {
		got, err := p.Bundle(context.Background())
		return err == nil && got == c
	}, 5*time.Second, time.Millisecond, "the newest material is served last")
	assert.EqualValues(t, 3, src.fetches.Load())
}

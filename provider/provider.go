package provider

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// state is what the hot path reads: one atomic pointer load and one atomic
// flag. expired is set by a timer armed at NotAfter, because reading the
// clock on every handshake would cost more than everything else on the hot
// path. Every other path (Bundle, Refresh, the background loop, which always
// wakes at NotAfter) also compares NotAfter with the wall clock and sets the
// flag, so a late timer or a wall-clock jump is caught at the latest at the
// loop's wake-up at NotAfter.
type state struct {
	bundle   *Bundle
	cert     *tls.Certificate
	notAfter int64 // unix nanoseconds of the leaf's NotAfter
	expired  atomic.Bool
	timer    *time.Timer
}

// Provider caches, validates and rotates the client identity a
// [CertificateSource] produces. Create it with [New]; it is safe for
// concurrent use. New does no I/O: the first caller (or [Provider.Refresh])
// loads the first bundle, after which a background goroutine polls and
// refreshes until [Provider.Close].
type Provider struct {
	src CertificateSource
	cfg config
	log *slog.Logger

	cur    atomic.Pointer[state]
	closed atomic.Bool
	sf     singleflight.Group
	// fakeClock is set when WithClock replaced time.Now: the hot path then
	// compares with that clock instead of trusting the expiry timer.
	fakeClock bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // refresh now (a Watcher saw a change)
	replan chan struct{} // the served bundle changed: recompute the timer

	fetchMu sync.Mutex // held for the duration of each fetch

	mu          sync.Mutex
	stopped     bool // set under mu by Close; no wg.Add after it
	failures    int
	lastErr     error
	lastAttempt time.Time
	lastSuccess time.Time
	retryAt     time.Time
	listeners   map[uint64]func(old, new *Bundle)
	nextID      uint64
}

// New returns a Provider for src. It starts one goroutine (two when src
// implements [Watcher]) and calls no Fetch: the first bundle is loaded by the
// first caller. A Watcher's Watch starts at once and may do its own I/O (a
// file source stats and hashes its files).
func New(src CertificateSource, opts ...Option) (*Provider, error) {
	if src == nil {
		return nil, errors.New("provider: nil source")
	}
	cfg := config{
		pollInterval:   DefaultPollInterval,
		refreshBefore:  DefaultRefreshBefore,
		warnBefore:     DefaultWarnBefore,
		initialBackoff: DefaultInitialBackoff,
		maxBackoff:     DefaultMaxBackoff,
		fetchTimeout:   DefaultFetchTimeout,
		jitter:         DefaultJitter,
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	fake := cfg.now != nil
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if cfg.req.Now == nil {
		cfg.req.Now = cfg.now
	}
	p := &Provider{
		src:       src,
		cfg:       cfg,
		log:       cfg.logger.With("component", "knotmtls/provider"),
		kick:      make(chan struct{}, 1),
		replan:    make(chan struct{}, 1),
		listeners: map[uint64]func(old, new *Bundle){},
		fakeClock: fake,
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.loop()
	if w, ok := src.(Watcher); ok {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if err := w.Watch(p.ctx, p.poke); err != nil && p.ctx.Err() == nil {
				p.log.Warn("source watch stopped; relying on polling", "error", err)
			}
		}()
	}
	return p, nil
}

// poke asks the background loop to refresh now; it never blocks.
func (p *Provider) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// GetClientCertificate is the tls.Config hook. When a valid bundle is cached
// it is an atomic load and a clock read: no I/O, no lock, no allocation. Only
// when nothing valid is cached does it refresh, bounded by the handshake's
// context.
func (p *Provider) GetClientCertificate(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if s := p.cur.Load(); s != nil && !s.expired.Load() && !p.closed.Load() &&
		(!p.fakeClock || p.cfg.now().UnixNano() < s.notAfter) {
		return s.cert, nil
	}
	var ctx context.Context
	if cri != nil {
		ctx = cri.Context() // nil outside a real handshake
	}
	if ctx == nil {
		ctx = context.Background()
	}
	s, err := p.load(ctx)
	if err != nil {
		return nil, err
	}
	return s.cert, nil
}

// Bundle returns the current valid bundle, loading it first if needed.
func (p *Provider) Bundle(ctx context.Context) (*Bundle, error) {
	s, err := p.load(ctx)
	if err != nil {
		return nil, err
	}
	return s.bundle, nil
}

// Certificate returns the current bundle as a tls.Certificate.
func (p *Provider) Certificate(ctx context.Context) (*tls.Certificate, error) {
	s, err := p.load(ctx)
	if err != nil {
		return nil, err
	}
	return s.cert, nil
}

func (p *Provider) valid(s *state) bool {
	if s == nil || s.expired.Load() {
		return false
	}
	if p.cfg.now().UnixNano() >= s.notAfter {
		s.expired.Store(true) // the timer was late or the clock jumped
		return false
	}
	return true
}

// newState builds the served state for b and arms its expiry timer.
func (p *Provider) newState(b *Bundle) *state {
	s := &state{bundle: b, cert: b.TLSCertificate(), notAfter: b.NotAfter.UnixNano()}
	if !p.fakeClock {
		s.timer = time.AfterFunc(time.Until(b.NotAfter), func() { s.expired.Store(true) })
	}
	return s
}

// load returns a valid state, refreshing when there is none. While failures
// back off, it answers with the last error instead of hitting the source.
func (p *Provider) load(ctx context.Context) (*state, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	if s := p.cur.Load(); p.valid(s) {
		return s, nil
	}
	p.mu.Lock()
	lastErr, retryAt := p.lastErr, p.retryAt
	p.mu.Unlock()
	if lastErr != nil && p.cfg.now().Before(retryAt) {
		return nil, fmt.Errorf("%w (next attempt in %s): %w", ErrNoValidBundle,
			retryAt.Sub(p.cfg.now()).Round(time.Millisecond), lastErr)
	}
	s, err := p.refresh(ctx, false)
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrNoValidBundle, err)
	}
	if !p.valid(s) {
		return nil, fmt.Errorf("%w: %s has expired and the source offers nothing newer", ErrNoValidBundle, s.bundle)
	}
	return s, nil
}

// Refresh fetches from the source now (sharing any refresh in flight) and
// returns the outcome. On failure the last good bundle keeps being served.
func (p *Provider) Refresh(ctx context.Context) error {
	if p.closed.Load() {
		return ErrClosed
	}
	_, err := p.refresh(ctx, true)
	return err
}

// refresh runs the shared refresh: loads, polls and Refresh calls all join
// one flight, so the source sees one Fetch at a time. poll means "check the
// source even though the cached bundle is valid"; a load that finds a valid
// bundle (one that landed while it waited to start) returns it without a
// fetch. The shared work runs on the provider's context, not the caller's: a
// caller that gives up stops waiting but does not abort it for the others.
func (p *Provider) refresh(ctx context.Context, poll bool) (*state, error) {
	return p.refreshKey(ctx, poll, "refresh")
}

// refreshKey is refresh with an explicit single-flight key. A Watcher's
// change notice uses its own key so that it never joins a flight that
// started before the change and would read the old material; fetchMu still
// runs it after that flight, never beside it.
func (p *Provider) refreshKey(ctx context.Context, poll bool, key string) (*state, error) {
	values := context.WithoutCancel(ctx) // keep trace values, drop cancellation
	ch := p.sf.DoChan(key, func() (any, error) {
		p.mu.Lock()
		if p.stopped {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		p.wg.Add(1)
		p.mu.Unlock()
		defer p.wg.Done()
		// One fetch at a time, also across keys: a change notice waits for
		// an older flight instead of racing it (which could store the older
		// bundle last).
		p.fetchMu.Lock()
		defer p.fetchMu.Unlock()
		if !poll {
			if s := p.cur.Load(); p.valid(s) {
				return s, nil
			}
		}
		return p.doRefresh(values, poll)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*state), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("provider: gave up waiting for refresh: %w", ctx.Err())
	}
}

func (p *Provider) doRefresh(values context.Context, poll bool) (*state, error) {
	ctx, cancel := context.WithTimeout(values, p.cfg.fetchTimeout)
	defer cancel()
	stop := context.AfterFunc(p.ctx, cancel) // Close aborts the fetch
	defer stop()

	p.mu.Lock()
	p.lastAttempt = p.cfg.now()
	p.mu.Unlock()

	cur := p.cur.Load()
	if poll && cur != nil {
		if v, ok := p.src.(Versioner); ok {
			version, err := v.Version(ctx)
			if err != nil {
				return nil, p.failed(fmt.Errorf("provider: version check: %w", err))
			}
			if version == cur.bundle.Version {
				p.succeeded()
				return cur, nil
			}
		}
	}
	b, err := p.src.Fetch(ctx)
	if err != nil {
		return nil, p.failed(fmt.Errorf("provider: fetch: %w", err))
	}
	if b == nil {
		return nil, p.failed(&CheckError{Err: ErrNoCertificate, Detail: "source returned no bundle"})
	}
	if b.NotAfter.IsZero() && b.Leaf() != nil {
		b.NotAfter = b.Leaf().NotAfter
	}
	if err := p.cfg.req.CheckBundle(b); err != nil {
		return nil, p.failed(fmt.Errorf("provider: refusing bundle version %q: %w", b.Version, err))
	}
	if cur != nil && sameBundle(cur.bundle, b) {
		p.succeeded()
		return cur, nil
	}
	if cur != nil && sameIdentity(cur.bundle, b) {
		// Same certificates and key under a new version (a re-written
		// secret, a staged key): adopt the version quietly, no rotation.
		next := p.newState(b)
		if old := p.cur.Swap(next); old != nil && old.timer != nil {
			old.timer.Stop()
		}
		p.succeeded()
		return next, nil
	}
	next := p.newState(b)
	if old := p.cur.Swap(next); old != nil && old.timer != nil {
		old.timer.Stop()
	}
	p.succeeded()
	var old *Bundle
	if cur != nil {
		old = cur.bundle
	}
	p.log.Info("client certificate loaded", bundleAttrs(b)...)
	p.rotated(old, b)
	select { // let the loop re-plan around the new NotAfter
	case p.replan <- struct{}{}:
	default:
	}
	return next, nil
}

func sameBundle(a, b *Bundle) bool {
	if a.Version != b.Version || len(a.Chain) != len(b.Chain) {
		return false
	}
	for i := range a.Chain {
		if !a.Chain[i].Equal(b.Chain[i]) {
			return false
		}
	}
	return true
}

// sameIdentity reports whether two bundles present the same chain with the
// same public key, whatever their versions.
func sameIdentity(a, b *Bundle) bool {
	if len(a.Chain) != len(b.Chain) {
		return false
	}
	for i := range a.Chain {
		if !a.Chain[i].Equal(b.Chain[i]) {
			return false
		}
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pa, ok := a.Key.Public().(equaler)
	return ok && pa.Equal(b.Key.Public())
}

func (p *Provider) succeeded() {
	p.mu.Lock()
	if p.failures > 0 {
		p.log.Info("certificate refresh recovered", "after_failures", p.failures)
	}
	p.failures, p.lastErr, p.retryAt = 0, nil, time.Time{}
	p.lastSuccess = p.cfg.now()
	p.mu.Unlock()
}

func (p *Provider) failed(err error) error {
	if p.ctx.Err() != nil {
		return ErrClosed
	}
	p.mu.Lock()
	p.failures++
	n := p.failures
	delay := p.backoff(n)
	p.lastErr = err
	p.retryAt = p.cfg.now().Add(delay)
	p.mu.Unlock()
	attrs := []any{"error", err, "failures", n, "retry_in", delay}
	if s := p.cur.Load(); s != nil {
		attrs = append(attrs, "serving", s.bundle.String(), "serving_valid", p.valid(s))
	}
	p.log.Warn("certificate refresh failed", attrs...)
	for _, fn := range p.cfg.onFailed {
		fn(err, n, delay)
	}
	return err
}

// backoff returns initial*2^(n-1), capped, with jitter.
func (p *Provider) backoff(n int) time.Duration {
	d := p.cfg.initialBackoff
	for i := 1; i < n && d < p.cfg.maxBackoff; i++ {
		d *= 2
	}
	if d > p.cfg.maxBackoff {
		d = p.cfg.maxBackoff
	}
	return p.jittered(d)
}

func (p *Provider) jittered(d time.Duration) time.Duration {
	if p.cfg.jitter == 0 || d <= 0 {
		return d
	}
	f := 1 + p.cfg.jitter*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}

func (p *Provider) rotated(old, b *Bundle) {
	for _, fn := range p.cfg.onRotated {
		fn(old, b)
	}
	p.mu.Lock()
	fns := make([]func(old, new *Bundle), 0, len(p.listeners))
	for _, fn := range p.listeners {
		fns = append(fns, fn)
	}
	p.mu.Unlock()
	for _, fn := range fns {
		fn(old, b)
	}
}

// Notify registers fn to be called after every rotation (including the first
// load) until stop is called. Transports use it to close idle connections so
// the next request handshakes with the new certificate. fn must not block.
func (p *Provider) Notify(fn func(old, new *Bundle)) (stop func()) {
	p.mu.Lock()
	id := p.nextID
	p.nextID++
	p.listeners[id] = fn
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(p.listeners, id)
		p.mu.Unlock()
	}
}

// Status is a snapshot of a Provider for health checks and metrics.
type Status struct {
	Bundle      *Bundle   // served bundle, nil before the first load
	Valid       bool      // Bundle is within its validity period
	Failures    int       // consecutive failed refreshes
	LastError   error     // error of the last failed refresh, nil after a success
	LastAttempt time.Time // start of the last refresh
	LastSuccess time.Time // end of the last successful refresh
	RetryAt     time.Time // earliest next attempt after a failure
}

// Status returns a snapshot of the provider's state.
func (p *Provider) Status() Status {
	s := p.cur.Load()
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{Failures: p.failures, LastError: p.lastErr, LastAttempt: p.lastAttempt,
		LastSuccess: p.lastSuccess, RetryAt: p.retryAt}
	if s != nil {
		st.Bundle, st.Valid = s.bundle, p.valid(s)
	}
	return st
}

// Close stops the background goroutines, aborts a refresh in flight and
// waits for all of them. It is idempotent; afterwards every getter returns
// [ErrClosed].
func (p *Provider) Close() error {
	p.closed.Store(true)
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	if s := p.cur.Load(); s != nil && s.timer != nil {
		s.timer.Stop()
	}
	return nil
}

// loop polls for rotation and refreshes ahead of expiry. Before the first
// bundle is loaded it only waits: loading is driven by callers.
func (p *Provider) loop() {
	defer p.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait, armed := p.nextWait()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		var fire <-chan time.Time
		if armed {
			timer.Reset(wait)
			fire = timer.C
		}
		select {
		case <-p.ctx.Done():
			return
		case <-p.replan:
			continue
		case <-p.kick:
			if p.cur.Load() != nil {
				_, _ = p.refreshKey(p.ctx, true, "watch")
				p.valid(p.cur.Load())
			}
			continue // expiry warnings follow the poll interval, not file events
		case <-fire:
		}
		if p.cur.Load() == nil {
			continue
		}
		_, _ = p.refresh(p.ctx, true) // failures are logged and hooked
		p.valid(p.cur.Load())         // re-check expiry against the wall clock
		p.checkExpiry()
	}
}

// nextWait plans the next background refresh: after a failure, the backoff;
// otherwise the poll interval, brought forward to the refresh-ahead point and
// never past NotAfter.
func (p *Provider) nextWait() (time.Duration, bool) {
	s := p.cur.Load()
	if s == nil {
		return 0, false
	}
	now := p.cfg.now()
	p.mu.Lock()
	failing, retryAt := p.failures > 0, p.retryAt
	p.mu.Unlock()
	if failing {
		return max(retryAt.Sub(now), time.Millisecond), true
	}
	wait := p.jittered(p.cfg.pollInterval)
	notAfter := s.bundle.NotAfter
	refreshAt := notAfter.Add(-p.jittered(p.cfg.refreshBefore))
	if d := refreshAt.Sub(now); d > 0 && d < wait {
		wait = d
	}
	if d := notAfter.Sub(now); d > 0 && d < wait {
		wait = d
	}
	return max(wait, time.Millisecond), true
}

func (p *Provider) checkExpiry() {
	s := p.cur.Load()
	if s == nil {
		return
	}
	remaining := s.bundle.NotAfter.Sub(p.cfg.now())
	if remaining >= p.cfg.warnBefore {
		return
	}
	if remaining <= 0 {
		p.log.Error("client certificate expired; no valid certificate to present", bundleAttrs(s.bundle)...)
	} else {
		p.log.Warn("client certificate nearing expiry", append(bundleAttrs(s.bundle), "remaining", remaining.Round(time.Second))...)
	}
	for _, fn := range p.cfg.onNearing {
		fn(s.bundle, remaining)
	}
}

func bundleAttrs(b *Bundle) []any {
	leaf := b.Leaf()
	return []any{"cn", leaf.Subject.CommonName, "serial", SerialHex(leaf),
		"not_after", leaf.NotAfter.UTC(), "version", b.Version}
}

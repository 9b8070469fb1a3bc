package provider

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"golang.org/x/sync/singleflight"
)

// now is the wall clock every validity decision reads. Tests replace it
// (export_test.go); nothing in the exported API does.
var now = time.Now

// recheck bounds how long the hot path trusts its hint without reading the
// wall clock, and so how long a wall-clock step takes to be noticed there.
// hintGuard is the remaining lifetime below which no hint is given: the last
// stretch before NotAfter is decided by reading the clock on every call, so a
// late timer cannot make an expired certificate look valid.
var (
	recheck   = time.Second
	hintGuard = 100 * time.Millisecond
)

// state is one served bundle. The hot path reads hint alone: true means the
// clock was read recently, the bundle was valid then, and a timer will
// clear hint before the bundle can stop being valid (at most recheck later,
// and at least hintGuard before NotAfter). A false hint only means "read the
// clock": it never latches a refusal, so a bundle valid by the clock is
// served after any sequence of clock steps.
type state struct {
	bundle    *Bundle
	cert      *tls.Certificate
	notBefore time.Time // the leaf's, never the Bundle's NotAfter field
	notAfter  time.Time
	hint      atomic.Bool
	armed     atomic.Bool  // the timer is set to clear hint
	timer     *time.Timer  // clears hint and armed
	warned    atomic.Int32 // nearing-expiry tiers already reported
}

func newState(b *Bundle) *state {
	leaf := b.Leaf()
	s := &state{bundle: b, cert: b.TLSCertificate(), notBefore: leaf.NotBefore, notAfter: leaf.NotAfter}
	s.timer = time.AfterFunc(time.Hour, func() { s.hint.Store(false); s.armed.Store(false) })
	s.timer.Stop()
	return s
}

func (s *state) validAt(t time.Time) bool {
	return !t.Before(s.notBefore) && t.Before(s.notAfter)
}

// check reads the clock and reports whether s may be served now. When it may
// and no timer is armed, it sets the hint and arms the timer that clears it.
func (s *state) check() bool {
	t := now()
	if !s.validAt(t) {
		return false
	}
	left := s.notAfter.Sub(t)
	if left >= hintGuard && s.armed.CompareAndSwap(false, true) {
		s.hint.Store(true)
		s.timer.Reset(min(recheck, left/2))
	}
	return true
}

// Provider caches, validates and rotates the client identity a
// [CertificateSource] produces. Create it with [New]; it is safe for
// concurrent use. New does no I/O: the first caller (or [Provider.Refresh],
// or a [Watcher]'s first notice) loads the first bundle, after which a
// background goroutine polls and refreshes until [Provider.Close].
type Provider struct {
	src CertificateSource
	cfg config
	log *slog.Logger

	cur    atomic.Pointer[state]
	closed atomic.Bool

	// One flight key: the source sees one attempt at a time. gen counts the
	// attempts that went to the source; want is the highest gen a caller
	// needs (see fetch).
	sf   singleflight.Group
	gen  atomic.Uint64
	want atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{} // the loop re-plans; with kicked set it refreshes first
	kicked atomic.Bool   // a Watcher saw a change

	mu        sync.Mutex // guards what follows; closed is set under it, so no wg.Add follows Close
	health    health
	bo        *backoff.ExponentialBackOff
	listeners map[uint64]listener
	nextID    uint64

	attemptListeners map[uint64]attemptListener // see NotifyAttempt
}

// health is the outcome of the attempts so far, guarded by Provider.mu.
type health struct {
	failures    int
	lastErr     error
	lastAttempt time.Time
	lastSuccess time.Time
	retryAt     time.Time
}

type listener struct {
	h  *hook
	fn func(old, new *Bundle)
}

// RotationNotifier is implemented by certificate getters that announce
// rotations; [*Provider] does. knotclient subscribes through it to close idle
// connections when the certificate changes, so the next request handshakes
// with the new one. Notify calls fn after every rotation (the first load
// included, with old nil) until stop is called; fn must not block.
type RotationNotifier interface {
	Notify(fn func(old, new *Bundle)) (stop func())
}

var (
	_ RotationNotifier        = (*Provider)(nil)
	_ ClientCertificateGetter = (*Provider)(nil)
)

// New returns a Provider for src. It starts one goroutine (two when src
// implements [Watcher]) and calls no Fetch: the first bundle is loaded by the
// first caller. A Watcher's Watch starts at once and may do its own I/O (a
// file source stats and hashes its files); its first notice loads the first
// bundle.
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
		if o == nil {
			return nil, errors.New("provider: nil option")
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if cfg.req.Now == nil {
		cfg.req.Now = func() time.Time { return now() }
	}
	p := &Provider{
		src:  src,
		cfg:  cfg,
		log:  cfg.logger.With("component", "knotmtls/provider"),
		wake: make(chan struct{}, 1),
		bo: &backoff.ExponentialBackOff{
			InitialInterval:     cfg.initialBackoff,
			RandomizationFactor: cfg.jitter,
			Multiplier:          2,
			MaxInterval:         cfg.maxBackoff,
		},
		listeners: map[uint64]listener{},
	}
	p.bo.Reset()
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

// poke is the Watcher's change notice: the loop refreshes now, backoff or
// not, also before the first load. It never blocks.
func (p *Provider) poke() {
	p.kicked.Store(true)
	p.signal()
}

// signal wakes the loop to re-plan; it never blocks.
func (p *Provider) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// GetClientCertificate is the tls.Config hook. While a valid bundle is
// cached it is three atomic loads: no I/O, no lock, no clock read, no
// allocation. Otherwise it reads the clock and, when nothing valid is cached,
// loads (bounded by the handshake's context and by the backoff).
func (p *Provider) GetClientCertificate(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if s := p.cur.Load(); s != nil && s.hint.Load() && !p.closed.Load() {
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

// load returns a state valid by the clock, refreshing when there is none.
// While failures back off, it answers with the last error instead of going
// to the source.
func (p *Provider) load(ctx context.Context) (*state, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	if s := p.cur.Load(); s != nil && s.check() {
		return s, nil
	}
	p.mu.Lock()
	lastErr, retryAt := p.health.lastErr, p.health.retryAt
	p.mu.Unlock()
	if t := now(); lastErr != nil && t.Before(retryAt) {
		return nil, fmt.Errorf("%w (next attempt in %s): %w", ErrNoValidBundle,
			retryAt.Sub(t).Round(time.Millisecond), lastErr)
	}
	s, err := p.fetch(ctx, false)
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrNoValidBundle, err)
	}
	if !s.check() { // the clock moved on while the attempt ran
		return nil, fmt.Errorf("%w: %s is not valid now", ErrNoValidBundle, s.bundle)
	}
	return s, nil
}

// Refresh asks the source now and returns the outcome of an attempt that
// started after Refresh was called: it may wait for an attempt in flight to
// end first, so a caller that just changed the material always sees it. It
// does not wait for the backoff. On failure the last good bundle keeps being
// served while it is valid.
func (p *Provider) Refresh(ctx context.Context) error {
	if p.closed.Load() {
		return ErrClosed
	}
	_, err := p.fetch(ctx, true)
	return err
}

// outcome is the result of one shared attempt. gen is 0 when the attempt
// served the cached bundle without asking the source.
type outcome struct {
	gen   uint64
	state *state
	err   error
}

// fetch joins the shared attempt, or starts it. With fresh set, only an
// attempt that asked the source after fetch was called counts: fetch raises
// want so that the next attempt goes to the source, and waits for that one
// if the attempt in flight started earlier. Without fresh, an attempt that
// finds a valid bundle (one that landed while it waited to start) returns it
// without asking the source, so a cold storm costs one read.
//
// The attempt runs on the provider's context, not the caller's: a caller that
// gives up stops waiting but does not abort it for the others.
func (p *Provider) fetch(ctx context.Context, fresh bool) (*state, error) {
	after := p.gen.Load()
	if fresh {
		for w := p.want.Load(); w <= after && !p.want.CompareAndSwap(w, after+1); w = p.want.Load() {
		}
	}
	values := context.WithoutCancel(ctx) // keep trace values, drop cancellation
	for {
		ch := p.sf.DoChan("attempt", func() (any, error) { return p.attempt(values), nil })
		select {
		case r := <-ch:
			o := r.Val.(*outcome)
			if fresh && o.gen <= after && !errors.Is(o.err, ErrClosed) {
				continue // began before this call: the next one goes to the source
			}
			return o.state, o.err
		case <-ctx.Done():
			return nil, fmt.Errorf("provider: gave up waiting for refresh: %w", ctx.Err())
		}
	}
}

// attempt is the shared work of one flight.
func (p *Provider) attempt(values context.Context) *outcome {
	p.mu.Lock()
	if p.closed.Load() {
		p.mu.Unlock()
		return &outcome{err: ErrClosed}
	}
	p.wg.Add(1)
	p.mu.Unlock()
	defer p.wg.Done()

	if s := p.cur.Load(); s != nil && p.want.Load() <= p.gen.Load() && s.check() {
		return &outcome{state: s}
	}
	gen := p.gen.Add(1)
	ctx, cancel := context.WithTimeout(values, p.cfg.fetchTimeout)
	defer cancel()
	stop := context.AfterFunc(p.ctx, cancel) // Close aborts the attempt
	defer stop()

	start := now()
	p.mu.Lock()
	p.health.lastAttempt = start
	p.mu.Unlock()
	s, err := p.ask(ctx)
	if err != nil {
		err = p.failed(err)
		if !errors.Is(err, ErrClosed) {
			p.attempted(Attempt{Err: err, Duration: now().Sub(start)})
		}
		return &outcome{gen: gen, err: err}
	}
	p.succeeded()
	p.attempted(Attempt{Duration: now().Sub(start)})
	return &outcome{gen: gen, state: s}
}

// ask asks the source: its cheap version first when it has one and a bundle
// is served, the full bundle only when that version differs. Only a bundle
// valid by the clock is a success.
func (p *Provider) ask(ctx context.Context) (*state, error) {
	cur := p.cur.Load()
	if v, ok := p.src.(Versioner); ok && cur != nil {
		version, err := p.version(ctx, v)
		if err != nil {
			return nil, fmt.Errorf("provider: version check: %w", err)
		}
		if version == cur.bundle.Version {
			if cur.check() {
				return cur, nil
			}
			return nil, unchanged(cur)
		}
	}
	b, err := p.fetchBundle(ctx)
	if err != nil {
		return nil, fmt.Errorf("provider: fetch: %w", err)
	}
	if b == nil || b.Leaf() == nil {
		return nil, &CheckError{Err: ErrNoCertificate, Detail: "source returned no bundle"}
	}
	if err := p.cfg.req.CheckBundle(b); err != nil {
		return nil, fmt.Errorf("provider: refusing bundle version %q: %w", b.Version, err)
	}
	if cur != nil && sameBundle(cur.bundle, b) {
		if cur.check() {
			return cur, nil
		}
		return nil, unchanged(cur)
	}
	next := newState(b)
	next.check()
	old := p.swap(next)
	if old != nil && sameIdentity(old.bundle, b) {
		// Same certificates and key under a new version (a re-written
		// secret, a staged key): adopt the version quietly, no rotation.
		return next, nil
	}
	var oldBundle *Bundle
	if old != nil {
		oldBundle = old.bundle
	}
	p.log.Info("client certificate loaded", bundleAttrs(b)...)
	p.rotated(oldBundle, b)
	return next, nil
}

// unchanged is the error for a served bundle that is not valid by the clock
// while the source offers nothing else.
func unchanged(s *state) error {
	t := now()
	if t.Before(s.notBefore) {
		return &CheckError{Err: ErrNotYetValid, Detail: fmt.Sprintf(
			"certificate serial %s is valid from %s (now %s) and the source offers nothing else: check the clock",
			SerialHex(s.bundle.Leaf()), s.notBefore.UTC().Format(time.RFC3339), t.UTC().Format(time.RFC3339))}
	}
	return &CheckError{Err: ErrExpired, Detail: fmt.Sprintf(
		"certificate serial %s expired at %s and the source still holds version %q: store a renewed certificate",
		SerialHex(s.bundle.Leaf()), s.notAfter.UTC().Format(time.RFC3339), s.bundle.Version)}
}

// version and fetchBundle call the source, turning a panic into an error so
// that it cannot crash the process from inside the shared attempt.
func (p *Provider) version(ctx context.Context, v Versioner) (version string, err error) {
	defer recoverSource(&err)
	return v.Version(ctx)
}

func (p *Provider) fetchBundle(ctx context.Context) (b *Bundle, err error) {
	defer recoverSource(&err)
	return p.src.Fetch(ctx)
}

// ErrSourcePanicked is wrapped by the error for a source whose Fetch or
// Version panicked; the Provider recovers and backs off as for any failure.
var ErrSourcePanicked = errors.New("provider: source panicked")

func recoverSource(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %T", ErrSourcePanicked, r)
	}
}

// swap makes next the served state and retires the old one.
func (p *Provider) swap(next *state) (old *state) {
	old = p.cur.Swap(next)
	if old != nil {
		old.timer.Stop()
	}
	p.signal() // the loop re-plans around the new NotAfter
	return old
}

func sameBundle(a, b *Bundle) bool {
	return a.Version == b.Version && sameChain(a, b)
}

func sameChain(a, b *Bundle) bool {
	if len(a.Chain) != len(b.Chain) {
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
	if !sameChain(a, b) {
		return false
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pa, ok := a.Key.Public().(equaler)
	return ok && pa.Equal(b.Key.Public())
}

func (p *Provider) succeeded() {
	p.mu.Lock()
	if p.health.failures > 0 {
		p.log.Info("certificate refresh recovered", "after_failures", p.health.failures)
	}
	p.health.failures, p.health.lastErr, p.health.retryAt = 0, nil, time.Time{}
	p.health.lastSuccess = now()
	p.bo.Reset()
	p.mu.Unlock()
}

// failed records a failed attempt: the next one waits for the next backoff
// step (1 s doubling to 5 min by default, with jitter), or for the wait the
// error asks for (see [WithBackoff]) when that is longer, up to the cap.
// Only a success resets it; polls do not.
func (p *Provider) failed(err error) error {
	if p.ctx.Err() != nil {
		return ErrClosed
	}
	p.mu.Lock()
	p.health.failures++
	n := p.health.failures
	delay := p.bo.NextBackOff()
	if hint := retryAfter(err); hint > delay {
		delay = max(delay, min(hint, p.cfg.maxBackoff))
	}
	p.health.lastErr = err
	p.health.retryAt = now().Add(delay)
	p.mu.Unlock()
	p.signal() // the loop waits for retryAt, not the poll interval
	attrs := []any{"error", err, "failures", n, "retry_in", delay}
	if s := p.cur.Load(); s != nil {
		attrs = append(attrs, "serving", s.bundle.String(), "serving_valid", s.validAt(now()))
	}
	p.log.Warn("certificate refresh failed", attrs...)
	for _, h := range p.cfg.onFailed {
		p.run(h.h, func() { h.fn(err, n, delay) })
	}
	return err
}

// retryAfter is the wait the store asked for (a 429's Retry-After): the
// RetryAfter() of the first error in err's chain that has that method, 0
// when none does or it asks for no wait.
func retryAfter(err error) time.Duration {
	var h interface{ RetryAfter() time.Duration }
	if errors.As(err, &h) {
		return max(h.RetryAfter(), 0)
	}
	return 0
}

func (p *Provider) jittered(d time.Duration) time.Duration {
	if p.cfg.jitter == 0 || d <= 0 {
		return d
	}
	f := 1 + p.cfg.jitter*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}

func (p *Provider) rotated(old, b *Bundle) {
	for _, h := range p.cfg.onRotated {
		p.run(h.h, func() { h.fn(old, b) })
	}
	p.mu.Lock()
	ls := make([]listener, 0, len(p.listeners))
	for _, l := range p.listeners {
		ls = append(ls, l)
	}
	p.mu.Unlock()
	for _, l := range ls {
		p.run(l.h, func() { l.fn(old, b) })
	}
}

// run calls a user hook, recovering a panic: the first panic of each hook is
// logged with the hook's name, and the provider carries on.
func (p *Provider) run(h *hook, fn func()) {
	defer func() {
		if r := recover(); r != nil && h.panicked.CompareAndSwap(false, true) {
			p.log.Error("provider hook panicked; recovered, further panics of this hook are not logged",
				"hook", h.kind, "func", h.name, "panic", shorten(fmt.Sprint(r), 200))
		}
	}()
	fn()
}

// Notify registers fn to be called after every rotation (including the first
// load) until stop is called; it implements [RotationNotifier]. Transports
// use it to close idle connections so the next request handshakes with the
// new certificate. fn must not block; a panic in it is recovered and logged.
// Notify panics when fn is nil, at the call that registers it, as
// signal.Notify does for a nil channel: a nil listener is a programming
// error that must not surface later inside a refresh.
func (p *Provider) Notify(fn func(old, new *Bundle)) (stop func()) {
	if fn == nil {
		panic("provider: Notify called with a nil func")
	}
	p.mu.Lock()
	id := p.nextID
	p.nextID++
	p.listeners[id] = listener{h: newHook("Notify", fn), fn: fn}
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(p.listeners, id)
		p.mu.Unlock()
	}
}

// String describes the provider for logs: the bundle it serves, whether it
// is valid, and the consecutive failures. It reads its state safely, never
// key material.
func (p *Provider) String() string {
	if p == nil {
		return "provider(nil)"
	}
	st := p.Status()
	if st.Bundle == nil {
		return fmt.Sprintf("provider(no bundle, failures=%d, closed=%t)", st.Failures, st.Closed)
	}
	return fmt.Sprintf("provider(%s, valid=%t, failures=%d, closed=%t)", st.Bundle, st.Valid, st.Failures, st.Closed)
}

// Format prints [Provider.String] under every verb (%v, %+v, %#v, %s, ...):
// fmt would otherwise walk the provider's fields, racing with its
// goroutines.
func (p *Provider) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, p.String()) }

// Status is a snapshot of a Provider for health checks and metrics.
type Status struct {
	Bundle      *Bundle   // served bundle, nil before the first load
	Valid       bool      // Bundle is within its validity period by the clock
	Failures    int       // consecutive failed attempts; a success resets it
	LastError   error     // error of the last failed attempt, nil after a success
	LastAttempt time.Time // start of the last attempt that asked the source
	LastSuccess time.Time // end of the last successful attempt
	RetryAt     time.Time // earliest next background attempt after a failure
	Closed      bool      // Close was called
}

// Status returns a snapshot of the provider's state.
func (p *Provider) Status() Status {
	s := p.cur.Load()
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.health
	st := Status{Failures: h.failures, LastError: h.lastErr, LastAttempt: h.lastAttempt,
		LastSuccess: h.lastSuccess, RetryAt: h.retryAt, Closed: p.closed.Load()}
	if s != nil {
		st.Bundle, st.Valid = s.bundle, s.validAt(now())
	}
	return st
}

// Close stops the background goroutines, aborts an attempt in flight and
// waits for all of them. It is idempotent; afterwards every getter returns
// [ErrClosed].
func (p *Provider) Close() error {
	p.mu.Lock()
	p.closed.Store(true)
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	if s := p.cur.Load(); s != nil {
		s.timer.Stop()
	}
	return nil
}

// loop polls for rotation, refreshes ahead of expiry, retries after failures
// at the backoff's pace, and reports nearing expiry. Before the first attempt
// it only waits: loading is driven by callers and by a Watcher's notice.
func (p *Provider) loop() {
	defer p.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait, armed := p.nextWait()
		timer.Stop()
		var fire <-chan time.Time
		if armed {
			timer.Reset(wait)
			fire = timer.C
		}
		select {
		case <-p.ctx.Done():
			return
		case <-p.wake:
			if !p.kicked.Swap(false) {
				continue // re-plan only
			}
		case <-fire:
			if p.backingOff() {
				continue // a caller made the attempt this timer was for
			}
		}
		_, _ = p.fetch(p.ctx, true) // failures are logged and hooked
		p.checkExpiry()
	}
}

// backingOff reports whether the last attempt failed and its backoff has not
// run out yet.
func (p *Provider) backingOff() bool {
	t := now()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.health.failures > 0 && t.Before(p.health.retryAt)
}

// nextWait plans the next background attempt: after a failure, the backoff;
// otherwise the poll interval, brought forward to the refresh-ahead point and
// to NotAfter (where the attempt that notices expiry starts the backoff).
func (p *Provider) nextWait() (time.Duration, bool) {
	t := now()
	p.mu.Lock()
	h := p.health
	p.mu.Unlock()
	if h.failures > 0 {
		return max(h.retryAt.Sub(t), time.Millisecond), true
	}
	s := p.cur.Load()
	if s == nil {
		return 0, false
	}
	wait := p.jittered(p.cfg.pollInterval)
	refreshAt := s.notAfter.Add(-p.jittered(p.cfg.refreshBefore))
	if d := refreshAt.Sub(t); d > 0 && d < wait {
		wait = d
	}
	if d := s.notAfter.Sub(t); d > 0 && d < wait {
		wait = d
	}
	return max(wait, time.Millisecond), true
}

// expiredTier is the nearing-expiry tier of an expired certificate.
const expiredTier = 64

// expiryTier is 0 while remaining >= window, then 1 below the window, 2 below
// half of it, 3 below a quarter, and so on; expiredTier once remaining <= 0.
func expiryTier(remaining, window time.Duration) int32 {
	switch {
	case remaining <= 0:
		return expiredTier
	case remaining >= window:
		return 0
	}
	tier := int32(1)
	for t := window / 2; remaining < t && tier < expiredTier-1; t /= 2 {
		tier++
	}
	return tier
}

// checkExpiry logs and fires the nearing-expiry hooks when the served
// bundle's remaining lifetime has crossed a further threshold (see
// [OnNearingExpiry]): once per threshold per bundle, not at every poll.
func (p *Provider) checkExpiry() {
	s := p.cur.Load()
	if s == nil {
		return
	}
	remaining := s.notAfter.Sub(now())
	tier := expiryTier(remaining, p.cfg.warnBefore)
	for {
		seen := s.warned.Load()
		if tier <= seen {
			return
		}
		if s.warned.CompareAndSwap(seen, tier) {
			break
		}
	}
	if tier == expiredTier {
		p.log.Error("client certificate expired; no valid certificate to present", bundleAttrs(s.bundle)...)
	} else {
		p.log.Warn("client certificate nearing expiry", append(bundleAttrs(s.bundle), "remaining", remaining.Round(time.Second))...)
	}
	for _, h := range p.cfg.onNearing {
		p.run(h.h, func() { h.fn(s.bundle, remaining) })
	}
}

func bundleAttrs(b *Bundle) []any {
	leaf := b.Leaf()
	return []any{"cn", leaf.Subject.CommonName, "serial", SerialHex(leaf),
		"not_after", leaf.NotAfter.UTC(), "version", b.Version}
}

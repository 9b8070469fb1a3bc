package vaultsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// Defaults for an [Auth].
const (
	// DefaultLoginInitialBackoff is the wait after the first failed login.
	DefaultLoginInitialBackoff = time.Second
	// DefaultLoginMaxBackoff caps the wait between failed logins.
	DefaultLoginMaxBackoff = 5 * time.Minute
	// DefaultLoginTimeout bounds each login and each renewal request.
	DefaultLoginTimeout = 30 * time.Second
	// LoginBackoffJitter is the fraction by which a backoff delay is
	// shortened at random, so that a fleet does not retry in lock step.
	LoginBackoffJitter = 0.2
)

// Sentinel errors of [Auth]. Test them with errors.Is.
var (
	// ErrAuthClosed is returned by Start and Relogin after Close.
	ErrAuthClosed = errors.New("vaultsource: auth closed")
	// ErrAuthNotStarted is returned by Relogin before Start succeeded.
	ErrAuthNotStarted = errors.New("vaultsource: auth not started")
	// ErrAuthStarted is returned by a second Start.
	ErrAuthStarted = errors.New("vaultsource: auth already started")
	// ErrNoClientToken is wrapped by the error of a login whose response
	// carries no client token (for example a login that asks for MFA).
	ErrNoClientToken = errors.New("vaultsource: login response has no client token")
	// ErrEmptyToken is wrapped by the error of a token method whose token is
	// empty (an empty static token or an empty token file).
	ErrEmptyToken = errors.New("vaultsource: empty token")
)

// LoginError is the error of a failed login. It names the method and the
// reason for the login and wraps the cause (a Vault *api.ResponseError, a
// file error, [ErrNoClientToken], [ErrEmptyToken], a context error). It never
// contains a token, secret-id, role-id or password.
type LoginError struct {
	Method string // e.g. "approle", "kubernetes", "token file"
	Reason string // why the login happened: "start", "relogin", "expiring", ...
	Err    error  // the cause, never holding a credential
}

// Error formats the error on one line (Vault's multi-line API errors are
// folded).
func (e *LoginError) Error() string {
	cause := "<nil>"
	if e.Err != nil {
		cause = authOneLine(e.Err)
	}
	return fmt.Sprintf("vaultsource: login with %s (%s): %s", e.Method, e.Reason, cause)
}

// Unwrap returns the cause.
func (e *LoginError) Unwrap() error { return e.Err }

// authOneLine folds an error's text (Vault's API errors span lines) onto
// one line.
func authOneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// AuthEventKind says what an [AuthEvent] reports.
type AuthEventKind int

// Kinds of [AuthEvent].
const (
	// AuthEventLogin: a login succeeded and its token is set on the client.
	AuthEventLogin AuthEventKind = iota + 1
	// AuthEventLoginFailed: a login failed; the previous token stays set.
	AuthEventLoginFailed
	// AuthEventRenewal: the token was renewed.
	AuthEventRenewal
	// AuthEventExpiring: renewal stopped (the token reached its max TTL, is
	// not renewable, or renewing failed); a new login follows.
	AuthEventExpiring
)

// String names the kind: "login", "login failed", "renewal", "expiring".
func (k AuthEventKind) String() string {
	switch k {
	case AuthEventLogin:
		return "login"
	case AuthEventLoginFailed:
		return "login failed"
	case AuthEventRenewal:
		return "renewal"
	case AuthEventExpiring:
		return "expiring"
	}
	return fmt.Sprintf("AuthEventKind(%d)", int(k))
}

// AuthEvent is passed to the hooks registered with [OnAuthEvent]. It never
// carries the token.
type AuthEvent struct {
	Kind      AuthEventKind // what happened
	Method    string        // the auth method's name, e.g. "approle"
	Reason    string        // for logins: why the login happened
	TTL       time.Duration // for logins and renewals: the token's TTL, 0 = never expires
	Renewable bool          // for logins and renewals
	Err       error         // for failures; for AuthEventExpiring the watcher's error, if any
	Failures  int           // for failures: consecutive failed logins
	RetryIn   time.Duration // for failures: about when the background loop tries again (0 for Start)
}

// AuthStatus is a snapshot of an [Auth], for operators and tests.
type AuthStatus struct {
	// Method is the auth method's name, e.g. "approle".
	Method string
	// LoggedIn is true once a login succeeded: its token is set on the client.
	LoggedIn bool
	// Logins counts successful logins, the first one included.
	Logins int
	// LoginFailures counts failed logins; ConsecutiveFailures those since the
	// last success.
	LoginFailures       int
	ConsecutiveFailures int // failed logins since the last successful one
	// Renewals counts successful token renewals.
	Renewals    int
	LastLogin   time.Time // when the last successful login finished
	LastRenewal time.Time // when the last renewal succeeded
	// LastError is the most recent failure (login, or renewal that ended the
	// watch). A later success does not clear it: compare LastErrorTime with
	// LastLogin, or look at ConsecutiveFailures.
	LastError     error
	LastErrorTime time.Time // when LastError happened
	// TokenTTL is the TTL reported by the last login or renewal, 0 when the
	// token never expires. TokenExpires is when it runs out (zero if never).
	TokenTTL     time.Duration
	TokenExpires time.Time // zero when the token never expires
	Renewable    bool      // whether Vault said the token can be renewed
	// Watching is true while an api.LifetimeWatcher watches the token.
	Watching bool
}

type authConfig struct {
	initialBackoff time.Duration
	maxBackoff     time.Duration
	loginTimeout   time.Duration
	logger         *slog.Logger
	hooks          []func(AuthEvent)
}

// AuthOption configures an [Auth].
type AuthOption func(*authConfig) error

// WithLoginBackoff sets the exponential backoff between failed logins:
// initial, doubling, capped at limit (defaults [DefaultLoginInitialBackoff] and
// [DefaultLoginMaxBackoff]), shortened at random by up to [LoginBackoffJitter].
// initial is also the least time between two logins of the background loop.
func WithLoginBackoff(initial, limit time.Duration) AuthOption {
	return func(c *authConfig) error {
		if initial <= 0 || limit < initial {
			return errors.New("vaultsource: login backoff needs 0 < initial <= max")
		}
		c.initialBackoff, c.maxBackoff = initial, limit
		return nil
	}
}

// WithLoginTimeout bounds each login and each renewal request (default
// [DefaultLoginTimeout]). The timeout belongs to the shared login, not to a
// caller of Relogin: a caller that gives up does not abort it.
func WithLoginTimeout(d time.Duration) AuthOption {
	return func(c *authConfig) error {
		if d <= 0 {
			return errors.New("vaultsource: login timeout must be positive")
		}
		c.loginTimeout = d
		return nil
	}
}

// WithAuthLogger sets the logger (default slog.Default()). Log lines carry
// the method, the reason, TTLs and errors, never a token or a credential.
func WithAuthLogger(l *slog.Logger) AuthOption {
	return func(c *authConfig) error {
		if l == nil {
			return errors.New("vaultsource: nil logger")
		}
		c.logger = l
		return nil
	}
}

// OnAuthEvent registers a hook called after each login, failed login,
// renewal and end of renewal. Hooks run on the goroutine that did the work
// (the background loop or a shared login), before the callers waiting for
// that login return: keep them short and never block. A hook may call
// Status; calling Relogin from a hook starts another login.
func OnAuthEvent(fn func(AuthEvent)) AuthOption {
	return func(c *authConfig) error {
		if fn == nil {
			return errors.New("vaultsource: nil event hook")
		}
		c.hooks = append(c.hooks, fn)
		return nil
	}
}

// loginBackoff returns the wait after the n-th consecutive failed login
// (n >= 1): initial doubled n-1 times, capped at limit, then shortened by
// r*jitter of itself (r in [0, 1)). So the wait lies in ((1-jitter)*d, d].
func loginBackoff(n int, initial, limit time.Duration, jitter, r float64) time.Duration {
	d := initial
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	if d > limit {
		d = limit
	}
	return d - time.Duration(float64(d)*jitter*r)
}

// Auth is the [Relogger] the Vault sources call when Vault answers 403.
var _ Relogger = (*Auth)(nil)

// credentialWatcher is implemented by methods whose credentials can change
// out of band ([*TokenFile]). Watch blocks until ctx ends and calls changed
// when a new login should pick up new credentials.
type credentialWatcher interface {
	Watch(ctx context.Context, changed func()) error
}

// fixedTokenMethod is implemented by methods that cannot obtain a new token
// ([StaticToken]): their non-renewable tokens are not watched.
type fixedTokenMethod interface {
	fixedToken() bool
}

type methodNamer interface {
	authMethodName() string
}

func methodName(m api.AuthMethod) string {
	if n, ok := m.(methodNamer); ok {
		return n.authMethodName()
	}
	return fmt.Sprintf("%T", m)
}

type authState int

const (
	authNew authState = iota
	authStarting
	authRunning
	authClosed
)

type loginCall struct {
	done chan struct{}
	err  error
}

// Auth logs in to Vault with a method, sets the token on a shared
// *api.Client and keeps it valid: it renews the token with an
// api.LifetimeWatcher, logs in again when renewal ends (max TTL reached, not
// renewable, renewal failed) or the method's credentials change, and retries
// failed logins with exponential backoff and jitter. Tokens that never expire
// (TTL 0, such as a dev root token) are not watched.
//
// The client is shared with the Vault sources: they read with whatever token
// is set, and call [Auth.Relogin] when Vault answers 403. All methods are safe
// for concurrent use. The token itself is never exported by Auth; it is on the
// client (client.Token()).
type Auth struct {
	client *api.Client
	method api.AuthMethod
	name   string
	cfg    authConfig
	log    *slog.Logger

	ctx    context.Context // ends on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	state    authState
	inflight *loginCall
	secret   *api.Secret   // last successful login
	gen      uint64        // incremented on each successful login
	failed   bool          // the last login attempt failed
	notify   chan struct{} // closed and replaced after each login attempt
	st       AuthStatus
}

// NewAuth returns an [Auth] that logs in to Vault with method and sets the
// token on client. It does no I/O: call [Auth.Start] for the first login.
// Methods: [StaticToken], [TokenFile], [AppRole], [Kubernetes], [Userpass],
// [PerLogin], or any api.AuthMethod.
func NewAuth(client *api.Client, method api.AuthMethod, opts ...AuthOption) (*Auth, error) {
	if client == nil {
		return nil, errors.New("vaultsource: nil vault client")
	}
	if method == nil {
		return nil, errors.New("vaultsource: nil auth method")
	}
	cfg := authConfig{
		initialBackoff: DefaultLoginInitialBackoff,
		maxBackoff:     DefaultLoginMaxBackoff,
		loginTimeout:   DefaultLoginTimeout,
	}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	name := methodName(method)
	ctx, cancel := context.WithCancel(context.Background())
	return &Auth{
		client: client,
		method: method,
		name:   name,
		cfg:    cfg,
		log:    cfg.logger.With("component", "vaultsource.auth", "method", name),
		ctx:    ctx,
		cancel: cancel,
		notify: make(chan struct{}),
		st:     AuthStatus{Method: name},
	}, nil
}

// Start logs in (synchronously, bounded by ctx and the login timeout), sets
// the token on the client and starts the background loop that renews the
// token and logs in again when needed. If the login fails Start returns the
// [*LoginError] and starts nothing; it may be called again. A second Start
// after success returns [ErrAuthStarted]; Start after Close [ErrAuthClosed].
func (a *Auth) Start(ctx context.Context) error {
	a.mu.Lock()
	switch a.state {
	case authClosed:
		a.mu.Unlock()
		return ErrAuthClosed
	case authStarting, authRunning:
		a.mu.Unlock()
		return ErrAuthStarted
	}
	a.state = authStarting
	a.mu.Unlock()

	// The first login ends with ctx or with Close, whichever comes first.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(a.ctx, cancel)()
	ev, err := a.doLogin(ctx, "start")
	a.emit(ev)

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state == authClosed {
		return ErrAuthClosed
	}
	if err != nil {
		a.state = authNew
		return err
	}
	a.state = authRunning
	a.wg.Add(1)
	go a.loop()
	if w, ok := a.method.(credentialWatcher); ok {
		a.wg.Add(1)
		go a.watchCredentials(w)
	}
	return nil
}

// Relogin logs in now and sets the new token on the client. Concurrent
// callers share one login; the login runs under the Auth's own context and
// login timeout, so a caller whose ctx ends gets ctx's error while the login
// carries on for the others. If the login fails, the previous token stays set
// and the background loop keeps retrying with backoff.
func (a *Auth) Relogin(ctx context.Context) error {
	a.mu.Lock()
	switch a.state {
	case authClosed:
		a.mu.Unlock()
		return ErrAuthClosed
	case authNew, authStarting:
		a.mu.Unlock()
		return ErrAuthNotStarted
	}
	a.mu.Unlock()
	return a.sharedLogin(ctx, "relogin")
}

// Status returns a snapshot of the counters and of the current token's
// lifetime (never the token).
func (a *Auth) Status() AuthStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st
}

// Close stops the background loop, the renewal and any credential watch, and
// waits for them and for a login in flight (each bounded by the login
// timeout). The token stays set on the client; it is not revoked. Close is
// idempotent; afterwards Start and Relogin return [ErrAuthClosed].
func (a *Auth) Close() error {
	a.mu.Lock()
	a.state = authClosed
	a.mu.Unlock()
	a.cancel()
	a.wg.Wait()
	return nil
}

// sharedLogin runs one login for all concurrent callers.
func (a *Auth) sharedLogin(ctx context.Context, reason string) error {
	a.mu.Lock()
	if a.state == authClosed {
		a.mu.Unlock()
		return ErrAuthClosed
	}
	c := a.inflight
	if c == nil {
		c = &loginCall{done: make(chan struct{})}
		a.inflight = c
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			ev, err := a.doLogin(a.ctx, reason)
			a.mu.Lock()
			a.inflight = nil
			a.mu.Unlock()
			a.emit(ev) // after inflight is cleared: a hook may call Relogin
			c.err = err
			close(c.done)
		}()
	}
	a.mu.Unlock()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return c.err
	}
}

// loginClient is a clone of the shared client (same address, transport,
// headers such as the namespace) without a token, so that a revoked token on
// the shared client cannot spoil the login.
func (a *Auth) loginClient() (*api.Client, error) {
	c, err := a.client.CloneWithHeaders()
	if err != nil {
		return nil, err
	}
	c.ClearToken()
	return c, nil
}

// doLogin logs in once, records and logs the outcome and wakes the loop. It
// returns the event for the caller to emit.
func (a *Auth) doLogin(parent context.Context, reason string) (AuthEvent, error) {
	ctx, cancel := context.WithTimeout(parent, a.cfg.loginTimeout)
	defer cancel()

	secret, err := a.loginOnce(ctx)
	now := time.Now()
	if err != nil {
		lerr := &LoginError{Method: a.name, Reason: reason, Err: err}
		a.mu.Lock()
		a.st.LoginFailures++
		a.st.ConsecutiveFailures++
		a.st.LastError = lerr
		a.st.LastErrorTime = now
		failures := a.st.ConsecutiveFailures
		a.failed = true
		a.wake()
		a.mu.Unlock()
		var retryIn time.Duration // Start does not retry: its caller decides
		attrs := []any{"reason", reason, "failures", failures, "error", authOneLine(lerr.Err)}
		if reason != "start" {
			retryIn = loginBackoff(failures, a.cfg.initialBackoff, a.cfg.maxBackoff, 0, 0)
			attrs = append(attrs, "retry_in", retryIn)
		}
		a.log.Warn("vaultsource: vault login failed", attrs...)
		return AuthEvent{Kind: AuthEventLoginFailed, Method: a.name, Reason: reason,
			Err: lerr, Failures: failures, RetryIn: retryIn}, lerr
	}

	a.client.SetToken(secret.Auth.ClientToken)
	ttl := time.Duration(secret.Auth.LeaseDuration) * time.Second
	renewable := secret.Auth.Renewable
	a.mu.Lock()
	a.secret = secret
	a.gen++
	a.failed = false
	a.st.LoggedIn = true
	a.st.Logins++
	a.st.ConsecutiveFailures = 0
	a.st.LastLogin = now
	a.setTTLLocked(ttl, renewable, now)
	a.wake()
	a.mu.Unlock()
	a.log.Info("vaultsource: vault login succeeded",
		"reason", reason, "ttl", ttl, "renewable", renewable, "policies", secret.Auth.Policies)
	return AuthEvent{Kind: AuthEventLogin, Method: a.name, Reason: reason, TTL: ttl, Renewable: renewable}, nil
}

func (a *Auth) loginOnce(ctx context.Context) (*api.Secret, error) {
	lc, err := a.loginClient()
	if err != nil {
		return nil, err
	}
	secret, err := a.method.Login(ctx, lc)
	if err != nil {
		return nil, err
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return nil, ErrNoClientToken
	}
	return secret, nil
}

// setTTLLocked records the token's lifetime; a.mu must be held.
func (a *Auth) setTTLLocked(ttl time.Duration, renewable bool, now time.Time) {
	a.st.TokenTTL = ttl
	a.st.Renewable = renewable
	a.st.TokenExpires = time.Time{}
	if ttl > 0 {
		a.st.TokenExpires = now.Add(ttl)
	}
}

// wake tells the loop that a login attempt finished; a.mu must be held.
func (a *Auth) wake() {
	close(a.notify)
	a.notify = make(chan struct{})
}

func (a *Auth) emit(ev AuthEvent) {
	for _, h := range a.cfg.hooks {
		h(ev)
	}
}

type authSnapshot struct {
	secret *api.Secret
	gen    uint64
	failed bool
	notify <-chan struct{}
	last   time.Time
	fails  int
}

func (a *Auth) snapshot() authSnapshot {
	a.mu.Lock()
	defer a.mu.Unlock()
	return authSnapshot{secret: a.secret, gen: a.gen, failed: a.failed,
		notify: a.notify, last: a.st.LastLogin, fails: a.st.ConsecutiveFailures}
}

// watchable reports whether the token needs the lifetime watcher: it
// expires, and either it can be renewed or a new login can replace it.
func (a *Auth) watchable(s *api.Secret) bool {
	if s == nil || s.Auth == nil || s.Auth.LeaseDuration <= 0 {
		return false
	}
	if f, ok := a.method.(fixedTokenMethod); ok && f.fixedToken() && !s.Auth.Renewable {
		return false
	}
	return true
}

// loop is the background goroutine. While the current token expires it
// runs an api.LifetimeWatcher on it; when renewal ends it logs in again;
// after a failed login it retries with backoff (and keeps renewing the
// previous token meanwhile, which may still be good).
func (a *Auth) loop() {
	defer a.wg.Done()
	var ended uint64 // generation whose watcher has ended
	for a.ctx.Err() == nil {
		s := a.snapshot()
		var ok bool
		switch {
		case s.gen != ended && a.watchable(s.secret):
			var over bool
			ok, over = a.watch(s)
			if over {
				ended = s.gen
			}
		case s.failed:
			ok = a.waitBackoff(s)
		default:
			// Never expires, or its watch is over: wait for a login by
			// someone else (Relogin, changed credentials) or a failure.
			ok = a.waitChange(s, nil)
		}
		if !ok {
			return
		}
	}
}

// waitChange waits until a login succeeded after s, or a login failed while
// s was healthy, or timer fires (nil timer: never). It returns false if the
// Auth is closing.
func (a *Auth) waitChange(s authSnapshot, timer <-chan time.Time) bool {
	for {
		select {
		case <-a.ctx.Done():
			return false
		case <-timer:
			return true
		case <-s.notify:
			ns := a.snapshot()
			if ns.gen != s.gen || ns.failed != s.failed {
				return true
			}
			s.notify = ns.notify
		}
	}
}

func (a *Auth) backoffAfter(failures int) time.Duration {
	return loginBackoff(max(failures, 1), a.cfg.initialBackoff, a.cfg.maxBackoff, LoginBackoffJitter, rand.Float64())
}

// waitBackoff waits out the backoff after s.fails failures, then logs in
// unless someone else logged in meanwhile. It returns false when closing.
func (a *Auth) waitBackoff(s authSnapshot) bool {
	timer := time.NewTimer(a.backoffAfter(s.fails))
	defer timer.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return false
		case <-timer.C:
			_ = a.sharedLogin(a.ctx, "retry") // outcome recorded by doLogin
			return a.ctx.Err() == nil
		case <-s.notify:
			ns := a.snapshot()
			if ns.gen != s.gen {
				return true // someone else logged in
			}
			s.notify = ns.notify // another failure: keep our schedule
		}
	}
}

// watch runs an api.LifetimeWatcher on s's token until another login
// replaces the token, or the watcher ends (then it logs in again: over is
// true), or the Auth closes (ok is false). While logins fail it also retries
// them with backoff.
func (a *Auth) watch(s authSnapshot) (ok, over bool) {
	wc, err := a.loginClient()
	var w *api.LifetimeWatcher
	if err == nil {
		wc.SetClientTimeout(a.cfg.loginTimeout)
		w, err = wc.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: s.secret})
	}
	if err != nil { // not expected: the secret is never nil here
		a.recordError(fmt.Errorf("vaultsource: token watcher: %w", err))
		return a.waitChange(s, time.After(a.cfg.initialBackoff)), true
	}

	// The watcher's goroutine may be in a renewal request when the watch
	// ends; the next login does not wait for it, Close does (a.wg).
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		w.Start()
	}()
	a.setWatching(true)
	stop := func() {
		w.Stop()
		a.drainRenewals(w)
		a.setWatching(false)
	}

	var retry <-chan time.Time
	var retryTimer *time.Timer
	arm := func(failures int) {
		if retryTimer != nil {
			retryTimer.Stop()
		}
		retryTimer = time.NewTimer(a.backoffAfter(failures))
		retry = retryTimer.C
	}
	defer func() {
		if retryTimer != nil {
			retryTimer.Stop()
		}
	}()
	if s.failed {
		arm(s.fails)
	}

	// The watcher leaves a grace of only 10-20% of the lease before the end,
	// Vault reports TTLs in whole seconds (near the max TTL one second more
	// than the token has left was observed), and a renewal request can hang
	// while Vault expires the token. The guard ends the watch when the last
	// known TTL is nearly used up (see expiryGuard) without a renewal, so the
	// new login still happens while the token is valid.
	guard := time.NewTimer(expiryGuard(s.last, time.Duration(s.secret.Auth.LeaseDuration)*time.Second))
	defer guard.Stop()

	for {
		select {
		case <-a.ctx.Done():
			stop()
			return false, false
		case <-s.notify:
			ns := a.snapshot()
			if ns.gen != s.gen {
				stop()
				return true, false
			}
			if ns.failed && retry == nil {
				arm(ns.fails)
			}
			s.notify = ns.notify
		case <-retry:
			retry = nil
			_ = a.sharedLogin(a.ctx, "retry")
			ns := a.snapshot()
			if ns.gen != s.gen || a.ctx.Err() != nil {
				stop()
				return a.ctx.Err() == nil, false
			}
			arm(ns.fails)
			s.notify = ns.notify
		case r := <-w.RenewCh():
			if ttl, ok := a.recordRenewal(r); ok {
				guard.Reset(expiryGuard(r.RenewedAt, ttl))
			}
		case <-guard.C:
			a.log.Warn("vaultsource: vault token close to expiry and not renewed in time")
			stop()
			return a.expired(s, nil), true
		case werr := <-w.DoneCh():
			stop()
			return a.expired(s, werr), true
		}
	}
}

// expired handles the end of renewal: log in again, but not more often than
// once per initial backoff.
func (a *Auth) expired(s authSnapshot, werr error) bool {
	if werr != nil {
		a.recordError(fmt.Errorf("vaultsource: token renewal: %w", werr))
		a.log.Warn("vaultsource: vault token renewal failed", "error", authOneLine(werr))
	} else {
		a.log.Info("vaultsource: vault token renewal ended (max TTL reached or not renewable)")
	}
	a.emit(AuthEvent{Kind: AuthEventExpiring, Method: a.name, Err: werr})
	if f, ok := a.method.(fixedTokenMethod); ok && f.fixedToken() {
		// A static token cannot be replaced by logging in again; once it
		// expires, a Relogin (a source's 403) reports the failure.
		a.log.Warn("vaultsource: static vault token can no longer be renewed")
		return a.ctx.Err() == nil
	}
	if wait := a.cfg.initialBackoff - time.Since(s.last); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		if !a.waitChange(s, t.C) {
			return false
		}
		if ns := a.snapshot(); ns.gen != s.gen {
			return true
		}
	}
	reason := "expiring"
	if werr != nil {
		reason = "renewal failed"
	}
	_ = a.sharedLogin(a.ctx, reason)
	return a.ctx.Err() == nil
}

func (a *Auth) drainRenewals(w *api.LifetimeWatcher) {
	for {
		select {
		case r := <-w.RenewCh():
			a.recordRenewal(r)
		default:
			return
		}
	}
}

// recordRenewal counts a renewal and returns the token's new TTL.
func (a *Auth) recordRenewal(r *api.RenewOutput) (time.Duration, bool) {
	if r == nil || r.Secret == nil || r.Secret.Auth == nil {
		return 0, false
	}
	ttl := time.Duration(r.Secret.Auth.LeaseDuration) * time.Second
	renewable := r.Secret.Auth.Renewable
	a.mu.Lock()
	a.st.Renewals++
	a.st.LastRenewal = r.RenewedAt
	a.setTTLLocked(ttl, renewable, r.RenewedAt)
	a.mu.Unlock()
	a.log.Debug("vaultsource: vault token renewed", "ttl", ttl, "renewable", renewable)
	a.emit(AuthEvent{Kind: AuthEventRenewal, Method: a.name, TTL: ttl, Renewable: renewable})
	return ttl, true
}

// expiryGuard returns the wait until ttl, counted from at, has only a
// margin left: a tenth of it, and at least one second.
func expiryGuard(at time.Time, ttl time.Duration) time.Duration {
	return time.Until(at.Add(ttl - max(ttl/10, time.Second)))
}

func (a *Auth) recordError(err error) {
	a.mu.Lock()
	a.st.LastError = err
	a.st.LastErrorTime = time.Now()
	a.mu.Unlock()
}

func (a *Auth) setWatching(on bool) {
	a.mu.Lock()
	a.st.Watching = on
	a.mu.Unlock()
}

// watchCredentials runs the method's credential watch and logs in when the
// credentials change.
func (a *Auth) watchCredentials(w credentialWatcher) {
	defer a.wg.Done()
	err := w.Watch(a.ctx, func() {
		a.log.Info("vaultsource: vault credentials changed, logging in again")
		_ = a.sharedLogin(a.ctx, "credentials changed")
	})
	if err != nil && a.ctx.Err() == nil {
		a.log.Warn("vaultsource: credential watch stopped", "error", authOneLine(err))
	}
}

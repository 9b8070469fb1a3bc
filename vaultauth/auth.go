package vaultauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/hashicorp/vault/api"

	"github.com/knotmtls/knotmtls/internal/vaultresp"
)

// maxUnrevoked bounds the replaced tokens kept for a last revocation on
// Close (each try is bounded by the revoke timeout).
const maxUnrevoked = 8

// jitter is the randomization of every backoff wait; tests set it to 0
// (export_test.go) to check exact schedules.
var jitter = Jitter

// credentialWatcher is implemented by methods whose credentials can change
// out of band ([*TokenFile]). Watch blocks until ctx ends and calls changed
// when a new login should pick up new credentials.
type credentialWatcher interface {
	Watch(ctx context.Context, changed func()) error
}

// fixedTokenMethod is implemented by methods that cannot obtain a new token
// ([Token]): their non-renewable tokens are not watched.
type fixedTokenMethod interface {
	fixedToken() bool
}

// externalTokenMethod is implemented by methods whose token belongs to
// someone else ([Token], [*TokenFile]): a replaced token is not revoked.
type externalTokenMethod interface {
	externalToken() bool
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

type lifecycle int

const (
	stateNew lifecycle = iota
	stateStarting
	stateRunning
	stateClosed
)

// Auth logs in to Vault with a method, sets the token on a shared
// *api.Client and keeps it valid: it renews the token with an
// api.LifetimeWatcher, logs in again when renewal ends (max TTL reached, not
// renewable, renewal failed) or the method's credentials change, retries
// failed logins with exponential backoff and jitter, and revokes (best
// effort, bounded by [WithRevokeTimeout]) each token a new login replaced.
// Tokens that never expire (TTL 0, such as a dev root token) are not
// watched; tokens of [Token] and [TokenFile] belong to their owner and are
// never revoked.
//
// One goroutine owns the token state; Relogin, HandleDenied and the
// credential watch send it requests, and the I/O (login, lookup-self,
// revocation) runs in goroutines whose results it collects. The client is
// shared with the Vault sources: they read with whatever token is set, and
// call [Auth.HandleDenied] when Vault answers 403. All methods are safe for
// concurrent use. The token itself is never exported by Auth; it is on the
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
	reqs   chan request
	events eventQueue

	mu        sync.Mutex
	state     lifecycle
	st        Status
	unrevoked []string // replaced tokens whose revocation failed, for Close
}

type reqKind int

const (
	reqRelogin reqKind = iota
	reqDenied
	reqChanged
)

type request struct {
	kind       reqKind
	path       string
	capability string
	invalid    bool       // Vault's 403 said "invalid token"
	reply      chan error // buffered, 1
}

// New returns an [Auth] that logs in to Vault with method and sets the token
// on client. It does no I/O: call [Auth.Start] for the first login. Methods:
// [Token], [TokenFile], [AppRole], [Kubernetes], [Userpass], [PerLogin], or
// any api.AuthMethod.
func New(client *api.Client, method api.AuthMethod, opts ...Option) (*Auth, error) {
	if client == nil {
		return nil, errors.New("vaultauth: nil vault client")
	}
	if method == nil {
		return nil, errors.New("vaultauth: nil auth method")
	}
	cfg := authConfig{
		initialBackoff: DefaultInitialBackoff,
		maxBackoff:     DefaultMaxBackoff,
		timeout:        DefaultTimeout,
		revokeTimeout:  DefaultRevokeTimeout,
	}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt.configureAuth(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	name := methodName(method)
	ctx, cancel := context.WithCancel(context.Background())
	a := &Auth{
		client: client,
		method: method,
		name:   name,
		cfg:    cfg,
		log:    cfg.logger.With("component", "vaultauth", "method", name),
		ctx:    ctx,
		cancel: cancel,
		reqs:   make(chan request),
		st:     Status{Method: name},
	}
	a.events.init(cfg.hooks, ctx.Done())
	return a, nil
}

// String names the method; it never shows a token or a credential.
func (a *Auth) String() string { return "vaultauth.Auth(" + a.name + ")" }

// GoString is String: no token or credential under %#v either.
func (a *Auth) GoString() string { return a.String() }

// Start logs in (synchronously, bounded by ctx and the timeout), sets the
// token on the client and starts the goroutine that renews the token and
// logs in again when needed. If the login fails Start returns the
// [*LoginError] and starts nothing; it may be called again. A second Start
// after success returns [ErrStarted]; Start after Close [ErrClosed].
func (a *Auth) Start(ctx context.Context) error {
	a.mu.Lock()
	switch a.state {
	case stateClosed:
		a.mu.Unlock()
		return ErrClosed
	case stateStarting, stateRunning:
		a.mu.Unlock()
		return ErrStarted
	}
	a.state = stateStarting
	a.mu.Unlock()

	// The first login ends with ctx or with Close, whichever comes first.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(a.ctx, cancel)()
	secret, err := a.loginOnce(ctx)

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state == stateClosed {
		return ErrClosed
	}
	if err != nil {
		a.state = stateNew
		lerr := a.recordFailureLocked(err, "start")
		a.emitFailure(lerr, "start", 0)
		a.mu.Unlock()
		// No goroutine runs yet: the hooks are called here, before Start
		// returns (a hook's Relogin gets ErrNotStarted).
		a.events.deliver()
		a.mu.Lock()
		return lerr
	}
	a.state = stateRunning
	a.recordLoginLocked(secret, "start")
	a.wg.Add(2)
	go a.events.run(&a.wg)
	go a.run(secret)
	if w, ok := a.method.(credentialWatcher); ok {
		a.wg.Add(1)
		go a.watchCredentials(w)
	}
	return nil
}

// Relogin logs in now and sets the new token on the client. Concurrent
// callers share one login; the login runs under the Auth's own context and
// timeout, so a caller whose ctx ends gets ctx's error while the login
// carries on for the others. If the login fails, the previous token stays
// set and the background loop keeps retrying with backoff.
func (a *Auth) Relogin(ctx context.Context) error {
	return a.ask(ctx, request{kind: reqRelogin})
}

// HandleDenied is what the Vault sources call after Vault answered 403 to a
// request for path that needs capability. It returns nil when the request
// should be retried once with the client's (new) token, and otherwise an
// error that says why not:
//
//   - While a login is in flight, the caller waits for it and retries.
//   - invalidToken (Vault's 403 said "invalid token") goes straight to the
//     invalid-token case below, without a lookup.
//   - Otherwise one auth/token/lookup-self (shared by all callers) tells the
//     cases apart. A valid token means the policy denies the path: no login,
//     an error wrapping [ErrPermissionDenied] that names path and capability,
//     logged and reported as [EventDenied] once per path and backoff step
//     (later callers for that path in the same step get the verdict without
//     a request; another path gets its own lookup, so a token revoked
//     meanwhile is still noticed there).
//   - An invalid, expired or revoked token is replaced by one shared login,
//     at most one per backoff step; a caller in a step that already had its
//     login gets an error wrapping [ErrInvalidToken].
//   - While logins fail, callers get the last login error at once; the
//     background loop retries with backoff.
func (a *Auth) HandleDenied(ctx context.Context, path, capability string, invalidToken bool) error {
	return a.ask(ctx, request{kind: reqDenied, path: path, capability: capability, invalid: invalidToken})
}

func (a *Auth) ask(ctx context.Context, r request) error {
	a.mu.Lock()
	state := a.state
	a.mu.Unlock()
	switch state {
	case stateClosed:
		return ErrClosed
	case stateNew, stateStarting:
		return ErrNotStarted
	}
	r.reply = make(chan error, 1)
	// The loop never blocks for long, so the request is sent regardless of
	// ctx: a caller counts as waiting only once the loop knows it.
	select {
	case a.reqs <- r:
	case <-a.ctx.Done():
		return ErrClosed
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-r.reply:
		return err
	}
}

// Status returns a snapshot of the counters and of the current token's
// lifetime (never the token).
func (a *Auth) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st
}

// Close stops the background loop, the renewal and any credential watch,
// waits for them and for a login in flight (each bounded by the timeout),
// and tries once more to revoke replaced tokens whose revocation failed.
// The current token stays set on the client and is not revoked. Close is
// idempotent; afterwards Start, Relogin and HandleDenied return
// [ErrClosed].
func (a *Auth) Close() error {
	a.mu.Lock()
	first := a.state != stateClosed
	a.state = stateClosed
	a.mu.Unlock()
	a.cancel()
	a.wg.Wait()
	if first {
		a.mu.Lock()
		pending := a.unrevoked
		a.unrevoked = nil
		a.mu.Unlock()
		for _, tok := range pending {
			a.revoke(context.Background(), tok)
		}
	}
	return nil
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

// loginOnce logs in once, bounded by the timeout.
func (a *Auth) loginOnce(parent context.Context) (*api.Secret, error) {
	ctx, cancel := context.WithTimeout(parent, a.cfg.timeout)
	defer cancel()
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

// recordLoginLocked sets the token and records a successful login; a.mu
// must be held. It queues the event.
func (a *Auth) recordLoginLocked(secret *api.Secret, reason string) {
	now := time.Now()
	a.client.SetToken(secret.Auth.ClientToken)
	ttl := time.Duration(secret.Auth.LeaseDuration) * time.Second
	renewable := secret.Auth.Renewable
	a.st.LoggedIn = true
	a.st.Logins++
	a.st.ConsecutiveFailures = 0
	a.st.LastLogin = now
	a.setTTLLocked(ttl, renewable, now)
	a.log.Info("vaultauth: vault login succeeded",
		"reason", reason, "ttl", ttl, "renewable", renewable, "policies", secret.Auth.Policies)
	a.events.push(Event{Kind: EventLogin, Method: a.name, Reason: reason, TTL: ttl, Renewable: renewable})
}

// recordFailureLocked records a failed login; a.mu must be held.
func (a *Auth) recordFailureLocked(err error, reason string) *LoginError {
	lerr := &LoginError{Method: a.name, Reason: reason, Err: err}
	a.st.LoginFailures++
	a.st.ConsecutiveFailures++
	a.st.LastError = lerr
	a.st.LastErrorTime = time.Now()
	return lerr
}

func (a *Auth) emitFailure(lerr *LoginError, reason string, retryIn time.Duration) {
	failures := a.st.ConsecutiveFailures
	attrs := []any{"reason", reason, "failures", failures, "error", oneLine(lerr.Err)}
	if reason != "start" {
		attrs = append(attrs, "retry_in", retryIn)
	}
	a.log.Warn("vaultauth: vault login failed", attrs...)
	a.events.push(Event{Kind: EventLoginFailed, Method: a.name, Reason: reason,
		Err: lerr, Failures: failures, RetryIn: retryIn})
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

func (a *Auth) update(fn func(st *Status)) {
	a.mu.Lock()
	fn(&a.st)
	a.mu.Unlock()
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

func (a *Auth) fixed() bool {
	f, ok := a.method.(fixedTokenMethod)
	return ok && f.fixedToken()
}

func (a *Auth) ownsTokens() bool {
	e, ok := a.method.(externalTokenMethod)
	return !ok || !e.externalToken()
}

// expiryGuard returns the wait until ttl, counted from at, has only a
// margin left: a tenth of it, and at least one second.
func expiryGuard(at time.Time, ttl time.Duration) time.Duration {
	return time.Until(at.Add(ttl - max(ttl/10, time.Second)))
}

// revoke revokes a replaced token (auth/token/revoke-self with that token),
// bounded by the revoke timeout. A failure is kept for Close.
func (a *Auth) revoke(parent context.Context, token string) {
	ctx, cancel := context.WithTimeout(parent, a.cfg.revokeTimeout)
	defer cancel()
	c, err := a.loginClient()
	if err == nil {
		c.SetToken(token)
		err = c.Auth().Token().RevokeSelfWithContext(ctx, "")
	}
	a.mu.Lock()
	if err != nil {
		a.st.RevokeFailures++
		if parent != context.Background() && len(a.unrevoked) < maxUnrevoked { // not yet the last try (Close)
			a.unrevoked = append(a.unrevoked, token)
		}
	} else {
		a.st.Revoked++
	}
	a.mu.Unlock()
	if err != nil {
		a.log.Warn("vaultauth: revoking a replaced vault token failed", "error", oneLine(err))
	} else {
		a.log.Debug("vaultauth: replaced vault token revoked")
	}
	a.events.push(Event{Kind: EventRevoked, Method: a.name, Err: err})
}

// watchCredentials runs the method's credential watch and asks the loop for
// a login when the credentials change.
func (a *Auth) watchCredentials(w credentialWatcher) {
	defer a.wg.Done()
	err := w.Watch(a.ctx, func() {
		a.log.Info("vaultauth: vault credentials changed, logging in again")
		select {
		case a.reqs <- request{kind: reqChanged}:
		case <-a.ctx.Done():
		}
	})
	if err != nil && a.ctx.Err() == nil {
		a.log.Warn("vaultauth: credential watch stopped", "error", oneLine(err))
	}
}

// --- the loop: the one owner of the token state ---

type loginResult struct {
	secret *api.Secret
	err    error
	reason string
}

type lookupResult struct {
	token  string
	secret *api.Secret
	class  vaultresp.Class
	err    error
}

type waiter struct {
	reply      chan error
	path       string
	capability string
}

func (w waiter) key() string { return w.path + "\x00" + w.capability }

// verdict is the diagnosis "token invalid, this step's login spent" for
// one token, valid until until.
type verdict struct {
	token string
	until time.Time
	err   error
}

// denial is the diagnosis "the token is valid, its policy denies" for one
// path and capability of the current token: no new lookup for it until
// until, whose distance grows by bo's steps while the denial lasts. A 403
// that was really the previous token's, reported after a login replaced it,
// can make a first denial wrong; it then holds for one initial step only
// (and the caller itself retries, its token having changed).
type denial struct {
	until    time.Time
	bo       *backoff.ExponentialBackOff
	policies []string
}

// loop is the state owned by run.
type loop struct {
	a *Auth

	secret    *api.Secret
	lastLogin time.Time
	failures  int
	lastErr   error

	loginBo   *backoff.ExponentialBackOff // waits between failed logins
	invalidBo *backoff.ExponentialBackOff // steps between logins for an invalid token

	nextInvalidLogin time.Time // no login for an invalid token before

	loginWaiters []waiter
	logging      bool
	lookupWaiter []waiter
	looking      bool
	verdict      verdict
	denials      map[string]*denial // by path and capability, for denialsOf
	denialsOf    string             // the token the denials are about

	loginDone  chan loginResult
	lookupDone chan lookupResult

	retry   *time.Timer // next login after a failure or an early expiry
	retryC  <-chan time.Time
	reason  string // reason of the login retry fires
	watcher *api.LifetimeWatcher
	guard   *time.Timer
	guardC  <-chan time.Time
}

func (a *Auth) newBackoff() *backoff.ExponentialBackOff {
	return vaultresp.NewBackoff(a.cfg.initialBackoff, a.cfg.maxBackoff, jitter)
}

func (a *Auth) run(secret *api.Secret) {
	defer a.wg.Done()
	l := &loop{
		a:          a,
		secret:     secret,
		lastLogin:  time.Now(),
		loginBo:    a.newBackoff(),
		invalidBo:  a.newBackoff(),
		loginDone:  make(chan loginResult, 1),
		lookupDone: make(chan lookupResult, 1),
	}
	l.watch()
	defer l.shutdown()
	for {
		var renewC <-chan *api.RenewOutput
		var doneC <-chan error
		if l.watcher != nil {
			renewC, doneC = l.watcher.RenewCh(), l.watcher.DoneCh()
		}
		select {
		case <-a.ctx.Done():
			return
		case r := <-a.reqs:
			l.handle(r)
		case res := <-l.loginDone:
			l.loggedIn(res)
		case res := <-l.lookupDone:
			l.diagnosed(res)
		case <-l.retryC:
			l.retryC = nil
			l.startLogin(l.reason)
		case r := <-renewC:
			l.renewed(r)
		case werr := <-doneC:
			l.watchEnded(werr)
		case <-l.guardC:
			a.log.Warn("vaultauth: vault token close to expiry and not renewed in time")
			l.watchEnded(nil)
		}
	}
}

func (l *loop) shutdown() {
	l.stopWatch()
	if l.retry != nil {
		l.retry.Stop()
	}
	for _, w := range append(l.loginWaiters, l.lookupWaiter...) {
		w.reply <- ErrClosed
	}
}

func (l *loop) handle(r request) {
	switch r.kind {
	case reqRelogin:
		l.loginWaiters = append(l.loginWaiters, waiter{reply: r.reply})
		l.startLogin("relogin")
	case reqChanged:
		l.startLogin("credentials changed")
	case reqDenied:
		l.denied(waiter{reply: r.reply, path: r.path, capability: r.capability}, r.invalid)
	}
}

// denied decides what a 403 leads to (see HandleDenied).
func (l *loop) denied(w waiter, invalid bool) {
	token := l.a.client.Token()
	if l.denialsOf != token {
		l.denials, l.denialsOf = map[string]*denial{}, token
	}
	now := time.Now()
	d := l.denials[w.key()]
	switch {
	case l.logging:
		l.loginWaiters = append(l.loginWaiters, w)
	case l.failures > 0:
		w.reply <- fmt.Errorf("%w; the last login failed: %w", ErrInvalidToken, l.lastErr)
	case invalid:
		l.tokenInvalid(token, []waiter{w})
	case d != nil && now.Before(d.until):
		w.reply <- deniedError(w.path, w.capability, d.policies)
	case l.verdict.token == token && now.Before(l.verdict.until):
		w.reply <- l.verdict.err
	case l.looking:
		l.lookupWaiter = append(l.lookupWaiter, w)
	default:
		l.lookupWaiter = append(l.lookupWaiter, w)
		l.looking = true
		l.a.update(func(st *Status) { st.Lookups++ })
		l.a.wg.Add(1)
		go func() {
			defer l.a.wg.Done()
			ctx, cancel := context.WithTimeout(l.a.ctx, l.a.cfg.timeout)
			defer cancel()
			s, class, err := vaultresp.LookupSelf(ctx, l.a.client, token)
			l.lookupDone <- lookupResult{token: token, secret: s, class: class, err: err}
		}()
	}
}

func (l *loop) policies() []string {
	if l.secret == nil || l.secret.Auth == nil {
		return nil
	}
	return l.secret.Auth.Policies
}

func (l *loop) diagnosed(res lookupResult) {
	l.looking = false
	waiters := l.lookupWaiter
	l.lookupWaiter = nil
	a := l.a
	reply := func(err error) {
		for _, w := range waiters {
			w.reply <- err
		}
	}
	switch {
	case res.token != a.client.Token():
		reply(nil) // a login replaced the token meanwhile: retry with it
	case res.class == vaultresp.OK:
		var policies []string
		if res.secret != nil {
			policies, _ = res.secret.TokenPolicies()
		}
		if len(policies) == 0 {
			policies = l.policies()
		}
		if l.denialsOf != res.token {
			l.denials, l.denialsOf = map[string]*denial{}, res.token
		}
		now := time.Now()
		for _, w := range waiters {
			d := l.denials[w.key()]
			if d == nil {
				d = &denial{bo: a.newBackoff()}
				l.denials[w.key()] = d
			}
			if !now.Before(d.until) { // once per path per step
				step := d.bo.NextBackOff()
				d.until, d.policies = now.Add(step), policies
				a.update(func(st *Status) { st.Denials++ })
				a.log.Warn("vaultauth: vault token is valid but its policy denies the request; not logging in again",
					"path", w.path, "capability", w.capability, "policies", policies, "next_check_in", step)
				a.events.push(Event{Kind: EventDenied, Method: a.name, Path: w.path, Capability: w.capability, RetryIn: step})
			}
			w.reply <- deniedError(w.path, w.capability, policies)
		}
	case res.class == vaultresp.InvalidToken:
		l.tokenInvalid(res.token, waiters)
	default:
		reply(fmt.Errorf("%w: lookup-self (%s): %s", ErrUnavailable, res.class, oneLine(res.err)))
	}
}

func (l *loop) fixed() bool { return l.a.fixed() }

// tokenInvalid replaces an invalid token by one login per backoff step,
// shared by waiters.
func (l *loop) tokenInvalid(token string, waiters []waiter) {
	if l.logging {
		l.loginWaiters = append(l.loginWaiters, waiters...)
		return
	}
	now := time.Now()
	if now.Before(l.nextInvalidLogin) {
		// This step already had its login: no other until it ends.
		err := fmt.Errorf("%w; the next login for it may happen in %s", ErrInvalidToken,
			l.nextInvalidLogin.Sub(now).Round(time.Millisecond))
		l.verdict = verdict{token: token, until: l.nextInvalidLogin, err: err}
		for _, w := range waiters {
			w.reply <- err
		}
		return
	}
	l.nextInvalidLogin = now.Add(l.invalidBo.NextBackOff())
	l.loginWaiters = append(l.loginWaiters, waiters...)
	l.startLogin("token invalid")
}

// startLogin starts the shared login unless one is in flight.
func (l *loop) startLogin(reason string) {
	if l.logging {
		return
	}
	l.logging = true
	if l.retry != nil {
		l.retry.Stop()
		l.retryC = nil
	}
	l.a.wg.Add(1)
	go func() {
		defer l.a.wg.Done()
		s, err := l.a.loginOnce(l.a.ctx)
		l.loginDone <- loginResult{secret: s, err: err, reason: reason}
	}()
}

func (l *loop) loggedIn(res loginResult) {
	l.logging = false
	waiters := l.loginWaiters
	l.loginWaiters = nil
	a := l.a
	if res.err != nil {
		l.failures++
		wait := l.loginBo.NextBackOff()
		a.mu.Lock()
		lerr := a.recordFailureLocked(res.err, res.reason)
		a.emitFailure(lerr, res.reason, wait)
		a.mu.Unlock()
		l.lastErr = lerr
		l.arm(wait, "retry")
		for _, w := range waiters {
			w.reply <- lerr
		}
		return
	}
	old := l.secret
	l.secret = res.secret
	l.lastLogin = time.Now()
	l.failures = 0
	l.lastErr = nil
	l.loginBo.Reset()
	if l.retry != nil {
		l.retry.Stop()
		l.retryC = nil
	}
	a.mu.Lock()
	a.recordLoginLocked(res.secret, res.reason)
	a.mu.Unlock()
	l.stopWatch()
	l.watch()
	for _, w := range waiters {
		w.reply <- nil
	}
	if old != nil && old.Auth != nil && old.Auth.ClientToken != res.secret.Auth.ClientToken && a.ownsTokens() {
		tok := old.Auth.ClientToken
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.revoke(a.ctx, tok)
		}()
	}
}

// arm schedules a login after d.
func (l *loop) arm(d time.Duration, reason string) {
	if l.retry != nil {
		l.retry.Stop()
	}
	l.retry = time.NewTimer(d)
	l.retryC = l.retry.C
	l.reason = reason
}

// watch starts an api.LifetimeWatcher on the current token if it needs one.
func (l *loop) watch() {
	a := l.a
	if !a.watchable(l.secret) {
		return
	}
	wc, err := a.loginClient()
	var w *api.LifetimeWatcher
	if err == nil {
		wc.SetClientTimeout(a.cfg.timeout)
		w, err = wc.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: l.secret})
	}
	if err != nil { // not expected: the secret is never nil here
		a.update(func(st *Status) {
			st.LastError = fmt.Errorf("vaultauth: token watcher: %w", err)
			st.LastErrorTime = time.Now()
		})
		return
	}
	// The watcher's goroutine may be in a renewal request when the watch
	// ends; the next login does not wait for it, Close does (a.wg).
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		w.Start()
	}()
	l.watcher = w
	a.update(func(st *Status) { st.Watching = true })
	// The watcher leaves a grace of only 10-20% of the lease before the end,
	// Vault reports TTLs in whole seconds, and a renewal request can hang
	// while Vault expires the token. The guard ends the watch when the last
	// known TTL is nearly used up without a renewal, so the new login still
	// happens while the token is valid.
	l.guard = time.NewTimer(expiryGuard(l.lastLogin, time.Duration(l.secret.Auth.LeaseDuration)*time.Second))
	l.guardC = l.guard.C
}

func (l *loop) stopWatch() {
	if l.watcher == nil {
		return
	}
	l.watcher.Stop()
	for drained := false; !drained; {
		select {
		case r := <-l.watcher.RenewCh():
			l.recordRenewal(r)
		default:
			drained = true
		}
	}
	l.watcher = nil
	l.guard.Stop()
	l.guardC = nil
	l.a.update(func(st *Status) { st.Watching = false })
}

func (l *loop) renewed(r *api.RenewOutput) {
	if ttl, ok := l.recordRenewal(r); ok {
		l.guard.Reset(expiryGuard(r.RenewedAt, ttl))
		l.invalidBo.Reset() // the token works
	}
}

// recordRenewal counts a renewal and returns the token's new TTL.
func (l *loop) recordRenewal(r *api.RenewOutput) (time.Duration, bool) {
	if r == nil || r.Secret == nil || r.Secret.Auth == nil {
		return 0, false
	}
	a := l.a
	ttl := time.Duration(r.Secret.Auth.LeaseDuration) * time.Second
	renewable := r.Secret.Auth.Renewable
	a.mu.Lock()
	a.st.Renewals++
	a.st.LastRenewal = r.RenewedAt
	a.setTTLLocked(ttl, renewable, r.RenewedAt)
	a.mu.Unlock()
	a.log.Debug("vaultauth: vault token renewed", "ttl", ttl, "renewable", renewable)
	a.events.push(Event{Kind: EventRenewal, Method: a.name, TTL: ttl, Renewable: renewable})
	return ttl, true
}

// watchEnded handles the end of renewal: log in again, but not more often
// than once per initial backoff.
func (l *loop) watchEnded(werr error) {
	a := l.a
	l.stopWatch()
	if werr != nil {
		a.update(func(st *Status) {
			st.LastError = fmt.Errorf("vaultauth: token renewal: %w", werr)
			st.LastErrorTime = time.Now()
		})
		a.log.Warn("vaultauth: vault token renewal failed", "error", oneLine(werr))
	} else {
		a.log.Info("vaultauth: vault token renewal ended (max TTL reached or not renewable)")
	}
	a.events.push(Event{Kind: EventExpiring, Method: a.name, Err: werr})
	if l.fixed() {
		// A static token cannot be replaced by logging in again; once it
		// expires, HandleDenied (a source's 403) reports it.
		a.log.Warn("vaultauth: static vault token can no longer be renewed")
		return
	}
	reason := "expiring"
	if werr != nil {
		reason = "renewal failed"
	}
	if l.failures > 0 && l.retryC != nil {
		return // the failure backoff already owns the next login
	}
	if wait := a.cfg.initialBackoff - time.Since(l.lastLogin); wait > 0 {
		l.arm(wait, reason)
		return
	}
	l.startLogin(reason)
}

// --- hooks ---

// eventQueue delivers events to the hooks in order on one goroutine, so
// that the loop never waits for a hook and a hook may call into the Auth.
type eventQueue struct {
	hooks []func(Event)
	mu    sync.Mutex
	queue []Event
	wake  chan struct{}
	stop  <-chan struct{}
}

func (q *eventQueue) init(hooks []func(Event), stop <-chan struct{}) {
	q.hooks = hooks
	q.wake = make(chan struct{}, 1)
	q.stop = stop
}

func (q *eventQueue) push(e Event) {
	if len(q.hooks) == 0 {
		return
	}
	q.mu.Lock()
	q.queue = append(q.queue, e)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// deliver calls the hooks for every queued event.
func (q *eventQueue) deliver() {
	q.mu.Lock()
	batch := q.queue
	q.queue = nil
	q.mu.Unlock()
	for _, e := range batch {
		for _, h := range q.hooks {
			h(e)
		}
	}
}

// run delivers queued events until the Auth closes; events queued before
// that are still delivered.
func (q *eventQueue) run(wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		q.deliver()
		select {
		case <-q.wake:
		case <-q.stop:
			q.deliver()
			return
		}
	}
}

package vaultauth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"
	"github.com/hashicorp/vault/api/auth/userpass"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/knotmtls/knotmtls/vaultauth"
)

// These unit tests drive Auth with fake methods that hand out tokens that
// never expire (TTL 0), so no request reaches Vault. Renewal, re-login at
// max TTL and the real auth methods are exercised against a real Vault in
// integration/auth_test.go.

// fakeMethod is an api.AuthMethod that counts logins and can fail or block.
type fakeMethod struct {
	calls atomic.Int32
	// fail, if set, decides whether call n (1-based) fails.
	fail func(n int) error
	// gate, if set, is received from before a login returns (after entered
	// has been signalled), or the login's ctx ends.
	gate    chan struct{}
	entered chan int
}

func (f *fakeMethod) Login(ctx context.Context, _ *api.Client) (*api.Secret, error) {
	n := int(f.calls.Add(1))
	if f.entered != nil {
		f.entered <- n
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.fail != nil {
		if err := f.fail(n); err != nil {
			return nil, err
		}
	}
	return &api.Secret{Auth: &api.SecretAuth{ClientToken: fmt.Sprintf("fake-token-%d", n)}}, nil
}

// offlineClient points at a loopback port where nothing listens.
func offlineClient(t *testing.T) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = "http://127.0.0.1:1"
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	require.NoError(t, err)
	c.ClearToken()
	return c
}

// leakCheck fails t if goroutines started during the test outlive its
// cleanups (registered later, so they run first and close the Auths).
func leakCheck(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newAuth(t *testing.T, m api.AuthMethod, opts ...vaultauth.Option) (*vaultauth.Auth, *api.Client) {
	t.Helper()
	c := offlineClient(t)
	opts = append([]vaultauth.Option{vaultauth.WithLogger(quietLogger())}, opts...)
	a, err := vaultauth.New(c, m, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	return a, c
}

func TestNewAuthValidation(t *testing.T) {
	client := offlineClient(t)
	m := &fakeMethod{}
	tests := []struct {
		name   string
		client *api.Client
		method api.AuthMethod
		opts   []vaultauth.Option
		errHas string
	}{
		{name: "defaults", client: client, method: m},
		{name: "all options", client: client, method: m, opts: []vaultauth.Option{
			vaultauth.WithBackoff(time.Millisecond, time.Second),
			vaultauth.WithTimeout(time.Second),
			vaultauth.WithLogger(quietLogger()),
			vaultauth.OnEvent(func(vaultauth.Event) {}),
			nil, // ignored
		}},
		{name: "equal backoff bounds", client: client, method: m,
			opts: []vaultauth.Option{vaultauth.WithBackoff(time.Second, time.Second)}},
		{name: "nil client", method: m, errHas: "nil vault client"},
		{name: "nil method", client: client, errHas: "nil auth method"},
		{name: "zero initial backoff", client: client, method: m,
			opts: []vaultauth.Option{vaultauth.WithBackoff(0, time.Second)}, errHas: "backoff"},
		{name: "max below initial", client: client, method: m,
			opts: []vaultauth.Option{vaultauth.WithBackoff(time.Minute, time.Second)}, errHas: "backoff"},
		{name: "zero timeout", client: client, method: m,
			opts: []vaultauth.Option{vaultauth.WithTimeout(0)}, errHas: "timeout"},
		{name: "negative timeout", client: client, method: m,
			opts: []vaultauth.Option{vaultauth.WithTimeout(-time.Second)}, errHas: "timeout"},
		{name: "nil logger", client: client, method: m,
			opts: []vaultauth.Option{vaultauth.WithLogger(nil)}, errHas: "nil logger"},
		{name: "nil hook", client: client, method: m,
			opts: []vaultauth.Option{vaultauth.OnEvent(nil)}, errHas: "nil event hook"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := vaultauth.New(tc.client, tc.method, tc.opts...)
			if tc.errHas == "" {
				require.NoError(t, err)
				require.NotNil(t, a)
				require.NoError(t, a.Close())
				return
			}
			require.ErrorContains(t, err, tc.errHas)
			assert.Regexp(t, `^vaultauth: `, err.Error())
			assert.Nil(t, a)
		})
	}
}

func TestAuthLifecycle(t *testing.T) {
	leakCheck(t)
	m := &fakeMethod{}
	a, client := newAuth(t, m)

	require.ErrorIs(t, a.Relogin(context.Background()), vaultauth.ErrNotStarted)
	assert.False(t, a.Status().LoggedIn)

	require.NoError(t, a.Start(context.Background()))
	assert.Equal(t, "fake-token-1", client.Token(), "the login's token is set on the shared client")
	st := a.Status()
	assert.True(t, st.LoggedIn)
	assert.Equal(t, 1, st.Logins)
	assert.Equal(t, 0, st.Renewals)
	assert.Equal(t, time.Duration(0), st.TokenTTL)
	assert.True(t, st.TokenExpires.IsZero(), "a TTL-0 token never expires")
	assert.False(t, st.Watching, "a TTL-0 token is not watched")
	assert.NoError(t, st.LastError)

	require.ErrorIs(t, a.Start(context.Background()), vaultauth.ErrStarted)

	require.NoError(t, a.Relogin(context.Background()))
	assert.Equal(t, "fake-token-2", client.Token())
	assert.Equal(t, 2, a.Status().Logins)

	require.NoError(t, a.Close())
	require.NoError(t, a.Close(), "Close is idempotent")
	require.ErrorIs(t, a.Relogin(context.Background()), vaultauth.ErrClosed)
	require.ErrorIs(t, a.Start(context.Background()), vaultauth.ErrClosed)
	assert.Equal(t, "fake-token-2", client.Token(), "Close leaves the token on the client")
}

// waitingCtx reports, once, when Relogin starts waiting on it: Relogin
// looks at ctx.Done() only after it joined (or started) the shared login.
type waitingCtx struct {
	context.Context
	once    sync.Once
	waiting chan<- struct{}
}

func (c *waitingCtx) Done() <-chan struct{} {
	c.once.Do(func() { c.waiting <- struct{}{} })
	return c.Context.Done()
}

func TestReloginSingleFlight(t *testing.T) {
	leakCheck(t)
	m := &fakeMethod{}
	a, client := newAuth(t, m)
	require.NoError(t, a.Start(context.Background()))

	m.gate = make(chan struct{})
	m.entered = make(chan int, 64)
	const callers = 32
	errs := make(chan error, callers)
	waiting := make(chan struct{}, callers)
	for range callers {
		go func() {
			errs <- a.Relogin(&waitingCtx{Context: context.Background(), waiting: waiting})
		}()
	}
	require.Equal(t, 2, <-m.entered, "one shared login is in flight")
	// Every caller waits on that login before it may finish.
	for range callers {
		<-waiting
	}
	assert.Empty(t, errs, "no caller returned while the login is blocked")
	close(m.gate)
	for range callers {
		require.NoError(t, <-errs)
	}
	assert.Equal(t, int32(2), m.calls.Load(), "32 concurrent callers share one login")
	assert.Equal(t, 2, a.Status().Logins)
	assert.Equal(t, "fake-token-2", client.Token())
}

func TestReloginCallerCancelDoesNotAbortSharedLogin(t *testing.T) {
	leakCheck(t)
	m := &fakeMethod{}
	a, client := newAuth(t, m)
	require.NoError(t, a.Start(context.Background()))

	m.gate = make(chan struct{})
	m.entered = make(chan int, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Relogin(ctx) }()
	<-m.entered
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)

	close(m.gate)
	require.Eventually(t, func() bool { return a.Status().Logins == 2 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, "fake-token-2", client.Token())
}

func TestStartFailureIsReturnedAndRetryable(t *testing.T) {
	leakCheck(t)
	cause := errors.New("vault says no")
	m := &fakeMethod{fail: func(n int) error {
		if n == 1 {
			return cause
		}
		return nil
	}}
	a, client := newAuth(t, vaultauth.PerLogin("fake", func() (api.AuthMethod, error) { return m, nil }))

	err := a.Start(context.Background())
	var le *vaultauth.LoginError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, "fake", le.Method)
	assert.Equal(t, "start", le.Reason)
	require.ErrorIs(t, err, cause)
	assert.Equal(t, "vaultauth: login with fake (start): vault says no", err.Error())
	st := a.Status()
	assert.False(t, st.LoggedIn)
	assert.Equal(t, 1, st.LoginFailures)
	assert.Equal(t, 1, st.ConsecutiveFailures)
	require.ErrorIs(t, st.LastError, cause)
	assert.False(t, st.Watching)
	assert.Empty(t, client.Token())
	require.ErrorIs(t, a.Relogin(context.Background()), vaultauth.ErrNotStarted, "a failed Start starts nothing")

	require.NoError(t, a.Start(context.Background()), "Start may be called again")
	st = a.Status()
	assert.Equal(t, 1, st.Logins)
	assert.Equal(t, 0, st.ConsecutiveFailures)
	require.ErrorIs(t, st.LastError, cause, "LastError is kept after a later success")
	assert.True(t, st.LastLogin.After(st.LastErrorTime))
}

func TestLoginWithoutClientToken(t *testing.T) {
	a, _ := newAuth(t, vaultauth.PerLogin("mfa", func() (api.AuthMethod, error) {
		return methodFunc(func(context.Context, *api.Client) (*api.Secret, error) {
			return &api.Secret{Auth: &api.SecretAuth{MFARequirement: &api.MFARequirement{MFARequestID: "x"}}}, nil
		}), nil
	}))
	require.ErrorIs(t, a.Start(context.Background()), vaultauth.ErrNoClientToken)
}

type methodFunc func(context.Context, *api.Client) (*api.Secret, error)

func (f methodFunc) Login(ctx context.Context, c *api.Client) (*api.Secret, error) { return f(ctx, c) }

func TestBackgroundLoopRetriesWithBackoff(t *testing.T) {
	leakCheck(t)
	cause := errors.New("vault sealed")
	m := &fakeMethod{fail: func(n int) error {
		if n >= 2 && n <= 4 { // the Relogin and two background retries fail
			return cause
		}
		return nil
	}}
	var (
		mu     sync.Mutex
		events []vaultauth.Event
	)
	t.Cleanup(vaultauth.SetJitter(0))
	a, client := newAuth(t, m,
		vaultauth.WithBackoff(10*time.Millisecond, 40*time.Millisecond),
		vaultauth.OnEvent(func(e vaultauth.Event) {
			if e.Kind == vaultauth.EventRevoked {
				return // replaced tokens: TestReplacedTokensRevoked
			}
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}))
	require.NoError(t, a.Start(context.Background()))

	err := a.Relogin(context.Background())
	require.ErrorIs(t, err, cause)
	assert.Equal(t, "fake-token-1", client.Token(), "a failed login keeps the previous token")

	require.Eventually(t, func() bool { return a.Status().Logins == 2 }, 10*time.Second, time.Millisecond,
		"the background loop retries until a login succeeds")
	st := a.Status()
	assert.Equal(t, 3, st.LoginFailures)
	assert.Equal(t, 0, st.ConsecutiveFailures)
	assert.Equal(t, "fake-token-5", client.Token())

	require.NoError(t, a.Close()) // delivers the events still queued
	mu.Lock()
	defer mu.Unlock()
	var kinds []vaultauth.EventKind
	var reasons []string
	var retry []time.Duration
	for _, e := range events {
		kinds = append(kinds, e.Kind)
		reasons = append(reasons, e.Reason)
		if e.Kind == vaultauth.EventLoginFailed {
			retry = append(retry, e.RetryIn)
		}
	}
	assert.Equal(t, []vaultauth.EventKind{
		vaultauth.EventLogin,
		vaultauth.EventLoginFailed, vaultauth.EventLoginFailed, vaultauth.EventLoginFailed,
		vaultauth.EventLogin,
	}, kinds)
	assert.Equal(t, []string{"start", "relogin", "retry", "retry", "retry"}, reasons)
	assert.Equal(t, []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}, retry)
}

func TestHookMayCallRelogin(t *testing.T) {
	leakCheck(t)
	m := &fakeMethod{}
	var a *vaultauth.Auth
	var first atomic.Bool
	hookErr := make(chan error, 1)
	a, _ = newAuth(t, m, vaultauth.OnEvent(func(e vaultauth.Event) {
		if e.Kind == vaultauth.EventLogin && e.Reason == "relogin" && first.CompareAndSwap(false, true) {
			hookErr <- a.Relogin(context.Background())
		}
	}))
	require.NoError(t, a.Start(context.Background()))
	require.NoError(t, a.Relogin(context.Background()))
	require.NoError(t, <-hookErr)
	assert.Equal(t, 3, a.Status().Logins)
}

func TestCloseAbortsStartLogin(t *testing.T) {
	leakCheck(t)
	m := &fakeMethod{gate: make(chan struct{}), entered: make(chan int, 1)}
	a, _ := newAuth(t, m)
	done := make(chan error, 1)
	go func() { done <- a.Start(context.Background()) }()
	<-m.entered
	require.NoError(t, a.Close())
	require.ErrorIs(t, <-done, vaultauth.ErrClosed)
}

func TestStartHonoursContext(t *testing.T) {
	leakCheck(t)
	m := &fakeMethod{gate: make(chan struct{})}
	a, _ := newAuth(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := a.Start(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var le *vaultauth.LoginError
	require.ErrorAs(t, err, &le)
}

func TestNoSecretsInErrorsOrLogs(t *testing.T) {
	leakCheck(t)
	const (
		roleID   = "role-id-7f3c1a"
		secretID = "secret-id-9b2e44"
		password = "pass-word-51d0"
		token    = "hvs.static-token-c0ffee"
		saJWT    = "eyJhbGciOiJSUzI1NiJ9.sa-jwt-payload.sig"
	)
	dir := t.TempDir()
	tokenPath := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenPath, []byte(token+"\n"), 0o600))
	saPath := filepath.Join(dir, "sa-token")
	require.NoError(t, os.WriteFile(saPath, []byte(saJWT), 0o600))
	secretIDPath := filepath.Join(dir, "secret-id")
	require.NoError(t, os.WriteFile(secretIDPath, []byte(secretID), 0o600))

	appRole, err := vaultauth.AppRole(roleID, &approle.SecretID{FromString: secretID})
	require.NoError(t, err)
	appRoleFile, err := vaultauth.AppRole(roleID, &approle.SecretID{FromFile: secretIDPath}, approle.WithWrappingToken())
	require.NoError(t, err)
	up, err := vaultauth.Userpass("dev", &userpass.Password{FromString: password})
	require.NoError(t, err)
	k8s, err := vaultauth.Kubernetes("knot", kubernetes.WithServiceAccountTokenPath(saPath))
	require.NoError(t, err)

	methods := map[string]api.AuthMethod{
		"approle":         appRole,
		"approle wrapped": appRoleFile,
		"userpass":        up,
		"kubernetes":      k8s,
		"static token":    vaultauth.Token(token),
		"token file":      &vaultauth.TokenFile{Path: tokenPath},
	}
	secrets := []string{roleID, secretID, password, token, saJWT}
	for name, m := range methods {
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			var events []vaultauth.Event
			a, err := vaultauth.New(offlineClient(t), m, vaultauth.WithLogger(logger),
				vaultauth.WithTimeout(2*time.Second),
				vaultauth.OnEvent(func(e vaultauth.Event) { events = append(events, e) }))
			require.NoError(t, err)
			defer a.Close()

			err = a.Start(context.Background())
			require.Error(t, err, "nothing listens on the vault address")
			require.NotEmpty(t, logs.String(), "the failure is logged")
			require.Len(t, events, 1)
			texts := map[string]string{
				"error":       err.Error(),
				"log":         logs.String(),
				"status":      fmt.Sprintf("%+v", a.Status()),
				"event":       fmt.Sprintf("%+v", events[0]),
				"method %v":   fmt.Sprintf("%v", m),
				"method %+v":  fmt.Sprintf("%+v", m),
				"method %#v":  fmt.Sprintf("%#v", m),
				"auth %+v":    fmt.Sprintf("%+v", a.Status()),
				"event error": events[0].Err.Error(),
			}
			for what, text := range texts {
				for _, s := range secrets {
					assert.NotContains(t, text, s, "%s of %s leaks a secret", what, name)
				}
			}
		})
	}
}

func TestTokenFileWatchDetectsChanges(t *testing.T) {
	leakCheck(t)
	path := filepath.Join(t.TempDir(), "token")
	write := func(s string) { require.NoError(t, os.WriteFile(path, []byte(s), 0o600)) }
	write("token-one\n")

	f := &vaultauth.TokenFile{Path: path, PollInterval: 2 * time.Millisecond}
	changed := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Watch(ctx, func() { changed <- struct{}{} }) }()
	defer func() {
		cancel()
		require.NoError(t, <-done, "Watch returns nil when its context ends")
	}()

	// quiet reports whether no change is signalled over a few poll periods.
	quiet := func() bool {
		select {
		case <-changed:
			return false
		case <-time.After(30 * time.Millisecond):
			return true
		}
	}
	assert.True(t, quiet(), "the first content read is the baseline")
	write("token-one") // same token, different white space
	assert.True(t, quiet(), "trimmed content is unchanged")
	write("")
	assert.True(t, quiet(), "an empty file (being rewritten) is not a change")
	require.NoError(t, os.Remove(path))
	assert.True(t, quiet(), "a missing file is not a change")
	write("token-two\n")
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("a new token in the file was not noticed")
	}
}

func TestKubernetesReadsServiceAccountTokenAtEachLogin(t *testing.T) {
	leakCheck(t)
	_, err := vaultauth.Kubernetes("")
	require.ErrorContains(t, err, "no role name")

	saPath := filepath.Join(t.TempDir(), "token")
	m, err := vaultauth.Kubernetes("knot", kubernetes.WithServiceAccountTokenPath(saPath))
	require.NoError(t, err, "nothing is read when the method is built")

	a, _ := newAuth(t, m, vaultauth.WithTimeout(2*time.Second))
	err = a.Start(context.Background())
	require.ErrorIs(t, err, os.ErrNotExist, "the first login reads the (missing) token file")
	assert.Equal(t, "kubernetes", a.Status().Method)

	require.NoError(t, os.WriteFile(saPath, []byte("jwt"), 0o600))
	err = a.Start(context.Background())
	require.Error(t, err, "nothing listens on the vault address")
	require.NotErrorIs(t, err, os.ErrNotExist, "the second login read the file that now exists")
	assert.Contains(t, err.Error(), "unable to log in with Kubernetes auth")
}

func TestPerLoginBuildsBeforeEachLogin(t *testing.T) {
	leakCheck(t)
	var builds atomic.Int32
	inner := &fakeMethod{}
	a, _ := newAuth(t, vaultauth.PerLogin("counted", func() (api.AuthMethod, error) {
		builds.Add(1)
		return inner, nil
	}))
	require.NoError(t, a.Start(context.Background()))
	require.NoError(t, a.Relogin(context.Background()))
	require.NoError(t, a.Relogin(context.Background()))
	assert.Equal(t, int32(3), builds.Load())
	assert.Equal(t, int32(3), inner.calls.Load())

	b, _ := newAuth(t, vaultauth.PerLogin("broken", func() (api.AuthMethod, error) {
		return nil, errors.New("no credentials")
	}))
	require.ErrorContains(t, b.Start(context.Background()), "vaultauth: login with broken (start): vaultauth: broken: no credentials")
}

func TestMethodNames(t *testing.T) {
	ar, err := vaultauth.AppRole("r", &approle.SecretID{FromString: "s"})
	require.NoError(t, err)
	up, err := vaultauth.Userpass("u", &userpass.Password{FromString: "p"})
	require.NoError(t, err)
	k8s, err := vaultauth.Kubernetes("k")
	require.NoError(t, err)
	tests := []struct {
		method api.AuthMethod
		want   string
	}{
		{ar, "approle"},
		{up, "userpass"},
		{k8s, "kubernetes"},
		{vaultauth.Token("t"), "static token"},
		{&vaultauth.TokenFile{Path: "/x"}, "token file"},
		{vaultauth.PerLogin("mine", nil), "mine"},
		{&fakeMethod{}, "*vaultauth_test.fakeMethod"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			a, _ := newAuth(t, tc.method)
			assert.Equal(t, tc.want, a.Status().Method)
		})
	}

	_, err = vaultauth.AppRole("", &approle.SecretID{FromString: "s"})
	require.ErrorContains(t, err, "vaultauth: approle: ")
	_, err = vaultauth.Userpass("", &userpass.Password{FromString: "p"})
	require.ErrorContains(t, err, "vaultauth: userpass: ")
}

func TestEventKindString(t *testing.T) {
	assert.Equal(t, "login", vaultauth.EventLogin.String())
	assert.Equal(t, "login failed", vaultauth.EventLoginFailed.String())
	assert.Equal(t, "renewal", vaultauth.EventRenewal.String())
	assert.Equal(t, "expiring", vaultauth.EventExpiring.String())
	assert.Equal(t, "EventKind(42)", vaultauth.EventKind(42).String())
}

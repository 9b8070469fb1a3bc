package integration_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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

	"github.com/knotmtls/knotmtls/integration/vaulttest"
	"github.com/knotmtls/knotmtls/vaultauth"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// These tests run vaultsource.Auth against a real Vault dev server (the
// vaulttest harness says which backend in the test log). Figures worth
// reading (renewals, re-logins, read failures, recovery times) are logged
// with t.Logf; run with -v to see them.

const (
	authKVPath   = "knot/auth-test" // under secret/ (KV v2)
	authPolicy   = "knot-auth-read"
	authReadPath = "secret/data/" + authKVPath
)

// authEnv is a Vault with a readable KV secret and a policy that reads it.
type authEnv struct {
	v    *vaulttest.Vault
	root *api.Client
}

func newAuthEnv(t *testing.T, opts ...vaulttest.Option) *authEnv {
	t.Helper()
	v := vaulttest.StartTest(t, opts...)
	root, err := v.Client()
	require.NoError(t, err)
	ctx := authCtx(t)
	require.NoError(t, root.Sys().PutPolicyWithContext(ctx, authPolicy,
		`path "`+authReadPath+`" { capabilities = ["read"] }`))
	_, err = root.KVv2("secret").Put(ctx, authKVPath, map[string]any{"value": "knot"})
	require.NoError(t, err)
	return &authEnv{v: v, root: root}
}

func authCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// shared returns the client the sources and Auth share: no token yet.
func (e *authEnv) shared(t *testing.T) *api.Client {
	t.Helper()
	c, err := e.v.Client()
	require.NoError(t, err)
	c.ClearToken()
	return c
}

// enableAuth mounts an auth method once.
func (e *authEnv) enableAuth(t *testing.T, typ string) {
	t.Helper()
	require.NoError(t, e.root.Sys().EnableAuthWithOptionsWithContext(authCtx(t), typ, &api.EnableAuthOptions{Type: typ}))
}

// appRole creates an AppRole role with the given token settings and returns
// its role-id and a fresh secret-id.
func (e *authEnv) appRole(t *testing.T, name string, settings map[string]any) (roleID, secretID string) {
	t.Helper()
	ctx := authCtx(t)
	settings["token_policies"] = authPolicy
	_, err := e.root.Logical().WriteWithContext(ctx, "auth/approle/role/"+name, settings)
	require.NoError(t, err)
	s, err := e.root.Logical().ReadWithContext(ctx, "auth/approle/role/"+name+"/role-id")
	require.NoError(t, err)
	roleID = s.Data["role_id"].(string)
	s, err = e.root.Logical().WriteWithContext(ctx, "auth/approle/role/"+name+"/secret-id", nil)
	require.NoError(t, err)
	return roleID, s.Data["secret_id"].(string)
}

// wrappedSecretID returns a response-wrapped secret-id for role name: what
// an orchestrator hands to the service.
func (e *authEnv) wrappedSecretID(t *testing.T, name string) string {
	t.Helper()
	c, err := e.v.Client()
	require.NoError(t, err)
	c.SetWrappingLookupFunc(func(string, string) string { return "5m" })
	s, err := c.Logical().WriteWithContext(authCtx(t), "auth/approle/role/"+name+"/secret-id", nil)
	require.NoError(t, err)
	require.NotNil(t, s.WrapInfo)
	return s.WrapInfo.Token
}

// authRecorder records Auth events with their time.
type authRecorder struct {
	mu     sync.Mutex
	start  time.Time
	events []authRecorded
}

type authRecorded struct {
	at time.Duration
	e  vaultauth.Event
}

func newAuthRecorder() *authRecorder { return &authRecorder{start: time.Now()} }

func (r *authRecorder) hook(e vaultauth.Event) {
	r.mu.Lock()
	r.events = append(r.events, authRecorded{at: time.Since(r.start), e: e})
	r.mu.Unlock()
}

func (r *authRecorder) all() []authRecorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]authRecorded(nil), r.events...)
}

// renewalsAround counts the renewals before and after the first login
// whose reason is reason (after is -1 while there is no such login).
func (r *authRecorder) renewalsAround(reason string) (before, after int) {
	after = -1
	for _, ev := range r.all() {
		switch {
		case ev.e.Kind == vaultauth.EventLogin && ev.e.Reason == reason && after < 0:
			after = 0
		case ev.e.Kind == vaultauth.EventRenewal && after < 0:
			before++
		case ev.e.Kind == vaultauth.EventRenewal:
			after++
		}
	}
	return before, after
}

func (r *authRecorder) String() string {
	var b strings.Builder
	for _, ev := range r.all() {
		fmt.Fprintf(&b, "\n  %6.2fs %-12s reason=%q ttl=%s", ev.at.Seconds(), ev.e.Kind, ev.e.Reason, ev.e.TTL)
		if ev.e.Err != nil {
			fmt.Fprintf(&b, " err=%v", ev.e.Err)
		}
	}
	return b.String()
}

// authLogBuffer is a bytes.Buffer safe for concurrent log writes.
type authLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *authLogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *authLogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// authStart builds and starts an Auth with short backoffs, a recorder and a
// log buffer, registers its Close and a goroutine-leak check.
func authStart(t *testing.T, client *api.Client, m api.AuthMethod, opts ...vaultauth.Option) (*vaultauth.Auth, *authRecorder, *authLogBuffer) {
	t.Helper()
	a, rec, logs := authNew(t, client, m, opts...)
	require.NoError(t, a.Start(authCtx(t)))
	return a, rec, logs
}

func authNew(t *testing.T, client *api.Client, m api.AuthMethod, opts ...vaultauth.Option) (*vaultauth.Auth, *authRecorder, *authLogBuffer) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		// Pooled keep-alive connections of the shared client, and of the
		// fake TokenReview server, are not the Auth's goroutines.
		goleak.VerifyNone(t, ignore,
			goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreAnyFunction("net/http.(*conn).serve"))
	})
	rec := newAuthRecorder()
	logs := &authLogBuffer{}
	opts = append([]vaultauth.Option{
		vaultauth.WithBackoff(100*time.Millisecond, time.Second),
		vaultauth.WithTimeout(10 * time.Second),
		vaultauth.WithLogger(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		vaultauth.OnEvent(rec.hook),
	}, opts...)
	a, err := vaultauth.New(client, m, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Close()) })
	return a, rec, logs
}

// authReadKV reads the test secret once with whatever token the client holds.
func authReadKV(ctx context.Context, c *api.Client) error {
	s, err := c.Logical().ReadWithContext(ctx, authReadPath)
	if err != nil {
		return err
	}
	if s == nil || s.Data == nil {
		return errors.New("no data")
	}
	return nil
}

// authReadKVWithRelogin reads like the vaultsource sources do: on 403 it
// asks HandleDenied once and retries once when told to (or when the token
// changed meanwhile).
func authReadKVWithRelogin(ctx context.Context, c *api.Client, r vaultsource.Auth) error {
	token := c.Token()
	err := authReadKV(ctx, c)
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
		if rerr := r.HandleDenied(ctx, authReadPath, "read", false); rerr != nil && c.Token() == token {
			return errors.Join(err, rerr)
		}
		return authReadKV(ctx, c)
	}
	return err
}

// authReadLoop reads the secret on the shared client every interval until
// stopped and counts the outcomes.
type authReadLoop struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	cancel     context.CancelFunc
	done       chan struct{}
}

func startAuthReadLoop(c *api.Client, every time.Duration) *authReadLoop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &authReadLoop{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			err := authReadKV(rctx, c)
			rcancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				l.failed.Add(1)
				l.mu.Lock()
				if len(l.errs) < 5 {
					l.errs = append(l.errs, strings.Join(strings.Fields(err.Error()), " "))
				}
				l.mu.Unlock()
			} else {
				l.ok.Add(1)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return l
}

func (l *authReadLoop) stop() (ok, failed int64, errs []string) {
	l.cancel()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok.Load(), l.failed.Load(), l.errs
}

// authAssertNoSecrets checks that none of secrets appears in any of texts.
func authAssertNoSecrets(t *testing.T, secrets []string, texts map[string]string) {
	t.Helper()
	for what, text := range texts {
		for _, s := range secrets {
			require.NotEmpty(t, s)
			assert.NotContains(t, text, s, "%s leaks a secret", what)
		}
	}
}

// TestAuthAppRoleRenewsThenLogsInAgain: an AppRole token with a 6 s TTL and
// a 14 s max TTL is renewed until its max TTL, then Auth logs in again before
// it expires; a KV read loop on the shared client meanwhile never fails.
func TestAuthAppRoleRenewsThenLogsInAgain(t *testing.T) {
	env := newAuthEnv(t)
	env.enableAuth(t, "approle")
	roleID, secretID := env.appRole(t, "short", map[string]any{"token_ttl": "6s", "token_max_ttl": "14s"})
	client := env.shared(t)
	m, err := vaultauth.AppRole(roleID, &approle.SecretID{FromString: secretID})
	require.NoError(t, err)

	a, rec, logs := authStart(t, client, m)
	first := client.Token()
	require.NotEmpty(t, first)
	st := a.Status()
	assert.Equal(t, 6*time.Second, st.TokenTTL)
	assert.True(t, st.Renewable)

	reads := startAuthReadLoop(client, 25*time.Millisecond)
	// Wait for the re-login and one renewal of the new token.
	require.Eventually(t, func() bool {
		_, after := rec.renewalsAround("expiring")
		return after >= 1
	}, 40*time.Second, 20*time.Millisecond, "events:%s", rec)
	ok, failed, errs := reads.stop()

	st = a.Status()
	assert.Zero(t, failed, "reads failed: %v", errs)
	assert.Positive(t, ok)
	assert.NotEqual(t, first, client.Token(), "the re-login set a new token")
	assert.GreaterOrEqual(t, st.Logins, 2)
	assert.Zero(t, st.LoginFailures)
	assert.True(t, st.Watching)

	// Order of events: login, renewals, end of renewal, login ("expiring").
	evs := rec.all()
	require.GreaterOrEqual(t, len(evs), 5)
	assert.Equal(t, vaultauth.EventLogin, evs[0].e.Kind)
	i := 1
	for i < len(evs) && evs[i].e.Kind == vaultauth.EventRenewal {
		i++
	}
	require.Less(t, i+1, len(evs), "events:%s", rec)
	renewalsBefore := i - 1
	assert.GreaterOrEqual(t, renewalsBefore, 2, "the first token was renewed before the re-login")
	assert.Equal(t, vaultauth.EventExpiring, evs[i].e.Kind, "events:%s", rec)
	relogin := evs[i+1]
	assert.Equal(t, vaultauth.EventLogin, relogin.e.Kind, "events:%s", rec)
	assert.Equal(t, "expiring", relogin.e.Reason)
	assert.Less(t, relogin.at, 14*time.Second, "the re-login happened before the first token's max TTL")

	authAssertNoSecrets(t, []string{roleID, secretID, first, client.Token()}, map[string]string{"log": logs.String()})
	t.Logf("figures: reads ok=%d failed=%d; renewals before re-login=%d, total renewals=%d, logins=%d; re-login %.2fs after start; events:%s",
		ok, failed, renewalsBefore, st.Renewals, st.Logins, relogin.at.Seconds(), rec)
}

// TestAuthRevokedTokenRecovers: after the token is revoked, reads get 403;
// Relogin (what a source does on 403) makes them work again, and without
// anyone calling Relogin the background loop notices at the next renewal.
func TestAuthRevokedTokenRecovers(t *testing.T) {
	env := newAuthEnv(t)
	env.enableAuth(t, "approle")
	roleID, secretID := env.appRole(t, "revocable", map[string]any{"token_ttl": "6s", "token_max_ttl": "1h"})
	client := env.shared(t)
	m, err := vaultauth.AppRole(roleID, &approle.SecretID{FromString: secretID})
	require.NoError(t, err)
	a, rec, logs := authStart(t, client, m)
	ctx := authCtx(t)
	require.NoError(t, authReadKV(ctx, client))

	revoke := func() string {
		tok := client.Token()
		require.NoError(t, env.root.Auth().Token().RevokeTreeWithContext(ctx, tok))
		err := authReadKV(ctx, client)
		var re *api.ResponseError
		require.ErrorAs(t, err, &re, "a revoked token is refused")
		require.Equal(t, http.StatusForbidden, re.StatusCode)
		return tok
	}

	t.Run("relogin on 403", func(t *testing.T) {
		revoked := revoke()
		require.NoError(t, authReadKVWithRelogin(ctx, client, a))
		assert.NotEqual(t, revoked, client.Token())
		assert.Equal(t, 2, a.Status().Logins)
	})

	t.Run("background loop", func(t *testing.T) {
		revoked := revoke()
		began := time.Now()
		var failedReads int
		require.Eventually(t, func() bool {
			if authReadKV(ctx, client) == nil {
				return true
			}
			failedReads++
			return false
		}, 30*time.Second, 50*time.Millisecond, "events:%s", rec)
		recovery := time.Since(began)
		assert.NotEqual(t, revoked, client.Token())
		st := a.Status()
		assert.Equal(t, 3, st.Logins)
		assert.Zero(t, st.LoginFailures)
		t.Logf("figures: background recovery after revocation %.2fs (%d failed reads at 50 ms intervals); status logins=%d renewals=%d; events:%s",
			recovery.Seconds(), failedReads, st.Logins, st.Renewals, rec)
	})
	authAssertNoSecrets(t, []string{roleID, secretID}, map[string]string{"log": logs.String()})
}

// TestAuthAppRoleWrappedSecretIDFromFile: a response-wrapped secret-id in a
// file logs in; the wrapping token works once, so a second login fails
// clearly. While logins fail, the previous (6 s TTL) token keeps being
// renewed, so reads never fail, until the orchestrator writes a fresh wrapped
// secret-id, which the background retry then picks up.
func TestAuthAppRoleWrappedSecretIDFromFile(t *testing.T) {
	env := newAuthEnv(t)
	env.enableAuth(t, "approle")
	roleID, _ := env.appRole(t, "wrapped", map[string]any{"token_ttl": "6s", "token_max_ttl": "1h"})
	path := filepath.Join(t.TempDir(), "secret-id.wrapped")
	wrapped1 := env.wrappedSecretID(t, "wrapped")
	authWriteFile(t, path, wrapped1+"\n")

	client := env.shared(t)
	m, err := vaultauth.AppRole(roleID, &approle.SecretID{FromFile: path}, approle.WithWrappingToken())
	require.NoError(t, err)
	a, rec, logs := authStart(t, client, m, vaultauth.WithBackoff(100*time.Millisecond, 400*time.Millisecond))
	ctx := authCtx(t)
	require.NoError(t, authReadKV(ctx, client))
	first := client.Token()
	reads := startAuthReadLoop(client, 25*time.Millisecond)

	err = a.Relogin(ctx)
	var le *vaultauth.LoginError
	require.ErrorAs(t, err, &le, "the wrapping token was used by the first login")
	assert.Equal(t, "approle", le.Method)
	var re *api.ResponseError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, err.Error(), "unwrap")
	assert.Equal(t, first, client.Token(), "the previous token stays set")

	// The background loop retries the login with backoff and meanwhile
	// keeps renewing the previous token.
	renewals := a.Status().Renewals
	require.Eventually(t, func() bool {
		st := a.Status()
		return st.Renewals > renewals && st.ConsecutiveFailures >= 3
	}, 20*time.Second, 20*time.Millisecond, "events:%s", rec)
	assert.Equal(t, first, client.Token())

	wrapped2 := env.wrappedSecretID(t, "wrapped")
	authWriteFile(t, path, wrapped2+"\n")
	require.Eventually(t, func() bool { return a.Status().Logins == 2 }, 20*time.Second, 20*time.Millisecond,
		"the background retry logs in with the fresh wrapped secret-id; events:%s", rec)
	ok, failed, errs := reads.stop()
	assert.NotEqual(t, first, client.Token())
	require.NoError(t, authReadKV(ctx, client))
	assert.Zero(t, failed, "reads failed: %v", errs)
	st := a.Status()
	assert.GreaterOrEqual(t, st.LoginFailures, 3)
	assert.Zero(t, st.ConsecutiveFailures)

	authAssertNoSecrets(t, []string{roleID, wrapped1, wrapped2, first, client.Token()}, map[string]string{
		"log": logs.String(), "error": err.Error(), "status": fmt.Sprintf("%+v", st),
	})
	t.Logf("figures: reads ok=%d failed=%d; logins=%d, failed logins while no fresh wrapped secret-id=%d, renewals=%d; events:%s",
		ok, failed, st.Logins, st.LoginFailures, st.Renewals, rec)
}

// TestAuthUserpass: userpass logs in, the renewable token is watched and
// renewed; a wrong password fails with an error that does not hold it.
func TestAuthUserpass(t *testing.T) {
	env := newAuthEnv(t)
	env.enableAuth(t, "userpass")
	password := authRandomHex(t, 16)
	_, err := env.root.Logical().WriteWithContext(authCtx(t), "auth/userpass/users/dev", map[string]any{
		"password": password, "token_policies": authPolicy, "token_ttl": "1h",
	})
	require.NoError(t, err)

	client := env.shared(t)
	m, err := vaultauth.Userpass("dev", &userpass.Password{FromString: password})
	require.NoError(t, err)
	a, rec, logs := authStart(t, client, m)
	require.NoError(t, authReadKV(authCtx(t), client))
	require.Eventually(t, func() bool { st := a.Status(); return st.Watching && st.Renewals >= 1 },
		10*time.Second, 10*time.Millisecond, "events:%s", rec)
	st := a.Status()
	assert.Equal(t, "userpass", st.Method)
	assert.Equal(t, time.Hour, st.TokenTTL)
	assert.True(t, st.Renewable)

	wrong := "wrong-" + authRandomHex(t, 8)
	bad, err := vaultauth.Userpass("dev", &userpass.Password{FromString: wrong})
	require.NoError(t, err)
	b, _, badLogs := authNew(t, env.shared(t), bad)
	err = b.Start(authCtx(t))
	var re *api.ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusBadRequest, re.StatusCode)
	authAssertNoSecrets(t, []string{password, wrong}, map[string]string{
		"log": logs.String(), "bad log": badLogs.String(), "error": err.Error(),
	})
}

// TestAuthTokenFileReloadsChangedToken: a token file (a Vault Agent sink) is
// read at Start and again when it changes; a bad token in the file fails the
// login and keeps the previous token.
func TestAuthTokenFileReloadsChangedToken(t *testing.T) {
	env := newAuthEnv(t)
	ctx := authCtx(t)
	newToken := func() string {
		s, err := env.root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{
			Policies: []string{authPolicy}, TTL: "1h",
		})
		require.NoError(t, err)
		return s.Auth.ClientToken
	}
	path := filepath.Join(t.TempDir(), "agent-token")
	tokenA := newToken()
	authWriteFile(t, path, tokenA+"\n")

	client := env.shared(t)
	a, rec, logs := authStart(t, client, &vaultauth.TokenFile{Path: path, PollInterval: 50 * time.Millisecond})
	assert.Equal(t, tokenA, client.Token())
	require.NoError(t, authReadKV(ctx, client))
	st := a.Status()
	assert.Equal(t, "token file", st.Method)
	assert.True(t, st.Renewable)
	assert.InDelta(t, time.Hour.Seconds(), st.TokenTTL.Seconds(), 5)

	tokenB := newToken()
	changedAt := time.Now()
	authWriteFile(t, path, tokenB+"\n")
	require.Eventually(t, func() bool { return client.Token() == tokenB }, 10*time.Second, 5*time.Millisecond,
		"events:%s", rec)
	pickup := time.Since(changedAt)
	require.NoError(t, env.root.Auth().Token().RevokeTreeWithContext(ctx, tokenA))
	require.NoError(t, authReadKV(ctx, client), "reads use the new token")
	assert.Equal(t, 2, a.Status().Logins)

	// A bad token in the file: the login fails, token B stays.
	bogus := "hvs." + authRandomHex(t, 20)
	authWriteFile(t, path, bogus)
	require.Eventually(t, func() bool { return a.Status().LoginFailures >= 1 }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, tokenB, client.Token())
	require.NoError(t, authReadKV(ctx, client))
	var re *api.ResponseError
	require.ErrorAs(t, a.Status().LastError, &re)
	assert.Equal(t, http.StatusForbidden, re.StatusCode)

	// Back to a good token: picked up again.
	authWriteFile(t, path, tokenB+"\n")
	require.Eventually(t, func() bool { return a.Status().ConsecutiveFailures == 0 }, 10*time.Second, 5*time.Millisecond)
	st = a.Status()
	assert.Equal(t, 3, st.Logins)
	authAssertNoSecrets(t, []string{tokenA, tokenB, bogus}, map[string]string{
		"log": logs.String(), "last error": st.LastError.Error(),
	})
	t.Logf("figures: new token picked up %.0f ms after the file changed (poll 50 ms); logins=%d failures=%d renewals=%d; events:%s",
		float64(pickup.Microseconds())/1000, st.Logins, st.LoginFailures, st.Renewals, rec)
}

// TestAuthStaticRootTokenIsNotRenewed: the dev root token has TTL 0; Auth
// looks it up once and then sends nothing: no watcher, no renewal.
func TestAuthStaticRootTokenIsNotRenewed(t *testing.T) {
	env := newAuthEnv(t)
	var requests atomic.Int64
	var paths sync.Map
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client, err := env.v.ClientWith(authRoundTrip(func(r *http.Request) (*http.Response, error) {
		requests.Add(1)
		paths.Store(r.URL.Path, true)
		return tr.RoundTrip(r)
	}))
	require.NoError(t, err)
	client.ClearToken()

	a, _, _ := authStart(t, client, vaultauth.Token(env.v.Token))
	assert.Equal(t, env.v.Token, client.Token())
	st := a.Status()
	assert.Equal(t, 1, st.Logins)
	assert.Zero(t, st.TokenTTL)
	assert.True(t, st.TokenExpires.IsZero())
	assert.False(t, st.Renewable)
	assert.False(t, st.Watching)
	assert.Equal(t, int64(1), requests.Load(), "one lookup-self")
	_, looked := paths.Load("/v1/auth/token/lookup-self")
	assert.True(t, looked)

	// Nothing happens in the background: no renewal request is ever sent.
	time.Sleep(1500 * time.Millisecond)
	st = a.Status()
	assert.Zero(t, st.Renewals)
	assert.False(t, st.Watching)
	assert.Equal(t, int64(1), requests.Load(), "no renewal or other request in the background")

	// A static token that is not valid fails with Vault's 403, token not echoed.
	bogus := "hvs." + authRandomHex(t, 20)
	b, _, logs := authNew(t, env.shared(t), vaultauth.Token(bogus))
	err = b.Start(authCtx(t))
	var re *api.ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusForbidden, re.StatusCode)
	authAssertNoSecrets(t, []string{bogus}, map[string]string{"error": err.Error(), "log": logs.String()})
}

// TestAuthStaticRenewableTokenRenewedUntilMaxTTL: a renewable static token
// is renewed until its max TTL; then Auth does not log in again (that would
// return the same token); once it expired, Relogin reports Vault's 403.
func TestAuthStaticRenewableTokenRenewedUntilMaxTTL(t *testing.T) {
	env := newAuthEnv(t)
	ctx := authCtx(t)
	renewable := true
	s, err := env.root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{
		Policies: []string{authPolicy}, TTL: "6s", ExplicitMaxTTL: "9s", Renewable: &renewable,
	})
	require.NoError(t, err)
	token := s.Auth.ClientToken

	client := env.shared(t)
	a, rec, logs := authStart(t, client, vaultauth.Token(token))
	require.Eventually(t, func() bool {
		for _, ev := range rec.all() {
			if ev.e.Kind == vaultauth.EventExpiring {
				return true
			}
		}
		return false
	}, 20*time.Second, 20*time.Millisecond, "events:%s", rec)
	st := a.Status()
	assert.Equal(t, 1, st.Logins, "no login after renewal ended: it would return the same token")
	assert.GreaterOrEqual(t, st.Renewals, 2)
	assert.Zero(t, st.LoginFailures)
	assert.False(t, st.Watching)

	require.Eventually(t, func() bool { return authReadKV(ctx, client) != nil }, 20*time.Second, 50*time.Millisecond,
		"the token expires at its max TTL")
	err = authReadKVWithRelogin(ctx, client, a)
	var re *api.ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusForbidden, re.StatusCode)
	var le *vaultauth.LoginError
	require.ErrorAs(t, err, &le, "Relogin failed too")
	st = a.Status()
	assert.Equal(t, 1, st.Logins)
	assert.GreaterOrEqual(t, st.LoginFailures, 1)
	authAssertNoSecrets(t, []string{token}, map[string]string{"log": logs.String(), "error": err.Error()})
	t.Logf("figures: static renewable token: renewals=%d logins=%d; events:%s", st.Renewals, st.Logins, rec)
}

// TestAuthKubernetesReadsRotatedServiceAccountToken: Vault's real kubernetes
// auth method, configured against a fake Kubernetes TokenReview API (this
// machine has no cluster). The service-account token file is rotated between
// logins and the old token revoked: the re-login succeeds only because a
// fresh upstream helper is built, and reads the file, for every login.
func TestAuthKubernetesReadsRotatedServiceAccountToken(t *testing.T) {
	var env *authEnv
	listenHost := "127.0.0.1"
	if _, err := os.Stat(vaulttest.BinaryPath()); err == nil {
		// A local Vault process reaches a loopback TokenReview server.
		env = newAuthEnv(t, vaulttest.WithBackend(vaulttest.BackendProcess))
	} else {
		env = newAuthEnv(t)
		if strings.HasPrefix(env.v.Backend, vaulttest.BackendContainer) {
			// A container reaches the host on the docker bridge.
			listenHost = authDockerBridgeIP(t)
		}
	}
	k8s := newAuthFakeTokenReview(t, listenHost)

	ctx := authCtx(t)
	env.enableAuth(t, "kubernetes")
	_, err := env.root.Logical().WriteWithContext(ctx, "auth/kubernetes/config", map[string]any{
		"kubernetes_host":      k8s.url,
		"disable_local_ca_jwt": true,
	})
	require.NoError(t, err)
	_, err = env.root.Logical().WriteWithContext(ctx, "auth/kubernetes/role/knot", map[string]any{
		"bound_service_account_names":      "knot-client",
		"bound_service_account_namespaces": "payments",
		"token_policies":                   authPolicy,
		"token_ttl":                        "1h",
	})
	require.NoError(t, err)

	saPath := filepath.Join(t.TempDir(), "token")
	jwt1 := k8s.issue(t)
	authWriteFile(t, saPath, jwt1)

	client := env.shared(t)
	m, err := vaultauth.Kubernetes("knot", kubernetes.WithServiceAccountTokenPath(saPath))
	require.NoError(t, err)
	a, rec, logs := authStart(t, client, m)
	require.NoError(t, authReadKV(ctx, client))
	assert.Equal(t, []string{jwt1}, k8s.reviewed())

	// Kubernetes rotates the projected token and the old one stops working.
	jwt2 := k8s.issue(t)
	authWriteFile(t, saPath, jwt2)
	k8s.revoke(jwt1)
	require.NoError(t, a.Relogin(ctx))
	assert.Equal(t, []string{jwt1, jwt2}, k8s.reviewed(), "the second login sent the rotated token")
	require.NoError(t, authReadKV(ctx, client))
	st := a.Status()
	assert.Equal(t, 2, st.Logins)
	assert.Zero(t, st.LoginFailures)
	assert.Equal(t, "kubernetes", st.Method)

	// A helper built once (what Kubernetes() avoids) keeps the token it read.
	stale, err := kubernetes.NewKubernetesAuth("knot", kubernetes.WithServiceAccountTokenPath(saPath))
	require.NoError(t, err)
	jwt3 := k8s.issue(t)
	authWriteFile(t, saPath, jwt3)
	k8s.revoke(jwt2)
	_, err = stale.Login(ctx, env.shared(t))
	require.Error(t, err, "a helper built before the rotation sends the revoked token")
	require.NoError(t, a.Relogin(ctx), "Auth builds a fresh helper that reads the rotated token")
	reviewed := k8s.reviewed()
	assert.Equal(t, []string{jwt1, jwt2, jwt2, jwt3}, reviewed)
	st = a.Status()
	assert.Equal(t, 3, st.Logins)

	authAssertNoSecrets(t, []string{jwt1, jwt2, jwt3}, map[string]string{"log": logs.String()})
	t.Logf("figures: kubernetes logins=%d, token reviews=%d; events:%s", st.Logins, len(k8s.reviewed()), rec)
}

// authFakeTokenReview is a minimal Kubernetes TokenReview API: it authenticates
// the service-account tokens it issued and has not revoked.
type authFakeTokenReview struct {
	url string
	key *rsa.PrivateKey
	uid string

	mu    sync.Mutex
	valid map[string]bool
	seen  []string
}

func newAuthFakeTokenReview(t *testing.T, host string) *authFakeTokenReview {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	f := &authFakeTokenReview{key: key, uid: "5c0ffee0-0000-4000-8000-" + authRandomHex(t, 6), valid: map[string]bool{}}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(f.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	f.url = "http://" + ln.Addr().String()
	return f
}

func (f *authFakeTokenReview) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" {
		http.NotFound(w, r)
		return
	}
	var review struct {
		Spec struct {
			Token string `json:"token"`
		} `json:"spec"`
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err := json.Unmarshal(body, &review); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.seen = append(f.seen, review.Spec.Token)
	ok := f.valid[review.Spec.Token]
	f.mu.Unlock()
	status := map[string]any{"authenticated": false}
	if ok {
		status = map[string]any{"authenticated": true, "user": map[string]any{
			"username": "system:serviceaccount:payments:knot-client", "uid": f.uid,
		}}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status,
	})
}

// issue returns a new, valid service-account JWT (RS256, legacy claims).
func (f *authFakeTokenReview) issue(t *testing.T) string {
	t.Helper()
	enc := base64.RawURLEncoding
	header, err := json.Marshal(map[string]any{"alg": "RS256", "typ": "JWT", "kid": "fake"})
	require.NoError(t, err)
	claims, err := json.Marshal(map[string]any{
		"iss":                                    "kubernetes/serviceaccount",
		"sub":                                    "system:serviceaccount:payments:knot-client",
		"jti":                                    authRandomHex(t, 8),
		"iat":                                    time.Now().Unix(),
		"kubernetes.io/serviceaccount/namespace": "payments",
		"kubernetes.io/serviceaccount/service-account.name": "knot-client",
		"kubernetes.io/serviceaccount/service-account.uid":  f.uid,
	})
	require.NoError(t, err)
	signed := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	digest := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, f.key, crypto.SHA256, digest[:])
	require.NoError(t, err)
	jwt := signed + "." + enc.EncodeToString(sig)
	f.mu.Lock()
	f.valid[jwt] = true
	f.mu.Unlock()
	return jwt
}

func (f *authFakeTokenReview) revoke(jwt string) {
	f.mu.Lock()
	delete(f.valid, jwt)
	f.mu.Unlock()
}

func (f *authFakeTokenReview) reviewed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

// authDockerBridgeIP returns the host's address on docker0, which containers on
// the default bridge network can reach.
func authDockerBridgeIP(t *testing.T) string {
	t.Helper()
	ifc, err := net.InterfaceByName("docker0")
	require.NoError(t, err, "the container backend needs the docker0 bridge to reach the fake TokenReview API")
	addrs, err := ifc.Addrs()
	require.NoError(t, err)
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Fatal("docker0 has no IPv4 address")
	return ""
}

// authWriteFile replaces path the way Vault Agent and the kubelet do:
// write a temporary file, then rename it over the old one.
func authWriteFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

func authRandomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

type authRoundTrip func(*http.Request) (*http.Response, error)

func (f authRoundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

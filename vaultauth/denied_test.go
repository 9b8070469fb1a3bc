package vaultauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/vaultauth"
)

// These tests put a stand-in for Vault's token endpoints behind the Auth
// (lookup-self, revoke-self) to count exactly what a 403 leads to. The same
// behaviour against a real Vault: integration/denied_test.go.

// tokenVault answers auth/token/lookup-self and revoke-self for the tokens
// it was told about; logins come from its login method.
type tokenVault struct {
	mu      sync.Mutex
	valid   map[string]bool
	revoked []string
	lookups atomic.Int32
	logins  atomic.Int32
	// newValid says whether tokens handed out by later logins are valid.
	newValid atomic.Bool
	// revokeFails makes revoke-self answer 503.
	revokeFails atomic.Bool
}

func newTokenVault() *tokenVault {
	v := &tokenVault{valid: map[string]bool{}}
	v.newValid.Store(true)
	return v
}

func (v *tokenVault) setValid(token string, ok bool) {
	v.mu.Lock()
	v.valid[token] = ok
	v.mu.Unlock()
}

func (v *tokenVault) revokedTokens() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.revoked...)
}

// Login is the api.AuthMethod: token-<n>, valid per newValid.
func (v *tokenVault) Login(context.Context, *api.Client) (*api.Secret, error) {
	n := v.logins.Add(1)
	tok := fmt.Sprintf("token-%d", n)
	v.setValid(tok, v.newValid.Load())
	return &api.Secret{Auth: &api.SecretAuth{ClientToken: tok, Policies: []string{"knot-runtime"}}}, nil
}

func (v *tokenVault) serve(t *testing.T) *api.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get("X-Vault-Token")
		v.mu.Lock()
		ok := v.valid[tok]
		v.mu.Unlock()
		switch r.URL.Path {
		case "/v1/auth/token/lookup-self":
			v.lookups.Add(1)
			if !ok {
				writeJSON(w, http.StatusForbidden, map[string]any{"errors": []string{"permission denied"}})
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
				"ttl": 0, "renewable": false, "policies": []string{"default", "knot-runtime"}}})
		case "/v1/auth/token/revoke-self":
			if v.revokeFails.Load() {
				writeJSON(w, http.StatusServiceUnavailable, map[string]any{"errors": []string{"Vault is sealed"}})
				return
			}
			v.mu.Lock()
			v.revoked = append(v.revoked, tok)
			v.valid[tok] = false
			v.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		default:
			writeJSON(w, http.StatusNotFound, map[string]any{"errors": []string{"no handler"}})
		}
	}))
	t.Cleanup(srv.Close)
	cfg := api.DefaultConfig()
	cfg.Address = srv.URL
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	require.NoError(t, err)
	c.ClearToken()
	t.Cleanup(func() { cfg.HttpClient.CloseIdleConnections() })
	return c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// deny calls HandleDenied from n goroutines at once, the way vaultsource
// does after a 403 (a token that changed meanwhile means "retry" whatever
// HandleDenied says), and returns the errors.
//
// With v set, a request is only denied while its token is invalid (no
// policy problem): a caller that starts after the re-login would have had
// no 403, so it does not call HandleDenied.
func deny(a *vaultauth.Auth, client *api.Client, n int, path, capability string, v ...*tokenVault) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			before := client.Token()
			if len(v) > 0 {
				v[0].mu.Lock()
				ok := v[0].valid[before]
				v[0].mu.Unlock()
				if ok {
					return // the request succeeded
				}
			}
			errs[i] = a.HandleDenied(context.Background(), path, capability, false)
			if errs[i] != nil && client.Token() != before {
				errs[i] = nil
			}
		}()
	}
	wg.Wait()
	return errs
}

// TestDeniedValidTokenNeverLogsIn: a valid token whose policy lacks a
// capability (the policy-typo case) gets no login at all, however many
// handshakes fail: one lookup-self per backoff step, every caller a typed
// error naming path and capability, one log line and event per step.
func TestDeniedValidTokenNeverLogsIn(t *testing.T) {
	leakCheck(t)
	v := newTokenVault()
	client := v.serve(t)
	var denied atomic.Int32
	step := 150 * time.Millisecond
	a, err := vaultauth.New(client, v, vaultauth.WithLogger(quietLogger()),
		vaultauth.WithBackoff(step, 4*step),
		vaultauth.OnEvent(func(e vaultauth.Event) {
			if e.Kind == vaultauth.EventDenied {
				assert.Contains(t, []string{"transit/sign/knot", "secret/metadata/knot"}, e.Path)
				denied.Add(1)
			}
		}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	t.Cleanup(vaultauth.SetJitter(0))
	require.NoError(t, a.Start(context.Background()))

	errs := deny(a, client, 50, "transit/sign/knot", "update")
	for _, err := range errs {
		require.ErrorIs(t, err, vaultauth.ErrPermissionDenied)
		assert.Contains(t, err.Error(), `lack "update" on transit/sign/knot`)
		assert.Contains(t, err.Error(), "knot-runtime", "the policies are named")
		assert.NotContains(t, err.Error(), "token-1")
	}
	assert.Equal(t, int32(1), v.logins.Load(), "no login after the first")
	assert.Equal(t, int32(1), v.lookups.Load(), "one shared lookup-self for 50 callers")

	// Within the step: the verdict is reused for that path, no request.
	for _, err := range deny(a, client, 20, "transit/sign/knot", "update") {
		require.ErrorIs(t, err, vaultauth.ErrPermissionDenied)
	}
	assert.Equal(t, int32(1), v.lookups.Load())
	// Another path gets its own (shared) lookup: a token revoked meanwhile
	// would be noticed there.
	for _, err := range deny(a, client, 20, "secret/metadata/knot", "read") {
		require.ErrorIs(t, err, vaultauth.ErrPermissionDenied)
		assert.Contains(t, err.Error(), `lack "read" on secret/metadata/knot`)
	}
	assert.Equal(t, int32(2), v.lookups.Load())

	// After the step: one more lookup, still no login.
	require.Eventually(t, func() bool {
		_ = a.HandleDenied(context.Background(), "transit/sign/knot", "update", false)
		return v.lookups.Load() == 3
	}, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, int32(1), v.logins.Load())
	st := a.Status()
	assert.Equal(t, 3, st.Lookups)
	assert.Equal(t, 3, st.Denials)
	require.NoError(t, a.Close())
	assert.Equal(t, int32(3), denied.Load(), "one denial event per path and backoff step")
}

func TestDeniedInvalidTokenOneLoginPerStep(t *testing.T) {
	leakCheck(t)
	v := newTokenVault()
	client := v.serve(t)
	step := 200 * time.Millisecond
	t.Cleanup(vaultauth.SetJitter(0))
	a, err := vaultauth.New(client, v, vaultauth.WithLogger(quietLogger()), vaultauth.WithBackoff(step, 4*step))
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	require.NoError(t, a.Start(context.Background()))

	v.setValid("token-1", false) // revoked behind our back
	for _, err := range deny(a, client, 50, "secret/data/knot", "read", v) {
		require.NoError(t, err, "retry with the new token")
	}
	assert.Equal(t, int32(2), v.logins.Load(), "50 callers, one re-login")
	assert.Equal(t, "token-2", client.Token())
	lookups := v.lookups.Load()
	assert.LessOrEqual(t, lookups, int32(2), "one shared lookup (and at most one more racing the login)")

	// The new token is refused as well (say the role's tokens are revoked
	// as they are issued): no login storm. (Another path: a caller of the
	// first round that raced the login may have had token-2 looked up and
	// found valid; that verdict holds for its path for one step.)
	v.newValid.Store(false)
	v.setValid("token-2", false)
	const other = "secret/data/knot/other"
	errs := deny(a, client, 50, other, "read", v)
	logins := v.logins.Load()
	assert.LessOrEqual(t, logins, int32(3), "at most one login in this step")
	for range 5 {
		for _, err := range deny(a, client, 10, other, "read", v) {
			if err != nil {
				require.ErrorIs(t, err, vaultauth.ErrInvalidToken)
			}
		}
	}
	assert.Equal(t, logins, v.logins.Load(), "no more logins within the step")
	for _, err := range errs {
		if err != nil {
			require.ErrorIs(t, err, vaultauth.ErrInvalidToken)
		}
	}
}

// TestReplacedTokensRevoked: each token a new login replaces is revoked;
// a revocation that failed is tried again on Close; the current token stays.
func TestReplacedTokensRevoked(t *testing.T) {
	leakCheck(t)
	v := newTokenVault()
	client := v.serve(t)
	a, err := vaultauth.New(client, v, vaultauth.WithLogger(quietLogger()))
	require.NoError(t, err)
	require.NoError(t, a.Start(context.Background()))
	require.NoError(t, a.Relogin(context.Background()))
	require.NoError(t, a.Relogin(context.Background()))
	require.Eventually(t, func() bool { return len(v.revokedTokens()) == 2 }, 5*time.Second, time.Millisecond)
	assert.ElementsMatch(t, []string{"token-1", "token-2"}, v.revokedTokens())

	v.revokeFails.Store(true)
	require.NoError(t, a.Relogin(context.Background()))
	require.Eventually(t, func() bool { return a.Status().RevokeFailures == 1 }, 5*time.Second, time.Millisecond)
	v.revokeFails.Store(false)
	require.NoError(t, a.Close())
	assert.ElementsMatch(t, []string{"token-1", "token-2", "token-3"}, v.revokedTokens(), "Close retries the failed revocation")
	st := a.Status()
	assert.Equal(t, 3, st.Revoked)
	assert.Equal(t, "token-4", client.Token(), "the current token stays set")
}

// TestExternalTokensNeverRevoked: a static token and a token file belong
// to whoever issued them.
func TestExternalTokensNeverRevoked(t *testing.T) {
	leakCheck(t)
	v := newTokenVault()
	client := v.serve(t)
	v.setValid("static-1", true)
	a, err := vaultauth.New(client, vaultauth.Token("static-1"), vaultauth.WithLogger(quietLogger()))
	require.NoError(t, err)
	require.NoError(t, a.Start(context.Background()))
	require.NoError(t, a.Relogin(context.Background()))
	require.NoError(t, a.Close())
	assert.Empty(t, v.revokedTokens())
	assert.Equal(t, 0, a.Status().Revoked+a.Status().RevokeFailures)

	// A static token Vault no longer accepts: the "login" looks it up again
	// and fails; nothing is revoked.
	b, err := vaultauth.New(client, vaultauth.Token("static-1"), vaultauth.WithLogger(quietLogger()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	require.NoError(t, b.Start(context.Background()))
	v.setValid("static-1", false)
	err = b.HandleDenied(context.Background(), "secret/data/knot", "read", false)
	var le *vaultauth.LoginError
	require.ErrorAs(t, err, &le)
	err = b.HandleDenied(context.Background(), "secret/data/knot", "read", false)
	require.ErrorIs(t, err, vaultauth.ErrInvalidToken, "while the login fails, at once")
	assert.Equal(t, 1, b.Status().LoginFailures)
	assert.Empty(t, v.revokedTokens())
}

// TestProxyMode: behind a Vault Proxy the service holds no token; a 403
// with the proxy's token invalid waits and retries once, with it valid
// (policy) fails at once; concurrent callers share one lookup.
func TestProxyMode(t *testing.T) {
	leakCheck(t)
	v := newTokenVault()
	client := v.serve(t)
	client.SetToken("leftover")
	p, err := vaultauth.NewProxy(client, vaultauth.WithProxyWait(50*time.Millisecond), vaultauth.WithLogger(quietLogger()))
	require.NoError(t, err)
	assert.Empty(t, client.Token(), "the service holds no token")
	assert.NotContains(t, fmt.Sprintf("%v %+v %#v", p, p, p), "leftover")

	// The proxy's own token ("" from our side: it adds it) is invalid.
	errs := make(chan error, 20)
	start := time.Now()
	for range 20 {
		go func() { errs <- p.HandleDenied(context.Background(), "transit/sign/knot", "update", false) }()
	}
	for range 20 {
		require.NoError(t, <-errs, "retry once after the proxy logged in again")
	}
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond, "waited for the proxy")
	assert.LessOrEqual(t, v.lookups.Load(), int32(2), "callers share the lookup")
	assert.Equal(t, int32(0), v.logins.Load(), "no login by the service")

	// The proxy's token is valid: the policy denies; no retry.
	v.setValid("", true)
	require.Eventually(t, func() bool {
		err := p.HandleDenied(context.Background(), "transit/sign/knot", "update", false)
		return errors.Is(err, vaultauth.ErrPermissionDenied)
	}, 5*time.Second, 10*time.Millisecond)
	err = p.HandleDenied(context.Background(), "secret/data/x", "read", false)
	require.ErrorIs(t, err, vaultauth.ErrPermissionDenied)
	assert.Contains(t, err.Error(), `"read" on secret/data/x`)
	st := p.Status()
	assert.GreaterOrEqual(t, st.Retries, 1)
	assert.GreaterOrEqual(t, st.Denials, 1)

	_, err = vaultauth.NewProxy(nil)
	require.Error(t, err)
	_, err = vaultauth.NewProxy(client, vaultauth.WithProxyWait(0))
	require.Error(t, err)
}

// TestDeniedSaidInvalidToken: when Vault's 403 itself says "invalid token"
// there is no lookup: one shared login for all callers, at most one per
// backoff step; behind a Proxy, only the wait.
func TestDeniedSaidInvalidToken(t *testing.T) {
	leakCheck(t)
	v := newTokenVault()
	client := v.serve(t)
	t.Cleanup(vaultauth.SetJitter(0))
	a, err := vaultauth.New(client, v, vaultauth.WithLogger(quietLogger()), vaultauth.WithBackoff(time.Minute, time.Hour))
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	require.NoError(t, a.Start(context.Background()))
	v.setValid("token-1", false)

	errs := make(chan error, 30)
	for range 30 {
		go func() { errs <- a.HandleDenied(context.Background(), "secret/data/knot", "read", true) }()
	}
	var retries, refused int
	for range 30 {
		if err := <-errs; err == nil {
			retries++
		} else {
			require.ErrorIs(t, err, vaultauth.ErrInvalidToken)
			refused++
		}
	}
	assert.Equal(t, int32(2), v.logins.Load(), "one login for 30 callers")
	assert.Zero(t, v.lookups.Load(), "no lookup: Vault said why")
	assert.Positive(t, retries)
	// A caller told "invalid token" again within the step gets no login.
	require.ErrorIs(t, a.HandleDenied(context.Background(), "secret/data/knot", "read", true), vaultauth.ErrInvalidToken)
	assert.Equal(t, int32(2), v.logins.Load())
	t.Logf("figures: 31 callers told invalid token: logins=1 (plus Start), lookups=0, retried=%d, refused=%d", retries, refused+1)

	p, err := vaultauth.NewProxy(client, vaultauth.WithProxyWait(20*time.Millisecond), vaultauth.WithLogger(quietLogger()))
	require.NoError(t, err)
	v.setValid("", true) // a lookup would say valid (the proxy already re-authenticated)
	require.NoError(t, p.HandleDenied(context.Background(), "secret/data/knot", "read", true), "Vault said invalid token: wait and retry")
	assert.Zero(t, v.lookups.Load())
	assert.Equal(t, 1, p.Status().Retries)
}

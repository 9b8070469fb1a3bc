package otelknotmtls_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/otelknotmtls"
	"github.com/knotmtls/knotmtls/vaultauth"
)

// The Vault tests here use a small stand-in for Vault's HTTP API: the point
// is the wiring from vaultauth and vaultsource to the instruments. The same
// login, renewal and Transit code runs against a real Vault in the
// integration module.

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fakeAuthVault answers AppRole logins (the first failLogins with 400) and
// token renewals, each with a renewable token of ttl seconds.
type fakeAuthVault struct {
	ttl        int
	failLogins int32
	logins     atomic.Int32
	renewals   atomic.Int32
}

func (f *fakeAuthVault) client(t *testing.T) *api.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := func(token string) map[string]any {
			return map[string]any{"auth": map[string]any{"client_token": token, "accessor": "acc-" + token,
				"lease_duration": f.ttl, "renewable": true, "policies": []string{"knot"}}}
		}
		switch r.URL.Path {
		case "/v1/auth/approle/login":
			n := f.logins.Add(1)
			if n <= f.failLogins {
				writeJSON(w, http.StatusBadRequest, map[string]any{"errors": []string{"invalid role or secret ID"}})
				return
			}
			writeJSON(w, http.StatusOK, auth(fmt.Sprintf("hvs.token-%d", n)))
		case "/v1/auth/token/lookup-self": // a root-like token: never expires
			writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"ttl": 0, "renewable": false, "policies": []string{"root"}}})
		case "/v1/auth/token/renew-self":
			f.renewals.Add(1)
			writeJSON(w, http.StatusOK, auth(r.Header.Get("X-Vault-Token")))
		default: // revocations
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(srv.Close)
	cfg := api.DefaultConfig()
	cfg.Address = srv.URL
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	require.NoError(t, err)
	return c
}

// TestAuthMetricsThroughPrometheus: a failed and a successful login, a
// renewal and a re-login show in the counters with the method label, and
// the token's expiry as a Unix-seconds gauge equal to Status().TokenExpires.
func TestAuthMetricsThroughPrometheus(t *testing.T) {
	m := newMetrics(t)
	f := &fakeAuthVault{ttl: 3, failLogins: 1}
	method, err := vaultauth.AppRole("role-1", &approle.SecretID{FromString: "secret-id-value"})
	require.NoError(t, err)
	a, err := vaultauth.New(f.client(t), method, vaultauth.WithLogger(slog.New(slog.DiscardHandler)),
		vaultauth.WithBackoff(10*time.Millisecond, 50*time.Millisecond))
	require.NoError(t, err)
	defer a.Close()
	stop, err := otelknotmtls.InstrumentAuth(m.mp, a)
	require.NoError(t, err)
	ctx := context.Background()
	method1 := []string{"method", a.Status().Method}
	require.Equal(t, "approle", a.Status().Method)

	require.Error(t, a.Start(ctx))
	got := m.gather(t)
	v, _ := value(got, "knotmtls_vault_login_failures_total", method1...)
	assert.Equal(t, 1.0, v, "failed login")
	v, _ = value(got, "knotmtls_vault_logins_total", method1...)
	assert.Equal(t, 0.0, v)
	_, ok := value(got, "knotmtls_vault_token_expires_seconds", method1...)
	assert.False(t, ok, "no token, no expiry")

	require.NoError(t, a.Start(ctx))
	// The watcher renews the 3 s token after about 2 s; wait for it.
	deadline := time.Now().Add(15 * time.Second)
	for a.Status().Renewals < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	require.GreaterOrEqual(t, a.Status().Renewals, 1, "the token was renewed")
	// Read a stable snapshot: no renewal between the two Status calls.
	var st vaultauth.Status
	for range 100 {
		before := a.Status()
		got = m.gather(t)
		st = a.Status()
		if before.Renewals == st.Renewals && before.TokenExpires.Equal(st.TokenExpires) {
			break
		}
	}
	v, _ = value(got, "knotmtls_vault_logins_total", method1...)
	assert.Equal(t, 1.0, v)
	v, _ = value(got, "knotmtls_vault_login_failures_total", method1...)
	assert.Equal(t, 1.0, v)
	v, _ = value(got, "knotmtls_vault_renewals_total", method1...)
	assert.Equal(t, float64(st.Renewals), v)
	assert.Equal(t, int(f.renewals.Load()), st.Renewals, "each renewal Vault answered is counted")
	v, ok = value(got, "knotmtls_vault_token_expires_seconds", method1...)
	require.True(t, ok)
	assert.InDelta(t, float64(st.TokenExpires.UnixNano())/1e9, v, 1e-3)
	assert.InDelta(t, float64(time.Now().Add(3*time.Second).Unix()), v, 3)

	require.NoError(t, a.Relogin(ctx))
	got = m.gather(t)
	v, _ = value(got, "knotmtls_vault_logins_total", method1...)
	assert.Equal(t, 2.0, v, "re-login")

	text := m.scrape(t)
	for _, name := range []string{"knotmtls_vault_logins_total", "knotmtls_vault_login_failures_total",
		"knotmtls_vault_renewals_total", "knotmtls_vault_token_expires_seconds"} {
		assert.Contains(t, text, "\n"+name+"{", "scraped exposition has %s", name)
	}
	for _, secret := range []string{"hvs.token", "secret-id-value", "role-1"} {
		assert.NotContains(t, text, secret)
	}
	require.NoError(t, stop())
	got = m.gather(t)
	assert.Empty(t, got["knotmtls_vault_token_expires_seconds"], "stop unregisters the callback")
}

// TestAuthMetricsTokenThatNeverExpires: a token with TTL 0 (a dev root
// token) has no expiry series, rather than an expiry in 1970.
func TestAuthMetricsTokenThatNeverExpires(t *testing.T) {
	m := newMetrics(t)
	a, err := vaultauth.New((&fakeAuthVault{}).client(t), vaultauth.Token("hvs.root-token"),
		vaultauth.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	defer a.Close()
	_, err = otelknotmtls.InstrumentAuth(m.mp, a)
	require.NoError(t, err)
	require.NoError(t, a.Start(context.Background()))
	require.True(t, a.Status().TokenExpires.IsZero())

	got := m.gather(t)
	v, ok := value(got, "knotmtls_vault_logins_total", "method", "static token")
	require.True(t, ok, "names: %v", names(got))
	assert.Equal(t, 1.0, v)
	assert.Empty(t, got["knotmtls_vault_token_expires_seconds"])
	assert.NotContains(t, m.scrape(t), "hvs.root-token")
}

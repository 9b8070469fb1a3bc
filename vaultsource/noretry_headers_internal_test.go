package vaultsource

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNoRetryWriteKeepsHeaders: a write sent without vault/api's retries
// (a Transit rotate) goes through a clone of the client; it must carry the
// token and the client's headers, the namespace among them (vault/api's
// Clone copies headers only with CloneHeaders set).
func TestNoRetryWriteKeepsHeaders(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []http.Header
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"data":{}}`))
	}))
	t.Cleanup(srv.Close)
	cfg := api.DefaultConfig()
	cfg.Address = srv.URL
	c, err := api.NewClient(cfg)
	require.NoError(t, err)
	c.SetToken("test-token")
	c.SetNamespace("team-a/knot")
	c.AddHeader("X-Custom", "kept")

	v := &vault{client: c}
	for _, noRetry := range []bool{false, true} {
		_, err := v.do(t.Context(), request{op: "rotate key", method: http.MethodPut, path: "transit/keys/k/rotate", noRetry: noRetry})
		require.NoError(t, err)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, 2)
	for i, h := range seen {
		assert.Equal(t, "team-a/knot", h.Get("X-Vault-Namespace"), "request %d", i)
		assert.Equal(t, "kept", h.Get("X-Custom"), "request %d", i)
		assert.Equal(t, "test-token", h.Get("X-Vault-Token"), "request %d", i)
	}
}

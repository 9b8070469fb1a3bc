package vaultsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC)
	cases := []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"30", 30 * time.Second},
		{" 7 ", 7 * time.Second},
		{"0", 0},
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{"99999999999999999999", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, parseRetryAfter(tc.header, now), "Retry-After %q", tc.header)
	}
}

// TestErrorCarriesRetryAfter: a 429 (rate-limit quota) or 503 answer's
// Retry-After travels in the *Error, through any wrapping, as the
// RetryAfter() hint provider's backoff honours; other statuses carry none.
func TestErrorCarriesRetryAfter(t *testing.T) {
	cases := []struct {
		name    string
		status  int
		header  string
		errs    []string
		want    time.Duration
		wantErr error
	}{
		{"quota", http.StatusTooManyRequests, "30", []string{"request path \"secret/data/knot\": rate limit quota exceeded"}, 30 * time.Second, ErrRateLimited},
		{"quota without headers", http.StatusTooManyRequests, "", []string{"rate limit quota exceeded"}, 0, ErrRateLimited},
		{"sealed", http.StatusServiceUnavailable, "5", []string{"Vault is sealed"}, 5 * time.Second, ErrSealed},
		{"server error ignores it", http.StatusInternalServerError, "30", []string{"internal error"}, 0, ErrUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if tc.header != "" {
					w.Header().Set("Retry-After", tc.header)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_ = json.NewEncoder(w).Encode(map[string]any{"errors": tc.errs})
			}))
			t.Cleanup(srv.Close)
			cfg := api.DefaultConfig()
			cfg.Address = srv.URL
			cfg.MaxRetries = 0
			c, err := api.NewClient(cfg)
			require.NoError(t, err)
			c.SetToken("fake-token")
			v := &vault{client: c}
			_, err = v.do(context.Background(), request{op: "read", method: http.MethodGet, path: "secret/data/knot", capability: "read"})
			require.ErrorIs(t, err, tc.wantErr)
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tc.status, e.Status)
			assert.Equal(t, tc.want, e.RetryAfter())

			var h interface{ RetryAfter() time.Duration }
			require.ErrorAs(t, fmt.Errorf("provider: fetch: %w", err), &h, "the hint is found through wrapping")
			assert.Equal(t, tc.want, h.RetryAfter())
		})
	}
	assert.Zero(t, (&Error{Err: ErrUnavailable, Cause: errors.New("dial tcp: refused")}).RetryAfter())
}

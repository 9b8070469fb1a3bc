package vaultsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
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

// quotaVault answers every request 429 with Retry-After retryAfter seconds
// and counts the requests.
func quotaVault(t *testing.T, retryAfter string, opts ...func(*api.Config)) (*api.Client, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		w.Header().Set("Retry-After", retryAfter)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": []string{"rate limit quota exceeded"}})
	}))
	t.Cleanup(srv.Close)
	cfg := api.DefaultConfig()
	cfg.Address = srv.URL
	cfg.MinRetryWait, cfg.MaxRetryWait = 10*time.Millisecond, 20*time.Millisecond
	for _, o := range opts {
		o(cfg)
	}
	c, err := api.NewClient(cfg)
	require.NoError(t, err)
	c.SetToken("fake-token")
	return c, &n
}

// TestRetryAfterBeyondTheDeadline: vault/api (default retries) sleeps a
// 429's Retry-After out inside the call. When that outlasts the request's
// deadline, vaultsource's request answers at once with the hint instead of
// dying at the deadline without it; within the deadline vault/api's own
// retries still run; requests of others through the same client, and a
// policy the caller set, are left as they were.
func TestRetryAfterBeyondTheDeadline(t *testing.T) {
	read := request{op: "read", method: http.MethodGet, path: "secret/data/knot", capability: "read"}

	t.Run("outlasts the deadline", func(t *testing.T) {
		c, n := quotaVault(t, "30")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		_, err := (&vault{client: c}).do(ctx, read)
		took := time.Since(start)
		require.ErrorIs(t, err, ErrRateLimited)
		var e *Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, 30*time.Second, e.RetryAfter())
		assert.EqualValues(t, 1, n.Load(), "no retry that could only end at the deadline")
		assert.Less(t, took, 4*time.Second, "answered before the deadline")

		// Another caller's request through the same client: unchanged,
		// vault/api sleeps until the deadline.
		n.Store(0)
		ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel2()
		_, err = c.Logical().ReadWithContext(ctx2, "secret/data/knot")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.EqualValues(t, 1, n.Load())
	})

	t.Run("within the deadline vault/api retries", func(t *testing.T) {
		c, n := quotaVault(t, "1")
		_, err := (&vault{client: c}).do(context.Background(), read)
		require.ErrorIs(t, err, ErrRateLimited)
		var e *Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, time.Second, e.RetryAfter())
		assert.EqualValues(t, 3, n.Load(), "the first request and vault/api's 2 retries")
	})

	t.Run("the caller's policy is kept", func(t *testing.T) {
		var asked atomic.Int64
		c, n := quotaVault(t, "1", func(cfg *api.Config) {
			cfg.CheckRetry = func(context.Context, *http.Response, error) (bool, error) { asked.Add(1); return false, nil }
		})
		v := &vault{client: c}
		for range 2 { // the wrapper is installed once, not stacked
			_, err := v.do(context.Background(), read)
			require.ErrorIs(t, err, ErrRateLimited)
		}
		assert.EqualValues(t, 2, n.Load(), "the caller's policy said no retry")
		assert.EqualValues(t, 2, asked.Load(), "asked once per request")
	})
}

package knottest_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient/knottest"
)

func TestFaultStatus(t *testing.T) {
	s, c, _ := setup(t)
	tests := []struct {
		status int
		body   string
	}{
		{http.StatusInternalServerError, `{"message":"Server Error"}`},
		{http.StatusBadGateway, `{"message":"Bad Gateway"}`},
		{http.StatusServiceUnavailable, `{"message":"Service Unavailable"}`},
		{http.StatusBadRequest, `{"error_type":"INVALID_REQUEST","error_code":"INVALID_FIELD","error_message":"The request is invalid."}`},
		{http.StatusUnauthorized, `{"error_type":"INVALID_INPUT","error_code":"INVALID_API_KEYS","error_message":"Invalid client_id or secret provided."}`},
		{http.StatusForbidden, `{"error_type":"INVALID_REQUEST","error_code":"NO_ACCESS","error_message":"You do not have access to this product or endpoint."}`},
		{http.StatusNotFound, `{"error_type":"INVALID_REQUEST","error_code":"NOT_FOUND","error_message":"The requested resource could not be found."}`},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			s.Reset()
			s.Fail(knottest.Fault{Status: tt.status, Times: 1})
			resp, raw := mustSend(t, c, s, http.MethodPost, "/transactions/sync",
				map[string]any{"external_user_id": "u1", "merchant_id": knottest.MerchantID})
			assert.Equal(t, tt.status, resp.StatusCode)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			assert.JSONEq(t, tt.body, string(raw))
			assert.Equal(t, tt.status, s.Requests()[0].Status)
		})
	}
}

func TestFault429RetryAfter(t *testing.T) {
	s, c, _ := setup(t)
	s.Fail(knottest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "2", Times: 1})

	resp, raw := mustSend(t, c, s, http.MethodGet, "/jwe/key", nil)
	requireKnotError(t, resp, raw, http.StatusTooManyRequests, "RATE_LIMIT", "RATE_LIMIT_EXCEEDED")
	assert.Equal(t, "2", resp.Header.Get("Retry-After"))

	resp, raw = mustSend(t, c, s, http.MethodGet, "/jwe/key", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)
	assert.Empty(t, resp.Header.Get("Retry-After"))
}

func TestFaultRetryAfterOnly(t *testing.T) {
	s, c, _ := setup(t)
	s.Fail(knottest.Fault{RetryAfter: "120", Times: 1})
	resp, raw := mustSend(t, c, s, http.MethodGet, "/jwe/key", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "a fault without status lets the request through: %s", raw)
	assert.Equal(t, "120", resp.Header.Get("Retry-After"))
	requireKeys(t, decodeObject(t, raw), "kid", "n")
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestFaultDelayOutlivesClientTimeout(t *testing.T) {
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	s, c, _ := setup(t, knottest.WithLogger(logger))
	// Warm the connection first: the timed-out request must reach the
	// handler, which a cold TLS handshake on a loaded machine might not do
	// within the client's timeout.
	resp, raw := mustSend(t, c, s, http.MethodGet, "/jwe/key", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)
	s.Reset()
	s.Fail(knottest.Fault{Delay: time.Hour, Times: 1})

	c.Timeout = time.Second
	_, _, err := send(c, s, http.MethodGet, "/jwe/key", nil)
	require.Error(t, err)
	var ne net.Error
	require.True(t, errors.As(err, &ne), "a net.Error: %v", err)
	assert.True(t, ne.Timeout(), "the client timed out: %v", err)

	// The handler notices the client went away and ends (it logs when it
	// does) instead of sleeping for the hour.
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "status=0") }, 10*time.Second, 5*time.Millisecond)

	c.Timeout = 30 * time.Second
	resp, raw = mustSend(t, c, s, http.MethodGet, "/jwe/key", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)

	reqs := s.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, 0, reqs[0].Status, "the abandoned request has no status")
	assert.Equal(t, http.StatusOK, reqs[1].Status)
	assert.Contains(t, logs.String(), "status=200")
	assert.NotContains(t, logs.String(), s.Secret(), "the secret is never logged")
	assert.NotContains(t, logs.String(), "Basic ", "headers are never logged")
}

func TestFaultDelayThenStatus(t *testing.T) {
	s, c, _ := setup(t)
	s.Fail(knottest.Fault{Delay: 20 * time.Millisecond, Status: http.StatusServiceUnavailable, RetryAfter: "1", Times: 1})
	resp, raw := mustSend(t, c, s, http.MethodGet, "/jwe/key", nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.JSONEq(t, `{"message":"Service Unavailable"}`, string(raw))
}

func TestFaultDrop(t *testing.T) {
	s, c, _ := setup(t)
	s.Fail(knottest.Fault{Drop: true, Times: 1})

	// A POST is not retried by net/http, so the drop reaches the caller.
	_, _, err := send(c, s, http.MethodPost, "/transactions/sync",
		map[string]any{"external_user_id": "u1", "merchant_id": knottest.MerchantID})
	require.Error(t, err)

	resp, raw := mustSend(t, c, s, http.MethodPost, "/transactions/sync",
		map[string]any{"external_user_id": "u1", "merchant_id": knottest.MerchantID})
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)

	reqs := s.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, 0, reqs[0].Status, "a dropped request has no status")
	assert.Equal(t, http.StatusOK, reqs[1].Status)
}

func TestFaultRawBody(t *testing.T) {
	s, c, _ := setup(t)
	tests := []struct {
		name        string
		fault       knottest.Fault
		status      int
		contentType string
	}{
		{"html proxy page", knottest.Fault{Status: http.StatusBadGateway, Body: "<html><body>502 Bad Gateway</body></html>", Times: 1},
			http.StatusBadGateway, "text/html; charset=utf-8"},
		{"json without status", knottest.Fault{Body: `{"message":"Success","error_message":"card declined"}`, Times: 1},
			http.StatusOK, "application/json"},
		{"truncated json", knottest.Fault{Status: http.StatusOK, Body: `{"transactions":[`, ContentType: "application/json", Times: 1},
			http.StatusOK, "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.Fail(tt.fault)
			resp, raw := mustSend(t, c, s, http.MethodGet, "/jwe/key", nil)
			assert.Equal(t, tt.status, resp.StatusCode)
			assert.Equal(t, tt.contentType, resp.Header.Get("Content-Type"))
			assert.Equal(t, tt.fault.Body, string(raw))
		})
	}
}

func TestFaultTimesAndOrder(t *testing.T) {
	s, c, _ := setup(t)
	status := func(path string) int {
		t.Helper()
		resp, _ := mustSend(t, c, s, http.MethodGet, path, nil)
		return resp.StatusCode
	}

	t.Run("times counts down", func(t *testing.T) {
		s.Reset()
		s.Fail(knottest.Fault{Status: http.StatusInternalServerError, Times: 2})
		assert.Equal(t, []int{500, 500, 200}, []int{status("/jwe/key"), status("/jwe/key"), status("/jwe/key")})
	})
	t.Run("zero times is unlimited until Reset", func(t *testing.T) {
		s.Reset()
		s.Fail(knottest.Fault{Status: http.StatusServiceUnavailable})
		for range 5 {
			require.Equal(t, http.StatusServiceUnavailable, status("/jwe/key"))
		}
		s.Reset()
		assert.Equal(t, http.StatusOK, status("/jwe/key"))
	})
	t.Run("faults apply in the order queued", func(t *testing.T) {
		s.Reset()
		s.Fail(knottest.Fault{Status: http.StatusTooManyRequests, Times: 1})
		s.Fail(knottest.Fault{Status: http.StatusBadGateway, Times: 1})
		assert.Equal(t, []int{429, 502, 200}, []int{status("/jwe/key"), status("/jwe/key"), status("/jwe/key")})
	})
	t.Run("path restricts the fault", func(t *testing.T) {
		s.Reset()
		s.Fail(knottest.Fault{Path: "/jwe/key", Status: http.StatusForbidden, Times: 1})
		assert.Equal(t, http.StatusOK, status("/accounts/get?external_user_id=u1"), "other paths are untouched")
		assert.Equal(t, http.StatusForbidden, status("/jwe/key"))
		assert.Equal(t, http.StatusOK, status("/jwe/key"))
	})
	t.Run("faults apply before authentication", func(t *testing.T) {
		s.Reset()
		s.Fail(knottest.Fault{Status: http.StatusServiceUnavailable, Times: 1})
		resp, _ := mustSend(t, c, s, http.MethodGet, "/jwe/key", nil, noAuth)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.False(t, s.Requests()[0].AuthOK)
	})
}

func TestFailPanicsOnInvalidStatus(t *testing.T) {
	s := knottest.NewTestServer(t)
	assert.Panics(t, func() { s.Fail(knottest.Fault{Status: 42}) })
	assert.NotPanics(t, func() { s.Fail(knottest.Fault{Status: 599}) })
}

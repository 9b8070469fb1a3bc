package knotclient_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient"
)

// TestOnAttemptReportsEachAttempt: OnAttempt sees every attempt once, with
// its status or transport error, and whether a retry follows.
func TestOnAttemptReportsEachAttempt(t *testing.T) {
	type want struct {
		status int
		err    bool
		retry  bool
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		call    func(c *knotclient.Client) error
		want    []want
	}{
		{
			// The drop comes first: on a fresh connection, so net/http does
			// not repeat the request by itself as it does on a reused one.
			name:    "dropped then 503 then 200",
			handler: sequence(drop, respond(503, `{}`), respond(200, jwk)),
			call:    func(c *knotclient.Client) error { _, err := c.GetJWEKey(context.Background()); return err },
			want:    []want{{err: true, retry: true}, {status: 503, retry: true}, {status: 200}},
		},
		{
			name:    "permanent 404 is not retried",
			handler: respond(404, `{"error_type":"INVALID_REQUEST","error_code":"NOT_FOUND","error_message":"x"}`),
			call:    func(c *knotclient.Client) error { _, err := c.GetJWEKey(context.Background()); return err },
			want:    []want{{status: 404}},
		},
		{
			name:    "retries exhausted",
			handler: respond(500, `{}`),
			call:    func(c *knotclient.Client) error { _, err := c.GetJWEKey(context.Background()); return err },
			want:    []want{{status: 500, retry: true}, {status: 500, retry: true}, {status: 500}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []knotclient.AttemptEvent
			f := newFake(t, tt.handler)
			c := f.client(t, func(cfg *knotclient.Config) {
				cfg.OnAttempt = func(e knotclient.AttemptEvent) { mu.Lock(); got = append(got, e); mu.Unlock() }
			})
			_ = tt.call(c)
			mu.Lock()
			defer mu.Unlock()
			require.Len(t, got, len(tt.want))
			for i, w := range tt.want {
				e := got[i]
				assert.Equal(t, "GET /jwe/key", e.Op)
				assert.Equal(t, i+1, e.Attempt)
				assert.Equal(t, w.status, e.Status, "attempt %d", i+1)
				assert.Equal(t, w.err, e.Err != nil, "attempt %d: %v", i+1, e.Err)
				assert.Equal(t, w.retry, e.Retry, "attempt %d", i+1)
				assert.Equal(t, w.retry, e.Delay > 0, "attempt %d: a delay only before a retry", i+1)
				assert.Positive(t, e.Duration)
			}
			assert.Equal(t, len(tt.want), f.hits())
		})
	}
}

// TestConfigStringShowsOnAttempt: Config.String says a hook is set, as it
// does for WrapTransport, and prints nothing of it.
func TestConfigStringShowsOnAttempt(t *testing.T) {
	cfg := knotclient.Config{ClientID: "c"}
	assert.NotContains(t, cfg.String(), "OnAttempt")
	cfg.OnAttempt = func(knotclient.AttemptEvent) {}
	assert.Contains(t, cfg.String(), ", OnAttempt:set")
}

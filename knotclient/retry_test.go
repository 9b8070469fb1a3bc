package knotclient_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient"
)

const jwk = `{"alg":"RSA-OAEP-256","kid":"k","kty":"RSA","e":"AQAB","n":"AQAB"}`

func withRetryAfter(status int, retryAfter, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", retryAfter)
		respond(status, body)(w, r)
	}
}

// TestRetriedOnTransientFailures: a call that is safe to repeat (a GET)
// is retried on 5xx, 429 (waiting out Retry-After) and network errors, and
// succeeds once the server recovers.
func TestRetriedOnTransientFailures(t *testing.T) {
	tests := []struct {
		name     string
		failures []http.HandlerFunc
	}{
		{name: "5xx", failures: []http.HandlerFunc{respond(503, `{"message":"Server Error"}`), respond(500, `{"message":"Server Error"}`)}},
		{name: "429 with Retry-After seconds", failures: []http.HandlerFunc{withRetryAfter(429, "0", `{}`)}},
		{name: "429 with Retry-After HTTP date", failures: []http.HandlerFunc{
			withRetryAfter(429, time.Now().Add(-time.Minute).UTC().Format(http.TimeFormat), `{}`)}},
		{name: "429 with malformed Retry-After", failures: []http.HandlerFunc{withRetryAfter(429, "soon", `{}`)}},
		{name: "connection dropped", failures: []http.HandlerFunc{drop, drop}},
		{name: "non-JSON 502 from a proxy", failures: []http.HandlerFunc{respond(502, "<html>bad gateway</html>")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, sequence(append(tt.failures, respond(200, jwk))...))
			c := f.client(t)
			k, err := c.GetJWEKey(context.Background())
			require.NoError(t, err)
			assert.Equal(t, "k", k.Kid)
			assert.Equal(t, len(tt.failures)+1, f.hits())
		})
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	f := newFake(t, sequence(withRetryAfter(429, "1", `{}`), respond(200, jwk)))
	c := f.client(t)
	_, err := c.GetJWEKey(context.Background())
	require.NoError(t, err)
	got := f.requests()
	require.Len(t, got, 2)
	// A lower bound only (never flaky): the server-side arrival times show
	// the client waited at least what the server asked, where its own
	// backoff would have waited at most 5 ms.
	assert.GreaterOrEqual(t, got[1].Time.Sub(got[0].Time), time.Second)
}

func TestRetryAfterBeyondCapIsNotWaited(t *testing.T) {
	f := newFake(t, withRetryAfter(429, "3600", `{"error_type":"RATE_LIMIT","error_code":"TOO_MANY","error_message":"slow down"}`))
	c := f.client(t, func(cfg *knotclient.Config) { cfg.MaxRetryAfter = time.Second })
	_, err := c.GetJWEKey(context.Background())
	var e *knotclient.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 429, e.StatusCode)
	assert.Equal(t, time.Hour, e.RetryAfter)
	assert.Equal(t, 1, f.hits())
}

func TestRetriesAreBounded(t *testing.T) {
	for _, attempts := range []int{1, 2, 4} {
		f := newFake(t, respond(503, `{"message":"Server Error"}`))
		c := f.client(t, func(cfg *knotclient.Config) { cfg.MaxAttempts = attempts })
		_, err := c.ListMerchants(context.Background(), knotclient.ListMerchantsRequest{Type: knotclient.ProductCardSwitcher})
		var e *knotclient.Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, attempts, f.hits())
		assert.Equal(t, attempts, e.Attempts)
		if attempts > 1 {
			assert.Contains(t, err.Error(), "after")
		}
	}
	f := newFake(t, drop)
	c := f.client(t)
	_, err := c.GetJWEKey(context.Background())
	require.Error(t, err)
	assert.Equal(t, knotclient.DefaultMaxAttempts, f.hits())
	assert.Contains(t, err.Error(), "after 3 attempts")
}

func TestPermanentFailuresAreNotRetried(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404, 409, 501, 505} {
		f := newFake(t, respond(status, `{"error_type":"INVALID_REQUEST","error_code":"INVALID_FIELD","error_message":"x"}`))
		c := f.client(t)
		_, err := c.GetJWEKey(context.Background())
		require.True(t, knotclient.IsStatus(err, status))
		assert.Equal(t, 1, f.hits(), "status %d", status)
	}
}

// TestUnsafeCallsAreNeverRetried: /card, the accepted (202) operations,
// session creation and the state-changing calls are sent once, whatever
// the failure.
func TestUnsafeCallsAreNeverRetried(t *testing.T) {
	calls := map[string]func(context.Context, *knotclient.Client) error{
		"SwitchCard": func(ctx context.Context, c *knotclient.Client) error {
			return c.SwitchCard(ctx, knotclient.SwitchCardRequest{TaskID: "1", JWE: "a.b.c.d.e"})
		},
		"UpdateCard": func(ctx context.Context, c *knotclient.Client) error {
			return c.UpdateCard(ctx, knotclient.UpdateCardRequest{JWE: "a.b.c.d.e", ExternalUserID: "u", MerchantID: 1})
		},
		"CreateSession": func(ctx context.Context, c *knotclient.Client) error {
			_, err := c.CreateSession(ctx, knotclient.CreateSessionRequest{Type: knotclient.SessionLink, ExternalUserID: "u"})
			return err
		},
		"RefreshTransactions": func(ctx context.Context, c *knotclient.Client) error {
			return c.RefreshTransactions(ctx, knotclient.RefreshTransactionsRequest{MerchantID: 1, ExternalUserID: "u"})
		},
		"SyncCart": func(ctx context.Context, c *knotclient.Client) error {
			return c.SyncCart(ctx, knotclient.SyncCartRequest{ExternalUserID: "u", MerchantID: 1})
		},
		"Checkout": func(ctx context.Context, c *knotclient.Client) error {
			return c.Checkout(ctx, knotclient.CheckoutRequest{ExternalUserID: "u", MerchantID: 1})
		},
		"CancelSubscription": func(ctx context.Context, c *knotclient.Client) error {
			return c.CancelSubscription(ctx, knotclient.CancelSubscriptionRequest{SubscriptionID: "s", ExternalUserID: "u", MerchantID: 1})
		},
		"Detect": func(ctx context.Context, c *knotclient.Client) error {
			return c.Detect(ctx, knotclient.DetectRequest{ExternalUserID: "u", Email: "e@example.com"})
		},
		"UnlinkAccount": func(ctx context.Context, c *knotclient.Client) error {
			return c.UnlinkAccount(ctx, knotclient.UnlinkAccountRequest{ExternalUserID: "u", MerchantID: 1})
		},
		"DevLinkAccount": func(ctx context.Context, c *knotclient.Client) error {
			return c.DevLinkAccount(ctx, knotclient.DevLinkAccountRequest{ExternalUserID: "u", MerchantID: 1})
		},
		"DevDisconnectAccount": func(ctx context.Context, c *knotclient.Client) error {
			return c.DevDisconnectAccount(ctx, knotclient.DevDisconnectAccountRequest{ExternalUserID: "u", MerchantID: 1})
		},
	}
	failures := map[string]func() http.HandlerFunc{ // fresh per subtest: sequence has state
		"503":             func() http.HandlerFunc { return respond(503, `{"message":"Server Error"}`) },
		"429 Retry-After": func() http.HandlerFunc { return withRetryAfter(429, "0", `{}`) },
		"connection drop": func() http.HandlerFunc { return drop },
		"500 then success": func() http.HandlerFunc {
			return sequence(respond(500, `{"message":"Server Error"}`), respond(202, `{"message":"Success"}`))
		},
	}
	for name, call := range calls {
		for fname, failure := range failures {
			t.Run(name+"/"+fname, func(t *testing.T) {
				f := newFake(t, failure())
				c := f.client(t, func(cfg *knotclient.Config) { cfg.MaxAttempts = 5 })
				err := call(context.Background(), c)
				require.Error(t, err)
				assert.Equal(t, 1, f.hits())
			})
		}
	}
}

func TestCancelStopsRetrying(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		cancel() // the caller gives up while the client would back off
		respond(503, `{"message":"Server Error"}`)(w, r)
	})
	c := f.client(t, func(cfg *knotclient.Config) {
		cfg.RetryBaseDelay = time.Hour
		cfg.RetryMaxDelay = time.Hour
		cfg.MaxAttempts = 10
	})
	_, err := c.GetJWEKey(ctx)
	// Whether the cancellation cut the response or came before the retry,
	// the caller can tell the call was cancelled.
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 1, f.hits())
}

// TestCloseEndsRetryWait: a call waiting to retry gives up when the client
// is closed, with its last error and ErrClosed, instead of retrying over a
// closed client.
func TestCloseEndsRetryWait(t *testing.T) {
	f := newFake(t, respond(503, `{"message":"Server Error"}`))
	c := f.client(t, func(cfg *knotclient.Config) {
		cfg.RetryBaseDelay = time.Hour
		cfg.RetryMaxDelay = time.Hour
	})
	done := make(chan error, 1)
	go func() {
		_, err := c.GetJWEKey(context.Background())
		done <- err
	}()
	require.Eventually(t, func() bool { return f.hits() == 1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, c.Close())
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the call kept waiting after Close")
	}
	require.ErrorIs(t, err, knotclient.ErrClosed)
	assert.True(t, knotclient.IsStatus(err, 503), "the last attempt's error stays reachable")
	assert.Equal(t, 1, f.hits())
}

func TestDeadlineShorterThanBackoffEndsAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := newFake(t, respond(503, `{"message":"Server Error"}`))
	c := f.client(t, func(cfg *knotclient.Config) {
		cfg.RetryBaseDelay = time.Hour
		cfg.RetryMaxDelay = time.Hour
	})
	_, err := c.GetJWEKey(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.True(t, knotclient.IsStatus(err, 503), "the last attempt's error stays reachable")
	assert.Contains(t, err.Error(), "retry abandoned")
	assert.Equal(t, 1, f.hits())
	assert.NoError(t, ctx.Err(), "returned without waiting for the deadline")
}

func TestAttemptTimeoutIsRetried(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	f := newFake(t, sequence(
		func(w http.ResponseWriter, r *http.Request) {
			// Hang past the client's attempt timeout. Returning early when
			// the request context ends would let net/http answer an empty
			// 200 that a starved client can still read (seen 3 in 158 runs
			// under load), so only the test's end releases this handler.
			<-release
		},
		respond(200, jwk),
	))
	// Each attempt gets the timeout, so the retry needs a new TLS handshake
	// and its answer within it: 1 s leaves room on a loaded machine.
	c := f.client(t, func(cfg *knotclient.Config) { cfg.Timeout = time.Second })
	_, err := c.GetJWEKey(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 2, f.hits())
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"7", 7 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"Fri, 02 Jan 2026 03:05:05 GMT", time.Minute, true},
		{"99999999999999", 365 * 24 * time.Hour, true},
	}
	for _, tt := range tests {
		got, ok := knotclient.ParseRetryAfter(tt.in, now)
		assert.Equal(t, tt.wantOK, ok, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
	}
}

func TestBackoffGrowsCappedWithJitter(t *testing.T) {
	base, maxDelay := 100*time.Millisecond, time.Second
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 30: time.Second} {
		for range 50 {
			d := knotclient.Backoff(base, maxDelay, n)
			assert.GreaterOrEqual(t, d, want/2, "attempt %d", n)
			assert.LessOrEqual(t, d, want, "attempt %d", n)
		}
	}
}

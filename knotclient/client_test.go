package knotclient_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/provider"
)

func TestEnvironmentBaseURL(t *testing.T) {
	assert.Equal(t, "https://mtls.development.knotapi.com", knotclient.Development.BaseURL())
	assert.Equal(t, "https://mtls.production.knotapi.com", knotclient.Production.BaseURL())
	assert.Empty(t, knotclient.Environment("staging").BaseURL())
}

func TestNewValidatesConfig(t *testing.T) {
	valid := knotclient.Config{
		ClientID:     "cid",
		Secret:       knotclient.StaticSecret("s"),
		Certificates: noCertGetter{},
		Environment:  knotclient.Development,
	}
	tests := []struct {
		name   string
		mutate func(*knotclient.Config)
		want   string // substring of the error; "" = valid
		url    string // expected BaseURL when valid
	}{
		{name: "development", mutate: func(*knotclient.Config) {}, url: "https://mtls.development.knotapi.com"},
		{name: "production", mutate: func(c *knotclient.Config) { c.Environment = knotclient.Production }, url: "https://mtls.production.knotapi.com"},
		{name: "base URL overrides environment", mutate: func(c *knotclient.Config) { c.BaseURL = "https://127.0.0.1:8443/prefix/" }, url: "https://127.0.0.1:8443/prefix"},
		{name: "no client id", mutate: func(c *knotclient.Config) { c.ClientID = "" }, want: "ClientID"},
		{name: "no secret", mutate: func(c *knotclient.Config) { c.Secret = nil }, want: "Secret"},
		{name: "no certificates", mutate: func(c *knotclient.Config) { c.Certificates = nil }, want: "Certificates"},
		{name: "no environment", mutate: func(c *knotclient.Config) { c.Environment = "" }, want: "Environment or BaseURL"},
		{name: "unknown environment", mutate: func(c *knotclient.Config) { c.Environment = "sandbox" }, want: "unknown Environment"},
		{name: "plain http", mutate: func(c *knotclient.Config) { c.BaseURL = "http://127.0.0.1:8080" }, want: "https"},
		{name: "relative URL", mutate: func(c *knotclient.Config) { c.BaseURL = "/knot" }, want: "https"},
		{name: "user info in URL", mutate: func(c *knotclient.Config) { c.BaseURL = "https://u:p@example.com" }, want: "user info"},
		{name: "negative attempts", mutate: func(c *knotclient.Config) { c.MaxAttempts = -1 }, want: "negative"},
		{name: "colon in client id", mutate: func(c *knotclient.Config) { c.ClientID = "a:b" }, want: "ClientID must not contain"},
		{name: "header injection in user agent", mutate: func(c *knotclient.Config) { c.UserAgent = "acme\r\nX-Evil: 1" }, want: "control characters"},
		{name: "newline in Knot-Version", mutate: func(c *knotclient.Config) { c.KnotVersion = "2.0\n" }, want: "control characters"},
		{name: "credentials in a plain http URL are not echoed", mutate: func(c *knotclient.Config) { c.BaseURL = "http://u:hunter2@example.com" }, want: "user info"},
		{name: "credentials in an unparsable URL are not echoed", mutate: func(c *knotclient.Config) { c.BaseURL = "https://u:hunter2%zz@example.com" }, want: "does not parse"},
		{name: "insecure transport", mutate: func(c *knotclient.Config) {
			c.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // the test asserts it is refused
		}, want: "InsecureSkipVerify"},
		{name: "TLS key log", mutate: func(c *knotclient.Config) {
			c.Transport = &http.Transport{TLSClientConfig: &tls.Config{KeyLogWriter: io.Discard}}
		}, want: "KeyLogWriter"},
		{name: "transport doing its own TLS", mutate: func(c *knotclient.Config) {
			c.Transport = &http.Transport{DialTLSContext: func(context.Context, string, string) (net.Conn, error) { return nil, errors.New("unused") }}
		}, want: "DialTLSContext"},
		{name: "transport with a safe TLS config", mutate: func(c *knotclient.Config) {
			c.Transport = &http.Transport{TLSClientConfig: &tls.Config{ServerName: "mtls.development.knotapi.com"}}
		}, url: "https://mtls.development.knotapi.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.mutate(&cfg)
			c, err := knotclient.New(cfg)
			if tt.want != "" {
				require.ErrorIs(t, err, knotclient.ErrInvalidConfig)
				assert.Contains(t, err.Error(), tt.want)
				assert.NotContains(t, err.Error(), "hunter2", "a URL's credentials are never repeated")
				assert.Nil(t, c)
				return
			}
			require.NoError(t, err)
			defer c.Close()
			assert.Equal(t, tt.url, c.BaseURL())
		})
	}
}

var uaPattern = regexp.MustCompile(`^knotmtls/\S+ \(\+https://github\.com/knotmtls/knotmtls\) Go/` + regexp.QuoteMeta(runtime.Version()) + `$`)

func TestHeaders(t *testing.T) {
	f := newFake(t, respond(200, `{"session":"s-1"}`))
	ctx := context.Background()

	c := f.client(t)
	_, err := c.GetJWEKey(ctx)
	require.NoError(t, err)
	_, err = c.CreateSession(ctx, knotclient.CreateSessionRequest{Type: knotclient.SessionTransactionLink, ExternalUserID: "u1"})
	require.NoError(t, err)

	custom := f.client(t, func(cfg *knotclient.Config) {
		cfg.KnotVersion = "2.1"
		cfg.UserAgent = "acme-billing/1.4"
	})
	_, err = custom.GetJWEKey(ctx)
	require.NoError(t, err)

	got := f.requests()
	require.Len(t, got, 3)
	for i, r := range got {
		user, pass, ok := (&http.Request{Header: r.Header}).BasicAuth()
		require.True(t, ok, "request %d has Basic auth", i)
		assert.Equal(t, testClientID, user)
		assert.Equal(t, testSecret, pass)
		assert.Equal(t, "application/json", r.Header.Get("Accept"))
	}
	get, post, cust := got[0], got[1], got[2]
	assert.Equal(t, "2.0", get.Header.Get("Knot-Version"))
	assert.Regexp(t, uaPattern, get.Header.Get("User-Agent"))
	assert.Empty(t, get.Header.Get("Content-Type"), "a GET has no body and no Content-Type")
	assert.Equal(t, "application/json", post.Header.Get("Content-Type"))
	assert.Equal(t, "2.1", cust.Header.Get("Knot-Version"))
	assert.True(t, strings.HasPrefix(cust.Header.Get("User-Agent"), "acme-billing/1.4 knotmtls/"), cust.Header.Get("User-Agent"))
	assert.Regexp(t, uaPattern, strings.TrimPrefix(cust.Header.Get("User-Agent"), "acme-billing/1.4 "))
}

func TestSecretSourceIsAskedPerCall(t *testing.T) {
	f := newFake(t, respond(200, `{}`))
	var calls atomic.Int32
	c := f.client(t, func(cfg *knotclient.Config) {
		cfg.Secret = knotclient.SecretFunc(func(context.Context) (string, error) {
			n := calls.Add(1)
			return "rotating-secret-" + string(rune('0'+n)), nil
		})
	})
	for range 2 {
		_, err := c.GetJWEKey(context.Background())
		require.NoError(t, err)
	}
	got := f.requests()
	require.Len(t, got, 2)
	for i, r := range got {
		_, pass, _ := (&http.Request{Header: r.Header}).BasicAuth()
		assert.Equal(t, "rotating-secret-"+string(rune('1'+i)), pass)
	}
}

func TestSecretSourceFailureSendsNothing(t *testing.T) {
	f := newFake(t, respond(200, `{}`))
	boom := errors.New("vault sealed")
	c := f.client(t, func(cfg *knotclient.Config) {
		cfg.Secret = knotclient.SecretFunc(func(context.Context) (string, error) { return "", boom })
	})
	_, err := c.GetJWEKey(context.Background())
	require.ErrorIs(t, err, boom)
	assert.Contains(t, err.Error(), "knotclient: GET /jwe/key: get secret")
	assert.Zero(t, f.hits())
}

func TestStaticSecretDoesNotPrint(t *testing.T) {
	s := knotclient.StaticSecret(testSecret)
	for _, verb := range []string{"%v", "%+v", "%s", "%#v"} {
		assert.NotContains(t, sprintf(verb, s), testSecret, verb)
	}
	_, err := knotclient.StaticSecret("").Secret(context.Background())
	assert.Error(t, err)
}

func TestWrapTransportIsAppliedOnceAtFirstUse(t *testing.T) {
	f := newFake(t, respond(200, `{}`))
	var wraps, trips atomic.Int32
	c := f.client(t, func(cfg *knotclient.Config) {
		cfg.WrapTransport = func(next http.RoundTripper) http.RoundTripper {
			wraps.Add(1)
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				trips.Add(1)
				r.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
				return next.RoundTrip(r)
			})
		}
	})
	assert.Zero(t, wraps.Load(), "nothing is built before the first call")
	for range 3 {
		_, err := c.GetJWEKey(context.Background())
		require.NoError(t, err)
	}
	assert.EqualValues(t, 1, wraps.Load())
	assert.EqualValues(t, 3, trips.Load())
	for _, r := range f.requests() {
		assert.NotEmpty(t, r.Header.Get("Traceparent"))
	}
}

func TestCloseStopsCalls(t *testing.T) {
	f := newFake(t, respond(200, `{}`))
	c := f.client(t)
	_, err := c.GetJWEKey(context.Background())
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "Close is idempotent")
	_, err = c.GetJWEKey(context.Background())
	require.ErrorIs(t, err, knotclient.ErrClosed)
	assert.Equal(t, 1, f.hits())

	unused := f.client(t)
	require.NoError(t, unused.Close(), "closing a client that never sent is fine")
}

// TestDevelopmentHelpersRefuseProduction: the development-only calls are
// refused without a request when the client talks to production, whether
// through Environment or a BaseURL naming a production host.
func TestDevelopmentHelpersRefuseProduction(t *testing.T) {
	for name, mutate := range map[string]func(*knotclient.Config){
		"Environment":           func(c *knotclient.Config) { c.Environment = knotclient.Production },
		"BaseURL mTLS host":     func(c *knotclient.Config) { c.BaseURL = "https://mtls.production.knotapi.com/" },
		"BaseURL standard host": func(c *knotclient.Config) { c.BaseURL = "https://PRODUCTION.knotapi.com." },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := knotclient.Config{
				ClientID: "cid", Secret: knotclient.StaticSecret("s"), Certificates: noCertGetter{},
				Environment: knotclient.Development, Logger: discardLogger(),
			}
			mutate(&cfg)
			c, err := knotclient.New(cfg)
			require.NoError(t, err)
			defer c.Close()
			ctx := context.Background()
			err = c.DevLinkAccount(ctx, knotclient.DevLinkAccountRequest{ExternalUserID: "u", MerchantID: 19})
			require.ErrorIs(t, err, knotclient.ErrDevelopmentOnly)
			err = c.DevDisconnectAccount(ctx, knotclient.DevDisconnectAccountRequest{ExternalUserID: "u", MerchantID: 19})
			require.ErrorIs(t, err, knotclient.ErrDevelopmentOnly)
		})
	}
}

func TestInvalidArgumentsSendNothing(t *testing.T) {
	f := newFake(t, respond(200, `{}`))
	c := f.client(t)
	ctx := context.Background()
	_, err := c.GetTransaction(ctx, "")
	assert.ErrorIs(t, err, knotclient.ErrInvalidArgument)
	_, err = c.GetSubscription(ctx, "")
	assert.ErrorIs(t, err, knotclient.ErrInvalidArgument)
	assert.ErrorIs(t, c.CancelSubscription(ctx, knotclient.CancelSubscriptionRequest{}), knotclient.ErrInvalidArgument)
	assert.ErrorIs(t, c.SwitchCard(ctx, knotclient.SwitchCardRequest{TaskID: "1"}), knotclient.ErrInvalidArgument)
	assert.ErrorIs(t, c.UpdateCard(ctx, knotclient.UpdateCardRequest{}), knotclient.ErrInvalidArgument)
	assert.Zero(t, f.hits())
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// notifyingGetter is a certificate getter that is not a *provider.Provider
// but offers Notify; the client must subscribe to it all the same.
type notifyingGetter struct {
	noCertGetter
	mu      sync.Mutex
	fn      func(old, new *provider.Bundle)
	stopped atomic.Bool
}

func (g *notifyingGetter) Notify(fn func(old, new *provider.Bundle)) (stop func()) {
	g.mu.Lock()
	g.fn = fn
	g.mu.Unlock()
	return func() { g.stopped.Store(true) }
}

func (g *notifyingGetter) fire(old, new *provider.Bundle) {
	g.mu.Lock()
	fn := g.fn
	g.mu.Unlock()
	fn(old, new)
}

func TestRotationNotifyFromAnyGetter(t *testing.T) {
	f := newFake(t, respond(200, jwk))
	g := &notifyingGetter{}
	c := f.client(t, func(cfg *knotclient.Config) { cfg.Certificates = g })
	require.NotNil(t, g.fn, "New subscribes")
	g.fire(&provider.Bundle{}, &provider.Bundle{}) // before the transport exists: nothing to do

	ctx := context.Background()
	call := func() (reused bool) {
		_, err := c.GetJWEKey(reusedTrace(ctx, &reused))
		require.NoError(t, err)
		return reused
	}
	assert.False(t, call())
	assert.True(t, call(), "keep-alive")
	g.fire(nil, &provider.Bundle{}) // first load: not a rotation
	assert.True(t, call())
	g.fire(&provider.Bundle{}, &provider.Bundle{})
	assert.False(t, call(), "after a rotation the next request opens a new connection")
	assert.True(t, call())

	require.NoError(t, c.Close())
	assert.True(t, g.stopped.Load(), "Close unsubscribes")
}

// TestCloseDuringCalls: calls racing Close either finish or get ErrClosed;
// none hangs or fails otherwise.
func TestCloseDuringCalls(t *testing.T) {
	f := newFake(t, respond(200, jwk))
	c := f.client(t)
	var ok atomic.Int64
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for {
				if _, err := c.GetJWEKey(context.Background()); err != nil {
					errs <- err
					return
				}
				ok.Add(1)
			}
		}()
	}
	require.Eventually(t, func() bool { return ok.Load() > 20 }, 10*time.Second, time.Millisecond)
	require.NoError(t, c.Close())
	for range 4 {
		assert.ErrorIs(t, <-errs, knotclient.ErrClosed)
	}
}

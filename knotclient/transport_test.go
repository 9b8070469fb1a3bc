package knotclient_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/provider"
)

// TestRedirectsAreNotFollowed: Knot does not redirect, so a redirect is
// returned as an *Error and never followed, to another host (which would
// receive the request, and with net/http's rules possibly its
// Authorization) or to the same one (which would resend a body that must
// not be sent twice).
func TestRedirectsAreNotFollowed(t *testing.T) {
	other := newFake(t, respond(200, jwk))
	calls := map[string]func(*knotclient.Client) error{
		"GET": func(c *knotclient.Client) error { _, err := c.GetJWEKey(context.Background()); return err },
		"POST": func(c *knotclient.Client) error {
			return c.SwitchCard(context.Background(), knotclient.SwitchCardRequest{TaskID: "1", JWE: "a.b.c.d.e"})
		},
	}
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		for _, target := range []string{"other host", "same host"} {
			for method, call := range calls {
				t.Run(http.StatusText(status)+"/"+target+"/"+method, func(t *testing.T) {
					var f *fakeKnot
					f = newFake(t, func(w http.ResponseWriter, r *http.Request) {
						loc := other.srv.URL + r.URL.Path
						if target == "same host" {
							loc = f.srv.URL + "/moved" + r.URL.Path
						}
						w.Header().Set("Location", loc)
						w.WriteHeader(status)
					})
					before := other.hits()
					err := call(f.client(t))
					var e *knotclient.Error
					require.ErrorAs(t, err, &e)
					assert.Equal(t, status, e.StatusCode)
					assert.Equal(t, 1, e.Attempts, "a redirect is not retried")
					assert.Equal(t, 1, f.hits(), "the redirect target on the same host is not requested")
					assert.Equal(t, before, other.hits(), "the other host is never contacted")
				})
			}
		}
	}
}

// TestKeepAliveAcrossErrorResponses: error responses are read to the end,
// so the connection that carried them is reused.
func TestKeepAliveAcrossErrorResponses(t *testing.T) {
	f := newFake(t, sequence(
		respond(400, `{"error_type":"INVALID_REQUEST","error_code":"INVALID_FIELD","error_message":"x"}`),
		respond(503, `{"message":"Server Error"}`),
		respond(200, jwk),
	))
	c := f.client(t, func(cfg *knotclient.Config) { cfg.MaxAttempts = 1 })
	var reused []bool
	for range 3 {
		var r bool
		_, _ = c.GetJWEKey(reusedTrace(context.Background(), &r))
		reused = append(reused, r)
	}
	assert.Equal(t, []bool{false, true, true}, reused)
}

// TestCloseClosesConnections: Close closes the idle connections at once;
// a response being read at that moment completes, and its connection is
// closed when it is done. Nothing stays open (goleak in TestMain checks
// the goroutines). Over HTTP/1.1 the held call busies one connection and
// the next call dials a second, idle one; over h2 the next call shares the
// held call's connection, so the one connection closes after the response.
func TestCloseClosesConnections(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			srv := proto.server(t)
			p := newProvider(t, srv, provider.Static(issue(t, srv)), true)
			c, dialer, hold := newHoldingClient(t, srv, p)
			ctx := context.Background()
			wantConns := 2
			if proto.h2 {
				wantConns = 1
			}

			_, err := c.GetJWEKey(ctx)
			require.NoError(t, err)
			hold.arm()
			done := make(chan error, 1)
			go func() {
				_, err := c.GetJWEKey(ctx)
				done <- err
			}()
			<-hold.held
			// The held call took the idle connection; HTTP/1.1 makes a
			// second one idle.
			_, err = c.GetJWEKey(ctx)
			require.NoError(t, err)
			conns := dialer.snapshot()
			require.Len(t, conns, wantConns)

			require.NoError(t, c.Close())
			if !proto.h2 { // see TestRotationWithRequestInFlight for why not over h2
				closedNow := 0
				for _, cn := range conns {
					if cn.closed.Load() {
						closedNow++
					}
				}
				assert.Equal(t, 1, closedNow, "the idle connection is closed by Close, the busy one is not cut")
			}

			close(hold.release)
			require.NoError(t, <-done, "a response in flight at Close completes")
			for i, cn := range conns {
				require.Eventually(t, cn.closed.Load, 5*time.Second, time.Millisecond, "connection %d is closed", i)
			}
			_, err = c.GetJWEKey(ctx)
			require.ErrorIs(t, err, knotclient.ErrClosed)
			assert.Len(t, dialer.snapshot(), wantConns, "nothing is dialled after Close")
			proto.requireProto(t, srv)
		})
	}
}

package knotclient_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
)

// TestEndToEndWholeSurface calls every typed method against the fake Knot
// API over real mTLS with a provider-backed certificate.
func TestEndToEndWholeSurface(t *testing.T) {
	srv := knottest.NewTestServer(t)
	b := issue(t, srv)
	p := newProvider(t, srv, provider.Static(b), true)
	c := newKnottestClient(t, srv, p)
	ctx := context.Background()
	const user = "user-e2e"

	sess, err := c.CreateSession(ctx, knotclient.CreateSessionRequest{Type: knotclient.SessionCardSwitcher, ExternalUserID: user, CardID: "card-1"})
	require.NoError(t, err)
	require.NotEmpty(t, sess.Session)
	ext, err := c.ExtendSession(ctx, knotclient.ExtendSessionRequest{SessionID: sess.Session})
	require.NoError(t, err)
	assert.NotEmpty(t, ext.Session)

	merchants, err := c.ListMerchants(ctx, knotclient.ListMerchantsRequest{Type: knotclient.ProductCardSwitcher, Platform: knotclient.PlatformWeb})
	require.NoError(t, err)
	require.NotEmpty(t, merchants)

	accounts, err := c.GetAccounts(ctx, knotclient.GetAccountsRequest{ExternalUserID: user})
	require.NoError(t, err)
	require.NotEmpty(t, accounts)
	acct, err := c.GetAccount(ctx, knotclient.GetAccountRequest{ExternalUserID: user, MerchantID: knottest.MerchantID})
	require.NoError(t, err)
	assert.Equal(t, knottest.MerchantID, acct.Merchant.ID)
	assert.Equal(t, knotclient.ConnectionConnected, acct.Connection.Status)

	key, err := c.GetJWEKey(ctx)
	require.NoError(t, err)
	require.NoError(t, c.SwitchCard(ctx, knotclient.SwitchCardRequest{TaskID: "25605", JWE: encryptJWE(t, key, testCard())}))
	require.NoError(t, c.UpdateCard(ctx, knotclient.UpdateCardRequest{JWE: encryptJWE(t, key, testCard()), ExternalUserID: user, MerchantID: knottest.MerchantID}))
	badCard := testCard()
	badCard["card"] = map[string]string{"number": "4242424242424241", "expiration": "12/2099", "cvv": "123"}
	err = c.SwitchCard(ctx, knotclient.SwitchCardRequest{TaskID: "25606", JWE: encryptJWE(t, key, badCard)})
	require.True(t, knotclient.IsCode(err, knotclient.CodeInvalidJWE), "%v", err)
	assert.NotContains(t, err.Error(), "4242424242424241")

	const limit = 4
	var txIDs []string
	for tx, err := range c.AllTransactions(ctx, knotclient.SyncTransactionsRequest{MerchantID: knottest.MerchantID, ExternalUserID: user, Limit: limit}) {
		require.NoError(t, err)
		txIDs = append(txIDs, tx.ID)
	}
	assert.Len(t, txIDs, knottest.TransactionPages*limit)
	tx, err := c.GetTransaction(ctx, txIDs[len(txIDs)-1])
	require.NoError(t, err)
	assert.Equal(t, txIDs[len(txIDs)-1], tx.ID)
	_, err = c.GetTransaction(ctx, knottest.TransactionID)
	require.NoError(t, err)
	_, err = c.GetTransaction(ctx, "no-such-transaction")
	assert.True(t, knotclient.IsCode(err, knotclient.CodeTransactionNotFound), "%v", err)
	require.NoError(t, c.RefreshTransactions(ctx, knotclient.RefreshTransactionsRequest{MerchantID: knottest.MerchantID, ExternalUserID: user}))

	require.NoError(t, c.SyncCart(ctx, knotclient.SyncCartRequest{ExternalUserID: user, MerchantID: 45,
		Products: []knotclient.CartProduct{{ExternalID: "sku-1"}}}))
	require.NoError(t, c.Checkout(ctx, knotclient.CheckoutRequest{ExternalUserID: user, MerchantID: 45}))

	sub, err := c.GetSubscription(ctx, knottest.SubscriptionID)
	require.NoError(t, err)
	assert.Equal(t, knottest.SubscriptionID, sub.ID)
	var subs int
	for _, err := range c.AllSubscriptions(ctx, knotclient.ListSubscriptionsRequest{ExternalUserID: user, Limit: 4}) {
		require.NoError(t, err)
		subs++
	}
	assert.Equal(t, 6, subs)
	require.NoError(t, c.CancelSubscription(ctx, knotclient.CancelSubscriptionRequest{SubscriptionID: knottest.SubscriptionID,
		ExternalUserID: user, MerchantID: sub.Merchant.ID}))

	require.NoError(t, c.Detect(ctx, knotclient.DetectRequest{ExternalUserID: user, Email: "ada@example.com"}))
	var detected []string
	for d, err := range c.AllDetectedAccounts(ctx, knotclient.ListDetectedAccountsRequest{ExternalUserID: user, Limit: 2}) {
		require.NoError(t, err)
		detected = append(detected, d.Merchant.Name)
	}
	assert.Len(t, detected, 5)
	matches, err := c.SearchDetectedAccounts(ctx, knotclient.SearchDetectedAccountsRequest{ExternalUserID: user, Names: []string{detected[0], "Nowhere Inc"}})
	require.NoError(t, err)
	require.Len(t, matches, 2)

	require.NoError(t, c.DevDisconnectAccount(ctx, knotclient.DevDisconnectAccountRequest{ExternalUserID: user, MerchantID: knottest.MerchantID}))
	acct, err = c.GetAccount(ctx, knotclient.GetAccountRequest{ExternalUserID: user, MerchantID: knottest.MerchantID})
	require.NoError(t, err)
	assert.Equal(t, knotclient.ConnectionDisconnected, acct.Connection.Status)
	require.NoError(t, c.DevLinkAccount(ctx, knotclient.DevLinkAccountRequest{ExternalUserID: user, MerchantID: knottest.MerchantID,
		Transactions: &knotclient.DevTransactions{New: true}}))
	require.NoError(t, c.UnlinkAccount(ctx, knotclient.UnlinkAccountRequest{ExternalUserID: user, MerchantID: 45}))

	_, err = c.GetAccounts(ctx, knotclient.GetAccountsRequest{ExternalUserID: knottest.UnknownUserID})
	assert.True(t, knotclient.IsCode(err, knotclient.CodeUserNotFound), "%v", err)

	serial := provider.SerialHex(b.Leaf())
	reqs := srv.Requests()
	require.NotEmpty(t, reqs)
	for _, r := range reqs {
		assert.True(t, r.AuthOK, "%s %s", r.Method, r.Path)
		assert.Equal(t, serial, r.ClientSerial)
		assert.Equal(t, srv.ClientID(), r.ClientCN)
		assert.GreaterOrEqual(t, r.TLSVersion, uint16(tls.VersionTLS12))
		assert.Equal(t, "2.0", r.Header.Get("Knot-Version"))
	}
	assert.Equal(t, []string{serial}, srv.Serials())
}

func TestEndToEndTLS12Only(t *testing.T) {
	srv := knottest.NewTestServer(t, knottest.WithTLSVersions(tls.VersionTLS12, tls.VersionTLS12))
	c := newKnottestClient(t, srv, newProvider(t, srv, provider.Static(issue(t, srv)), true))
	_, err := c.GetJWEKey(context.Background())
	require.NoError(t, err)
	assert.Equal(t, uint16(tls.VersionTLS12), srv.Requests()[0].TLSVersion)
}

func TestWrongCNIsRefused(t *testing.T) {
	srv := knottest.NewTestServer(t)
	b, err := srv.IssueClientCN("someone-else")
	require.NoError(t, err)
	// A provider that checked the CN would refuse this bundle before any
	// request; here the server has to.
	c := newKnottestClient(t, srv, newProvider(t, srv, provider.Static(b), false))
	_, err = c.GetJWEKey(context.Background())
	var e *knotclient.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, http.StatusUnauthorized, e.StatusCode)
	assert.Equal(t, knotclient.CodeInvalidAPIKeys, e.Code)
	assert.Equal(t, 1, e.Attempts, "a 401 is not retried")
	reqs := srv.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "someone-else", reqs[0].ClientCN)

	// The provider with Knot's CN rule refuses it without a request.
	strict := newKnottestClient(t, srv, newProvider(t, srv, provider.Static(b), true))
	_, err = strict.GetJWEKey(context.Background())
	require.ErrorIs(t, err, provider.ErrSubjectCN)
	assert.Len(t, srv.Requests(), 1)
}

func TestForeignCAIsRefusedAndNotRetried(t *testing.T) {
	// HTTP/1.1: over h2 with TLS 1.3 the client writes its preface right
	// after its side of the handshake, so the server's refusal sometimes
	// surfaces as "broken pipe" or "http2: client conn could not be
	// established" instead of the alert, which is retried (3 times, with
	// backoff) like any other ambiguous network error.
	srv := knottest.NewTestServer(t, knottest.WithHTTP2(false))
	other := knottest.NewTestServer(t) // another CA, same client_id
	foreign := issue(t, other)
	p, err := provider.New(provider.Static(foreign), provider.WithLogger(discardLogger()),
		provider.WithRequirements(provider.Requirements{ClientID: srv.ClientID()}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	c := newKnottestClient(t, srv, p, func(cfg *knotclient.Config) { cfg.MaxAttempts = 5 })

	_, err = c.GetJWEKey(context.Background())
	require.Error(t, err)
	var ke *knotclient.Error
	assert.False(t, errors.As(err, &ke), "refused at the handshake, no HTTP response")
	assert.Contains(t, err.Error(), "knotclient: GET /jwe/key: ")
	assert.NotContains(t, err.Error(), "attempts", "a refused certificate fails the same way again: not retried")
	assert.Empty(t, srv.Requests())
	require.Eventually(t, func() bool { return len(srv.HandshakeErrors()) > 0 }, 5*time.Second, 5*time.Millisecond)
}

func TestExpiredCertificateIsNotPresented(t *testing.T) {
	srv := knottest.NewTestServer(t)
	csrPEM, key := newCSR(t, srv.ClientID())
	certPEM, err := srv.SignCSRValidity(csrPEM, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	require.NoError(t, err)
	certs, err := provider.ParseCertificates(certPEM)
	require.NoError(t, err)
	b, err := provider.NewBundle(certs, key, "expired")
	require.NoError(t, err)
	c := newKnottestClient(t, srv, newProvider(t, srv, provider.Static(b), true))
	_, err = c.GetJWEKey(context.Background())
	require.ErrorIs(t, err, provider.ErrNoValidBundle)
	assert.NotContains(t, err.Error(), "attempts")
	assert.Empty(t, srv.Requests())
}

// TestTransportIsBuiltLazily: New neither handshakes nor asks the getter
// (nor makes the provider load); the first call does.
func TestTransportIsBuiltLazily(t *testing.T) {
	srv := knottest.NewTestServer(t)
	var fetches atomic.Int64
	b := issue(t, srv)
	p := newProvider(t, srv, provider.SourceFunc(func(context.Context) (*provider.Bundle, error) {
		fetches.Add(1)
		return b, nil
	}), true)
	g := &countingGetter{Provider: p}
	c := newKnottestClient(t, srv, g)

	assert.Zero(t, g.calls.Load(), "no handshake before the first request")
	assert.Zero(t, fetches.Load(), "the provider was not asked to load")
	assert.Nil(t, p.Status().Bundle)
	assert.Empty(t, srv.Requests())
	assert.Empty(t, srv.HandshakeErrors())

	for range 3 {
		_, err := c.GetJWEKey(context.Background())
		require.NoError(t, err)
	}
	assert.EqualValues(t, 1, g.calls.Load(), "one handshake, then keep-alive")
	assert.EqualValues(t, 1, fetches.Load())
	assert.Len(t, srv.Requests(), 3)
}

// trackingDialer records every connection the transport dials and whether
// it has been closed.
type trackingDialer struct {
	mu    sync.Mutex
	conns []*trackedConn
}

type trackedConn struct {
	net.Conn
	closed atomic.Bool
}

func (c *trackedConn) Close() error { c.closed.Store(true); return c.Conn.Close() }

func (d *trackingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: conn}
	d.mu.Lock()
	d.conns = append(d.conns, tc)
	d.mu.Unlock()
	return tc, nil
}

func (d *trackingDialer) snapshot() []*trackedConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*trackedConn(nil), d.conns...)
}

// reusedTrace records whether the request reused a pooled connection.
func reusedTrace(ctx context.Context, reused *bool) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { *reused = info.Reused },
	})
}

// TestRotationClosesIdleConnections: after a rotation the idle connection
// (old certificate) is closed at once and the next request handshakes anew
// with the new certificate, over HTTP/1.1 and h2.
func TestRotationClosesIdleConnections(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			srv := proto.server(t)
			src := &rotatingSource{}
			old := issue(t, srv)
			src.cur.Store(old)
			p := newProvider(t, srv, src, true)
			dialer := &trackingDialer{}
			c := newKnottestClient(t, srv, p, func(cfg *knotclient.Config) {
				cfg.Transport = &http.Transport{DialContext: dialer.DialContext, ForceAttemptHTTP2: true}
			})
			ctx := context.Background()

			var reused bool
			for i := range 2 {
				_, err := c.GetJWEKey(reusedTrace(ctx, &reused))
				require.NoError(t, err)
				assert.Equal(t, i == 1, reused, "request %d", i)
			}
			conns := dialer.snapshot()
			require.Len(t, conns, 1)
			assert.False(t, conns[0].closed.Load())

			next := issue(t, srv)
			src.cur.Store(next)
			require.NoError(t, p.Refresh(ctx))
			assert.True(t, conns[0].closed.Load(), "the idle connection with the old certificate is closed by the rotation")

			_, err := c.GetJWEKey(reusedTrace(ctx, &reused))
			require.NoError(t, err)
			assert.False(t, reused, "the next request does not reuse a connection")
			reqs := srv.Requests()
			require.Len(t, reqs, 3)
			assert.Equal(t, provider.SerialHex(old.Leaf()), reqs[1].ClientSerial)
			assert.Equal(t, provider.SerialHex(next.Leaf()), reqs[2].ClientSerial)
			assert.Len(t, dialer.snapshot(), 2)
			proto.requireProto(t, srv)
		})
	}
}

// TestRotationWithRequestInFlight: a connection busy at rotation time is
// not reused afterwards and is closed once its response is done. The
// response is held (its headers arrived, its body is unread, so the
// connection is busy) until the rotation has happened: no timing involved.
// Over HTTP/1.1 and h2 (where the busy connection is one with an open
// stream).
func TestRotationWithRequestInFlight(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			srv := proto.server(t)
			src := &rotatingSource{}
			old, next := issue(t, srv), issue(t, srv)
			src.cur.Store(old)
			p := newProvider(t, srv, src, true)
			c, dialer, hold := newHoldingClient(t, srv, p)
			ctx := context.Background()

			hold.arm()
			done := make(chan error, 1)
			go func() {
				_, err := c.GetJWEKey(ctx)
				done <- err
			}()
			<-hold.held // the response is in flight on the only connection
			busy := dialer.snapshot()
			require.Len(t, busy, 1)

			src.cur.Store(next)
			require.NoError(t, p.Refresh(ctx))
			if !proto.h2 {
				// Over h2 the held response's stream may already have
				// ended (END_STREAM received, body buffered), which makes
				// the connection idle to net/http and closable: harmless,
				// the buffered body is still read below. A stream still
				// open keeps its connection, as over HTTP/1.1.
				assert.False(t, busy[0].closed.Load(), "a busy connection is not cut by the rotation")
			}
			close(hold.release)
			require.NoError(t, <-done, "the request in flight completes on its connection")
			require.Eventually(t, busy[0].closed.Load, 5*time.Second, time.Millisecond,
				"the old connection closes once its response is done")

			_, err := c.GetJWEKey(ctx)
			require.NoError(t, err)
			reqs := srv.Requests()
			require.Len(t, reqs, 2)
			assert.Equal(t, provider.SerialHex(old.Leaf()), reqs[0].ClientSerial)
			assert.Equal(t, provider.SerialHex(next.Leaf()), reqs[1].ClientSerial)
			assert.Len(t, dialer.snapshot(), 2, "the request after the rotation dialled a new connection")
			proto.requireProto(t, srv)
		})
	}
}

// TestRotationUnderConcurrentLoad: 8 goroutines call continuously while the
// certificate rotates; no call fails, both serials reach the server, and
// every request started after the rotation presents the new certificate.
// Over HTTP/1.1 (8 connections) and h2 (the workers share one).
func TestRotationUnderConcurrentLoad(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			srv := proto.server(t)
			src := &rotatingSource{}
			old, next := issue(t, srv), issue(t, srv)
			src.cur.Store(old)
			p := newProvider(t, srv, src, true)

			var seq atomic.Int64
			var rotated atomic.Bool
			var afterMu sync.Mutex
			after := map[string]bool{} // X-Test-Seq of requests started after rotation
			c := newKnottestClient(t, srv, p, func(cfg *knotclient.Config) {
				cfg.WrapTransport = func(next http.RoundTripper) http.RoundTripper {
					return roundTripFunc(func(r *http.Request) (*http.Response, error) {
						id := time.Duration(seq.Add(1)).String()
						if rotated.Load() {
							afterMu.Lock()
							after[id] = true
							afterMu.Unlock()
						}
						r.Header.Set("X-Test-Seq", id)
						return next.RoundTrip(r)
					})
				}
			})

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			const workers = 8
			var ok, failed atomic.Int64
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for ctx.Err() == nil {
						if _, err := c.GetJWEKey(context.Background()); err != nil {
							failed.Add(1)
							t.Errorf("call failed during rotation: %v", err)
							return
						}
						ok.Add(1)
					}
				})
			}
			require.Eventually(t, func() bool { return ok.Load() > 200 }, 30*time.Second, time.Millisecond)
			src.cur.Store(next)
			require.NoError(t, p.Refresh(context.Background()))
			rotated.Store(true)
			before := ok.Load()
			// At most one call per worker was already running when rotated was
			// set, so more than 200+workers completions from here on include more
			// than 200 calls started after the rotation: a count, not a sleep.
			require.Eventually(t, func() bool { return ok.Load() > before+200+workers }, 30*time.Second, time.Millisecond)
			cancel()
			wg.Wait()

			assert.Zero(t, failed.Load())
			oldSerial, newSerial := provider.SerialHex(old.Leaf()), provider.SerialHex(next.Leaf())
			assert.Equal(t, []string{oldSerial, newSerial}, srv.Serials())
			var checked int
			for _, r := range srv.Requests() {
				if after[r.Header.Get("X-Test-Seq")] {
					checked++
					require.Equal(t, newSerial, r.ClientSerial, "a request started after the rotation presented the old certificate")
				}
			}
			assert.Greater(t, checked, 200)
			t.Logf("%d calls, %d after rotation, 0 failed", ok.Load(), checked)
			proto.requireProto(t, srv)
		})
	}
}

// TestRetryAgainstKnottestFaults drives the retry policy with the fake's
// fault injection over real mTLS.
func TestRetryAgainstKnottestFaults(t *testing.T) {
	srv := knottest.NewTestServer(t)
	c := newKnottestClient(t, srv, newProvider(t, srv, provider.Static(issue(t, srv)), true))
	ctx := context.Background()

	srv.Fail(knottest.Fault{Path: "/transactions/sync", Status: 500, Times: 1})
	srv.Fail(knottest.Fault{Path: "/transactions/sync", Status: 429, RetryAfter: "0", Times: 1})
	srv.Fail(knottest.Fault{Path: "/transactions/sync", Drop: true, Times: 1})
	page, err := c.SyncTransactions(ctx, knotclient.SyncTransactionsRequest{MerchantID: knottest.MerchantID, ExternalUserID: "u", Limit: 2})
	require.Error(t, err, "three failures exhaust the default three attempts")
	srv.Reset()

	srv.Fail(knottest.Fault{Path: "/transactions/sync", Status: 503, Times: 1})
	srv.Fail(knottest.Fault{Path: "/transactions/sync", Drop: true, Times: 1})
	page, err = c.SyncTransactions(ctx, knotclient.SyncTransactionsRequest{MerchantID: knottest.MerchantID, ExternalUserID: "u", Limit: 2})
	require.NoError(t, err)
	assert.Len(t, page.Transactions, 2)
	assert.Len(t, srv.Requests(), 3)
	srv.Reset()

	srv.Fail(knottest.Fault{Path: "/card", Status: 503})
	key, err := c.GetJWEKey(ctx)
	require.NoError(t, err)
	err = c.SwitchCard(ctx, knotclient.SwitchCardRequest{TaskID: "1", JWE: encryptJWE(t, key, testCard())})
	require.True(t, knotclient.IsStatus(err, 503))
	var cardCalls int
	for _, r := range srv.Requests() {
		if r.Path == "/card" {
			cardCalls++
		}
	}
	assert.Equal(t, 1, cardCalls, "/card is never retried")
	srv.Reset()

	srv.Fail(knottest.Fault{Path: "/cart", Body: "<html>upstream timeout</html>", Status: 504})
	err = c.SyncCart(ctx, knotclient.SyncCartRequest{ExternalUserID: "u", MerchantID: 45, Products: []knotclient.CartProduct{{ExternalID: "sku"}}})
	var e *knotclient.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 504, e.StatusCode)
	assert.Contains(t, e.Error(), "non-JSON body")
	assert.Len(t, srv.Requests(), 1, "202 operations are never retried")
}

package knottest_test

import (
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
)

func TestIssuedClientIsServedAndRecorded(t *testing.T) {
	s, c, b := setup(t)

	resp, raw := mustSend(t, c, s, http.MethodPost, "/merchant/list", map[string]any{"type": "card_switcher"})
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)

	reqs := s.Requests()
	require.Len(t, reqs, 1)
	r := reqs[0]
	assert.Equal(t, http.MethodPost, r.Method)
	assert.Equal(t, "/merchant/list", r.Path)
	assert.JSONEq(t, `{"type":"card_switcher"}`, string(r.Body))
	assert.Equal(t, "2.0", r.Header.Get("Knot-Version"))
	assert.Equal(t, provider.SerialHex(b.Leaf()), r.ClientSerial)
	assert.Equal(t, knottest.DefaultClientID, r.ClientCN)
	assert.Equal(t, uint16(tls.VersionTLS13), r.TLSVersion)
	assert.True(t, r.AuthOK)
	assert.Equal(t, http.StatusOK, r.Status)
	assert.False(t, r.Time.IsZero())
	assert.Equal(t, []string{provider.SerialHex(b.Leaf())}, s.Serials())
	assert.Empty(t, s.HandshakeErrors())

	// Requests hands out copies.
	reqs[0].Body[0] = 'X'
	reqs[0].Header.Set("Knot-Version", "9")
	again := s.Requests()[0]
	assert.JSONEq(t, `{"type":"card_switcher"}`, string(again.Body))
	assert.Equal(t, "2.0", again.Header.Get("Knot-Version"))
}

func TestIssueClientMeetsKnotRules(t *testing.T) {
	s := knottest.NewTestServer(t)
	b1, err := s.IssueClient()
	require.NoError(t, err)
	b2, err := s.IssueClient()
	require.NoError(t, err)

	roots := x509.NewCertPool()
	roots.AddCert(s.CA())
	req := provider.Requirements{ClientID: s.ClientID(), Roots: roots}
	for _, b := range []*provider.Bundle{b1, b2} {
		require.NoError(t, req.CheckBundle(b))
		leaf := b.Leaf()
		assert.Equal(t, x509.SHA256WithRSA, leaf.SignatureAlgorithm)
		assert.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage)
		assert.LessOrEqual(t, leaf.SerialNumber.BitLen(), 128)
		assert.Equal(t, provider.SerialHex(leaf), b.Version)
		assert.Equal(t, leaf.NotAfter, b.NotAfter)
	}
	assert.NotEqual(t, b1.Leaf().SerialNumber, b2.Leaf().SerialNumber)
	assert.False(t, b1.Leaf().PublicKey.(*rsa.PublicKey).Equal(b2.Leaf().PublicKey), "each bundle has its own key")

	// The server CA and the client CA are different authorities.
	_, err = b1.Leaf().Verify(x509.VerifyOptions{Roots: s.RootCAs(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	assert.Error(t, err, "client certificates must not chain to the server CA")
}

func TestRotationShowsNewSerial(t *testing.T) {
	s, c1, b1 := setup(t)
	b2, err := s.IssueClient()
	require.NoError(t, err)
	c2 := newClient(t, s, b2)

	for _, c := range []*http.Client{c1, c2, c1} {
		resp, raw := mustSend(t, c, s, http.MethodGet, "/jwe/key", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)
	}
	assert.Equal(t, []string{provider.SerialHex(b1.Leaf()), provider.SerialHex(b2.Leaf())}, s.Serials())
	assert.Len(t, s.Requests(), 3)
}

func TestHandshakeRefusals(t *testing.T) {
	s := knottest.NewTestServer(t)

	foreign := knottest.NewTestServer(t)
	foreignBundle, err := foreign.IssueClient()
	require.NoError(t, err)

	key, csrPEM := newCSR(t, s.ClientID())
	certPEM, err := s.SignCSRValidity(csrPEM, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	require.NoError(t, err)
	expired, err := provider.ParseBundle(certPEM, nil, pemKey(t, key), "expired")
	require.NoError(t, err)

	tests := []struct {
		name   string
		bundle *provider.Bundle
		tls12  bool
	}{
		{"no client certificate", nil, false},
		{"no client certificate tls1.2", nil, true},
		{"certificate from a foreign CA", foreignBundle, false},
		{"certificate from a foreign CA tls1.2", foreignBundle, true},
		{"expired certificate", expired, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.Reset()
			c := newClient(t, s, tt.bundle, func(cfg *tls.Config) {
				if tt.tls12 {
					cfg.MaxVersion = tls.VersionTLS12
				}
			})
			_, _, err := send(c, s, http.MethodGet, "/jwe/key", nil)
			require.Error(t, err)
			assert.Empty(t, s.Requests(), "a refused handshake never reaches HTTP")
			require.Eventually(t, func() bool { return len(s.HandshakeErrors()) > 0 }, 5*time.Second, 5*time.Millisecond)
			assert.Contains(t, s.HandshakeErrors()[0], "TLS handshake error")
		})
	}
}

func TestWrongCNIsRefusedWith401(t *testing.T) {
	s := knottest.NewTestServer(t)
	b, err := s.IssueClientCN("someone-else")
	require.NoError(t, err)
	c := newClient(t, s, b)

	resp, raw := mustSend(t, c, s, http.MethodGet, "/jwe/key", nil)
	requireKnotError(t, resp, raw, http.StatusUnauthorized, "INVALID_INPUT", "INVALID_API_KEYS")

	reqs := s.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "someone-else", reqs[0].ClientCN)
	assert.Equal(t, provider.SerialHex(b.Leaf()), reqs[0].ClientSerial)
	assert.True(t, reqs[0].AuthOK, "Basic auth was right; the CN was not")
	assert.Equal(t, http.StatusUnauthorized, reqs[0].Status)
}

func TestBasicAuth(t *testing.T) {
	s, c, _ := setup(t)
	tests := []struct {
		name string
		opt  reqOpt
	}{
		{"missing", noAuth},
		{"wrong secret", withAuth(s.ClientID(), "not-the-secret")},
		{"wrong client_id", withAuth("other-client", s.Secret())},
		{"empty", withAuth("", "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.Reset()
			resp, raw := mustSend(t, c, s, http.MethodPost, "/merchant/list", map[string]any{"type": "card_switcher"}, tt.opt)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
			assert.JSONEq(t, `{"error_type":"INVALID_INPUT","error_code":"INVALID_API_KEYS","error_message":"Invalid client_id or secret provided."}`, string(raw))
			reqs := s.Requests()
			require.Len(t, reqs, 1)
			assert.False(t, reqs[0].AuthOK)
			assert.Equal(t, http.StatusUnauthorized, reqs[0].Status)
		})
	}
}

func TestTLSVersions(t *testing.T) {
	tests := []struct {
		name     string
		min, max uint16
	}{
		{"tls1.2 only", tls.VersionTLS12, tls.VersionTLS12},
		{"tls1.3 only", tls.VersionTLS13, tls.VersionTLS13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c, _ := setup(t, knottest.WithTLSVersions(tt.min, tt.max))
			resp, raw := mustSend(t, c, s, http.MethodGet, "/jwe/key", nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)
			require.NotNil(t, resp.TLS)
			assert.Equal(t, tt.min, resp.TLS.Version)
			assert.Equal(t, tt.min, s.Requests()[0].TLSVersion)
		})
	}

	t.Run("tls1.2 client against tls1.3-only server", func(t *testing.T) {
		s := knottest.NewTestServer(t, knottest.WithTLSVersions(tls.VersionTLS13, tls.VersionTLS13))
		b, err := s.IssueClient()
		require.NoError(t, err)
		c := newClient(t, s, b, func(cfg *tls.Config) { cfg.MaxVersion = tls.VersionTLS12 })
		_, _, err = send(c, s, http.MethodGet, "/jwe/key", nil)
		require.Error(t, err)
		assert.Empty(t, s.Requests())
	})
}

func TestNewServerRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opt  knottest.Option
	}{
		{"minimum below TLS 1.2", knottest.WithTLSVersions(tls.VersionTLS11, 0)},
		{"maximum below minimum", knottest.WithTLSVersions(tls.VersionTLS13, tls.VersionTLS12)},
		{"empty client_id", knottest.WithClientID("")},
		{"zero validity", knottest.WithCertValidity(0)},
		{"negative max requests per connection", knottest.WithMaxRequestsPerConn(-1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := knottest.NewServer(tt.opt)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.Contains(t, err.Error(), "knottest: ")
		})
	}
}

func TestOptions(t *testing.T) {
	s, c, b := setup(t,
		knottest.WithClientID("acme-prod-7"),
		knottest.WithSecret("s3cret"),
		knottest.WithCertValidity(2*time.Hour),
		knottest.WithLogger(nil), // nil keeps the default
	)
	assert.Equal(t, "acme-prod-7", s.ClientID())
	assert.Equal(t, "s3cret", s.Secret())
	assert.Equal(t, "acme-prod-7", b.Leaf().Subject.CommonName)
	validity := b.Leaf().NotAfter.Sub(b.Leaf().NotBefore)
	assert.Equal(t, 2*time.Hour+time.Minute, validity, "valid from one minute ago for the configured validity")

	resp, raw := mustSend(t, c, s, http.MethodGet, "/jwe/key", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)

	// The default identity is refused now.
	resp, raw = mustSend(t, c, s, http.MethodGet, "/jwe/key", nil, withAuth(knottest.DefaultClientID, knottest.DefaultSecret))
	requireKnotError(t, resp, raw, http.StatusUnauthorized, "INVALID_INPUT", "INVALID_API_KEYS")
}

func TestConcurrentRequestsAreAllRecorded(t *testing.T) {
	s, c1, b1 := setup(t)
	b2, err := s.IssueClient()
	require.NoError(t, err)
	c2 := newClient(t, s, b2)

	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		c := c1
		if w%2 == 1 {
			c = c2
		}
		wg.Go(func() {
			for range each {
				resp, _, err := send(c, s, http.MethodGet, "/accounts/get?external_user_id=u1", nil)
				if err == nil && resp.StatusCode != http.StatusOK {
					err = assert.AnError
				}
				errs <- err
				_ = s.Requests() // read while others write
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	reqs := s.Requests()
	require.Len(t, reqs, workers*each)
	for _, r := range reqs {
		assert.True(t, r.AuthOK)
		assert.Equal(t, http.StatusOK, r.Status)
	}
	assert.ElementsMatch(t, []string{provider.SerialHex(b1.Leaf()), provider.SerialHex(b2.Leaf())}, s.Serials())
}

func TestReset(t *testing.T) {
	s, c, _ := setup(t)
	s.Fail(knottest.Fault{Status: http.StatusServiceUnavailable})
	resp, _ := mustSend(t, c, s, http.MethodGet, "/jwe/key", nil)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)

	s.Reset()
	assert.Empty(t, s.Requests())
	assert.Empty(t, s.Serials())
	resp, raw := mustSend(t, c, s, http.MethodGet, "/jwe/key", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "the unlimited fault is gone: %s", raw)
	assert.Len(t, s.Requests(), 1)
}

func TestCloseEndsDelayedHandlersAndLeaksNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	s, err := knottest.NewServer()
	require.NoError(t, err)
	b, err := s.IssueClient()
	require.NoError(t, err)
	c := newClient(t, s, b)

	resp, _, err := send(c, s, http.MethodGet, "/jwe/key", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	s.Fail(knottest.Fault{Delay: time.Hour})
	clientDone := make(chan error, 1)
	go func() {
		_, _, err := send(c, s, http.MethodGet, "/jwe/key", nil)
		clientDone <- err
	}()
	require.Eventually(t, func() bool { return len(s.Requests()) == 2 }, 10*time.Second, 5*time.Millisecond,
		"the delayed request reaches the handler")

	closed := make(chan struct{})
	go func() {
		s.Close()
		s.Close() // idempotent
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return while a handler was sleeping in a one-hour delay")
	}
	require.Error(t, <-clientDone, "the delayed request is abandoned")
	assert.Equal(t, 0, s.Requests()[1].Status)
	c.CloseIdleConnections()

	// After Close the server refuses connections.
	_, _, err = send(c, s, http.MethodGet, "/jwe/key", nil)
	require.Error(t, err)
}

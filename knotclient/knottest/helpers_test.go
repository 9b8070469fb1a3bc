package knottest_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newClient returns an http.Client that presents b (nil: no certificate)
// and trusts s's server CA. mods adjust the tls.Config.
func newClient(t *testing.T, s *knottest.Server, b *provider.Bundle, mods ...func(*tls.Config)) *http.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: s.RootCAs(), MinVersion: tls.VersionTLS12}
	if b != nil {
		cfg.Certificates = []tls.Certificate{*b.TLSCertificate()}
	}
	for _, m := range mods {
		m(cfg)
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// setup starts a server and returns it with a client holding a fresh
// certificate from it.
func setup(t *testing.T, opts ...knottest.Option) (*knottest.Server, *http.Client, *provider.Bundle) {
	t.Helper()
	s := knottest.NewTestServer(t, opts...)
	b, err := s.IssueClient()
	require.NoError(t, err)
	return s, newClient(t, s, b), b
}

type reqOpt func(*http.Request)

func noAuth(r *http.Request) { r.Header.Del("Authorization") }

func withAuth(user, pass string) reqOpt {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

// send performs one request with Basic auth and a JSON body (body may be
// nil, a string sent verbatim, or a value to marshal) and returns the
// response and its body. The error is the transport error.
func send(c *http.Client, s *knottest.Server, method, path string, body any, opts ...reqOpt) (*http.Response, []byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return nil, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, s.URL()+path, rd)
	if err != nil {
		return nil, nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Knot-Version", "2.0")
	req.SetBasicAuth(s.ClientID(), s.Secret())
	for _, o := range opts {
		o(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp, raw, err
}

// mustSend is send for requests that must get a response.
func mustSend(t *testing.T, c *http.Client, s *knottest.Server, method, path string, body any, opts ...reqOpt) (*http.Response, []byte) {
	t.Helper()
	resp, raw, err := send(c, s, method, path, body, opts...)
	require.NoError(t, err)
	return resp, raw
}

func decodeObject(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m), "body: %s", raw)
	return m
}

func decodeArray(t *testing.T, raw []byte) []map[string]any {
	t.Helper()
	var a []map[string]any
	require.NoError(t, json.Unmarshal(raw, &a), "body: %s", raw)
	return a
}

// requireKnotError checks a Knot-shaped error response.
func requireKnotError(t *testing.T, resp *http.Response, raw []byte, status int, errType, code string) {
	t.Helper()
	require.Equal(t, status, resp.StatusCode, "body: %s", raw)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	m := decodeObject(t, raw)
	require.Equal(t, errType, m["error_type"], "body: %s", raw)
	require.Equal(t, code, m["error_code"], "body: %s", raw)
	require.NotEmpty(t, m["error_message"], "body: %s", raw)
}

func requireKeys(t *testing.T, m map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		require.Contains(t, m, k, "object %v", m)
	}
}

package knotclient_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
)

// TestCallerTransportAgainstHTTP2Server: a caller's plain *http.Transport
// (no TLS config, no ForceAttemptHTTP2) works against a server that offers
// h2 and speaks it; one whose TLSNextProto is an empty map (HTTP/2 off)
// stays on HTTP/1.1. (net/http's Clone sets the original's HTTP/2 defaults
// and hands the clone a TLS config that offers h2, which the clone, having
// its own TLS config, would not speak unless forced.)
func TestCallerTransportAgainstHTTP2Server(t *testing.T) {
	for _, tc := range []struct {
		name      string
		transport func() *http.Transport
		proto     string
	}{
		{"plain", func() *http.Transport { return &http.Transport{} }, "HTTP/2.0"},
		{"no keep-alives", func() *http.Transport { return &http.Transport{DisableKeepAlives: true} }, "HTTP/2.0"},
		{"HTTP/2 off", func() *http.Transport {
			return &http.Transport{TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
		}, "HTTP/1.1"},
		// With a TLS config of its own a transport speaks HTTP/2 only when
		// forced (net/http's rule), and the client keeps that choice.
		{"own TLS config", func() *http.Transport { return &http.Transport{TLSClientConfig: &tls.Config{}} }, "HTTP/1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := knottest.NewTestServer(t)
			p := newProvider(t, srv, provider.Static(issue(t, srv)), true)
			c := newKnottestClient(t, srv, p, func(cfg *knotclient.Config) { cfg.Transport = tc.transport() })
			for range 3 {
				_, err := c.GetJWEKey(context.Background())
				require.NoError(t, err)
			}
			reqs := srv.Requests()
			require.Len(t, reqs, 3)
			for _, r := range reqs {
				assert.Equal(t, tc.proto, r.Proto)
			}
		})
	}
}

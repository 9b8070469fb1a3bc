package knottest_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
)

// h2Client is newClient asking for HTTP/2 (as knotclient does) and keeping
// a TLS session cache, so it resumes when the server issues tickets.
func h2Client(t *testing.T, s *knottest.Server, b *provider.Bundle, mods ...func(*tls.Config)) *http.Client {
	t.Helper()
	c := newClient(t, s, b, append([]func(*tls.Config){func(cfg *tls.Config) {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	}}, mods...)...)
	c.Transport.(*http.Transport).ForceAttemptHTTP2 = true
	return c
}

// dialCounter counts the connections a client opens.
func dialCounter(n *atomic.Int64) context.Context {
	return httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if !info.Reused {
				n.Add(1)
			}
		},
	})
}

func getJWEKey(t *testing.T, ctx context.Context, c *http.Client, s *knottest.Server) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/jwe/key", nil)
	require.NoError(t, err)
	req.SetBasicAuth(s.ClientID(), s.Secret())
	resp, err := c.Do(req)
	require.NoError(t, err)
	_, err = io.Copy(io.Discard, resp.Body) // read to the end: the connection is reusable
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return resp
}

// TestProtocols: h2 is negotiated when the client asks for it, HTTP/1.1
// otherwise, and only HTTP/1.1 with WithHTTP2(false).
func TestProtocols(t *testing.T) {
	for _, tt := range []struct {
		name     string
		opts     []knottest.Option
		clientH2 bool
		want     string
	}{
		{"h2 client, default server", nil, true, "HTTP/2.0"},
		{"http/1.1 client, default server", nil, false, "HTTP/1.1"},
		{"h2 client, WithHTTP2(false)", []knottest.Option{knottest.WithHTTP2(false)}, true, "HTTP/1.1"},
		{"h2 client, TLS 1.2", []knottest.Option{knottest.WithTLSVersions(tls.VersionTLS12, tls.VersionTLS12)}, true, "HTTP/2.0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := knottest.NewTestServer(t, tt.opts...)
			b, err := s.IssueClient()
			require.NoError(t, err)
			c := newClient(t, s, b)
			if tt.clientH2 {
				c = h2Client(t, s, b)
			}
			resp := getJWEKey(t, context.Background(), c, s)
			assert.Equal(t, tt.want, resp.Proto)
			reqs := s.Requests()
			require.Len(t, reqs, 1)
			assert.Equal(t, tt.want, reqs[0].Proto)
			assert.Equal(t, provider.SerialHex(b.Leaf()), reqs[0].ClientSerial)
			assert.True(t, reqs[0].AuthOK)
		})
	}
}

// TestSessionTickets: by default a new connection from a client with a
// session cache resumes (no second client signature) and is recorded with
// the certificate of the first handshake; WithSessionTickets(false) makes
// every connection a full handshake.
func TestSessionTickets(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		for _, proto := range []bool{true, false} {
			for _, tickets := range []bool{true, false} {
				name := tls.VersionName(version) + map[bool]string{true: "/h2", false: "/http1.1"}[proto] +
					map[bool]string{true: "/tickets", false: "/no tickets"}[tickets]
				t.Run(name, func(t *testing.T) {
					s := knottest.NewTestServer(t, knottest.WithTLSVersions(version, version),
						knottest.WithHTTP2(proto), knottest.WithSessionTickets(tickets))
					b, err := s.IssueClient()
					require.NoError(t, err)
					var signs atomic.Int64
					c := h2Client(t, s, b, func(cfg *tls.Config) {
						cert := *b.TLSCertificate()
						cfg.Certificates = nil
						cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
							signs.Add(1) // asked only on a full handshake
							return &cert, nil
						}
					})
					const conns = 4
					for range conns {
						getJWEKey(t, context.Background(), c, s)
						c.CloseIdleConnections()
					}
					reqs := s.Requests()
					require.Len(t, reqs, conns)
					for i, r := range reqs {
						assert.Equal(t, tickets && i > 0, r.Resumed, "request %d", i)
						assert.Equal(t, provider.SerialHex(b.Leaf()), r.ClientSerial, "request %d", i)
						assert.True(t, r.AuthOK)
					}
					want := knottest.Handshakes{Full: conns}
					if tickets {
						want = knottest.Handshakes{Full: 1, Resumed: conns - 1}
					}
					assert.Equal(t, want, s.Handshakes())
					assert.EqualValues(t, want.Full, signs.Load(), "the client certificate is asked for on full handshakes only")

					s.Reset()
					assert.Equal(t, knottest.Handshakes{}, s.Handshakes())
				})
			}
		}
	}
}

// TestMaxRequestsPerConn: the server closes each connection after n
// requests, over HTTP/1.1 (Connection: close) and h2 (GOAWAY); without the
// option one connection carries everything.
func TestMaxRequestsPerConn(t *testing.T) {
	const requests = 12
	for _, tt := range []struct {
		name      string
		h2        bool
		max       int
		wantConns int64
	}{
		{"http1.1/max 3", false, 3, requests / 3},
		{"h2/max 3", true, 3, requests / 3},
		{"http1.1/max 1", false, 1, requests},
		{"h2/max 1", true, 1, requests},
		{"h2/no limit", true, 0, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := knottest.NewTestServer(t, knottest.WithMaxRequestsPerConn(tt.max))
			b, err := s.IssueClient()
			require.NoError(t, err)
			c := newClient(t, s, b)
			if tt.h2 {
				c = h2Client(t, s, b)
			}
			// Every TCP connection the transport opens, also one an h2
			// transport dials for a request that then gets another
			// connection (a GOAWAY race): the server sees a handshake for
			// each of them.
			var tcpDials atomic.Int64
			tr := c.Transport.(*http.Transport)
			dialer := &net.Dialer{}
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				tcpDials.Add(1)
				return dialer.DialContext(ctx, network, addr)
			}
			var dials atomic.Int64
			for range requests {
				getJWEKey(t, dialCounter(&dials), c, s)
			}
			assert.Equal(t, tt.wantConns, dials.Load(), "new connections the requests got")
			hs := s.Handshakes()
			assert.EqualValues(t, tcpDials.Load(), hs.Full+hs.Resumed, "handshakes the server saw: one per connection the client opened")
			assert.GreaterOrEqual(t, tcpDials.Load(), tt.wantConns)
			for _, r := range s.Requests() {
				assert.Equal(t, map[bool]string{true: "HTTP/2.0", false: "HTTP/1.1"}[tt.h2], r.Proto)
			}
		})
	}
}

// TestFaultDropOverHTTP2: a Drop fault closes the whole h2 connection (an
// h2 connection cannot be hijacked), so the request fails and the next one
// opens a new connection.
func TestFaultDropOverHTTP2(t *testing.T) {
	s := knottest.NewTestServer(t)
	b, err := s.IssueClient()
	require.NoError(t, err)
	c := h2Client(t, s, b)
	var dials atomic.Int64
	getJWEKey(t, dialCounter(&dials), c, s)

	s.Fail(knottest.Fault{Drop: true, Times: 1})
	// A POST without GetBody is not retried by net/http, so the drop shows.
	req, err := http.NewRequestWithContext(dialCounter(&dials), http.MethodPost, s.URL()+"/session/create", http.NoBody)
	require.NoError(t, err)
	req.GetBody = nil
	req.SetBasicAuth(s.ClientID(), s.Secret())
	resp, err := c.Do(req)
	if resp != nil {
		_ = resp.Body.Close()
	}
	require.Error(t, err, "the dropped request gets no response")

	getJWEKey(t, dialCounter(&dials), c, s)
	assert.EqualValues(t, 2, dials.Load(), "the dropped connection is gone; the next request dials anew")
	reqs := s.Requests()
	require.Len(t, reqs, 3)
	assert.Equal(t, "HTTP/2.0", reqs[1].Proto)
	assert.Zero(t, reqs[1].Status, "no status was written for the dropped request")
}

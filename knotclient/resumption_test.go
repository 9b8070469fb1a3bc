package knotclient_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
)

// protocol is the HTTP protocol a knottest server speaks. knotclient asks
// for h2 (ForceAttemptHTTP2), so the server's offer decides.
type protocol struct {
	name  string
	h2    bool
	proto string // as recorded in knottest.Request.Proto
}

var protocols = []protocol{{"http1.1", false, "HTTP/1.1"}, {"h2", true, "HTTP/2.0"}}

// server starts a knottest server speaking p.
func (p protocol) server(t *testing.T, opts ...knottest.Option) *knottest.Server {
	t.Helper()
	return knottest.NewTestServer(t, append([]knottest.Option{knottest.WithHTTP2(p.h2)}, opts...)...)
}

// requireProto checks that every recorded request used p.
func (p protocol) requireProto(t *testing.T, srv *knottest.Server) {
	t.Helper()
	for i, r := range srv.Requests() {
		require.Equal(t, p.proto, r.Proto, "request %d", i)
	}
}

// countingSigner counts the signatures a key makes: one per full TLS
// handshake (the CertificateVerify), none for a resumed one. It stands for
// a Vault Transit key, where each signature is a Vault request.
type countingSigner struct {
	crypto.Signer
	signs atomic.Int64
}

func (s *countingSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.signs.Add(1)
	return s.Signer.Sign(rand, digest, opts)
}

// countedBundle returns a fresh bundle from srv whose key counts signatures.
func countedBundle(t *testing.T, srv *knottest.Server) (*provider.Bundle, *countingSigner) {
	t.Helper()
	b := issue(t, srv)
	cs := &countingSigner{Signer: b.Key}
	nb, err := provider.NewBundle(b.Chain, cs, b.Version)
	require.NoError(t, err)
	return nb, cs
}

// TestSessionResumptionSavesSignatures is the measurement of issue 9 item
// 4: 8 workers make 1,000 calls against a server that closes each
// connection after 10 requests (100+ new connections). With resumption
// (the default) only the first handshakes sign; without it every new
// connection signs.
func TestSessionResumptionSavesSignatures(t *testing.T) {
	const (
		workers = 8
		calls   = 1000
		perConn = 10
	)
	type row struct {
		name    string
		h2      bool
		version uint16
		disable bool
	}
	var rows []row
	for _, p := range []struct {
		name    string
		h2      bool
		version uint16
	}{{"h2", true, tls.VersionTLS13}, {"http1.1", false, tls.VersionTLS13}, {"http1.1", false, tls.VersionTLS12}} {
		for _, disable := range []bool{false, true} {
			name := p.name + "/" + tls.VersionName(p.version) + map[bool]string{false: "/resumption", true: "/no resumption"}[disable]
			rows = append(rows, row{name, p.h2, p.version, disable})
		}
	}
	for _, tt := range rows {
		t.Run(tt.name, func(t *testing.T) {
			srv := knottest.NewTestServer(t, knottest.WithHTTP2(tt.h2),
				knottest.WithTLSVersions(tt.version, tt.version), knottest.WithMaxRequestsPerConn(perConn))
			b, signer := countedBundle(t, srv)
			c := newKnottestClient(t, srv, newProvider(t, srv, provider.Static(b), true),
				func(cfg *knotclient.Config) { cfg.DisableSessionResumption = tt.disable })

			var next atomic.Int64
			var failed atomic.Int64
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for next.Add(1) <= calls {
						if _, err := c.GetJWEKey(context.Background()); err != nil {
							failed.Add(1)
							t.Errorf("call failed: %v", err)
						}
					}
				})
			}
			wg.Wait()

			require.Zero(t, failed.Load())
			reqs := srv.Requests()
			require.Len(t, reqs, calls)
			serial := provider.SerialHex(b.Leaf())
			for _, r := range reqs {
				require.Equal(t, serial, r.ClientSerial)
				require.True(t, r.AuthOK)
			}
			hs := srv.Handshakes()
			conns := hs.Full + hs.Resumed
			require.GreaterOrEqual(t, conns, calls/perConn, "the server closed connections after %d requests", perConn)
			signs := signer.signs.Load()
			// A handshake the client signed may still be abandoned before
			// the server counts it (a dial net/http no longer needs), so
			// signatures are at least the full handshakes.
			assert.GreaterOrEqual(t, signs, int64(hs.Full), "one signature per full handshake, none per resumed one")
			if tt.disable {
				assert.Zero(t, hs.Resumed, "resumption is off")
				assert.GreaterOrEqual(t, signs, int64(calls/perConn), "every new connection signs")
			} else {
				assert.LessOrEqual(t, signs, int64(workers),
					"only handshakes that started before the first ticket arrived sign")
				assert.GreaterOrEqual(t, hs.Resumed, conns-workers)
			}
			t.Logf("figures %s: %d calls, %d failed, %d connections (%d full, %d resumed): %d signatures per %d calls",
				tt.name, calls, failed.Load(), conns, hs.Full, hs.Resumed, signs, calls)
		})
	}
}

// TestRotationReplacesSessionCache: sessions created with the old
// certificate are not resumed after a rotation. The server closes every
// connection after one request, so each call is a new connection: resumed
// before the rotation (old serial, no signature), a full handshake with the
// new certificate right after it, resumed with the new serial from then on.
func TestRotationReplacesSessionCache(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			srv := p.server(t, knottest.WithMaxRequestsPerConn(1))
			src := &rotatingSource{}
			old, oldSigner := countedBundle(t, srv)
			next, nextSigner := countedBundle(t, srv)
			src.cur.Store(old)
			prov := newProvider(t, srv, src, true)
			c := newKnottestClient(t, srv, prov)
			ctx := context.Background()
			call := func() {
				t.Helper()
				_, err := c.GetJWEKey(ctx)
				require.NoError(t, err)
			}

			call()
			call()
			src.cur.Store(next)
			require.NoError(t, prov.Refresh(ctx))
			call()
			call()
			call()

			oldSerial, newSerial := provider.SerialHex(old.Leaf()), provider.SerialHex(next.Leaf())
			type seen struct {
				Serial  string
				Resumed bool
			}
			var got []seen
			for _, r := range srv.Requests() {
				got = append(got, seen{r.ClientSerial, r.Resumed})
			}
			assert.Equal(t, []seen{
				{oldSerial, false}, {oldSerial, true}, // before the rotation
				{newSerial, false}, // the first new connection after it: full handshake
				{newSerial, true}, {newSerial, true},
			}, got)
			assert.EqualValues(t, 1, oldSigner.signs.Load(), "the old key signed the first handshake only")
			assert.EqualValues(t, 1, nextSigner.signs.Load(), "the new key signed one handshake")
			assert.Equal(t, knottest.Handshakes{Full: 2, Resumed: 3}, srv.Handshakes())
			p.requireProto(t, srv)
		})
	}
}

// recordingCache is a tls.ClientSessionCache that counts its use.
type recordingCache struct {
	tls.ClientSessionCache
	uses atomic.Int64
}

func (c *recordingCache) Get(key string) (*tls.ClientSessionState, bool) {
	c.uses.Add(1)
	return c.ClientSessionCache.Get(key)
}

func (c *recordingCache) Put(key string, cs *tls.ClientSessionState) {
	c.uses.Add(1)
	c.ClientSessionCache.Put(key, cs)
}

// TestSessionCacheIsTheClients: DisableSessionResumption makes every new
// connection a full handshake, even with a session cache in the caller's
// Transport; with resumption on, the client uses its own cache, never the
// caller's (which a rotation could not replace).
func TestSessionCacheIsTheClients(t *testing.T) {
	for _, tt := range []struct {
		name    string
		disable bool
		want    knottest.Handshakes
	}{
		{"resumption on", false, knottest.Handshakes{Full: 1, Resumed: 4}},
		{"DisableSessionResumption", true, knottest.Handshakes{Full: 5}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := knottest.NewTestServer(t, knottest.WithMaxRequestsPerConn(1))
			callerCache := &recordingCache{ClientSessionCache: tls.NewLRUClientSessionCache(4)}
			g := &countingGetter{Provider: newProvider(t, srv, provider.Static(issue(t, srv)), true)}
			c := newKnottestClient(t, srv, g, func(cfg *knotclient.Config) {
				cfg.DisableSessionResumption = tt.disable
				cfg.Transport = &http.Transport{
					ForceAttemptHTTP2: true,
					TLSClientConfig:   &tls.Config{ClientSessionCache: callerCache, MinVersion: tls.VersionTLS12},
				}
			})
			for range 5 {
				_, err := c.GetJWEKey(context.Background())
				require.NoError(t, err)
			}
			assert.Equal(t, tt.want, srv.Handshakes())
			assert.EqualValues(t, tt.want.Full, g.calls.Load(), "the certificate is asked for on full handshakes only")
			assert.Zero(t, callerCache.uses.Load(), "the caller's session cache is never used")
			for i, r := range srv.Requests() {
				assert.Equal(t, !tt.disable && i > 0, r.Resumed, "request %d", i)
			}
		})
	}
}

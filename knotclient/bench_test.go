package knotclient_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
)

// The benchmarks compare knotclient with a baseline measured in the same
// run against the same local knottest server: plain net/http with a static
// tls.Config holding the same certificate. Compute the ratio from the two
// sub-benchmarks' ns/op:
//
//	go test -bench . -run '^$' ./knotclient/

// benchEnv is a knottest server, a bundle it issued and a provider over it.
type benchEnv struct {
	srv    *knottest.Server
	bundle *provider.Bundle
	p      *provider.Provider
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	// HTTP/1.1: the baselines' transports do not ask for h2, so knotclient
	// (which does) must not get it either, or the ratio measures the
	// protocol.
	srv := knottest.NewTestServer(b, knottest.WithHTTP2(false))
	bundle := issue(b, srv)
	return &benchEnv{srv: srv, bundle: bundle, p: newProvider(b, srv, provider.Static(bundle), true)}
}

// staticClient is the baseline: net/http, a static tls.Config.
func (e *benchEnv) staticClient(b *testing.B, keepAlive bool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			RootCAs:      e.srv.RootCAs(),
			Certificates: []tls.Certificate{*e.bundle.TLSCertificate()},
			MinVersion:   tls.VersionTLS12,
		},
		MaxIdleConnsPerHost: knotclient.DefaultMaxIdleConnsPerHost,
		DisableKeepAlives:   !keepAlive,
	}
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// providerClient is net/http with the provider-backed tls.Config.
func (e *benchEnv) providerClient(b *testing.B, keepAlive bool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:     provider.MTLSClientConfig(e.p, e.srv.RootCAs()),
		MaxIdleConnsPerHost: knotclient.DefaultMaxIdleConnsPerHost,
		DisableKeepAlives:   !keepAlive,
	}
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// rawGetJWEKey does by hand what knotclient's GetJWEKey does: the same
// headers, reading and decoding the body.
func rawGetJWEKey(ctx context.Context, hc *http.Client, srv *knottest.Server) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL()+"/jwe/key", nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(srv.ClientID(), srv.Secret())
	req.Header.Set("Knot-Version", "2.0")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "bench")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var k knotclient.JWK
	return json.Unmarshal(body, &k)
}

// resetEvery bounds the memory the fake spends recording requests.
const resetEvery = 4096

// BenchmarkKeepAlive measures request throughput over kept-alive mTLS
// connections (GET /jwe/key, parallel): knotclient against net/http with a
// static tls.Config.
func BenchmarkKeepAlive(b *testing.B) {
	env := newBenchEnv(b)
	ctx := context.Background()
	b.Run("baseline", func(b *testing.B) { // net/http + static tls.Config
		hc := env.staticClient(b, true)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				if err := rawGetJWEKey(ctx, hc, env.srv); err != nil {
					b.Error(err)
					return
				}
				if i%resetEvery == resetEvery-1 {
					env.srv.Reset()
				}
			}
		})
	})
	b.Run("knotmtls", func(b *testing.B) { // knotclient over the provider
		c := newKnottestClient(b, env.srv, env.p)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				if _, err := c.GetJWEKey(ctx); err != nil {
					b.Error(err)
					return
				}
				if i%resetEvery == resetEvery-1 {
					env.srv.Reset()
				}
			}
		})
	})
}

// BenchmarkHandshake measures new-connection requests (keep-alive off, so
// every request is a full mTLS handshake with an RSA-2048 client
// signature): a static tls.Config, the provider-backed tls.Config, and
// knotclient with session resumption off. The resumption group compares
// knotclient's default (new connections resume the TLS session: no client
// signature) with the same client doing full handshakes.
func BenchmarkHandshake(b *testing.B) {
	env := newBenchEnv(b)
	ctx := context.Background()
	raw := func(hc *http.Client) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := rawGetJWEKey(ctx, hc, env.srv); err != nil {
					b.Fatal(err)
				}
				if i%resetEvery == resetEvery-1 {
					env.srv.Reset()
				}
			}
		}
	}
	// Variants are named for scripts/benchratio.awk: each knotmtls variant
	// is compared with the baseline of the same group.
	b.Run("tls-config/baseline", raw(env.staticClient(b, false)))
	b.Run("tls-config/knotmtls", raw(env.providerClient(b, false)))
	b.Run("client/baseline", raw(env.staticClient(b, false)))
	client := func(resume bool) func(b *testing.B) {
		return func(b *testing.B) {
			c := newKnottestClient(b, env.srv, env.p, func(cfg *knotclient.Config) {
				cfg.Transport = &http.Transport{DisableKeepAlives: true}
				cfg.DisableSessionResumption = !resume
			})
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := c.GetJWEKey(ctx); err != nil {
					b.Fatal(err)
				}
				if i%resetEvery == resetEvery-1 {
					env.srv.Reset()
				}
			}
		}
	}
	b.Run("client/knotmtls", client(false))
	b.Run("resumption/baseline", client(false)) // full handshakes
	b.Run("resumption/knotmtls", client(true))  // resumed
}

package otelknotmtls_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"testing"
	"time"

	"github.com/knotmtls/knotmtls/internal/pkitest"
	"github.com/knotmtls/knotmtls/otelknotmtls"
	"github.com/knotmtls/knotmtls/provider"
)

// BenchmarkGetClientCertificate compares the handshake hot path of a
// provider with metrics (InstrumentProvider, scraped during the run) to the
// same provider without, in the same run: baseline / knotmtls is the
// throughput ratio scripts/benchratio.awk prints (1.00 = no cost). The
// metrics are read from Status() at collection time, so the hot path does
// the same work in both.
func BenchmarkGetClientCertificate(b *testing.B) {
	ca := pkitest.NewCA("bench CA")
	key := pkitest.CachedRSAKey(2048, 0)
	now := time.Now()
	cert := ca.Issue(pkitest.Leaf{CN: clientID, Key: key, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour)})
	bundle, err := provider.NewBundle([]*x509.Certificate{cert}, key, "v1")
	if err != nil {
		b.Fatal(err)
	}
	newProvider := func() *provider.Provider {
		p, err := provider.New(provider.Static(bundle), provider.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = p.Close() })
		if _, err := p.Bundle(context.Background()); err != nil {
			b.Fatal(err)
		}
		return p
	}
	plain := newProvider()
	instrumented := newProvider()
	m := newBenchMetrics(b)
	stop, err := otelknotmtls.InstrumentProvider(m.mp, instrumented)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = stop() })

	cri := &tls.CertificateRequestInfo{}
	for _, v := range []struct {
		name string
		p    *provider.Provider
	}{{"baseline", plain}, {"knotmtls", instrumented}} {
		b.Run(v.name, func(b *testing.B) {
			done := make(chan struct{})
			scraped := make(chan struct{})
			go func() { // a scrape every millisecond while the handshakes run
				defer close(scraped)
				t := time.NewTicker(time.Millisecond)
				defer t.Stop()
				for {
					select {
					case <-done:
						return
					case <-t.C:
						_, _ = m.reg.Gather()
					}
				}
			}()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if c, err := v.p.GetClientCertificate(cri); c == nil || err != nil {
						b.Error("no certificate")
						return
					}
				}
			})
			b.StopTimer()
			close(done)
			<-scraped
		})
	}
}

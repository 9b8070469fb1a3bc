package provider_test

import (
	"crypto/tls"
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkGetClientCertificate measures the handshake hot path against a
// baseline getter that returns a fixed *tls.Certificate (what a static
// tls.Config does), at 1, 100 and 10,000 goroutines. Variants are named
// baseline and knotmtls so `make bench` can print their ratio.
func BenchmarkGetClientCertificate(b *testing.B) {
	is := newIssuer()
	bundle := is.valid(b)
	p, err := providerFor(bundle)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if _, err := p.GetClientCertificate(&tls.CertificateRequestInfo{}); err != nil {
		b.Fatal(err)
	}
	static := bundle.TLSCertificate()
	getters := []struct {
		name string
		get  func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
	}{
		{"baseline", func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return static, nil }},
		{"knotmtls", p.GetClientCertificate},
	}
	cri := &tls.CertificateRequestInfo{}
	for _, goroutines := range []int{1, 100, 10000} {
		for _, g := range getters {
			b.Run(fmt.Sprintf("%s/goroutines=%d", g.name, goroutines), func(b *testing.B) {
				b.ReportAllocs()
				if goroutines == 1 {
					for b.Loop() {
						if c, err := g.get(cri); c == nil || err != nil {
							b.Fatal("no certificate")
						}
					}
					return
				}
				b.SetParallelism(max(1, goroutines/runtime.GOMAXPROCS(0)))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if c, err := g.get(cri); c == nil || err != nil {
							b.Error("no certificate")
							return
						}
					}
				})
			})
		}
	}
}

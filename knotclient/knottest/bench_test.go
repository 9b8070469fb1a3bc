package knottest_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/knotmtls/knotmtls/knotclient/knottest"
)

// BenchmarkNewServer measures start-up: an RSA-2048 client CA, an ECDSA
// server CA and certificate, a listener.
func BenchmarkNewServer(b *testing.B) {
	for b.Loop() {
		s, err := knottest.NewServer()
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkIssueClient measures a fresh RSA-2048 key, CSR and signature.
func BenchmarkIssueClient(b *testing.B) {
	s, err := knottest.NewServer()
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		if _, err := s.IssueClient(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRequest measures one keep-alive GET /jwe/key through the fake
// (mutual TLS, recording, auth, routing) and, interleaved in the same loop,
// one keep-alive GET to a bare httptest TLS server as the baseline. It
// reports both and their ratio.
func BenchmarkRequest(b *testing.B) {
	s, err := knottest.NewServer()
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	bundle, err := s.IssueClient()
	if err != nil {
		b.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{*bundle.TLSCertificate()},
		RootCAs:      s.RootCAs(),
		MinVersion:   tls.VersionTLS12,
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	base := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"message":"Success"}`))
	}))
	defer base.Close()
	baseClient := base.Client()
	defer baseClient.CloseIdleConnections()

	get := func(c *http.Client, url string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.SetBasicAuth(s.ClientID(), s.Secret())
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	fakeURL := s.URL() + "/jwe/key"
	get(client, fakeURL) // generates the JWE key and warms the connection
	get(baseClient, base.URL)

	var fake, baseline time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		get(baseClient, base.URL)
		t1 := time.Now()
		get(client, fakeURL)
		baseline += t1.Sub(t0)
		fake += time.Since(t1)
		if n++; n%1000 == 0 {
			s.Reset() // keep the recording bounded
		}
	}
	if n > 0 && baseline > 0 {
		b.ReportMetric(float64(fake.Nanoseconds())/float64(n), "ns/fake-req")
		b.ReportMetric(float64(baseline.Nanoseconds())/float64(n), "ns/httptest-req")
		b.ReportMetric(float64(fake)/float64(baseline), "fake/httptest")
	}
}

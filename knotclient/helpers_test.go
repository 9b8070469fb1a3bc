package knotclient_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient"
)

const (
	testClientID = "test-client-id"
	testSecret   = "s3cr3t-never-in-errors"
)

// noCertGetter satisfies provider.ClientCertificateGetter for servers that
// never ask for a client certificate.
type noCertGetter struct{}

func (noCertGetter) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return nil, errors.New("test: no client certificate")
}

// recorded is one request the fake saw.
type recorded struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
	Time                   time.Time // arrival
}

// fakeKnot is an httptest TLS server that records requests and answers with
// handler.
type fakeKnot struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []recorded
}

func newFake(t *testing.T, handler http.HandlerFunc) *fakeKnot {
	t.Helper()
	f := &fakeKnot{}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.got = append(f.got, recorded{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body, Time: time.Now()})
		f.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		handler(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeKnot) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.got...)
}

func (f *fakeKnot) hits() int { return len(f.requests()) }

func (f *fakeKnot) roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(f.srv.Certificate())
	return pool
}

// config returns a client config for the fake, with fast retries.
func (f *fakeKnot) config() knotclient.Config {
	return knotclient.Config{
		ClientID:       testClientID,
		Secret:         knotclient.StaticSecret(testSecret),
		Certificates:   noCertGetter{},
		BaseURL:        f.srv.URL,
		RootCAs:        f.roots(),
		RetryBaseDelay: time.Millisecond,
		RetryMaxDelay:  5 * time.Millisecond,
		Logger:         discardLogger(),
	}
}

func (f *fakeKnot) client(t *testing.T, mutate ...func(*knotclient.Config)) *knotclient.Client {
	t.Helper()
	cfg := f.config()
	for _, m := range mutate {
		m(&cfg)
	}
	c, err := knotclient.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// respond writes a status and body.
func respond(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// sequence answers the n-th request with handlers[n], repeating the last.
func sequence(handlers ...http.HandlerFunc) http.HandlerFunc {
	var mu sync.Mutex
	n := 0
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h := handlers[min(n, len(handlers)-1)]
		n++
		mu.Unlock()
		h(w, r)
	}
}

// drop closes the connection without answering.
func drop(w http.ResponseWriter, _ *http.Request) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("test: response writer cannot hijack")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

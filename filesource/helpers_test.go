package filesource_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/filesource"
	"github.com/knotmtls/knotmtls/provider"
)

// clientID is the Knot client_id every good test certificate carries.
const clientID = "client-123"

// Key generation dominates test time, so keys are generated once per run
// and shared by index. Distinct indexes are distinct keys.
var (
	keysMu  sync.Mutex
	rsaKeys = map[int]*rsa.PrivateKey{}
)

// rsaKey returns the i-th shared RSA-2048 key.
func rsaKey(t testing.TB, i int) *rsa.PrivateKey {
	t.Helper()
	keysMu.Lock()
	defer keysMu.Unlock()
	if k, ok := rsaKeys[i]; ok {
		return k
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	rsaKeys[i] = k
	return k
}

// Indexes of the shared keys.
const (
	keyCA = iota
	keyInter
	keyA
	keyB
	keyC
)

// authority is a CA that issues test certificates.
type authority struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newRoot(t testing.TB) *authority {
	t.Helper()
	key := rsaKey(t, keyCA)
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(t),
		Subject:               pkix.Name{CommonName: "Test Knot Root CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &authority{cert: cert, key: key}
}

// intermediate issues a sub-CA under a.
func (a *authority) intermediate(t testing.TB) *authority {
	t.Helper()
	key := rsaKey(t, keyInter)
	cert := a.issue(t, key.Public(), func(c *x509.Certificate) {
		c.Subject = pkix.Name{CommonName: "Test Knot Intermediate CA"}
		c.KeyUsage = x509.KeyUsageCertSign
		c.ExtKeyUsage = nil
		c.BasicConstraintsValid, c.IsCA = true, true
	})
	return &authority{cert: cert, key: key}
}

// issue signs a client certificate for pub: CN clientID, SHA-256 with RSA,
// clientAuth, valid for a day, unless mods change it.
func (a *authority) issue(t testing.TB, pub crypto.PublicKey, mods ...func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:       randSerial(t),
		Subject:            pkix.Name{CommonName: clientID},
		NotBefore:          time.Now().Add(-time.Hour),
		NotAfter:           time.Now().Add(24 * time.Hour),
		KeyUsage:           x509.KeyUsageDigitalSignature,
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		SignatureAlgorithm: x509.SHA256WithRSA,
	}
	for _, m := range mods {
		m(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, pub, a.key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert
}

func randSerial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	require.NoError(t, err)
	return n.Add(n, big.NewInt(1))
}

// pair is a leaf certificate and its key, PEM-encoded.
type pair struct {
	cert    *x509.Certificate
	certPEM []byte
	keyPEM  []byte
}

func (p pair) serial() string { return provider.SerialHex(p.cert) }

// newPair issues a good client certificate for the shared RSA key idx, its
// key encoded as PKCS#1.
func (a *authority) newPair(t testing.TB, idx int, mods ...func(*x509.Certificate)) pair {
	t.Helper()
	key := rsaKey(t, idx)
	cert := a.issue(t, key.Public(), mods...)
	return pair{cert: cert, certPEM: provider.EncodeCertificates([]*x509.Certificate{cert}), keyPEM: pkcs1PEM(key)}
}

func pkcs1PEM(k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

func pkcs8PEM(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func sec1PEM(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

// files are the paths of one test source's files.
type files struct {
	dir, cert, key, chain string
}

// newFiles returns the paths of cert.pem and key.pem in a fresh directory,
// and writes p there.
func newFiles(t testing.TB, p pair) files {
	t.Helper()
	dir := t.TempDir()
	f := files{dir: dir, cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem"), chain: filepath.Join(dir, "chain.pem")}
	writeFile(t, f.cert, p.certPEM)
	writeFile(t, f.key, p.keyPEM)
	return f
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, data, 0o600))
}

// replaceFile writes data next to path and renames it over path, the way
// editors and Vault Agent do.
func replaceFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	require.NoError(t, err)
	_, err = tmp.Write(data)
	require.NoError(t, err)
	require.NoError(t, tmp.Close())
	require.NoError(t, os.Rename(tmp.Name(), path))
}

func newSource(t testing.TB, f files, opts ...filesource.Option) *filesource.Source {
	t.Helper()
	src, err := filesource.New(f.cert, f.key, opts...)
	require.NoError(t, err)
	return src
}

// quiet is a logger for providers whose logs the test does not read.
func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newProvider starts a Provider on src that requires clientID, polls only
// every hour (so a change must come from the watcher unless opts say
// otherwise), loads the first bundle and is closed at the end of the test.
func newProvider(t testing.TB, src provider.CertificateSource, opts ...provider.Option) *provider.Provider {
	t.Helper()
	all := append([]provider.Option{
		provider.WithRequirements(provider.Requirements{ClientID: clientID}),
		provider.WithPollInterval(time.Hour),
		provider.WithBackoff(time.Hour, time.Hour),
		provider.WithLogger(quiet()),
	}, opts...)
	p, err := provider.New(src, all...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	_, err = p.Bundle(context.Background())
	require.NoError(t, err)
	return p
}

// servedSerial is the serial of the leaf p serves.
func servedSerial(t testing.TB, p *provider.Provider) string {
	t.Helper()
	b, err := p.Bundle(context.Background())
	require.NoError(t, err)
	return provider.SerialHex(b.Leaf())
}

// syncBuffer is an io.Writer safe for a logger and a reading test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

var _ io.Writer = (*syncBuffer)(nil)

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Bounds for require.Eventually: generous, since the machine may be busy;
// a passing test returns as soon as the condition holds.
const (
	waitFor = 5 * time.Second
	tick    = 10 * time.Millisecond
)

// watched wraps a Source to tell a test when its Watch has its watches in
// place: Watch calls changed once right after setting them up, and watched
// closes ready at that first call. Tests that must prove a change came
// from a file event (not from that initial check) wait for ready first.
type watched struct {
	*filesource.Source
	ready chan struct{}
	once  sync.Once
}

var _ provider.Watcher = (*watched)(nil)

func newWatched(src *filesource.Source) *watched {
	return &watched{Source: src, ready: make(chan struct{})}
}

func (w *watched) Watch(ctx context.Context, changed func()) error {
	return w.Source.Watch(ctx, func() {
		w.once.Do(func() { close(w.ready) })
		changed()
	})
}

func (w *watched) waitReady(t testing.TB) {
	t.Helper()
	select {
	case <-w.ready:
	case <-time.After(waitFor):
		t.Fatal("the source's Watch never set up its watches")
	}
}

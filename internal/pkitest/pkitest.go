// Package pkitest generates throw-away certificate authorities, keys and
// client certificates for knotmtls tests. Everything is created in memory at
// run time; nothing here is meant for production.
package pkitest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync"
	"time"
)

// CA is a self-signed RSA-2048 certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  *rsa.PrivateKey
}

var (
	keyMu   sync.Mutex
	keyPool = map[int][]*rsa.PrivateKey{}
)

// RSAKey returns a fresh RSA key of the given size. Keys are expensive to
// generate under the race detector, so tests that do not care about key
// identity can use [CachedRSAKey] instead.
func RSAKey(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(fmt.Sprintf("pkitest: generate RSA-%d: %v", bits, err))
	}
	return k
}

// CachedRSAKey returns the i-th cached key of the given size, generating it on
// first use. Different i give different keys.
func CachedRSAKey(bits, i int) *rsa.PrivateKey {
	keyMu.Lock()
	defer keyMu.Unlock()
	for len(keyPool[bits]) <= i {
		keyPool[bits] = append(keyPool[bits], RSAKey(bits))
	}
	return keyPool[bits][i]
}

// ECKey returns a fresh ECDSA P-256 key.
func ECKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}

var (
	caKeyOnce sync.Once
	caKey     *rsa.PrivateKey
)

// NewCA returns a CA named cn, valid from an hour ago for ten years. All CAs
// share one cached key (distinct from the client keys); their certificates
// and serials differ.
func NewCA(cn string) *CA {
	caKeyOnce.Do(func() { caKey = RSAKey(2048) })
	key := caKey
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"knotmtls test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{Cert: cert, Key: key}
}

// Leaf describes a client certificate to issue. Zero fields get defaults:
// valid from an hour ago for 30 days, SHA256WithRSA, clientAuth.
type Leaf struct {
	CN        string
	Key       crypto.Signer // required
	NotBefore time.Time
	NotAfter  time.Time
	SigAlg    x509.SignatureAlgorithm
}

// Issue signs a client certificate for l.
func (ca *CA) Issue(l Leaf) *x509.Certificate {
	if l.NotBefore.IsZero() {
		l.NotBefore = time.Now().Add(-time.Hour)
	}
	if l.NotAfter.IsZero() {
		l.NotAfter = time.Now().Add(30 * 24 * time.Hour)
	}
	if l.SigAlg == 0 {
		l.SigAlg = x509.SHA256WithRSA
	}
	tmpl := &x509.Certificate{
		SerialNumber:       serial(),
		Subject:            pkix.Name{CommonName: l.CN},
		NotBefore:          l.NotBefore,
		NotAfter:           l.NotAfter,
		KeyUsage:           x509.KeyUsageDigitalSignature,
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		SignatureAlgorithm: l.SigAlg,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, l.Key.Public(), ca.Key)
	if err != nil {
		panic(fmt.Sprintf("pkitest: issue %q: %v", l.CN, err))
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return cert
}

// CertPEM encodes certificates as PEM.
func CertPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// KeyPEM encodes a key as PKCS#8 PEM.
func KeyPEM(k crypto.Signer) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// Pool returns a pool holding the CA certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// CSR returns a PEM certificate request for cn signed by key with alg. It
// fails the test on error.
func CSR(t interface{ Fatalf(string, ...any) }, cn string, key any, alg x509.SignatureAlgorithm) []byte {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn}, SignatureAlgorithm: alg}, key)
	if err != nil {
		t.Fatalf("pkitest: create CSR: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

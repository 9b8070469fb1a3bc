package knottest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/knotmtls/knotmtls/provider"
)

// ErrValidity is returned by [Server.SignCSRValidity] when notAfter is not
// after notBefore.
var ErrValidity = errors.New("knottest: notAfter must be after notBefore")

// serialLimit is 2^128: serials are random 128-bit numbers.
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

func randomSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("knottest: serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// authority is a CA key and certificate.
type authority struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// newClientCA makes the RSA-2048 CA that plays Knot's issuing CA. It signs
// with SHA256WithRSA, which is what Knot's rules require of client
// certificates.
func newClientCA(now time.Time) (*authority, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("knottest: client CA key: %w", err)
	}
	return selfSign(key, x509.SHA256WithRSA, "knottest Knot client CA", now)
}

// newServerCA makes the CA for the server's own certificate. Its algorithm
// does not matter to Knot's rules, so it is ECDSA P-256, which is fast.
func newServerCA(now time.Time) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("knottest: server CA key: %w", err)
	}
	return selfSign(key, x509.ECDSAWithSHA256, "knottest server CA", now)
}

func selfSign(key crypto.Signer, alg x509.SignatureAlgorithm, cn string, now time.Time) (*authority, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"knottest"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SignatureAlgorithm:    alg,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("knottest: create %s: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("knottest: parse %s: %w", cn, err)
	}
	return &authority{cert: cert, key: key}, nil
}

// serverCertificate issues the TLS server certificate for 127.0.0.1, ::1
// and localhost.
func (ca *authority) serverCertificate(now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("knottest: server key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"knottest"}},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("knottest: create server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("knottest: parse server certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// signClient signs a client certificate for csr's subject and key. It does
// not check Knot's rules; callers do.
func (ca *authority) signClient(csr *x509.CertificateRequest, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: csr.Subject.CommonName},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		SignatureAlgorithm:    x509.SHA256WithRSA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("knottest: sign client certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("knottest: parse client certificate: %w", err)
	}
	return cert, nil
}

// CA returns the certificate authority that signs client certificates: the
// stand-in for Knot's issuing CA. Give it to [provider.Requirements].Roots
// to check a chain the way the server will.
func (s *Server) CA() *x509.Certificate { return s.clientCA.cert }

// RootCAs returns a pool holding the CA of the server's TLS certificate; use
// it as the client's tls.Config.RootCAs.
func (s *Server) RootCAs() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(s.serverCA.cert)
	return pool
}

// ServerCA returns the CA certificate behind the server's TLS certificate,
// the one [Server.RootCAs] holds; write it as PEM for tools that take a
// CA file (knotmtls check --ca-file).
func (s *Server) ServerCA() *x509.Certificate { return s.serverCA.cert }

// SignCSR signs a PEM certificate request the way Knot does. The request
// must pass [provider.Requirements.CheckCSR] for the server's client_id
// (RSA-2048, SHA-256 with RSA, CN = client_id, valid self-signature);
// otherwise the error wraps the matching provider sentinel, such as
// [provider.ErrKeySize], [provider.ErrKeyType],
// [provider.ErrSignatureAlgorithm] or [provider.ErrSubjectCN]. The result is
// the PEM client certificate: SHA256WithRSA, ExtKeyUsageClientAuth, a fresh
// random 128-bit serial, valid from one minute ago for the configured
// validity ([WithCertValidity]).
func (s *Server) SignCSR(csrPEM []byte) ([]byte, error) {
	now := time.Now()
	return s.SignCSRValidity(csrPEM, now.Add(-time.Minute), now.Add(s.cfg.certValidity))
}

// SignCSRValidity is [Server.SignCSR] with an explicit validity window, for
// tests that need expired or not-yet-valid certificates. notAfter must be
// after notBefore ([ErrValidity]).
func (s *Server) SignCSRValidity(csrPEM []byte, notBefore, notAfter time.Time) ([]byte, error) {
	csr, err := provider.ParseCSR(csrPEM)
	if err != nil {
		return nil, fmt.Errorf("knottest: sign csr: %w", err)
	}
	if err := (provider.Requirements{ClientID: s.cfg.clientID}).CheckCSR(csr); err != nil {
		return nil, fmt.Errorf("knottest: sign csr: %w", err)
	}
	cert, err := s.signValidity(csr, notBefore, notAfter)
	if err != nil {
		return nil, err
	}
	return provider.EncodeCertificates([]*x509.Certificate{cert}), nil
}

func (s *Server) signValidity(csr *x509.CertificateRequest, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	if !notAfter.After(notBefore) {
		return nil, fmt.Errorf("%w (got %s to %s)", ErrValidity,
			notBefore.UTC().Format(time.RFC3339), notAfter.UTC().Format(time.RFC3339))
	}
	return s.clientCA.signClient(csr, notBefore, notAfter)
}

// IssueClient generates a fresh RSA-2048 key in memory and a CSR for the
// server's client_id, signs it with [Server.SignCSR] and returns the
// result as a bundle (chain = the leaf alone, Version = the serial in
// [provider.SerialHex] form). Each call gives a new key and serial, which
// is what rotation tests need.
func (s *Server) IssueClient() (*provider.Bundle, error) {
	key, csrPEM, err := newCSR(s.cfg.clientID)
	if err != nil {
		return nil, err
	}
	certPEM, err := s.SignCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	certs, err := provider.ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("knottest: issue client: %w", err)
	}
	return bundle(certs[0], key)
}

// IssueClientCN is [Server.IssueClient] with an arbitrary subject CN and
// without Knot's CSR checks, for tests of what happens when a certificate
// from the right CA carries the wrong CN.
func (s *Server) IssueClientCN(cn string) (*provider.Bundle, error) {
	key, csrPEM, err := newCSR(cn)
	if err != nil {
		return nil, err
	}
	csr, err := provider.ParseCSR(csrPEM)
	if err != nil {
		return nil, fmt.Errorf("knottest: issue client: %w", err)
	}
	now := time.Now()
	cert, err := s.signValidity(csr, now.Add(-time.Minute), now.Add(s.cfg.certValidity))
	if err != nil {
		return nil, err
	}
	return bundle(cert, key)
}

func bundle(leaf *x509.Certificate, key crypto.Signer) (*provider.Bundle, error) {
	b, err := provider.NewBundle([]*x509.Certificate{leaf}, key, provider.SerialHex(leaf))
	if err != nil {
		return nil, fmt.Errorf("knottest: issue client: %w", err)
	}
	return b, nil
}

// newCSR generates an RSA-2048 key and a SHA256WithRSA CSR for cn.
func newCSR(cn string) (*rsa.PrivateKey, []byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("knottest: client key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:            pkix.Name{CommonName: cn},
		SignatureAlgorithm: x509.SHA256WithRSA,
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("knottest: create csr: %w", err)
	}
	return key, pemEncode("CERTIFICATE REQUEST", der), nil
}

func pemEncode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

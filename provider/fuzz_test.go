package provider_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/knotmtls/knotmtls/provider"
)

// The fuzz targets below run as ordinary tests over their seed corpora
// (testdata/fuzz/FuzzX: public certificates and CSRs, truncated or junk
// keys; no usable private key is committed) plus seeds generated at run
// time. `make fuzz` runs each one with -fuzz for FUZZTIME.

// sentinels are the errors every parse or check failure must wrap.
var sentinels = []error{
	provider.ErrEmpty, provider.ErrNotPEM, provider.ErrTruncatedPEM, provider.ErrEncryptedKey,
	provider.ErrUnsupportedKey, provider.ErrNoKey, provider.ErrNoCertificate, provider.ErrMalformedCert,
	provider.ErrMalformedCSR, provider.ErrUnexpectedPEMType, provider.ErrKeyType, provider.ErrKeySize,
	provider.ErrSignatureAlgorithm, provider.ErrSubjectCN, provider.ErrKeyMismatch, provider.ErrExpired,
	provider.ErrNotYetValid, provider.ErrChainOrder, provider.ErrUntrustedChain, provider.ErrCSRSignature,
	provider.ErrKeyUsage,
}

// requireTypedError fails unless err is a *provider.CheckError (possibly
// wrapped) around exactly one of the sentinels, with a one-line message
// that starts with the package prefix somewhere.
func requireTypedError(t *testing.T, err error) {
	t.Helper()
	var ce *provider.CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("error %q (%T) is not a *provider.CheckError", err, err)
	}
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("error %q wraps %d sentinels, want exactly 1", err, n)
	}
	if !strings.Contains(err.Error(), "provider: ") {
		t.Fatalf("error %q lacks the provider: prefix", err)
	}
}

// requireNoBlockBytes fails if msg shows the contents of any PEM block in
// data, base64 or hex: an error about a key must never carry the key.
func requireNoBlockBytes(t *testing.T, msg string, data []byte) {
	t.Helper()
	for rest := data; ; {
		b, next := pem.Decode(rest)
		if b == nil {
			return
		}
		rest = next
		if len(b.Bytes) < 12 {
			continue
		}
		for _, enc := range []string{base64.StdEncoding.EncodeToString(b.Bytes)[:16], fmt.Sprintf("%x", b.Bytes[:12])} {
			if strings.Contains(msg, enc) {
				t.Fatalf("message %q shows block bytes %q", msg, enc)
			}
		}
	}
}

// runtimeSeeds is valid material generated at run time (never committed):
// a self-signed leaf with its key, and a CSR. The key is ECDSA because
// generating RSA keys in a coverage-instrumented fuzz binary takes seconds
// of each worker's budget; the committed seeds carry the RSA material
// (public certificates and CSRs).
type runtimeSeeds struct {
	cert, key, csr []byte
	// Malformed and unusual key inputs, built at run time from the
	// generated key so that no PEM private key is committed in the seed
	// corpora: cut short (40 bytes of DER), encrypted, OpenSSH, several
	// keys, EC parameters before the key.
	junkKeys [][]byte
	sec1Key  []byte // the generated key as "EC PRIVATE KEY"
}

func newRuntimeSeeds(t testing.TB) runtimeSeeds {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fuzz-client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "fuzz-client"}}, key)
	if err != nil {
		t.Fatalf("create CSR: %v", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	sec1, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	block := func(typ string, b []byte, headers map[string]string) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: typ, Headers: headers, Bytes: b})
	}
	keyPEM := block("PRIVATE KEY", pkcs8, nil)
	sec1PEM := block("EC PRIVATE KEY", sec1, nil)
	cut := pkcs8[:40]
	junk := [][]byte{
		block("PRIVATE KEY", cut, nil),
		block("RSA PRIVATE KEY", cut, nil),
		block("EC PRIVATE KEY", sec1[:40], nil),
		block("ENCRYPTED PRIVATE KEY", cut, nil),
		block("RSA PRIVATE KEY", cut, map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"}),
		block("OPENSSH PRIVATE KEY", append([]byte("openssh-key-v1\x00"), cut...), nil),
		append(append([]byte{}, keyPEM...), block("RSA PRIVATE KEY", cut, nil)...),
		append(block("EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}, nil), sec1PEM...),
	}
	return runtimeSeeds{
		cert:     block("CERTIFICATE", der, nil),
		key:      keyPEM,
		csr:      block("CERTIFICATE REQUEST", csr, nil),
		junkKeys: junk,
		sec1Key:  sec1PEM,
	}
}

func FuzzParseCertificates(f *testing.F) {
	s := newRuntimeSeeds(f)
	f.Add(s.cert)
	f.Add(append(append([]byte{}, s.cert...), s.cert...))
	f.Add(s.key) // a key pasted where the certificate goes
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := provider.ParseCertificates(data)
		if err != nil {
			requireTypedError(t, err)
			if certs != nil {
				t.Fatalf("certificates returned with error %v", err)
			}
			return
		}
		if len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
		// Round trip: encoding what was parsed gives the same certificates.
		again, err := provider.ParseCertificates(provider.EncodeCertificates(certs))
		if err != nil {
			t.Fatalf("re-parse of encoded certificates: %v", err)
		}
		if len(again) != len(certs) {
			t.Fatalf("re-parse gave %d certificates, want %d", len(again), len(certs))
		}
		for i := range certs {
			if !bytes.Equal(again[i].Raw, certs[i].Raw) {
				t.Fatalf("certificate %d changed in the round trip", i)
			}
		}
	})
}

func FuzzParsePrivateKey(f *testing.F) {
	s := newRuntimeSeeds(f)
	f.Add(s.key)
	f.Add(s.sec1Key)
	for _, k := range s.junkKeys {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := provider.ParsePrivateKey(data)
		if err != nil {
			requireTypedError(t, err)
			requireNoBlockBytes(t, err.Error(), data)
			return
		}
		if key == nil || key.Public() == nil {
			t.Fatal("no error and no usable key")
		}
	})
}

func FuzzParseBundle(f *testing.F) {
	s := newRuntimeSeeds(f)
	f.Add(s.cert, s.cert, s.key, "v1")
	f.Add(s.cert, []byte(nil), s.key, "")
	f.Add(s.cert, []byte(nil), s.sec1Key, "ec")                                   // SEC 1 key
	f.Add(append(append([]byte{}, s.cert...), s.cert...), []byte(nil), s.key, "") // chain in the certificate field
	f.Add(s.cert, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), s.key, "bad chain")
	for _, k := range s.junkKeys {
		f.Add(s.cert, s.cert, k, "junk key")
	}
	f.Fuzz(func(t *testing.T, certPEM, chainPEM, keyPEM []byte, version string) {
		b, err := provider.ParseBundle(certPEM, chainPEM, keyPEM, version)
		if err != nil {
			requireTypedError(t, err)
			requireNoBlockBytes(t, err.Error(), keyPEM)
			return
		}
		if len(b.Chain) == 0 || b.Key == nil || b.Version != version || !b.NotAfter.Equal(b.Leaf().NotAfter) {
			t.Fatalf("inconsistent bundle %v", b)
		}
		if err := provider.CheckKeyPair(b.Leaf(), b.Key); err != nil {
			t.Fatalf("ParseBundle accepted a key that does not match: %v", err)
		}
		// No formatting of the bundle shows the private key.
		out := fmt.Sprintf("%v|%+v|%#v|%s|%v|%+v", b, b, b, b, *b, *b)
		requireNoBlockBytes(t, out, keyPEM)
		var secret *big.Int
		switch k := b.Key.(type) {
		case *rsa.PrivateKey:
			secret = k.D
		case *ecdsa.PrivateKey:
			if raw, err := k.Bytes(); err == nil {
				secret = new(big.Int).SetBytes(raw)
			}
		}
		if secret != nil && (strings.Contains(out, secret.String()) || strings.Contains(out, secret.Text(16))) {
			t.Fatalf("formatting the bundle shows the private scalar: %s", out)
		}
	})
}

func FuzzCheckCSR(f *testing.F) {
	s := newRuntimeSeeds(f)
	f.Add(s.csr, "fuzz-client")
	f.Add(s.csr, "other-client")
	f.Fuzz(func(t *testing.T, data []byte, clientID string) {
		csr, err := provider.ParseCSR(data)
		if err != nil {
			requireTypedError(t, err)
			return
		}
		err = provider.Requirements{ClientID: clientID}.CheckCSR(csr)
		if err != nil {
			requireTypedError(t, err)
			return
		}
		// Accepted: check Knot's rules independently of the code under test.
		pub, ok := csr.PublicKey.(*rsa.PublicKey)
		switch {
		case !ok || pub.N.BitLen() != 2048:
			t.Fatalf("accepted a CSR whose key is not RSA-2048: %T", csr.PublicKey)
		case csr.SignatureAlgorithm != x509.SHA256WithRSA:
			t.Fatalf("accepted a CSR signed with %v", csr.SignatureAlgorithm)
		case clientID != "" && csr.Subject.CommonName != clientID:
			t.Fatalf("accepted CN %q for client_id %q", csr.Subject.CommonName, clientID)
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("accepted a CSR with a bad self-signature: %v", err)
		}
	})
}

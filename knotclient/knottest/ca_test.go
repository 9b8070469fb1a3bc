package knottest_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1" // registers SHA-1 for the hand-built SHA-1 CSR
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
)

func rsaKey(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	require.NoError(t, err)
	return k
}

func csrPEM(t *testing.T, key crypto.Signer, cn string, alg x509.SignatureAlgorithm) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn}, SignatureAlgorithm: alg,
	}, key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// newCSR returns an RSA-2048 key and a good SHA-256 CSR for cn.
func newCSR(t *testing.T, cn string) (*rsa.PrivateKey, []byte) {
	t.Helper()
	key := rsaKey(t, 2048)
	return key, csrPEM(t, key, cn, x509.SHA256WithRSA)
}

func pemKey(t *testing.T, key *rsa.PrivateKey) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

// resignedCSR rebuilds a CSR for cn with an RSA PKCS#1 v1.5 signature over
// hash, labelled with oid. Go refuses to create SHA-1 CSRs, so the request
// is assembled by hand. corrupt flips a signature bit.
func resignedCSR(t *testing.T, key *rsa.PrivateKey, cn string, hash crypto.Hash, oid asn1.ObjectIdentifier, corrupt bool) []byte {
	t.Helper()
	block, _ := pem.Decode(csrPEM(t, key, cn, x509.SHA256WithRSA))
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	require.NoError(t, err)
	h := hash.New()
	h.Write(csr.RawTBSCertificateRequest)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, hash, h.Sum(nil))
	require.NoError(t, err)
	if corrupt {
		sig[len(sig)/2] ^= 0x01
	}
	type algorithmIdentifier struct {
		Algorithm  asn1.ObjectIdentifier
		Parameters asn1.RawValue
	}
	der, err := asn1.Marshal(struct {
		TBS       asn1.RawValue
		Algorithm algorithmIdentifier
		Signature asn1.BitString
	}{
		TBS:       asn1.RawValue{FullBytes: csr.RawTBSCertificateRequest},
		Algorithm: algorithmIdentifier{Algorithm: oid, Parameters: asn1.NullRawValue},
		Signature: asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
	})
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

var (
	oidSHA1WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidSHA256WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
)

func TestSignCSRRejectsWhatKnotRejects(t *testing.T) {
	s := knottest.NewTestServer(t)
	cn := s.ClientID()
	rsa2048 := rsaKey(t, 2048)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)

	tests := []struct {
		name string
		csr  []byte
		want error
	}{
		{"RSA-1024", csrPEM(t, rsaKey(t, 1024), cn, x509.SHA256WithRSA), provider.ErrKeySize},
		{"RSA-3072", csrPEM(t, rsaKey(t, 3072), cn, x509.SHA256WithRSA), provider.ErrKeySize},
		{"ECDSA P-256", csrPEM(t, ecKey, cn, x509.ECDSAWithSHA256), provider.ErrKeyType},
		{"Ed25519", csrPEM(t, edKey, cn, x509.PureEd25519), provider.ErrKeyType},
		{"SHA-1 with RSA", resignedCSR(t, rsa2048, cn, crypto.SHA1, oidSHA1WithRSA, false), provider.ErrSignatureAlgorithm},
		{"SHA-384 with RSA", csrPEM(t, rsa2048, cn, x509.SHA384WithRSA), provider.ErrSignatureAlgorithm},
		{"SHA-256 with RSA-PSS", csrPEM(t, rsa2048, cn, x509.SHA256WithRSAPSS), provider.ErrSignatureAlgorithm},
		{"bad self-signature", resignedCSR(t, rsa2048, cn, crypto.SHA256, oidSHA256WithRSA, true), provider.ErrCSRSignature},
		{"wrong CN", csrPEM(t, rsa2048, "someone-else", x509.SHA256WithRSA), provider.ErrSubjectCN},
		{"empty CN", csrPEM(t, rsa2048, "", x509.SHA256WithRSA), provider.ErrSubjectCN},
		{"not PEM", []byte("hello"), provider.ErrNotPEM},
		{"empty", nil, provider.ErrEmpty},
		{"certificate instead of CSR", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.CA().Raw}), provider.ErrUnexpectedPEMType},
	}
	seen := map[error]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, err := s.SignCSR(tt.csr)
			require.Error(t, err)
			assert.Nil(t, certPEM)
			assert.ErrorIs(t, err, tt.want)
			var ce *provider.CheckError
			assert.True(t, errors.As(err, &ce), "a *provider.CheckError is wrapped: %v", err)
			assert.Contains(t, err.Error(), "knottest: sign csr: ")
			seen[tt.want] = true
		})
	}
	assert.Len(t, seen, 8, "the cases cover distinct sentinels")
}

func TestSignCSRIssuesKnotStyleCertificate(t *testing.T) {
	s := knottest.NewTestServer(t)
	key, csr := newCSR(t, s.ClientID())

	before := time.Now()
	certPEM, err := s.SignCSR(csr)
	require.NoError(t, err)
	certs, err := provider.ParseCertificates(certPEM)
	require.NoError(t, err)
	require.Len(t, certs, 1)
	leaf := certs[0]

	assert.Equal(t, s.ClientID(), leaf.Subject.CommonName)
	assert.Equal(t, x509.SHA256WithRSA, leaf.SignatureAlgorithm)
	assert.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage)
	assert.False(t, leaf.IsCA)
	assert.True(t, leaf.PublicKey.(*rsa.PublicKey).Equal(&key.PublicKey))
	assert.Positive(t, leaf.SerialNumber.Sign())
	assert.LessOrEqual(t, leaf.SerialNumber.BitLen(), 128)
	require.NoError(t, leaf.CheckSignatureFrom(s.CA()))
	assert.False(t, leaf.NotBefore.After(before), "valid immediately")
	assert.True(t, leaf.NotAfter.After(before.Add(knottest.DefaultCertValidity-time.Hour)))

	roots := x509.NewCertPool()
	roots.AddCert(s.CA())
	b, err := provider.ParseBundle(certPEM, nil, pemKey(t, key), "v1")
	require.NoError(t, err)
	require.NoError(t, provider.Requirements{ClientID: s.ClientID(), Roots: roots}.CheckBundle(b))

	// The same CSR signed twice gets two serials.
	certPEM2, err := s.SignCSR(csr)
	require.NoError(t, err)
	certs2, err := provider.ParseCertificates(certPEM2)
	require.NoError(t, err)
	assert.NotEqual(t, leaf.SerialNumber, certs2[0].SerialNumber)
}

func TestSignCSRValidity(t *testing.T) {
	s := knottest.NewTestServer(t)
	_, csr := newCSR(t, s.ClientID())
	now := time.Now()
	req := provider.Requirements{ClientID: s.ClientID()}

	tests := []struct {
		name                string
		notBefore, notAfter time.Time
		want                error
	}{
		{"expired", now.Add(-48 * time.Hour), now.Add(-time.Hour), provider.ErrExpired},
		{"not yet valid", now.Add(time.Hour), now.Add(48 * time.Hour), provider.ErrNotYetValid},
		{"current", now.Add(-time.Hour), now.Add(time.Hour), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, err := s.SignCSRValidity(csr, tt.notBefore, tt.notAfter)
			require.NoError(t, err)
			certs, err := provider.ParseCertificates(certPEM)
			require.NoError(t, err)
			assert.True(t, certs[0].NotBefore.Equal(tt.notBefore.Truncate(time.Second)))
			assert.True(t, certs[0].NotAfter.Equal(tt.notAfter.Truncate(time.Second)))
			err = req.CheckCertificate(certs[0])
			if tt.want == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tt.want)
			}
		})
	}

	t.Run("reversed window", func(t *testing.T) {
		_, err := s.SignCSRValidity(csr, now, now.Add(-time.Hour))
		assert.ErrorIs(t, err, knottest.ErrValidity)
	})
	t.Run("rules still apply", func(t *testing.T) {
		_, err := s.SignCSRValidity(csrPEM(t, rsaKey(t, 2048), "someone-else", x509.SHA256WithRSA), now, now.Add(time.Hour))
		assert.ErrorIs(t, err, provider.ErrSubjectCN)
	})
}

func TestIssueClientCNSkipsRules(t *testing.T) {
	s := knottest.NewTestServer(t)
	b, err := s.IssueClientCN("someone-else")
	require.NoError(t, err)
	assert.Equal(t, "someone-else", b.Leaf().Subject.CommonName)
	require.NoError(t, b.Leaf().CheckSignatureFrom(s.CA()))
	assert.ErrorIs(t, provider.Requirements{ClientID: s.ClientID()}.CheckCertificate(b.Leaf()), provider.ErrSubjectCN)
}

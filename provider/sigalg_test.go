package provider_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/internal/pkitest"
	"github.com/knotmtls/knotmtls/provider"
)

// caOf is a self-signed CA with the given key.
func caOf(t *testing.T, key crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return c
}

// signedLeaf is a good Knot client certificate for the shared RSA-2048 key,
// signed by ca (key caKey) with alg.
func signedLeaf(t *testing.T, ca *x509.Certificate, caKey crypto.Signer, alg x509.SignatureAlgorithm) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0x47b49), Subject: pkix.Name{CommonName: clientID},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		SignatureAlgorithm: alg,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pkitest.CachedRSAKey(2048, 0).Public(), caKey)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	require.Equal(t, alg, c.SignatureAlgorithm)
	return c
}

// TestCASignatureAlgorithms: Knot's rules bind our key and CSR, not the CA's
// signature, so a certificate its CA signed with any sound algorithm passes
// (and its chain verifies); MD5 and SHA-1 are refused with
// ErrSignatureAlgorithm and a message that names the algorithm.
func TestCASignatureAlgorithms(t *testing.T) {
	rsaCA := pkitest.CachedRSAKey(2048, 2)
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	cases := []struct {
		caKey crypto.Signer
		alg   x509.SignatureAlgorithm
	}{
		{rsaCA, x509.SHA256WithRSA}, {rsaCA, x509.SHA384WithRSA}, {rsaCA, x509.SHA512WithRSA},
		{rsaCA, x509.SHA256WithRSAPSS}, {rsaCA, x509.SHA384WithRSAPSS}, {rsaCA, x509.SHA512WithRSAPSS},
		{p256, x509.ECDSAWithSHA256}, {p384, x509.ECDSAWithSHA384}, {p384, x509.ECDSAWithSHA512},
		{edKey, x509.PureEd25519},
	}
	for _, tc := range cases {
		t.Run("accepts "+tc.alg.String(), func(t *testing.T) {
			ca := caOf(t, tc.caKey)
			leaf := signedLeaf(t, ca, tc.caKey, tc.alg)
			roots := x509.NewCertPool()
			roots.AddCert(ca)
			req := provider.Requirements{ClientID: clientID, Roots: roots}
			require.NoError(t, req.CheckCertificate(leaf))
			b, err := provider.NewBundle([]*x509.Certificate{leaf, ca}, pkitest.CachedRSAKey(2048, 0), "v")
			require.NoError(t, err)
			require.NoError(t, req.CheckBundle(b))
		})
	}

	sha1 := signedLeaf(t, caOf(t, rsaCA), rsaCA, x509.SHA1WithRSA)
	md5 := withSignatureOID(t, signedLeaf(t, caOf(t, rsaCA), rsaCA, x509.SHA256WithRSA), x509.MD5WithRSA)
	ecdsaSHA1 := signedLeaf(t, caOf(t, p256), p256, x509.ECDSAWithSHA1)
	for _, leaf := range []*x509.Certificate{sha1, md5, ecdsaSHA1} {
		t.Run("refuses "+leaf.SignatureAlgorithm.String(), func(t *testing.T) {
			err := provider.Requirements{ClientID: clientID}.CheckCertificate(leaf)
			require.ErrorIs(t, err, provider.ErrSignatureAlgorithm)
			assert.Contains(t, err.Error(), leaf.SignatureAlgorithm.String())
			assert.Contains(t, err.Error(), "SHA-256 or stronger")
		})
	}
}

// withSignatureOID rewrites the RSA signature algorithm OID of c (Go refuses
// to create MD5 signatures): the signature no longer verifies, which
// CheckCertificate does not look at; the algorithm is what it must refuse.
func withSignatureOID(t *testing.T, c *x509.Certificate, alg x509.SignatureAlgorithm) *x509.Certificate {
	t.Helper()
	oids := map[x509.SignatureAlgorithm][]byte{
		x509.SHA256WithRSA: {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b},
		x509.MD5WithRSA:    {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04},
	}
	from, to := oids[c.SignatureAlgorithm], oids[alg]
	require.NotNil(t, from)
	require.Len(t, to, len(from))
	der := bytes.ReplaceAll(c.Raw, from, to)
	out, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	require.Equal(t, alg, out.SignatureAlgorithm)
	return out
}

// TestSerialHexIsOpensslForm: upper-case, no colons, an even number of
// digits with the leading zero kept (openssl x509 -serial, nginx
// $ssl_client_serial).
func TestSerialHexIsOpensslForm(t *testing.T) {
	cases := []struct {
		serial *big.Int
		want   string
	}{
		{big.NewInt(0x47b49), "047B49"},
		{big.NewInt(0xabcdef), "ABCDEF"},
		{big.NewInt(0x1), "01"},
		{big.NewInt(0x100), "0100"},
		{big.NewInt(0), "00"},
		{new(big.Int).Lsh(big.NewInt(1), 127), "80000000000000000000000000000000"},
		{big.NewInt(-0x47b49), "-047B49"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			assert.Equal(t, tc.want, provider.SerialHex(&x509.Certificate{SerialNumber: tc.serial}))
		})
	}
	assert.Empty(t, provider.SerialHex(nil))
	assert.Empty(t, provider.SerialHex(&x509.Certificate{}))
}

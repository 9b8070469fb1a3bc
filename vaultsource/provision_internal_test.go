package vaultsource

import (
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/internal/pkitest"
	"github.com/knotmtls/knotmtls/provider"
)

func TestBuildCSR(t *testing.T) {
	key := pkitest.CachedRSAKey(2048, 0)
	csrPEM, err := buildCSR(key, "5f1e2d3c4b5a")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(csrPEM), "-----BEGIN CERTIFICATE REQUEST-----"))
	assert.NotContains(t, string(csrPEM), "PRIVATE KEY")

	csr, err := provider.ParseCSR(csrPEM)
	require.NoError(t, err)
	assert.Equal(t, "5f1e2d3c4b5a", csr.Subject.CommonName)
	assert.Equal(t, x509.SHA256WithRSA, csr.SignatureAlgorithm)
	assert.True(t, key.PublicKey.Equal(csr.PublicKey))
	require.NoError(t, provider.Requirements{ClientID: "5f1e2d3c4b5a"}.CheckCSR(csr), "Knot accepts it")

	// Knot's rules are enforced before a CSR leaves: RSA-1024 is refused.
	_, err = buildCSR(pkitest.CachedRSAKey(1024, 0), "client")
	assert.ErrorIs(t, err, provider.ErrKeySize)
	// ... and so is a key Knot does not take.
	_, err = buildCSR(pkitest.ECKey(), "client")
	assert.Error(t, err)
}

func TestCheckClientID(t *testing.T) {
	assert.NoError(t, checkClientID("a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4"))
	for _, bad := range []string{"", "   ", "has space", "new\nline", strings.Repeat("a", 65)} {
		assert.ErrorIs(t, checkClientID(bad), ErrInvalidArgument, "%q", bad)
	}
	_, err := buildCSR(pkitest.CachedRSAKey(2048, 0), "")
	assert.ErrorIs(t, err, ErrInvalidArgument)
}

func TestTemplateCSR(t *testing.T) {
	tmpl, err := templateCSR("client-7")
	require.NoError(t, err)
	csr, err := provider.ParseCSR(tmpl)
	require.NoError(t, err)
	assert.Equal(t, "client-7", csr.Subject.CommonName)
	// The template is only a subject carrier: its throwaway key is not RSA,
	// so Knot's rules would refuse it until Transit re-signs it.
	assert.ErrorIs(t, provider.Requirements{ClientID: "client-7"}.CheckCSR(csr), provider.ErrKeyType)
}

func TestCheckCSR(t *testing.T) {
	key := pkitest.CachedRSAKey(2048, 0)
	csrPEM, err := buildCSR(key, "client")
	require.NoError(t, err)
	require.NoError(t, checkCSR(csrPEM, "client", key.Public()))
	assert.ErrorIs(t, checkCSR(csrPEM, "client", pkitest.CachedRSAKey(2048, 1).Public()), provider.ErrKeyMismatch)
	assert.ErrorIs(t, checkCSR(csrPEM, "other-client", nil), provider.ErrSubjectCN)
	assert.ErrorIs(t, checkCSR([]byte("nope"), "client", nil), provider.ErrNotPEM)
	sha384CSR := pkitest.CSR(t, "client", key, x509.SHA384WithRSA)
	assert.ErrorIs(t, checkCSR(sha384CSR, "client", nil), provider.ErrSignatureAlgorithm)
}

func TestEncodeKeyRoundTrip(t *testing.T) {
	key := pkitest.CachedRSAKey(2048, 0)
	text, err := encodeKey(key)
	require.NoError(t, err)
	block, _ := pem.Decode([]byte(text))
	require.NotNil(t, block)
	assert.Equal(t, "PRIVATE KEY", block.Type, "PKCS#8")
	back, err := provider.ParsePrivateKey([]byte(text))
	require.NoError(t, err)
	assert.True(t, key.PublicKey.Equal(back.Public()))
}

func TestImportChainChecks(t *testing.T) {
	ca := pkitest.NewCA("knot test ca")
	other := pkitest.NewCA("someone else")
	key := pkitest.CachedRSAKey(2048, 0)
	good := ca.Issue(pkitest.Leaf{CN: "client", Key: key})
	req := provider.Requirements{ClientID: "client", Roots: ca.Pool()}

	chain, err := importChain(req, pkitest.CertPEM(good), pkitest.CertPEM(ca.Cert), "p")
	require.NoError(t, err)
	assert.Len(t, chain, 2)
	chain, err = importChain(req, pkitest.CertPEM(good, ca.Cert), nil, "p")
	require.NoError(t, err, "the chain may follow the leaf in certPEM")
	assert.Len(t, chain, 2)

	tests := []struct {
		name  string
		req   provider.Requirements
		cert  []byte
		chain []byte
		want  error
	}{
		{"no client id", provider.Requirements{}, pkitest.CertPEM(good), nil, ErrInvalidArgument},
		{"garbage", req, []byte("garbage"), nil, provider.ErrNotPEM},
		{"wrong cn", req, pkitest.CertPEM(ca.Issue(pkitest.Leaf{CN: "intruder", Key: key})), nil, provider.ErrSubjectCN},
		{"expired", req, pkitest.CertPEM(ca.Issue(pkitest.Leaf{CN: "client", Key: key,
			NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})), nil, provider.ErrExpired},
		{"rsa-1024", req, pkitest.CertPEM(ca.Issue(pkitest.Leaf{CN: "client", Key: pkitest.CachedRSAKey(1024, 0)})), nil, provider.ErrKeySize},
		{"untrusted issuer", req, pkitest.CertPEM(other.Issue(pkitest.Leaf{CN: "client", Key: key})), nil, provider.ErrUntrustedChain},
		{"chain out of order", req, pkitest.CertPEM(good), pkitest.CertPEM(other.Cert), provider.ErrChainOrder},
		{"garbage chain", req, pkitest.CertPEM(good), []byte("-----BEGIN CERTIFICATE-----\nAA"), provider.ErrTruncatedPEM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := importChain(tt.req, tt.cert, tt.chain, "secret/data/knot")
			require.ErrorIs(t, err, tt.want)
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, "secret/data/knot", e.Path)
		})
	}
}

func TestCheckProvisionedKey(t *testing.T) {
	assert.NoError(t, checkProvisionedKey(&transitKey{typ: "rsa-2048"}, "p"))
	assert.ErrorIs(t, checkProvisionedKey(&transitKey{typ: "rsa-4096"}, "p"), ErrUnsupportedKeyType)
	assert.ErrorIs(t, checkProvisionedKey(&transitKey{typ: "ecdsa-p256"}, "p"), ErrUnsupportedKeyType)
	assert.ErrorIs(t, checkProvisionedKey(&transitKey{typ: "rsa-2048", exportable: true}, "p"), ErrKeyExportable)
	assert.ErrorIs(t, checkProvisionedKey(&transitKey{typ: "rsa-2048", allowPlaintextBackup: true}, "p"), ErrKeyExportable)
}

func TestPresent(t *testing.T) {
	data := map[string]any{"a": "x", "b": " \n", "c": nil, "d": []any{}}
	assert.True(t, present(data, "a"))
	assert.False(t, present(data, "b"))
	assert.False(t, present(data, "c"))
	assert.True(t, present(data, "d"))
	assert.False(t, present(data, "missing"))
	assert.False(t, present(nil, "a"))
}

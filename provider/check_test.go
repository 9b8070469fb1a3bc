package provider_test

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/internal/pkitest"
	"github.com/knotmtls/knotmtls/provider"
)

const clientID = "client-123"

// material is one (cert PEM, key PEM) input to the validators.
type material struct {
	cert, key []byte
}

func goodMaterial(ca *pkitest.CA) material {
	key := pkitest.CachedRSAKey(2048, 0)
	return material{pkitest.CertPEM(ca.Issue(pkitest.Leaf{CN: clientID, Key: key})), pkitest.KeyPEM(key)}
}

// badInputs is the shared table of malformed or rule-breaking material: each
// must fail with its own sentinel.
func badInputs(ca *pkitest.CA) map[string]struct {
	in   material
	want error
} {
	good := goodMaterial(ca)
	rsa1024 := pkitest.RSAKey(1024)
	ec := pkitest.ECKey()
	key := pkitest.CachedRSAKey(2048, 0)
	other := pkitest.CachedRSAKey(2048, 1)
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"},
		Bytes:   []byte("not really ciphertext")})
	pkcs8Encrypted := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0x00}})
	return map[string]struct {
		in   material
		want error
	}{
		"garbage":          {material{[]byte("this is not a certificate"), good.key}, provider.ErrNotPEM},
		"empty":            {material{nil, good.key}, provider.ErrEmpty},
		"truncated pem":    {material{good.cert[:len(good.cert)/2], good.key}, provider.ErrTruncatedPEM},
		"encrypted key":    {material{good.cert, encrypted}, provider.ErrEncryptedKey},
		"pkcs8 encrypted":  {material{good.cert, pkcs8Encrypted}, provider.ErrEncryptedKey},
		"key in cert slot": {material{good.key, good.key}, provider.ErrUnexpectedPEMType},
		"rsa-1024": {material{pkitest.CertPEM(ca.Issue(pkitest.Leaf{CN: clientID, Key: rsa1024})),
			pkitest.KeyPEM(rsa1024)}, provider.ErrKeySize},
		"ecdsa": {material{pkitest.CertPEM(ca.Issue(pkitest.Leaf{CN: clientID, Key: ec})),
			pkitest.KeyPEM(ec)}, provider.ErrKeyType},
		"sha1 signature": {material{pkitest.CertPEM(ca.Issue(pkitest.Leaf{CN: clientID, Key: key, SigAlg: x509.SHA1WithRSA})),
			pkitest.KeyPEM(key)}, provider.ErrSignatureAlgorithm},
		"wrong cn": {material{pkitest.CertPEM(ca.Issue(pkitest.Leaf{CN: "someone-else", Key: key})),
			pkitest.KeyPEM(key)}, provider.ErrSubjectCN},
		"mismatched pair": {material{good.cert, pkitest.KeyPEM(other)}, provider.ErrKeyMismatch},
		"expired": {material{pkitest.CertPEM(ca.Issue(pkitest.Leaf{CN: clientID, Key: key,
			NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})),
			pkitest.KeyPEM(key)}, provider.ErrExpired},
		"not yet valid": {material{pkitest.CertPEM(ca.Issue(pkitest.Leaf{CN: clientID, Key: key,
			NotBefore: time.Now().Add(time.Hour), NotAfter: time.Now().Add(48 * time.Hour)})),
			pkitest.KeyPEM(key)}, provider.ErrNotYetValid},
	}
}

// validate is what a provider does with PEM material: parse, then check.
func validate(m material) (*provider.Bundle, error) {
	b, err := provider.ParseBundle(m.cert, nil, m.key, "v")
	if err != nil {
		return nil, err
	}
	return b, provider.Requirements{ClientID: clientID}.CheckBundle(b)
}

func TestBadInputsHaveDistinctErrors(t *testing.T) {
	ca := pkitest.NewCA("test CA")
	seen := map[error]string{}
	for name, tc := range badInputs(ca) {
		t.Run(name, func(t *testing.T) {
			_, err := validate(tc.in)
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.want)
			var ce *provider.CheckError
			require.ErrorAs(t, err, &ce)
			assertNoKeyBytes(t, err.Error(), tc.in.key)
		})
		if prev, dup := seen[tc.want]; dup && tc.want != provider.ErrEncryptedKey {
			t.Errorf("%s and %s share sentinel %v", name, prev, tc.want)
		}
		seen[tc.want] = name
	}
	_, err := validate(goodMaterial(ca))
	require.NoError(t, err)
}

// assertNoKeyBytes fails if any 16-character run of the key's PEM body shows
// up in s.
func assertNoKeyBytes(t *testing.T, s string, keyPEM []byte) {
	t.Helper()
	body := strings.ReplaceAll(string(keyPEM), "\n", "")
	for i := 40; i+16 < len(body)-40; i += 16 {
		if strings.Contains(s, body[i:i+16]) {
			t.Fatalf("key material leaked into %q", s)
		}
	}
}

func TestCheckCSR(t *testing.T) {
	good := pkitest.CachedRSAKey(2048, 0)
	cases := map[string]struct {
		cn   string
		key  any
		alg  x509.SignatureAlgorithm
		want error
	}{
		"ok":       {clientID, good, x509.SHA256WithRSA, nil},
		"wrong cn": {"nope", good, x509.SHA256WithRSA, provider.ErrSubjectCN},
		"sha512":   {clientID, good, x509.SHA512WithRSA, provider.ErrSignatureAlgorithm},
		"rsa-1024": {clientID, pkitest.RSAKey(1024), x509.SHA256WithRSA, provider.ErrKeySize},
		"ecdsa":    {clientID, pkitest.ECKey(), x509.ECDSAWithSHA256, provider.ErrKeyType},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			csrPEM := pkitest.CSR(t, tc.cn, tc.key, tc.alg)
			csr, err := provider.ParseCSR(csrPEM)
			require.NoError(t, err)
			err = provider.Requirements{ClientID: clientID}.CheckCSR(csr)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func TestLargerKeysOnlyWhenAllowed(t *testing.T) {
	k := pkitest.CachedRSAKey(3072, 0)
	require.ErrorIs(t, provider.Requirements{}.CheckPublicKey(&k.PublicKey), provider.ErrKeySize)
	require.NoError(t, provider.Requirements{AllowLargerKeys: true}.CheckPublicKey(&k.PublicKey))
}

func TestChainOrderAndRoots(t *testing.T) {
	root := pkitest.NewCA("root")
	key := pkitest.CachedRSAKey(2048, 0)
	leaf := root.Issue(pkitest.Leaf{CN: clientID, Key: key})
	req := provider.Requirements{ClientID: clientID}

	require.NoError(t, req.CheckChain([]*x509.Certificate{leaf, root.Cert}))
	require.ErrorIs(t, req.CheckChain([]*x509.Certificate{root.Cert, leaf}), provider.ErrChainOrder)

	req.Roots = root.Pool()
	require.NoError(t, req.CheckChain([]*x509.Certificate{leaf}))
	req.Roots = pkitest.NewCA("other").Pool()
	err := req.CheckChain([]*x509.Certificate{leaf})
	require.ErrorIs(t, err, provider.ErrUntrustedChain)
}

func TestKeyFormats(t *testing.T) {
	rsaKey := pkitest.CachedRSAKey(2048, 0)
	ec := pkitest.ECKey()
	ecDER, err := x509.MarshalECPrivateKey(ec)
	require.NoError(t, err)
	for name, in := range map[string][]byte{
		"pkcs1": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}),
		"pkcs8": pkitest.KeyPEM(rsaKey),
		"sec1":  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}),
	} {
		t.Run(name, func(t *testing.T) {
			k, err := provider.ParsePrivateKey(in)
			require.NoError(t, err)
			require.NotNil(t, k.Public())
		})
	}
	_, err = provider.ParsePrivateKey(append(pkitest.KeyPEM(rsaKey), pkitest.KeyPEM(rsaKey)...))
	require.ErrorIs(t, err, provider.ErrNoKey)
}

func TestBundleStringHasNoKey(t *testing.T) {
	ca := pkitest.NewCA("test CA")
	b, err := validate(goodMaterial(ca))
	require.NoError(t, err)
	s := b.String()
	assert.Contains(t, s, clientID)
	assert.Contains(t, s, provider.SerialHex(b.Leaf()))
	assert.NotContains(t, s, "PRIVATE")
	assert.False(t, errors.Is(nil, provider.ErrEmpty))
}

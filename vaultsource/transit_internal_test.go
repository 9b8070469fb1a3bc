package vaultsource

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha256" // registers SHA-224/256
	_ "crypto/sha512" // registers SHA-384/512
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/internal/pkitest"
	"github.com/knotmtls/knotmtls/provider"
)

func digest(h crypto.Hash) []byte {
	hh := h.New()
	hh.Write([]byte("handshake transcript"))
	return hh.Sum(nil)
}

func sha512Of(s string) []byte {
	h := crypto.SHA512.New()
	h.Write([]byte(s))
	return h.Sum(nil)
}

func TestSignParams(t *testing.T) {
	rsaPub := &pkitest.CachedRSAKey(2048, 0).PublicKey
	ecPub := pkitest.ECKey().Public()
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)

	tests := []struct {
		name    string
		pub     crypto.PublicKey
		opts    crypto.SignerOpts
		digest  []byte
		want    signParameters
		wantErr string
	}{
		{"rsa pkcs1v15 sha256", rsaPub, crypto.SHA256, digest(crypto.SHA256),
			signParameters{hashAlgorithm: "sha2-256", signatureAlgorithm: "pkcs1v15"}, ""},
		{"rsa pkcs1v15 sha384", rsaPub, crypto.SHA384, digest(crypto.SHA384),
			signParameters{hashAlgorithm: "sha2-384", signatureAlgorithm: "pkcs1v15"}, ""},
		{"rsa pss sha256 tls", rsaPub, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}, digest(crypto.SHA256),
			signParameters{hashAlgorithm: "sha2-256", signatureAlgorithm: "pss", saltLength: "hash"}, ""},
		{"rsa pss sha384 tls", rsaPub, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA384}, digest(crypto.SHA384),
			signParameters{hashAlgorithm: "sha2-384", signatureAlgorithm: "pss", saltLength: "hash"}, ""},
		{"rsa pss sha512 tls", rsaPub, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA512}, digest(crypto.SHA512),
			signParameters{hashAlgorithm: "sha2-512", signatureAlgorithm: "pss", saltLength: "hash"}, ""},
		{"rsa pss auto salt", rsaPub, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA256}, digest(crypto.SHA256),
			signParameters{hashAlgorithm: "sha2-256", signatureAlgorithm: "pss", saltLength: "auto"}, ""},
		{"rsa pss explicit salt", rsaPub, &rsa.PSSOptions{SaltLength: 20, Hash: crypto.SHA256}, digest(crypto.SHA256),
			signParameters{hashAlgorithm: "sha2-256", signatureAlgorithm: "pss", saltLength: "20"}, ""},
		{"ecdsa sha256", ecPub, crypto.SHA256, digest(crypto.SHA256),
			signParameters{hashAlgorithm: "sha2-256", marshalingAlgorithm: "asn1"}, ""},
		{"ecdsa with pss opts", ecPub, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}, digest(crypto.SHA256),
			signParameters{}, "ECDSA"},
		{"unhashed message", rsaPub, crypto.Hash(0), []byte("msg"), signParameters{}, "unhashed"},
		{"md5", rsaPub, crypto.MD5, make([]byte, 16), signParameters{}, "not supported"},
		{"digest length", rsaPub, crypto.SHA256, make([]byte, 20), signParameters{}, "20 bytes"},
		{"nil opts", rsaPub, nil, digest(crypto.SHA256), signParameters{}, "no signer options"},
		{"ed25519", edPub, crypto.SHA256, digest(crypto.SHA256), signParameters{}, "cannot sign"},
		{"bad pss salt", rsaPub, &rsa.PSSOptions{SaltLength: -7, Hash: crypto.SHA256}, digest(crypto.SHA256), signParameters{}, "salt length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := signParams(tt.pub, tt.digest, tt.opts)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestVerifySignature(t *testing.T) {
	rsaKey := pkitest.CachedRSAKey(2048, 0)
	otherRSA := pkitest.CachedRSAKey(2048, 1)
	ecKey := pkitest.ECKey()
	d256 := digest(crypto.SHA256)
	d512 := digest(crypto.SHA512)
	pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	otherDigest := sha512Of("another transcript")

	pssSig, err := rsaKey.Sign(rand.Reader, d256, pss)
	require.NoError(t, err)
	pkcsSig, err := rsaKey.Sign(rand.Reader, d512, crypto.SHA512)
	require.NoError(t, err)
	ecSig, err := ecKey.Sign(rand.Reader, d256, crypto.SHA256)
	require.NoError(t, err)
	flipped := func(b []byte) []byte {
		c := append([]byte(nil), b...)
		c[len(c)/2] ^= 0x01
		return c
	}

	tests := []struct {
		name   string
		pub    crypto.PublicKey
		digest []byte
		sig    []byte
		opts   crypto.SignerOpts
		ok     bool
	}{
		{"rsa pss good", &rsaKey.PublicKey, d256, pssSig, pss, true},
		{"rsa pss flipped bit", &rsaKey.PublicKey, d256, flipped(pssSig), pss, false},
		{"rsa pss other key", &otherRSA.PublicKey, d256, pssSig, pss, false},
		{"rsa pss sig checked as pkcs1", &rsaKey.PublicKey, d256, pssSig, crypto.SHA256, false},
		{"rsa pkcs1 good", &rsaKey.PublicKey, d512, pkcsSig, crypto.SHA512, true},
		{"rsa pkcs1 flipped bit", &rsaKey.PublicKey, d512, flipped(pkcsSig), crypto.SHA512, false},
		{"rsa pkcs1 other digest", &rsaKey.PublicKey, otherDigest, pkcsSig, crypto.SHA512, false},
		{"ecdsa good", ecKey.Public(), d256, ecSig, crypto.SHA256, true},
		{"ecdsa flipped bit", ecKey.Public(), d256, flipped(ecSig), crypto.SHA256, false},
		{"unsupported key", ed25519.PublicKey(make([]byte, 32)), d256, ecSig, crypto.SHA256, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verifySignature(tt.pub, tt.digest, tt.sig, tt.opts)
			if tt.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
}

// The params signParams produces, applied with Go's own RSA code, yield
// signatures verifySignature accepts: the mapping and the check agree.
func TestSignParamsMatchVerification(t *testing.T) {
	key := pkitest.CachedRSAKey(2048, 0)
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		d := digest(h)
		opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h}
		p, err := signParams(&key.PublicKey, d, opts)
		require.NoError(t, err)
		require.Equal(t, "hash", p.saltLength)
		sig, err := rsa.SignPSS(rand.Reader, key, h, d, &rsa.PSSOptions{SaltLength: h.Size()})
		require.NoError(t, err)
		assert.NoError(t, verifySignature(&key.PublicKey, d, sig, opts), h.String())
	}
}

func TestParseSignature(t *testing.T) {
	raw := []byte{1, 2, 3, 4}
	good := "vault:v3:" + base64.StdEncoding.EncodeToString(raw)
	sig, err := parseSignature(good, 3)
	require.NoError(t, err)
	assert.Equal(t, raw, sig)

	for name, tc := range map[string]struct {
		in   string
		want int
		msg  string
	}{
		"wrong version":  {good, 2, "key version 3, want 2"},
		"no prefix":      {base64.StdEncoding.EncodeToString(raw), 3, "vault:v<N>"},
		"bad number":     {"vault:vX:AAAA", 3, "not a number"},
		"bad base64":     {"vault:v3:***", 3, "base64"},
		"empty response": {"", 3, "vault:v<N>"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseSignature(tc.in, tc.want)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}

func pubPEM(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// keyResponse builds the data of GET transit/keys/<name> as Vault's JSON
// decoder hands it over (numbers as json.Number).
func keyResponse(t *testing.T, typ string, versions map[string]map[string]any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"type": typ, "latest_version": len(versions), "exportable": false, "keys": versions})
	require.NoError(t, err)
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var out map[string]any
	require.NoError(t, dec.Decode(&out))
	return out
}

func TestTransitPickVersion(t *testing.T) {
	ca := pkitest.NewCA("knot test ca")
	k1, k2, k3 := pkitest.CachedRSAKey(2048, 0), pkitest.CachedRSAKey(2048, 1), pkitest.CachedRSAKey(2048, 2)
	chain1 := string(pkitest.CertPEM(ca.Issue(pkitest.Leaf{CN: "c", Key: k1})))
	chain2 := string(pkitest.CertPEM(ca.Issue(pkitest.Leaf{CN: "c", Key: k2})))
	data := keyResponse(t, "rsa-2048", map[string]map[string]any{
		"1": {"public_key": pubPEM(t, k1.Public()), "certificate_chain": chain1},
		"2": {"public_key": pubPEM(t, k2.Public()), "certificate_chain": chain2},
		"3": {"public_key": pubPEM(t, k3.Public()), "certificate_chain": ""},
	})
	key, err := parseTransitKey(data, "transit/keys/knot")
	require.NoError(t, err)
	assert.Equal(t, 3, key.latest)

	src := &Transit{key: "knot", mount: "transit"}
	v, kv, err := src.pick(key)
	require.NoError(t, err)
	assert.Equal(t, 2, v, "latest version with a certificate chain")
	assert.Equal(t, chain2, kv.chain)

	src.cfg.keyVersion = 1
	v, _, err = src.pick(key)
	require.NoError(t, err)
	assert.Equal(t, 1, v, "pinned")

	src.cfg.keyVersion = 3
	_, _, err = src.pick(key)
	assert.ErrorIs(t, err, ErrNoCertificateChain)

	src.cfg.keyVersion = 9
	_, _, err = src.pick(key)
	assert.ErrorIs(t, err, ErrKeyNotFound)

	src.cfg.keyVersion = 0
	none, err := parseTransitKey(keyResponse(t, "rsa-2048", map[string]map[string]any{
		"1": {"public_key": pubPEM(t, k1.Public())},
	}), "transit/keys/knot")
	require.NoError(t, err)
	_, _, err = src.pick(none)
	assert.ErrorIs(t, err, ErrNoCertificateChain)

	_, err = parseTransitKey(map[string]any{"type": "aes256-gcm96", "keys": map[string]any{"1": json.Number("1700000000")}}, "p")
	require.NoError(t, err, "symmetric keys list creation times")
	aes, _ := parseTransitKey(map[string]any{"type": "aes256-gcm96", "keys": map[string]any{"1": json.Number("1")}}, "p")
	_, _, err = src.pick(aes)
	assert.ErrorIs(t, err, ErrUnsupportedKeyType)
}

func TestVersionStringTracksChain(t *testing.T) {
	a := versionString("knot", 2, "chain A")
	assert.True(t, strings.HasPrefix(a, "transit:knot:v2:"), a)
	assert.Equal(t, a, versionString("knot", 2, "chain A\n"), "insignificant whitespace")
	assert.NotEqual(t, a, versionString("knot", 2, "chain B"), "set-certificate on the same version")
	assert.NotEqual(t, a, versionString("knot", 3, "chain A"))
}

func TestParsePublicKey(t *testing.T) {
	k := pkitest.CachedRSAKey(2048, 0)
	pub, err := parsePublicKey(pubPEM(t, k.Public()))
	require.NoError(t, err)
	assert.True(t, k.PublicKey.Equal(pub))

	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.PublicKey)}))
	pub, err = parsePublicKey(pkcs1)
	require.NoError(t, err)
	assert.True(t, k.PublicKey.Equal(pub))

	_, err = parsePublicKey("not pem")
	assert.Error(t, err)
}

// The signer is a crypto.Signer whose public half matches the certificate,
// so provider.CheckKeyPair accepts it without any signing.
func TestTransitSignerPublic(t *testing.T) {
	ca := pkitest.NewCA("knot test ca")
	k := pkitest.CachedRSAKey(2048, 0)
	leaf := ca.Issue(pkitest.Leaf{CN: "c", Key: k})
	src := &Transit{mount: "transit", key: "knot", cfg: transitConfig{signTimeout: DefaultSignTimeout}}
	s := src.signer(4, &k.PublicKey)
	require.NoError(t, provider.CheckKeyPair(leaf, s))
	assert.Equal(t, "transit signer transit/sign/knot v4", s.String())

	other := src.signer(4, &pkitest.CachedRSAKey(2048, 1).PublicKey)
	assert.ErrorIs(t, provider.CheckKeyPair(leaf, other), provider.ErrKeyMismatch)

	// A request Transit cannot serve fails before any network I/O.
	_, err := s.Sign(rand.Reader, []byte("short"), crypto.SHA256)
	assert.ErrorIs(t, err, ErrUnsupportedSignature)
	var e *Error
	require.True(t, errors.As(err, &e))
	assert.Equal(t, "transit/sign/knot", e.Path)
}

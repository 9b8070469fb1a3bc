package integration_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/internal/pkitest"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// withKnot returns a copy of e talking to a new fake Knot (same Vault).
func (e *vsEnv) withKnot(t *testing.T, opts ...knottest.Option) *vsEnv {
	t.Helper()
	c := *e
	c.knot = knottest.NewTestServer(t, opts...)
	return &c
}

// provisionTransit runs the Transit onboarding and returns the source and
// the leaf Knot signed.
func (e *vsEnv) provisionTransit(t *testing.T, key string, opts ...vaultsource.TransitOption) (*vaultsource.Transit, *x509.Certificate) {
	t.Helper()
	ctx := t.Context()
	csrPEM, err := vaultsource.ProvisionTransit(ctx, e.client, "transit", key, e.knot.ClientID(), vaultsource.ProvisionNew, opts...)
	require.NoError(t, err)
	csr, err := provider.ParseCSR(csrPEM)
	require.NoError(t, err)
	require.NoError(t, provider.Requirements{ClientID: e.knot.ClientID()}.CheckCSR(csr), "Vault-signed CSR meets Knot's rules")
	certPEM, err := e.knot.SignCSR(csrPEM)
	require.NoError(t, err)
	tr, err := vaultsource.NewTransit(e.client, "transit", key, opts...)
	require.NoError(t, err)
	require.NoError(t, importErr(tr.ImportCertificate(ctx, e.requirements(), certPEM, nil)))
	certs, err := provider.ParseCertificates(certPEM)
	require.NoError(t, err)
	return tr, certs[0]
}

// TestTransitLifecycle: the key is created inside Transit, Vault signs the
// CSR, the certificate is stored with set-certificate, and mTLS handshakes
// sign through Vault under TLS 1.3 (RSA-PSS) and TLS 1.2. Each new
// connection costs exactly one Vault signature; a reused one costs none.
func TestTransitLifecycle(t *testing.T) {
	base := vsStart(t)
	require.NoError(t, base.vault.EnableTransit(t.Context()))

	for _, tc := range []struct {
		name    string
		version uint16
	}{{"TLS1.3", tls.VersionTLS13}, {"TLS1.2", tls.VersionTLS12}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			e := base.withKnot(t, knottest.WithTLSVersions(tc.version, tc.version))
			key := "knot-" + strings.ReplaceAll(strings.ToLower(tc.name), ".", "")
			tr, leaf := e.provisionTransit(t, key)

			_, err := vaultsource.ProvisionTransit(ctx, e.client, "transit", key, e.knot.ClientID(), vaultsource.ProvisionNew)
			require.ErrorIs(t, err, vaultsource.ErrKeyExists, "an existing key is never replaced by accident")
			exported, err := e.client.Logical().ReadWithContext(ctx, "transit/export/signing-key/"+key)
			assert.Error(t, err, "the key is not exportable")
			assert.Nil(t, exported)

			p := e.newProvider(t, tr)
			k := e.knotClient(t, p)
			signPath := "transit/sign/" + key
			signs := func() int { return e.counter.count(http.MethodPut, signPath) }

			start := time.Now()
			require.NoError(t, k.call(ctx))
			first := time.Since(start)
			require.Equal(t, 1, signs(), "first connection: one signature")

			const fresh, reused = 10, 50
			start = time.Now()
			for i := range fresh {
				k.tr.CloseIdleConnections()
				before := signs()
				require.NoError(t, k.call(ctx))
				require.Equal(t, 1, signs()-before, "new connection %d: exactly one Vault signature", i)
			}
			perFresh := time.Since(start) / fresh
			before := signs()
			start = time.Now()
			for range reused {
				require.NoError(t, k.call(ctx))
			}
			perReused := time.Since(start) / reused
			assert.Zero(t, signs()-before, "reused connection: no signature")

			reqs := e.knot.Requests()
			require.Len(t, reqs, 1+fresh+reused)
			for _, r := range reqs {
				assert.Equal(t, tc.version, r.TLSVersion)
				assert.Equal(t, provider.SerialHex(leaf), r.ClientSerial)
				assert.True(t, r.AuthOK)
			}
			b, err := p.Bundle(ctx)
			require.NoError(t, err)
			assert.True(t, strings.HasPrefix(b.Version, "transit:"+key+":v1:"), b.Version)
			t.Logf("figures %s: first call (fetch + handshake) %s; %d new connections: 1 sign each, %s per call; %d reused calls: %d signs, %s per call; serial %s",
				tc.name, first, fresh, perFresh, reused, signs()-before, perReused, provider.SerialHex(leaf))
		})
	}
}

// TestTransitSignerSchemes checks each signature scheme TLS may ask for
// against the certificate's public key, the pinning of the key version
// across a Transit rotation, and ECDSA signatures in ASN.1 form.
func TestTransitSignerSchemes(t *testing.T) {
	e := vsStart(t)
	ctx := t.Context()
	require.NoError(t, e.vault.EnableTransit(ctx))
	const key = "knot-schemes"
	tr, leaf := e.provisionTransit(t, key)
	b, err := tr.Fetch(ctx)
	require.NoError(t, err)
	pub := leaf.PublicKey.(*rsa.PublicKey)

	schemes := []struct {
		name string
		opts crypto.SignerOpts
	}{
		{"pss-sha256", &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}},
		{"pss-sha384", &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA384}},
		{"pss-sha512", &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA512}},
		{"pkcs1v15-sha256", crypto.SHA256},
		{"pkcs1v15-sha384", crypto.SHA384},
		{"pkcs1v15-sha512", crypto.SHA512},
	}
	verify := func(t *testing.T, pub *rsa.PublicKey, s crypto.Signer) {
		for _, sc := range schemes {
			h := sc.opts.HashFunc().New()
			h.Write([]byte("transcript " + sc.name))
			digest := h.Sum(nil)
			sig, err := s.Sign(rand.Reader, digest, sc.opts)
			require.NoError(t, err, sc.name)
			if pss, ok := sc.opts.(*rsa.PSSOptions); ok {
				assert.NoError(t, rsa.VerifyPSS(pub, sc.opts.HashFunc(), digest, sig, pss), sc.name)
				// TLS 1.3 peers insist on salt length = hash length.
				assert.NoError(t, rsa.VerifyPSS(pub, sc.opts.HashFunc(), digest, sig,
					&rsa.PSSOptions{SaltLength: sc.opts.HashFunc().Size(), Hash: sc.opts.HashFunc()}), sc.name)
			} else {
				assert.NoError(t, rsa.VerifyPKCS1v15(pub, sc.opts.HashFunc(), digest, sig), sc.name)
			}
		}
	}
	verify(t, pub, b.Key)

	// A request Transit cannot serve fails without a Vault call.
	before := e.counter.total.Load()
	_, err = b.Key.Sign(rand.Reader, []byte("too short"), crypto.SHA256)
	require.ErrorIs(t, err, vaultsource.ErrUnsupportedSignature)
	assert.Equal(t, before, e.counter.total.Load())

	// Rotation: a new key version without a certificate changes nothing;
	// the source keeps presenting and signing with version 1.
	csr2, err := vaultsource.ProvisionTransit(ctx, e.client, "transit", key, e.knot.ClientID(), vaultsource.ProvisionRotate)
	require.NoError(t, err)
	v1, err := tr.Version(ctx)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(v1, "transit:"+key+":v1:"), v1)
	verify(t, pub, b.Key)

	// The CSR can be asked for again without touching the key.
	again, err := tr.CSR(ctx, e.knot.ClientID())
	require.NoError(t, err)
	csr2Parsed, err := provider.ParseCSR(csr2)
	require.NoError(t, err)
	againParsed, err := provider.ParseCSR(again)
	require.NoError(t, err)
	assert.True(t, csr2Parsed.PublicKey.(*rsa.PublicKey).Equal(againParsed.PublicKey), "latest version")
	pinnedCSR, err := vaultsource.NewTransit(e.client, "transit", key, vaultsource.WithKeyVersion(1))
	require.NoError(t, err)
	v1CSR, err := pinnedCSR.CSR(ctx, e.knot.ClientID())
	require.NoError(t, err)
	v1Parsed, err := provider.ParseCSR(v1CSR)
	require.NoError(t, err)
	assert.True(t, pub.Equal(v1Parsed.PublicKey), "pinned version 1")

	cert2PEM, err := e.knot.SignCSR(csr2)
	require.NoError(t, err)
	require.NoError(t, importErr(tr.ImportCertificate(ctx, e.requirements(), cert2PEM, nil)))
	v2, err := tr.Version(ctx)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(v2, "transit:"+key+":v2:"), v2)
	b2, err := tr.Fetch(ctx)
	require.NoError(t, err)
	assert.Equal(t, v2, b2.Version)
	verify(t, b2.Leaf().PublicKey.(*rsa.PublicKey), b2.Key)
	verify(t, pub, b.Key) // the old bundle still signs with version 1

	pinned, err := vaultsource.NewTransit(e.client, "transit", key, vaultsource.WithKeyVersion(1))
	require.NoError(t, err)
	bp, err := pinned.Fetch(ctx)
	require.NoError(t, err)
	assert.True(t, bp.Leaf().Equal(leaf), "a pinned version presents its own certificate")

	// set-certificate again on the same version is a new Version.
	cert3PEM, err := e.knot.SignCSR(csr2)
	require.NoError(t, err)
	require.NoError(t, importErr(tr.ImportCertificate(ctx, e.requirements(), cert3PEM, nil)))
	v3, err := tr.Version(ctx)
	require.NoError(t, err)
	assert.NotEqual(t, v2, v3)
	assert.True(t, strings.HasPrefix(v3, "transit:"+key+":v2:"), v3)

	t.Run("ecdsa", func(t *testing.T) {
		const ec = "knot-ecdsa"
		_, err := e.client.Logical().WriteWithContext(ctx, "transit/keys/"+ec, map[string]any{"type": "ecdsa-p256"})
		require.NoError(t, err)
		sec, err := e.client.Logical().ReadWithContext(ctx, "transit/keys/"+ec)
		require.NoError(t, err)
		pubPEM := sec.Data["keys"].(map[string]any)["1"].(map[string]any)["public_key"].(string)
		ecPub, err := parsePKIX(pubPEM)
		require.NoError(t, err)
		ca := pkitest.NewCA("test ca")
		cert := ca.Issue(pkitest.Leaf{CN: e.knot.ClientID(), Key: publicOnly{ecPub}, SigAlg: x509.SHA256WithRSA})

		// Knot wants RSA: the import is refused with the precise reason and writes nothing.
		src, err := vaultsource.NewTransit(e.client, "transit", ec)
		require.NoError(t, err)
		_, err = src.ImportCertificate(ctx, provider.Requirements{ClientID: e.knot.ClientID()}, pkitest.CertPEM(cert), nil)
		require.ErrorIs(t, err, provider.ErrKeyType)
		_, err = src.Fetch(ctx)
		require.ErrorIs(t, err, vaultsource.ErrNoCertificateChain)

		_, err = e.client.Logical().WriteWithContext(ctx, "transit/keys/"+ec+"/set-certificate",
			map[string]any{"certificate_chain": string(pkitest.CertPEM(cert))})
		require.NoError(t, err)
		eb, err := src.Fetch(ctx)
		require.NoError(t, err)
		for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384} {
			hh := h.New()
			hh.Write([]byte("ecdsa transcript"))
			digest := hh.Sum(nil)
			sig, err := eb.Key.Sign(rand.Reader, digest, h)
			require.NoError(t, err)
			assert.True(t, ecdsa.VerifyASN1(ecPub.(*ecdsa.PublicKey), digest, sig), "ASN.1 ECDSA signature, %s", h)
		}
	})
	t.Logf("figures: %d sign requests for %d scheme checks; vault requests: %s", e.counter.count(http.MethodPut, "transit/sign/"+key), 6*4, e.counter)
}

// publicOnly lets pkitest issue a certificate for a key held elsewhere.
type publicOnly struct{ pub crypto.PublicKey }

func (p publicOnly) Public() crypto.PublicKey { return p.pub }
func (p publicOnly) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("public key only")
}

func parsePKIX(pemText string) (crypto.PublicKey, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, errors.New("public key is not PEM")
	}
	return x509.ParsePKIXPublicKey(block.Bytes)
}

package integration_test

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/internal/pkitest"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

func keyPEM(t *testing.T, b *provider.Bundle) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(b.Key)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// TestBadSecretsKeepLastGood writes broken material into the KV secret as
// new versions. Each is refused with its own typed error, through
// Refresh and the OnRefreshFailed hook, while the last good certificate keeps
// serving Knot.
func TestBadSecretsKeepLastGood(t *testing.T) {
	e := vsStart(t)
	ctx := t.Context()
	const path = "knot/bad"
	kv, leafA := e.provisionKV(t, "secret", path)
	serialA := provider.SerialHex(leafA)

	var mu sync.Mutex
	var hooked []error
	p := e.newProvider(t, kv,
		provider.WithPollInterval(time.Hour), provider.WithBackoff(time.Hour, time.Hour), // Refresh drives this test
		provider.OnRefreshFailed(func(err error, _ int, _ time.Duration) {
			mu.Lock()
			hooked = append(hooked, err)
			mu.Unlock()
		}))
	call := e.knotAPI(t, p)
	require.NoError(t, call(ctx))

	good, err := e.client.KVv2("secret").Get(ctx, path)
	require.NoError(t, err)
	certPEM := good.Data["certificate"].(string)
	goodKey := good.Data["private_key"].(string)

	other, err := e.knot.IssueClient()
	require.NoError(t, err)
	wrongCN, err := e.knot.IssueClientCN("intruder")
	require.NoError(t, err)
	csr, err := kv.CSR(ctx, e.knot.ClientID())
	require.NoError(t, err)
	expired, err := e.knot.SignCSRValidity(csr, time.Now().Add(-72*time.Hour), time.Now().Add(-time.Hour))
	require.NoError(t, err)
	weakKey := pkitest.CachedRSAKey(1024, 0)
	weakCert := pkitest.NewCA("weak ca").Issue(pkitest.Leaf{CN: e.knot.ClientID(), Key: weakKey})

	cases := []struct {
		name  string
		data  map[string]any
		want  error
		field string
	}{
		{"missing certificate", map[string]any{"private_key": goodKey}, vaultsource.ErrMissingField, "certificate"},
		{"missing key", map[string]any{"certificate": certPEM}, vaultsource.ErrMissingField, "private_key"},
		{"certificate is a number", map[string]any{"certificate": 42, "private_key": goodKey}, vaultsource.ErrFieldType, "certificate"},
		{"garbage PEM", map[string]any{"certificate": "not a certificate", "private_key": goodKey}, provider.ErrNotPEM, "certificate"},
		{"truncated PEM", map[string]any{"certificate": certPEM[:len(certPEM)/2], "private_key": goodKey}, provider.ErrTruncatedPEM, "certificate"},
		{"garbage key", map[string]any{"certificate": certPEM, "private_key": string(garbageKeyPEM)}, provider.ErrUnsupportedKey, "private_key"},
		{"mismatched pair", map[string]any{"certificate": string(provider.EncodeCertificates(other.Chain)), "private_key": goodKey}, provider.ErrKeyMismatch, "private_key"},
		{"wrong CN", map[string]any{"certificate": string(provider.EncodeCertificates(wrongCN.Chain)), "private_key": keyPEM(t, wrongCN)}, provider.ErrSubjectCN, ""},
		{"expired", map[string]any{"certificate": string(expired), "private_key": goodKey}, provider.ErrExpired, ""},
		{"RSA-1024", map[string]any{"certificate": string(pkitest.CertPEM(weakCert)), "private_key": string(pkitest.KeyPEM(weakKey))}, provider.ErrKeySize, ""},
	}
	type reason struct {
		sentinel string
		field    string
	}
	reasons := map[reason]string{}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.KVv2("secret").Put(ctx, path, tc.data)
			require.NoError(t, err)
			err = p.Refresh(ctx)
			require.ErrorIs(t, err, tc.want)
			var ve *vaultsource.Error
			if tc.field != "" {
				require.True(t, errors.As(err, &ve), "a source error names the field: %v", err)
				assert.Equal(t, tc.field, ve.Field)
				assert.Equal(t, "secret/data/"+path, ve.Path)
			}
			mu.Lock()
			last := hooked[len(hooked)-1]
			mu.Unlock()
			assert.ErrorIs(t, last, tc.want, "OnRefreshFailed saw it too")
			for _, line := range strings.Split(goodKey, "\n")[1:4] {
				assert.NotContains(t, err.Error(), line, "no key bytes in errors")
			}

			st := p.Status()
			assert.Equal(t, i+1, st.Failures)
			assert.True(t, st.Valid)
			assert.Equal(t, serialA, provider.SerialHex(st.Bundle.Leaf()), "last good certificate keeps serving")
			require.NoError(t, call(ctx))
			reqs := e.knot.Requests()
			assert.Equal(t, serialA, reqs[len(reqs)-1].ClientSerial)

			r := reason{sentinel: fmt.Sprint(tc.want), field: tc.field}
			if prev, dup := reasons[r]; dup {
				t.Errorf("%q and %q give the same error", prev, tc.name)
			}
			reasons[r] = tc.name
			t.Logf("%s -> %v", tc.name, err)
		})
	}

	// Good material again: the provider recovers (same certificate, new version).
	_, err = e.client.KVv2("secret").Put(ctx, path, map[string]any{"certificate": certPEM, "private_key": goodKey})
	require.NoError(t, err)
	require.NoError(t, p.Refresh(ctx))
	st := p.Status()
	assert.Zero(t, st.Failures)
	assert.Equal(t, serialA, provider.SerialHex(st.Bundle.Leaf()))
	assert.Equal(t, fmt.Sprint(2+len(cases)+1), st.Bundle.Version)
	assert.Equal(t, []string{serialA}, e.knot.Serials(), "Knot never saw another certificate")
}

// garbageKeyPEM is a PRIVATE KEY block whose body is not a key.
var garbageKeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0, 0, 0}})

package otelknotmtls_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/internal/pkitest"
	"github.com/knotmtls/knotmtls/otelknotmtls"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// fakeTransit answers GET transit/keys/knot (one rsa-2048 version with its
// certificate) and PUT transit/sign/knot (PKCS#1 v1.5), or 403 / a wrong
// signature when told to.
type fakeTransit struct {
	key    *rsa.PrivateKey
	chain  string
	forbid atomic.Bool
	garble atomic.Bool
}

func (f *fakeTransit) client(t *testing.T) *api.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/transit/keys/knot":
			der, err := x509.MarshalPKIXPublicKey(f.key.Public())
			require.NoError(t, err)
			writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
				"type": "rsa-2048", "latest_version": 1, "exportable": false,
				"keys": map[string]any{"1": map[string]any{
					"public_key":        string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
					"certificate_chain": f.chain,
				}},
			}})
		case "/v1/transit/sign/knot":
			if f.forbid.Load() {
				writeJSON(w, http.StatusForbidden, map[string]any{"errors": []string{"permission denied"}})
				return
			}
			var body struct{ Input string }
			if !assert.NoError(t, json.NewDecoder(r.Body).Decode(&body)) {
				return
			}
			digest, _ := base64.StdEncoding.DecodeString(body.Input)
			sig, err := rsa.SignPKCS1v15(rand.Reader, f.key, crypto.SHA256, digest)
			require.NoError(t, err)
			if f.garble.Load() {
				sig[0] ^= 0xff
			}
			writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
				"signature": "vault:v1:" + base64.StdEncoding.EncodeToString(sig)}})
		default:
			writeJSON(w, http.StatusNotFound, map[string]any{"errors": []string{}})
		}
	}))
	t.Cleanup(srv.Close)
	cfg := api.DefaultConfig()
	cfg.Address = srv.URL
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	require.NoError(t, err)
	c.SetToken("hvs.transit-token")
	return c
}

// TestTransitMetricsThroughPrometheus: signatures through a real Transit
// source land in the duration histogram by outcome, failures in the
// failures counter by reason.
func TestTransitMetricsThroughPrometheus(t *testing.T) {
	m := newMetrics(t)
	key := pkitest.CachedRSAKey(2048, 0)
	leaf := pkitest.NewCA("transit CA").Issue(pkitest.Leaf{CN: clientID, Key: key})
	f := &fakeTransit{key: key, chain: string(pkitest.CertPEM(leaf))}
	opt, err := otelknotmtls.TransitOption(m.mp)
	require.NoError(t, err)
	src, err := vaultsource.NewTransit(f.client(t), "transit", "knot", opt)
	require.NoError(t, err)
	b, err := src.Fetch(t.Context())
	require.NoError(t, err)

	digest := sha256.Sum256([]byte("handshake transcript"))
	var elapsed time.Duration // wall time of all signatures, one after the other
	sign := func() error {
		start := time.Now()
		defer func() { elapsed += time.Since(start) }()
		_, err := b.Key.Sign(rand.Reader, digest[:], crypto.SHA256)
		return err
	}
	for range 3 {
		require.NoError(t, sign())
	}
	f.forbid.Store(true)
	require.ErrorIs(t, sign(), vaultsource.ErrPermissionDenied)
	require.ErrorIs(t, sign(), vaultsource.ErrPermissionDenied)
	f.forbid.Store(false)
	f.garble.Store(true)
	require.ErrorIs(t, sign(), vaultsource.ErrBadSignature)

	got := m.gather(t)
	v, ok := value(got, "knotmtls_transit_sign_duration_seconds", "outcome", "success")
	require.True(t, ok, "histogram names: %v", names(got))
	assert.Equal(t, 3.0, v, "successful signatures")
	v, _ = value(got, "knotmtls_transit_sign_duration_seconds", "outcome", "failure")
	assert.Equal(t, 3.0, v, "failed signatures")
	var sum float64
	for _, s := range got["knotmtls_transit_sign_duration_seconds"] {
		assert.Positive(t, s.sum, "durations are recorded")
		sum += s.sum
	}
	assert.LessOrEqual(t, sum, elapsed.Seconds(), "in seconds, and no more than the signatures took")
	v, _ = value(got, "knotmtls_transit_sign_failures_total", "reason", "permission_denied")
	assert.Equal(t, 2.0, v)
	v, _ = value(got, "knotmtls_transit_sign_failures_total", "reason", "bad_signature")
	assert.Equal(t, 1.0, v)
	assert.Len(t, got["knotmtls_transit_sign_failures_total"], 2, "only the reasons seen")

	text := m.scrape(t)
	assert.Contains(t, text, "\nknotmtls_transit_sign_duration_seconds_bucket{")
	assert.Contains(t, text, "\nknotmtls_transit_sign_failures_total{")
	assert.NotContains(t, text, "hvs.transit-token")
	assert.NotContains(t, text, "transit/sign/knot", "no path in any label")
}

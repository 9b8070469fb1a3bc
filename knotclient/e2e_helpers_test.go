package knotclient_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
)

// rotatingSource is a provider.CertificateSource whose bundle a test swaps.
type rotatingSource struct {
	cur atomic.Pointer[provider.Bundle]
}

func (s *rotatingSource) Fetch(context.Context) (*provider.Bundle, error) { return s.cur.Load(), nil }

// countingGetter counts handshakes that ask for the client certificate.
// It embeds the provider, so it also has Notify.
type countingGetter struct {
	*provider.Provider
	calls atomic.Int64
}

func (g *countingGetter) GetClientCertificate(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
	g.calls.Add(1)
	return g.Provider.GetClientCertificate(cri)
}

// newProvider returns a provider over src that checks Knot's rules for the
// server's client_id and CA, closed at cleanup.
func newProvider(t testing.TB, srv *knottest.Server, src provider.CertificateSource, checkCN bool) *provider.Provider {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(srv.CA())
	req := provider.Requirements{Roots: roots}
	if checkCN {
		req.ClientID = srv.ClientID()
	}
	p, err := provider.New(src,
		provider.WithRequirements(req),
		provider.WithPollInterval(time.Hour),
		provider.WithLogger(discardLogger()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// knottestConfig is a client config for srv with the given certificates.
func knottestConfig(srv *knottest.Server, certs provider.ClientCertificateGetter) knotclient.Config {
	return knotclient.Config{
		ClientID:       srv.ClientID(),
		Secret:         knotclient.StaticSecret(srv.Secret()),
		Certificates:   certs,
		BaseURL:        srv.URL(),
		RootCAs:        srv.RootCAs(),
		RetryBaseDelay: time.Millisecond,
		RetryMaxDelay:  5 * time.Millisecond,
		Logger:         discardLogger(),
	}
}

func newKnottestClient(t testing.TB, srv *knottest.Server, certs provider.ClientCertificateGetter, mutate ...func(*knotclient.Config)) *knotclient.Client {
	t.Helper()
	cfg := knottestConfig(srv, certs)
	for _, m := range mutate {
		m(&cfg)
	}
	c, err := knotclient.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// issue returns a fresh client bundle from srv.
func issue(t testing.TB, srv *knottest.Server) *provider.Bundle {
	t.Helper()
	b, err := srv.IssueClient()
	require.NoError(t, err)
	return b
}

// encryptJWE encrypts payload to k as a compact JWE (RSA-OAEP-256 +
// A256GCM, kid in the protected header), the way Knot asks. knotclient
// leaves JWE encoding to the caller; this is the test's own encoder.
func encryptJWE(t testing.TB, k *knotclient.JWK, payload any) string {
	t.Helper()
	pub, err := k.PublicKey()
	require.NoError(t, err)
	plain, err := json.Marshal(payload)
	require.NoError(t, err)
	hdr, err := json.Marshal(map[string]string{"alg": k.Alg, "enc": "A256GCM", "kid": k.Kid})
	require.NoError(t, err)
	b64 := base64.RawURLEncoding.EncodeToString
	cek := make([]byte, 32)
	_, _ = rand.Read(cek)
	ek, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, cek, nil)
	require.NoError(t, err)
	block, err := aes.NewCipher(cek)
	require.NoError(t, err)
	gcm, err := cipher.NewGCM(block)
	require.NoError(t, err)
	iv := make([]byte, gcm.NonceSize())
	_, _ = rand.Read(iv)
	protected := b64(hdr)
	sealed := gcm.Seal(nil, iv, plain, []byte(protected))
	ct, tag := sealed[:len(sealed)-gcm.Overhead()], sealed[len(sealed)-gcm.Overhead():]
	return protected + "." + b64(ek) + "." + b64(iv) + "." + b64(ct) + "." + b64(tag)
}

// testCard is a card payload with a public test card number.
func testCard() map[string]any {
	return map[string]any{
		"user": map[string]any{
			"name":         map[string]string{"first_name": "Ada", "last_name": "Lovelace"},
			"phone_number": "+15555550100",
			"address": map[string]string{"street": "1 Main St", "city": "Austin", "region": "TX",
				"postal_code": "78701", "country": "US"},
		},
		"card": map[string]string{"number": "4242424242424242", "expiration": "12/2099", "cvv": "123"},
	}
}

// newCSR returns a Knot-conformant CSR (RSA-2048, SHA-256, CN = cn) and its key.
func newCSR(t testing.TB, cn string) ([]byte, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:            pkix.Name{CommonName: cn},
		SignatureAlgorithm: x509.SHA256WithRSA,
	}, key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), key
}

// responseHold keeps the next response after arm in flight (headers read,
// body not) until release is closed, so its connection stays busy.
type responseHold struct {
	armed   atomic.Bool
	held    chan struct{} // closed when the armed response is being held
	release chan struct{} // close to let it through
}

func (h *responseHold) arm() { h.armed.Store(true) }

// newHoldingClient returns a knotclient for srv whose connections are
// tracked by the returned dialer and whose next armed response is held.
func newHoldingClient(t *testing.T, srv *knottest.Server, p *provider.Provider) (*knotclient.Client, *trackingDialer, *responseHold) {
	t.Helper()
	dialer := &trackingDialer{}
	hold := &responseHold{held: make(chan struct{}), release: make(chan struct{})}
	c := newKnottestClient(t, srv, p, func(cfg *knotclient.Config) {
		// ForceAttemptHTTP2, as in knotclient's default transport: the
		// server decides between HTTP/1.1 and h2.
		cfg.Transport = &http.Transport{DialContext: dialer.DialContext, ForceAttemptHTTP2: true}
		cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				resp, err := rt.RoundTrip(r)
				if err == nil && hold.armed.CompareAndSwap(true, false) {
					close(hold.held)
					<-hold.release
				}
				return resp, err
			})
		}
	})
	return c, dialer, hold
}

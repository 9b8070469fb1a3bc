package knotclient_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
)

// signErr is a typed signer error, as vaultsource's *Error is: Temporary
// says whether waiting can cure it.
type signErr struct {
	temporary bool
	msg       string
}

var (
	errVaultDown = &signErr{temporary: true, msg: "vaultsource: sign transit/sign/knot: vault unavailable: no signature from Vault within the 5s sign timeout"}
	errDenied    = &signErr{msg: "vaultsource: sign transit/sign/knot: permission denied: the token is valid but its policy lacks \"update\""}
)

func (e *signErr) Error() string   { return e.msg }
func (e *signErr) Temporary() bool { return e.temporary }

// faultySigner fails its first fails signatures with err and records its
// errors the way vaultsource's Transit signer does.
type faultySigner struct {
	crypto.Signer
	err   error
	fails atomic.Int32
	signs atomic.Int32

	mu   sync.Mutex
	last error
}

func (s *faultySigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.signs.Add(1)
	if s.fails.Add(-1) >= 0 {
		s.mu.Lock()
		s.last = s.err
		s.mu.Unlock()
		return nil, s.err
	}
	return s.Signer.Sign(r, digest, opts)
}

func (s *faultySigner) SignError(text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last != nil && s.last.Error() == text {
		return s.last
	}
	return nil
}

// TestHandshakeSignFailures: a call whose TLS handshake failed at the client
// key's signature never reached Knot. The signer's typed error survives
// crypto/tls (TLS 1.3 keeps only its text, TLS 1.2 the error itself); a
// temporary one (Vault unavailable) is retried with backoff even for a call
// that is not idempotent, and succeeds once the signer is back; a permission
// problem is never retried.
func TestHandshakeSignFailures(t *testing.T) {
	tests := []struct {
		name      string
		err       *signErr
		fails     int32
		wantErr   error
		wantSigns int32 // handshakes that needed a signature
		wantSent  int   // requests Knot received
	}{
		{"unavailable, then back: retried", errVaultDown, 2, nil, 3, 1},
		{"unavailable throughout: attempts used up", errVaultDown, 100, errVaultDown, 3, 0},
		{"permission denied: not retried", errDenied, 100, errDenied, 1, 0},
	}
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		for _, tt := range tests {
			t.Run(tls.VersionName(version)+"/"+tt.name, func(t *testing.T) {
				srv := knottest.NewTestServer(t, knottest.WithTLSVersions(version, version))
				b := issue(t, srv)
				signer := &faultySigner{Signer: b.Key, err: tt.err}
				signer.fails.Store(tt.fails)
				fb, err := provider.NewBundle(b.Chain, signer, "faulty")
				require.NoError(t, err)
				c := newKnottestClient(t, srv, newProvider(t, srv, provider.Static(fb), true),
					func(cfg *knotclient.Config) { cfg.MaxAttempts = 3 })

				_, err = c.CreateSession(context.Background(), knotclient.CreateSessionRequest{
					Type: knotclient.SessionLink, ExternalUserID: "u"})
				assert.Equal(t, tt.wantSigns, signer.signs.Load(), "handshake signatures")
				assert.Len(t, srv.Requests(), tt.wantSent, "requests Knot received")
				if tt.wantErr == nil {
					require.NoError(t, err)
					return
				}
				require.ErrorIs(t, err, tt.wantErr, "the signer's typed error survives TLS")
				var se *knotclient.SignError
				require.ErrorAs(t, err, &se)
				var typed *signErr
				require.ErrorAs(t, err, &typed)
				assert.Equal(t, tt.err.temporary, typed.Temporary())
			})
		}
	}
}

// TestUnsentCallRetriedAfterDialFailure: a dial that fails sends nothing, so
// even a call that is not idempotent is retried; a call whose connection
// dropped after it was sent is not (TestUnsafeCallsAreNeverRetried).
func TestUnsentCallRetriedAfterDialFailure(t *testing.T) {
	srv := knottest.NewTestServer(t)
	var dials atomic.Int32
	d := &net.Dialer{}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) <= 2 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused")}
		}
		return d.DialContext(ctx, network, addr)
	}}
	c := newKnottestClient(t, srv, newProvider(t, srv, provider.Static(issue(t, srv)), true),
		func(cfg *knotclient.Config) { cfg.MaxAttempts = 3; cfg.Transport = tr })
	_, err := c.CreateSession(context.Background(), knotclient.CreateSessionRequest{Type: knotclient.SessionLink, ExternalUserID: "u"})
	require.NoError(t, err)
	assert.Equal(t, int32(3), dials.Load())
	assert.Len(t, srv.Requests(), 1, "sent exactly once")

}

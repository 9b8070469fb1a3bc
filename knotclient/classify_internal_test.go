package knotclient

import (
	"crypto/tls"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var errVaultDown = errors.New("vaultsource: sign transit/sign/knot: vault unavailable")

// recordingKey is a signer's key that keeps its last error, as
// vaultsource's Transit signer does.
type recordingKey struct{}

func (recordingKey) SignError(text string) error {
	if text == errVaultDown.Error() {
		return errVaultDown
	}
	return nil
}

type recordingGetter struct{}

func (recordingGetter) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return &tls.Certificate{PrivateKey: recordingKey{}}, nil
}

// TestClassifyAttemptSignFailure: a handshake whose signature failed is a
// SignError with the signer's typed error, also when the request had
// obtained a connection before (net/http redials for a request whose
// HTTP/2 connection was unusable, and the new handshake failed); other
// errors after a connection are left as they are.
func TestClassifyAttemptSignFailure(t *testing.T) {
	c := &Client{cfg: Config{Certificates: recordingGetter{}}}
	signFailed := errors.New(signFailure + errVaultDown.Error())
	other := errors.New("http2: server sent GOAWAY and closed the connection")
	for _, tc := range []struct {
		name    string
		err     error
		gotConn bool
		sign    bool
		notSent bool
	}{
		{"sign failure, no connection yet", signFailed, false, true, true},
		{"sign failure on a redial after a connection", signFailed, true, true, false},
		{"other error after a connection", other, true, false, false},
		{"other error before a connection", other, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.classifyAttempt(tc.err, tc.gotConn)
			var se *SignError
			require.Equal(t, tc.sign, errors.As(err, &se))
			if tc.sign {
				assert.ErrorIs(t, err, errVaultDown, "the signer's typed error")
				assert.Equal(t, tc.err.Error(), err.Error())
			}
			var ns *notSentError
			assert.Equal(t, tc.notSent, errors.As(err, &ns))
		})
	}
}

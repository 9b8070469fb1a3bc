package provider

import "errors"

// Sentinel errors for each of Knot's rules and each way key material can be
// malformed. Every check returns a [*CheckError] that wraps exactly one of
// them, so callers can branch with errors.Is and read the human detail with
// errors.As. No message ever contains key bytes.
var (
	// Input shape.
	ErrEmpty             = errors.New("empty input")
	ErrNotPEM            = errors.New("not PEM data")
	ErrTruncatedPEM      = errors.New("truncated or corrupt PEM")
	ErrEncryptedKey      = errors.New("encrypted private key")
	ErrUnsupportedKey    = errors.New("unsupported private key format")
	ErrNoKey             = errors.New("no private key")
	ErrNoCertificate     = errors.New("no certificate")
	ErrMalformedCert     = errors.New("malformed certificate")
	ErrMalformedCSR      = errors.New("malformed certificate request")
	ErrUnexpectedPEMType = errors.New("unexpected PEM block type")

	// Knot's rules.
	ErrKeyType            = errors.New("key is not RSA")
	ErrKeySize            = errors.New("RSA key size not allowed")
	ErrSignatureAlgorithm = errors.New("signature algorithm not allowed")
	ErrSubjectCN          = errors.New("subject CN does not match client_id")
	ErrKeyMismatch        = errors.New("private key does not match certificate")
	ErrExpired            = errors.New("certificate expired")
	ErrNotYetValid        = errors.New("certificate not yet valid")
	ErrChainOrder         = errors.New("certificate chain out of order")
	ErrUntrustedChain     = errors.New("certificate chain not trusted")
	ErrCSRSignature       = errors.New("certificate request signature invalid")
	ErrKeyUsage           = errors.New("certificate not valid for client authentication")
)

// CheckError reports a failed check or a malformed input. Err is one of the
// sentinel errors above; Detail says what was found and what to do about it.
type CheckError struct {
	Err    error
	Detail string
}

func (e *CheckError) Error() string {
	if e.Detail == "" {
		return "provider: " + e.Err.Error()
	}
	return "provider: " + e.Err.Error() + ": " + e.Detail
}

// Unwrap returns the sentinel error.
func (e *CheckError) Unwrap() error { return e.Err }

// ErrClosed is returned by a Provider after Close.
var ErrClosed = errors.New("provider: closed")

// ErrNoValidBundle is wrapped by the error a Provider returns when it has no
// bundle it may serve: none was ever fetched, or the last good one expired and
// refreshing failed.
var ErrNoValidBundle = errors.New("provider: no valid certificate available")

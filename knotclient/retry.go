package knotclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"time"

	cbackoff "github.com/cenkalti/backoff/v5"

	"github.com/knotmtls/knotmtls/internal/retryafter"
	"github.com/knotmtls/knotmtls/provider"
)

// retryableStatus reports whether a failed attempt of a call that is safe to
// repeat should be repeated: network errors (except certificate and TLS
// alert errors, which repeat identically), 429 and 5xx other than 501/505.
func retryableStatus(status int) bool {
	switch {
	case status == http.StatusTooManyRequests:
		return true
	case status == http.StatusNotImplemented, status == http.StatusHTTPVersionNotSupported:
		return false
	case status >= 500 && status <= 599:
		return true
	}
	return false
}

// retryableNetError classifies a transport error. parent is the caller's
// context: once it is done nothing is retried.
func retryableNetError(parent context.Context, err error) bool {
	if parent.Err() != nil {
		return false
	}
	var (
		verr  *tls.CertificateVerificationError
		alert tls.AlertError
		uae   x509.UnknownAuthorityError
		herr  x509.HostnameError
		cie   x509.CertificateInvalidError
		rhe   tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &verr), errors.As(err, &alert), errors.As(err, &uae),
		errors.As(err, &herr), errors.As(err, &cie), errors.As(err, &rhe):
		return false // the same handshake fails the same way again
	case errors.Is(err, provider.ErrNoValidBundle), errors.Is(err, provider.ErrClosed):
		return false // no certificate to present; the provider does its own backoff
	case errors.Is(err, errResponseTooLarge):
		return false
	}
	var se *SignError
	if errors.As(err, &se) {
		// The client key could not sign: retry only what its signer calls
		// temporary (Vault unavailable), never a permission or key problem.
		var tmp interface{ Temporary() bool }
		if se.Err != nil && errors.As(se.Err, &tmp) {
			return tmp.Temporary()
		}
		return se.Err == nil // a signer that records nothing: as before
	}
	if signerShaped(err) { // TLS 1.2 hands the signer's error through as is
		var tmp interface{ Temporary() bool }
		errors.As(err, &tmp)
		return tmp.Temporary()
	}
	// Remote TLS alerts sometimes arrive only as text (e.g. from the
	// record layer after the handshake, TLS 1.3 client-certificate refusal).
	if strings.Contains(err.Error(), "remote error: tls:") {
		return false
	}
	return true
}

// backoff returns the delay before attempt n+1 (n >= 1): base*2^(n-1),
// capped at max, with "equal jitter" (half fixed, half random): the
// shared cenkalti/backoff schedule centred on 3/4 of the step with a third
// of randomization, which spans [step/2, step].
func backoff(base, max time.Duration, n int) time.Duration {
	b := &cbackoff.ExponentialBackOff{
		InitialInterval:     base * 3 / 4,
		RandomizationFactor: 1.0 / 3,
		Multiplier:          2,
		MaxInterval:         max * 3 / 4,
	}
	b.Reset()
	d := b.NextBackOff()
	for i := 1; i < n && i < 64; i++ {
		d = b.NextBackOff()
	}
	return min(d, max)
}

// notSentError marks an attempt that failed before it obtained a
// connection (dial or TLS handshake): no byte of the request reached the
// server, so repeating it is safe even for a call that is not idempotent.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }

// traceConn returns req with a trace that records whether the transport
// obtained a connection for it.
func traceConn(req *http.Request) (*http.Request, *atomic.Bool) {
	got := new(atomic.Bool)
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { got.Store(true) }}
	return req.WithContext(httptrace.WithClientTrace(req.Context(), trace)), got
}

// signFailure is the text crypto/tls puts before a signer's error: it keeps
// only the text ("tls: failed to sign handshake: " + err.Error()).
const signFailure = "tls: failed to sign handshake: "

// signRecorder is implemented by signers that keep their recent errors
// (vaultsource's Transit signer): given the text crypto/tls kept, it
// returns the typed error, or nil.
type signRecorder interface {
	SignError(text string) error
}

// classifyAttempt turns the error of an attempt into what the retry logic
// and the caller need. A failure before a connection was obtained is marked
// as not sent; when it is the client key's signature that failed (TLS 1.3:
// crypto/tls kept only the signer's text; TLS 1.2: the signer's error
// itself), it becomes a [*SignError] carrying the signer's typed error.
//
// A sign failure is a SignError even when the request had obtained a
// connection: net/http redials for a request whose HTTP/2 connection turned
// out unusable (a server that closes connections after N requests), and it
// is that new connection's handshake that failed.
func (c *Client) classifyAttempt(err error, gotConn bool) error {
	text := err.Error()
	i := strings.Index(text, signFailure)
	if gotConn {
		if i < 0 {
			return err
		}
		if typed := c.signerError(text[i+len(signFailure):]); typed != nil {
			return &SignError{Err: typed, TLS: err}
		}
		return &SignError{TLS: err}
	}
	if i >= 0 {
		text = text[i+len(signFailure):]
	}
	if i >= 0 || signerShaped(err) {
		if typed := c.signerError(text); typed != nil {
			err = &SignError{Err: typed, TLS: err}
		} else if i >= 0 {
			err = &SignError{TLS: err}
		}
	}
	return &notSentError{err: err}
}

// signerShaped reports whether err looks like a signer's own error handed
// through by crypto/tls 1.2: it says whether it is temporary but is not a
// network error. Dial, certificate and provider errors never are, so the
// getter is not consulted for them.
func signerShaped(err error) bool {
	var tmp interface{ Temporary() bool }
	var ne net.Error
	return errors.As(err, &tmp) && !errors.As(err, &ne)
}

// signerError asks the current certificate's signer for the typed error
// whose text is text. The handshake got that certificate from the getter
// moments ago, so this is the cached one: an atomic load, no I/O.
func (c *Client) signerError(text string) error {
	cert, err := c.cfg.Certificates.GetClientCertificate(&tls.CertificateRequestInfo{})
	if err != nil || cert == nil {
		return nil
	}
	if r, ok := cert.PrivateKey.(signRecorder); ok {
		return r.SignError(text)
	}
	return nil
}

// retryAttempt reports whether a failed attempt (a transport error) of cl
// is repeated: a call safe to repeat on any retryable network error, any
// other call only when nothing of it was sent.
func retryAttempt(ctx context.Context, cl call, err error) bool {
	var ns *notSentError
	if !cl.retry && !errors.As(err, &ns) {
		return false
	}
	return retryableNetError(ctx, err)
}

// parseRetryAfter reads a Retry-After value: delta-seconds or an HTTP-date.
var parseRetryAfter = retryafter.Parse

// sleep waits d or until ctx is done or closed is closed (then it returns
// [ErrClosed]). It returns context.DeadlineExceeded at once, without
// waiting, when ctx's deadline falls before the wait would end.
func sleep(ctx context.Context, closed <-chan struct{}, d time.Duration) error {
	select {
	case <-closed:
		return ErrClosed
	default:
	}
	if d <= 0 {
		return ctx.Err()
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return context.DeadlineExceeded
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-closed:
		return ErrClosed
	}
}

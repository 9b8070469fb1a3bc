package knotclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

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
	// Remote TLS alerts sometimes arrive only as text (e.g. from the
	// record layer after the handshake, TLS 1.3 client-certificate refusal).
	if strings.Contains(err.Error(), "remote error: tls:") {
		return false
	}
	return true
}

// backoff returns the delay before attempt n+1 (n >= 1): base*2^(n-1),
// capped at max, with "equal jitter" (half fixed, half random).
func backoff(base, max time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}

// parseRetryAfter reads a Retry-After value: delta-seconds or an HTTP-date.
// ok is false when the header is absent or malformed. A date in the past
// gives 0.
func parseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(365*24*time.Hour/time.Second) {
			secs = int64(365 * 24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

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

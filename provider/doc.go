// Package provider turns a [CertificateSource] (Vault, files, anything that can
// produce a certificate and a signer) into a client certificate that is safe to
// present to Knot over mutual TLS.
//
// The data flows one way:
//
//	CertificateSource.Fetch -> *Bundle -> Provider (validate, cache, rotate)
//	  -> tls.Config.GetClientCertificate -> http.Transport -> Knot
//
// A [Provider] validates every bundle against Knot's rules ([Requirements])
// before it is used, serves the current one from an atomic pointer, refreshes
// ahead of expiry, polls for rotation, backs off on failure, and keeps serving
// the last good bundle until — and never after — its NotAfter.
//
// # Expiry, polling and backoff
//
// Validity always comes from the leaf certificate's NotBefore and NotAfter and
// the wall clock, never from [Bundle.NotAfter] and never from a remembered
// verdict: a bundle valid by the clock is served and one that is not is
// refused, whatever steps the clock took before. The handshake hook does not
// read the clock (that costs more than the rest of the hot path together):
// it trusts a hint that a timer clears at most a second after the clock was
// last read and well before NotAfter, after which the next handshake reads
// the clock again. A wall-clock step is therefore seen by handshakes within a
// second, and by [Provider.Bundle], [Provider.Certificate] and
// [Provider.Status] at once; the last 100 ms before NotAfter are decided by
// reading the clock on every handshake.
//
// While healthy, a background goroutine polls the source every poll interval
// ([WithPollInterval]); a [Versioner] source is asked for its cheap version
// and read in full only when that changed. After a failure (the source is
// down, refuses, returns a bundle Knot's rules refuse, or the served
// certificate expired with no newer version stored) the next attempts wait
// for an exponential backoff, 1 s doubling to 5 min with 10% jitter by
// default ([WithBackoff], [WithJitter]), implemented with
// github.com/cenkalti/backoff/v5, never shorter than a Retry-After the
// failure carries (an error with a RetryAfter() time.Duration method, up to
// the cap). Polls do not reset it and add no attempts;
// only a success does. Status.Failures counts the consecutive failures.
// [Provider.Refresh] and a [Watcher]'s change notice attempt at once, backoff
// or not.
//
// Hooks ([OnRotated], [OnRefreshFailed], [OnNearingExpiry],
// [Provider.Notify], [Provider.NotifyAttempt]) must not be nil; one that panics is recovered and
// logged once with its name, and the provider carries on.
//
// # Health
//
// [Status.Health] answers healthy, degraded or failing from the remaining
// lifetime, the consecutive failures and the class of the last error
// ([ErrorClass]), with thresholds in a [HealthPolicy]. For a readiness probe
// answer 503 only when it is [Failing] (no working certificate), and alert on
// [Degraded]; see the example of Status.Health.
//
// The checks in [Requirements] and the PEM helpers ([ParseCertificates],
// [ParsePrivateKey], [ParseBundle]) are usable on their own, for example by an
// operator tool that validates a certificate before storing it.
package provider

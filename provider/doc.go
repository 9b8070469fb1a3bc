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
// The checks in [Requirements] and the PEM helpers ([ParseCertificates],
// [ParsePrivateKey], [ParseBundle]) are usable on their own, for example by an
// operator tool that validates a certificate before storing it.
package provider

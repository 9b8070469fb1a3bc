package provider

import (
	"crypto/tls"
	"crypto/x509"
)

// ClientCertificateGetter is the hot-path half of a [Provider]: the function
// a tls.Config calls during each handshake. *Provider implements it.
type ClientCertificateGetter interface {
	GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error)
}

// MTLSClientConfig returns a client tls.Config that presents the certificate
// g serves. TLS 1.2 is the minimum version. roots verifies the server; nil
// means the system roots (what the real Knot hosts need).
func MTLSClientConfig(g ClientCertificateGetter, roots *x509.CertPool) *tls.Config {
	cfg := &tls.Config{RootCAs: roots}
	HookMTLSClientConfig(cfg, g)
	return cfg
}

// HookMTLSClientConfig sets cfg up to present the certificate g serves: it
// sets GetClientCertificate, clears static Certificates (they would never be
// used) and raises MinVersion to TLS 1.2 if it is lower. Everything else in
// cfg (roots, server name, cipher suites) is left as it is — including a
// KeyLogWriter, which writes session secrets that decrypt the traffic (never
// set one outside a debugging session), and InsecureSkipVerify (knotclient
// refuses both).
func HookMTLSClientConfig(cfg *tls.Config, g ClientCertificateGetter) {
	cfg.Certificates = nil
	cfg.GetClientCertificate = g.GetClientCertificate
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
}

package knottest

import (
	"crypto/tls"
	"log/slog"
	"time"
)

// Defaults used when no option overrides them.
const (
	// DefaultClientID is the client_id the server expects in Basic auth and
	// as the client certificate CN.
	DefaultClientID = "knot-test-client"
	// DefaultSecret is the secret the server expects in Basic auth.
	DefaultSecret = "knot-test-secret"
	// DefaultCertValidity is how long certificates issued by SignCSR stay
	// valid.
	DefaultCertValidity = 365 * 24 * time.Hour
)

type config struct {
	clientID     string
	secret       string
	minVersion   uint16
	maxVersion   uint16
	certValidity time.Duration
	logger       *slog.Logger
}

func defaultConfig() config {
	return config{
		clientID:     DefaultClientID,
		secret:       DefaultSecret,
		minVersion:   tls.VersionTLS12,
		certValidity: DefaultCertValidity,
		logger:       slog.New(slog.DiscardHandler),
	}
}

// Option configures a [Server].
type Option func(*config)

// WithClientID sets the client_id (default [DefaultClientID]): the Basic auth
// user name and the CN client certificates must carry.
func WithClientID(id string) Option {
	return func(c *config) { c.clientID = id }
}

// WithSecret sets the Basic auth secret (default [DefaultSecret]).
func WithSecret(secret string) Option {
	return func(c *config) { c.secret = secret }
}

// WithTLSVersions forces the TLS versions the server accepts, for example
// (tls.VersionTLS12, tls.VersionTLS12) for a TLS 1.2-only server or
// (tls.VersionTLS13, tls.VersionTLS13) for TLS 1.3 only. max 0 means the
// highest version Go supports. A min below TLS 1.2 makes NewServer fail.
func WithTLSVersions(min, max uint16) Option {
	return func(c *config) { c.minVersion, c.maxVersion = min, max }
}

// WithCertValidity sets how long certificates issued by SignCSR and
// IssueClient stay valid (default [DefaultCertValidity]).
func WithCertValidity(d time.Duration) Option {
	return func(c *config) { c.certValidity = d }
}

// WithLogger sets the logger for requests and handshake failures (default:
// discard). Lines carry method, path, status, client certificate serial and
// CN; never headers, bodies, keys or the secret.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

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
	http2        bool
	tickets      bool
	maxPerConn   int
}

func defaultConfig() config {
	return config{
		clientID:     DefaultClientID,
		secret:       DefaultSecret,
		minVersion:   tls.VersionTLS12,
		certValidity: DefaultCertValidity,
		logger:       slog.New(slog.DiscardHandler),
		http2:        true,
		tickets:      true,
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

// WithHTTP2 sets whether the server offers HTTP/2 (default true). With
// HTTP/2 on, ALPN offers "h2" then "http/1.1", so a client that asks for h2
// (as net/http does with ForceAttemptHTTP2) gets it and one that does not
// gets HTTP/1.1; WithHTTP2(false) serves HTTP/1.1 only. [Request.Proto]
// records what each request used.
func WithHTTP2(enabled bool) Option {
	return func(c *config) { c.http2 = enabled }
}

// WithSessionTickets sets whether the server issues TLS session tickets
// (default true), so that a client with a tls.ClientSessionCache resumes
// its next connections without a new handshake signature: TLS 1.3 PSK
// resumption carries the client certificate of the handshake that created
// the ticket over, with no CertificateVerify. Go servers accept a ticket for
// at most 7 days and never after the client certificate in it has expired.
// [Request.Resumed] and [Server.Handshakes] show what happened.
func WithSessionTickets(enabled bool) Option {
	return func(c *config) { c.tickets = enabled }
}

// WithMaxRequestsPerConn makes the server close each connection after it has
// answered n requests, the way a load balancer recycles connections: the
// n-th response carries "Connection: close" over HTTP/1.1 and is followed by
// a graceful GOAWAY over HTTP/2. Every new connection costs the client a
// handshake, which is what session resumption saves. 0 (the default) means
// no limit; a negative n makes NewServer fail.
func WithMaxRequestsPerConn(n int) Option {
	return func(c *config) { c.maxPerConn = n }
}

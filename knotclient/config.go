package knotclient

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/knotmtls/knotmtls/provider"
)

// Environment selects which Knot mTLS host the client talks to.
type Environment string

// Knot's environments. Development is Knot's test environment (there is no
// separate sandbox); credentials differ per environment.
const (
	Development Environment = "development"
	Production  Environment = "production"
)

// BaseURL returns the environment's mTLS API host, or "" for an unknown
// environment.
func (e Environment) BaseURL() string {
	switch e {
	case Development:
		return "https://mtls.development.knotapi.com"
	case Production:
		return "https://mtls.production.knotapi.com"
	}
	return ""
}

// Defaults applied by [New] to zero fields of [Config].
const (
	DefaultKnotVersion         = "2.0"
	DefaultTimeout             = 30 * time.Second
	DefaultMaxAttempts         = 3
	DefaultRetryBaseDelay      = 250 * time.Millisecond
	DefaultRetryMaxDelay       = 5 * time.Second
	DefaultMaxRetryAfter       = 30 * time.Second
	DefaultMaxIdleConnsPerHost = 16
	DefaultMaxPages            = 1000
)

// Config configures a [Client]. ClientID, Secret, Certificates and one of
// Environment or BaseURL are required; everything else has a default.
type Config struct {
	// ClientID is the Knot client_id: the Basic-auth user name and the CN
	// of the client certificate.
	ClientID string
	// Secret supplies the Knot secret (the Basic-auth password). Use
	// [StaticSecret] for a fixed value.
	Secret SecretSource
	// Certificates serves the client certificate for the mTLS handshake,
	// normally a *provider.Provider. If it also has a
	// Notify(func(old, new *provider.Bundle)) (stop func()) method, the
	// client subscribes to it and, on rotation, moves new requests to fresh
	// connections so they present the new certificate.
	Certificates provider.ClientCertificateGetter

	// Environment picks the Knot mTLS host. Ignored when BaseURL is set.
	Environment Environment
	// BaseURL overrides the host, e.g. a knottest server's URL. It must be
	// an https URL; a path prefix is kept.
	BaseURL string
	// RootCAs verifies the server certificate. Nil means the system roots,
	// which is what the real Knot hosts need.
	RootCAs *x509.CertPool

	// KnotVersion is sent as the Knot-Version header (default "2.0").
	KnotVersion string
	// UserAgent, if set, is prepended to the client's own User-Agent
	// ("knotmtls/<version> (+https://github.com/knotmtls/knotmtls) Go/<version>").
	UserAgent string

	// Timeout bounds each attempt of a call, from sending the request to
	// reading the whole response (default 30 s). The caller's context
	// bounds the whole call including retries.
	Timeout time.Duration
	// MaxAttempts bounds how many times a call that is safe to repeat is
	// sent (default 3; 1 disables retries). Calls that are not safe to
	// repeat are always sent once; see the package documentation.
	MaxAttempts int
	// RetryBaseDelay and RetryMaxDelay shape the exponential backoff between
	// attempts (defaults 250 ms and 5 s); each delay is jittered.
	RetryBaseDelay time.Duration
	RetryMaxDelay  time.Duration
	// MaxRetryAfter is the longest Retry-After the client waits out before
	// retrying (default 30 s). A longer one ends the call at once with an
	// [*Error] whose RetryAfter tells the caller when to come back.
	MaxRetryAfter time.Duration
	// MaxPages bounds how many pages the iterators fetch (default 1000).
	MaxPages int

	// Transport, if set, is cloned as the base of the client's transport
	// (dialer, proxy, timeouts, pool sizes, DisableKeepAlives). Its
	// TLSClientConfig, if any, is cloned and hooked up to Certificates
	// (TLS 1.2 at least). New refuses a Transport that would weaken or
	// bypass the client's TLS: TLSClientConfig.InsecureSkipVerify,
	// TLSClientConfig.KeyLogWriter (it writes the session secrets that
	// decrypt the Basic-auth secret and card data), or DialTLS /
	// DialTLSContext (they do the handshake instead of the client, without
	// its certificate or verification).
	Transport *http.Transport
	// WrapTransport, if set, wraps the client's transport once, when it is
	// built, e.g. otelhttp.NewTransport for tracing. The wrapper sees every
	// attempt, with the Authorization header set.
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// DisableSessionResumption turns TLS session resumption off. By default
	// the client keeps a TLS session cache (replacing any ClientSessionCache
	// in Transport.TLSClientConfig), so a new connection to a server that
	// issued a session ticket resumes without a new handshake signature: no
	// Vault Transit sign, and no dependency on Vault for that connection.
	// The trade-off: a resumed session carries the identity of the
	// handshake that created it, for as long as the server accepts the
	// ticket (at most 7 days by RFC 8446; Go servers also refuse one whose
	// client certificate has expired). On rotation the client starts an
	// empty cache, so the next new connection presents the new certificate.
	DisableSessionResumption bool

	// Logger receives retry and rotation events at Info/Debug level (default
	// slog.Default()). Log lines carry the operation and status, never the
	// secret, request bodies, session IDs or card data.
	Logger *slog.Logger

	// OnAttempt, if set, is called after every attempt of every call with
	// its outcome (see [AttemptEvent]), on the calling goroutine: keep it
	// short. It is the observation point for metrics (otelknotmtls).
	OnAttempt func(AttemptEvent)
}

// String describes cfg for logs and debugging without anything secret: the
// Secret prints as REDACTED whatever its type, Certificates as its type,
// BaseURL as its scheme and host only (a URL can carry credentials in its
// user info, path or query), and other fields only when set.
func (cfg Config) String() string {
	var b strings.Builder
	b.WriteString("knotclient.Config{")
	fmt.Fprintf(&b, "ClientID:%q", cfg.ClientID)
	if cfg.Environment != "" {
		fmt.Fprintf(&b, ", Environment:%q", string(cfg.Environment))
	}
	if cfg.BaseURL != "" {
		fmt.Fprintf(&b, ", BaseURL:%q", urlOrigin(cfg.BaseURL))
	}
	b.WriteString(", Secret:" + presence(cfg.Secret != nil, redacted))
	if cfg.Certificates != nil {
		fmt.Fprintf(&b, ", Certificates:%T", cfg.Certificates)
	} else {
		b.WriteString(", Certificates:<nil>")
	}
	for _, f := range []struct {
		name string
		set  bool
		val  string
	}{
		{"RootCAs", cfg.RootCAs != nil, "set"},
		{"KnotVersion", cfg.KnotVersion != "", fmt.Sprintf("%q", cfg.KnotVersion)},
		{"UserAgent", cfg.UserAgent != "", fmt.Sprintf("%q", cfg.UserAgent)},
		{"Timeout", cfg.Timeout != 0, cfg.Timeout.String()},
		{"MaxAttempts", cfg.MaxAttempts != 0, fmt.Sprint(cfg.MaxAttempts)},
		{"RetryBaseDelay", cfg.RetryBaseDelay != 0, cfg.RetryBaseDelay.String()},
		{"RetryMaxDelay", cfg.RetryMaxDelay != 0, cfg.RetryMaxDelay.String()},
		{"MaxRetryAfter", cfg.MaxRetryAfter != 0, cfg.MaxRetryAfter.String()},
		{"MaxPages", cfg.MaxPages != 0, fmt.Sprint(cfg.MaxPages)},
		{"Transport", cfg.Transport != nil, "set"},
		{"WrapTransport", cfg.WrapTransport != nil, "set"},
		{"OnAttempt", cfg.OnAttempt != nil, "set"},
		{"Logger", cfg.Logger != nil, "set"},
	} {
		if f.set {
			b.WriteString(", " + f.name + ":" + f.val)
		}
	}
	b.WriteString("}")
	return b.String()
}

// Format prints [Config.String] under every verb: fmt would otherwise print
// the fields, and a Secret reached that way cannot format itself.
func (cfg Config) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, cfg.String()) }

// LogValue describes cfg for slog handlers, as [Config.String] does.
func (cfg Config) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("client_id", cfg.ClientID),
		slog.String("secret", presence(cfg.Secret != nil, redacted)),
		slog.String("certificates", fmt.Sprintf("%T", cfg.Certificates)),
	}
	if cfg.Environment != "" {
		attrs = append(attrs, slog.String("environment", string(cfg.Environment)))
	}
	if cfg.BaseURL != "" {
		attrs = append(attrs, slog.String("base_url", urlOrigin(cfg.BaseURL)))
	}
	return slog.GroupValue(attrs...)
}

// urlOrigin returns the scheme and host of raw, dropping user info, path,
// query and fragment, or a placeholder when raw does not parse.
func urlOrigin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(not an absolute URL)"
	}
	return u.Scheme + "://" + u.Host
}

func presence(set bool, s string) string {
	if !set {
		return "<nil>"
	}
	return s
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// withDefaults validates cfg and returns a copy with defaults applied and the
// base URL resolved.
func (cfg Config) withDefaults() (Config, *url.URL, error) {
	if cfg.ClientID == "" {
		return cfg, nil, invalid("ClientID is required")
	}
	if strings.ContainsRune(cfg.ClientID, ':') || hasControl(cfg.ClientID) {
		return cfg, nil, invalid("ClientID must not contain ':' or control characters (it is the Basic-auth user name)")
	}
	if hasControl(cfg.KnotVersion) || hasControl(cfg.UserAgent) {
		return cfg, nil, invalid("KnotVersion and UserAgent must not contain control characters (they are header values)")
	}
	if cfg.Secret == nil {
		return cfg, nil, invalid("Secret is required")
	}
	if cfg.Certificates == nil {
		return cfg, nil, invalid("Certificates is required (Knot's mTLS hosts refuse connections without a client certificate)")
	}
	raw := cfg.BaseURL
	if raw == "" {
		raw = cfg.Environment.BaseURL()
		if raw == "" {
			if cfg.Environment == "" {
				return cfg, nil, invalid("Environment or BaseURL is required")
			}
			return cfg, nil, invalid("unknown Environment %q", cfg.Environment)
		}
	}
	// The errors below never repeat the URL: it may carry credentials.
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text quotes the whole URL
		}
		return cfg, nil, invalid("BaseURL does not parse: %v", err)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return cfg, nil, invalid("BaseURL must not carry user info, a query or a fragment")
	}
	if u.Scheme != "https" || u.Host == "" {
		return cfg, nil, invalid("BaseURL must be an absolute https URL, got scheme %q", u.Scheme)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	if err := checkTransport(cfg.Transport); err != nil {
		return cfg, nil, err
	}
	if cfg.KnotVersion == "" {
		cfg.KnotVersion = DefaultKnotVersion
	}
	if cfg.Timeout < 0 || cfg.MaxAttempts < 0 || cfg.RetryBaseDelay < 0 || cfg.RetryMaxDelay < 0 ||
		cfg.MaxRetryAfter < 0 || cfg.MaxPages < 0 {
		return cfg, nil, invalid("durations and counts must not be negative")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.RetryBaseDelay == 0 {
		cfg.RetryBaseDelay = DefaultRetryBaseDelay
	}
	if cfg.RetryMaxDelay == 0 {
		cfg.RetryMaxDelay = DefaultRetryMaxDelay
	}
	if cfg.RetryMaxDelay < cfg.RetryBaseDelay {
		cfg.RetryMaxDelay = cfg.RetryBaseDelay
	}
	if cfg.MaxRetryAfter == 0 {
		cfg.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if cfg.MaxPages == 0 {
		cfg.MaxPages = DefaultMaxPages
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, u, nil
}

// checkTransport refuses a base transport that would weaken or bypass the
// client's TLS.
func checkTransport(t *http.Transport) error {
	if t == nil {
		return nil
	}
	if t.DialTLSContext != nil || t.DialTLS != nil { //nolint:staticcheck // DialTLS is deprecated but still honoured by net/http
		return invalid("Transport.DialTLS and DialTLSContext are not allowed: the client does the TLS handshake itself, with its certificate and server verification")
	}
	if tc := t.TLSClientConfig; tc != nil {
		if tc.InsecureSkipVerify {
			return invalid("Transport.TLSClientConfig.InsecureSkipVerify is not allowed; set RootCAs instead")
		}
		if tc.KeyLogWriter != nil {
			return invalid("Transport.TLSClientConfig.KeyLogWriter is not allowed: it writes TLS session secrets")
		}
	}
	return nil
}

// hasControl reports whether s has a character that cannot appear in an
// HTTP header value (net/http would refuse every request carrying it).
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f })
}

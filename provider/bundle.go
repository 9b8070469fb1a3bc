package provider

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Bundle is one client identity: a certificate chain (leaf first) and the
// private key of the leaf as a [crypto.Signer]. The signer may be an in-memory
// key or a remote signer such as a Vault Transit key; nothing above the source
// can tell the difference.
//
// A Bundle is immutable once handed to a [Provider]; do not modify it. The
// Provider does not modify it either, so one Bundle may be shared by several
// providers.
type Bundle struct {
	// Chain is the certificate chain, leaf first. It must hold at least the leaf.
	Chain []*x509.Certificate
	// Key is the private key of Chain[0].
	Key crypto.Signer
	// Version identifies this material at its source (a KV version, a
	// Transit key version, a file checksum). Sources that offer a cheap
	// version check (see [Versioner]) report the same string from both.
	Version string
	// NotAfter is the leaf's NotAfter, filled in by NewBundle for the
	// caller's convenience. A [Provider] never reads it: every validity
	// decision uses Chain[0].NotAfter, so a wrong value here cannot make an
	// expired certificate look valid.
	NotAfter time.Time
}

// NewBundle builds a Bundle from a chain (leaf first), a signer and a version.
// It does not validate Knot's rules; a [Provider] does that with
// [Requirements.CheckBundle].
func NewBundle(chain []*x509.Certificate, key crypto.Signer, version string) (*Bundle, error) {
	if len(chain) == 0 || chain[0] == nil {
		return nil, &CheckError{Err: ErrNoCertificate, Detail: "the bundle holds no certificate"}
	}
	if key == nil {
		return nil, &CheckError{Err: ErrNoKey, Detail: "the bundle holds no private key"}
	}
	return &Bundle{Chain: chain, Key: key, Version: version, NotAfter: chain[0].NotAfter}, nil
}

// Leaf returns the leaf certificate, or nil for an empty bundle.
func (b *Bundle) Leaf() *x509.Certificate {
	if b == nil || len(b.Chain) == 0 {
		return nil
	}
	return b.Chain[0]
}

// TLSCertificate returns the bundle as a [tls.Certificate] with Leaf set.
// The result shares the signer; it is built once per bundle by the Provider.
func (b *Bundle) TLSCertificate() *tls.Certificate {
	c := &tls.Certificate{PrivateKey: b.Key, Leaf: b.Leaf()}
	for _, cert := range b.Chain {
		c.Certificate = append(c.Certificate, cert.Raw)
	}
	return c
}

// String describes the bundle for logs: subject, serial, NotAfter and
// version. It never includes key material.
func (b *Bundle) String() string {
	leaf := b.Leaf()
	if leaf == nil {
		return "bundle(empty)"
	}
	return fmt.Sprintf("bundle(cn=%q serial=%s not_after=%s version=%q)",
		leaf.Subject.CommonName, SerialHex(leaf), leaf.NotAfter.UTC().Format(time.RFC3339), b.Version)
}

// LogValue describes the bundle for log/slog (subject, serial, NotAfter,
// version), so that neither the text nor the JSON handler ever walks into
// the key.
func (b Bundle) LogValue() slog.Value {
	leaf := b.Leaf()
	if leaf == nil {
		return slog.StringValue("bundle(empty)")
	}
	return slog.GroupValue(slog.String("cn", leaf.Subject.CommonName), slog.String("serial", SerialHex(leaf)),
		slog.Time("not_after", leaf.NotAfter.UTC()), slog.String("version", b.Version))
}

// MarshalJSON encodes the same description as [Bundle.LogValue]: encoding a
// Bundle (or a [Status] holding one) never emits the private key.
func (b Bundle) MarshalJSON() ([]byte, error) {
	leaf := b.Leaf()
	if leaf == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(struct {
		CN       string    `json:"cn"`
		Serial   string    `json:"serial"`
		NotAfter time.Time `json:"not_after"`
		Version  string    `json:"version"`
	}{leaf.Subject.CommonName, SerialHex(leaf), leaf.NotAfter.UTC(), b.Version})
}

// SerialHex formats a certificate serial number the way openssl (`openssl
// x509 -serial`) and nginx ($ssl_client_serial) print it: upper-case hex, no
// colons, an even number of digits (a leading zero is kept: 047B49..., never
// 47B49...), so a serial knotmtls logs can be found in a server's logs. A
// negative serial (invalid, but parseable) gets a leading "-".
func SerialHex(c *x509.Certificate) string {
	if c == nil || c.SerialNumber == nil {
		return ""
	}
	b := c.SerialNumber.Bytes()
	if len(b) == 0 {
		return "00"
	}
	s := strings.ToUpper(hex.EncodeToString(b))
	if c.SerialNumber.Sign() < 0 {
		return "-" + s
	}
	return s
}

// CertificateSource produces the current client identity. Fetch may be slow
// (network, disk); a [Provider] is its only caller and does all caching,
// validation and timing. Sources do not cache.
type CertificateSource interface {
	Fetch(ctx context.Context) (*Bundle, error)
}

// Versioner is an optional interface a [CertificateSource] implements when it
// can tell the current version of its material more cheaply than a Fetch (a
// Vault KV metadata read, a file stat). The Provider polls Version and fetches
// only when it differs from the version it serves.
type Versioner interface {
	Version(ctx context.Context) (string, error)
}

// SourceFunc adapts a function to a [CertificateSource].
type SourceFunc func(ctx context.Context) (*Bundle, error)

// Fetch calls f(ctx).
func (f SourceFunc) Fetch(ctx context.Context) (*Bundle, error) { return f(ctx) }

// Static returns a source that always returns b. It is meant for tests and for
// callers that manage rotation themselves. b is never modified, so several
// providers may share it.
func Static(b *Bundle) CertificateSource {
	return SourceFunc(func(context.Context) (*Bundle, error) {
		if b == nil {
			return nil, errors.New("provider: static source holds no bundle")
		}
		return b, nil
	})
}

// Watcher is an optional interface for sources that notice changes
// themselves (fsnotify on a file, a Vault Agent sink). The Provider runs
// Watch in its own goroutine with a context it cancels on Close; Watch calls
// changed whenever the material may have changed and returns once ctx is
// done. The Provider's poll interval remains the fallback.
type Watcher interface {
	Watch(ctx context.Context, changed func()) error
}

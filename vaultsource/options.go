package vaultsource

import (
	"context"
	"fmt"
	"time"
)

// Relogger is what the sources need from the Vault login machinery: a way to
// obtain a fresh token after Vault answered 403 (a revoked or expired token
// looks exactly like a missing policy). It may be called concurrently, from
// TLS handshakes through the Transit signer too, so implementations should
// coalesce concurrent calls. The Auth type of this package satisfies it.
type Relogger interface {
	Relogin(ctx context.Context) error
}

// Fields names the KV secret fields that hold the client identity.
// An empty member means its default (see [DefaultFields]).
type Fields struct {
	// Certificate holds the leaf certificate PEM; it may be followed by the
	// rest of the chain. Default "certificate".
	Certificate string
	// PrivateKey holds the leaf's private key PEM (PKCS#8, PKCS#1 or SEC1,
	// unencrypted). Default "private_key".
	PrivateKey string
	// Chain optionally holds the issuing chain after the leaf, as one PEM
	// string or a list of PEM strings (the shape Vault PKI's ca_chain has).
	// Default "ca_chain".
	Chain string
	// PendingPrivateKey holds a key staged by [KV.Provision] with
	// [WithRotate] while the current certificate keeps serving; it becomes
	// PrivateKey when its certificate is imported. Default
	// "pending_private_key".
	PendingPrivateKey string
}

// DefaultFields are the field names used unless [WithFields] says otherwise.
// They follow the names Vault's PKI engine uses for the same material.
var DefaultFields = Fields{
	Certificate:       "certificate",
	PrivateKey:        "private_key",
	Chain:             "ca_chain",
	PendingPrivateKey: "pending_private_key",
}

// DefaultSignTimeout bounds each Transit signature made during a TLS
// handshake (crypto.Signer has no context).
const DefaultSignTimeout = 10 * time.Second

type config struct {
	relogin     Relogger
	fields      Fields
	kvVersion   int
	noMetadata  bool
	keyVersion  int
	signTimeout time.Duration
	force       bool
	rotate      bool
}

func newConfig(opts []Option) (config, error) {
	c := config{fields: DefaultFields, kvVersion: 2, signTimeout: DefaultSignTimeout}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return config{}, err
		}
	}
	return c, nil
}

// Option configures a source or a provisioning call. Options that do not
// apply to a call are ignored by it.
type Option func(*config) error

func optionError(format string, args ...any) error {
	return &Error{Op: "configure", Err: ErrInvalidArgument, Detail: fmt.Sprintf(format, args...)}
}

// WithRelogin sets what is called when Vault answers 403: the request is
// retried once after r.Relogin succeeds. If the client's token changed while
// the request was under way (a concurrent caller's re-login), the request is
// retried once with that token instead of logging in again. Without it a
// 403 is reported as [ErrPermissionDenied] at once.
func WithRelogin(r Relogger) Option {
	return func(c *config) error { c.relogin = r; return nil }
}

// WithFields overrides KV field names; empty members keep their defaults.
func WithFields(f Fields) Option {
	return func(c *config) error {
		if f.Certificate != "" {
			c.fields.Certificate = f.Certificate
		}
		if f.PrivateKey != "" {
			c.fields.PrivateKey = f.PrivateKey
		}
		if f.Chain != "" {
			c.fields.Chain = f.Chain
		}
		if f.PendingPrivateKey != "" {
			c.fields.PendingPrivateKey = f.PendingPrivateKey
		}
		names := []string{c.fields.Certificate, c.fields.PrivateKey, c.fields.Chain, c.fields.PendingPrivateKey}
		for i := range names {
			for j := i + 1; j < len(names); j++ {
				if names[i] == names[j] {
					return optionError("field name %q is used twice", names[i])
				}
			}
		}
		return nil
	}
}

// WithKVVersion selects the KV engine version of the mount: 2 (default) or 1.
func WithKVVersion(v int) Option {
	return func(c *config) error {
		if v != 1 && v != 2 {
			return optionError("KV version must be 1 or 2, got %d", v)
		}
		c.kvVersion = v
		return nil
	}
}

// WithoutMetadata makes a KV v2 source's Version read the secret's data
// instead of its metadata, for tokens that may read <mount>/data/<path> but
// not <mount>/metadata/<path>. Each poll then transfers the secret.
func WithoutMetadata() Option {
	return func(c *config) error { c.noMetadata = true; return nil }
}

// WithKeyVersion pins the Transit key version a [Transit] source presents
// and signs with (default: the latest version that has a certificate
// chain), and the version provisioning and import work on.
func WithKeyVersion(v int) Option {
	return func(c *config) error {
		if v < 1 {
			return optionError("transit key version must be at least 1, got %d", v)
		}
		c.keyVersion = v
		return nil
	}
}

// WithSignTimeout bounds each Transit signature (default
// [DefaultSignTimeout]).
func WithSignTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return optionError("sign timeout must be positive, got %s", d)
		}
		c.signTimeout = d
		return nil
	}
}

// WithForce lets provisioning replace an existing key: a KV key is
// overwritten (check-and-set against the version just read; KV v2 keeps the
// old version) together with its now useless certificate, a Transit key is
// rotated to a new version. The certificate in use stops matching, so prefer
// [WithRotate] for a live KV identity.
func WithForce() Option {
	return func(c *config) error { c.force = true; return nil }
}

// WithRotate makes [KV.Provision] stage the new key in the pending field
// while the current certificate and key keep serving; [KV.ImportCertificate]
// promotes it once its certificate arrives. With [WithForce] it also
// replaces a key already staged. For Transit, WithRotate adds a key version
// like WithForce: the source keeps presenting the older version until the new
// version's certificate is imported.
func WithRotate() Option {
	return func(c *config) error { c.rotate = true; return nil }
}

package vaultsource

import (
	"context"
	"fmt"
	"time"
)

// Auth is what the sources need from the Vault login machinery:
// vaultauth.Auth and vaultauth.Proxy satisfy it. HandleDenied is called
// after Vault answered 403 to a request for path that needs capability.
// invalidToken is true when Vault's answer itself said the token is invalid
// (Vault adds "invalid token" to such a 403); otherwise a revoked or expired
// token looks exactly like a missing policy and the Auth has to find out
// which it is (lookup-self). It returns
// nil when the request should be retried once with the client's current
// token; an error (for example "the token is valid, its policy denies the
// path") ends the request with [ErrPermissionDenied]. It may be called
// concurrently, from TLS handshakes through the Transit signer too, so
// implementations must coalesce calls: one diagnosis and at most one login
// per backoff step, whatever the number of callers.
type Auth interface {
	HandleDenied(ctx context.Context, path, capability string, invalidToken bool) error
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
	// [ProvisionRotate] while the current certificate keeps serving; it
	// becomes PrivateKey when its certificate is imported. Default
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
// handshake (crypto.Signer has no context), independently of the Vault
// client's own timeout: a frozen Vault fails the handshake within it.
const DefaultSignTimeout = 5 * time.Second

type commonConfig struct {
	auth Auth
}

type kvConfig struct {
	commonConfig
	fields     Fields
	kvVersion  int
	noMetadata bool
}

type transitConfig struct {
	commonConfig
	keyVersion  int
	signTimeout time.Duration
	onSign      []func(SignEvent)
}

// KVOption configures a [KV] source ([NewKV], [ProvisionKV]).
type KVOption interface {
	applyKV(*kvConfig) error
}

// TransitOption configures a [Transit] source ([NewTransit],
// [ProvisionTransit]).
type TransitOption interface {
	applyTransit(*transitConfig) error
}

// Option configures both sources: it is a [KVOption] and a
// [TransitOption]. An option that does not apply to a source is not of its
// option type, so it does not compile there.
type Option interface {
	KVOption
	TransitOption
}

type kvOption func(*kvConfig) error

func (o kvOption) applyKV(c *kvConfig) error { return o(c) }

type transitOption func(*transitConfig) error

func (o transitOption) applyTransit(c *transitConfig) error { return o(c) }

type commonOption func(*commonConfig) error

func (o commonOption) applyKV(c *kvConfig) error           { return o(&c.commonConfig) }
func (o commonOption) applyTransit(c *transitConfig) error { return o(&c.commonConfig) }

func newKVConfig(opts []KVOption) (kvConfig, error) {
	c := kvConfig{fields: DefaultFields, kvVersion: 2}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.applyKV(&c); err != nil {
			return kvConfig{}, err
		}
	}
	return c, nil
}

func newTransitConfig(opts []TransitOption) (transitConfig, error) {
	c := transitConfig{signTimeout: DefaultSignTimeout}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.applyTransit(&c); err != nil {
			return transitConfig{}, err
		}
	}
	return c, nil
}

func optionError(format string, args ...any) error {
	return &Error{Op: "configure", Err: ErrInvalidArgument, Detail: fmt.Sprintf(format, args...)}
}

// WithAuth joins a source to the Vault login (a vaultauth.Auth or
// vaultauth.Proxy on the same client): when Vault answers 403, the request
// is retried once if a.HandleDenied says so. If the client's token changed
// while the request was under way (another caller's re-login), the request
// is retried once with that token without asking a. Without WithAuth a 403
// is reported as [ErrPermissionDenied] at once.
func WithAuth(a Auth) Option {
	return commonOption(func(c *commonConfig) error {
		if a == nil {
			return optionError("nil Auth")
		}
		c.auth = a
		return nil
	})
}

// WithFields overrides KV field names; empty members keep their defaults.
func WithFields(f Fields) KVOption {
	return kvOption(func(c *kvConfig) error {
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
	})
}

// WithKVVersion selects the KV engine version of the mount: 2 (default) or 1.
func WithKVVersion(v int) KVOption {
	return kvOption(func(c *kvConfig) error {
		if v != 1 && v != 2 {
			return optionError("KV version must be 1 or 2, got %d", v)
		}
		c.kvVersion = v
		return nil
	})
}

// WithoutMetadata makes a KV v2 source's Version read the secret's data
// instead of its metadata, for tokens that may read <mount>/data/<path> but
// not <mount>/metadata/<path>. Each poll then transfers the secret.
func WithoutMetadata() KVOption {
	return kvOption(func(c *kvConfig) error { c.noMetadata = true; return nil })
}

// WithKeyVersion pins the Transit key version a [Transit] source presents
// and signs with (default: the latest version that has a certificate
// chain), and the version CSR and import work on.
func WithKeyVersion(v int) TransitOption {
	return transitOption(func(c *transitConfig) error {
		if v < 1 {
			return optionError("transit key version must be at least 1, got %d", v)
		}
		c.keyVersion = v
		return nil
	})
}

// WithSignTimeout bounds each Transit signature (default
// [DefaultSignTimeout]), re-login and retry included. A signature that does
// not finish in time fails with [ErrUnavailable], and so does the TLS
// handshake that asked for it.
func WithSignTimeout(d time.Duration) TransitOption {
	return transitOption(func(c *transitConfig) error {
		if d <= 0 {
			return optionError("sign timeout must be positive, got %s", d)
		}
		c.signTimeout = d
		return nil
	})
}

// SignEvent describes one Transit signature, passed to the functions
// registered with [OnSign]. It holds no digest and no signature.
type SignEvent struct {
	// KeyVersion is the Transit key version that was asked to sign.
	KeyVersion int
	// Duration is the whole signature: Vault's answer, a re-login and retry
	// if one was needed, and the local verification.
	Duration time.Duration
	// Err is nil on success, else the [*Error] the signer returned (test it
	// with errors.Is: [ErrUnavailable], [ErrPermissionDenied], ...).
	Err error
}

// OnSign registers fn to be called after every signature the source's
// signer makes (each full TLS handshake that presents a Transit-backed
// certificate), successful or not, on the handshake's goroutine: keep it
// short and never block. It is the observation point for metrics (see the
// otelknotmtls module); without it nothing is measured.
func OnSign(fn func(SignEvent)) TransitOption {
	return transitOption(func(c *transitConfig) error {
		if fn == nil {
			return optionError("nil OnSign hook")
		}
		c.onSign = append(c.onSign, fn)
		return nil
	})
}

// Mode says what provisioning does when a key is already stored. It is an
// argument of [KV.Provision] and [Transit.Provision], not source
// configuration.
type Mode int

// Provisioning modes.
const (
	// ProvisionNew creates the first key; a stored key is refused with
	// [ErrKeyExists].
	ProvisionNew Mode = iota
	// ProvisionRotate stages a new key while the current certificate keeps
	// serving: for KV in the pending field ([KV.ImportCertificate] promotes
	// it), for Transit as a new key version (the source keeps presenting
	// the older version until the new one's certificate is imported). On an
	// empty store it creates the first key.
	ProvisionRotate
	// ProvisionForce replaces the stored key: KV overwrites key and
	// certificate (check-and-set against the version read; KV v2 keeps the
	// old version), Transit adds a key version like ProvisionRotate. The
	// certificate in use stops matching a KV key, so prefer ProvisionRotate
	// for a live KV identity.
	ProvisionForce
	// ProvisionExisting writes nothing and returns the CSR of the stored
	// key (the staged key first), like CSR.
	ProvisionExisting
)

// String names the mode: "new", "rotate", "force", "existing".
func (m Mode) String() string {
	switch m {
	case ProvisionNew:
		return "new"
	case ProvisionRotate:
		return "rotate"
	case ProvisionForce:
		return "force"
	case ProvisionExisting:
		return "existing"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

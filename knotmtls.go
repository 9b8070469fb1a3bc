package knotmtls

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"unicode"

	"github.com/hashicorp/vault/api"

	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultauth"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// DefaultSecretField is the field of the KV secret [Config.SecretKVPath]
// that holds the Knot secret (the CLI's --secret-field default).
const DefaultSecretField = "secret"

// Config says how [New] wires a [Client]. ClientID, Environment, one Vault
// login (Login or Proxy) and one Knot secret (Secret or SecretKVPath) are
// required; everything else has the conventional default. Every piece can
// be replaced: the Vault client by [WithVaultClient], Login by any api.AuthMethod, the
// Vault source by Source, and Knot carries every knotclient setting.
//
// Printing a Config (any fmt verb, slog) shows locations and which pieces
// are set, never a token, a credential or the Knot secret.
type Config struct {
	// ClientID is the Knot client_id: the certificate's CN and the
	// Basic-auth user name.
	ClientID string
	// Environment is the Knot environment, development or production. It
	// picks Knot's host (unless Knot.BaseURL is set) and the conventional
	// Vault locations.
	Environment knotclient.Environment

	// The Vault client is api.NewClient(api.DefaultConfig()), which reads
	// VAULT_ADDR, VAULT_AGENT_ADDR, VAULT_CACERT, VAULT_NAMESPACE and the
	// other standard variables, unless New gets [WithVaultClient]. (It is
	// an option, not a field: a caller's struct holding a Config in an
	// unexported field would otherwise print the client's token under %s.)

	// Login logs in to Vault and is kept valid by a vaultauth.Auth:
	// vaultauth.Token, vaultauth.TokenFile, vaultauth.AppRole,
	// vaultauth.Kubernetes, vaultauth.Userpass or any api.AuthMethod.
	// Exactly one of Login and Proxy is required unless Source is set and
	// SecretKVPath is not (then Vault is not used at all).
	Login api.AuthMethod
	// Proxy says the client reaches Vault through a local Vault Proxy or
	// Agent with use_auto_auth_token (VAULT_AGENT_ADDR): no login, a
	// vaultauth.Proxy diagnoses 403s.
	Proxy bool
	// AuthOptions configure the vaultauth.Auth of Login (backoff, logger,
	// event hooks).
	AuthOptions []vaultauth.Option
	// ProxyOptions configure the vaultauth.Proxy of Proxy.
	ProxyOptions []vaultauth.ProxyOption

	// Transit keeps the key in Vault Transit (the key never leaves Vault;
	// every new TLS handshake signs through Vault) instead of KV.
	Transit bool
	// KVMount, KVPath and KVVersion locate the KV secret holding key and
	// certificate (defaults vaultsource.DefaultKVMount,
	// vaultsource.DefaultKVPath(env, client_id), 2). KVMount and KVVersion
	// also locate SecretKVPath.
	KVMount   string
	KVPath    string
	KVVersion int
	// KVOptions are extra options of the KV source (field names, ...).
	KVOptions []vaultsource.KVOption
	// TransitMount and TransitKey locate the Transit key (defaults
	// vaultsource.DefaultTransitMount,
	// vaultsource.DefaultTransitKey(env, client_id)). Transit only.
	TransitMount string
	TransitKey   string
	// TransitOptions are extra options of the Transit source (key version,
	// sign timeout).
	TransitOptions []vaultsource.TransitOption
	// Source replaces the Vault source (for example a filesource.Source).
	// It excludes Transit and the KV and Transit location settings.
	Source provider.CertificateSource

	// ProviderOptions are extra options of the provider (poll interval,
	// hooks, logger); the client_id requirement is always added.
	ProviderOptions []provider.Option

	// Secret supplies the Knot secret, for example
	// knotclient.StaticSecret(os.Getenv("KNOT_SECRET")).
	Secret knotclient.SecretSource
	// SecretKVPath reads the Knot secret once, in New, from this KV secret
	// path inside KVMount (field SecretField), instead of Secret.
	SecretKVPath string
	// SecretField is the field of SecretKVPath (default
	// [DefaultSecretField]).
	SecretField string

	// Knot is the base of the Knot client's configuration: BaseURL and
	// RootCAs (a knottest server), Timeout, retries, Transport,
	// WrapTransport, Logger... New fills in ClientID, Environment, Secret
	// and Certificates; setting those here is refused.
	Knot knotclient.Config
}

// Option is an option of [New].
type Option func(*options)

type options struct {
	vault    *api.Client
	vaultEnv []string // problems of api.DefaultConfig, when New builds the client
}

// vaultEnvProblems reports what is wrong with the Vault client settings
// api.DefaultConfig read: a variable it could not parse, and
// VAULT_SKIP_VERIFY, which New refuses (the token and the key would go to
// whoever can intercept the connection).
func vaultEnvProblems(dc *api.Config) []string {
	var p []string
	if dc.Error != nil {
		p = append(p, "the VAULT_* environment is invalid: "+dc.Error.Error())
	}
	if tr, ok := dc.HttpClient.Transport.(*http.Transport); ok && tr.TLSClientConfig != nil && tr.TLSClientConfig.InsecureSkipVerify {
		p = append(p, "VAULT_SKIP_VERIFY is set: Vault's TLS certificate would not be verified; unset it and set VAULT_CACERT to Vault's CA (or pass your own client with WithVaultClient)")
	}
	return p
}

// WithVaultClient makes New use client (its address, TLS, namespace,
// headers) instead of api.NewClient(api.DefaultConfig()). The login sets
// its token; Close leaves its connections alone.
func WithVaultClient(client *api.Client) Option { return func(o *options) { o.vault = client } }

// ConfigError is a Config (or an environment, see [ConfigFromEnv]) that
// [New] refused before any I/O. It lists every problem found, not only the
// first. errors.Is(err, [ErrInvalidConfig]) matches it.
type ConfigError struct {
	// Problems says what is missing or contradictory, one entry each.
	Problems []string
}

// ErrInvalidConfig is matched by every [*ConfigError].
var ErrInvalidConfig = errors.New("knotmtls: invalid configuration")

// Error lists every problem on one line.
func (e *ConfigError) Error() string {
	return "knotmtls: invalid configuration: " + strings.Join(e.Problems, "; ")
}

// Is makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// SetupError is a failed step of [New] after the configuration was
// accepted: Step names it ("vault client", "vault login", "knot secret",
// "source", "provider", "first certificate", "knot client") and Err is the
// cause, with the typed errors of vaultauth, vaultsource, provider and
// knotclient reachable through errors.Is and errors.As.
type SetupError struct {
	Step string
	Err  error
}

// Error names the step and the cause.
func (e *SetupError) Error() string { return "knotmtls: " + e.Step + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *SetupError) Unwrap() error { return e.Err }

// Setup steps of a [SetupError].
const (
	StepVaultClient      = "vault client"
	StepVaultLogin       = "vault login"
	StepKnotSecret       = "knot secret"
	StepSource           = "source"
	StepProvider         = "provider"
	StepFirstCertificate = "first certificate"
	StepKnotClient       = "knot client"
)

// problems collects what is wrong with a configuration.
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &ConfigError{Problems: p}
}

// usesVault reports whether the configuration needs a Vault client.
func (cfg *Config) usesVault() bool { return cfg.Source == nil || cfg.SecretKVPath != "" }

// validate checks cfg without I/O and lists every problem.
func (cfg *Config) validate(o *options) error {
	p := problems(o.vaultEnv)
	switch {
	case cfg.ClientID == "":
		p.add("ClientID is required (the client_id Knot gave you)")
	case strings.ContainsFunc(cfg.ClientID, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' || r == ':'
	}):
		p.add("ClientID %q contains whitespace, a control character, '/' or ':'", cfg.ClientID)
	}
	switch cfg.Environment {
	case knotclient.Development, knotclient.Production:
	case "":
		p.add("Environment is required: development or production")
	default:
		p.add("Environment %q: want development or production", cfg.Environment)
	}
	if cfg.usesVault() {
		switch {
		case cfg.Login != nil && cfg.Proxy:
			p.add("Login and Proxy exclude each other: log in yourself, or let a Vault Proxy hold the token")
		case cfg.Login == nil && !cfg.Proxy:
			p.add("a Vault login is required: set Login (vaultauth.Token, TokenFile, AppRole, Kubernetes, Userpass) or Proxy")
		}
	} else if cfg.Login != nil || cfg.Proxy || o.vault != nil {
		p.add("WithVaultClient, Login and Proxy are unused with Source and without SecretKVPath: drop them")
	}
	if len(cfg.AuthOptions) > 0 && cfg.Login == nil {
		p.add("AuthOptions apply only with Login")
	}
	if len(cfg.ProxyOptions) > 0 && !cfg.Proxy {
		p.add("ProxyOptions apply only with Proxy")
	}
	if cfg.Source != nil {
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"Transit", cfg.Transit}, {"KVPath", cfg.KVPath != ""},
			{"KVOptions", len(cfg.KVOptions) > 0}, {"TransitMount", cfg.TransitMount != ""},
			{"TransitKey", cfg.TransitKey != ""}, {"TransitOptions", len(cfg.TransitOptions) > 0},
		} {
			if f.set {
				p.add("%s does not apply with Source (Source replaces the Vault source)", f.name)
			}
		}
	} else if cfg.Transit {
		if cfg.KVPath != "" || len(cfg.KVOptions) > 0 {
			p.add("KVPath and KVOptions do not apply with Transit (the key is the Transit key TransitKey)")
		}
	} else if cfg.TransitMount != "" || cfg.TransitKey != "" || len(cfg.TransitOptions) > 0 {
		p.add("TransitMount, TransitKey and TransitOptions apply only with Transit (without it the key is in the KV secret KVPath)")
	}
	if (cfg.Source != nil || cfg.Transit) && cfg.SecretKVPath == "" && (cfg.KVMount != "" || cfg.KVVersion != 0) {
		p.add("KVMount and KVVersion locate the KV identity or SecretKVPath: unused with Source or Transit and without SecretKVPath")
	}
	if cfg.KVVersion != 0 && cfg.KVVersion != 1 && cfg.KVVersion != 2 {
		p.add("KVVersion %d: want 1 or 2", cfg.KVVersion)
	}
	switch {
	case cfg.Secret != nil && cfg.SecretKVPath != "":
		p.add("Secret and SecretKVPath exclude each other: the Knot secret comes from one place")
	case cfg.Secret == nil && cfg.SecretKVPath == "":
		p.add("the Knot secret is required: set Secret or SecretKVPath")
	}
	if cfg.SecretField != "" && cfg.SecretKVPath == "" {
		p.add("SecretField applies only with SecretKVPath")
	}
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"ClientID", cfg.Knot.ClientID != ""}, {"Environment", cfg.Knot.Environment != ""},
		{"Secret", cfg.Knot.Secret != nil}, {"Certificates", cfg.Knot.Certificates != nil},
	} {
		if f.set {
			p.add("Knot.%s is set by New: leave it empty (use Config.%s, or build the knotclient.Client yourself)", f.name, f.name)
		}
	}
	return p.err()
}

// location returns where the identity lives, with defaults applied.
func (cfg *Config) location() (kind, mount, name string, kvVersion int) {
	env := string(cfg.Environment)
	kvVersion = cfg.KVVersion
	if kvVersion == 0 {
		kvVersion = 2
	}
	if cfg.Transit {
		mount, name = strings.Trim(cfg.TransitMount, "/"), strings.Trim(cfg.TransitKey, "/")
		if mount == "" {
			mount = vaultsource.DefaultTransitMount
		}
		if name == "" {
			name = vaultsource.DefaultTransitKey(env, cfg.ClientID)
		}
		return "transit", mount, name, kvVersion
	}
	mount, name = cfg.kvMount(), strings.Trim(cfg.KVPath, "/")
	if name == "" {
		name = vaultsource.DefaultKVPath(env, cfg.ClientID)
	}
	return "kv", mount, name, kvVersion
}

func (cfg *Config) kvMount() string {
	if m := strings.Trim(cfg.KVMount, "/"); m != "" {
		return m
	}
	return vaultsource.DefaultKVMount
}

// String describes cfg without any token, credential or secret: the
// locations, and for each replaceable piece whether it is set.
func (cfg Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "knotmtls.Config{ClientID:%q, Environment:%q", cfg.ClientID, string(cfg.Environment))
	switch {
	case cfg.Source != nil:
		fmt.Fprintf(&b, ", Source:%T", cfg.Source)
	default:
		kind, mount, name, v := cfg.location()
		if kind == "transit" {
			fmt.Fprintf(&b, ", Transit:%s/keys/%s", mount, name)
		} else {
			fmt.Fprintf(&b, ", KV:v%d %s/%s", v, mount, name)
		}
	}
	switch {
	case cfg.Proxy:
		b.WriteString(", Proxy:true")
	case cfg.Login != nil:
		fmt.Fprintf(&b, ", Login:%T", cfg.Login)
	}
	if cfg.SecretKVPath != "" {
		fmt.Fprintf(&b, ", SecretKVPath:%q", cfg.SecretKVPath)
	} else {
		b.WriteString(", Secret:" + presence(cfg.Secret != nil, "REDACTED"))
	}
	b.WriteString(", Knot:" + cfg.Knot.String() + "}")
	return b.String()
}

// Format prints [Config.String] under every verb.
func (cfg Config) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, cfg.String()) }

// LogValue describes cfg for slog as [Config.String] does.
func (cfg Config) LogValue() slog.Value { return slog.StringValue(cfg.String()) }

func presence(set bool, s string) string {
	if !set {
		return "<nil>"
	}
	return s
}

// Client is a Knot API client over mTLS with its Vault login, certificate
// source and provider, built by [New] or [NewFromEnv]. Its methods return
// the pieces, for everything the composition does not cover; do not close
// them one by one, call [Client.Close].
//
// The pieces are behind one pointer, so a Client printed in any way (a
// copy, or inside a caller's struct where fmt cannot call its methods)
// shows addresses at most, never the Vault token the Vault client holds.
type Client struct{ p *pieces }

type pieces struct {
	desc  string
	knot  *knotclient.Client
	certs *provider.Provider
	auth  *vaultauth.Auth
	proxy *vaultauth.Proxy
	vault *api.Client

	closeOnce sync.Once
	closers   []func() error // in the order they were opened
	closeErr  error
}

// Knot returns the Knot API client.
func (c Client) Knot() *knotclient.Client { return c.p.knot }

// Certificates returns the provider that serves, validates and rotates the
// client certificate (Status, Health, Notify).
func (c Client) Certificates() *provider.Provider { return c.p.certs }

// Auth returns the Vault login that keeps the token valid (Status,
// Relogin), or nil with Proxy or without Vault.
func (c Client) Auth() *vaultauth.Auth { return c.p.auth }

// Proxy returns the Vault Proxy mode's denial handler, or nil unless
// Config.Proxy.
func (c Client) Proxy() *vaultauth.Proxy { return c.p.proxy }

// Vault returns the Vault client, or nil when Vault is not used.
func (c Client) Vault() *api.Client { return c.p.vault }

// New wires a Knot client from cfg: it checks cfg (a [*ConfigError] listing
// every problem, before any I/O), builds or takes the Vault client, logs in
// (vaultauth.Auth.Start) or sets up the Vault Proxy mode, reads the Knot
// secret when SecretKVPath is set, opens the KV or Transit source at the
// conventional location, starts the provider and fetches the first
// certificate (so a missing or invalid identity fails here, as a
// [*SetupError] wrapping the vaultsource or provider error), and builds the
// knotclient.Client. On failure everything opened so far is closed.
func New(ctx context.Context, cfg Config, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	// The Vault client's settings are checked with the rest: reading them
	// (VAULT_* variables, CA files) does no network I/O.
	var dc *api.Config
	if cfg.usesVault() && o.vault == nil {
		dc = api.DefaultConfig()
		o.vaultEnv = vaultEnvProblems(dc)
	}
	if err := cfg.validate(&o); err != nil {
		return nil, err
	}
	c := &Client{p: &pieces{desc: describe(&cfg)}}
	p := c.p
	fail := func(step string, err error) (*Client, error) {
		_ = c.Close()
		return nil, &SetupError{Step: step, Err: err}
	}

	var srcAuth vaultsource.Auth
	if cfg.usesVault() {
		vc := o.vault
		if vc == nil {
			var err error
			if vc, err = api.NewClient(dc); err != nil {
				return fail(StepVaultClient, err)
			}
			hc := dc.HttpClient
			p.closers = append(p.closers, func() error { hc.CloseIdleConnections(); return nil })
		}
		p.vault = vc
		if cfg.Proxy {
			px, err := vaultauth.NewProxy(vc, cfg.ProxyOptions...)
			if err != nil {
				return fail(StepVaultLogin, err)
			}
			p.proxy, srcAuth = px, px
		} else {
			a, err := vaultauth.New(vc, cfg.Login, cfg.AuthOptions...)
			if err != nil {
				return fail(StepVaultLogin, err)
			}
			p.closers = append(p.closers, a.Close)
			p.auth, srcAuth = a, a
			if err := a.Start(ctx); err != nil {
				return fail(StepVaultLogin, err)
			}
		}
	}

	secret := cfg.Secret
	if cfg.SecretKVPath != "" {
		s, err := readSecret(ctx, p.vault, &cfg)
		if err != nil {
			return fail(StepKnotSecret, err)
		}
		secret = knotclient.StaticSecret(s)
	}

	src := cfg.Source
	if src == nil {
		var err error
		if src, err = openSource(p.vault, &cfg, srcAuth); err != nil {
			return fail(StepSource, err)
		}
	}
	popts := append([]provider.Option{provider.WithRequirements(provider.Requirements{ClientID: cfg.ClientID})},
		cfg.ProviderOptions...)
	certs, err := provider.New(src, popts...)
	if err != nil {
		return fail(StepProvider, err)
	}
	p.closers = append(p.closers, certs.Close)
	p.certs = certs
	if _, err := certs.Bundle(ctx); err != nil {
		return fail(StepFirstCertificate, err)
	}

	kc := cfg.Knot
	kc.ClientID, kc.Environment, kc.Secret, kc.Certificates = cfg.ClientID, cfg.Environment, secret, certs
	knot, err := knotclient.New(kc)
	if err != nil {
		return fail(StepKnotClient, err)
	}
	p.closers = append(p.closers, knot.Close)
	p.knot = knot
	return c, nil
}

// openSource opens the KV or Transit source cfg locates.
func openSource(vc *api.Client, cfg *Config, auth vaultsource.Auth) (provider.CertificateSource, error) {
	kind, mount, name, kvVersion := cfg.location()
	if kind == "transit" {
		opts := append([]vaultsource.TransitOption{vaultsource.WithAuth(auth)}, cfg.TransitOptions...)
		return vaultsource.NewTransit(vc, mount, name, opts...)
	}
	opts := append([]vaultsource.KVOption{vaultsource.WithAuth(auth), vaultsource.WithKVVersion(kvVersion)},
		cfg.KVOptions...)
	return vaultsource.NewKV(vc, mount, name, opts...)
}

// readSecret reads the Knot secret from the KV secret cfg.SecretKVPath.
// Errors name the path and field, never the value.
func readSecret(ctx context.Context, vc *api.Client, cfg *Config) (string, error) {
	mount, path := cfg.kvMount(), strings.Trim(cfg.SecretKVPath, "/")
	_, _, _, kvVersion := cfg.location()
	field := cfg.SecretField
	if field == "" {
		field = DefaultSecretField
	}
	var (
		sec     *api.KVSecret
		err     error
		apiPath = mount + "/" + path
	)
	if kvVersion == 1 {
		sec, err = vc.KVv1(mount).Get(ctx, path)
	} else {
		apiPath = mount + "/data/" + path
		sec, err = vc.KVv2(mount).Get(ctx, path)
	}
	var re *api.ResponseError
	switch {
	case errors.Is(err, api.ErrSecretNotFound):
		return "", fmt.Errorf("no secret stored at %s: %w", apiPath, vaultsource.ErrSecretNotFound)
	case errors.As(err, &re) && re.StatusCode == http.StatusForbidden:
		return "", fmt.Errorf("read %s: the token needs the \"read\" capability: %w", apiPath, vaultsource.ErrPermissionDenied)
	case err != nil:
		return "", fmt.Errorf("read %s: %w: %w", apiPath, vaultsource.ErrUnavailable, err)
	}
	v, _ := sec.Data[field].(string)
	if v == "" {
		return "", fmt.Errorf("%s has no string field %q holding the Knot secret: %w", apiPath, field, vaultsource.ErrMissingField)
	}
	return v, nil
}

// describe is the Client's String: client, environment, location, login.
func describe(cfg *Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "knotmtls.Client(%s, %s", cfg.ClientID, cfg.Environment)
	if cfg.Source != nil {
		fmt.Fprintf(&b, ", source %T", cfg.Source)
	} else {
		kind, mount, name, v := cfg.location()
		if kind == "transit" {
			fmt.Fprintf(&b, ", Vault Transit %s/keys/%s", mount, name)
		} else {
			fmt.Fprintf(&b, ", Vault KV v%d %s/%s", v, mount, name)
		}
	}
	switch {
	case cfg.Proxy:
		b.WriteString(", via Vault Proxy")
	case cfg.Login != nil:
		b.WriteString(", login " + methodName(cfg.Login))
	}
	b.WriteString(")")
	return b.String()
}

// methodName describes a login method: vaultauth's methods by their String
// (which names the method and redacts its credentials), any other by its
// type only, since its String may print credentials.
func methodName(m api.AuthMethod) string {
	t := reflect.TypeOf(m)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if _, ok := m.(fmt.Stringer); ok && t.PkgPath() == vaultauthPkg {
		return fmt.Sprint(m)
	}
	return fmt.Sprintf("%T", m)
}

var vaultauthPkg = reflect.TypeFor[vaultauth.Auth]().PkgPath()

// String names the client_id, environment, location and login method; never
// a token or secret.
func (c Client) String() string {
	if c.p == nil {
		return "knotmtls.Client(<nil>)"
	}
	return c.p.desc
}

// Format prints [Client.String] under every verb.
func (c Client) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// LogValue describes c for slog as [Client.String] does.
func (c Client) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Close closes the Knot client, the provider, the Vault login and the idle
// connections of a Vault client New built, in that order (the reverse of
// their opening), and waits for their goroutines. It is idempotent and
// returns the first error.
func (c Client) Close() error {
	p := c.p
	if p == nil {
		return nil
	}
	p.closeOnce.Do(func() {
		for i := len(p.closers) - 1; i >= 0; i-- {
			if err := p.closers[i](); err != nil && p.closeErr == nil {
				p.closeErr = err
			}
		}
	})
	return p.closeErr
}

package cli

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/vault/api"

	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// Default locations: the rule lives in vaultsource (DefaultKVMount,
// DefaultKVPath, ...), shared with the root package knotmtls.
const (
	DefaultKVMount      = vaultsource.DefaultKVMount
	DefaultTransitMount = vaultsource.DefaultTransitMount
)

// DefaultKVPath is the KV secret path used when --kv-path is not given
// (vaultsource.DefaultKVPath).
func DefaultKVPath(env, clientID string) string { return vaultsource.DefaultKVPath(env, clientID) }

// DefaultTransitKey is the Transit key name used when --transit-key is not
// given (vaultsource.DefaultTransitKey).
func DefaultTransitKey(env, clientID string) string {
	return vaultsource.DefaultTransitKey(env, clientID)
}

// Version is the version of the knotmtls module in this binary, or "devel".
func Version() string { return knotclient.Version }

// target says which client identity a command works on and where in Vault it
// lives.
type target struct {
	clientID     string
	env          string
	transit      bool
	kvMount      string
	kvPath       string
	kvVersion    int
	transitMount string
	transitKey   string
	keyVersion   int
}

func (t *target) register(fs *flag.FlagSet) {
	fs.StringVar(&t.clientID, "client-id", "", "Knot `client_id`: the certificate's subject CN (required)")
	fs.StringVar(&t.env, "env", "", "Knot `environment`: development or production (required)")
	fs.BoolVar(&t.transit, "transit", false, "keep the key inside Vault Transit (never exported) instead of KV")
	fs.StringVar(&t.kvMount, "kv-mount", DefaultKVMount, "KV secrets engine `mount`")
	fs.StringVar(&t.kvPath, "kv-path", "", "KV secret `path` (default knot/<env>/<client-id>)")
	fs.IntVar(&t.kvVersion, "kv-version", 2, "KV engine `version` of --kv-mount: 2 or 1")
	fs.StringVar(&t.transitMount, "transit-mount", DefaultTransitMount, "Transit secrets engine `mount`")
	fs.StringVar(&t.transitKey, "transit-key", "", "Transit key `name` (default knot-<env>-<client-id>)")
	fs.IntVar(&t.keyVersion, "key-version", 0, "Transit key `version` to work on (default: the latest one; for import, the one the certificate belongs to)")
}

// validate checks the flags and fills in derived defaults.
func (t *target) validate() error {
	if t.clientID == "" {
		return usagef("--client-id is required (the client_id Knot gave you)")
	}
	for _, r := range t.clientID {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' || r == ':' {
			return usagef("--client-id %q contains whitespace, a control character, '/' or ':'", t.clientID)
		}
	}
	switch t.env {
	case "":
		return usagef("--env is required: development or production")
	case string(knotclient.Development), string(knotclient.Production):
	default:
		return usagef("--env %q: want development or production", t.env)
	}
	if t.kvVersion != 1 && t.kvVersion != 2 {
		return usagef("--kv-version %d: want 1 or 2", t.kvVersion)
	}
	if t.keyVersion < 0 {
		return usagef("--key-version must not be negative")
	}
	if t.kvPath == "" {
		t.kvPath = DefaultKVPath(t.env, t.clientID)
	}
	if t.transitKey == "" {
		t.transitKey = DefaultTransitKey(t.env, t.clientID)
	}
	t.kvMount = strings.Trim(t.kvMount, "/")
	t.kvPath = strings.Trim(t.kvPath, "/")
	t.transitMount = strings.Trim(t.transitMount, "/")
	return nil
}

func (t *target) requirements() provider.Requirements {
	return provider.Requirements{ClientID: t.clientID}
}

// store is the part of a vaultsource KV or Transit the commands use.
type store interface {
	provider.CertificateSource
	provider.Versioner
	Provision(ctx context.Context, clientID string, mode vaultsource.Mode) ([]byte, error)
	CSR(ctx context.Context, clientID string) ([]byte, error)
	ImportCertificate(ctx context.Context, req provider.Requirements, certPEM, chainPEM []byte) (vaultsource.Imported, error)
}

// open returns the KV or Transit store of t with opts.
func (t *target) open(client *api.Client, opts ...vaultsource.Option) (store, error) {
	if t.transit {
		var topts []vaultsource.TransitOption
		if t.keyVersion > 0 {
			topts = append(topts, vaultsource.WithKeyVersion(t.keyVersion))
		}
		for _, o := range opts {
			topts = append(topts, o)
		}
		return vaultsource.NewTransit(client, t.transitMount, t.transitKey, topts...)
	}
	kopts := []vaultsource.KVOption{vaultsource.WithKVVersion(t.kvVersion)}
	for _, o := range opts {
		kopts = append(kopts, o)
	}
	return vaultsource.NewKV(client, t.kvMount, t.kvPath, kopts...)
}

// location describes where t keeps the identity, without a version.
func (t *target) location() StoreLocation {
	if t.transit {
		return StoreLocation{Kind: "transit", Mount: t.transitMount, Key: t.transitKey}
	}
	return StoreLocation{Kind: "kv", Mount: t.kvMount, Path: t.kvPath, KVVersion: t.kvVersion}
}

// StoreLocation says where an identity lives in Vault. It names paths and
// versions only, never key material.
type StoreLocation struct {
	// Kind is "kv" or "transit".
	Kind string `json:"kind"`
	// Mount is the secrets engine mount.
	Mount string `json:"mount"`
	// Path is the KV secret path inside Mount (KV only).
	Path string `json:"path,omitempty"`
	// KVVersion is the KV engine version, 1 or 2 (KV only).
	KVVersion int `json:"kv_version,omitempty"`
	// Version is the KV v2 secret version ("7") or, for KV v1, a hash of
	// the stored fields ("sha256:..."), of the material described (KV only).
	Version string `json:"version,omitempty"`
	// Key is the Transit key name (Transit only).
	Key string `json:"key,omitempty"`
	// KeyVersion is the Transit key version whose certificate is described
	// (Transit only).
	KeyVersion int `json:"key_version,omitempty"`
}

// String describes the location on one line, e.g.
// "Vault KV v2 secret/knot/development/acme (version 3)".
func (l StoreLocation) String() string {
	if l.Kind == "transit" {
		s := fmt.Sprintf("Vault Transit key %s/keys/%s", l.Mount, l.Key)
		if l.KeyVersion > 0 {
			s += fmt.Sprintf(" (key version %d)", l.KeyVersion)
		}
		return s
	}
	s := fmt.Sprintf("Vault KV v%d %s/%s", l.KVVersion, l.Mount, l.Path)
	if l.Version != "" {
		s += fmt.Sprintf(" (version %s)", l.Version)
	}
	return s
}

// withVersion returns l with the version a source reported: the KV version
// as is, the Transit key version parsed from "transit:<key>:v<N>:<hash>".
func (l StoreLocation) withVersion(v string) StoreLocation {
	if l.Kind != "transit" {
		l.Version = v
		return l
	}
	for _, part := range strings.Split(v, ":") {
		if n, err := strconv.Atoi(strings.TrimPrefix(part, "v")); err == nil && strings.HasPrefix(part, "v") {
			l.KeyVersion = n
		}
	}
	return l
}

// ParseDays parses a duration that may be given in days or weeks ("30d",
// "2w", "1.5d") as well as anything time.ParseDuration accepts ("720h").
func ParseDays(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if num, ok := strings.CutSuffix(s, suffix); ok {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil || f < 0 || f > 100*365 {
				return 0, fmt.Errorf("cli: invalid duration %q: want e.g. 30d, 2w or 720h", s)
			}
			return time.Duration(f * float64(unit)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("cli: invalid duration %q: want e.g. 30d, 2w or 720h", s)
	}
	return d, nil
}

// daysFlag is a flag.Value for ParseDays durations.
type daysFlag struct{ d *time.Duration }

func (f daysFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return ""
	}
	return formatDays(*f.d)
}

func (f daysFlag) Set(s string) error {
	d, err := ParseDays(s)
	if err != nil {
		return err
	}
	*f.d = d
	return nil
}

// formatDays prints a duration as whole days when it is one ("30d").
func formatDays(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

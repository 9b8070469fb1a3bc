package vaultauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"
	"github.com/hashicorp/vault/api/auth/userpass"
)

// DefaultTokenFilePollInterval is how often a [TokenFile] checks its file
// for a new token when PollInterval is zero.
const DefaultTokenFilePollInterval = time.Second

// maxTokenFileSize bounds what is read from a token file.
const maxTokenFileSize = 64 << 10

// Compile-time checks that every method is an api.AuthMethod.
var (
	_ api.AuthMethod = staticToken{}
	_ api.AuthMethod = (*TokenFile)(nil)
	_ api.AuthMethod = namedMethod{}
	_ api.AuthMethod = perLogin{}
)

// Token returns a method that uses token as is: a "login" looks the
// token up (auth/token/lookup-self, allowed by Vault's default policy) to
// learn its TTL and whether it is renewable. [Auth] renews a renewable token
// until its max TTL and does not watch a token that never expires (TTL 0,
// such as a dev root token) or that cannot be renewed: logging in again
// would return the same token. Once it expires or is revoked every login
// fails.
func Token(token string) api.AuthMethod { return staticToken{token: &token} }

// staticToken holds the token behind a pointer: a caller's struct that keeps
// the method in an unexported field is printed by fmt without calling
// String, and then shows an address, not the token.
type staticToken struct{ token *string }

// Login looks the token up.
func (s staticToken) Login(ctx context.Context, client *api.Client) (*api.Secret, error) {
	if s.token == nil || *s.token == "" {
		return nil, fmt.Errorf("vaultauth: static token: %w", ErrEmptyToken)
	}
	return lookupToken(ctx, client, *s.token)
}

func (staticToken) authMethodName() string { return "static token" }
func (staticToken) fixedToken() bool       { return true }
func (staticToken) externalToken() bool    { return true }

// String never prints the token.
func (staticToken) String() string { return "vaultauth.Token(redacted)" }

// GoString never prints the token.
func (s staticToken) GoString() string { return s.String() }

// TokenFile is a method that reads a Vault token from a file, typically a
// Vault Agent file sink (plain, not wrapped or encrypted). Each login reads
// the file again, trims surrounding white space and looks the token up
// (auth/token/lookup-self) to learn its TTL. An [Auth] using a TokenFile also
// polls the file every PollInterval and logs in again when its content
// changes, so a token the agent re-issued is picked up within one interval.
// A renewable token is also renewed by [Auth], which is harmless next to an
// agent that renews it too; when renewal ends Auth reads the file again.
//
// A TokenFile remembers the content it last read: give each [Auth] its own.
type TokenFile struct {
	// Path of the token file.
	Path string
	// PollInterval between checks for a changed file; zero means
	// [DefaultTokenFilePollInterval].
	PollInterval time.Duration

	mu   sync.Mutex
	last [sha256.Size]byte // digest of the token last read, never the token
	seen bool
}

// Login reads the token from the file and looks it up.
func (f *TokenFile) Login(ctx context.Context, client *api.Client) (*api.Secret, error) {
	token, err := readTokenFile(f.Path)
	if err != nil {
		return nil, err
	}
	f.remember(token)
	return lookupToken(ctx, client, token)
}

// Watch polls the file until ctx ends and calls changed when it holds a
// token other than the one last read. A missing, unreadable or empty file
// (for example while it is being rewritten) is not a change. Watch returns
// nil when ctx ends.
func (f *TokenFile) Watch(ctx context.Context, changed func()) error {
	interval := f.PollInterval
	if interval <= 0 {
		interval = DefaultTokenFilePollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		token, err := readTokenFile(f.Path)
		if err != nil {
			continue
		}
		if f.differs(token) {
			changed()
		}
	}
}

func (f *TokenFile) remember(token string) {
	sum := sha256.Sum256([]byte(token))
	f.mu.Lock()
	f.last, f.seen = sum, true
	f.mu.Unlock()
}

// differs reports whether token differs from the one last read; the first
// token seen only sets the baseline.
func (f *TokenFile) differs(token string) bool {
	sum := sha256.Sum256([]byte(token))
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.seen {
		f.last, f.seen = sum, true
		return false
	}
	return sum != f.last
}

func (f *TokenFile) authMethodName() string { return "token file" }

// externalToken: the token belongs to whoever writes the file (a Vault
// Agent); it is never revoked here.
func (f *TokenFile) externalToken() bool { return true }

// readTokenFile reads a token file: at most 64 KiB, white space around the
// token trimmed, and the rest must be one token. Errors name the file, never
// its content.
func readTokenFile(path string) (string, error) {
	if path == "" {
		return "", errors.New("vaultauth: token file: no path")
	}
	fh, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("vaultauth: token file: %w", err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxTokenFileSize+1))
	if err != nil {
		return "", fmt.Errorf("vaultauth: token file %s: %w", path, err)
	}
	if len(b) > maxTokenFileSize {
		return "", fmt.Errorf("vaultauth: token file %s: larger than %d bytes", path, maxTokenFileSize)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "", fmt.Errorf("vaultauth: token file %s: %w", path, ErrEmptyToken)
	}
	if bytes.ContainsAny(b, " \t\r\n\v\f") {
		return "", fmt.Errorf("vaultauth: token file %s: holds more than one word, not a token", path)
	}
	return string(b), nil
}

// lookupToken looks token up on a clone of client and returns it as a login
// secret carrying its TTL, renewability and policies.
func lookupToken(ctx context.Context, client *api.Client, token string) (*api.Secret, error) {
	c, err := client.CloneWithHeaders()
	if err != nil {
		return nil, err
	}
	c.SetToken(token)
	s, err := c.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("vaultauth: token lookup-self: %w", err)
	}
	if s == nil || s.Data == nil {
		return nil, errors.New("vaultauth: token lookup-self: empty response")
	}
	ttl, err := s.TokenTTL()
	if err != nil {
		return nil, fmt.Errorf("vaultauth: token lookup-self: ttl: %w", err)
	}
	renewable, err := s.TokenIsRenewable()
	if err != nil {
		return nil, fmt.Errorf("vaultauth: token lookup-self: renewable: %w", err)
	}
	policies, _ := s.TokenPolicies()
	accessor, _ := s.TokenAccessor()
	return &api.Secret{Auth: &api.SecretAuth{
		ClientToken:   token,
		Accessor:      accessor,
		Policies:      policies,
		LeaseDuration: int(ttl / time.Second),
		Renewable:     renewable,
	}}, nil
}

// AppRole returns the AppRole login of github.com/hashicorp/vault/api/auth/approle
// (see approle.NewAppRoleAuth for the options, e.g. approle.WithMountPath).
// A secret-id from a file or an environment variable is read again on every
// login.
//
// A response-wrapped secret-id (approle.SecretID{FromFile: path} with
// approle.WithWrappingToken()) is unwrapped at login. A wrapping token works
// once: the next login (at the token's max TTL, or on Relogin) fails unless
// the orchestrator has written a fresh wrapping token to the file by then.
// Prefer a renewable token with a long max TTL, or a plain secret-id file,
// when logins must repeat unattended.
func AppRole(roleID string, secretID *approle.SecretID, opts ...approle.LoginOption) (api.AuthMethod, error) {
	m, err := approle.NewAppRoleAuth(roleID, secretID, opts...)
	if err != nil {
		return nil, fmt.Errorf("vaultauth: approle: %w", err)
	}
	var am api.AuthMethod = m
	return namedMethod{name: "approle", m: &am}, nil
}

// Userpass returns the userpass login of github.com/hashicorp/vault/api/auth/userpass,
// meant for development. A password from a file or environment variable is
// read again on every login.
func Userpass(username string, password *userpass.Password, opts ...userpass.LoginOption) (api.AuthMethod, error) {
	m, err := userpass.NewUserpassAuth(username, password, opts...)
	if err != nil {
		return nil, fmt.Errorf("vaultauth: userpass: %w", err)
	}
	var um api.AuthMethod = m
	return namedMethod{name: "userpass", m: &um}, nil
}

// DefaultKubernetesTokenPath is where Kubernetes mounts a pod's service
// account token; pass it to kubernetes.WithServiceAccountTokenPath.
const DefaultKubernetesTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// Kubernetes returns the Kubernetes login of github.com/hashicorp/vault/api/auth/kubernetes
// for role. The upstream helper reads the service-account token when it is
// constructed, and Kubernetes rotates projected tokens, so this method builds
// a fresh kubernetes.NewKubernetesAuth(role, opts...) on every login: options
// such as kubernetes.WithServiceAccountTokenPath read the file again each
// time. Nothing is read here.
func Kubernetes(role string, opts ...kubernetes.LoginOption) (api.AuthMethod, error) {
	if role == "" {
		return nil, errors.New("vaultauth: kubernetes: no role name")
	}
	return PerLogin("kubernetes", func() (api.AuthMethod, error) {
		return kubernetes.NewKubernetesAuth(role, opts...)
	}), nil
}

// PerLogin returns a method that calls build before every login and logs in
// with the method it returns. Use it for helpers that read their credentials
// when constructed. name appears in logs and errors.
func PerLogin(name string, build func() (api.AuthMethod, error)) api.AuthMethod {
	return perLogin{name: name, build: build}
}

type perLogin struct {
	name  string
	build func() (api.AuthMethod, error)
}

// Login builds the method and logs in with it.
func (p perLogin) Login(ctx context.Context, client *api.Client) (*api.Secret, error) {
	if p.build == nil {
		return nil, fmt.Errorf("vaultauth: %s: no constructor", p.name)
	}
	m, err := p.build()
	if err != nil {
		return nil, fmt.Errorf("vaultauth: %s: %w", p.name, err)
	}
	if m == nil {
		return nil, fmt.Errorf("vaultauth: %s: constructor returned no method", p.name)
	}
	return m.Login(ctx, client)
}

func (p perLogin) authMethodName() string { return p.name }

// namedMethod gives an upstream method a name for logs and errors. The
// upstream method is held behind a pointer: upstream helpers keep their
// credentials in plain fields (approle's secret-id given as a string), and
// a caller's struct holding this method in an unexported field is printed
// by fmt without calling String, which then shows an address only.
type namedMethod struct {
	name string
	m    *api.AuthMethod
}

// Login logs in with the upstream method.
func (n namedMethod) Login(ctx context.Context, client *api.Client) (*api.Secret, error) {
	return (*n.m).Login(ctx, client)
}

func (n namedMethod) authMethodName() string { return n.name }

// String names the method and never prints its credentials.
func (n namedMethod) String() string { return "vaultauth." + n.name + "(redacted)" }

// GoString never prints the credentials.
func (n namedMethod) GoString() string { return n.String() }

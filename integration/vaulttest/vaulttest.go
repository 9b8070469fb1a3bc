package vaulttest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/vault/api"
)

// RootToken is the root token of every dev server started by this package.
// It is a public test fixture, not a secret.
const RootToken = "knotmtls-dev-root"

// VaultVersion is the Vault release the harness builds and runs.
const VaultVersion = "1.21.0"

// LocalImage is the tag of the FROM scratch image built from the cached Vault
// binary ("make vault-image" or the harness itself).
const LocalImage = "knotmtls/vault-dev:" + VaultVersion

// UpstreamImage is the official image, used when it can be pulled.
const UpstreamImage = "hashicorp/vault:" + VaultVersion

// Backend names accepted by [WithBackend] and KNOTMTLS_VAULT_BACKEND.
const (
	BackendAuto      = "auto"
	BackendContainer = "container"
	BackendProcess   = "process"
)

// Environment variables read by the harness.
const (
	// EnvBackend forces a backend: "container", "process" or "auto".
	EnvBackend = "KNOTMTLS_VAULT_BACKEND"
	// EnvImage names the container image to run instead of the default
	// resolution (it is pulled if missing).
	EnvImage = "VAULT_IMAGE"
	// EnvBinary names the Vault binary for the process backend and for
	// building the local image.
	EnvBinary = "KNOTMTLS_VAULT_BINARY"
	// EnvCache is the cache directory (default $HOME/.cache/knotmtls).
	EnvCache = "KNOTMTLS_CACHE"
)

var (
	// ErrNoBackend is returned by [Start] when neither a container nor a
	// local process could be started; the error text says what to do.
	ErrNoBackend = errors.New("vaulttest: no Vault backend available")
	// ErrDockerUnavailable is returned (wrapped) when the container backend
	// is required but no Docker engine answers.
	ErrDockerUnavailable = errors.New("vaulttest: docker engine not reachable")
	// ErrBinaryNotFound is returned (wrapped) when the Vault binary is
	// needed but missing.
	ErrBinaryNotFound = errors.New("vaulttest: vault binary not found")
	// ErrStopped is returned by Pause and Unpause after Stop or Terminate.
	ErrStopped = errors.New("vaulttest: vault is stopped")
)

// hint is appended to errors that a missing image or binary caused.
const hint = `run "make vault-image" at the repository root to build the Vault binary and image (takes a long time once, cached afterwards)`

// Option configures [Start].
type Option func(*config)

type config struct {
	backend      string
	image        string
	binary       string
	startTimeout time.Duration
	logf         func(format string, args ...any)
}

// WithBackend forces a backend: [BackendContainer], [BackendProcess] or
// [BackendAuto] (the default: container when Docker answers, else process).
// It overrides KNOTMTLS_VAULT_BACKEND.
func WithBackend(name string) Option {
	return func(c *config) { c.backend = name }
}

// WithImage runs the given container image instead of the default image
// resolution. It overrides VAULT_IMAGE.
func WithImage(image string) Option {
	return func(c *config) { c.image = image }
}

// WithBinary sets the Vault binary used by the process backend and to build
// the local image. It overrides KNOTMTLS_VAULT_BINARY and the cache path.
func WithBinary(path string) Option {
	return func(c *config) { c.binary = path }
}

// WithStartTimeout bounds how long Vault may take to answer its health
// endpoint once started (default 2 minutes). Image pulls and builds have
// their own bounds.
func WithStartTimeout(d time.Duration) Option {
	return func(c *config) { c.startTimeout = d }
}

// WithLogf sends the harness's progress messages (and testcontainers' log)
// to logf. [StartTest] uses t.Logf.
func WithLogf(logf func(format string, args ...any)) Option {
	return func(c *config) { c.logf = logf }
}

// Vault is a running Vault dev server.
type Vault struct {
	// Addr is the server's base URL, e.g. http://127.0.0.1:32768.
	Addr string
	// Token is the root token.
	Token string
	// Backend says what runs the server, e.g.
	// "container knotmtls/vault-dev:1.21.0" or
	// "process /root/.cache/knotmtls/vault-1.21.0".
	Backend string

	b backend

	mu         sync.Mutex
	paused     bool
	stopped    bool
	terminated bool
	transports []*http.Transport
}

// backend is what runs the server.
type backend interface {
	pause(ctx context.Context) error
	unpause(ctx context.Context) error
	stop(ctx context.Context) error
	terminate(ctx context.Context) error
	logs(ctx context.Context) (string, error)
}

var ryukOnce sync.Once

// testcontainers reads its configuration once, on its first use, which may
// come from any caller: disable Ryuk as soon as this package is loaded.
func init() { disableRyuk() }

// disableRyuk sets TESTCONTAINERS_RYUK_DISABLED=true unless the caller chose
// otherwise. It must run before the first testcontainers call, which reads
// its configuration once.
func disableRyuk() {
	ryukOnce.Do(func() {
		if _, ok := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !ok {
			_ = os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
		}
	})
}

func newConfig(opts []Option) *config {
	c := &config{
		backend:      os.Getenv(EnvBackend),
		image:        os.Getenv(EnvImage),
		binary:       os.Getenv(EnvBinary),
		startTimeout: 2 * time.Minute,
		logf:         func(string, ...any) {},
	}
	for _, o := range opts {
		o(c)
	}
	if c.backend == "" {
		c.backend = BackendAuto
	}
	if c.logf == nil {
		c.logf = func(string, ...any) {}
	}
	return c
}

// CacheDir returns ${KNOTMTLS_CACHE:-$HOME/.cache/knotmtls}.
func CacheDir() string {
	if d := os.Getenv(EnvCache); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return filepath.Join(os.TempDir(), "knotmtls-cache")
	}
	return filepath.Join(home, ".cache", "knotmtls")
}

// BinaryPath returns where the cached Vault binary is expected:
// KNOTMTLS_VAULT_BINARY when set, else CacheDir()/vault-1.21.0.
func BinaryPath() string {
	if p := os.Getenv(EnvBinary); p != "" {
		return p
	}
	return filepath.Join(CacheDir(), "vault-"+VaultVersion)
}

// Start starts a Vault dev server. With the default backend it runs a
// container when a Docker engine answers and a local process otherwise; it
// never skips and returns an error wrapping [ErrNoBackend] when nothing
// works. The caller must call [Vault.Terminate].
func Start(ctx context.Context, opts ...Option) (*Vault, error) {
	cfg := newConfig(opts)
	disableRyuk()

	switch cfg.backend {
	case BackendContainer:
		return startContainer(ctx, cfg)
	case BackendProcess:
		return startProcess(ctx, cfg)
	case BackendAuto:
	default:
		return nil, fmt.Errorf("vaulttest: unknown backend %q (want %q, %q or %q)",
			cfg.backend, BackendAuto, BackendContainer, BackendProcess)
	}

	v, cerr := startContainer(ctx, cfg)
	if cerr == nil {
		return v, nil
	}
	if ctx.Err() != nil {
		return nil, cerr
	}
	cfg.logf("vaulttest: container backend unavailable, trying a local process: %v", cerr)
	v, perr := startProcess(ctx, cfg)
	if perr == nil {
		return v, nil
	}
	return nil, fmt.Errorf("%w:\n  container: %w\n  process: %w", ErrNoBackend, cerr, perr)
}

// StartTest starts Vault for a test: it fails the test when Start fails,
// logs the backend, and terminates the server in t.Cleanup (logging the
// server's output first if the test failed).
func StartTest(t testing.TB, opts ...Option) *Vault {
	t.Helper()
	opts = append([]Option{WithLogf(t.Logf)}, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	v, err := Start(ctx, opts...)
	if err != nil {
		t.Fatalf("vaulttest: start vault: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if t.Failed() {
			if out, err := v.Logs(ctx); err == nil {
				t.Logf("vault output (%s), last lines:\n%s", v.Backend, tail(out, 60))
			}
		}
		if err := v.Terminate(ctx); err != nil {
			t.Errorf("vaulttest: terminate: %v", err)
		}
	})
	t.Logf("vault backend: %s", v.Backend)
	return v
}

// Client returns a new Vault API client for the server, authenticated with
// the root token. It ignores VAULT_* environment variables.
func (v *Vault) Client() (*api.Client, error) {
	return v.ClientWith(nil)
}

// ClientWith is [Vault.Client] with the HTTP transport replaced by rt (for
// example a wrapper around http.DefaultTransport that counts requests). A nil
// rt gives the default pooled transport, whose idle connections
// [Vault.Terminate] closes.
func (v *Vault) ClientWith(rt http.RoundTripper) (*api.Client, error) {
	cfg := api.DefaultConfig()
	cfg.Error = nil // ignore errors reading VAULT_* variables
	cfg.Address = v.Addr
	cfg.HttpClient = cleanhttp.DefaultPooledClient()
	if rt == nil {
		if tr, ok := cfg.HttpClient.Transport.(*http.Transport); ok {
			v.mu.Lock()
			v.transports = append(v.transports, tr)
			v.mu.Unlock()
		}
	} else {
		cfg.HttpClient.Transport = rt
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vaulttest: new client: %w", err)
	}
	c.SetToken(v.Token)
	c.ClearNamespace()
	return c, nil
}

// Pause freezes the server (docker pause, or SIGSTOP for a process):
// connections are still accepted but requests hang, like an outage behind a
// load balancer. Use a client timeout to observe it.
func (v *Vault) Pause(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stopped || v.terminated {
		return ErrStopped
	}
	if v.paused {
		return nil
	}
	if err := v.b.pause(ctx); err != nil {
		return err
	}
	v.paused = true
	return nil
}

// Unpause resumes a paused server; its state is intact.
func (v *Vault) Unpause(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stopped || v.terminated {
		return ErrStopped
	}
	if !v.paused {
		return nil
	}
	if err := v.b.unpause(ctx); err != nil {
		return err
	}
	v.paused = false
	return nil
}

// Stop stops the server: new connections are refused. Dev mode keeps data
// in memory only, so everything stored is lost. Stop is idempotent.
func (v *Vault) Stop(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.stopLocked(ctx)
}

func (v *Vault) stopLocked(ctx context.Context) error {
	if v.stopped || v.terminated {
		return nil
	}
	if v.paused {
		if err := v.b.unpause(ctx); err != nil {
			return err
		}
		v.paused = false
	}
	if err := v.b.stop(ctx); err != nil {
		return err
	}
	v.stopped = true
	return nil
}

// Terminate stops the server and removes what Start created (container,
// process, idle client connections). It is idempotent.
func (v *Vault) Terminate(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.terminated {
		return nil
	}
	if v.paused {
		// A frozen server cannot be stopped gracefully: thaw it first.
		if err := v.b.unpause(ctx); err != nil {
			return err
		}
		v.paused = false
	}
	if err := v.b.terminate(ctx); err != nil {
		return err
	}
	v.stopped = true
	v.terminated = true
	for _, tr := range v.transports {
		tr.CloseIdleConnections()
	}
	v.transports = nil
	return nil
}

// Logs returns the server's output so far (for diagnostics). The dev
// server's unseal key and root token lines are redacted.
func (v *Vault) Logs(ctx context.Context) (string, error) {
	out, err := v.b.logs(ctx)
	return redact(out), err
}

// EnableTransit mounts the Transit secrets engine at transit/. It does
// nothing when transit/ is already mounted.
func (v *Vault) EnableTransit(ctx context.Context) error {
	return v.mount(ctx, "transit", &api.MountInput{Type: "transit"})
}

// EnableKVv1 mounts a KV version 1 secrets engine at path. It does nothing
// when a KV v1 engine is already mounted there and fails when something
// else is. (KV v2 is mounted at secret/ in dev mode.)
func (v *Vault) EnableKVv1(ctx context.Context, path string) error {
	return v.mount(ctx, path, &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}})
}

func (v *Vault) mount(ctx context.Context, path string, in *api.MountInput) error {
	path = strings.Trim(path, "/")
	if path == "" {
		return errors.New("vaulttest: empty mount path")
	}
	c, err := v.Client()
	if err != nil {
		return err
	}
	mounts, err := c.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return fmt.Errorf("vaulttest: list mounts: %w", err)
	}
	if m, ok := mounts[path+"/"]; ok {
		if m.Type == in.Type && kvVersion(m.Options) == kvVersion(in.Options) {
			return nil
		}
		return fmt.Errorf("vaulttest: %s/ is already mounted as %s (version %q), want %s (version %q)",
			path, m.Type, kvVersion(m.Options), in.Type, kvVersion(in.Options))
	}
	if err := c.Sys().MountWithContext(ctx, path, in); err != nil {
		return fmt.Errorf("vaulttest: mount %s at %s/: %w", in.Type, path, err)
	}
	return nil
}

// kvVersion normalises the "version" mount option: a kv mount without it is
// version 1.
func kvVersion(opts map[string]string) string {
	if v := opts["version"]; v != "" && v != "1" {
		return v
	}
	return ""
}

// redact hides the dev server's unseal key and root token lines.
func redact(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		for _, key := range []string{"Unseal Key:", "Root Token:"} {
			if j := strings.Index(l, key); j >= 0 {
				lines[i] = l[:j+len(key)] + " [redacted]"
			}
		}
	}
	return strings.Join(lines, "\n")
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

package integration_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/integration/clitest"
	"github.com/knotmtls/knotmtls/integration/vaulttest"
	"github.com/knotmtls/knotmtls/internal/cli"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
)

// cliEnv is a real Vault dev server, a knottest Knot and the environment
// the knotmtls CLI reads (VAULT_ADDR, VAULT_TOKEN, KNOT_SECRET). Every
// invocation's output is kept; when the test ends it is checked against
// every private key Vault holds or held at the KV paths the test used.
type cliEnv struct {
	t        *testing.T
	vault    *vaulttest.Vault
	root     *api.Client
	knot     *knottest.Server
	dir      string
	caFile   string // PEM of the CA that signed knottest's server certificate
	clientID string
	runner   *clitest.Runner // identity "development" / clientID

	mu      sync.Mutex
	outputs []cliOutput
	kvPaths map[string]bool // KV v2 paths (in mount secret) whose keys are checked
}

type cliOutput struct {
	args           string
	stdout, stderr string
	// pemTypeNamed marks a run that legitimately names the PEM block type
	// "PRIVATE KEY" in an error (a key pasted into import); it must still
	// not contain any key bytes.
	pemTypeNamed bool
}

type cliResult struct {
	code           int
	stdout, stderr string
}

func (r cliResult) String() string {
	return "exit " + strconv.Itoa(r.code) + "\nstdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	v := vaulttest.StartTest(t)
	root, err := v.Client()
	require.NoError(t, err)
	knot := knottest.NewTestServer(t)
	e := &cliEnv{t: t, vault: v, root: root, knot: knot, dir: t.TempDir(), clientID: knot.ClientID(),
		kvPaths: map[string]bool{}}
	e.runner = &clitest.Runner{ClientID: e.clientID, Env: "development"}
	caPEM, err := clitest.ServerCAPEM(knot)
	require.NoError(t, err)
	e.caFile = filepath.Join(e.dir, "knottest-server-ca.pem")
	require.NoError(t, os.WriteFile(e.caFile, caPEM, 0o644))
	t.Setenv("VAULT_ADDR", v.Addr)
	t.Setenv("VAULT_TOKEN", v.Token)
	t.Setenv("VAULT_NAMESPACE", "")
	t.Setenv("KNOT_SECRET", knot.Secret())
	e.watchKV(cli.DefaultKVPath("development", e.clientID))
	t.Cleanup(e.assertNoKeyMaterial)
	return e
}

// watchKV adds a KV v2 path (mount "secret") whose keys, in every version,
// must never appear in any output.
func (e *cliEnv) watchKV(path string) {
	e.mu.Lock()
	e.kvPaths[path] = true
	e.mu.Unlock()
}

// run runs the CLI in process, through clitest (cli.Run), with empty stdin.
func (e *cliEnv) run(args ...string) cliResult {
	e.t.Helper()
	return e.runIn(nil, args...)
}

// runIn runs the CLI with stdin.
func (e *cliEnv) runIn(stdin []byte, args ...string) cliResult {
	e.t.Helper()
	return e.exec(stdin, false, args...)
}

func (e *cliEnv) exec(stdin []byte, pemTypeNamed bool, args ...string) cliResult {
	e.t.Helper()
	return e.record(e.runner.Run(context.Background(), stdin, args...), pemTypeNamed)
}

// record keeps a result's output for the key-material check.
func (e *cliEnv) record(res clitest.Result, pemTypeNamed bool) cliResult {
	e.t.Helper()
	args := res.Args
	r := cliResult{code: res.Code, stdout: res.Stdout, stderr: res.Stderr}
	e.mu.Lock()
	e.outputs = append(e.outputs, cliOutput{args: strings.Join(args, " "), stdout: r.stdout, stderr: r.stderr, pemTypeNamed: pemTypeNamed})
	e.mu.Unlock()
	if !pemTypeNamed {
		assert.NotContains(e.t, r.stdout+r.stderr, "PRIVATE KEY", "knotmtls %s", strings.Join(args, " "))
	}
	// The CLI speaks in flags: the library's Go options never reach an
	// operator ("use WithKVVersion(1)" is "use --kv-version 1").
	assert.NotRegexp(e.t, goOptionName, r.stdout+r.stderr, "knotmtls %s", strings.Join(args, " "))
	return r
}

// goOptionName matches a Go option or method of the library named in a
// message.
var goOptionName = regexp.MustCompile(`\bWith[A-Z][A-Za-z]*|again with CSR\b`)

// start starts one command in the background, for a test that interrupts
// it (Running.Interrupt, as Ctrl-C does); finish it with wait.
func (e *cliEnv) start(stdin []byte, args ...string) *clitest.Running {
	return e.runner.Start(context.Background(), stdin, args...)
}

// wait waits for a command started with start and records its output.
func (e *cliEnv) wait(run *clitest.Running) cliResult {
	e.t.Helper()
	return e.record(run.Wait(), false)
}

// holdingProxy forwards every request to the test's Vault, except that it
// holds the first one match selects until Release: a Vault request in
// flight at a chosen moment, for interrupt tests. A held request whose
// client gives up is dropped, not forwarded.
type holdingProxy struct {
	URL      string
	held     chan struct{}
	release  chan struct{}
	released sync.Once
}

func (e *cliEnv) holdingProxy(match func(*http.Request) bool) *holdingProxy {
	e.t.Helper()
	target, err := url.Parse(e.vault.Addr)
	require.NoError(e.t, err)
	rp := httputil.NewSingleHostReverseProxy(target)
	p := &holdingProxy{held: make(chan struct{}), release: make(chan struct{})}
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hold := false
		if match(r) {
			once.Do(func() { hold = true })
		}
		if hold {
			close(p.held)
			select {
			case <-p.release:
			case <-r.Context().Done():
				return // the client gave up: the request never reaches Vault
			}
		}
		rp.ServeHTTP(w, r)
	}))
	p.URL = srv.URL
	e.t.Cleanup(func() {
		p.Release()
		srv.Close()
	})
	return p
}

// waitHeld waits until the proxy holds its request.
func (p *holdingProxy) waitHeld(t *testing.T, run *clitest.Running) {
	t.Helper()
	select {
	case <-p.held:
	case <-time.After(time.Minute):
		run.Interrupt()
		t.Fatalf("no matching Vault request within a minute:\n%s", run.Wait())
	}
}

// Release lets the held request through.
func (p *holdingProxy) Release() { p.released.Do(func() { close(p.release) }) }

// hangingListener accepts TCP connections and never answers (a TLS
// handshake to it never completes). It returns the address and a channel
// that receives once per accepted connection.
func hangingListener(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepted := make(chan struct{}, 16)
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			accepted <- struct{}{}
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String(), accepted
}

// cmd builds the arguments of one command with the identity flags.
func (e *cliEnv) cmd(name string, extra ...string) []string {
	return e.runner.Args(name, extra...)
}

// checkArgs are the flags check needs to call knottest.
func (e *cliEnv) checkArgs(extra ...string) []string {
	return e.cmd("check", append([]string{"--base-url", e.knot.URL(), "--ca-file", e.caFile}, extra...)...)
}

// write stores data in a file of the test's directory and returns its path.
func (e *cliEnv) write(name string, data []byte) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	require.NoError(e.t, os.WriteFile(p, data, 0o600))
	return p
}

// sign has knottest sign a CSR the way Knot does and returns the certificate file.
func (e *cliEnv) sign(name string, csrPEM []byte) (string, *x509.Certificate) {
	e.t.Helper()
	certPEM, err := e.knot.SignCSR(csrPEM)
	require.NoError(e.t, err)
	certs, err := provider.ParseCertificates(certPEM)
	require.NoError(e.t, err)
	return e.write(name, certPEM), certs[0]
}

// kvSnapshot is what a refused command must leave unchanged.
type kvSnapshot struct {
	currentVersion int
	updatedTime    string
	data           map[string]any
}

func (e *cliEnv) kvSnapshot(path string) kvSnapshot {
	e.t.Helper()
	ctx := context.Background()
	meta, err := e.root.KVv2("secret").GetMetadata(ctx, path)
	require.NoError(e.t, err)
	sec, err := e.root.KVv2("secret").Get(ctx, path)
	require.NoError(e.t, err)
	return kvSnapshot{currentVersion: meta.CurrentVersion, updatedTime: meta.UpdatedTime.String(), data: sec.Data}
}

// kvData reads the current data of a KV v2 secret with the root token.
func (e *cliEnv) kvData(path string) map[string]any {
	e.t.Helper()
	sec, err := e.root.KVv2("secret").Get(context.Background(), path)
	require.NoError(e.t, err)
	return sec.Data
}

// transitKey reads a Transit key's description with the root token.
func (e *cliEnv) transitKey(name string) map[string]any {
	e.t.Helper()
	sec, err := e.root.Logical().Read("transit/keys/" + name)
	require.NoError(e.t, err)
	require.NotNil(e.t, sec, "transit key %s", name)
	return sec.Data
}

// storedKeys returns every private key PEM held in any version of the
// watched KV paths.
func (e *cliEnv) storedKeys() []string {
	ctx := context.Background()
	var keys []string
	e.mu.Lock()
	paths := make([]string, 0, len(e.kvPaths))
	for p := range e.kvPaths {
		paths = append(paths, p)
	}
	e.mu.Unlock()
	for _, p := range paths {
		meta, err := e.root.KVv2("secret").GetMetadata(ctx, p)
		if errors.Is(err, api.ErrSecretNotFound) {
			continue
		}
		require.NoError(e.t, err)
		for v := 1; v <= meta.CurrentVersion; v++ {
			sec, err := e.root.KVv2("secret").GetVersion(ctx, p, v)
			if err != nil || sec == nil {
				continue // deleted or destroyed
			}
			for _, field := range []string{"private_key", "pending_private_key"} {
				if k, ok := sec.Data[field].(string); ok && k != "" {
					keys = append(keys, k)
				}
			}
		}
	}
	return keys
}

// keyChunks is clitest.KeyChunks, for the tests that check outputs
// themselves.
var keyChunks = clitest.KeyChunks

// assertNoKeyMaterial checks every output of the test against every key
// Vault holds at the watched paths.
func (e *cliEnv) assertNoKeyMaterial() {
	keys := e.storedKeys()
	e.mu.Lock()
	outputs := append([]cliOutput(nil), e.outputs...)
	e.mu.Unlock()
	for _, o := range outputs {
		if clitest.LeaksKey(o.stdout+o.stderr, keys...) {
			e.t.Errorf("knotmtls %s printed part of a stored private key", o.args)
		}
	}
	e.t.Logf("checked %d CLI outputs against %d stored private keys", len(outputs), len(keys))
}

// readCSR parses a CSR PEM from a command's output.
func readCSR(t *testing.T, data []byte) *x509.CertificateRequest {
	t.Helper()
	csr, err := provider.ParseCSR(data)
	require.NoError(t, err)
	return csr
}

// cliToken creates a token with the policy in docs/policies/<file>, with
// ENV and CLIENT_ID replaced.
func (e *cliEnv) cliToken(file, env string) string {
	e.t.Helper()
	hcl, err := os.ReadFile(filepath.Join("..", "docs", "policies", file))
	require.NoError(e.t, err)
	policy := strings.NewReplacer("ENV", env, "CLIENT_ID", e.clientID).Replace(string(hcl))
	name := strings.TrimSuffix(file, ".hcl")
	require.NoError(e.t, e.root.Sys().PutPolicy(name, policy))
	sec, err := e.root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{name}, TTL: "1h"})
	require.NoError(e.t, err)
	return sec.Auth.ClientToken
}

package integration_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/integration/vaulttest"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// Helpers shared by the vaultsource integration tests (kv, transit,
// provision, outage, badsecret, coldstart). Their names start with "vs".

// vsCounter is an http.RoundTripper that counts Vault API requests by
// "METHOD /v1/path" before passing them on.
type vsCounter struct {
	base  *http.Transport
	total atomic.Int64
	mu    sync.Mutex
	by    map[string]int
}

func (c *vsCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.total.Add(1)
	c.mu.Lock()
	c.by[r.Method+" "+r.URL.Path]++
	c.mu.Unlock()
	return c.base.RoundTrip(r)
}

// count returns how many requests matched method and path (path without
// the /v1/ prefix).
func (c *vsCounter) count(method, path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.by[method+" /v1/"+path]
}

func (c *vsCounter) reset() {
	c.mu.Lock()
	c.by = map[string]int{}
	c.mu.Unlock()
	c.total.Store(0)
}

func (c *vsCounter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.by))
	for k := range c.by {
		keys = append(keys, fmt.Sprintf("%s=%d", k, c.by[k]))
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

// vsEnv is one real Vault, an API client that counts its requests and a
// fake Knot.
type vsEnv struct {
	vault   *vaulttest.Vault
	client  *api.Client
	counter *vsCounter
	knot    *knottest.Server
}

func vsStart(t *testing.T, knotOpts ...knottest.Option) *vsEnv {
	t.Helper()
	v := vaulttest.StartTest(t)
	counter := &vsCounter{base: cleanhttp.DefaultPooledTransport(), by: map[string]int{}}
	t.Cleanup(counter.base.CloseIdleConnections)
	client, err := v.ClientWith(counter)
	require.NoError(t, err)
	return &vsEnv{vault: v, client: client, counter: counter, knot: knottest.NewTestServer(t, knotOpts...)}
}

// requirements are Knot's rules for the fake's client_id, with its CA as
// the root the chain must verify to.
func (e *vsEnv) requirements() provider.Requirements {
	pool := x509.NewCertPool()
	pool.AddCert(e.knot.CA())
	return provider.Requirements{ClientID: e.knot.ClientID(), Roots: pool}
}

// provisionKV runs the whole KV onboarding: key + CSR into Vault, Knot
// signs, the certificate is imported. It returns the source and the leaf.
func (e *vsEnv) provisionKV(t *testing.T, mount, path string, opts ...vaultsource.KVOption) (*vaultsource.KV, *x509.Certificate) {
	t.Helper()
	ctx := t.Context()
	csr, err := vaultsource.ProvisionKV(ctx, e.client, mount, path, e.knot.ClientID(), vaultsource.ProvisionNew, opts...)
	require.NoError(t, err)
	certPEM, err := e.knot.SignCSR(csr)
	require.NoError(t, err)
	kv, err := vaultsource.NewKV(e.client, mount, path, opts...)
	require.NoError(t, err)
	require.NoError(t, importErr(kv.ImportCertificate(ctx, e.requirements(), certPEM, nil)))
	certs, err := provider.ParseCertificates(certPEM)
	require.NoError(t, err)
	return kv, certs[0]
}

// newProvider starts a Provider for src with Knot's rules and closes it at
// cleanup.
func (e *vsEnv) newProvider(t *testing.T, src provider.CertificateSource, opts ...provider.Option) *provider.Provider {
	t.Helper()
	opts = append([]provider.Option{provider.WithRequirements(e.requirements())}, opts...)
	p, err := provider.New(src, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// vsKnot is an HTTP client for the fake Knot presenting the Provider's
// certificate. Idle connections are closed when the certificate rotates,
// so new handshakes present the new one (what knotclient does).
type vsKnot struct {
	srv *knottest.Server
	tr  *http.Transport
	hc  *http.Client
}

func (e *vsEnv) knotClient(t *testing.T, p *provider.Provider) *vsKnot {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig:     provider.MTLSClientConfig(p, e.knot.RootCAs()),
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 32,
	}
	stop := p.Notify(func(_, _ *provider.Bundle) { tr.CloseIdleConnections() })
	t.Cleanup(func() { stop(); tr.CloseIdleConnections() })
	return &vsKnot{srv: e.knot, tr: tr, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// call makes one authenticated Knot API request (GET /jwe/key).
func (k *vsKnot) call(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.srv.URL()+"/jwe/key", nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(k.srv.ClientID(), k.srv.Secret())
	resp, err := k.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("knot answered %d", resp.StatusCode)
	}
	return nil
}

// vsLoad runs n goroutines calling Knot until stopped and counts outcomes.
type vsLoad struct {
	ok, failed atomic.Int64
	firstErr   atomic.Value
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

func (l *vsLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// serialSeen reports whether the fake Knot saw a request with serial.
func serialSeen(srv *knottest.Server, serial string) bool {
	for _, s := range srv.Serials() {
		if s == serial {
			return true
		}
	}
	return false
}

// noKeyMaterialUnder fails if any file under dir holds a PEM private key.
func noKeyMaterialUnder(t *testing.T, dir string) int {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		files++
		data, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		if bytes.Contains(data, []byte("PRIVATE KEY")) {
			t.Errorf("key material written to disk: %s", path)
		}
		return nil
	})
	require.NoError(t, err)
	return files
}

// TestKVLifecycle is the whole Knot onboarding with a KV v2 secret and the
// first mTLS call, with nothing written to disk.
func TestKVLifecycle(t *testing.T) {
	// HOME is a fresh directory: nothing may appear in it. The harness
	// finds its cached Vault binary through the environment instead.
	t.Setenv(vaulttest.EnvBinary, vaulttest.BinaryPath())
	home := t.TempDir()
	t.Setenv("HOME", home)
	tmp := t.TempDir()
	e := vsStart(t)
	ctx := t.Context()
	const mount, path = "secret", "knot/lifecycle"

	start := time.Now()
	csr, err := vaultsource.ProvisionKV(ctx, e.client, mount, path, e.knot.ClientID(), vaultsource.ProvisionNew)
	require.NoError(t, err)
	provisionTook := time.Since(start)
	assert.Contains(t, string(csr), "CERTIFICATE REQUEST")
	assert.NotContains(t, string(csr), "PRIVATE KEY", "only the CSR comes back")

	// A second provisioning is refused: the key is never overwritten by accident.
	_, err = vaultsource.ProvisionKV(ctx, e.client, mount, path, e.knot.ClientID(), vaultsource.ProvisionNew)
	require.ErrorIs(t, err, vaultsource.ErrKeyExists)

	certPEM, err := e.knot.SignCSR(csr)
	require.NoError(t, err)
	kv, err := vaultsource.NewKV(e.client, mount, path)
	require.NoError(t, err)
	start = time.Now()
	require.NoError(t, importErr(kv.ImportCertificate(ctx, e.requirements(), certPEM, nil)))
	importTook := time.Since(start)

	p := e.newProvider(t, kv)
	k := e.knotClient(t, p)
	start = time.Now()
	require.NoError(t, k.call(ctx))
	firstCall := time.Since(start)

	b, err := p.Bundle(ctx)
	require.NoError(t, err)
	assert.Equal(t, "2", b.Version, "version 1 = key, version 2 = key + certificate")
	reqs := e.knot.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, provider.SerialHex(b.Leaf()), reqs[0].ClientSerial)
	assert.Equal(t, e.knot.ClientID(), reqs[0].ClientCN)
	assert.True(t, reqs[0].AuthOK)

	// The stored secret has exactly what the docs say.
	sec, err := e.client.KVv2(mount).Get(ctx, path)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"certificate", "private_key"}, keys(sec.Data))

	files := noKeyMaterialUnder(t, home) + noKeyMaterialUnder(t, tmp)
	t.Logf("figures: provision %s, import %s, first mTLS call (fetch + handshake) %s; serial %s; files scanned for keys: %d; vault requests: %s",
		provisionTook, importTook, firstCall, reqs[0].ClientSerial, files, e.counter)
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestKVv1Lifecycle runs the onboarding against a KV v1 mount, whose
// version is a hash of the fields, and checks the mount diagnostics.
func TestKVv1Lifecycle(t *testing.T) {
	e := vsStart(t)
	ctx := t.Context()
	require.NoError(t, e.vault.EnableKVv1(ctx, "kv1"))

	fields := vaultsource.WithFields(vaultsource.Fields{Certificate: "tls_crt", PrivateKey: "tls_key"})
	kv, leaf := e.provisionKV(t, "kv1", "knot/client", vaultsource.WithKVVersion(1), fields)
	assert.Equal(t, "vault kv-v1 kv1/knot/client", kv.String())
	stored, err := e.client.Logical().ReadWithContext(ctx, "kv1/knot/client")
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"tls_crt", "tls_key"}, keys(stored.Data), "configured field names")
	_, err = vaultsource.ProvisionKV(ctx, e.client, "kv1", "knot/client", e.knot.ClientID(), vaultsource.ProvisionNew, vaultsource.WithKVVersion(1), fields)
	require.ErrorIs(t, err, vaultsource.ErrKeyExists, "KV v1: existence is checked before writing")

	v1, err := kv.Version(ctx)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(v1, "sha256:"), v1)

	p := e.newProvider(t, kv)
	require.NoError(t, e.knotClient(t, p).call(ctx))
	b, err := p.Bundle(ctx)
	require.NoError(t, err)
	assert.Equal(t, v1, b.Version, "Fetch and Version agree")
	assert.True(t, serialSeen(e.knot, provider.SerialHex(leaf)))

	e.counter.reset()
	_, err = kv.Version(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, e.counter.count(http.MethodGet, "kv1/knot/client"), "KV v1 has no metadata: Version reads the data")

	// Misconfigurations are named precisely.
	for name, tc := range map[string]struct {
		mount string
		opts  []vaultsource.KVOption
		want  error
	}{
		"v1 mount read as v2": {"kv1", nil, vaultsource.ErrWrongKVVersion},
		"v2 mount read as v1": {"secret", []vaultsource.KVOption{vaultsource.WithKVVersion(1)}, vaultsource.ErrWrongKVVersion},
		"no such mount":       {"nope", nil, vaultsource.ErrMountNotFound},
	} {
		t.Run(name, func(t *testing.T) {
			src, err := vaultsource.NewKV(e.client, tc.mount, "knot/client", tc.opts...)
			require.NoError(t, err)
			_, err = src.Fetch(ctx)
			require.ErrorIs(t, err, tc.want)
			_, err = src.Version(ctx)
			require.ErrorIs(t, err, tc.want)
			// Provisioning refuses to write into the wrong place.
			_, err = src.Provision(ctx, e.knot.ClientID(), vaultsource.ProvisionNew)
			require.ErrorIs(t, err, tc.want)
			t.Logf("%s: %v", name, err)
		})
	}
	// The refused v2-style provisioning wrote nothing under kv1/data/.
	stray, err := e.client.Logical().ReadWithContext(ctx, "kv1/data/knot/client")
	require.NoError(t, err)
	assert.Nil(t, stray, "a KV v1 mount addressed as v2 must not get a secret named data/knot/client")
}

// TestKVDeletedLatestVersion: KV v2 answers a read of a deleted latest
// version with metadata and no data; the source reports ErrVersionDeleted
// and the Provider keeps serving the last good certificate.
func TestKVDeletedLatestVersion(t *testing.T) {
	e := vsStart(t)
	ctx := t.Context()
	const path = "knot/deleted"
	kv, leaf := e.provisionKV(t, "secret", path)
	p := e.newProvider(t, kv)
	k := e.knotClient(t, p)
	require.NoError(t, k.call(ctx))

	e.counter.reset()
	version, err := kv.Version(ctx)
	require.NoError(t, err)
	assert.Equal(t, "2", version)
	assert.Equal(t, 1, e.counter.count(http.MethodGet, "secret/metadata/"+path))
	assert.Zero(t, e.counter.count(http.MethodGet, "secret/data/"+path), "a version check never reads the data")

	require.NoError(t, e.client.KVv2("secret").Delete(ctx, path))
	_, err = kv.Version(ctx)
	require.ErrorIs(t, err, vaultsource.ErrVersionDeleted)
	_, err = kv.Fetch(ctx)
	require.ErrorIs(t, err, vaultsource.ErrVersionDeleted)
	assert.Contains(t, err.Error(), "version 2 was deleted")
	err = p.Refresh(ctx)
	require.ErrorIs(t, err, vaultsource.ErrVersionDeleted)
	st := p.Status()
	assert.Equal(t, 1, st.Failures)
	assert.Equal(t, provider.SerialHex(leaf), provider.SerialHex(st.Bundle.Leaf()), "last good certificate keeps serving")
	require.NoError(t, k.call(ctx))

	require.NoError(t, e.client.KVv2("secret").Undelete(ctx, path, []int{2}))
	require.NoError(t, p.Refresh(ctx))
	assert.Zero(t, p.Status().Failures)

	require.NoError(t, e.client.KVv2("secret").Destroy(ctx, path, []int{2}))
	_, err = kv.Fetch(ctx)
	require.ErrorIs(t, err, vaultsource.ErrVersionDeleted)
	assert.Contains(t, err.Error(), "destroyed")

	missing, err := vaultsource.NewKV(e.client, "secret", "knot/never-written")
	require.NoError(t, err)
	_, err = missing.Fetch(ctx)
	require.ErrorIs(t, err, vaultsource.ErrSecretNotFound)
	_, err = missing.Version(ctx)
	require.ErrorIs(t, err, vaultsource.ErrSecretNotFound)

	// The API path pasted as the secret's path: KV v2 adds data/ itself.
	pasted, err := vaultsource.NewKV(e.client, "secret", "data/"+path)
	require.NoError(t, err)
	_, err = pasted.Fetch(ctx)
	require.ErrorIs(t, err, vaultsource.ErrSecretNotFound)
	assert.Contains(t, err.Error(), "without the API's data/ or metadata/ prefix")
}

// vsRelogger issues a fresh token with policy from the root client, as an
// auth method would after a revocation.
type vsRelogger struct {
	root   *api.Client
	target *api.Client
	policy string
	calls  atomic.Int64
}

// HandleDenied makes vsRelogger a vaultsource.Auth: every 403 logs in.
func (r *vsRelogger) HandleDenied(ctx context.Context, _, _ string, _ bool) error {
	return r.Relogin(ctx)
}

func (r *vsRelogger) Relogin(ctx context.Context) error {
	r.calls.Add(1)
	tok, err := r.root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{r.policy}, NoParent: true})
	if err != nil {
		return err
	}
	r.target.SetToken(tok.Auth.ClientToken)
	return nil
}

// TestKVPermissionDeniedAndRelogin: a revoked token is replaced through the
// Relogger (one re-login, one retry); a policy that lacks a path is
// reported with the path and the capability.
func TestKVPermissionDeniedAndRelogin(t *testing.T) {
	e := vsStart(t)
	ctx := t.Context()
	const path = "knot/policy"
	e.provisionKV(t, "secret", path)
	require.NoError(t, e.client.Sys().PutPolicyWithContext(ctx, "knot-read", `
path "secret/data/knot/policy"     { capabilities = ["read"] }
path "secret/metadata/knot/policy" { capabilities = ["read"] }
`))
	require.NoError(t, e.client.Sys().PutPolicyWithContext(ctx, "knot-data-only", `
path "secret/data/knot/policy" { capabilities = ["read"] }
`))

	limited, err := e.vault.Client()
	require.NoError(t, err)
	rl := &vsRelogger{root: e.client, target: limited, policy: "knot-read"}
	require.NoError(t, rl.Relogin(ctx))
	rl.calls.Store(0)
	kv, err := vaultsource.NewKV(limited, "secret", path, vaultsource.WithAuth(rl))
	require.NoError(t, err)
	_, err = kv.Fetch(ctx)
	require.NoError(t, err)
	assert.Zero(t, rl.calls.Load())

	require.NoError(t, e.client.Auth().Token().RevokeTreeWithContext(ctx, limited.Token()))
	_, err = kv.Fetch(ctx)
	require.NoError(t, err, "the revoked token was replaced")
	assert.Equal(t, int64(1), rl.calls.Load())

	// Without a Relogger a revoked token is a typed error naming path and capability.
	dataOnly, err := e.vault.Client()
	require.NoError(t, err)
	tok, err := e.client.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{"knot-data-only"}})
	require.NoError(t, err)
	dataOnly.SetToken(tok.Auth.ClientToken)
	src, err := vaultsource.NewKV(dataOnly, "secret", path)
	require.NoError(t, err)
	_, err = src.Fetch(ctx)
	require.NoError(t, err)
	_, err = src.Version(ctx)
	require.ErrorIs(t, err, vaultsource.ErrPermissionDenied)
	var ve *vaultsource.Error
	require.True(t, errors.As(err, &ve))
	assert.Equal(t, "secret/metadata/knot/policy", ve.Path)
	assert.Equal(t, "read", ve.Capability)
	assert.Contains(t, err.Error(), "WithoutMetadata")
	t.Logf("permission error: %v", err)

	noMeta, err := vaultsource.NewKV(dataOnly, "secret", path, vaultsource.WithoutMetadata())
	require.NoError(t, err)
	v, err := noMeta.Version(ctx)
	require.NoError(t, err)
	assert.Equal(t, "2", v)

	// A re-login that works but cannot cure a missing policy: Vault's 403
	// stands after exactly one re-login and one retry.
	sameLimits, err := e.vault.ClientWith(e.counter)
	require.NoError(t, err)
	cured := &vsRelogger{root: e.client, target: sameLimits, policy: "knot-data-only"}
	require.NoError(t, cured.Relogin(ctx))
	cured.calls.Store(0)
	meta, err := vaultsource.NewKV(sameLimits, "secret", path, vaultsource.WithAuth(cured))
	require.NoError(t, err)
	e.counter.reset()
	_, err = meta.Version(ctx)
	require.ErrorIs(t, err, vaultsource.ErrPermissionDenied)
	assert.Equal(t, int64(1), cured.calls.Load(), "one re-login per request, not a loop")
	assert.Equal(t, 2, e.counter.count(http.MethodGet, "secret/metadata/"+path), "the read and its one retry")

	// A relogin that keeps failing: permission denied after exactly one attempt.
	failing := &vsRelogger{root: dataOnly, target: dataOnly, policy: "knot-read"}
	w, err := vaultsource.NewKV(dataOnly, "secret", "knot/elsewhere", vaultsource.WithAuth(failing))
	require.NoError(t, err)
	_, err = w.Fetch(ctx)
	require.ErrorIs(t, err, vaultsource.ErrPermissionDenied)
	assert.Equal(t, int64(1), failing.calls.Load())
	assert.NotContains(t, err.Error(), "PRIVATE KEY")
}

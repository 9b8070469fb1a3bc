package integration_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"
	"go.uber.org/goleak"

	"github.com/knotmtls/knotmtls/integration/vaulttest"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	docker := vaulttest.DockerAvailable(ctx)
	cancel()
	_, binErr := os.Stat(vaulttest.BinaryPath())
	fmt.Printf("vaulttest: docker engine reachable: %v; vault binary %s present: %v\n",
		docker, vaulttest.BinaryPath(), binErr == nil)
	os.Exit(m.Run())
}

// requireBackendPossible skips a backend-specific test on a developer
// machine that lacks what the backend needs, and fails it under CI=true,
// where .ci/run provides Docker and the Vault binary.
func requireBackendPossible(t *testing.T, backend string) {
	t.Helper()
	var missing string
	switch backend {
	case vaulttest.BackendContainer:
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if !vaulttest.DockerAvailable(ctx) {
			missing = "no Docker engine is reachable"
		}
	case vaulttest.BackendProcess:
		if _, err := os.Stat(vaulttest.BinaryPath()); err != nil {
			missing = "no Vault binary at " + vaulttest.BinaryPath() + ` (run "make vault-image")`
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("backend %s cannot run under CI: %s", backend, missing)
	}
	t.Skipf("backend %s: %s", backend, missing)
}

// TestHarnessBackends proves each backend gives a real Vault dev server:
// KV v2 and KV v1 storage, Transit keys, an outage via Pause that makes
// requests time out, recovery via Unpause with state intact, Stop refusing
// connections, and an idempotent Terminate.
func TestHarnessBackends(t *testing.T) {
	for _, backend := range []string{vaulttest.BackendContainer, vaulttest.BackendProcess} {
		t.Run(backend, func(t *testing.T) {
			requireBackendPossible(t, backend)
			before := goleak.IgnoreCurrent()

			v := vaulttest.StartTest(t, vaulttest.WithBackend(backend))
			require.True(t, strings.HasPrefix(v.Backend, backend+" "), "backend %q", v.Backend)
			require.Equal(t, vaulttest.RootToken, v.Token)
			require.True(t, strings.HasPrefix(v.Addr, "http://127.0.0.1:"), "addr %q", v.Addr)

			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			c, err := v.Client()
			require.NoError(t, err)

			// KV v2 at secret/: a certificate bundle survives the round trip.
			certPEM, keyPEM := selfSigned(t, "harness-client")
			_, err = c.KVv2("secret").Put(ctx, "knot/harness", map[string]any{
				"certificate": string(certPEM),
				"private_key": string(keyPEM),
			})
			require.NoError(t, err)
			sec, err := c.KVv2("secret").Get(ctx, "knot/harness")
			require.NoError(t, err)
			require.Equal(t, 1, sec.VersionMetadata.Version)
			b, err := provider.ParseBundle([]byte(sec.Data["certificate"].(string)), nil,
				[]byte(sec.Data["private_key"].(string)), "1")
			require.NoError(t, err)
			assert.Equal(t, "harness-client", b.Leaf().Subject.CommonName)

			// KV v1: mount (twice: idempotent), write, read; a clash is refused.
			require.NoError(t, v.EnableKVv1(ctx, "kv1"))
			require.NoError(t, v.EnableKVv1(ctx, "/kv1/"))
			require.NoError(t, c.KVv1("kv1").Put(ctx, "app", map[string]any{"k": "v1"}))
			s1, err := c.KVv1("kv1").Get(ctx, "app")
			require.NoError(t, err)
			assert.Equal(t, "v1", s1.Data["k"])
			require.Error(t, v.EnableKVv1(ctx, "secret"), "secret/ is KV v2 in dev mode")

			// Transit: mount (twice), create an RSA key, sign with it.
			require.NoError(t, v.EnableTransit(ctx))
			require.NoError(t, v.EnableTransit(ctx))
			_, err = c.Logical().WriteWithContext(ctx, "transit/keys/knot", map[string]any{"type": "rsa-2048"})
			require.NoError(t, err)
			key, err := c.Logical().ReadWithContext(ctx, "transit/keys/knot")
			require.NoError(t, err)
			require.NotNil(t, key)
			assert.Equal(t, "rsa-2048", key.Data["type"])
			sig, err := c.Logical().WriteWithContext(ctx, "transit/sign/knot/sha2-256",
				map[string]any{"input": "aGVsbG8="})
			require.NoError(t, err)
			assert.True(t, strings.HasPrefix(sig.Data["signature"].(string), "vault:v1:"))

			// ClientWith: requests go through the given transport.
			var count atomic.Int64
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			cc, err := v.ClientWith(roundTripFunc(func(r *http.Request) (*http.Response, error) {
				count.Add(1)
				return tr.RoundTrip(r)
			}))
			require.NoError(t, err)
			_, err = cc.Sys().HealthWithContext(ctx)
			require.NoError(t, err)
			assert.Positive(t, count.Load())

			// Pause: the server accepts connections but never answers.
			require.NoError(t, v.Pause(ctx))
			require.NoError(t, v.Pause(ctx), "Pause is idempotent")
			short, err := v.Client()
			require.NoError(t, err)
			short.SetClientTimeout(500 * time.Millisecond)
			short.SetMaxRetries(0)
			_, err = short.KVv2("secret").Get(ctx, "knot/harness")
			require.Error(t, err)
			var ne net.Error
			require.True(t, errors.As(err, &ne) && ne.Timeout(), "want a timeout, got %v", err)

			// Unpause: state is intact.
			require.NoError(t, v.Unpause(ctx))
			require.NoError(t, v.Unpause(ctx), "Unpause is idempotent")
			sec, err = waitGet(ctx, c, "knot/harness")
			require.NoError(t, err)
			assert.Equal(t, string(certPEM), sec.Data["certificate"])

			// The server's output is available, with the dev secrets redacted.
			// Vault prints its dev banner (with the root token) only after
			// 100 ms without log output, so wait for it.
			var out string
			require.Eventually(t, func() bool {
				out, err = v.Logs(ctx)
				return err == nil && strings.Contains(out, "Root Token: ")
			}, 20*time.Second, 50*time.Millisecond, "dev banner never printed")
			assert.Contains(t, out, "Root Token: [redacted]")
			assert.NotContains(t, out, "Root Token: "+vaulttest.RootToken)

			// Stop: connections are refused; Pause is no longer possible.
			require.NoError(t, v.Stop(ctx))
			require.NoError(t, v.Stop(ctx), "Stop is idempotent")
			_, err = short.Sys().HealthWithContext(ctx)
			require.Error(t, err)
			assert.True(t, errors.Is(err, syscall.ECONNREFUSED), "want connection refused, got %v", err)
			require.ErrorIs(t, v.Pause(ctx), vaulttest.ErrStopped)

			require.NoError(t, v.Terminate(ctx))
			require.NoError(t, v.Terminate(ctx), "Terminate is idempotent")
			tr.CloseIdleConnections()
			// Neither backend may leave goroutines behind once terminated.
			goleak.VerifyNone(t, before)
		})
	}
}

// TestHarnessAuto proves the default backend resolution starts a usable
// Vault, whatever this machine offers, and reports which one it used.
func TestHarnessAuto(t *testing.T) {
	v := vaulttest.StartTest(t)
	require.Regexp(t, `^(container|process) \S+`, v.Backend)
	c, err := v.Client()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := c.Sys().HealthWithContext(ctx)
	require.NoError(t, err)
	assert.True(t, h.Initialized)
	assert.False(t, h.Sealed)
	assert.True(t, strings.HasPrefix(h.Version, vaulttest.VaultVersion), "version %q", h.Version)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// waitGet reads a KV v2 secret, retrying briefly: right after SIGCONT or
// docker unpause the first request may race the thaw.
func waitGet(ctx context.Context, c *api.Client, path string) (*api.KVSecret, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		s, err := c.KVv2("secret").Get(ctx, path)
		if err == nil || ctx.Err() != nil {
			return s, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// selfSigned returns a fresh self-signed certificate and its key, in PEM.
func selfSigned(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// TestBuildImage proves the harness can build the FROM scratch image from
// the binary alone (what Start does when the image is missing and none can
// be pulled) and that the image serves Vault. It builds under a throwaway
// tag, so the shared knotmtls/vault-dev image is left alone; Docker's layer
// cache makes the rebuild cheap.
func TestBuildImage(t *testing.T) {
	requireBackendPossible(t, vaulttest.BackendContainer)
	requireBackendPossible(t, vaulttest.BackendProcess)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	tag := fmt.Sprintf("knotmtls/vault-dev:buildtest-%d", time.Now().UnixNano())
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := cli.ImageRemove(context.Background(), tag, image.RemoveOptions{})
		assert.NoError(t, err)
		_ = cli.Close()
	})

	start := time.Now()
	require.NoError(t, vaulttest.BuildImage(ctx, vaulttest.BinaryPath(), tag, t.Logf))
	t.Logf("image build took %s", time.Since(start).Round(time.Millisecond))
	_, err = cli.ImageInspect(ctx, tag)
	require.NoError(t, err)
	require.NoError(t, vaulttest.BuildImage(ctx, vaulttest.BinaryPath(), tag, t.Logf), "a present image is reused")

	v := vaulttest.StartTest(t, vaulttest.WithBackend(vaulttest.BackendContainer), vaulttest.WithImage(tag))
	assert.Equal(t, "container "+tag, v.Backend)
	c, err := v.Client()
	require.NoError(t, err)
	h, err := c.Sys().HealthWithContext(ctx)
	require.NoError(t, err)
	assert.Equal(t, vaulttest.VaultVersion, h.Version)
}

// TestTerminateWhilePaused proves cleanup works when a test fails during an
// outage: Terminate thaws and removes a paused server and leaks nothing.
func TestTerminateWhilePaused(t *testing.T) {
	for _, backend := range []string{vaulttest.BackendContainer, vaulttest.BackendProcess} {
		t.Run(backend, func(t *testing.T) {
			requireBackendPossible(t, backend)
			before := goleak.IgnoreCurrent()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			v, err := vaulttest.Start(ctx, vaulttest.WithBackend(backend), vaulttest.WithLogf(t.Logf))
			require.NoError(t, err)
			require.NoError(t, v.Pause(ctx))
			require.NoError(t, v.Terminate(ctx))
			require.ErrorIs(t, v.Unpause(ctx), vaulttest.ErrStopped)

			c, err := v.Client()
			require.NoError(t, err)
			c.SetMaxRetries(0)
			c.SetClientTimeout(2 * time.Second)
			_, err = c.Sys().HealthWithContext(ctx)
			require.Error(t, err, "a terminated server must not answer")
			goleak.VerifyNone(t, before)
		})
	}
}

// TestAutoFallsBackToProcess proves the default backend still gives a Vault
// when the container cannot start (here: an invalid image reference, which
// fails before any pull is attempted).
func TestAutoFallsBackToProcess(t *testing.T) {
	requireBackendPossible(t, vaulttest.BackendProcess)
	var logged []string
	v := vaulttest.StartTest(t,
		vaulttest.WithImage("knotmtls/INVALID:reference"),
		vaulttest.WithLogf(func(format string, args ...any) {
			logged = append(logged, fmt.Sprintf(format, args...))
			t.Logf(format, args...)
		}))
	assert.Equal(t, "process "+vaulttest.BinaryPath(), v.Backend)
	assert.Contains(t, strings.Join(logged, "\n"), "trying a local process")
	c, err := v.Client()
	require.NoError(t, err)
	_, err = c.Sys().HealthWithContext(context.Background())
	require.NoError(t, err)
}

// importErr drops the Imported result of an ImportCertificate call, for
// tests that only check that it succeeded.
func importErr(_ vaultsource.Imported, err error) error { return err }

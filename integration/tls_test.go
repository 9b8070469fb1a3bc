package integration_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/integration/vaulttest"
	"github.com/knotmtls/knotmtls/internal/cli"
	"github.com/knotmtls/knotmtls/internal/pkitest"
	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultauth"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// Issue 9 item 1: Vault over TLS (vault server -dev-tls, a CA Vault
// generates at start), reached with https:// and the CA the way users do
// (VAULT_CACERT, api.TLSConfig), with both harness backends.

// tlsVsStart is vsStart against a Vault started WithTLS: the counting
// transport trusts the Vault's CA.
func tlsVsStart(t *testing.T, opts ...vaulttest.Option) *vsEnv {
	t.Helper()
	v := vaulttest.StartTest(t, append([]vaulttest.Option{vaulttest.WithTLS()}, opts...)...)
	require.True(t, strings.HasPrefix(v.Addr, "https://127.0.0.1:"), "addr %q", v.Addr)
	base := cleanhttp.DefaultPooledTransport()
	base.TLSClientConfig = v.TLSConfig()
	counter := &vsCounter{base: base, by: map[string]int{}}
	t.Cleanup(base.CloseIdleConnections)
	client, err := v.ClientWith(counter)
	require.NoError(t, err)
	return &vsEnv{vault: v, client: client, counter: counter, knot: knottest.NewTestServer(t)}
}

// tlsKnotCall makes one knotclient call to e's fake Knot with p's
// certificate and checks the serial the server saw.
func tlsKnotCall(t *testing.T, e *vsEnv, p *provider.Provider, leaf *x509.Certificate) {
	t.Helper()
	kc, err := knotclient.New(knotclient.Config{
		ClientID: e.knot.ClientID(), Secret: knotclient.StaticSecret(e.knot.Secret()),
		Certificates: p, BaseURL: e.knot.URL(), RootCAs: e.knot.RootCAs(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = kc.Close() })
	e.knot.Reset()
	_, err = kc.GetJWEKey(t.Context())
	require.NoError(t, err)
	reqs := e.knot.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, provider.SerialHex(leaf), reqs[0].ClientSerial)
	assert.True(t, reqs[0].AuthOK)
}

// TestTLSVaultLifecycle runs the KV and the Transit lifecycle (provision,
// Knot signs, import, fetch through a Provider, mTLS call to the fake
// Knot) against Vault over TLS, in a container and as a local process.
func TestTLSVaultLifecycle(t *testing.T) {
	for _, backend := range []string{vaulttest.BackendContainer, vaulttest.BackendProcess} {
		t.Run(backend, func(t *testing.T) {
			requireBackendPossible(t, backend) // fails under CI, skips on a laptop
			e := tlsVsStart(t, vaulttest.WithBackend(backend))
			ctx := t.Context()
			require.Contains(t, e.vault.Backend, backend)
			fileCA, err := os.ReadFile(e.vault.CACertFile)
			require.NoError(t, err)
			assert.Equal(t, e.vault.CACert, fileCA, "CACertFile holds the CA")

			t.Run("KV", func(t *testing.T) {
				kv, leaf := e.provisionKV(t, "secret", "knot/tls-"+backend)
				p := e.newProvider(t, kv)
				tlsKnotCall(t, e, p, leaf)
				assert.Positive(t, e.counter.count(http.MethodGet, "secret/data/knot/tls-"+backend), "read over https")
			})
			t.Run("Transit", func(t *testing.T) {
				require.NoError(t, e.vault.EnableTransit(ctx))
				key := "knot-tls-" + backend
				tr, leaf := e.provisionTransit(t, key)
				p := e.newProvider(t, tr)
				before := e.counter.count(http.MethodPut, "transit/sign/"+key)
				tlsKnotCall(t, e, p, leaf)
				assert.Equal(t, 1, e.counter.count(http.MethodPut, "transit/sign/"+key)-before,
					"the handshake was signed by Transit over https")
			})
			t.Run("plain http is refused", func(t *testing.T) {
				cfg := api.DefaultConfig()
				cfg.Error = nil
				cfg.Address = "http://" + strings.TrimPrefix(e.vault.Addr, "https://")
				c, err := api.NewClient(cfg)
				require.NoError(t, err)
				c.SetToken(e.vault.Token)
				_, err = c.Logical().ReadWithContext(ctx, "sys/mounts")
				require.Error(t, err)
				assert.Contains(t, err.Error(), "HTTP request to an HTTPS server")
			})
		})
	}
}

// TestTLSVaultAppRoleLogin: AppRole login and token renewal work over TLS.
func TestTLSVaultAppRoleLogin(t *testing.T) {
	env := newAuthEnv(t, vaulttest.WithTLS())
	env.enableAuth(t, "approle")
	roleID, secretID := env.appRole(t, "tls", map[string]any{"token_ttl": "1h"})
	client := env.shared(t)
	require.True(t, strings.HasPrefix(client.Address(), "https://"))
	m, err := vaultauth.AppRole(roleID, &approle.SecretID{FromString: secretID})
	require.NoError(t, err)
	a, rec, _ := authStart(t, client, m)
	t.Cleanup(func() {
		// Runs before authStart's goroutine check, which knows HTTP/1.1
		// keep-alive goroutines but not the h2 ones a TLS Vault gets.
		require.NoError(t, a.Close())
		for _, c := range []*api.Client{env.root, client} {
			c.CloneConfig().HttpClient.Transport.(*http.Transport).CloseIdleConnections()
		}
	})
	require.NoError(t, authReadKV(authCtx(t), client))
	require.Eventually(t, func() bool { st := a.Status(); return st.Watching && st.Renewals >= 1 },
		10*time.Second, 10*time.Millisecond, "events:%s", rec)
	assert.Equal(t, "approle", a.Status().Method)
}

// tlsCLI runs the knotmtls CLI in-process with the environment already set
// (t.Setenv) and returns exit code, stdout and stderr.
func tlsCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := cli.Run(ctx, args, strings.NewReader(""), &out, &errOut)
	assert.NotContains(t, out.String()+errOut.String(), "PRIVATE KEY")
	return code, out.String(), errOut.String()
}

// TestTLSVaultWrongCAIsRefused: a client that does not trust the Vault's
// CA (another CA, or the system roots) is refused at the handshake with an
// error that names the cause, from vault/api, vaultsource and the CLI
// (exit 3, "Vault: unreachable"); with VAULT_CACERT the CLI runs the
// KV lifecycle (csr, import, status) over https.
func TestTLSVaultWrongCAIsRefused(t *testing.T) {
	e := tlsVsStart(t)
	ctx := t.Context()
	other := pkitest.NewCA("not the vault ca")
	otherPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Cert.Raw})

	for _, tt := range []struct {
		name string
		ca   []byte // nil: system roots
	}{{"another CA", otherPEM}, {"system roots", nil}} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := api.DefaultConfig()
			cfg.Error = nil
			cfg.Address = e.vault.Addr
			if tt.ca != nil {
				require.NoError(t, cfg.ConfigureTLS(&api.TLSConfig{CACertBytes: tt.ca}))
			}
			c, err := api.NewClient(cfg)
			require.NoError(t, err)
			c.SetToken(e.vault.Token)
			kv, err := vaultsource.NewKV(c, "secret", "knot/wrong-ca")
			require.NoError(t, err)
			_, err = kv.Fetch(ctx)
			require.Error(t, err)
			var uae x509.UnknownAuthorityError
			var cve *tls.CertificateVerificationError
			assert.True(t, errors.As(err, &uae) || errors.As(err, &cve), "typed x509/tls error in %v", err)
			assert.Contains(t, err.Error(), "certificate signed by unknown authority")
			assert.Contains(t, err.Error(), "vaultsource: ", "the source names itself")
		})
	}

	t.Run("CLI", func(t *testing.T) {
		dir := t.TempDir()
		wrongCA := filepath.Join(dir, "wrong-ca.pem")
		require.NoError(t, os.WriteFile(wrongCA, otherPEM, 0o644))
		t.Setenv("VAULT_ADDR", e.vault.Addr)
		t.Setenv("VAULT_TOKEN", e.vault.Token)
		t.Setenv("VAULT_NAMESPACE", "")
		t.Setenv("VAULT_SKIP_VERIFY", "")
		id := []string{"--client-id", e.knot.ClientID(), "--env", "development"}

		t.Setenv("VAULT_CACERT", wrongCA)
		code, stdout, stderr := tlsCLI(t, append([]string{"status"}, id...)...)
		assert.Equal(t, 3, code, "stdout: %s\nstderr: %s", stdout, stderr)
		assert.Contains(t, stdout, "certificate signed by unknown authority", "stderr: %s", stderr)
		assert.Contains(t, stdout, "VAULT_CACERT", "the hint names the variable to fix")

		t.Setenv("VAULT_CACERT", e.vault.CACertFile)
		csrFile := filepath.Join(dir, "knot.csr")
		code, _, stderr = tlsCLI(t, append([]string{"csr", "--out", csrFile}, id...)...)
		require.Equal(t, 0, code, "stderr: %s", stderr)
		csrPEM, err := os.ReadFile(csrFile)
		require.NoError(t, err)
		certPEM, err := e.knot.SignCSR(csrPEM)
		require.NoError(t, err)
		certFile := filepath.Join(dir, "knot.crt")
		require.NoError(t, os.WriteFile(certFile, certPEM, 0o644))
		code, _, stderr = tlsCLI(t, append([]string{"import", "--cert", certFile}, id...)...)
		require.Equal(t, 0, code, "stderr: %s", stderr)
		code, stdout, stderr = tlsCLI(t, append([]string{"status"}, id...)...)
		assert.Equal(t, 0, code, "stdout: %s\nstderr: %s", stdout, stderr)
	})
}

package integration_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/knotmtls/knotmtls"
	"github.com/knotmtls/knotmtls/integration/vaulttest"
	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// composeEnv clears every variable knotmtls.ConfigFromEnv and
// api.DefaultConfig read, so the test sees only what it sets.
func composeEnv(t *testing.T, set map[string]string) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "VAULT_") || strings.HasPrefix(name, "KNOTMTLS_") || strings.HasPrefix(name, "KNOT_") {
			t.Setenv(name, "")
		}
	}
	for k, v := range set {
		t.Setenv(k, v)
	}
}

// runtimeAppRole creates an AppRole role whose tokens carry only the runtime
// policy file of docs/policies/ (ENV and CLIENT_ID replaced), and returns
// its role id and a file holding a fresh secret id.
func runtimeAppRole(t *testing.T, root *api.Client, name, policyFile, clientID string) (roleID, secretIDFile string) {
	t.Helper()
	ctx := t.Context()
	policy, err := os.ReadFile(filepath.Join("..", "docs", "policies", policyFile))
	require.NoError(t, err)
	hcl := strings.NewReplacer("ENV", "development", "CLIENT_ID", clientID).Replace(string(policy))
	require.NoError(t, root.Sys().PutPolicyWithContext(ctx, name, hcl))
	auths, err := root.Sys().ListAuthWithContext(ctx)
	require.NoError(t, err)
	if _, ok := auths["approle/"]; !ok {
		require.NoError(t, root.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &api.EnableAuthOptions{Type: "approle"}))
	}
	_, err = root.Logical().WriteWithContext(ctx, "auth/approle/role/"+name,
		map[string]any{"token_policies": name, "token_ttl": "1h"})
	require.NoError(t, err)
	s, err := root.Logical().ReadWithContext(ctx, "auth/approle/role/"+name+"/role-id")
	require.NoError(t, err)
	roleID = s.Data["role_id"].(string)
	s, err = root.Logical().WriteWithContext(ctx, "auth/approle/role/"+name+"/secret-id", nil)
	require.NoError(t, err)
	secretIDFile = filepath.Join(t.TempDir(), "secret-id")
	require.NoError(t, os.WriteFile(secretIDFile, []byte(s.Data["secret_id"].(string)), 0o600))
	return roleID, secretIDFile
}

// provisionCompose does the operator's part at the locations the CLI uses:
// key and certificate in KV or Transit, the Knot secret in KV (at the
// "-api" path both runtime policies grant, or, ungranted, elsewhere), and
// an AppRole role carrying the runtime policy.
func provisionCompose(t *testing.T, root *api.Client, knot *knottest.Server, transit, ungranted bool) (leaf *x509.Certificate, roleID, secretIDFile, secretPath string) {
	t.Helper()
	ctx := t.Context()
	clientID := knot.ClientID()
	kv, err := vaultsource.NewKV(root, vaultsource.DefaultKVMount, vaultsource.DefaultKVPath("development", clientID))
	require.NoError(t, err)
	tr, err := vaultsource.NewTransit(root, vaultsource.DefaultTransitMount, vaultsource.DefaultTransitKey("development", clientID))
	require.NoError(t, err)
	var (
		src interface {
			Provision(context.Context, string, vaultsource.Mode) ([]byte, error)
			ImportCertificate(context.Context, provider.Requirements, []byte, []byte) (vaultsource.Imported, error)
		} = kv
		policyFile = "knotmtls-runtime-kv.hcl"
	)
	if transit {
		src, policyFile = tr, "knotmtls-runtime-transit.hcl"
	}
	csr, err := src.Provision(ctx, clientID, vaultsource.ProvisionNew)
	require.NoError(t, err)
	certPEM, err := knot.SignCSR(csr)
	require.NoError(t, err)
	require.NoError(t, importErr(src.ImportCertificate(ctx, provider.Requirements{ClientID: clientID}, certPEM, nil)))
	certs, err := provider.ParseCertificates(certPEM)
	require.NoError(t, err)
	secretPath = vaultsource.DefaultKVPath("development", clientID) + "-api" // granted by both runtime policies
	if ungranted {
		secretPath = "knot/development/shared-api"
	}
	_, err = root.KVv2("secret").Put(ctx, secretPath, map[string]any{"secret": knot.Secret()})
	require.NoError(t, err)
	roleID, secretIDFile = runtimeAppRole(t, root, "knot-runtime-"+clientID, policyFile, clientID)
	return certs[0], roleID, secretIDFile, secretPath
}

// waitAudit waits (bounded) until Vault's audit log holds at least n
// requests with operation and path since then, and returns the log.
func waitAudit(t *testing.T, v *vaulttest.Vault, since time.Time, operation, path string, n int) []vaulttest.AuditRequest {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		reqs, err := v.AuditRequests(t.Context())
		require.NoError(t, err)
		if vaulttest.CountAudit(reqs, operation, path, since) >= n || time.Now().After(deadline) {
			return reqs
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// knotCAFile writes the PEM of knot's server CA to a file.
func knotCAFile(t *testing.T, knot *knottest.Server) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "knot-ca.pem")
	require.NoError(t, os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: knot.ServerCA().Raw}), 0o600))
	return f
}

// TestComposeFromEnv runs the README quick start, knotmtls.NewFromEnv,
// against a real Vault and knottest: AppRole with a secret-id file and a
// token holding only the runtime policy, the identity at the conventional
// KV or Transit location the CLI provisions, the Knot secret from the
// environment or from KV. One call logs in, reads the certificate and calls
// Knot over mTLS; one Close leaves no goroutine behind.
func TestComposeFromEnv(t *testing.T) {
	v := vaulttest.StartTest(t)
	root, err := v.Client()
	require.NoError(t, err)
	ctx := t.Context()
	require.NoError(t, v.EnableTransit(ctx))
	require.NoError(t, v.EnableAudit(ctx))

	tests := []struct {
		name      string
		transit   bool
		kvSecret  bool // the Knot secret is read from KV instead of KNOT_SECRET
		ungranted bool // the Knot secret is at a KV path the runtime policy does not grant
		wantStep  string
		wantError error
	}{
		{name: "kv, secret in the environment"},
		{name: "transit, secret in kv", transit: true, kvSecret: true},
		{name: "transit, secret in kv not granted", transit: true, kvSecret: true, ungranted: true,
			wantStep: knotmtls.StepKnotSecret, wantError: vaultsource.ErrPermissionDenied},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			knot := knottest.NewTestServer(t, knottest.WithClientID("compose-"+string(rune('a'+i))))
			clientID := knot.ClientID()

			leaf, roleID, secretIDFile, secretPath := provisionCompose(t, root, knot, tc.transit, tc.ungranted)
			caFile := knotCAFile(t, knot)

			// Service side: the environment, and one call.
			env := map[string]string{
				"VAULT_ADDR":                    v.Addr,
				knotmtls.EnvClientID:            clientID,
				knotmtls.EnvEnvironment:         "development",
				knotmtls.EnvVaultAuth:           knotmtls.AuthAppRole,
				knotmtls.EnvAppRoleRoleID:       roleID,
				knotmtls.EnvAppRoleSecretIDFile: secretIDFile,
				knotmtls.EnvKnotBaseURL:         knot.URL(),
				knotmtls.EnvKnotCAFile:          caFile,
				knotmtls.EnvSecret:              knot.Secret(),
			}
			if tc.transit {
				env[knotmtls.EnvStore] = "transit"
			}
			if tc.kvSecret {
				delete(env, knotmtls.EnvSecret)
				env[knotmtls.EnvSecretKVPath] = secretPath
			}
			composeEnv(t, env)

			ignore := goleak.IgnoreCurrent()
			since := time.Now()
			c, err := knotmtls.NewFromEnv(ctx)
			if tc.wantStep != "" {
				require.Nil(t, c)
				var se *knotmtls.SetupError
				require.ErrorAs(t, err, &se)
				assert.Equal(t, tc.wantStep, se.Step)
				require.ErrorIs(t, err, tc.wantError)
				assert.NotContains(t, err.Error(), knot.Secret())
				goleak.VerifyNone(t, ignore)
				return
			}
			require.NoError(t, err)
			t.Logf("composed: %v", c)

			session, err := c.Knot().CreateSession(ctx, knotclient.CreateSessionRequest{
				Type: knotclient.SessionCardSwitcher, ExternalUserID: "user-123", CardID: "card-456",
			})
			require.NoError(t, err)
			assert.NotEmpty(t, session.Session)
			reqs := knot.Requests()
			require.Len(t, reqs, 1)
			assert.Equal(t, provider.SerialHex(leaf), reqs[0].ClientSerial, "the certificate stored in Vault was presented")
			assert.True(t, reqs[0].AuthOK)
			require.NotNil(t, c.Auth())
			assert.Equal(t, 1, c.Auth().Status().Logins, "one AppRole login")

			// What the one call and the one Knot request cost in Vault, by
			// Vault's own audit log.
			audit := waitAudit(t, v, since, "update", "auth/approle/login", 1)
			byPath := map[string]int{}
			for _, r := range audit {
				if !r.Time.Before(since) {
					byPath[r.Operation+" "+r.Path]++
				}
			}
			t.Logf("figures: vault requests for NewFromEnv + one CreateSession: %v", byPath)
			assert.Equal(t, 1, byPath["update auth/approle/login"], "one login")
			if tc.transit {
				key := vaultsource.DefaultTransitKey("development", clientID)
				assert.Equal(t, 1, byPath["update transit/sign/"+key], "one new connection, one Transit signature")
			}

			// Least privilege holds: the runtime token cannot replace the key.
			_, err = vaultsource.ProvisionKV(ctx, c.Vault(), "secret", vaultsource.DefaultKVPath("development", clientID),
				clientID, vaultsource.ProvisionForce)
			require.ErrorIs(t, err, vaultsource.ErrPermissionDenied)

			require.NoError(t, c.Close())
			require.NoError(t, c.Close(), "Close is idempotent")
			_, err = c.Knot().GetJWEKey(ctx)
			require.ErrorIs(t, err, knotclient.ErrClosed)
			goleak.VerifyNone(t, ignore, goleak.IgnoreAnyFunction("net/http.(*conn).serve")) // knottest's side
		})
	}
}

// TestComposeFromEnvVaultProxy: KNOTMTLS_VAULT_AUTH=proxy with
// VAULT_AGENT_ADDR pointing at a real Vault Proxy (AppRole auto-auth,
// use_auto_auth_token): the service holds no token and does no login, and
// the Transit identity and the Knot secret in KV are reached through the
// proxy.
func TestComposeFromEnvVaultProxy(t *testing.T) {
	requireBackendPossible(t, vaulttest.BackendProcess) // the proxy runs the cached binary
	v := vaulttest.StartTest(t)
	root, err := v.Client()
	require.NoError(t, err)
	ctx := t.Context()
	require.NoError(t, v.EnableTransit(ctx))
	knot := knottest.NewTestServer(t, knottest.WithClientID("compose-proxy"))
	leaf, roleID, secretIDFile, secretPath := provisionCompose(t, root, knot, true, false)
	secretID, err := os.ReadFile(secretIDFile)
	require.NoError(t, err)
	px, err := vaulttest.StartProxy(ctx, v, vaulttest.ProxyAppRole{RoleID: roleID, SecretID: string(secretID)}, vaulttest.WithLogf(t.Logf))
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vault proxy output:\n%s", px.Logs())
		}
		_ = px.Stop(context.Background())
	})

	composeEnv(t, map[string]string{
		"VAULT_AGENT_ADDR":       px.Addr,
		knotmtls.EnvClientID:     knot.ClientID(),
		knotmtls.EnvEnvironment:  "development",
		knotmtls.EnvVaultAuth:    knotmtls.AuthProxy,
		knotmtls.EnvStore:        "transit",
		knotmtls.EnvSecretKVPath: secretPath,
		knotmtls.EnvKnotBaseURL:  knot.URL(),
		knotmtls.EnvKnotCAFile:   knotCAFile(t, knot),
	})
	ignore := goleak.IgnoreCurrent()
	c, err := knotmtls.NewFromEnv(ctx)
	require.NoError(t, err)
	t.Logf("composed: %v", c)
	require.NotNil(t, c.Proxy())
	assert.Nil(t, c.Auth(), "no login of its own")
	assert.Empty(t, c.Vault().Token(), "the service holds no token")
	assert.Equal(t, px.Addr, c.Vault().Address())

	_, err = c.Knot().GetJWEKey(ctx)
	require.NoError(t, err, "a handshake signed by Transit through the proxy")
	reqs := knot.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, provider.SerialHex(leaf), reqs[0].ClientSerial)
	assert.True(t, reqs[0].AuthOK, "the Knot secret read through the proxy")

	require.NoError(t, c.Close())
	goleak.VerifyNone(t, ignore, goleak.IgnoreAnyFunction("net/http.(*conn).serve"))
}

package knotmtls

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/internal/pkitest"
	"github.com/knotmtls/knotmtls/knotclient"
)

const envSecretMarker = "MARKER-env-s3cr3t-41d9"

// base is the smallest complete environment: AppRole login, secret in the
// environment.
func base() map[string]string {
	return map[string]string{
		EnvClientID:            "acme",
		EnvEnvironment:         "production",
		EnvSecret:              envSecretMarker,
		EnvVaultAuth:           AuthAppRole,
		EnvAppRoleRoleID:       "role-1",
		EnvAppRoleSecretIDFile: "/run/secrets/secret-id",
	}
}

func with(m map[string]string, kv ...string) map[string]string {
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(m, kv[i])
		} else {
			m[kv[i]] = kv[i+1]
		}
	}
	return m
}

func lookup(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestConfigFromEnvReadsEachLoginMethod: each KNOTMTLS_VAULT_AUTH value
// gives its method (named by its redacted String), the Proxy mode, and the
// locations and Knot settings the variables say.
func TestConfigFromEnvReadsEachLoginMethod(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, cfg Config)
	}{
		{"approle", base(), func(t *testing.T, cfg Config) {
			assert.Equal(t, "vaultauth.approle(redacted)", fmt.Sprint(cfg.Login))
			assert.Equal(t, "acme", cfg.ClientID)
			assert.Equal(t, knotclient.Production, cfg.Environment)
			got, err := cfg.Secret.Secret(context.Background())
			require.NoError(t, err)
			assert.Equal(t, envSecretMarker, got)
			kind, mount, name, v := cfg.location()
			assert.Equal(t, []any{"kv", "secret", "knot/production/acme", 2}, []any{kind, mount, name, v})
		}},
		{"approle wrapped", with(base(), EnvAppRoleWrapped, "true", EnvAppRoleMount, "ar"), func(t *testing.T, cfg Config) {
			assert.Equal(t, "vaultauth.approle(redacted)", fmt.Sprint(cfg.Login))
		}},
		{"kubernetes", with(base(), EnvVaultAuth, AuthKubernetes, EnvAppRoleRoleID, "", EnvAppRoleSecretIDFile, "",
			EnvK8sRole, "knot-client"), func(t *testing.T, cfg Config) {
			assert.Equal(t, "vaultauth.perLogin", fmt.Sprintf("%T", cfg.Login), "a fresh upstream helper per login")
		}},
		{"token file", with(base(), EnvVaultAuth, AuthTokenFile, EnvAppRoleRoleID, "", EnvAppRoleSecretIDFile, "",
			EnvTokenFile, "/run/vault/token"), func(t *testing.T, cfg Config) {
			assert.Equal(t, "*vaultauth.TokenFile", fmt.Sprintf("%T", cfg.Login))
		}},
		{"token", with(base(), EnvVaultAuth, AuthToken, EnvAppRoleRoleID, "", EnvAppRoleSecretIDFile, "",
			"VAULT_TOKEN", "hvs.x"), func(t *testing.T, cfg Config) {
			assert.Equal(t, "vaultauth.Token(redacted)", fmt.Sprint(cfg.Login))
		}},
		{"userpass", with(base(), EnvVaultAuth, AuthUserpass, EnvAppRoleRoleID, "", EnvAppRoleSecretIDFile, "",
			EnvUserpassUsername, "dev", EnvUserpassPasswordFile, "/tmp/pw"), func(t *testing.T, cfg Config) {
			assert.Equal(t, "vaultauth.userpass(redacted)", fmt.Sprint(cfg.Login))
		}},
		{"proxy", with(base(), EnvVaultAuth, AuthProxy, EnvAppRoleRoleID, "", EnvAppRoleSecretIDFile, ""),
			func(t *testing.T, cfg Config) {
				assert.True(t, cfg.Proxy)
				assert.Nil(t, cfg.Login)
			}},
		{"transit with a key of its own", with(base(), EnvStore, "transit", EnvTransitKey, "k1"), func(t *testing.T, cfg Config) {
			kind, mount, name, _ := cfg.location()
			assert.Equal(t, []string{"transit", "transit", "k1"}, []string{kind, mount, name})
		}},
		{"transit default key", with(base(), EnvStore, "transit"), func(t *testing.T, cfg Config) {
			_, _, name, _ := cfg.location()
			assert.Equal(t, "knot-production-acme", name)
		}},
		{"kv v1 elsewhere, secret in kv", with(base(), EnvSecret, "", EnvSecretKVPath, "knot/production/api",
			EnvSecretKVField, "pw", EnvKVMount, "kv1", EnvKVVersion, "1", EnvKVPath, "ids/acme"), func(t *testing.T, cfg Config) {
			assert.Nil(t, cfg.Secret)
			assert.Equal(t, "knot/production/api", cfg.SecretKVPath)
			assert.Equal(t, "pw", cfg.SecretField)
			kind, mount, name, v := cfg.location()
			assert.Equal(t, []any{"kv", "kv1", "ids/acme", 1}, []any{kind, mount, name, v})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := configFromEnv(lookup(tc.env))
			require.NoError(t, err)
			require.NoError(t, cfg.validate(&options{}), "what the environment gives, New accepts")
			tc.check(t, cfg)
		})
	}
}

// TestConfigFromEnvPointsAtATestServer: KNOTMTLS_KNOT_BASE_URL and
// KNOTMTLS_KNOT_CA_FILE become Knot.BaseURL and Knot.RootCAs.
func TestConfigFromEnvPointsAtATestServer(t *testing.T) {
	ca := pkitest.NewCA("env-test-ca")
	file := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}), 0o600))
	cfg, err := configFromEnv(lookup(with(base(), EnvKnotBaseURL, "https://127.0.0.1:8443", EnvKnotCAFile, file)))
	require.NoError(t, err)
	assert.Equal(t, "https://127.0.0.1:8443", cfg.Knot.BaseURL)
	require.NotNil(t, cfg.Knot.RootCAs)
	want := x509.NewCertPool()
	want.AddCert(ca.Cert)
	assert.True(t, want.Equal(cfg.Knot.RootCAs))
}

// TestConfigFromEnvListsEveryProblem: missing, malformed and
// contradictory variables are reported together, naming the variables,
// never the secret's value.
func TestConfigFromEnvListsEveryProblem(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"empty environment", map[string]string{}, []string{
			"KNOT_CLIENT_ID is required", "KNOT_ENVIRONMENT is required", "the Knot secret is required",
			"KNOTMTLS_VAULT_AUTH is required: approle, kubernetes, proxy, token, token-file, userpass"}},
		{"unknown environment", with(base(), EnvEnvironment, "sandbox"), []string{`KNOT_ENVIRONMENT="sandbox"`}},
		{"secret twice", with(base(), EnvSecretKVPath, "knot/api"), []string{"KNOT_SECRET and KNOTMTLS_SECRET_KV_PATH exclude each other"}},
		{"secret field alone", with(base(), EnvSecretKVField, "f"), []string{"KNOTMTLS_SECRET_KV_FIELD applies only with KNOTMTLS_SECRET_KV_PATH"}},
		{"approle without its parameters", with(base(), EnvAppRoleRoleID, "", EnvAppRoleSecretIDFile, ""), []string{
			"KNOTMTLS_VAULT_AUTH=approle needs KNOTMTLS_APPROLE_ROLE_ID", "KNOTMTLS_VAULT_AUTH=approle needs KNOTMTLS_APPROLE_SECRET_ID_FILE"}},
		{"approle wrapped not a bool", with(base(), EnvAppRoleWrapped, "yes please"), []string{`KNOTMTLS_APPROLE_WRAPPED="yes please"`}},
		{"another method's parameter", with(base(), EnvK8sRole, "r"), []string{"KNOTMTLS_K8S_ROLE applies only with KNOTMTLS_VAULT_AUTH=kubernetes"}},
		{"unknown method", with(base(), EnvVaultAuth, "ldap"), []string{`KNOTMTLS_VAULT_AUTH="ldap"`}},
		{"token without VAULT_TOKEN", with(base(), EnvVaultAuth, AuthToken, EnvAppRoleRoleID, "", EnvAppRoleSecretIDFile, ""),
			[]string{"KNOTMTLS_VAULT_AUTH=token needs VAULT_TOKEN"}},
		{"kubernetes without a role", with(base(), EnvVaultAuth, AuthKubernetes, EnvAppRoleRoleID, "", EnvAppRoleSecretIDFile, ""),
			[]string{"KNOTMTLS_VAULT_AUTH=kubernetes needs KNOTMTLS_K8S_ROLE"}},
		{"unknown store", with(base(), EnvStore, "pki"), []string{`KNOTMTLS_STORE="pki"`}},
		{"transit and a kv path", with(base(), EnvStore, "transit", EnvKVPath, "x"), []string{"KNOTMTLS_KV_PATH applies only with KNOTMTLS_STORE=kv"}},
		{"kv and a transit key", with(base(), EnvTransitKey, "k"), []string{"KNOTMTLS_TRANSIT_KEY applies only with KNOTMTLS_STORE=transit"}},
		{"kv version", with(base(), EnvKVVersion, "3"), []string{`KNOTMTLS_KV_VERSION="3"`}},
		{"kv mount with transit", with(base(), EnvStore, "transit", EnvKVMount, "kv"), []string{"KNOTMTLS_KV_MOUNT is unused with KNOTMTLS_STORE=transit"}},
		{"ca file missing", with(base(), EnvKnotCAFile, "/nonexistent/ca.pem"), []string{"KNOTMTLS_KNOT_CA_FILE: open /nonexistent/ca.pem"}},
		{"ca file not PEM", with(base(), EnvKnotCAFile, notPEM), []string{"no PEM certificate in it"}},
		{"several at once", with(base(), EnvClientID, "", EnvStore, "pki", EnvK8sRole, "r", EnvAppRoleRoleID, ""), []string{
			"KNOT_CLIENT_ID is required", `KNOTMTLS_STORE="pki"`, "KNOTMTLS_K8S_ROLE applies only", "needs KNOTMTLS_APPROLE_ROLE_ID"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := configFromEnv(lookup(tc.env))
			require.ErrorIs(t, err, ErrInvalidConfig)
			assert.Zero(t, cfg.ClientID, "no half-read Config")
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			require.Len(t, ce.Problems, len(tc.want), "problems: %q", ce.Problems)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), envSecretMarker)
		})
	}
}

package knotmtls_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/knotmtls/knotmtls"
	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultauth"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// fakeVault is an HTTP server standing in for Vault that counts requests
// and answers each with status.
func fakeVault(t *testing.T, status int) (*api.Client, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"errors":["permission denied"]}`))
	}))
	t.Cleanup(srv.Close)
	cfg := api.DefaultConfig()
	cfg.Address = srv.URL
	cfg.MaxRetries = 0
	vc, err := api.NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(cfg.HttpClient.CloseIdleConnections)
	return vc, &n
}

// validConfig is a complete configuration (with WithVaultClient).
func validConfig() knotmtls.Config {
	return knotmtls.Config{
		ClientID:    "acme",
		Environment: knotclient.Development,
		Login:       vaultauth.Token("hvs.test"),
		Secret:      knotclient.StaticSecret("s3cret"),
	}
}

// TestNewRefusesIncompleteOrContradictoryConfig: each missing or
// contradictory setting is one problem of one *ConfigError, every problem is
// listed at once, and nothing reaches Vault.
func TestNewRefusesIncompleteOrContradictoryConfig(t *testing.T) {
	vc, requests := fakeVault(t, http.StatusForbidden)
	static := provider.SourceFunc(func(context.Context) (*provider.Bundle, error) { return nil, errors.New("unused") })
	tests := []struct {
		name   string
		modify func(*knotmtls.Config)
		want   []string // one substring per expected problem
	}{
		{"no client_id", func(c *knotmtls.Config) { c.ClientID = "" }, []string{"ClientID is required"}},
		{"client_id with a slash", func(c *knotmtls.Config) { c.ClientID = "a/b" }, []string{`ClientID "a/b" contains`}},
		{"no environment", func(c *knotmtls.Config) { c.Environment = "" }, []string{"Environment is required"}},
		{"unknown environment", func(c *knotmtls.Config) { c.Environment = "staging" }, []string{`Environment "staging"`}},
		{"no login", func(c *knotmtls.Config) { c.Login = nil }, []string{"a Vault login is required"}},
		{"login and proxy", func(c *knotmtls.Config) { c.Proxy = true }, []string{"Login and Proxy exclude each other"}},
		{"auth options with proxy", func(c *knotmtls.Config) {
			c.Login, c.Proxy = nil, true
			c.AuthOptions = []vaultauth.Option{vaultauth.WithRevokeTimeout(1)}
		}, []string{"AuthOptions apply only with Login"}},
		{"proxy options with login", func(c *knotmtls.Config) {
			c.ProxyOptions = []vaultauth.ProxyOption{vaultauth.WithProxyWait(1)}
		}, []string{"ProxyOptions apply only with Proxy"}},
		{"source and transit", func(c *knotmtls.Config) {
			c.Source, c.Login, c.Transit = static, nil, true
		}, []string{"Transit does not apply with Source"}},
		{"source and a kv path", func(c *knotmtls.Config) {
			c.Source, c.Login, c.KVPath = static, nil, "knot/x"
		}, []string{"KVPath does not apply with Source"}},
		{"source without vault, with a login", func(c *knotmtls.Config) { c.Source = static },
			[]string{"WithVaultClient, Login and Proxy are unused with Source"}},
		{"transit and a kv path", func(c *knotmtls.Config) { c.Transit, c.KVPath = true, "knot/x" },
			[]string{"KVPath and KVOptions do not apply with Transit"}},
		{"transit key without transit", func(c *knotmtls.Config) { c.TransitKey = "k" },
			[]string{"apply only with Transit"}},
		{"kv version 3", func(c *knotmtls.Config) { c.KVVersion = 3 }, []string{"KVVersion 3"}},
		{"kv mount with transit, secret elsewhere", func(c *knotmtls.Config) { c.Transit, c.KVMount = true, "kv" },
			[]string{"KVMount and KVVersion locate the KV identity or SecretKVPath"}},
		{"no knot secret", func(c *knotmtls.Config) { c.Secret = nil }, []string{"the Knot secret is required"}},
		{"secret twice", func(c *knotmtls.Config) { c.SecretKVPath = "knot/api" },
			[]string{"Secret and SecretKVPath exclude each other"}},
		{"secret field without kv path", func(c *knotmtls.Config) { c.SecretField = "f" },
			[]string{"SecretField applies only with SecretKVPath"}},
		{"knot fields New sets", func(c *knotmtls.Config) {
			c.Knot.ClientID, c.Knot.Certificates = "acme", noCertificate{}
		}, []string{"Knot.ClientID is set by New", "Knot.Certificates is set by New"}},
		{"empty config: every problem at once", func(c *knotmtls.Config) { *c = knotmtls.Config{} },
			[]string{"ClientID is required", "Environment is required", "a Vault login is required", "the Knot secret is required"}},
		{"several contradictions at once", func(c *knotmtls.Config) {
			c.Environment, c.Proxy, c.Transit, c.KVPath, c.SecretKVPath, c.KVVersion = "prod", true, true, "p", "s", 5
		}, []string{`Environment "prod"`, "Login and Proxy", "KVPath and KVOptions", "KVVersion 5", "Secret and SecretKVPath"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validConfig()
			tc.modify(&cfg)
			var opts []knotmtls.Option
			if cfg.Source == nil || cfg.Login != nil {
				opts = append(opts, knotmtls.WithVaultClient(vc))
			}
			c, err := knotmtls.New(t.Context(), cfg, opts...)
			require.Nil(t, c)
			require.ErrorIs(t, err, knotmtls.ErrInvalidConfig)
			var ce *knotmtls.ConfigError
			require.ErrorAs(t, err, &ce)
			require.Len(t, ce.Problems, len(tc.want), "problems: %q", ce.Problems)
			for i, w := range tc.want {
				assert.Contains(t, ce.Problems[i], w)
				assert.Contains(t, err.Error(), w)
			}
			assert.Zero(t, requests.Load(), "nothing reached Vault")
		})
	}
}

// noCertificate is a certificate getter that has none.
type noCertificate struct{}

func (noCertificate) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return nil, errors.New("no certificate")
}

// TestNewWithOwnSourceAgainstKnottest: with a Source of its own (no Vault),
// New builds the provider and the Knot client; the client presents the
// certificate, and Close closes everything once, leaving no goroutine.
func TestNewWithOwnSourceAgainstKnottest(t *testing.T) {
	knot := knottest.NewTestServer(t)
	b, err := knot.IssueClient()
	require.NoError(t, err)
	ignore := goleak.IgnoreCurrent()

	c, err := knotmtls.New(t.Context(), knotmtls.Config{
		ClientID:    knot.ClientID(),
		Environment: knotclient.Development,
		Source:      provider.Static(b),
		Secret:      knotclient.StaticSecret(knot.Secret()),
		Knot:        knotclient.Config{BaseURL: knot.URL(), RootCAs: knot.RootCAs()},
	})
	require.NoError(t, err)
	assert.Nil(t, c.Vault())
	assert.Nil(t, c.Auth())
	assert.Nil(t, c.Proxy())

	s, err := c.Knot().CreateSession(t.Context(), knotclient.CreateSessionRequest{
		Type: knotclient.SessionCardSwitcher, ExternalUserID: "user-1", CardID: "card-1",
	})
	require.NoError(t, err)
	assert.NotEmpty(t, s.Session)
	reqs := knot.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, provider.SerialHex(b.Leaf()), reqs[0].ClientSerial)
	assert.True(t, reqs[0].AuthOK)

	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "Close is idempotent")
	_, err = c.Certificates().Bundle(t.Context())
	require.ErrorIs(t, err, provider.ErrClosed)
	_, err = c.Knot().GetJWEKey(t.Context())
	require.ErrorIs(t, err, knotclient.ErrClosed)
	goleak.VerifyNone(t, ignore, goleak.IgnoreAnyFunction("net/http.(*conn).serve"))
}

// TestNewFailsFastAtTheFirstCertificate: a certificate for another
// client_id fails New with a SetupError naming the step and wrapping the
// provider's typed error, and the provider New started is closed.
func TestNewFailsFastAtTheFirstCertificate(t *testing.T) {
	knot := knottest.NewTestServer(t)
	b, err := knot.IssueClientCN("someone-else")
	require.NoError(t, err)
	ignore := goleak.IgnoreCurrent()

	c, err := knotmtls.New(t.Context(), knotmtls.Config{
		ClientID:    knot.ClientID(),
		Environment: knotclient.Development,
		Source:      provider.Static(b),
		Secret:      knotclient.StaticSecret(knot.Secret()),
	})
	require.Nil(t, c)
	var se *knotmtls.SetupError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, knotmtls.StepFirstCertificate, se.Step)
	require.ErrorIs(t, err, provider.ErrSubjectCN)
	goleak.VerifyNone(t, ignore)
}

// TestNewFailsFastAtTheVaultLogin: a Vault that refuses the token fails
// New at the login step with vaultauth's typed error; the Auth is closed.
func TestNewFailsFastAtTheVaultLogin(t *testing.T) {
	vc, requests := fakeVault(t, http.StatusForbidden)
	ignore := goleak.IgnoreCurrent()
	c, err := knotmtls.New(t.Context(), validConfig(), knotmtls.WithVaultClient(vc))
	require.Nil(t, c)
	var se *knotmtls.SetupError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, knotmtls.StepVaultLogin, se.Step)
	var le *vaultauth.LoginError
	require.ErrorAs(t, err, &le)
	assert.Positive(t, requests.Load(), "the login reached Vault")
	goleak.VerifyNone(t, ignore, goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"), goleak.IgnoreAnyFunction("net/http.(*conn).serve"))
}

// TestSetupErrorUnwraps: a SetupError exposes the vaultsource sentinel of
// its cause.
func TestSetupErrorUnwraps(t *testing.T) {
	err := error(&knotmtls.SetupError{Step: knotmtls.StepKnotSecret, Err: vaultsource.ErrSecretNotFound})
	assert.ErrorIs(t, err, vaultsource.ErrSecretNotFound)
	assert.Equal(t, "knotmtls: knot secret: "+vaultsource.ErrSecretNotFound.Error(), err.Error())
}

// TestNewChecksTheVaultEnvironmentWithTheRest: the VAULT_* settings New
// reads through api.DefaultConfig are checked before any request, listed
// with the other problems, and VAULT_SKIP_VERIFY is refused.
func TestNewChecksTheVaultEnvironmentWithTheRest(t *testing.T) {
	vc, requests := fakeVault(t, http.StatusOK)
	t.Setenv("VAULT_ADDR", vc.Address()) // what New would contact
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"unparsable variable", map[string]string{"VAULT_MAX_RETRIES": "many"},
			[]string{"the VAULT_* environment is invalid", "ClientID is required"}},
		{"skip verify", map[string]string{"VAULT_SKIP_VERIFY": "true"},
			[]string{"VAULT_SKIP_VERIFY is set", "ClientID is required"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cfg := validConfig()
			cfg.ClientID = ""
			_, err := knotmtls.New(t.Context(), cfg)
			var ce *knotmtls.ConfigError
			require.ErrorAs(t, err, &ce)
			require.Len(t, ce.Problems, len(tc.want), "problems: %q", ce.Problems)
			for i, w := range tc.want {
				assert.Contains(t, ce.Problems[i], w)
			}

			// NewFromEnv lists them with the environment's own problems.
			t.Setenv(knotmtls.EnvClientID, "")
			_, err = knotmtls.NewFromEnv(t.Context())
			require.ErrorAs(t, err, &ce)
			assert.Contains(t, err.Error(), "KNOT_CLIENT_ID is required")
			assert.Contains(t, err.Error(), tc.want[0])
			assert.Zero(t, requests.Load())
		})
	}
}

package knotmtls_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls"
	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultauth"
)

const (
	markerSecret = "MARKER-s3cr3t-5e0b77aa"
	markerToken  = "hvs.MARKER-v4ult-t0ken-c21f"
)

// verbs are the fmt verbs every value is printed with (as in knotclient's
// TestNoSecretUnderAnyVerb).
var verbs = []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"}

// markers are the forms in which the Knot secret or the Vault token could
// show up: raw, as the Basic-auth token, hex-encoded.
func markers(clientID string) []string {
	var out []string
	for _, s := range []string{markerSecret, markerToken} {
		out = append(out, s, hex.EncodeToString([]byte(s)), strings.ToUpper(hex.EncodeToString([]byte(s))))
	}
	return append(out, base64.StdEncoding.EncodeToString([]byte(clientID+":"+markerSecret)))
}

// leaks prints value under every verb, by slog (text and JSON) and, for an
// error, every Error() of its chain, and returns the outputs holding a
// marker.
func leaks(value any, marks []string) map[string]string {
	outputs := map[string]string{}
	for _, verb := range verbs {
		outputs[verb] = fmt.Sprintf(verb, value)
	}
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("event", "value", value)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("event", "value", value)
	outputs["slog text"], outputs["slog JSON"] = text.String(), js.String()
	if err, ok := value.(error); ok {
		for i := 0; err != nil; i++ {
			outputs[fmt.Sprintf("Error() of wrapped error %d", i)] = err.Error()
			err = errors.Unwrap(err)
		}
	}
	found := map[string]string{}
	for how, out := range outputs {
		for _, m := range marks {
			if strings.Contains(out, m) {
				found[how] = out
			}
		}
	}
	return found
}

// TestNoSecretUnderAnyVerb: Config, Client, ConfigError and SetupError
// never print the Knot secret or the Vault token, under any fmt verb, by
// value, by pointer, as a copy, inside a caller's struct (unexported fields,
// where fmt cannot call their methods), through slog or in error messages.
func TestNoSecretUnderAnyVerb(t *testing.T) {
	knot := knottest.NewTestServer(t)
	b, err := knot.IssueClient()
	require.NoError(t, err)

	// A login method holding the token.
	cfg := knotmtls.Config{
		ClientID:    knot.ClientID(),
		Environment: knotclient.Development,
		Login:       vaultauth.Token(markerToken),
		Secret:      knotclient.StaticSecret(markerSecret),
		Knot:        knotclient.Config{BaseURL: knot.URL(), RootCAs: knot.RootCAs()},
	}

	// A Client reaching both: the Knot secret read from a Vault KV secret
	// (Proxy mode, no login), and the Vault client holding the token.
	kv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/secret/data/knot/development/api" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"data":{"data":{"secret":"` + markerSecret + `"},"metadata":{"version":1}}}`))
	}))
	t.Cleanup(kv.Close)
	kvcfg := api.DefaultConfig()
	kvcfg.Address = kv.URL
	kvc, err := api.NewClient(kvcfg)
	require.NoError(t, err)
	t.Cleanup(kvcfg.HttpClient.CloseIdleConnections)
	client, err := knotmtls.New(t.Context(), knotmtls.Config{
		ClientID:     knot.ClientID(),
		Environment:  knotclient.Development,
		Proxy:        true,
		Source:       provider.Static(b),
		SecretKVPath: "knot/development/api",
		Knot:         knotclient.Config{BaseURL: knot.URL(), RootCAs: knot.RootCAs()},
	}, knotmtls.WithVaultClient(kvc))
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	kvc.SetToken(markerToken) // as a proxy-less login would have
	_, err = client.Knot().GetJWEKey(t.Context())
	var ke *knotclient.Error
	require.ErrorAs(t, err, &ke, "the marker is not knottest's secret")
	assert.Equal(t, http.StatusUnauthorized, ke.StatusCode)
	require.Same(t, kvc, client.Vault())
	require.NotNil(t, client.Proxy())

	// Errors: a refused configuration, and a failed login whose token is
	// the marker.
	_, cfgErr := knotmtls.New(t.Context(), knotmtls.Config{Login: vaultauth.Token(markerToken), Secret: knotclient.StaticSecret(markerSecret)})
	require.ErrorIs(t, cfgErr, knotmtls.ErrInvalidConfig)
	deny, _ := fakeVault(t, http.StatusForbidden)
	deny.SetToken(markerToken)
	_, loginErr := knotmtls.New(t.Context(), cfg, knotmtls.WithVaultClient(deny))
	var se *knotmtls.SetupError
	require.ErrorAs(t, loginErr, &se)

	// AppRole with the secret-id given as a string: the upstream helper
	// keeps it in a plain field.
	approleLogin, err := vaultauth.AppRole("role-id", &approle.SecretID{FromString: markerToken})
	require.NoError(t, err)
	approleCfg := cfg
	approleCfg.Login = approleLogin

	type holder struct {
		cfg    knotmtls.Config
		ar     knotmtls.Config
		client knotmtls.Client
		ptr    *knotmtls.Client
		err    error
	}
	held := holder{cfg: cfg, ar: approleCfg, client: *client, ptr: client, err: loginErr}
	values := []struct {
		name  string
		value any
	}{
		{"Config", cfg},
		{"*Config", &cfg},
		{"Config with an AppRole login", approleCfg},
		{"*Client", client},
		{"Client (copy)", *client},
		{"values in unexported fields", held},
		{"*values in unexported fields", &held},
		{"*ConfigError", cfgErr},
		{"*SetupError: login refused", loginErr},
	}
	marks := markers(knot.ClientID())
	for _, tc := range values {
		t.Run(tc.name, func(t *testing.T) {
			for how, out := range leaks(tc.value, marks) {
				t.Errorf("%s prints a secret or token form:\n%s", how, out)
			}
		})
	}

	// The check finds a leak where there is one.
	type leaky struct{ Token, Secret string }
	assert.NotEmpty(t, leaks(leaky{markerToken, markerSecret}, marks), "the markers find a leak")
}

// TestConfigAndClientDescribeThemselves: what Config and Client print
// instead of their fields.
func TestConfigAndClientDescribeThemselves(t *testing.T) {
	cfg := knotmtls.Config{
		ClientID:    "acme",
		Environment: knotclient.Production,
		Login:       vaultauth.Token(markerToken),
		Secret:      knotclient.StaticSecret(markerSecret),
		Transit:     true,
	}
	want := `knotmtls.Config{ClientID:"acme", Environment:"production", Transit:transit/keys/knot-production-acme, Login:vaultauth.staticToken, Secret:REDACTED, Knot:knotclient.Config{ClientID:"", Secret:<nil>, Certificates:<nil>}}`
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		assert.Equal(t, want, fmt.Sprintf(verb, cfg), verb)
	}
	cfg.Transit, cfg.Login, cfg.Proxy, cfg.Secret, cfg.SecretKVPath = false, nil, true, nil, "knot/production/api"
	assert.Equal(t, `knotmtls.Config{ClientID:"acme", Environment:"production", KV:v2 secret/knot/production/acme, Proxy:true, SecretKVPath:"knot/production/api", Knot:knotclient.Config{ClientID:"", Secret:<nil>, Certificates:<nil>}}`,
		fmt.Sprint(cfg))
}

package vaultauth_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/userpass"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/vaultauth"
)

// TestNoSecretUnderAnyVerb: the Auth, its methods' values, Proxy, Status,
// Event and LoginError print no token, secret-id or password under %v %+v
// %#v %s, nor through slog's text and JSON handlers, even when logged in
// (the token is on the client, reached through unexported fields).
func TestNoSecretUnderAnyVerb(t *testing.T) {
	leakCheck(t)
	const (
		token    = "hvs.MARKER-token-5f1e"
		secretID = "MARKER-secret-id-77aa"
		password = "MARKER-password-0b0b"
	)
	dir := t.TempDir()
	tokenPath := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenPath, []byte(token), 0o600))
	ar, err := vaultauth.AppRole("role", &approle.SecretID{FromString: secretID})
	require.NoError(t, err)
	up, err := vaultauth.Userpass("dev", &userpass.Password{FromString: password})
	require.NoError(t, err)

	v := newTokenVault()
	client := v.serve(t)
	v.setValid(token, true)
	logged, err := vaultauth.New(client, vaultauth.Token(token), vaultauth.WithLogger(quietLogger()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = logged.Close() })
	require.NoError(t, logged.Start(context.Background()))
	require.Equal(t, token, client.Token(), "logged in: the token is reachable from the Auth")
	proxyClient, err := api.NewClient(&api.Config{Address: "http://127.0.0.1:1"})
	require.NoError(t, err)
	proxyClient.SetToken(token)
	proxy, err := vaultauth.NewProxy(proxyClient, vaultauth.WithLogger(quietLogger()))
	require.NoError(t, err)
	lerr := &vaultauth.LoginError{Method: "approle", Reason: "start", Err: fmt.Errorf("boom")}

	values := map[string]any{
		"auth":        logged,
		"token":       vaultauth.Token(token),
		"token file":  &vaultauth.TokenFile{Path: tokenPath},
		"approle":     ar,
		"userpass":    up,
		"proxy":       proxy,
		"status":      logged.Status(),
		"event":       vaultauth.Event{Kind: vaultauth.EventLogin, Method: "static token"},
		"login error": lerr,
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			var text, js bytes.Buffer
			slog.New(slog.NewTextHandler(&text, nil)).Info("x", "v", v)
			slog.New(slog.NewJSONHandler(&js, nil)).Info("x", "v", v)
			outputs := map[string]string{
				"%v": fmt.Sprintf("%v", v), "%+v": fmt.Sprintf("%+v", v), "%#v": fmt.Sprintf("%#v", v),
				"%s": fmt.Sprintf("%s", v), "slog text": text.String(), "slog json": js.String(),
			}
			for verb, out := range outputs {
				for _, secret := range []string{token, secretID, password} {
					assert.NotContains(t, out, secret, "%s of %s", verb, name)
				}
			}
		})
	}
}

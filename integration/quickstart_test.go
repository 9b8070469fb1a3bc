package integration_test

import (
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/integration/vaulttest"
	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultauth"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// TestReadmeQuickStart runs the README's quick start (Example_quickStart in
// vaultsource) against a real Vault and the fake Knot. Two substitutions,
// because there is no Kubernetes API here: the service logs in with AppRole
// instead of Kubernetes (same vaultsource.Auth code path), and Knot is
// knottest (BaseURL and RootCAs instead of Environment). The service's token
// carries only docs/policies/knotmtls-runtime-kv.hcl.
func TestReadmeQuickStart(t *testing.T) {
	ctx := t.Context()
	v := vaulttest.StartTest(t)
	knot := knottest.NewTestServer(t)
	clientID := knot.ClientID()
	path := "knot/development/" + clientID

	// Operator side, once: key + CSR into Vault, Knot signs, import.
	root, err := v.Client()
	require.NoError(t, err)
	csr, err := vaultsource.ProvisionKV(ctx, root, "secret", path, clientID, vaultsource.ProvisionNew)
	require.NoError(t, err)
	certPEM, err := knot.SignCSR(csr)
	require.NoError(t, err)
	kv, err := vaultsource.NewKV(root, "secret", path)
	require.NoError(t, err)
	require.NoError(t, importErr(kv.ImportCertificate(ctx, provider.Requirements{ClientID: clientID}, certPEM, nil)))
	leaf, err := provider.ParseCertificates(certPEM)
	require.NoError(t, err)

	// The runtime policy from docs/, and an AppRole role that carries it.
	policy, err := os.ReadFile("../docs/policies/knotmtls-runtime-kv.hcl")
	require.NoError(t, err)
	hcl := strings.NewReplacer("ENV", "development", "CLIENT_ID", clientID).Replace(string(policy))
	require.NoError(t, root.Sys().PutPolicyWithContext(ctx, "knot-runtime", hcl))
	require.NoError(t, root.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &api.EnableAuthOptions{Type: "approle"}))
	_, err = root.Logical().WriteWithContext(ctx, "auth/approle/role/knot-client",
		map[string]any{"token_policies": "knot-runtime", "token_ttl": "1h"})
	require.NoError(t, err)
	s, err := root.Logical().ReadWithContext(ctx, "auth/approle/role/knot-client/role-id")
	require.NoError(t, err)
	roleID := s.Data["role_id"].(string)
	s, err = root.Logical().WriteWithContext(ctx, "auth/approle/role/knot-client/secret-id", nil)
	require.NoError(t, err)
	secretID := s.Data["secret_id"].(string)

	// Service side: the quick start's three steps.
	vc, err := v.Client()
	require.NoError(t, err)
	vc.ClearToken()
	login, err := vaultauth.AppRole(roleID, &approle.SecretID{FromString: secretID})
	require.NoError(t, err)
	auth, err := vaultauth.New(vc, login)
	require.NoError(t, err)
	require.NoError(t, auth.Start(ctx))
	defer auth.Close()

	src, err := vaultsource.NewKV(vc, "secret", path, vaultsource.WithAuth(auth))
	require.NoError(t, err)
	certs, err := provider.New(src, provider.WithRequirements(provider.Requirements{ClientID: clientID}))
	require.NoError(t, err)
	defer certs.Close()

	knotc, err := knotclient.New(knotclient.Config{
		ClientID:     clientID,
		Secret:       knotclient.StaticSecret(knot.Secret()),
		Certificates: certs,
		BaseURL:      knot.URL(),     // README: Environment: knotclient.Production
		RootCAs:      knot.RootCAs(), // README: nil, the system roots
	})
	require.NoError(t, err)
	defer knotc.Close()

	session, err := knotc.CreateSession(ctx, knotclient.CreateSessionRequest{
		Type: knotclient.SessionCardSwitcher, ExternalUserID: "user-123", CardID: "card-456",
	})
	require.NoError(t, err)
	assert.NotEmpty(t, session.Session)

	reqs := knot.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "/session/create", reqs[0].Path)
	assert.Equal(t, provider.SerialHex(leaf[0]), reqs[0].ClientSerial, "the certificate stored in Vault was presented")
	assert.True(t, reqs[0].AuthOK)
	assert.Equal(t, 1, auth.Status().Logins)

	// The runtime token cannot replace the key: least privilege holds.
	_, err = vaultsource.ProvisionKV(ctx, vc, "secret", path, clientID, vaultsource.ProvisionForce)
	require.ErrorIs(t, err, vaultsource.ErrPermissionDenied)
}

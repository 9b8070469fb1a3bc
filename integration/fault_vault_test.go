package integration_test

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/integration/vaulttest"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultauth"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// The fault scenarios' only contact with the provisioning and login API of
// vaultsource: KV onboarding, rotation, and an AppRole login that the KV
// source re-logs in through. (Kept in one file so that an API change is
// adapted here alone.)

// faultProvisionKV onboards a KV identity at secret/path: key and CSR into
// Vault, Knot signs, the certificate is imported.
func faultProvisionKV(t *testing.T, client *api.Client, knot *knottest.Server, path string) (*vaultsource.KV, *x509.Certificate) {
	t.Helper()
	ctx := t.Context()
	csr, err := vaultsource.ProvisionKV(ctx, client, "secret", path, knot.ClientID(), vaultsource.ProvisionNew)
	require.NoError(t, err)
	certPEM, err := knot.SignCSR(csr)
	require.NoError(t, err)
	kv, err := vaultsource.NewKV(client, "secret", path)
	require.NoError(t, err)
	_, err = kv.ImportCertificate(ctx, faultRequirements(knot), certPEM, nil)
	require.NoError(t, err)
	certs, err := provider.ParseCertificates(certPEM)
	require.NoError(t, err)
	return kv, certs[0]
}

// faultRotateKV stages a new key with WithRotate, has Knot sign it and
// imports the certificate (a new KV version). It returns the new serial.
func faultRotateKV(ctx context.Context, client *api.Client, knot *knottest.Server, path string) (string, error) {
	rotator, err := vaultsource.NewKV(client, "secret", path)
	if err != nil {
		return "", err
	}
	csr, err := rotator.Provision(ctx, knot.ClientID(), vaultsource.ProvisionRotate)
	if err != nil {
		return "", err
	}
	certPEM, err := knot.SignCSR(csr)
	if err != nil {
		return "", err
	}
	if _, err := rotator.ImportCertificate(ctx, faultRequirements(knot), certPEM, nil); err != nil {
		return "", err
	}
	certs, err := provider.ParseCertificates(certPEM)
	if err != nil {
		return "", err
	}
	return provider.SerialHex(certs[0]), nil
}

// faultAuthStatus is what the AppRole scenario reads from the login.
type faultAuthStatus struct {
	LoggedIn                                     bool
	Logins, Renewals, LoginFailures, Consecutive int
	LastLogin, LastRenewal                       time.Time
}

// faultAuth is a started AppRole login on a shared client.
type faultAuth struct {
	client *api.Client
	auth   *vaultauth.Auth
}

// startFaultAppRole logs in with AppRole on shared (backoff 250 ms to 2 s,
// login timeout 5 s), keeps the token renewed and re-logs in; event gets
// each event's kind. It is closed at cleanup.
func startFaultAppRole(t *testing.T, shared *api.Client, roleID, secretID string, event func(kind string)) *faultAuth {
	t.Helper()
	method, err := vaultauth.AppRole(roleID, &approle.SecretID{FromString: secretID})
	require.NoError(t, err)
	a, err := vaultauth.New(shared, method,
		vaultauth.WithBackoff(250*time.Millisecond, 2*time.Second),
		vaultauth.WithTimeout(5*time.Second),
		vaultauth.OnEvent(func(ev vaultauth.Event) { event(ev.Kind.String()) }))
	require.NoError(t, err)
	require.NoError(t, a.Start(t.Context()))
	t.Cleanup(func() { _ = a.Close() })
	return &faultAuth{client: shared, auth: a}
}

// newKV is a KV source at secret/path on the login's client that re-logs in
// through it on a 403.
func (f *faultAuth) newKV(t *testing.T, path string) *vaultsource.KV {
	t.Helper()
	kv, err := vaultsource.NewKV(f.client, "secret", path, vaultsource.WithAuth(f.auth))
	require.NoError(t, err)
	return kv
}

func (f *faultAuth) status() faultAuthStatus {
	st := f.auth.Status()
	return faultAuthStatus{
		LoggedIn: st.LoggedIn, Logins: st.Logins, Renewals: st.Renewals,
		LoginFailures: st.LoginFailures, Consecutive: st.ConsecutiveFailures,
		LastLogin: st.LastLogin, LastRenewal: st.LastRenewal,
	}
}

// faultProvisionTransit onboards a Transit identity: the key and its CSR
// inside Vault, Knot signs, the certificate is stored with the key.
func faultProvisionTransit(t *testing.T, client *api.Client, knot *knottest.Server, key string, opts ...vaultsource.TransitOption) (*vaultsource.Transit, *x509.Certificate) {
	t.Helper()
	ctx := t.Context()
	csr, err := vaultsource.ProvisionTransit(ctx, client, "transit", key, knot.ClientID(), vaultsource.ProvisionNew, opts...)
	require.NoError(t, err)
	certPEM, err := knot.SignCSR(csr)
	require.NoError(t, err)
	tr, err := vaultsource.NewTransit(client, "transit", key, opts...)
	require.NoError(t, err)
	_, err = tr.ImportCertificate(ctx, faultRequirements(knot), certPEM, nil)
	require.NoError(t, err)
	certs, err := provider.ParseCertificates(certPEM)
	require.NoError(t, err)
	return tr, certs[0]
}

// startFaultVault starts a dev Vault and returns it with a client whose
// requests counter records, and a knottest server: the set-up of the
// single-Vault fault tests.
func startFaultVault(t *testing.T) (*vaulttest.Vault, *api.Client, *faultCounter, *knottest.Server) {
	t.Helper()
	v := vaulttest.StartTest(t)
	counter := newFaultCounter(t)
	client, err := v.ClientWith(counter)
	require.NoError(t, err)
	return v, client, counter, knottest.NewTestServer(t)
}

package vaultsource_test

import (
	"context"
	"log"
	"os"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/kubernetes"

	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultauth"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// Example_quickStart is the README's quick start: a service that calls Knot
// over mTLS with the certificate and key held in Vault KV. It needs a Vault
// server and Knot, so it is compiled but not run here; the integration
// module runs the same steps against a real Vault and the fake Knot.
func Example_quickStart() {
	ctx := context.Background()
	clientID := os.Getenv("KNOT_CLIENT_ID")

	// 1. Vault: VAULT_ADDR, VAULT_CACERT, VAULT_NAMESPACE... come from the
	//    environment; Kubernetes auth keeps the token logged in and renewed.
	vc, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	login, err := vaultauth.Kubernetes("knot-client", kubernetes.WithServiceAccountTokenPath(
		"/var/run/secrets/kubernetes.io/serviceaccount/token"))
	if err != nil {
		log.Fatal(err)
	}
	auth, err := vaultauth.New(vc, login)
	if err != nil {
		log.Fatal(err)
	}
	if err := auth.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer auth.Close()

	// 2. Source -> provider: the key never leaves memory; the provider
	//    validates Knot's rules, caches, and picks up rotations.
	src, err := vaultsource.NewKV(vc, "secret", "knot/production/"+clientID, vaultsource.WithAuth(auth))
	if err != nil {
		log.Fatal(err)
	}
	certs, err := provider.New(src, provider.WithRequirements(provider.Requirements{ClientID: clientID}))
	if err != nil {
		log.Fatal(err)
	}
	defer certs.Close()

	// 3. Knot client over mTLS, built on first use from the provider.
	knot, err := knotclient.New(knotclient.Config{
		ClientID:     clientID,
		Secret:       knotclient.StaticSecret(os.Getenv("KNOT_SECRET")),
		Certificates: certs,
		Environment:  knotclient.Production,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer knot.Close()

	session, err := knot.CreateSession(ctx, knotclient.CreateSessionRequest{
		Type: knotclient.SessionCardSwitcher, ExternalUserID: "user-123", CardID: "card-456",
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = session.Session // hand it to the Knot SDK; never log it
}

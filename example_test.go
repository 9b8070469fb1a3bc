package knotmtls_test

import (
	"context"
	"log"
	"os"

	"github.com/hashicorp/vault/api/auth/approle"

	"github.com/knotmtls/knotmtls"
	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/vaultauth"
)

// The README's quick start: everything comes from the environment, e.g.
//
//	KNOT_CLIENT_ID=6d2f... KNOT_ENVIRONMENT=production KNOT_SECRET=...
//	KNOTMTLS_VAULT_AUTH=kubernetes KNOTMTLS_K8S_ROLE=knot-client
//	VAULT_ADDR=https://vault.internal:8200 VAULT_CACERT=/etc/vault/ca.pem
//
// TestComposeFromEnv in integration/ runs the same call against a real
// Vault and knottest.
func Example_quickStart() {
	ctx := context.Background()
	c, err := knotmtls.NewFromEnv(ctx)
	if err != nil {
		log.Fatal(err) // every missing or contradictory setting, in one error
	}
	defer c.Close()

	session, err := c.Knot().CreateSession(ctx, knotclient.CreateSessionRequest{
		Type: knotclient.SessionCardSwitcher, ExternalUserID: "user-123", CardID: "card-456",
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = session.Session // hand it to the Knot SDK; never log it
}

// New with the settings in code: AppRole with a secret-id file that an
// orchestrator writes (response-wrapped), the key in Transit.
func ExampleNew() {
	ctx := context.Background()
	login, err := vaultauth.AppRole(os.Getenv("VAULT_ROLE_ID"),
		&approle.SecretID{FromFile: "/run/secrets/knot-secret-id"}, approle.WithWrappingToken())
	if err != nil {
		log.Fatal(err)
	}
	c, err := knotmtls.New(ctx, knotmtls.Config{
		ClientID:    os.Getenv("KNOT_CLIENT_ID"),
		Environment: knotclient.Production,
		Login:       login,
		Transit:     true, // transit/keys/knot-production-<client_id>
		Secret:      knotclient.StaticSecret(os.Getenv("KNOT_SECRET")),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	log.Println(c) // knotmtls.Client(<client_id>, production, Vault Transit transit/keys/knot-production-<client_id>, login ...)
}

// ConfigFromEnv, adjusted in code before New: here a test server instead
// of Knot (the same as KNOTMTLS_KNOT_BASE_URL and KNOTMTLS_KNOT_CA_FILE).
func ExampleConfigFromEnv() {
	cfg, err := knotmtls.ConfigFromEnv()
	if err != nil {
		log.Fatal(err)
	}
	cfg.Knot.BaseURL = "https://127.0.0.1:8443" // e.g. knottest.Server.URL()
	c, err := knotmtls.New(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
}

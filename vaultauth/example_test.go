package vaultauth_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"

	"github.com/knotmtls/knotmtls/vaultauth"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// A service logs in with AppRole, the secret-id delivered as a
// response-wrapped token in a file. Auth keeps the token renewed and logs in
// again before it expires; the Vault sources built on the same client call
// auth.HandleDenied when Vault answers 403 (pass auth to vaultsource.WithAuth).
func ExampleNew() {
	client, err := api.NewClient(api.DefaultConfig()) // VAULT_ADDR etc.
	if err != nil {
		log.Fatal(err)
	}
	method, err := vaultauth.AppRole("knot-client-role-id",
		&approle.SecretID{FromFile: "/run/secrets/knot-secret-id.wrapped"},
		approle.WithWrappingToken())
	if err != nil {
		log.Fatal(err)
	}
	auth, err := vaultauth.New(client, method)
	if err != nil {
		log.Fatal(err)
	}
	if err := auth.Start(context.Background()); err != nil {
		log.Fatal(err) // first login failed: nothing runs
	}
	defer auth.Close()

	kv, err := vaultsource.NewKV(client, "secret", "knot/client", vaultsource.WithAuth(auth))
	if err != nil {
		log.Fatal(err)
	}
	_ = kv // a provider.CertificateSource
}

// A Vault Agent renders its token to a file sink; Auth reads it, and logs in
// again (re-reads it) when the agent writes a new one.
func ExampleTokenFile() {
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	auth, err := vaultauth.New(client, &vaultauth.TokenFile{Path: "/run/vault/agent-token"})
	if err != nil {
		log.Fatal(err)
	}
	if err := auth.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer auth.Close()
}

// preIssued is an api.AuthMethod handing out a token that never expires, as
// a dev server's root token does. Any api.AuthMethod works with New.
type preIssued struct{}

func (preIssued) Login(context.Context, *api.Client) (*api.Secret, error) {
	return &api.Secret{Auth: &api.SecretAuth{ClientToken: "dev-only-token", LeaseDuration: 0}}, nil
}

// Status tells operators and tests how the token is doing. Hooks run on the
// Auth's own goroutine; Close delivers the events still queued.
func ExampleAuth_Status() {
	client, err := api.NewClient(&api.Config{Address: "http://127.0.0.1:8200"})
	if err != nil {
		log.Fatal(err)
	}
	var events []string
	auth, err := vaultauth.New(client, preIssued{},
		vaultauth.WithLogger(slog.New(slog.DiscardHandler)),
		vaultauth.OnEvent(func(e vaultauth.Event) {
			events = append(events, fmt.Sprintf("event: %s (%s), ttl %s", e.Kind, e.Reason, e.TTL))
		}))
	if err != nil {
		log.Fatal(err)
	}
	if err := auth.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	if err := auth.Relogin(context.Background()); err != nil {
		log.Fatal(err)
	}
	st := auth.Status()
	_ = auth.Close()
	for _, e := range events {
		fmt.Println(e)
	}
	fmt.Printf("method %s: logins %d, renewals %d, watching %v, expires never %v\n",
		st.Method, st.Logins, st.Renewals, st.Watching, st.TokenExpires.IsZero())
	// Output:
	// event: login (start), ttl 0s
	// event: login (relogin), ttl 0s
	// method vaultauth_test.preIssued: logins 2, renewals 0, watching false, expires never true
}

// A service next to a Vault Proxy (api_proxy { use_auto_auth_token = true })
// holds no token: the proxy logs in and adds its own. VAULT_AGENT_ADDR,
// read by api.DefaultConfig, points the client at the proxy.
func ExampleNewProxy() {
	client, err := api.NewClient(&api.Config{Address: "http://127.0.0.1:8100"}) // or VAULT_AGENT_ADDR
	if err != nil {
		log.Fatal(err)
	}
	proxy, err := vaultauth.NewProxy(client, vaultauth.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	kv, err := vaultsource.NewKV(client, "secret", "knot/client", vaultsource.WithAuth(proxy))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(proxy, kv, client.Token() == "")
	// Output: vaultauth.Proxy(http://127.0.0.1:8100) vault kv-v2 secret/knot/client true
}

package vaultsource_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// A KV v2 secret as the certificate source of a Provider. NewKV does no I/O;
// the Provider reads the secret on first use and polls its metadata.
func ExampleNewKV() {
	client, err := api.NewClient(api.DefaultConfig()) // VAULT_ADDR, VAULT_CACERT, VAULT_NAMESPACE, VAULT_TOKEN
	if err != nil {
		log.Fatal(err)
	}
	src, err := vaultsource.NewKV(client, "secret", "knot/client")
	if err != nil {
		log.Fatal(err)
	}
	p, err := provider.New(src,
		provider.WithRequirements(provider.Requirements{ClientID: "your-knot-client-id"}),
		provider.WithPollInterval(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	fmt.Println(src)
	// Output: vault kv-v2 secret/knot/client
}

// A Transit key that never leaves Vault: TLS handshakes sign through
// transit/sign/knot with the key version whose certificate is presented.
func ExampleNewTransit() {
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	src, err := vaultsource.NewTransit(client, "transit", "knot", vaultsource.WithSignTimeout(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(src)
	// Output: vault transit transit/keys/knot
}

// Knot onboarding with KV: the key is generated in memory and stored in
// Vault; only the CSR comes back. After Knot signs it, import the
// certificate.
func ExampleProvisionKV() {
	ctx := context.Background()
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	const clientID = "your-knot-client-id"
	csrPEM, err := vaultsource.ProvisionKV(ctx, client, "secret", "knot/client", clientID, vaultsource.ProvisionNew)
	if errors.Is(err, vaultsource.ErrKeyExists) {
		log.Fatal("a key is already stored; provision with ProvisionRotate to stage a new one")
	}
	if err != nil {
		log.Fatal(err)
	}
	_ = os.WriteFile("knot.csr", csrPEM, 0o644) // a CSR is public; send it to Knot

	certPEM := []byte("...the certificate Knot returned...")
	kv, err := vaultsource.NewKV(client, "secret", "knot/client")
	if err != nil {
		log.Fatal(err)
	}
	imported, err := kv.ImportCertificate(ctx, provider.Requirements{ClientID: clientID}, certPEM, nil)
	if err != nil {
		log.Fatal(err) // e.g. provider.ErrKeyMismatch: nothing was written
	}
	if imported.Unchanged {
		fmt.Println("this certificate was already stored; nothing was written")
	}
}

// Knot onboarding with Transit: the key is created inside Vault and Vault
// signs the CSR; the certificate is stored on the key version.
func ExampleProvisionTransit() {
	ctx := context.Background()
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	csrPEM, err := vaultsource.ProvisionTransit(ctx, client, "transit", "knot", "your-knot-client-id", vaultsource.ProvisionNew)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", csrPEM)
}

// Errors are typed: branch with errors.Is and read the path with errors.As.
func ExampleError() {
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	_, err = vaultsource.NewKV(client, "secret", "knot", vaultsource.WithKVVersion(3))
	fmt.Println(errors.Is(err, vaultsource.ErrInvalidArgument))
	var e *vaultsource.Error
	if errors.As(err, &e) {
		fmt.Println(e.Detail)
	}
	// Output:
	// true
	// KV version must be 1 or 2, got 3
}

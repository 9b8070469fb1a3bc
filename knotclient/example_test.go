package knotclient_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"

	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
)

// Example builds a client from a certificate provider and makes calls. The
// fake Knot server from knottest stands in for mtls.<env>.knotapi.com and its
// IssueClient for the certificate Knot signs; in production the provider's
// source would be Vault or files (vaultsource, filesource), and Config would
// name an Environment instead of BaseURL and RootCAs.
func Example() {
	srv, err := knottest.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	bundle, err := srv.IssueClient()
	if err != nil {
		log.Fatal(err)
	}

	p, err := provider.New(provider.Static(bundle),
		provider.WithRequirements(provider.Requirements{ClientID: srv.ClientID()}),
		provider.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	c, err := knotclient.New(knotclient.Config{
		ClientID:     srv.ClientID(),
		Secret:       knotclient.StaticSecret(srv.Secret()),
		Certificates: p,
		BaseURL:      srv.URL(),     // production: Environment: knotclient.Production
		RootCAs:      srv.RootCAs(), // production: nil (system roots)
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx := context.Background()
	acct, err := c.GetAccount(ctx, knotclient.GetAccountRequest{ExternalUserID: "user-123", MerchantID: knottest.MerchantID})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(acct.Merchant.Name, acct.Connection.Status)

	n := 0
	for _, err := range c.AllTransactions(ctx, knotclient.SyncTransactionsRequest{
		MerchantID: knottest.MerchantID, ExternalUserID: "user-123", Limit: 10,
	}) {
		if err != nil {
			log.Fatal(err)
		}
		n++
	}
	fmt.Println("transactions:", n)

	_, err = c.GetTransaction(ctx, "no-such-id")
	fmt.Println("not found:", knotclient.IsCode(err, knotclient.CodeTransactionNotFound))
	// Output:
	// DoorDash connected
	// transactions: 30
	// not found: true
}

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

// ExampleCardEncrypter sends a card for a CardSwitcher task: fetch Knot's
// JWE key once, encrypt the card to it, and post the compact JWE. knottest
// decrypts it as Knot would and records the card.
func ExampleCardEncrypter() {
	srv, err := knottest.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	bundle, err := srv.IssueClient()
	if err != nil {
		log.Fatal(err)
	}
	p, err := provider.New(provider.Static(bundle), provider.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	c, err := knotclient.New(knotclient.Config{ClientID: srv.ClientID(), Secret: knotclient.StaticSecret(srv.Secret()),
		Certificates: p, BaseURL: srv.URL(), RootCAs: srv.RootCAs()})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	// Once, ahead of the AUTHENTICATED webhook (the card must follow it
	// within 15 s); again after an INVALID_JWE that follows a key rotation.
	enc, err := c.CardEncrypter(ctx)
	if err != nil {
		log.Fatal(err)
	}

	card := &knotclient.CardPayload{
		User: knotclient.CardUser{
			Name:        knotclient.CardHolderName{FirstName: "Ada", LastName: "Lovelace"},
			PhoneNumber: "+14155550123",
			Address: knotclient.CardAddress{Street: "123 Main St", City: "San Francisco", Region: "CA",
				PostalCode: "94105", Country: "US"},
		},
		Card: knotclient.CardDetails{Number: "4242424242424242", Expiration: "12/2099", CVV: "123"},
	}
	jwe, err := enc.Encrypt(card)
	if err != nil {
		log.Fatal(err)
	}
	// task_id comes from the AUTHENTICATED webhook: string(hint.TaskID).
	if err := c.SwitchCard(ctx, knotclient.SwitchCardRequest{TaskID: "25605", JWE: jwe}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("card sent:", card) // card data never prints
	fmt.Println("knot received:", len(srv.Cards()), "card for task", srv.Cards()[0].TaskID)
	// Output:
	// card sent: knotclient.CardPayload{REDACTED}
	// knot received: 1 card for task 25605
}

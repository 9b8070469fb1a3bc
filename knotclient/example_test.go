package knotclient_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

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

// ExampleVerifyWebhook checks the signature of an incoming webhook before
// trusting it.
func ExampleVerifyWebhook() {
	const secret = "your-knot-secret"
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		if err := knotclient.VerifyWebhook(r, body, secret); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		hook, err := knotclient.ParseWebhook(body)
		if err != nil {
			http.Error(w, "bad webhook", http.StatusBadRequest)
			return
		}
		fmt.Println("verified", hook) // String() leaves the session id out
		w.WriteHeader(http.StatusOK)
	})

	// What Knot would send.
	body := `{"event":"CARD_UPDATED","session_id":"fb5aa994-ed1c-4c3e-b29a-b2a53222e584","task_id":25605,"merchant":{"id":11,"name":"Uber"},"timestamp":1710864923198}`
	req := httptest.NewRequest(http.MethodPost, "/webhooks/knot", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Encryption-Type", "HMAC-SHA256")
	sig, _ := knotclient.SignWebhook(req.Header, []byte(body), secret)
	req.Header.Set("Knot-Signature", sig)

	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	fmt.Println(rec.Code)

	req = httptest.NewRequest(http.MethodPost, "/webhooks/knot", strings.NewReader(body))
	req.Header.Set("Knot-Signature", sig) // but Content-Type and Encryption-Type missing
	rec = httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	fmt.Println(rec.Code)
	// Output:
	// verified webhook(event=CARD_UPDATED task_id=25605 merchant_id=11 timestamp=1710864923198)
	// 200
	// 401
}

func readBody(r *http.Request) ([]byte, error) {
	defer r.Body.Close()
	return io.ReadAll(io.LimitReader(r.Body, 1<<20))
}

package knottest_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
)

// A test starts the fake, gets a client certificate from its CA and calls
// it over mutual TLS with Basic auth, then checks which certificate the
// server saw.
func Example() {
	srv, err := knottest.NewServer()
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	bundle, err := srv.IssueClient() // RSA-2048 key + CSR for srv.ClientID(), signed by srv.CA()
	if err != nil {
		panic(err)
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{*bundle.TLSCertificate()},
		RootCAs:      srv.RootCAs(),
		MinVersion:   tls.VersionTLS12,
	}}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}

	body := strings.NewReader(`{"external_user_id":"user-123","merchant_id":19,"limit":10}`)
	req, err := http.NewRequest(http.MethodPost, srv.URL()+"/transactions/sync", body)
	if err != nil {
		panic(err)
	}
	req.SetBasicAuth(srv.ClientID(), srv.Secret())
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()

	var page struct {
		Merchant     struct{ Name string }
		Transactions []struct{ ID string }
		NextCursor   *string `json:"next_cursor"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		panic(err)
	}
	fmt.Println(resp.Status, page.Merchant.Name, len(page.Transactions), page.NextCursor != nil)

	seen := srv.Requests()[0]
	fmt.Println(seen.Path, seen.AuthOK, seen.ClientSerial == provider.SerialHex(bundle.Leaf()))
	// Output:
	// 200 OK DoorDash 10 true
	// /transactions/sync true true
}

// Fail injects faults: here one 429 with Retry-After, then normal service.
func ExampleServer_Fail() {
	srv, err := knottest.NewServer()
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	bundle, err := srv.IssueClient()
	if err != nil {
		panic(err)
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{*bundle.TLSCertificate()},
		RootCAs:      srv.RootCAs(),
		MinVersion:   tls.VersionTLS12,
	}}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}

	srv.Fail(knottest.Fault{Path: "/jwe/key", Status: http.StatusTooManyRequests, RetryAfter: "1", Times: 1})
	for range 2 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL()+"/jwe/key", nil)
		req.SetBasicAuth(srv.ClientID(), srv.Secret())
		resp, err := client.Do(req)
		if err != nil {
			panic(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body) // read to the end so the connection is reused
		resp.Body.Close()
		fmt.Println(resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Output:
	// 429 1
	// 200
}

package knotclient_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/knotmtls/knotmtls/knotclient"
)

// ExampleVerifyWebhook receives a webhook the way the package documentation
// recommends: only from Knot's address, signature first, acting on the
// signed event and session ID, and treating the rest of the body as a hint
// to re-read state from the API.
func ExampleVerifyWebhook() {
	const secret = "your-knot-secret"
	allowed := map[string]bool{knotclient.WebhookSourceIP: true}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if host, _, _ := net.SplitHostPort(r.RemoteAddr); !allowed[host] {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		signed, err := knotclient.VerifyWebhook(r, body, secret)
		if err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		hint, err := knotclient.ParseWebhook(body)
		if err != nil {
			http.Error(w, "bad webhook", http.StatusBadRequest)
			return
		}
		// Deduplicate on signed.Event() and signed.SessionID(), then look
		// up the merchant account named by the (unverified) hint with
		// Client.GetAccount before acting on it.
		fmt.Println(signed)
		fmt.Println(hint)
		w.WriteHeader(http.StatusOK)
	})

	// What Knot would send.
	body := `{"event":"CARD_UPDATED","session_id":"fb5aa994-ed1c-4c3e-b29a-b2a53222e584","task_id":25605,"merchant":{"id":11,"name":"Uber"},"timestamp":1710864923198}`
	newRequest := func() *http.Request {
		req := httptest.NewRequest(http.MethodPost, "/webhooks/knot", strings.NewReader(body))
		req.RemoteAddr = knotclient.WebhookSourceIP + ":41234"
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Encryption-Type", "HMAC-SHA256")
		return req
	}
	req := newRequest()
	sig, _ := knotclient.SignWebhook(req.Header, []byte(body), secret)
	req.Header.Set("Knot-Signature", sig)
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	fmt.Println(rec.Code)

	req = newRequest()
	req.Header.Set("Knot-Signature", sig)
	req.Header.Del("Content-Type") // a signed header changed
	rec = httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	fmt.Println(rec.Code)

	req = newRequest()
	req.Header.Set("Knot-Signature", sig)
	req.RemoteAddr = "203.0.113.9:41234" // not Knot
	rec = httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	fmt.Println(rec.Code)
	// Output:
	// verified webhook(event="CARD_UPDATED" session_id=REDACTED)
	// unverified webhook(event="CARD_UPDATED" task_id="25605" merchant_id=11 timestamp=1710864923198)
	// 200
	// 401
	// 403
}

package knottest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// FuzzCardRequest feeds POST /card bodies (CardSwitcher, CardUpdater, the
// plain variant, JWEs) to the handler: it answers 200 or a Knot error
// (never panics with anything else), refuses any JWE whose header is not
// exactly Knot's, records only what it accepted, and never echoes a card
// number in an error.
//
// The unexported names it uses (for the lead at merge): newAPI, api.run,
// api.card, api.jwe (jweKey.get), call, apiError.
func FuzzCardRequest(f *testing.F) {
	a := newAPI()
	key, kid, err := a.jwe.get()
	if err != nil {
		f.Fatal(err)
	}
	card := map[string]any{
		"user": map[string]any{"name": map[string]any{"first_name": "Ada", "last_name": "Lovelace"}, "phone_number": "+14155550123",
			"address": map[string]any{"street": "1 Main St", "city": "Austin", "region": "TX", "postal_code": "78701", "country": "US"}},
		"card": map[string]any{"number": "4242424242424242", "expiration": "12/2099", "cvv": "123"},
	}
	plain, _ := json.Marshal(card)
	good := fuzzSeal(f, &key.PublicKey, `{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"`+kid+`"}`, plain)
	body, _ := json.Marshal(map[string]any{"task_id": "1", "jwe": good})
	f.Add(body)
	body, _ = json.Marshal(map[string]any{"external_user_id": "u1", "merchant_id": 19, "jwe": good})
	f.Add(body)
	body, _ = json.Marshal(map[string]any{"task_id": 7, "jwe": fuzzSeal(f, &key.PublicKey, `{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"`+kid+`","zip":"DEF"}`, plain)})
	f.Add(body)

	cardNumber := regexp.MustCompile(`[0-9]{12,19}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		before := len(a.jwe.cards)
		c := &call{r: httptest.NewRequest(http.MethodPost, "/card", nil), body: body}
		status, v := a.run(a.card, c)
		after := len(a.jwe.cards)
		if status == http.StatusOK {
			if after != before+1 {
				t.Fatalf("accepted without recording (%d -> %d)", before, after)
			}
			got := a.jwe.cards[after-1]
			if strings.Contains(string(body), `"jwe"`) && got.KeyID != "" && got.KeyID != kid {
				t.Fatalf("recorded kid %q, key is %q", got.KeyID, kid)
			}
			if got.KeyID != "" {
				requireKnotHeader(t, body, kid)
			}
			return
		}
		if after != before {
			t.Fatalf("refused (%d) but recorded", status)
		}
		e, ok := v.(*apiError)
		if !ok || status < 400 || status > 499 || e.status != status {
			t.Fatalf("answer %d %#v is not a Knot 4xx error", status, v)
		}
		for _, n := range cardNumber.FindAllString(string(body), -1) {
			if strings.Contains(e.Msg, n) {
				t.Fatalf("error %q echoes %q from the body", e.Msg, n)
			}
		}
	})
}

// requireKnotHeader fails unless the body's JWE has exactly Knot's
// protected header members.
func requireKnotHeader(t *testing.T, body []byte, kid string) {
	t.Helper()
	var req struct {
		JWE string `json:"jwe"`
	}
	if json.Unmarshal(body, &req) != nil {
		t.Fatalf("accepted a JWE body that does not decode")
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(req.JWE, ".")[0])
	if err != nil {
		t.Fatalf("accepted a JWE whose header is not base64url")
	}
	var hdr map[string]any
	if json.Unmarshal(raw, &hdr) != nil || hdr["alg"] != "RSA-OAEP-256" || hdr["enc"] != "A256GCM" || hdr["kid"] != kid {
		t.Fatalf("accepted header %s", raw)
	}
	for k := range hdr {
		if k != "alg" && k != "enc" && k != "kid" && k != "typ" && k != "cty" {
			t.Fatalf("accepted header member %q", k)
		}
	}
}

// fuzzSeal is a compact JWE with the given protected header over plain.
func fuzzSeal(t testing.TB, pub *rsa.PublicKey, header string, plain []byte) string {
	b64 := base64.RawURLEncoding.EncodeToString
	protected := b64([]byte(header))
	cek := make([]byte, 32)
	_, _ = rand.Read(cek)
	wrapped, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, cek, nil)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(cek)
	gcm, _ := cipher.NewGCM(block)
	iv := make([]byte, gcm.NonceSize())
	_, _ = rand.Read(iv)
	sealed := gcm.Seal(nil, iv, plain, []byte(protected))
	n := len(sealed) - gcm.Overhead()
	return protected + "." + b64(wrapped) + "." + b64(iv) + "." + b64(sealed[:n]) + "." + b64(sealed[n:])
}

package knotclient

// Fuzz targets for what knotclient decodes from the outside: Knot error
// bodies, webhook bodies and signature headers, and the JWE key. They run
// over their committed seed corpora (testdata/fuzz/FuzzX) in every go test;
// `make fuzz` runs each with -fuzz for FUZZTIME.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

const (
	fuzzSecret = "fuzz-knot-api-secret-5f1c"
	fuzzID     = "fuzz-client-id"
)

// FuzzErrorBody: whatever a server or a proxy in front of it answers, the
// error keeps no credential, shows them nowhere, stays one bounded line,
// and reports Knot's code when the body has one.
func FuzzErrorBody(f *testing.F) {
	f.Add(400, []byte(`{"error_type":"INVALID_REQUEST","error_code":"INVALID_FIELD","error_message":"The type field is required."}`))
	f.Add(500, []byte(`{"message":"Server Error"}`))
	token := base64.StdEncoding.EncodeToString([]byte(fuzzID + ":" + fuzzSecret))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := newError("POST /card", status, body, fuzzSecret, token)
		msg := e.Error()
		for _, s := range []string{fuzzSecret, token} {
			for what, got := range map[string]string{"Error()": msg, "Message": e.Message, "Body": string(e.Body),
				"%+v": fmt.Sprintf("%+v", e), "%#v": fmt.Sprintf("%#v", e)} {
				if strings.Contains(got, s) {
					t.Fatalf("%s shows a credential: %q", what, got)
				}
			}
		}
		if len(e.Body) > maxErrorBody {
			t.Fatalf("kept %d bytes of body, limit %d", len(e.Body), maxErrorBody)
		}
		if strings.ContainsAny(msg, "\r\n") {
			t.Fatalf("error is not one line: %q", msg)
		}
		if limit := 2*maxErrorMessage + 256; len(msg) > limit {
			t.Fatalf("error is %d bytes long, limit %d", len(msg), limit)
		}
		var eb errorBody
		if json.Unmarshal(body, &eb) == nil && !strings.Contains(string(eb.Code), fuzzSecret) && !strings.Contains(string(eb.Code), token) {
			if e.Code != eb.Code || e.Type != eb.Type {
				t.Fatalf("decoded %s/%s, body says %s/%s", e.Type, e.Code, eb.Type, eb.Code)
			}
		}
	})
}

// FuzzParseWebhook: any body decodes or fails with ErrMalformedWebhook;
// a decoded one never shows its session ID when formatted, and its event
// and session ID are those the signature check reads.
func FuzzParseWebhook(f *testing.F) {
	f.Add([]byte(`{"event":"CARD_UPDATED","session_id":"fb5aa994-ed1c-4c3e-b29a-b2a53222e584","task_id":25605}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		w, err := ParseWebhook(body)
		if err != nil {
			if !errors.Is(err, ErrMalformedWebhook) || w != nil {
				t.Fatalf("ParseWebhook: %v (%v)", err, w)
			}
			return
		}
		if w.Event == "" {
			t.Fatal("decoded a webhook without event")
		}
		if sid := w.SessionID; len(sid) >= 8 && !strings.Contains(string(w.Event), sid) && !strings.Contains(string(w.TaskID), sid) {
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
				if out := fmt.Sprintf(verb, w); strings.Contains(out, sid) || strings.Contains(out, fmt.Sprintf("%x", sid)) {
					t.Fatalf("%s shows the session id: %s", verb, out)
				}
			}
		}
		if s := w.String(); strings.ContainsAny(s, "\r\n") || !utf8.ValidString(s) && utf8.ValidString(string(body)) {
			t.Fatalf("String() is not one line: %q", s)
		}
		_, _ = w.CommonData()
		_ = w.UpdatedTransactionIDs()
		if v, err := signed(body); err == nil && (v.Event() != w.Event || v.SessionID() != w.SessionID) {
			t.Fatalf("signed fields (%q, %q) differ from parsed (%q, %q)", v.Event(), v.SessionID(), w.Event, w.SessionID)
		}
	})
}

// FuzzVerifyWebhook: a signature made for one body verifies another body
// only if both have the same signed fields (no ambiguity in the string to
// sign), garbage signature headers are refused with a typed error, and a
// verified result is exactly what the body's signed fields say.
func FuzzVerifyWebhook(f *testing.F) {
	f.Add([]byte(`{"event":"CARD_UPDATED","session_id":"s-1","task_id":1}`), []byte(`{"event":"CARD_UPDATED","session_id":"s-1","task_id":2}`),
		"application/json", "HMAC-SHA256", "")
	f.Fuzz(func(t *testing.T, body1, body2 []byte, contentType, encType, sigHeader string) {
		h := http.Header{}
		h.Set("Content-Type", contentType)
		h.Set(EncryptionTypeHeader, encType)
		req := func(body []byte, sig string) *http.Request {
			r, err := http.NewRequest(http.MethodPost, "https://example.test/hook", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			r.Header = h.Clone()
			r.Header.Set(SignatureHeader, sig)
			return r
		}
		requireTyped := func(err error) {
			t.Helper()
			if !errors.Is(err, ErrMissingSignature) && !errors.Is(err, ErrInvalidSignature) && !errors.Is(err, ErrMalformedWebhook) {
				t.Fatalf("untyped error %v", err)
			}
			if strings.Contains(err.Error(), fuzzSecret) {
				t.Fatalf("error shows the secret: %v", err)
			}
		}

		// An arbitrary signature header.
		if v, err := VerifyWebhook(req(body2, sigHeader), body2, fuzzSecret); err != nil {
			requireTyped(err)
			if v != (VerifiedWebhook{}) {
				t.Fatalf("fields %v vouched for on error", v)
			}
		} else if good, _ := SignWebhook(h, body2, fuzzSecret); !bytes.Equal(sigBytes(sigHeader), sigBytes(good)) {
			t.Fatalf("accepted signature %q, the right one is %q", sigHeader, good)
		}

		// body1's real signature, replayed on body2.
		sig, err := SignWebhook(h, body1, fuzzSecret)
		if err != nil {
			requireTyped(err)
			return
		}
		v1, err := VerifyWebhook(req(body1, sig), body1, fuzzSecret)
		if err != nil {
			if encType != "" && !strings.EqualFold(encType, EncryptionHMACSHA256) {
				// An Encryption-Type other than HMAC-SHA256 (even " ", seed
				// found_blank_encryption_type) is refused.
				return
			}
			t.Fatalf("own signature refused: %v", err)
		}
		if s1, _ := signed(body1); v1 != s1 {
			t.Fatalf("verified %v, body says %v", v1, s1)
		}
		v2, err := VerifyWebhook(req(body2, sig), body2, fuzzSecret)
		if err != nil {
			requireTyped(err)
			return
		}
		if v2 != v1 || len(body1) != len(body2) {
			t.Fatalf("a signature for %v verified a body with %v (lengths %d, %d)", v1, v2, len(body1), len(body2))
		}
	})
}

// sigBytes decodes a signature header leniently (padding optional, line
// breaks ignored), or returns nil.
func sigBytes(s string) []byte {
	s = strings.NewReplacer("\r", "", "\n", "", "=", "").Replace(strings.TrimSpace(s))
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return nil
	}
	return b
}

// FuzzJWK: a JWE key from the network becomes an RSA key only if it is
// fit to encrypt card data to.
func FuzzJWK(f *testing.F) {
	f.Add(`{"alg":"RSA-OAEP-256","e":"AQAB","key_ops":["encrypt"],"kid":"k1","kty":"RSA","n":"AQAB","use":"enc"}`)
	f.Fuzz(func(t *testing.T, doc string) {
		var k JWK
		if json.Unmarshal([]byte(doc), &k) != nil {
			return
		}
		pub, err := k.PublicKey()
		if err != nil {
			if pub != nil || !strings.HasPrefix(err.Error(), "knotclient: jwk: ") {
				t.Fatalf("PublicKey: %v (%v)", err, pub)
			}
			return
		}
		if pub.N.BitLen() < minJWKBits || pub.E < 3 || pub.E%2 == 0 {
			t.Fatalf("accepted an unfit key: %d bits, e=%d", pub.N.BitLen(), pub.E)
		}
		if k.Kty != "RSA" || (k.Use != "" && k.Use != "enc") {
			t.Fatalf("accepted kty %q use %q", k.Kty, k.Use)
		}
	})
}

// TestErrorEnumRegression pins what FuzzErrorBody found (seed
// crasher_long_error_code): an error_code of kilobytes, or one holding a
// line break, made Error() unbounded and multi-line. Ordinary codes show as
// they are.
func TestErrorEnumRegression(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"ordinary", `{"error_type":"INVALID_REQUEST","error_code":"INVALID_FIELD","error_message":"m"}`,
			`knotclient: POST /card: HTTP 400 Bad Request INVALID_REQUEST/INVALID_FIELD: "m"`},
		{"line break", `{"error_type":"INVALID_REQUEST","error_code":"X\nlevel=ERROR msg=forged"}`,
			`knotclient: POST /card: HTTP 400 Bad Request INVALID_REQUEST/"X\nlevel=ERROR msg=forged"`},
		{"long", `{"error_type":"T","error_code":"` + strings.Repeat("A", 1500) + `"}`,
			`knotclient: POST /card: HTTP 400 Bad Request T/"` + strings.Repeat("A", 64) + `..."`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := newError("POST /card", 400, []byte(tt.body)).Error(); got != tt.want {
				t.Fatalf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

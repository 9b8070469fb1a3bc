package knottest_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient/knottest"
)

// sealJWE is a compact JWE with the given protected header (RSA-OAEP-256
// key wrapping and A256GCM whatever the header claims), so that the
// server's header checks are what is tested.
func sealJWE(t *testing.T, jwk map[string]any, hdr map[string]any, payload any) string {
	t.Helper()
	b64 := base64.RawURLEncoding
	n, err := b64.DecodeString(jwk["n"].(string))
	require.NoError(t, err)
	e, err := b64.DecodeString(jwk["e"].(string))
	require.NoError(t, err)
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	h, err := json.Marshal(hdr)
	require.NoError(t, err)
	protected := b64.EncodeToString(h)
	plain, err := json.Marshal(payload)
	require.NoError(t, err)
	cek := make([]byte, 32)
	_, _ = rand.Read(cek)
	wrapped, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, cek, nil)
	require.NoError(t, err)
	block, err := aes.NewCipher(cek)
	require.NoError(t, err)
	gcm, err := cipher.NewGCM(block)
	require.NoError(t, err)
	iv := make([]byte, gcm.NonceSize())
	_, _ = rand.Read(iv)
	sealed := gcm.Seal(nil, iv, plain, []byte(protected))
	ct, tag := sealed[:len(sealed)-gcm.Overhead()], sealed[len(sealed)-gcm.Overhead():]
	return protected + "." + b64.EncodeToString(wrapped) + "." + b64.EncodeToString(iv) + "." +
		b64.EncodeToString(ct) + "." + b64.EncodeToString(tag)
}

// joseJWE encrypts with go-jose using other algorithms than Knot's.
func joseJWE(t *testing.T, jwk map[string]any, alg jose.KeyAlgorithm, enc jose.ContentEncryption, payload any) string {
	t.Helper()
	b64 := base64.RawURLEncoding
	n, err := b64.DecodeString(jwk["n"].(string))
	require.NoError(t, err)
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
	e, err := jose.NewEncrypter(enc, jose.Recipient{Algorithm: alg, Key: pub, KeyID: jwk["kid"].(string)}, nil)
	require.NoError(t, err)
	plain, err := json.Marshal(payload)
	require.NoError(t, err)
	obj, err := e.Encrypt(plain)
	require.NoError(t, err)
	out, err := obj.CompactSerialize()
	require.NoError(t, err)
	return out
}

// TestCardJWEHeader: the server accepts exactly Knot's header (alg
// RSA-OAEP-256, enc A256GCM, the current kid) and refuses anything else,
// including well-formed JWEs made with other algorithms.
func TestCardJWEHeader(t *testing.T) {
	s, c, _ := setup(t)
	jwk := getJWK(t, c, s)
	kid := jwk["kid"].(string)
	knot := func(extra map[string]any) map[string]any {
		h := map[string]any{"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": kid}
		for k, v := range extra {
			if v == nil {
				delete(h, k)
			} else {
				h[k] = v
			}
		}
		return h
	}
	tests := []struct {
		name string
		jwe  string
		ok   bool
	}{
		{"knot's header", sealJWE(t, jwk, knot(nil), validCard()), true},
		{"with typ", sealJWE(t, jwk, knot(map[string]any{"typ": "JWE"}), validCard()), true},
		{"no kid", sealJWE(t, jwk, knot(map[string]any{"kid": nil}), validCard()), false},
		{"kid not a string", sealJWE(t, jwk, knot(map[string]any{"kid": 7}), validCard()), false},
		{"alg RSA-OAEP claimed", sealJWE(t, jwk, knot(map[string]any{"alg": "RSA-OAEP"}), validCard()), false},
		{"enc A128GCM claimed", sealJWE(t, jwk, knot(map[string]any{"enc": "A128GCM"}), validCard()), false},
		{"zip", sealJWE(t, jwk, knot(map[string]any{"zip": "DEF"}), validCard()), false},
		{"crit", sealJWE(t, jwk, knot(map[string]any{"crit": []string{"exp"}, "exp": 1}), validCard()), false},
		{"jku", sealJWE(t, jwk, knot(map[string]any{"jku": "https://attacker.example/jwks"}), validCard()), false},
		{"header not an object", sealJWE(t, jwk, nil, validCard()), false},
		{"go-jose RSA-OAEP + A256GCM", joseJWE(t, jwk, jose.RSA_OAEP, jose.A256GCM, validCard()), false},
		{"go-jose RSA-OAEP-256 + A128GCM", joseJWE(t, jwk, jose.RSA_OAEP_256, jose.A128GCM, validCard()), false},
		{"go-jose RSA-OAEP-256 + A256CBC-HS512", joseJWE(t, jwk, jose.RSA_OAEP_256, jose.A256CBC_HS512, validCard()), false},
		{"go-jose RSA-OAEP-256 + A256GCM", joseJWE(t, jwk, jose.RSA_OAEP_256, jose.A256GCM, validCard()), true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(s.Cards())
			resp, raw := mustSend(t, c, s, http.MethodPost, "/card", map[string]any{"task_id": fmt.Sprint(1000 + i), "jwe": tt.jwe})
			if tt.ok {
				require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)
				require.Len(t, s.Cards(), before+1)
				return
			}
			requireKnotError(t, resp, raw, http.StatusBadRequest, "INVALID_REQUEST", "INVALID_JWE")
			assert.Len(t, s.Cards(), before, "a refused card is not recorded")
		})
	}
}

// TestCards: accepted cards are recorded with their task or account, kid
// and decrypted payload; the record never formats the payload, and the
// server log never shows card data.
func TestCards(t *testing.T) {
	var logs bytes.Buffer
	s, c, _ := setup(t, knottest.WithLogger(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	jwk := getJWK(t, c, s)
	kid := jwk["kid"].(string)
	hdr := map[string]any{"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": kid}

	for _, body := range []map[string]any{
		{"task_id": "123456", "jwe": sealJWE(t, jwk, hdr, validCard())},
		{"task_id": 25605, "jwe": sealJWE(t, jwk, hdr, validCard())},
		{"external_user_id": "u1", "merchant_id": knottest.MerchantID, "jwe": sealJWE(t, jwk, hdr, validCard())},
		{"task_id": "9", "user": validCard()["user"], "card": validCard()["card"]},
	} {
		resp, raw := mustSend(t, c, s, http.MethodPost, "/card", body)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)
	}
	expired := validCard()
	expired["card"].(map[string]any)["expiration"] = "01/2001"
	resp, raw := mustSend(t, c, s, http.MethodPost, "/card", map[string]any{"task_id": "10", "jwe": sealJWE(t, jwk, hdr, expired)})
	requireKnotError(t, resp, raw, http.StatusBadRequest, "INVALID_REQUEST", "INVALID_JWE")

	cards := s.Cards()
	require.Len(t, cards, 4)
	assert.Equal(t, []string{"123456", "25605", "", "9"}, []string{cards[0].TaskID, cards[1].TaskID, cards[2].TaskID, cards[3].TaskID})
	assert.Equal(t, []string{kid, kid, kid, ""}, []string{cards[0].KeyID, cards[1].KeyID, cards[2].KeyID, cards[3].KeyID})
	assert.Equal(t, "u1", cards[2].ExternalUserID)
	assert.Equal(t, int64(knottest.MerchantID), cards[2].MerchantID)
	want, err := json.Marshal(validCard())
	require.NoError(t, err)
	for i, card := range cards {
		assert.JSONEq(t, string(want), string(card.Payload), "card %d", i)
		var decoded struct {
			Card struct{ Number string } `json:"card"`
		}
		require.NoError(t, card.Decode(&decoded))
		assert.Equal(t, "4242424242424242", decoded.Card.Number)
		// The full number and the name: the kid is random hex, in which a
		// short digit string turns up now and then.
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x"} {
			assert.NotContains(t, fmt.Sprintf(verb, card), "4242424242424242", verb)
			assert.NotContains(t, fmt.Sprintf(verb, card), "Lovelace", verb)
		}
	}
	cards[0].Payload[0] = 'X'
	assert.Equal(t, byte('{'), s.Cards()[0].Payload[0], "Cards returns copies")

	// The log holds certificate serials (random hex): look for the full
	// number and the name.
	require.NotEmpty(t, logs.String())
	assert.NotContains(t, logs.String(), "4242424242424242")
	assert.NotContains(t, logs.String(), "Lovelace")
}

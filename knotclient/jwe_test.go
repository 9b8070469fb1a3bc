package knotclient_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
)

var (
	jweKeyOnce sync.Once
	jweKey     *rsa.PrivateKey
)

// testJWEKey is an RSA-2048 key made once per test binary.
func testJWEKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	jweKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		jweKey = k
	})
	return jweKey
}

// jwkOf is the JWK Knot's GET /jwe/key would return for key.
func jwkOf(key *rsa.PublicKey, kid string) *knotclient.JWK {
	b64 := base64.RawURLEncoding.EncodeToString
	return &knotclient.JWK{Alg: "RSA-OAEP-256", E: b64(big.NewInt(int64(key.E)).Bytes()), KeyOps: []string{"encrypt"},
		Kid: kid, Kty: "RSA", N: b64(key.N.Bytes()), Use: "enc"}
}

// secretCard is a valid card whose every value is distinctive, so that a
// leak of any one is noticed.
func secretCard() *knotclient.CardPayload {
	return &knotclient.CardPayload{
		User: knotclient.CardUser{
			Name:        knotclient.CardHolderName{FirstName: "Grace", LastName: "Hopperfield"},
			PhoneNumber: "+14155550199",
			Address: knotclient.CardAddress{Street: "77 Secret Lane", Street2: "Unit 9Q", City: "Arlingtonia",
				Region: "VA", PostalCode: "22201", Country: "US"},
		},
		Card: knotclient.CardDetails{Number: "4000056655665556", Expiration: "11/2099", CVV: "8271"},
	}
}

// cardSecrets are the values of secretCard that must never be shown, for
// outputs without random content.
var cardSecrets = []string{"4000056655665556", "665566", "8271", "Hopperfield", "4155550199", "Secret Lane", "Arlingtonia", "22201"}

// cardMarkers are those of cardSecrets that cannot turn up by chance in
// text holding random hex or base64 (certificate serials, kids, JWEs): a
// short digit string like the CVV would, now and then.
var cardMarkers = []string{"4000056655665556", "Hopperfield", "+14155550199", "77 Secret Lane", "Arlingtonia"}

// requireNoCardData checks an output with no random content.
func requireNoCardData(t *testing.T, what, s string) {
	t.Helper()
	for _, v := range cardSecrets {
		require.NotContains(t, s, v, "%s shows card data", what)
	}
}

// requireNoCardMarkers checks an output that holds random hex or base64.
func requireNoCardMarkers(t *testing.T, what, s string) {
	t.Helper()
	for _, v := range cardMarkers {
		require.NotContains(t, s, v, "%s shows card data", what)
	}
}

func TestNewCardEncrypter(t *testing.T) {
	pub := &testJWEKey(t).PublicKey
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	mod := func(f func(*knotclient.JWK)) *knotclient.JWK {
		k := jwkOf(pub, "kid-1")
		f(k)
		return k
	}
	tests := []struct {
		name    string
		key     *knotclient.JWK
		wantErr string // "" = accepted
	}{
		{"knot's key", jwkOf(pub, "kid-1"), ""},
		{"alg, use and key_ops absent", mod(func(k *knotclient.JWK) { k.Alg, k.Use, k.KeyOps = "", "", nil }), ""},
		{"nil", nil, "invalid argument"},
		{"other alg", mod(func(k *knotclient.JWK) { k.Alg = "RSA-OAEP" }), `alg "RSA-OAEP" is not RSA-OAEP-256`},
		{"signing key", mod(func(k *knotclient.JWK) { k.Use = "sig" }), `key use "sig" is not enc`},
		{"key_ops without encrypt", mod(func(k *knotclient.JWK) { k.KeyOps = []string{"verify"} }), "key_ops does not allow encrypt"},
		{"no kid", mod(func(k *knotclient.JWK) { k.Kid = "" }), "no kid"},
		{"RSA-1024", jwkOf(&small.PublicKey, "kid-1"), "RSA modulus of 1024 bits is below 2048"},
		{"EC", mod(func(k *knotclient.JWK) { k.Kty = "EC" }), `key type "EC" is not RSA`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := knotclient.NewCardEncrypter(tt.key)
			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, "kid-1", enc.KeyID())
				return
			}
			require.Error(t, err)
			assert.Nil(t, enc)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.True(t, strings.HasPrefix(err.Error(), "knotclient: "), err.Error())
		})
	}
}

// TestCardEncrypterEncrypt decrypts the helper's output with the private
// key and checks the header Knot requires.
func TestCardEncrypterEncrypt(t *testing.T) {
	key := testJWEKey(t)
	enc, err := knotclient.NewCardEncrypter(jwkOf(&key.PublicKey, "kid-7"))
	require.NoError(t, err)
	card := secretCard()
	compact, err := enc.Encrypt(card)
	require.NoError(t, err)
	require.Len(t, strings.Split(compact, "."), 5, "compact serialization")
	requireNoCardMarkers(t, "the JWE", compact)

	hdrJSON, err := base64.RawURLEncoding.DecodeString(strings.Split(compact, ".")[0])
	require.NoError(t, err)
	var hdr map[string]any
	require.NoError(t, json.Unmarshal(hdrJSON, &hdr))
	assert.Equal(t, map[string]any{"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "kid-7"}, hdr, "protected header")

	obj, err := jose.ParseEncryptedCompact(compact, []jose.KeyAlgorithm{jose.RSA_OAEP_256}, []jose.ContentEncryption{jose.A256GCM})
	require.NoError(t, err)
	plain, err := obj.Decrypt(key)
	require.NoError(t, err)
	assert.JSONEq(t, `{"user":{"name":{"first_name":"Grace","last_name":"Hopperfield"},"phone_number":"+14155550199",
		"address":{"street":"77 Secret Lane","street2":"Unit 9Q","city":"Arlingtonia","region":"VA","postal_code":"22201","country":"US"}},
		"card":{"number":"4000056655665556","expiration":"11/2099","cvv":"8271"}}`, string(plain), "Knot's CardPayload field names")

	again, err := enc.Encrypt(card)
	require.NoError(t, err)
	assert.NotEqual(t, compact, again, "a fresh content key and IV per call")
}

// TestCardEncryptInvalid: card data Knot would refuse is refused before
// encryption, with an error that names the field and shows no value.
func TestCardEncryptInvalid(t *testing.T) {
	enc, err := knotclient.NewCardEncrypter(jwkOf(&testJWEKey(t).PublicKey, "kid"))
	require.NoError(t, err)
	tests := []struct {
		name  string
		mod   func(*knotclient.CardPayload)
		field string
	}{
		{"no first name", func(c *knotclient.CardPayload) { c.User.Name.FirstName = "" }, "user.name.first_name"},
		{"no phone", func(c *knotclient.CardPayload) { c.User.PhoneNumber = "" }, "user.phone_number"},
		{"no country", func(c *knotclient.CardPayload) { c.User.Address.Country = "" }, "user.address.country"},
		{"luhn", func(c *knotclient.CardPayload) { c.Card.Number = "4000056655665557" }, "card.number fails the Luhn check"},
		{"letters in number", func(c *knotclient.CardPayload) { c.Card.Number = "4000 0566 5566 5556" }, "card.number must be 12 to 19 digits"},
		{"short number", func(c *knotclient.CardPayload) { c.Card.Number = "42424242424" }, "card.number must be 12 to 19 digits"},
		{"cvv", func(c *knotclient.CardPayload) { c.Card.CVV = "82710" }, "card.cvv must be 3 or 4 digits"},
		{"expiration", func(c *knotclient.CardPayload) { c.Card.Expiration = "2099-11" }, "card.expiration must be MM/YYYY or MM/YY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := secretCard()
			tt.mod(c)
			out, err := enc.Encrypt(c)
			require.ErrorIs(t, err, knotclient.ErrInvalidCard)
			assert.Empty(t, out)
			assert.Contains(t, err.Error(), tt.field)
			requireNoCardData(t, "the error", err.Error())
			requireNoCardData(t, "the error", fmt.Sprintf("%+v %#v", err, err))
		})
	}
	_, err = enc.Encrypt(nil)
	require.ErrorIs(t, err, knotclient.ErrInvalidArgument)
}

// TestCardDataRedacted: no card type shows a value under any fmt verb or
// slog handler, by value or by pointer, alone or nested.
func TestCardDataRedacted(t *testing.T) {
	c := secretCard()
	values := map[string]any{
		"CardPayload": *c, "*CardPayload": c, "CardUser": c.User, "*CardUser": &c.User,
		"CardHolderName": c.User.Name, "CardAddress": c.User.Address, "CardDetails": c.Card, "*CardDetails": &c.Card,
		"in a struct": struct{ P knotclient.CardPayload }{*c}, "in a slice": []knotclient.CardDetails{c.Card},
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d", "%x", "%X", "%t", "%8.3v"} {
				requireNoCardData(t, verb, fmt.Sprintf(verb, v))
			}
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("card", "v", v)
			slog.New(slog.NewTextHandler(&buf, nil)).Info("card", "v", v)
			requireNoCardData(t, "slog", buf.String())
		})
	}
	assert.Equal(t, "knotclient.CardPayload{REDACTED}", fmt.Sprint(c))
	raw, err := json.Marshal(map[string]any{"card": c, "details": c.Card})
	require.NoError(t, err)
	assert.JSONEq(t, `{"card":"REDACTED","details":"REDACTED"}`, string(raw), "json.Marshal redacts too")
}

// TestSwitchCardEndToEnd: the client fetches the JWE key from knottest,
// encrypts with the helper and switches the card; knottest decrypts it with
// its own (standard library) code, checks alg, enc and kid, and records the
// card. Neither side logs card data.
func TestSwitchCardEndToEnd(t *testing.T) {
	var serverLog, clientLog bytes.Buffer
	srv := knottest.NewTestServer(t, knottest.WithLogger(slog.New(slog.NewJSONHandler(&serverLog, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	b := issue(t, srv)
	p := newProvider(t, srv, provider.Static(b), true)
	c := newKnottestClient(t, srv, p, func(cfg *knotclient.Config) {
		cfg.Logger = slog.New(slog.NewJSONHandler(&clientLog, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ctx := context.Background()

	enc, err := c.CardEncrypter(ctx)
	require.NoError(t, err)
	card := secretCard()
	jwe, err := enc.Encrypt(card)
	require.NoError(t, err)
	require.NoError(t, c.SwitchCard(ctx, knotclient.SwitchCardRequest{TaskID: "25605", JWE: jwe}))
	jwe2, err := enc.Encrypt(card)
	require.NoError(t, err)
	require.NoError(t, c.UpdateCard(ctx, knotclient.UpdateCardRequest{JWE: jwe2, ExternalUserID: "user-1", MerchantID: knottest.MerchantID}))

	cards := srv.Cards()
	require.Len(t, cards, 2)
	assert.Equal(t, "25605", cards[0].TaskID)
	assert.Equal(t, enc.KeyID(), cards[0].KeyID, "the kid of GET /jwe/key")
	assert.Equal(t, "user-1", cards[1].ExternalUserID)
	assert.Equal(t, int64(knottest.MerchantID), cards[1].MerchantID)
	for _, got := range cards {
		var decoded knotclient.CardPayload
		require.NoError(t, got.Decode(&decoded))
		assert.Equal(t, *card, decoded, "knottest decrypted the card")
		requireNoCardMarkers(t, "knottest.Card", fmt.Sprintf("%v %+v %#v %s", got, got, got, got)) // holds the kid
	}

	// A JWE for another key (a stale encrypter after a rotation) is
	// refused as INVALID_JWE, with no card data in the error, and nothing
	// is recorded.
	stale, err := knotclient.NewCardEncrypter(jwkOf(&testJWEKey(t).PublicKey, enc.KeyID()))
	require.NoError(t, err)
	bad, err := stale.Encrypt(card)
	require.NoError(t, err)
	err = c.SwitchCard(ctx, knotclient.SwitchCardRequest{TaskID: "25606", JWE: bad})
	require.True(t, knotclient.IsCode(err, knotclient.CodeInvalidJWE), "%v", err)
	var apiErr *knotclient.Error
	require.True(t, errors.As(err, &apiErr))
	requireNoCardData(t, "the error", err.Error()+string(apiErr.Body))
	assert.Len(t, srv.Cards(), 2)

	require.NotEmpty(t, serverLog.String(), "the server logged its requests")
	// Logs hold certificate serials, recorded bodies hold JWEs.
	requireNoCardMarkers(t, "the server log", serverLog.String())
	requireNoCardMarkers(t, "the client log", clientLog.String())
	for _, r := range srv.Requests() {
		requireNoCardMarkers(t, "a recorded request body", string(r.Body))
	}
}

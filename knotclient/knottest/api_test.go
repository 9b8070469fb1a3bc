package knottest_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient/knottest"
)

var (
	transactionKeys  = []string{"id", "external_id", "datetime", "url", "order_status", "shipping", "payment_methods", "price", "products", "loyalty"}
	priceKeys        = []string{"sub_total", "adjustments", "total", "currency"}
	productKeys      = []string{"external_id", "name", "description", "url", "image_url", "quantity", "price", "seller", "eligibility"}
	paymentKeys      = []string{"external_id", "type", "brand", "last_four", "name", "transaction_amount"}
	subscriptionKeys = []string{"id", "external_id", "name", "description", "merchant", "status", "billing_cycle",
		"next_billing_date", "last_billing_date", "start_date", "next_renewal_date", "expiration_date",
		"cancel_instructions", "is_paid", "is_family_plan", "is_cancellable", "price"}
)

// requireTransaction checks that t has every documented transaction field.
func requireTransaction(t *testing.T, txn map[string]any) {
	t.Helper()
	requireKeys(t, txn, transactionKeys...)
	requireKeys(t, txn["price"].(map[string]any), priceKeys...)
	products := txn["products"].([]any)
	require.NotEmpty(t, products)
	for _, p := range products {
		requireKeys(t, p.(map[string]any), productKeys...)
	}
	payments := txn["payment_methods"].([]any)
	require.NotEmpty(t, payments)
	for _, p := range payments {
		requireKeys(t, p.(map[string]any), paymentKeys...)
	}
}

func validCard() map[string]any {
	return map[string]any{
		"user": map[string]any{
			"name":         map[string]any{"first_name": "Ada", "last_name": "Lovelace"},
			"phone_number": "+14155550123",
			"address": map[string]any{
				"street": "123 Main St", "street2": "Apt 4B", "city": "San Francisco",
				"region": "CA", "postal_code": "94105", "country": "US",
			},
		},
		"card": map[string]any{"number": "4242424242424242", "expiration": "12/2099", "cvv": "123"},
	}
}

// encryptJWE builds a compact JWE the way Knot asks: RSA-OAEP-256 over the
// JWK from /jwe/key, A256GCM, kid in the protected header.
func encryptJWE(t *testing.T, jwk map[string]any, kid string, payload any) string {
	t.Helper()
	b64 := base64.RawURLEncoding
	n, err := b64.DecodeString(jwk["n"].(string))
	require.NoError(t, err)
	e, err := b64.DecodeString(jwk["e"].(string))
	require.NoError(t, err)
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}

	hdr, err := json.Marshal(map[string]string{"alg": jwk["alg"].(string), "enc": "A256GCM", "kid": kid})
	require.NoError(t, err)
	protected := b64.EncodeToString(hdr)
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

func getJWK(t *testing.T, c *http.Client, s *knottest.Server) map[string]any {
	t.Helper()
	resp, raw := mustSend(t, c, s, http.MethodGet, "/jwe/key", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)
	return decodeObject(t, raw)
}

func TestEveryEndpoint(t *testing.T) {
	s, c, _ := setup(t)
	const user = "user-123"

	resp, raw := mustSend(t, c, s, http.MethodPost, "/session/create", map[string]any{"type": "transaction_link", "external_user_id": user})
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)
	sessionID := decodeObject(t, raw)["session"].(string)
	jwk := getJWK(t, c, s)

	const (
		object  = "object"
		array   = "array"
		success = "success"
	)
	tests := []struct {
		method, path string
		body         any
		status       int
		shape        string
		keys         []string
	}{
		{"POST", "/session/create", map[string]any{
			"type": "card_switcher", "external_user_id": user, "card_id": "card-9", "email": "ada@example.com",
			"phone_number": "+14155550123", "metadata": map[string]string{"trace_id": "abc"},
		}, 200, object, []string{"session"}},
		{"POST", "/session/extend", map[string]any{"session_id": sessionID}, 200, object, []string{"session"}},
		{"POST", "/merchant/list", map[string]any{"type": "transaction_link"}, 200, array, []string{"id", "name", "category", "logo"}},
		{"GET", "/accounts/get?external_user_id=" + user, nil, 200, array, []string{"merchant", "connection", "lifecycle", "last_user_action"}},
		{"GET", "/accounts/get?external_user_id=" + user + "&merchant_id=19&type=card_switcher", nil, 200, object, []string{"merchant", "connection", "lifecycle", "last_user_action"}},
		{"POST", "/accounts/unlink", map[string]any{"external_user_id": "user-unlink", "merchant_id": 45}, 200, success, nil},
		{"GET", "/jwe/key", nil, 200, object, []string{"alg", "e", "key_ops", "kid", "kty", "n", "use"}},
		{"POST", "/card", map[string]any{"task_id": "123456", "jwe": encryptJWE(t, jwk, jwk["kid"].(string), validCard())}, 200, success, nil},
		{"POST", "/transactions/sync", map[string]any{"external_user_id": user, "merchant_id": 19, "limit": 2}, 200, object, []string{"merchant", "transactions", "next_cursor", "limit"}},
		{"GET", "/transactions/" + knottest.TransactionID, nil, 200, object, transactionKeys},
		{"POST", "/transactions/refresh", map[string]any{"external_user_id": user, "merchant_id": 19}, 202, success, nil},
		{"POST", "/cart", map[string]any{
			"external_user_id": user, "merchant_id": 45,
			"products": []any{map[string]any{"external_id": "3324893784", "fulfillment": map[string]any{"id": "01fdc244"}}},
			"delivery_location": map[string]any{
				"address":    map[string]any{"line1": "123 Main St", "line2": "Floor 4", "city": "Los Angeles", "region": "CA", "postal_code": "94105", "country": "US"},
				"first_name": "Ada", "last_name": "Lovelace", "phone_number": "+11234567890", "set_as_default": true,
			},
		}, 202, success, nil},
		{"POST", "/cart/checkout", map[string]any{"external_user_id": user, "merchant_id": 45, "payment_method": map[string]any{"id": "pm_1", "is_single_use": false}}, 202, success, nil},
		{"GET", "/subscriptions/" + knottest.SubscriptionID, nil, 200, object, subscriptionKeys},
		{"POST", "/subscriptions/list", map[string]any{"external_user_id": user}, 200, object, []string{"subscriptions", "next_cursor", "limit"}},
		{"POST", "/subscriptions/" + knottest.SubscriptionID + "/cancel", map[string]any{"external_user_id": user, "merchant_id": 16}, 202, success, nil},
		{"POST", "/detect", map[string]any{"external_user_id": user, "email": "ada@example.com", "phone_number": "+14155550123"}, 202, success, nil},
		{"POST", "/detected-accounts/list", map[string]any{"external_user_id": user}, 200, object, []string{"detected_accounts", "next_cursor", "limit"}},
		{"POST", "/detected-accounts/search", map[string]any{"external_user_id": user, "names": []string{"Netflix", "Uber"}}, 200, array, []string{"name", "detected", "detected_at"}},
		{"POST", "/development/accounts/link", map[string]any{"external_user_id": user, "merchant_id": 44, "transactions": map[string]any{"new": true, "updated": true}}, 200, success, nil},
		{"POST", "/development/accounts/disconnect", map[string]any{"external_user_id": "user-disconnect", "merchant_id": 19}, 200, success, nil},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, raw := mustSend(t, c, s, tt.method, tt.path, tt.body)
			require.Equal(t, tt.status, resp.StatusCode, "body: %s", raw)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			switch tt.shape {
			case success:
				assert.JSONEq(t, `{"message":"Success"}`, string(raw))
			case object:
				requireKeys(t, decodeObject(t, raw), tt.keys...)
			case array:
				items := decodeArray(t, raw)
				require.NotEmpty(t, items)
				for _, it := range items {
					requireKeys(t, it, tt.keys...)
				}
			}
		})
	}
}

func TestValidationAndErrorCodes(t *testing.T) {
	s, c, _ := setup(t)
	const user = "user-123"
	tests := []struct {
		name          string
		method, path  string
		body          any
		status        int
		errType, code string
	}{
		{"session type missing", "POST", "/session/create", map[string]any{"external_user_id": user}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"session type invalid", "POST", "/session/create", map[string]any{"type": "teleport", "external_user_id": user}, 400, "INVALID_INPUT", "PRODUCT_NOT_VALID"},
		{"session card_id required for card_switcher", "POST", "/session/create", map[string]any{"type": "card_switcher", "external_user_id": user}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"session bad phone", "POST", "/session/create", map[string]any{"type": "vault", "external_user_id": user, "phone_number": "555-0123"}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"session bad email", "POST", "/session/create", map[string]any{"type": "vault", "external_user_id": user, "email": "nope"}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"session malformed JSON", "POST", "/session/create", `{"type":`, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"session body not an object", "POST", "/session/create", `["type"]`, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"extend unknown session", "POST", "/session/extend", map[string]any{"session_id": "915efe72-0000-4000-8000-000000000000"}, 404, "SESSION_ERROR", "SESSION_NOT_FOUND"},
		{"extend without session_id", "POST", "/session/extend", map[string]any{}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"merchant list without type", "POST", "/merchant/list", map[string]any{}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"merchant list bad platform", "POST", "/merchant/list", map[string]any{"type": "vault", "platform": "windows"}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"accounts without user", "GET", "/accounts/get", nil, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"accounts unknown user", "GET", "/accounts/get?external_user_id=" + knottest.UnknownUserID, nil, 404, "USER_ERROR", "USER_NOT_FOUND"},
		{"accounts merchant not linked", "GET", "/accounts/get?external_user_id=" + user + "&merchant_id=152", nil, 404, "MERCHANT_ACCOUNT_ERROR", "MERCHANT_ACCOUNT_NOT_FOUND"},
		{"accounts merchant_id not a number", "GET", "/accounts/get?external_user_id=" + user + "&merchant_id=abc", nil, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"unlink without merchant", "POST", "/accounts/unlink", map[string]any{"external_user_id": user}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"unlink merchant_id as string", "POST", "/accounts/unlink", map[string]any{"external_user_id": user, "merchant_id": "19"}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"card without jwe", "POST", "/card", map[string]any{"task_id": "1"}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"card without task_id or user", "POST", "/card", map[string]any{"jwe": "a.b.c.d.e"}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"card garbage jwe", "POST", "/card", map[string]any{"task_id": "1", "jwe": "not-a-jwe"}, 400, "INVALID_REQUEST", "INVALID_JWE"},
		{"sync without merchant", "POST", "/transactions/sync", map[string]any{"external_user_id": user}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"sync without user", "POST", "/transactions/sync", map[string]any{"merchant_id": 19}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"sync unknown user", "POST", "/transactions/sync", map[string]any{"external_user_id": knottest.UnknownUserID, "merchant_id": 19}, 404, "USER_ERROR", "USER_NOT_FOUND"},
		{"sync merchant not linked", "POST", "/transactions/sync", map[string]any{"external_user_id": user, "merchant_id": 44}, 404, "MERCHANT_ACCOUNT_ERROR", "MERCHANT_ACCOUNT_NOT_FOUND"},
		{"sync limit zero", "POST", "/transactions/sync", map[string]any{"external_user_id": user, "merchant_id": 19, "limit": 0}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"sync limit too large", "POST", "/transactions/sync", map[string]any{"external_user_id": user, "merchant_id": 19, "limit": 101}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"sync garbage cursor", "POST", "/transactions/sync", map[string]any{"external_user_id": user, "merchant_id": 19, "cursor": "!!"}, 400, "INVALID_REQUEST", "INVALID_CURSOR_FORMAT"},
		{"transaction unknown", "GET", "/transactions/528b53b1-5a2f-4b9e-9118-f3ebf4f98b62", nil, 404, "TRANSACTION_ERROR", "TRANSACTION_NOT_FOUND"},
		{"refresh without merchant", "POST", "/transactions/refresh", map[string]any{"external_user_id": user}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"cart without products", "POST", "/cart", map[string]any{"external_user_id": user, "merchant_id": 45}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"cart product without external_id", "POST", "/cart", map[string]any{"external_user_id": user, "merchant_id": 45, "products": []any{map[string]any{}}}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"cart bad simulate", "POST", "/cart", map[string]any{"external_user_id": user, "merchant_id": 45, "products": []any{map[string]any{"external_id": "1"}}, "simulate": "explode"}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"checkout without user", "POST", "/cart/checkout", map[string]any{"merchant_id": 45}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"subscription unknown", "GET", "/subscriptions/does-not-exist", nil, 404, "SUBSCRIPTION_ERROR", "SUBSCRIPTION_NOT_FOUND"},
		{"cancel unknown subscription", "POST", "/subscriptions/does-not-exist/cancel", map[string]any{"external_user_id": user, "merchant_id": 16}, 400, "SUBSCRIPTION_ERROR", "SUBSCRIPTION_NOT_FOUND"},
		{"subscriptions list without user", "POST", "/subscriptions/list", map[string]any{}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"detect without email", "POST", "/detect", map[string]any{"external_user_id": user}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"detected list bad cursor", "POST", "/detected-accounts/list", map[string]any{"external_user_id": user, "cursor": "bm9wZQ"}, 400, "INVALID_REQUEST", "INVALID_CURSOR_FORMAT"},
		{"search without names", "POST", "/detected-accounts/search", map[string]any{"external_user_id": user}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"dev link with neither mode", "POST", "/development/accounts/link", map[string]any{"external_user_id": user, "merchant_id": 19}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"dev link with both modes", "POST", "/development/accounts/link", map[string]any{"external_user_id": user, "merchant_id": 19, "transactions": map[string]any{"new": true}, "card_switcher": true, "card_id": "c1"}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"dev link card_switcher without card_id", "POST", "/development/accounts/link", map[string]any{"external_user_id": user, "merchant_id": 19, "card_switcher": true}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"dev link updated without new", "POST", "/development/accounts/link", map[string]any{"external_user_id": user, "merchant_id": 19, "transactions": map[string]any{"new": false, "updated": true}}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"dev link unknown merchant", "POST", "/development/accounts/link", map[string]any{"external_user_id": user, "merchant_id": 999999, "transactions": map[string]any{"new": true}}, 400, "INVALID_REQUEST", "INVALID_FIELD"},
		{"dev disconnect not linked", "POST", "/development/accounts/disconnect", map[string]any{"external_user_id": user, "merchant_id": 152}, 404, "MERCHANT_ACCOUNT_ERROR", "MERCHANT_ACCOUNT_NOT_FOUND"},
		{"unknown route", "GET", "/merchant/connected", nil, 404, "INVALID_REQUEST", "NOT_FOUND"},
		{"wrong method", "GET", "/session/create", nil, 405, "INVALID_REQUEST", "METHOD_NOT_ALLOWED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, raw := mustSend(t, c, s, tt.method, tt.path, tt.body)
			requireKnotError(t, resp, raw, tt.status, tt.errType, tt.code)
		})
	}
}

// syncPage is the /transactions/sync response.
type syncPage struct {
	Merchant     struct{ ID int64 }
	Transactions []map[string]any
	NextCursor   *string `json:"next_cursor"`
	Limit        int
}

func walkSync(t *testing.T, c *http.Client, s *knottest.Server, limit int) []syncPage {
	t.Helper()
	var pages []syncPage
	var cursor *string
	for range 10 { // bounded: the fake has 3 pages
		body := map[string]any{"external_user_id": "user-123", "merchant_id": knottest.MerchantID, "cursor": cursor}
		if limit > 0 {
			body["limit"] = limit
		}
		resp, raw := mustSend(t, c, s, http.MethodPost, "/transactions/sync", body)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)
		var p syncPage
		require.NoError(t, json.Unmarshal(raw, &p))
		pages = append(pages, p)
		if p.NextCursor == nil {
			return pages
		}
		cursor = p.NextCursor
	}
	t.Fatal("next_cursor never became null")
	return nil
}

func TestTransactionsSyncPagination(t *testing.T) {
	s, c, _ := setup(t)
	tests := []struct {
		name      string
		limit     int
		wantLimit int
	}{
		{"explicit limit", 4, 4},
		{"default limit", 0, knottest.DefaultSyncLimit},
		{"max limit", knottest.MaxLimit, knottest.MaxLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pages := walkSync(t, c, s, tt.limit)
			require.Len(t, pages, knottest.TransactionPages)
			ids := map[string]bool{}
			for i, p := range pages {
				assert.Equal(t, int64(knottest.MerchantID), p.Merchant.ID)
				assert.Equal(t, tt.wantLimit, p.Limit)
				require.Len(t, p.Transactions, tt.wantLimit, "page %d holds limit transactions", i)
				assert.Equal(t, i == len(pages)-1, p.NextCursor == nil)
				for _, txn := range p.Transactions {
					requireTransaction(t, txn)
					ids[txn["id"].(string)] = true
				}
			}
			assert.Len(t, ids, knottest.TransactionPages*tt.wantLimit, "IDs are unique across pages")
		})
	}

	t.Run("get by id returns the synced transaction", func(t *testing.T) {
		pages := walkSync(t, c, s, 3)
		first := pages[0].Transactions[0]
		assert.Equal(t, knottest.TransactionID, first["id"])
		last := pages[2].Transactions[2]
		resp, raw := mustSend(t, c, s, http.MethodGet, "/transactions/"+url.PathEscape(last["id"].(string)), nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)
		assert.Equal(t, last, decodeObject(t, raw))
	})

	t.Run("sync is deterministic", func(t *testing.T) {
		assert.Equal(t, walkSync(t, c, s, 5), walkSync(t, c, s, 5))
	})

	t.Run("a cursor is tied to its merchant", func(t *testing.T) {
		pages := walkSync(t, c, s, 2)
		resp, raw := mustSend(t, c, s, http.MethodPost, "/transactions/sync",
			map[string]any{"external_user_id": "user-123", "merchant_id": 45, "cursor": *pages[0].NextCursor})
		requireKnotError(t, resp, raw, http.StatusBadRequest, "INVALID_REQUEST", "INVALID_CURSOR_FORMAT")
	})
}

func TestCursorLists(t *testing.T) {
	s, c, _ := setup(t)
	tests := []struct {
		path, key string
		total     int
	}{
		{"/subscriptions/list", "subscriptions", 6},
		{"/detected-accounts/list", "detected_accounts", 5},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, raw := mustSend(t, c, s, http.MethodPost, tt.path, map[string]any{"external_user_id": "u1"})
			require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)
			all := decodeObject(t, raw)
			assert.Nil(t, all["next_cursor"])
			assert.EqualValues(t, knottest.DefaultListLimit, all["limit"])
			require.Len(t, all[tt.key], tt.total)

			var got []any
			var cursor any
			for range 10 {
				resp, raw := mustSend(t, c, s, http.MethodPost, tt.path, map[string]any{"external_user_id": "u1", "limit": 4, "cursor": cursor})
				require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)
				p := decodeObject(t, raw)
				items := p[tt.key].([]any)
				assert.LessOrEqual(t, len(items), 4)
				got = append(got, items...)
				if cursor = p["next_cursor"]; cursor == nil {
					break
				}
			}
			assert.Nil(t, cursor, "the walk ended")
			assert.Equal(t, all[tt.key], got, "pages add up to the full list")
		})
	}
	for _, item := range func() []any {
		_, raw := mustSend(t, c, s, http.MethodPost, "/subscriptions/list", map[string]any{"external_user_id": "u1"})
		return decodeObject(t, raw)["subscriptions"].([]any)
	}() {
		requireKeys(t, item.(map[string]any), subscriptionKeys...)
	}
}

func TestAccountLifecycle(t *testing.T) {
	s, c, _ := setup(t)
	const user = "user-lifecycle"
	accounts := func() map[float64]string {
		t.Helper()
		resp, raw := mustSend(t, c, s, http.MethodGet, "/accounts/get?external_user_id="+user, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)
		out := map[float64]string{}
		for _, a := range decodeArray(t, raw) {
			id := a["merchant"].(map[string]any)["id"].(float64)
			out[id] = a["connection"].(map[string]any)["status"].(string)
		}
		return out
	}
	post := func(path string, body map[string]any) int {
		t.Helper()
		body["external_user_id"] = user
		resp, _ := mustSend(t, c, s, http.MethodPost, path, body)
		return resp.StatusCode
	}

	assert.Equal(t, map[float64]string{19: "connected", 45: "connected", 16: "connected"}, accounts())

	require.Equal(t, 200, post("/development/accounts/disconnect", map[string]any{"merchant_id": 19}))
	assert.Equal(t, "disconnected", accounts()[19])
	resp, raw := mustSend(t, c, s, http.MethodPost, "/transactions/sync", map[string]any{"external_user_id": user, "merchant_id": 19})
	requireKnotError(t, resp, raw, http.StatusBadRequest, "MERCHANT_ACCOUNT_ERROR", "MERCHANT_ACCOUNT_DISCONNECTED")

	require.Equal(t, 200, post("/development/accounts/link", map[string]any{"merchant_id": 19, "transactions": map[string]any{"new": true}}))
	assert.Equal(t, "connected", accounts()[19])
	require.Equal(t, 200, post("/transactions/sync", map[string]any{"merchant_id": 19}))

	require.Equal(t, 200, post("/accounts/unlink", map[string]any{"merchant_id": 45}))
	assert.NotContains(t, accounts(), float64(45))
	require.Equal(t, 404, post("/accounts/unlink", map[string]any{"merchant_id": 45}))

	require.Equal(t, 200, post("/development/accounts/link", map[string]any{"merchant_id": 44, "card_switcher": true, "card_id": "card-1"}))
	resp, raw = mustSend(t, c, s, http.MethodGet, "/accounts/get?external_user_id="+user+"&merchant_id=44", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)
	assert.JSONEq(t, `{"merchant":{"id":44,"name":"Target","logo":"https://knot.imgix.net/merchants/target.png"},
		"connection":{"status":"connected","scopes":[{"type":"update_card"}]},
		"lifecycle":{"status":null},"last_user_action":{"attempted_at":null,"status":null}}`, string(raw))

	// Another user is unaffected.
	resp, raw = mustSend(t, c, s, http.MethodGet, "/accounts/get?external_user_id=someone-else&merchant_id=45", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)
}

func TestSessions(t *testing.T) {
	s, c, _ := setup(t)
	resp, raw := mustSend(t, c, s, http.MethodPost, "/session/create", map[string]any{"type": "card_switcher", "external_user_id": "u1", "card_id": "c1"})
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)
	id := decodeObject(t, raw)["session"].(string)
	assert.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, id)

	resp, raw = mustSend(t, c, s, http.MethodPost, "/session/extend", map[string]any{"session_id": id})
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)
	assert.JSONEq(t, `{"session":"`+id+`"}`, string(raw))

	resp, raw = mustSend(t, c, s, http.MethodPost, "/session/create", map[string]any{"type": "card_switcher", "external_user_id": "u1", "card_id": "c1"})
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)
	assert.NotEqual(t, id, decodeObject(t, raw)["session"], "each session is new")
}

func TestMerchantListFilters(t *testing.T) {
	s, c, _ := setup(t)
	list := func(body map[string]any) []map[string]any {
		t.Helper()
		resp, raw := mustSend(t, c, s, http.MethodPost, "/merchant/list", body)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", raw)
		return decodeArray(t, raw)
	}

	got := list(map[string]any{"type": "card_switcher", "search": "walm"})
	require.Len(t, got, 1)
	assert.Equal(t, map[string]any{"id": 45.0, "name": "Walmart", "category": "Online shopping", "logo": "https://knot.imgix.net/merchants/walmart.png"}, got[0])

	for _, m := range list(map[string]any{"type": "shopping", "platform": "ios"}) {
		assert.NotEmpty(t, m["min_sdk_version"])
		assert.NotContains(t, m, "status")
	}
	statuses := map[float64]any{}
	for _, m := range list(map[string]any{"type": "card_switcher", "external_user_id": "u1"}) {
		statuses[m["id"].(float64)] = m["status"]
	}
	assert.Equal(t, "enrolled", statuses[19])
	assert.Equal(t, "not enrolled", statuses[13])
}

func TestCardJWE(t *testing.T) {
	s, c, _ := setup(t)
	jwk := getJWK(t, c, s)
	kid := jwk["kid"].(string)
	assert.Equal(t, "RSA-OAEP-256", jwk["alg"])
	assert.Equal(t, jwk, getJWK(t, c, s), "the key is stable")

	expiredCard := validCard()
	expiredCard["card"].(map[string]any)["expiration"] = "01/2001"
	luhnCard := validCard()
	luhnCard["card"].(map[string]any)["number"] = "4242424242424241"
	noPhone := validCard()
	delete(noPhone["user"].(map[string]any), "phone_number")

	tamper := func(jwe string) string {
		b := []byte(jwe)
		i := len(b) - 30 // inside the ciphertext or tag
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}

	tests := []struct {
		name   string
		body   map[string]any
		status int
		code   string
	}{
		{"card switcher", map[string]any{"task_id": "123456", "jwe": encryptJWE(t, jwk, kid, validCard())}, 200, ""},
		{"task_id as number", map[string]any{"task_id": 25605, "jwe": encryptJWE(t, jwk, kid, validCard())}, 200, ""},
		{"card updater", map[string]any{"external_user_id": "u1", "merchant_id": 19, "card_name": "Work card", "jwe": encryptJWE(t, jwk, kid, validCard())}, 200, ""},
		{"plain JSON variant", map[string]any{"task_id": "1", "user": validCard()["user"], "card": validCard()["card"]}, 200, ""},
		{"wrong kid", map[string]any{"task_id": "1", "jwe": encryptJWE(t, jwk, "other-kid", validCard())}, 400, "INVALID_JWE"},
		{"tampered", map[string]any{"task_id": "1", "jwe": tamper(encryptJWE(t, jwk, kid, validCard()))}, 400, "INVALID_JWE"},
		{"expired card inside jwe", map[string]any{"task_id": "1", "jwe": encryptJWE(t, jwk, kid, expiredCard)}, 400, "INVALID_JWE"},
		{"luhn failure inside jwe", map[string]any{"task_id": "1", "jwe": encryptJWE(t, jwk, kid, luhnCard)}, 400, "INVALID_JWE"},
		{"missing phone inside jwe", map[string]any{"task_id": "1", "jwe": encryptJWE(t, jwk, kid, noPhone)}, 400, "INVALID_JWE"},
		{"plain luhn failure", map[string]any{"task_id": "1", "user": luhnCard["user"], "card": luhnCard["card"]}, 400, "INVALID_FIELD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, raw := mustSend(t, c, s, http.MethodPost, "/card", tt.body)
			if tt.code == "" {
				require.Equal(t, tt.status, resp.StatusCode, "body: %s", raw)
				assert.JSONEq(t, `{"message":"Success"}`, string(raw))
				return
			}
			requireKnotError(t, resp, raw, tt.status, "INVALID_REQUEST", tt.code)
			assert.NotContains(t, string(raw), "4242", "errors never echo card data")
		})
	}
}

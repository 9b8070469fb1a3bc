package knotclient_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient"
)

const transactionJSON = `{
  "id": "tx-1", "external_id": "ORD-9", "datetime": "2024-11-10T00:00:00+00:00", "url": null,
  "order_status": "SHIPPED",
  "shipping": {"location": {"address": {"line1": "1 Main St", "line2": null, "city": "Austin", "region": "TX", "postal_code": "78701", "country": "US"}, "first_name": "Ada", "last_name": null}},
  "payment_methods": [{"external_id": null, "type": "CARD", "brand": "VISA", "last_four": "4242", "name": null, "transaction_amount": "43.20"}],
  "price": {"sub_total": "40.00", "adjustments": [{"type": "TAX", "label": "Sales tax", "amount": "3.20"}, {"type": "DISCOUNT", "label": null, "amount": "-4.37"}], "total": "43.20", "currency": "USD"},
  "products": [{"external_id": "sku-1", "name": "Widget", "description": null, "url": null, "image_url": null, "quantity": 2, "price": {"sub_total": "40.00", "total": "40.00", "unit_price": "20.00"}, "seller": null, "eligibility": ["FSA/HSA"]}],
  "loyalty": null
}`

const subscriptionJSON = `{"id":"sub-1","external_id":"ext-1","name":"Premium","description":null,
  "merchant":{"id":16,"name":"Netflix"},"status":"ACTIVE","billing_cycle":"MONTHLY",
  "next_billing_date":"2026-02-10","last_billing_date":null,"start_date":"2025-01-10","next_renewal_date":null,"expiration_date":null,
  "cancel_instructions":null,"is_paid":true,"is_family_plan":null,"is_cancellable":true,"price":{"total":"15.49","currency":"USD"}}`

// TestEndpoints checks, for every typed method, the HTTP method, path,
// query and body it sends and how it decodes the response.
func TestEndpoints(t *testing.T) {
	type tc struct {
		name      string
		status    int
		response  string
		call      func(ctx context.Context, c *knotclient.Client) (any, error)
		method    string
		path      string
		query     url.Values // nil: no query
		body      string     // JSON the request must carry; "" = no body
		checkResp func(t *testing.T, got any)
	}
	tests := []tc{
		{
			name: "CreateSession", status: 200, response: `{"session":"915efe72-5136-4652-z91q-d9d48003c102"}`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				return c.CreateSession(ctx, knotclient.CreateSessionRequest{
					Type: knotclient.SessionCardSwitcher, ExternalUserID: "u1", CardID: "card-1",
					Email: "ada@example.com", Metadata: map[string]string{"trace_id": "abc"},
				})
			},
			method: "POST", path: "/session/create",
			body: `{"type":"card_switcher","external_user_id":"u1","card_id":"card-1","email":"ada@example.com","metadata":{"trace_id":"abc"}}`,
			checkResp: func(t *testing.T, got any) {
				assert.Equal(t, "915efe72-5136-4652-z91q-d9d48003c102", got.(*knotclient.SessionResponse).Session)
			},
		},
		{
			name: "ExtendSession", status: 200, response: `{"session":"s-2"}`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				return c.ExtendSession(ctx, knotclient.ExtendSessionRequest{SessionID: "s-1"})
			},
			method: "POST", path: "/session/extend", body: `{"session_id":"s-1"}`,
			checkResp: func(t *testing.T, got any) { assert.Equal(t, "s-2", got.(*knotclient.SessionResponse).Session) },
		},
		{
			name: "ListMerchants", status: 200,
			response: `[{"id":45,"name":"Walmart","category":"Online shopping","logo":"https://knot.imgix.net/w.png","min_sdk_version":"1.2.0","status":"enrolled"},{"id":19,"name":"DoorDash","logo":"https://knot.imgix.net/d.png"}]`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				return c.ListMerchants(ctx, knotclient.ListMerchantsRequest{Type: knotclient.ProductTransactionLink, Platform: knotclient.PlatformWeb, Search: "wal"})
			},
			method: "POST", path: "/merchant/list", body: `{"type":"transaction_link","platform":"web","search":"wal"}`,
			checkResp: func(t *testing.T, got any) {
				ms := got.([]knotclient.Merchant)
				require.Len(t, ms, 2)
				assert.Equal(t, knotclient.Merchant{ID: 45, Name: "Walmart", Category: "Online shopping", Logo: "https://knot.imgix.net/w.png",
					MinSDKVersion: "1.2.0", Status: knotclient.LinkStatusEnrolled}, ms[0])
				assert.Equal(t, 19, ms[1].ID)
			},
		},
		{
			name: "GetAccounts", status: 200,
			response: `[{"merchant":{"id":19,"name":"DoorDash","logo":"l"},"connection":{"status":"connected","scopes":[{"type":"update_card"},{"type":"cancel"}]},"lifecycle":{"status":null},"last_user_action":{"attempted_at":"2025-10-23T17:00:00Z","status":"success"}}]`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				return c.GetAccounts(ctx, knotclient.GetAccountsRequest{ExternalUserID: "u 1&x", Type: knotclient.ProductCardSwitcher})
			},
			method: "GET", path: "/accounts/get", query: url.Values{"external_user_id": {"u 1&x"}, "type": {"card_switcher"}},
			checkResp: func(t *testing.T, got any) {
				accts := got.([]knotclient.Account)
				require.Len(t, accts, 1)
				a := accts[0]
				assert.Equal(t, 19, a.Merchant.ID)
				assert.Equal(t, knotclient.ConnectionConnected, a.Connection.Status)
				assert.True(t, a.Connection.HasScope(knotclient.ScopeCancel))
				assert.Nil(t, a.Lifecycle.Status)
				require.NotNil(t, a.LastUserAction.AttemptedAt)
				assert.Equal(t, knotclient.DateTime("2025-10-23T17:00:00Z"), *a.LastUserAction.AttemptedAt)
			},
		},
		{
			name: "GetAccount", status: 200,
			response: `{"merchant":{"id":19,"name":"DoorDash"},"connection":{"status":"disconnected","scopes":[]},"lifecycle":{"status":"failed"},"last_user_action":{"attempted_at":null,"status":null}}`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				return c.GetAccount(ctx, knotclient.GetAccountRequest{ExternalUserID: "u1", MerchantID: 19})
			},
			method: "GET", path: "/accounts/get", query: url.Values{"external_user_id": {"u1"}, "merchant_id": {"19"}},
			checkResp: func(t *testing.T, got any) {
				a := got.(*knotclient.Account)
				assert.Equal(t, knotclient.ConnectionDisconnected, a.Connection.Status)
				assert.False(t, a.Connection.HasScope(knotclient.ScopeUpdateCard))
				require.NotNil(t, a.Lifecycle.Status)
				assert.Equal(t, "failed", *a.Lifecycle.Status)
			},
		},
		{
			name: "GetAccount tolerates an array", status: 200,
			response: `[{"merchant":{"id":7,"name":"Other"}},{"merchant":{"id":19,"name":"DoorDash"},"connection":{"status":"connected"}}]`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				return c.GetAccount(ctx, knotclient.GetAccountRequest{ExternalUserID: "u1", MerchantID: 19, Type: knotclient.ProductTransactionLink})
			},
			method: "GET", path: "/accounts/get", query: url.Values{"external_user_id": {"u1"}, "merchant_id": {"19"}, "type": {"transaction_link"}},
			checkResp: func(t *testing.T, got any) { assert.Equal(t, "DoorDash", got.(*knotclient.Account).Merchant.Name) },
		},
		{
			name: "UnlinkAccount", status: 200, response: `{"message":"Success"}`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				return nil, c.UnlinkAccount(ctx, knotclient.UnlinkAccountRequest{ExternalUserID: "u1", MerchantID: 19})
			},
			method: "POST", path: "/accounts/unlink", body: `{"external_user_id":"u1","merchant_id":19}`,
		},
		{
			name: "GetJWEKey", status: 200,
			response: `{"alg":"RSA-OAEP-256","e":"AQAB","key_ops":["encrypt"],"kid":"k-1","kty":"RSA","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","use":"enc"}`,
			call:     func(ctx context.Context, c *knotclient.Client) (any, error) { return c.GetJWEKey(ctx) },
			method:   "GET", path: "/jwe/key",
			checkResp: func(t *testing.T, got any) {
				k := got.(*knotclient.JWK)
				assert.Equal(t, "k-1", k.Kid)
				assert.Equal(t, []string{"encrypt"}, k.KeyOps)
				pub, err := k.PublicKey()
				require.NoError(t, err)
				assert.Equal(t, 65537, pub.E)
				assert.Equal(t, 2048, pub.N.BitLen())
			},
		},
		{
			name: "SwitchCard", status: 200, response: `{"message":"Success"}`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				return nil, c.SwitchCard(ctx, knotclient.SwitchCardRequest{TaskID: "25605", JWE: "eyJhbGciOiJSU0EtT0FFUC0yNTYifQ.a.b.c.d"})
			},
			method: "POST", path: "/card", body: `{"task_id":"25605","jwe":"eyJhbGciOiJSU0EtT0FFUC0yNTYifQ.a.b.c.d"}`,
		},
		{
			name: "UpdateCard", status: 200, response: `{"message":"Success"}`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				return nil, c.UpdateCard(ctx, knotclient.UpdateCardRequest{JWE: "j.w.e.x.y", ExternalUserID: "u1", MerchantID: 11, CardName: "Travel"})
			},
			method: "POST", path: "/card", body: `{"jwe":"j.w.e.x.y","external_user_id":"u1","merchant_id":11,"card_name":"Travel"}`,
		},
		{
			name: "SyncTransactions", status: 200,
			response: `{"merchant":{"id":4,"name":"Walmart"},"transactions":[` + transactionJSON + `],"next_cursor":"c-2","limit":1}`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				return c.SyncTransactions(ctx, knotclient.SyncTransactionsRequest{MerchantID: 4, ExternalUserID: "u1", Cursor: "c-1", Limit: 1})
			},
			method: "POST", path: "/transactions/sync", body: `{"merchant_id":4,"external_user_id":"u1","cursor":"c-1","limit":1}`,
			checkResp: func(t *testing.T, got any) {
				p := got.(*knotclient.SyncTransactionsResponse)
				assert.Equal(t, "Walmart", p.Merchant.Name)
				require.NotNil(t, p.NextCursor)
				assert.Equal(t, "c-2", *p.NextCursor)
				require.Len(t, p.Transactions, 1)
				checkTransaction(t, p.Transactions[0])
			},
		},
		{
			name: "SyncTransactions first page omits the cursor", status: 200,
			response: `{"merchant":{"id":4,"name":"Walmart"},"transactions":[],"next_cursor":null,"limit":100}`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				return c.SyncTransactions(ctx, knotclient.SyncTransactionsRequest{MerchantID: 4, ExternalUserID: "u1", Limit: 100})
			},
			method: "POST", path: "/transactions/sync", body: `{"merchant_id":4,"external_user_id":"u1","limit":100}`,
			checkResp: func(t *testing.T, got any) { assert.Nil(t, got.(*knotclient.SyncTransactionsResponse).NextCursor) },
		},
		{
			name: "GetTransaction", status: 200, response: transactionJSON,
			call:   func(ctx context.Context, c *knotclient.Client) (any, error) { return c.GetTransaction(ctx, "tx/1 ?") },
			method: "GET", path: "/transactions/tx/1 ?",
			checkResp: func(t *testing.T, got any) { checkTransaction(t, *got.(*knotclient.Transaction)) },
		},
		{
			name: "RefreshTransactions", status: 202, response: `{"message":"Success"}`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				return nil, c.RefreshTransactions(ctx, knotclient.RefreshTransactionsRequest{MerchantID: 19, ExternalUserID: "u1"})
			},
			method: "POST", path: "/transactions/refresh", body: `{"merchant_id":19,"external_user_id":"u1"}`,
		},
		{
			name: "SyncCart", status: 202, response: `{"message":"Success"}`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				line1, yes := "123 Main St", true
				return nil, c.SyncCart(ctx, knotclient.SyncCartRequest{
					ExternalUserID: "abc123", MerchantID: 44,
					Products: []knotclient.CartProduct{{ExternalID: "3324893784", Fulfillment: &knotclient.FulfillmentRef{ID: "f-1"}}},
					DeliveryLocation: &knotclient.DeliveryLocation{
						Address:   &knotclient.Address{Line1: &line1, Country: "US"},
						FirstName: "Ada", SetAsDefault: &yes,
					},
					Simulate: knotclient.SimulateFailed,
				})
			},
			method: "POST", path: "/cart",
			body: `{"external_user_id":"abc123","merchant_id":44,"products":[{"external_id":"3324893784","fulfillment":{"id":"f-1"}}],
				"delivery_location":{"address":{"line1":"123 Main St","country":"US"},"first_name":"Ada","set_as_default":true},"simulate":"failed"}`,
		},
		{
			name: "Checkout", status: 202, response: `{"message":"Success"}`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				return nil, c.Checkout(ctx, knotclient.CheckoutRequest{ExternalUserID: "abc123", MerchantID: 44,
					PaymentMethod: &knotclient.CheckoutPaymentMethod{ID: "pm-1", JWE: "a.b.c.d.e"}})
			},
			method: "POST", path: "/cart/checkout",
			body: `{"external_user_id":"abc123","merchant_id":44,"payment_method":{"id":"pm-1","jwe":"a.b.c.d.e"}}`,
		},
		{
			name: "GetSubscription", status: 200, response: subscriptionJSON,
			call:   func(ctx context.Context, c *knotclient.Client) (any, error) { return c.GetSubscription(ctx, "sub-1") },
			method: "GET", path: "/subscriptions/sub-1",
			checkResp: func(t *testing.T, got any) { checkSubscription(t, got.(*knotclient.Subscription)) },
		},
		{
			name: "ListSubscriptions", status: 200, response: `{"subscriptions":[` + subscriptionJSON + `],"next_cursor":null,"limit":100}`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				return c.ListSubscriptions(ctx, knotclient.ListSubscriptionsRequest{ExternalUserID: "u1", Limit: 100})
			},
			method: "POST", path: "/subscriptions/list", body: `{"external_user_id":"u1","limit":100}`,
			checkResp: func(t *testing.T, got any) {
				p := got.(*knotclient.ListSubscriptionsResponse)
				require.Len(t, p.Subscriptions, 1)
				checkSubscription(t, &p.Subscriptions[0])
				assert.Nil(t, p.NextCursor)
			},
		},
		{
			name: "CancelSubscription", status: 202, response: `{"message":"Success"}`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				return nil, c.CancelSubscription(ctx, knotclient.CancelSubscriptionRequest{SubscriptionID: "sub-1", ExternalUserID: "u1", MerchantID: 16})
			},
			method: "POST", path: "/subscriptions/sub-1/cancel", body: `{"external_user_id":"u1","merchant_id":16}`,
		},
		{
			name: "Detect", status: 202, response: `{"message":"Success"}`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				return nil, c.Detect(ctx, knotclient.DetectRequest{ExternalUserID: "u1", Email: "ada@example.com", PhoneNumber: "+15555550100"})
			},
			method: "POST", path: "/detect", body: `{"external_user_id":"u1","email":"ada@example.com","phone_number":"+15555550100"}`,
		},
		{
			name: "ListDetectedAccounts", status: 200,
			response: `{"detected_accounts":[{"merchant":{"id":11,"name":"Uber","logo":"l"},"detected_at":"2025-10-23T17:00:00Z"}],"next_cursor":"n","limit":1}`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				return c.ListDetectedAccounts(ctx, knotclient.ListDetectedAccountsRequest{ExternalUserID: "u1", Limit: 1})
			},
			method: "POST", path: "/detected-accounts/list", body: `{"external_user_id":"u1","limit":1}`,
			checkResp: func(t *testing.T, got any) {
				p := got.(*knotclient.ListDetectedAccountsResponse)
				require.Len(t, p.DetectedAccounts, 1)
				assert.Equal(t, "Uber", p.DetectedAccounts[0].Merchant.Name)
				require.NotNil(t, p.NextCursor)
			},
		},
		{
			name: "SearchDetectedAccounts", status: 200,
			response: `[{"name":"Uber","detected":true,"detected_at":"2025-10-23T17:00:00Z"},{"name":"Lyft","detected":false,"detected_at":null}]`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				return c.SearchDetectedAccounts(ctx, knotclient.SearchDetectedAccountsRequest{ExternalUserID: "u1", Names: []string{"Uber", "Lyft"}})
			},
			method: "POST", path: "/detected-accounts/search", body: `{"external_user_id":"u1","names":["Uber","Lyft"]}`,
			checkResp: func(t *testing.T, got any) {
				m := got.([]knotclient.DetectedAccountMatch)
				require.Len(t, m, 2)
				assert.True(t, m[0].Detected)
				assert.False(t, m[1].Detected)
				assert.Nil(t, m[1].DetectedAt)
			},
		},
		{
			name: "DevLinkAccount", status: 200, response: `{"message":"Success"}`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				return nil, c.DevLinkAccount(ctx, knotclient.DevLinkAccountRequest{ExternalUserID: "u1", MerchantID: 19,
					Transactions: &knotclient.DevTransactions{New: true, Updated: true}})
			},
			method: "POST", path: "/development/accounts/link",
			body: `{"external_user_id":"u1","merchant_id":19,"transactions":{"new":true,"updated":true}}`,
		},
		{
			name: "DevDisconnectAccount", status: 200, response: `{"message":"Success"}`,
			call: func(ctx context.Context, c *knotclient.Client) (any, error) {
				return nil, c.DevDisconnectAccount(ctx, knotclient.DevDisconnectAccountRequest{ExternalUserID: "u1", MerchantID: 19})
			},
			method: "POST", path: "/development/accounts/disconnect", body: `{"external_user_id":"u1","merchant_id":19}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, respond(tt.status, tt.response))
			c := f.client(t)
			got, err := tt.call(context.Background(), c)
			require.NoError(t, err)
			reqs := f.requests()
			require.Len(t, reqs, 1)
			r := reqs[0]
			assert.Equal(t, tt.method, r.Method)
			assert.Equal(t, tt.path, r.Path)
			if tt.query == nil {
				assert.Empty(t, r.RawQuery)
			} else {
				q, err := url.ParseQuery(r.RawQuery)
				require.NoError(t, err)
				assert.Equal(t, tt.query, q)
			}
			if tt.body == "" {
				assert.Empty(t, r.Body)
			} else {
				assert.JSONEq(t, tt.body, string(r.Body))
			}
			if tt.checkResp != nil {
				tt.checkResp(t, got)
			}
		})
	}
}

func checkTransaction(t *testing.T, tx knotclient.Transaction) {
	t.Helper()
	assert.Equal(t, "tx-1", tx.ID)
	require.NotNil(t, tx.ExternalID)
	assert.Equal(t, "ORD-9", *tx.ExternalID)
	assert.Nil(t, tx.URL)
	assert.Equal(t, knotclient.OrderStatusShipped, tx.OrderStatus)
	when, err := tx.Datetime.Time()
	require.NoError(t, err)
	assert.Equal(t, 2024, when.Year())
	require.NotNil(t, tx.Shipping)
	require.NotNil(t, tx.Shipping.Location)
	assert.Equal(t, "Austin", *tx.Shipping.Location.Address.City)
	assert.Nil(t, tx.Shipping.Location.Address.Line2)
	assert.Nil(t, tx.Shipping.Location.LastName)
	require.Len(t, tx.PaymentMethods, 1)
	assert.Equal(t, knotclient.PaymentCard, tx.PaymentMethods[0].Type)
	assert.Equal(t, knotclient.Money("43.20"), *tx.PaymentMethods[0].TransactionAmount)
	assert.Equal(t, knotclient.Money("43.20"), tx.Price.Total)
	require.Len(t, tx.Price.Adjustments, 2)
	assert.Equal(t, knotclient.Money("-4.37"), tx.Price.Adjustments[1].Amount)
	assert.Nil(t, tx.Price.Adjustments[1].Label)
	require.Len(t, tx.Products, 1)
	assert.Equal(t, 2, *tx.Products[0].Quantity)
	assert.Equal(t, knotclient.Money("20.00"), *tx.Products[0].Price.UnitPrice)
	assert.Nil(t, tx.Products[0].Seller)
	assert.Equal(t, []string{"FSA/HSA"}, tx.Products[0].Eligibility)
}

func checkSubscription(t *testing.T, s *knotclient.Subscription) {
	t.Helper()
	assert.Equal(t, "sub-1", s.ID)
	assert.Equal(t, knotclient.SubscriptionActive, s.Status)
	assert.Equal(t, knotclient.BillingMonthly, s.BillingCycle)
	assert.Nil(t, s.Description)
	require.NotNil(t, s.NextBillingDate)
	d, err := s.NextBillingDate.Time()
	require.NoError(t, err)
	assert.Equal(t, "2026-02-10", d.Format("2006-01-02"))
	assert.Nil(t, s.LastBillingDate)
	require.NotNil(t, s.IsPaid)
	assert.True(t, *s.IsPaid)
	assert.Nil(t, s.IsFamilyPlan)
	assert.True(t, s.IsCancellable)
	assert.Equal(t, knotclient.Money("15.49"), s.Price.Total)
	assert.Equal(t, 16, s.Merchant.ID)
}

// TestUnknownFieldsAndEnumValuesAreTolerated decodes responses with fields
// and enum values this package does not know.
func TestUnknownFieldsAndEnumValuesAreTolerated(t *testing.T) {
	f := newFake(t, respond(200, `{"id":"tx-9","order_status":"TELEPORTED","brand_new_field":{"x":[1,2]},
		"payment_methods":[{"type":"CRYPTO","wallet":"0xabc"}],"price":{"total":"1.00","adjustments":[{"type":"SURCHARGE","amount":"0.10"}],"fx":"1.1"},
		"products":[],"loyalty":{"program":"stars","points":12}}`))
	c := f.client(t)
	tx, err := c.GetTransaction(context.Background(), "tx-9")
	require.NoError(t, err)
	assert.Equal(t, knotclient.OrderStatus("TELEPORTED"), tx.OrderStatus)
	assert.Equal(t, knotclient.PaymentMethodType("CRYPTO"), tx.PaymentMethods[0].Type)
	assert.Equal(t, knotclient.AdjustmentType("SURCHARGE"), tx.Price.Adjustments[0].Type)
	assert.JSONEq(t, `{"program":"stars","points":12}`, string(tx.Loyalty))
}

// TestIterators checks that the iterators follow next_cursor, stop on a
// null cursor, stop at the first error, and are bounded.
func TestIterators(t *testing.T) {
	ctx := context.Background()
	page := func(items, next string) string {
		if next == "" {
			next = "null"
		} else {
			next = `"` + next + `"`
		}
		return items + `,"next_cursor":` + next + `,"limit":2}`
	}
	t.Run("transactions follow the cursor to null", func(t *testing.T) {
		f := newFake(t, sequence(
			respond(200, page(`{"merchant":{"id":4,"name":"W"},"transactions":[{"id":"a"},{"id":"b"}]`, "c2")),
			respond(200, page(`{"merchant":{"id":4,"name":"W"},"transactions":[{"id":"c"}]`, "c3")),
			respond(200, page(`{"merchant":{"id":4,"name":"W"},"transactions":[]`, "")),
		))
		c := f.client(t)
		var ids []string
		for tx, err := range c.AllTransactions(ctx, knotclient.SyncTransactionsRequest{MerchantID: 4, ExternalUserID: "u", Limit: 2}) {
			require.NoError(t, err)
			ids = append(ids, tx.ID)
		}
		assert.Equal(t, []string{"a", "b", "c"}, ids)
		var cursors []string
		for _, r := range f.requests() {
			var body struct {
				Cursor *string `json:"cursor"`
			}
			require.NoError(t, json.Unmarshal(r.Body, &body))
			cursors = append(cursors, ptrOr(body.Cursor, "<none>"))
		}
		assert.Equal(t, []string{"<none>", "c2", "c3"}, cursors)
	})
	t.Run("pages expose the cursor and resume from one", func(t *testing.T) {
		f := newFake(t, sequence(
			respond(200, page(`{"transactions":[{"id":"x"}]`, "c9")),
			respond(200, page(`{"transactions":[{"id":"y"}]`, "")),
		))
		c := f.client(t)
		var next []string
		for p, err := range c.SyncTransactionPages(ctx, knotclient.SyncTransactionsRequest{MerchantID: 4, ExternalUserID: "u", Cursor: "saved"}) {
			require.NoError(t, err)
			next = append(next, ptrOr(p.NextCursor, "<null>"))
		}
		assert.Equal(t, []string{"c9", "<null>"}, next)
		assert.JSONEq(t, `{"merchant_id":4,"external_user_id":"u","cursor":"saved"}`, string(f.requests()[0].Body))
	})
	t.Run("subscriptions and detected accounts", func(t *testing.T) {
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			var body struct{ Cursor string }
			_ = json.NewDecoder(r.Body).Decode(&body)
			switch {
			case r.URL.Path == "/subscriptions/list" && body.Cursor == "":
				respond(200, page(`{"subscriptions":[{"id":"s1"}]`, "p2"))(w, r)
			case r.URL.Path == "/subscriptions/list":
				respond(200, page(`{"subscriptions":[{"id":"s2"}]`, ""))(w, r)
			case body.Cursor == "":
				respond(200, page(`{"detected_accounts":[{"merchant":{"id":1,"name":"A"}}]`, "p2"))(w, r)
			default:
				respond(200, page(`{"detected_accounts":[{"merchant":{"id":2,"name":"B"}}]`, ""))(w, r)
			}
		})
		c := f.client(t)
		var subs []string
		for s, err := range c.AllSubscriptions(ctx, knotclient.ListSubscriptionsRequest{ExternalUserID: "u"}) {
			require.NoError(t, err)
			subs = append(subs, s.ID)
		}
		assert.Equal(t, []string{"s1", "s2"}, subs)
		var names []string
		for d, err := range c.AllDetectedAccounts(ctx, knotclient.ListDetectedAccountsRequest{ExternalUserID: "u"}) {
			require.NoError(t, err)
			names = append(names, d.Merchant.Name)
		}
		assert.Equal(t, []string{"A", "B"}, names)
	})
	t.Run("stops at the first error", func(t *testing.T) {
		f := newFake(t, sequence(
			respond(200, page(`{"transactions":[{"id":"a"}]`, "c2")),
			respond(400, `{"error_type":"TRANSACTION_ERROR","error_code":"INVALID_CURSOR_FORMAT","error_message":"bad cursor"}`),
		))
		c := f.client(t)
		var ids []string
		var errs []error
		for tx, err := range c.AllTransactions(ctx, knotclient.SyncTransactionsRequest{MerchantID: 4, ExternalUserID: "u"}) {
			if err != nil {
				errs = append(errs, err)
				continue
			}
			ids = append(ids, tx.ID)
		}
		assert.Equal(t, []string{"a"}, ids)
		require.Len(t, errs, 1)
		assert.True(t, knotclient.IsCode(errs[0], knotclient.CodeInvalidCursorFormat))
		assert.Equal(t, 2, f.hits())
	})
	t.Run("caller can stop early", func(t *testing.T) {
		f := newFake(t, respond(200, page(`{"transactions":[{"id":"a"},{"id":"b"}]`, "more")))
		c := f.client(t)
		for tx, err := range c.AllTransactions(ctx, knotclient.SyncTransactionsRequest{MerchantID: 4, ExternalUserID: "u"}) {
			require.NoError(t, err)
			if tx.ID == "a" {
				break
			}
		}
		assert.Equal(t, 1, f.hits())
	})
	t.Run("repeated cursor ends with ErrTooManyPages", func(t *testing.T) {
		f := newFake(t, respond(200, page(`{"transactions":[{"id":"a"}]`, "same")))
		c := f.client(t)
		var last error
		n := 0
		for _, err := range c.AllTransactions(ctx, knotclient.SyncTransactionsRequest{MerchantID: 4, ExternalUserID: "u"}) {
			n++
			last = err
		}
		require.ErrorIs(t, last, knotclient.ErrTooManyPages)
		assert.Equal(t, 2, f.hits(), "first page, then the page that repeats its cursor")
		assert.Equal(t, 3, n)
	})
	t.Run("a cursor cycle ends with ErrTooManyPages", func(t *testing.T) {
		f := newFake(t, sequence(
			respond(200, page(`{"transactions":[{"id":"a"}]`, "A")),
			respond(200, page(`{"transactions":[{"id":"b"}]`, "B")),
			respond(200, page(`{"transactions":[{"id":"c"}]`, "A")),
			respond(200, page(`{"transactions":[{"id":"never"}]`, "")),
		))
		c := f.client(t)
		var ids []string
		var last error
		for tx, err := range c.AllTransactions(ctx, knotclient.SyncTransactionsRequest{MerchantID: 4, ExternalUserID: "u"}) {
			if err != nil {
				last = err
				continue
			}
			ids = append(ids, tx.ID)
		}
		require.ErrorIs(t, last, knotclient.ErrTooManyPages)
		assert.Equal(t, []string{"a", "b", "c"}, ids)
		assert.Equal(t, 3, f.hits(), "the page that hands out A again is the last one fetched")
	})
	t.Run("MaxPages bounds a listing that never ends", func(t *testing.T) {
		var n int
		var mu sync.Mutex
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			n++
			next := fmt.Sprintf("c%d", n)
			mu.Unlock()
			respond(200, page(`{"subscriptions":[{"id":"s"}]`, next))(w, r)
		})
		c := f.client(t, func(cfg *knotclient.Config) { cfg.MaxPages = 5 })
		var errs []error
		for _, err := range c.AllSubscriptions(ctx, knotclient.ListSubscriptionsRequest{ExternalUserID: "u"}) {
			if err != nil {
				errs = append(errs, err)
			}
		}
		require.Len(t, errs, 1)
		assert.ErrorIs(t, errs[0], knotclient.ErrTooManyPages)
		assert.Equal(t, 5, f.hits())
	})
}

func ptrOr(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

package knotclient

import "context"

// Simulate asks the development environment to simulate an outcome. Open
// enum.
type Simulate string

// SimulateFailed makes a development cart or checkout fail.
const SimulateFailed Simulate = "failed"

// SyncCartRequest is the body of POST /cart.
type SyncCartRequest struct {
	ExternalUserID   string            `json:"external_user_id"`
	MerchantID       int               `json:"merchant_id"`
	Products         []CartProduct     `json:"products"`
	DeliveryLocation *DeliveryLocation `json:"delivery_location,omitempty"`
	Simulate         Simulate          `json:"simulate,omitempty"`
}

// CartProduct is one product to put in the cart.
type CartProduct struct {
	// ExternalID is the merchant's product ID.
	ExternalID string `json:"external_id"`
	// Fulfillment optionally picks one of the options SYNC_CART_SUCCEEDED
	// returned.
	Fulfillment *FulfillmentRef `json:"fulfillment,omitempty"`
}

// FulfillmentRef selects a fulfillment option by ID.
type FulfillmentRef struct {
	ID string `json:"id"`
}

// DeliveryLocation is where a cart is delivered.
type DeliveryLocation struct {
	Address      *Address `json:"address,omitempty"`
	FirstName    string   `json:"first_name,omitempty"`
	LastName     string   `json:"last_name,omitempty"`
	PhoneNumber  string   `json:"phone_number,omitempty"`
	SetAsDefault *bool    `json:"set_as_default,omitempty"`
}

// SyncCart adds products to a user's cart at a merchant: POST /cart (202).
// The outcome arrives as SYNC_CART_SUCCEEDED or SYNC_CART_FAILED; run one
// operation per merchant account at a time.
//
// Never retried: an accepted (202) operation without idempotency key.
func (c *Client) SyncCart(ctx context.Context, req SyncCartRequest) error {
	return c.do(ctx, call{method: "POST", op: "POST /cart", path: "/cart", body: req}, nil)
}

// CheckoutRequest is the body of POST /cart/checkout.
type CheckoutRequest struct {
	ExternalUserID string                 `json:"external_user_id"`
	MerchantID     int                    `json:"merchant_id"`
	PaymentMethod  *CheckoutPaymentMethod `json:"payment_method,omitempty"`
	Simulate       Simulate               `json:"simulate,omitempty"`
}

// CheckoutPaymentMethod is the card to pay with, encrypted as a JWE.
type CheckoutPaymentMethod struct {
	ID          string `json:"id,omitempty"`
	JWE         string `json:"jwe,omitempty"`
	IsSingleUse *bool  `json:"is_single_use,omitempty"`
}

// Checkout places the order for a user's cart: POST /cart/checkout (202).
// The outcome arrives as CHECKOUT_SUCCEEDED or CHECKOUT_FAILED.
//
// Never retried: a repeat could place a second order.
func (c *Client) Checkout(ctx context.Context, req CheckoutRequest) error {
	return c.do(ctx, call{method: "POST", op: "POST /cart/checkout", path: "/cart/checkout", body: req}, nil)
}

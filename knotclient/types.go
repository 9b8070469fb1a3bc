package knotclient

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Timestamp is a Unix time in milliseconds, as in a webhook's timestamp. It
// decodes from a JSON number or a numeric string (Knot's samples use both)
// and encodes as a number.
type Timestamp int64

// UnmarshalJSON accepts 1710864923198, "1710864923198" and null.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("knotclient: timestamp: %w", err)
		}
		b = []byte(strings.TrimSpace(s))
		if len(b) == 0 {
			*t = 0
			return nil
		}
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("knotclient: timestamp %q is not a number", b)
	}
	if i, err := n.Int64(); err == nil {
		*t = Timestamp(i)
		return nil
	}
	f, err := n.Float64()
	if err != nil {
		return fmt.Errorf("knotclient: timestamp %q is not a number", b)
	}
	*t = Timestamp(int64(f))
	return nil
}

// Time returns t as a time.Time (zero for a zero Timestamp).
func (t Timestamp) Time() time.Time {
	if t == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(t))
}

// DateTime is an ISO 8601 date-time or date string as Knot sends it
// ("2024-11-10T00:00:00+00:00", "2025-10-23T17:00:00Z", "2026-02-10"). It is
// kept as sent; [DateTime.Time] parses it.
type DateTime string

// Time parses d as RFC 3339 (with or without fractional seconds), as a
// date-time without zone (taken as UTC), or as a bare date (midnight UTC).
func (d DateTime) Time() (time.Time, error) {
	s := strings.TrimSpace(string(d))
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("knotclient: cannot parse date-time %q", s)
}

// ProductType is a Knot product, as /merchant/list and /accounts/get take
// it in their type field. Open enum.
type ProductType string

// Product types.
const (
	ProductCardSwitcher        ProductType = "card_switcher"
	ProductTransactionLink     ProductType = "transaction_link"
	ProductShopping            ProductType = "shopping"
	ProductVault               ProductType = "vault"
	ProductSubscriptionManager ProductType = "subscription_manager"
)

// Platform is a client platform. Open enum.
type Platform string

// Platforms.
const (
	PlatformIOS     Platform = "ios"
	PlatformAndroid Platform = "android"
	PlatformWeb     Platform = "web"
)

// Merchant is a merchant as /merchant/list and most other responses and
// webhooks describe it; fields a response does not carry are left empty.
type Merchant struct {
	ID            int        `json:"id"`
	Name          string     `json:"name"`
	Logo          string     `json:"logo,omitempty"`
	Category      string     `json:"category,omitempty"`
	MinSDKVersion string     `json:"min_sdk_version,omitempty"`
	Status        LinkStatus `json:"status,omitempty"`
}

// LinkStatus is the legacy per-merchant enrollment status /merchant/list
// adds when given an external_user_id. Open enum.
type LinkStatus string

// Link statuses.
const (
	LinkStatusNotEnrolled LinkStatus = "not enrolled"
	LinkStatusEnrolling   LinkStatus = "enrolling"
	LinkStatusCredentials LinkStatus = "credentials"
	LinkStatusOTP         LinkStatus = "otp"
	LinkStatusApproval    LinkStatus = "approval"
	LinkStatusQuestions   LinkStatus = "questions"
	LinkStatusEnrolled    LinkStatus = "enrolled"
	LinkStatusFailed      LinkStatus = "failed"
)

// Address is a postal address.
type Address struct {
	Line1      *string `json:"line1,omitempty"`
	Line2      *string `json:"line2,omitempty"`
	City       *string `json:"city,omitempty"`
	Region     *string `json:"region,omitempty"`
	PostalCode *string `json:"postal_code,omitempty"`
	Country    string  `json:"country,omitempty"`
}

// Money is a decimal amount as Knot sends it: a string such as "43.20" or
// "-4.37". It is kept as a string to avoid floating-point rounding.
type Money string

// IDRef is an object that carries only an ID, as in webhook lists.
type IDRef struct {
	ID string `json:"id"`
}

// OrderStatus is a transaction's order status. Open enum.
type OrderStatus string

// Order statuses.
const (
	OrderStatusOrdered      OrderStatus = "ORDERED"
	OrderStatusBilled       OrderStatus = "BILLED"
	OrderStatusShipped      OrderStatus = "SHIPPED"
	OrderStatusDelivered    OrderStatus = "DELIVERED"
	OrderStatusPickedUp     OrderStatus = "PICKED_UP"
	OrderStatusCompleted    OrderStatus = "COMPLETED"
	OrderStatusRefunded     OrderStatus = "REFUNDED"
	OrderStatusReturned     OrderStatus = "RETURNED"
	OrderStatusCancelled    OrderStatus = "CANCELLED"
	OrderStatusFailed       OrderStatus = "FAILED"
	OrderStatusUnrecognized OrderStatus = "UNRECOGNIZED"
)

// PaymentMethodType is how a transaction was paid. Open enum.
type PaymentMethodType string

// Payment method types.
const (
	PaymentCard          PaymentMethodType = "CARD"
	PaymentApplePay      PaymentMethodType = "APPLE_PAY"
	PaymentGooglePay     PaymentMethodType = "GOOGLE_PAY"
	PaymentAmazonPay     PaymentMethodType = "AMAZON_PAY"
	PaymentPayPal        PaymentMethodType = "PAYPAL"
	PaymentCashApp       PaymentMethodType = "CASH_APP"
	PaymentVenmo         PaymentMethodType = "VENMO"
	PaymentAffirm        PaymentMethodType = "AFFIRM"
	PaymentKlarna        PaymentMethodType = "KLARNA"
	PaymentGiftCard      PaymentMethodType = "GIFT_CARD"
	PaymentCash          PaymentMethodType = "CASH"
	PaymentBankAccount   PaymentMethodType = "BANK_ACCOUNT"
	PaymentLoyaltyPoints PaymentMethodType = "LOYALTY_POINTS"
	PaymentUnrecognized  PaymentMethodType = "UNRECOGNIZED"
)

// AdjustmentType is the kind of a price adjustment. Open enum.
type AdjustmentType string

// Adjustment types.
const (
	AdjustmentDiscount     AdjustmentType = "DISCOUNT"
	AdjustmentTax          AdjustmentType = "TAX"
	AdjustmentTip          AdjustmentType = "TIP"
	AdjustmentFee          AdjustmentType = "FEE"
	AdjustmentRefund       AdjustmentType = "REFUND"
	AdjustmentUnrecognized AdjustmentType = "UNRECOGNIZED"
)

// Transaction is one purchase (order) at a merchant, SKU-level. Fields
// documented as nullable are pointers.
type Transaction struct {
	ID             string          `json:"id"`
	ExternalID     *string         `json:"external_id"`
	Datetime       DateTime        `json:"datetime"`
	URL            *string         `json:"url"`
	OrderStatus    OrderStatus     `json:"order_status"`
	Shipping       *Shipping       `json:"shipping"`
	PaymentMethods []PaymentMethod `json:"payment_methods"`
	Price          Price           `json:"price"`
	Products       []Product       `json:"products"`
	// Loyalty is a nullable loyalty-membership object whose shape Knot
	// has not documented; it is kept raw.
	Loyalty json.RawMessage `json:"loyalty,omitempty"`
}

// Shipping is where an order was shipped.
type Shipping struct {
	Location *ShippingLocation `json:"location"`
}

// ShippingLocation is a shipping address and recipient.
type ShippingLocation struct {
	Address   *Address `json:"address"`
	FirstName *string  `json:"first_name"`
	LastName  *string  `json:"last_name"`
}

// PaymentMethod is one means of payment used for a transaction.
type PaymentMethod struct {
	ExternalID        *string           `json:"external_id"`
	Type              PaymentMethodType `json:"type"`
	Brand             *string           `json:"brand"`
	LastFour          *string           `json:"last_four"`
	Name              *string           `json:"name"`
	TransactionAmount *Money            `json:"transaction_amount"`
}

// Price is a transaction's price breakdown.
type Price struct {
	SubTotal    *Money       `json:"sub_total"`
	Adjustments []Adjustment `json:"adjustments"`
	Total       Money        `json:"total"`
	Currency    *string      `json:"currency"`
}

// Adjustment is a discount, tax, tip, fee or refund; Amount is signed.
type Adjustment struct {
	Type   AdjustmentType `json:"type"`
	Label  *string        `json:"label"`
	Amount Money          `json:"amount"`
}

// Product is one line item of a transaction.
type Product struct {
	ExternalID  *string       `json:"external_id"`
	Name        string        `json:"name"`
	Description *string       `json:"description"`
	URL         *string       `json:"url"`
	ImageURL    *string       `json:"image_url"`
	Quantity    *int          `json:"quantity"`
	Price       *ProductPrice `json:"price"`
	Seller      *Seller       `json:"seller"`
	Eligibility []string      `json:"eligibility"`
}

// ProductPrice is a line item's price.
type ProductPrice struct {
	SubTotal  *Money `json:"sub_total"`
	Total     *Money `json:"total"`
	UnitPrice *Money `json:"unit_price"`
}

// Seller is the seller of a line item (marketplaces).
type Seller struct {
	Name *string `json:"name"`
	URL  *string `json:"url"`
}

package knottest

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
)

// Fixture values users can rely on in their tests.
const (
	// MerchantID is DoorDash, a merchant account every external_user_id
	// starts with linked and connected (as are Walmart, 45, and Netflix, 16).
	MerchantID = 19
	// UnknownUserID is an external_user_id the server does not know:
	// endpoints that look a user up answer 404 USER_ERROR/USER_NOT_FOUND.
	UnknownUserID = "knottest-unknown-user"
	// TransactionPages is how many pages /transactions/sync returns for an
	// account, whatever the limit: every page holds limit transactions and
	// the last one has next_cursor null.
	TransactionPages = 3
	// DefaultSyncLimit is the page size of /transactions/sync when the
	// request has no limit. (Knot's own documents disagree between 5 and
	// 100; clients should always send limit.)
	DefaultSyncLimit = 5
	// DefaultListLimit is the page size of /subscriptions/list and
	// /detected-accounts/list when the request has no limit.
	DefaultListLimit = 100
	// MaxLimit is the largest limit any list endpoint accepts (1 to 100).
	MaxLimit = 100
	// TransactionID is the first transaction of the DoorDash account; GET
	// /transactions/{id} answers for it (and for every ID sync hands out).
	TransactionID = "528b53b1-5a2f-4b9e-9118-f3ebf4f98b61"
	// SubscriptionID is a Netflix subscription every user has.
	SubscriptionID = "4b5b9d8e-2c1f-4f3a-9b7e-1a6c2e8d0f01"
)

// Product types, as /merchant/list and /session/create spell them.
const (
	productCardSwitcher    = "card_switcher"
	productTransactionLink = "transaction_link"
	productShopping        = "shopping"
	productLink            = "link"
	productVault           = "vault"
	productSubscriptions   = "subscription_manager"
)

type catalogItem struct {
	sku         string
	name        string
	description string
	cents       int64
	eligibility []string
}

type merchant struct {
	id       int64
	name     string
	category string
	site     string
	prefix   string // order number prefix
	digital  bool   // no shipping
	products []string
	statuses []string // order_status cycle
	catalog  []catalogItem
}

func (m *merchant) logo() string {
	return "https://knot.imgix.net/merchants/" + strings.ToLower(strings.NewReplacer(" ", "-", "+", "plus", "&", "and").Replace(m.name)) + ".png"
}

func (m *merchant) supports(product string) bool {
	for _, p := range m.products {
		if p == product {
			return true
		}
	}
	return false
}

var merchants = []*merchant{
	{
		id: 19, name: "DoorDash", category: "Food delivery", site: "https://www.doordash.com", prefix: "DD",
		products: []string{productCardSwitcher, productTransactionLink, productVault},
		statuses: []string{"DELIVERED", "COMPLETED", "DELIVERED", "CANCELLED", "DELIVERED"},
		catalog: []catalogItem{
			{"dd-58213", "Chicken Tikka Masala", "Boneless chicken in a creamy tomato sauce, served with basmati rice", 1599, nil},
			{"dd-58214", "Garlic Naan", "Leavened flatbread with garlic and butter", 349, nil},
			{"dd-77102", "Pad Thai", "Rice noodles with tofu, egg, bean sprouts and peanuts", 1350, nil},
			{"dd-77118", "Vegetable Spring Rolls (4)", "Crispy rolls with sweet chili sauce", 625, nil},
			{"dd-90311", "Mango Lassi", "Yogurt drink with mango pulp", 499, nil},
		},
	},
	{
		id: 45, name: "Walmart", category: "Online shopping", site: "https://www.walmart.com", prefix: "WM",
		products: []string{productCardSwitcher, productTransactionLink, productShopping, productVault},
		statuses: []string{"DELIVERED", "SHIPPED", "PICKED_UP", "ORDERED", "DELIVERED", "RETURNED"},
		catalog: []catalogItem{
			{"10450114", "Great Value Whole Milk, 1 gal", "Vitamin D whole milk", 368, nil},
			{"44390948", "Bananas, each", "Fresh Cavendish bananas", 27, nil},
			{"893429523", "Tide PODS Laundry Detergent, 42 Count", "Original scent", 1297, nil},
			{"10295583", "Equate Ibuprofen Tablets 200 mg, 100 Count", "Pain reliever and fever reducer", 488, []string{"FSA/HSA"}},
			{"551285726", "onn. USB-C to USB-C Cable, 6 ft", "Braided charging cable", 888, nil},
		},
	},
	{
		id: 44, name: "Target", category: "Online shopping", site: "https://www.target.com", prefix: "TGT",
		products: []string{productCardSwitcher, productTransactionLink, productShopping},
		statuses: []string{"PICKED_UP", "DELIVERED", "SHIPPED", "COMPLETED"},
		catalog: []catalogItem{
			{"13346912", "up & up Flexible Fabric Bandages, 30ct", "Assorted sizes", 329, []string{"FSA/HSA"}},
			{"53258392", "Threshold Performance Bath Towel", "Cotton, white", 1000, nil},
			{"54555823", "Good & Gather Medium Roast Ground Coffee, 12oz", "Colombian", 799, nil},
		},
	},
	{
		id: 16, name: "Netflix", category: "Streaming", site: "https://www.netflix.com", prefix: "NF", digital: true,
		products: []string{productCardSwitcher, productVault, productSubscriptions},
		statuses: []string{"BILLED", "COMPLETED"},
		catalog:  []catalogItem{{"nf-standard", "Standard plan", "Monthly membership, 2 screens, HD", 1799, nil}},
	},
	{
		id: 13, name: "Spotify", category: "Streaming", site: "https://www.spotify.com", prefix: "SP", digital: true,
		products: []string{productCardSwitcher, productSubscriptions},
		statuses: []string{"BILLED"},
		catalog:  []catalogItem{{"sp-premium", "Spotify Premium Individual", "Monthly subscription", 1199, nil}},
	},
	{
		id: 18, name: "Hulu", category: "Streaming", site: "https://www.hulu.com", prefix: "HU", digital: true,
		products: []string{productCardSwitcher, productSubscriptions},
		statuses: []string{"BILLED"},
		catalog:  []catalogItem{{"hu-ads", "Hulu (With Ads)", "Monthly subscription", 999, nil}},
	},
	{
		id: 8, name: "Disney+", category: "Streaming", site: "https://www.disneyplus.com", prefix: "DP", digital: true,
		products: []string{productCardSwitcher, productSubscriptions},
		statuses: []string{"BILLED"},
		catalog:  []catalogItem{{"dp-basic", "Disney+ Basic", "Monthly subscription with ads", 999, nil}},
	},
	{
		id: 60, name: "Apple", category: "Technology", site: "https://www.apple.com", prefix: "W", digital: true,
		products: []string{productCardSwitcher, productSubscriptions, productVault},
		statuses: []string{"BILLED", "COMPLETED"},
		catalog:  []catalogItem{{"ap-icloud-200", "iCloud+ 200 GB", "Monthly storage plan", 299, nil}},
	},
	{
		id: 152, name: "T-Mobile", category: "Wireless", site: "https://www.t-mobile.com", prefix: "TM", digital: true,
		products: []string{productCardSwitcher, productSubscriptions},
		statuses: []string{"BILLED"},
		catalog:  []catalogItem{{"tm-go5g", "Go5G Plan", "Monthly wireless service, 1 line", 7500, nil}},
	},
}

func merchantByID(id int64) *merchant {
	for _, m := range merchants {
		if m.id == id {
			return m
		}
	}
	return nil
}

// defaultAccounts are the merchant accounts every user starts with.
var defaultAccounts = []struct {
	merchantID int64
	scopes     []string
}{
	{19, []string{"update_card"}},
	{45, []string{"update_card"}},
	{16, []string{"update_card", "cancel"}},
}

// ---- JSON shapes ----

type merchantRef struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	Logo string `json:"logo,omitempty"`
}

type merchantItem struct {
	ID            int64  `json:"id"`
	Name          string `json:"name"`
	Category      string `json:"category"`
	Logo          string `json:"logo"`
	MinSDKVersion string `json:"min_sdk_version,omitempty"`
	Status        string `json:"status,omitempty"`
}

type transactionJSON struct {
	ID             string              `json:"id"`
	ExternalID     *string             `json:"external_id"`
	Datetime       string              `json:"datetime"`
	URL            *string             `json:"url"`
	OrderStatus    string              `json:"order_status"`
	Shipping       *shippingJSON       `json:"shipping"`
	PaymentMethods []paymentMethodJSON `json:"payment_methods"`
	Price          priceJSON           `json:"price"`
	Products       []productJSON       `json:"products"`
	Loyalty        *struct{}           `json:"loyalty"`
}

type shippingJSON struct {
	Location *locationJSON `json:"location"`
}

type locationJSON struct {
	Address   *addressJSON `json:"address"`
	FirstName *string      `json:"first_name"`
	LastName  *string      `json:"last_name"`
}

type addressJSON struct {
	Line1      *string `json:"line1"`
	Line2      *string `json:"line2"`
	City       *string `json:"city"`
	Region     *string `json:"region"`
	PostalCode *string `json:"postal_code"`
	Country    string  `json:"country"`
}

type paymentMethodJSON struct {
	ExternalID        *string `json:"external_id"`
	Type              string  `json:"type"`
	Brand             *string `json:"brand"`
	LastFour          *string `json:"last_four"`
	Name              *string `json:"name"`
	TransactionAmount *string `json:"transaction_amount"`
}

type priceJSON struct {
	SubTotal    *string          `json:"sub_total"`
	Adjustments []adjustmentJSON `json:"adjustments"`
	Total       string           `json:"total"`
	Currency    *string          `json:"currency"`
}

type adjustmentJSON struct {
	Type   string  `json:"type"`
	Label  *string `json:"label"`
	Amount string  `json:"amount"`
}

type productJSON struct {
	ExternalID  *string           `json:"external_id"`
	Name        string            `json:"name"`
	Description *string           `json:"description"`
	URL         *string           `json:"url"`
	ImageURL    *string           `json:"image_url"`
	Quantity    *int              `json:"quantity"`
	Price       *productPriceJSON `json:"price"`
	Seller      *sellerJSON       `json:"seller"`
	Eligibility []string          `json:"eligibility"`
}

type productPriceJSON struct {
	SubTotal  *string `json:"sub_total"`
	Total     *string `json:"total"`
	UnitPrice *string `json:"unit_price"`
}

type sellerJSON struct {
	Name *string `json:"name"`
	URL  *string `json:"url"`
}

func ptr[T any](v T) *T { return &v }

func money(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

// ---- transactions ----

// maxTransactionIndex bounds the indexes sync can hand out.
const maxTransactionIndex = TransactionPages * MaxLimit

// baseTime anchors fixture datetimes so responses are deterministic.
var baseTime = time.Date(2025, 10, 23, 17, 0, 0, 0, time.UTC)

// mix64 is the splitmix64 finalizer: it spreads similar inputs apart so
// fixture IDs look random.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

func hashString(format string, args ...any) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, format, args...)
	return mix64(h.Sum64())
}

func txnHash(merchantID int64, i int) uint64 {
	return hashString("knottest-transaction:%d:%d", merchantID, i)
}

const (
	merchantMask = 0x5a3c         // hides the merchant ID in group 2
	indexMask    = 0xffffffffffff // 48 bits of group 5
)

// transactionID is a UUID-shaped ID from which the merchant (group 2) and
// the index (group 5) can be recovered; both are masked and the other
// groups are hash bits, so IDs look random.
func transactionID(merchantID int64, i int) string {
	h := txnHash(merchantID, i)
	mask := hashString("knottest-merchant:%d", merchantID) & indexMask
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x",
		uint32(h>>32), (uint64(merchantID)^merchantMask)&0xffff, (h>>20)&0xfff,
		0x8000|((h>>4)&0x3fff), (uint64(i)^mask)&indexMask)
}

// parseTransactionID returns the merchant and index of an ID made by
// transactionID.
func parseTransactionID(id string) (*merchant, int, bool) {
	parts := strings.Split(id, "-")
	if len(parts) != 5 || len(parts[1]) != 4 || len(parts[4]) != 12 {
		return nil, 0, false
	}
	g2, err1 := strconv.ParseUint(parts[1], 16, 16)
	g5, err2 := strconv.ParseUint(parts[4], 16, 64)
	if err1 != nil || err2 != nil {
		return nil, 0, false
	}
	mid := int64(g2 ^ merchantMask)
	m := merchantByID(mid)
	if m == nil {
		return nil, 0, false
	}
	idx := g5 ^ (hashString("knottest-merchant:%d", mid) & indexMask)
	if idx >= maxTransactionIndex || transactionID(mid, int(idx)) != id {
		return nil, 0, false
	}
	return m, int(idx), true
}

// transaction builds the deterministic transaction i of merchant m, with
// every documented field present.
func transaction(m *merchant, i int) transactionJSON {
	h := txnHash(m.id, i)
	orderNo := fmt.Sprintf("%s-%09d", m.prefix, 100000000+h%900000000)

	n := 1 + i%3
	if m.digital {
		n = 1
	}
	var products []productJSON
	var subTotal int64
	for k := 0; k < n; k++ {
		item := m.catalog[(i+2*k)%len(m.catalog)]
		qty := 1 + (i+k)%2
		if m.digital {
			qty = 1
		}
		line := item.cents * int64(qty)
		subTotal += line
		eligibility := item.eligibility
		if eligibility == nil {
			eligibility = []string{}
		}
		products = append(products, productJSON{
			ExternalID:  ptr(item.sku),
			Name:        item.name,
			Description: ptr(item.description),
			URL:         ptr(m.site + "/p/" + item.sku),
			ImageURL:    ptr(m.site + "/images/" + item.sku + ".jpg"),
			Quantity:    ptr(qty),
			Price:       &productPriceJSON{SubTotal: ptr(money(line)), Total: ptr(money(line)), UnitPrice: ptr(money(item.cents))},
			Seller:      &sellerJSON{Name: ptr(m.name), URL: ptr(m.site)},
			Eligibility: eligibility,
		})
	}

	adjustments := []adjustmentJSON{}
	add := func(typ, label string, cents int64) {
		adjustments = append(adjustments, adjustmentJSON{Type: typ, Label: ptr(label), Amount: money(cents)})
	}
	add("TAX", "Sales tax", (subTotal*825+5000)/10000)
	if m.id == 19 {
		add("FEE", "Delivery fee", 299)
		add("TIP", "Dasher tip", 300+int64(i%4)*100)
	}
	if i%4 == 3 && subTotal > 1000 {
		add("DISCOUNT", "Promo code SAVE2", -200)
	}
	total := subTotal
	for _, a := range adjustments {
		c, _ := parseCents(a.Amount)
		total += c
	}

	payments := []paymentMethodJSON{}
	switch {
	case i%5 == 4 && total > 1000:
		payments = append(payments,
			paymentMethodJSON{ExternalID: ptr(fmt.Sprintf("gc_%08x", uint32(h))), Type: "GIFT_CARD", Brand: nil, LastFour: ptr("0042"), Name: ptr(m.name + " gift card"), TransactionAmount: ptr(money(500))},
			paymentMethodJSON{ExternalID: ptr(fmt.Sprintf("pm_%08x", uint32(h>>8))), Type: "CARD", Brand: ptr("VISA"), LastFour: ptr("4242"), Name: ptr("Visa ending in 4242"), TransactionAmount: ptr(money(total - 500))})
	case i%7 == 6:
		payments = append(payments,
			paymentMethodJSON{ExternalID: ptr(fmt.Sprintf("pm_%08x", uint32(h>>8))), Type: "APPLE_PAY", Brand: ptr("MASTERCARD"), LastFour: ptr("4444"), Name: ptr("Apple Pay"), TransactionAmount: ptr(money(total))})
	default:
		payments = append(payments,
			paymentMethodJSON{ExternalID: ptr(fmt.Sprintf("pm_%08x", uint32(h>>8))), Type: "CARD", Brand: ptr("VISA"), LastFour: ptr("4242"), Name: ptr("Visa ending in 4242"), TransactionAmount: ptr(money(total))})
	}

	var shipping *shippingJSON
	if !m.digital {
		line2 := ptr("Apt 4B")
		if i%2 == 1 {
			line2 = nil
		}
		shipping = &shippingJSON{Location: &locationJSON{
			Address: &addressJSON{
				Line1: ptr("123 Main St"), Line2: line2, City: ptr("San Francisco"),
				Region: ptr("CA"), PostalCode: ptr("94105"), Country: "US",
			},
			FirstName: ptr("Ada"), LastName: ptr("Lovelace"),
		}}
	}

	at := baseTime.Add(-time.Duration(i) * (29*time.Hour + 17*time.Minute))
	return transactionJSON{
		ID:             transactionID(m.id, i),
		ExternalID:     ptr(orderNo),
		Datetime:       at.Format(time.RFC3339),
		URL:            ptr(m.site + "/orders/" + orderNo),
		OrderStatus:    m.statuses[i%len(m.statuses)],
		Shipping:       shipping,
		PaymentMethods: payments,
		Price:          priceJSON{SubTotal: ptr(money(subTotal)), Adjustments: adjustments, Total: money(total), Currency: ptr("USD")},
		Products:       products,
		Loyalty:        nil,
	}
}

func parseCents(s string) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return 0, err
	}
	c := w*100 + f
	if neg {
		c = -c
	}
	return c, nil
}

// ---- subscriptions ----

type subscriptionJSON struct {
	ID                 string      `json:"id"`
	ExternalID         string      `json:"external_id"`
	Name               string      `json:"name"`
	Description        *string     `json:"description"`
	Merchant           merchantRef `json:"merchant"`
	Status             string      `json:"status"`
	BillingCycle       string      `json:"billing_cycle"`
	NextBillingDate    *string     `json:"next_billing_date"`
	LastBillingDate    *string     `json:"last_billing_date"`
	StartDate          *string     `json:"start_date"`
	NextRenewalDate    *string     `json:"next_renewal_date"`
	ExpirationDate     *string     `json:"expiration_date"`
	CancelInstructions *string     `json:"cancel_instructions"`
	IsPaid             *bool       `json:"is_paid"`
	IsFamilyPlan       *bool       `json:"is_family_plan"`
	IsCancellable      bool        `json:"is_cancellable"`
	Price              moneyJSON   `json:"price"`
}

type moneyJSON struct {
	Total    string `json:"total"`
	Currency string `json:"currency"`
}

func subscription(id, externalID, name, desc string, merchantID int64, status, cycle string, cents int64, next, last, start string, family bool) subscriptionJSON {
	m := merchantByID(merchantID)
	var expiration *string
	if status == "ACTIVE_CANCELLATION" {
		expiration = ptr(next)
	}
	return subscriptionJSON{
		ID: id, ExternalID: externalID, Name: name, Description: ptr(desc),
		Merchant: merchantRef{ID: m.id, Name: m.name, Logo: m.logo()},
		Status:   status, BillingCycle: cycle,
		NextBillingDate: ptr(next), LastBillingDate: ptr(last), StartDate: ptr(start),
		NextRenewalDate: ptr(next), ExpirationDate: expiration,
		CancelInstructions: ptr("Sign in at " + m.site + ", open Account, and choose Cancel membership."),
		IsPaid:             ptr(cents > 0), IsFamilyPlan: ptr(family), IsCancellable: true,
		Price: moneyJSON{Total: money(cents), Currency: "USD"},
	}
}

var subscriptions = []subscriptionJSON{
	subscription(SubscriptionID, "nf-81234567", "Netflix Standard", "Standard plan, 2 screens, HD", 16, "ACTIVE", "MONTHLY", 1799, "2026-02-10", "2026-01-10", "2021-06-10", false),
	subscription("9e0c6a53-7d4b-4c1e-8f2a-3b5d7e9f1a02", "sp-3344556677", "Spotify Premium Family", "Premium for up to 6 accounts", 13, "ACTIVE", "MONTHLY", 1999, "2026-02-03", "2026-01-03", "2019-03-03", true),
	subscription("2f7e4c1a-9b3d-4e6f-a8c0-5d1b3f7e9a03", "hu-5566778", "Hulu (With Ads)", "Hulu streaming library with ads", 18, "ACTIVE_CANCELLATION", "MONTHLY", 999, "2026-02-21", "2026-01-21", "2024-11-21", false),
	subscription("6c8a0e2f-4b6d-4f8a-bc0e-7f9b1d3e5a04", "dp-77889900", "Disney+ Basic", "Disney+ with ads", 8, "PAUSED", "MONTHLY", 999, "2026-03-15", "2025-12-15", "2023-12-15", false),
	subscription("8a0c2e4f-6b8d-4a0c-9e2f-1b3d5f7a9c05", "ap-120034", "iCloud+ 200 GB", "iCloud storage plan", 60, "ACTIVE", "MONTHLY", 299, "2026-02-01", "2026-01-01", "2020-01-01", true),
	subscription("1d3f5a7c-9e1b-4d3f-8a5c-7e9b1d3f5a06", "tm-900112233", "Go5G", "Wireless plan, 1 line", 152, "ACTIVE", "MONTHLY", 7500, "2026-02-18", "2026-01-18", "2023-05-18", false),
}

func subscriptionByID(id string) (subscriptionJSON, bool) {
	for _, s := range subscriptions {
		if s.ID == id {
			return s, true
		}
	}
	return subscriptionJSON{}, false
}

// ---- detected accounts ----

type detectedAccountJSON struct {
	Merchant   merchantRef `json:"merchant"`
	DetectedAt string      `json:"detected_at"`
}

func detected(merchantID int64, at string) detectedAccountJSON {
	m := merchantByID(merchantID)
	return detectedAccountJSON{Merchant: merchantRef{ID: m.id, Name: m.name, Logo: m.logo()}, DetectedAt: at}
}

var detectedAccounts = []detectedAccountJSON{
	detected(16, "2025-10-20T14:03:11Z"),
	detected(13, "2025-10-20T14:03:11Z"),
	detected(19, "2025-10-18T09:41:52Z"),
	detected(18, "2025-10-12T22:15:07Z"),
	detected(60, "2025-09-30T07:58:44Z"),
}

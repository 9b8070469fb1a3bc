package knotclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
)

// ListMerchantsRequest is the body of POST /merchant/list.
type ListMerchantsRequest struct {
	Type ProductType `json:"type"`
	// Platform, when set, makes each merchant carry min_sdk_version.
	Platform Platform `json:"platform,omitempty"`
	Search   string   `json:"search,omitempty"`
	// ExternalUserID is deprecated by Knot (use GetAccounts); when set,
	// each merchant carries the legacy status.
	ExternalUserID string `json:"external_user_id,omitempty"`
}

// ListMerchants lists the merchants available for a product: POST
// /merchant/list.
//
// Retried: it only reads.
func (c *Client) ListMerchants(ctx context.Context, req ListMerchantsRequest) ([]Merchant, error) {
	var out []Merchant
	if err := c.do(ctx, call{method: "POST", op: "POST /merchant/list", path: "/merchant/list", body: req, retry: true}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// ConnectionStatus is whether a merchant account is connected. Open enum.
type ConnectionStatus string

// Connection statuses.
const (
	ConnectionConnected    ConnectionStatus = "connected"
	ConnectionDisconnected ConnectionStatus = "disconnected"
)

// ScopeType is a permission granted on a merchant account. Open enum.
type ScopeType string

// Scope types.
const (
	ScopeUpdateCard ScopeType = "update_card"
	ScopeCancel     ScopeType = "cancel"
)

// Account is a user's linked merchant account (GET /accounts/get).
type Account struct {
	Merchant       Merchant       `json:"merchant"`
	Connection     Connection     `json:"connection"`
	Lifecycle      Lifecycle      `json:"lifecycle"`
	LastUserAction LastUserAction `json:"last_user_action"`
}

// Connection is an account's connection state and scopes.
type Connection struct {
	Status ConnectionStatus `json:"status"`
	Scopes []Scope          `json:"scopes"`
}

// HasScope reports whether the connection grants scope t.
func (c Connection) HasScope(t ScopeType) bool {
	for _, s := range c.Scopes {
		if s.Type == t {
			return true
		}
	}
	return false
}

// Scope is one permission on an account.
type Scope struct {
	Type ScopeType `json:"type"`
}

// Lifecycle is the status of the last login attempt for the product
// selected by GetAccountsRequest.Type. Knot has not documented the values.
type Lifecycle struct {
	Status *string `json:"status"`
}

// LastUserAction is the user's last action on the account; use it to
// recover a missed webhook.
type LastUserAction struct {
	AttemptedAt *DateTime `json:"attempted_at"`
	Status      *string   `json:"status"`
}

// GetAccountsRequest is the query of GET /accounts/get for all of a user's
// accounts.
type GetAccountsRequest struct {
	ExternalUserID string
	// Type selects which product's last login populates Lifecycle.Status:
	// card_switcher, transaction_link or vault. Optional.
	Type ProductType
}

// GetAccounts lists a user's linked merchant accounts: GET /accounts/get.
//
// Retried: it only reads.
func (c *Client) GetAccounts(ctx context.Context, req GetAccountsRequest) ([]Account, error) {
	q := url.Values{"external_user_id": {req.ExternalUserID}}
	if req.Type != "" {
		q.Set("type", string(req.Type))
	}
	var out []Account
	if err := c.do(ctx, call{method: "GET", op: "GET /accounts/get", path: "/accounts/get", query: q, retry: true}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetAccountRequest is the query of GET /accounts/get for one merchant.
type GetAccountRequest struct {
	ExternalUserID string
	MerchantID     int
	Type           ProductType // optional, as in GetAccountsRequest
}

// GetAccount returns a user's account at one merchant: GET /accounts/get
// with merchant_id, which answers with a single object.
//
// Retried: it only reads.
func (c *Client) GetAccount(ctx context.Context, req GetAccountRequest) (*Account, error) {
	const op = "GET /accounts/get"
	q := url.Values{"external_user_id": {req.ExternalUserID}, "merchant_id": {strconv.Itoa(req.MerchantID)}}
	if req.Type != "" {
		q.Set("type", string(req.Type))
	}
	var raw json.RawMessage
	if err := c.do(ctx, call{method: "GET", op: op, path: "/accounts/get", query: q, retry: true}, &raw); err != nil {
		return nil, err
	}
	// Documented as an object; tolerate a one-element array.
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '[' {
		var list []Account
		if err := json.Unmarshal(t, &list); err != nil {
			return nil, fmt.Errorf("knotclient: %s: decode response: %w", op, err)
		}
		for i := range list {
			if list[i].Merchant.ID == req.MerchantID {
				return &list[i], nil
			}
		}
		return nil, fmt.Errorf("knotclient: %s: response holds no account for merchant %d", op, req.MerchantID)
	}
	var out Account
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("knotclient: %s: decode response: %w", op, err)
	}
	return &out, nil
}

// UnlinkAccountRequest is the body of POST /accounts/unlink.
type UnlinkAccountRequest struct {
	ExternalUserID string `json:"external_user_id"`
	MerchantID     int    `json:"merchant_id"`
}

// UnlinkAccount unlinks a merchant account from Knot (the card stays on file
// at the merchant): POST /accounts/unlink.
//
// Not retried: it changes state, and a repeat of a request that did land
// answers with an error; check GetAccounts instead.
func (c *Client) UnlinkAccount(ctx context.Context, req UnlinkAccountRequest) error {
	return c.do(ctx, call{method: "POST", op: "POST /accounts/unlink", path: "/accounts/unlink", body: req}, nil)
}

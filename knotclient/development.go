package knotclient

import (
	"context"
	"fmt"
	"net/url"
	"strings"
)

// DevLinkAccountRequest is the body of POST /development/accounts/link.
// Set either Transactions, or CardSwitcher with CardID; not both.
type DevLinkAccountRequest struct {
	ExternalUserID string           `json:"external_user_id"`
	MerchantID     int              `json:"merchant_id"`
	Transactions   *DevTransactions `json:"transactions,omitempty"`
	CardSwitcher   bool             `json:"card_switcher,omitempty"`
	CardID         string           `json:"card_id,omitempty"`
}

// DevTransactions asks for sample transactions: New generates them (and
// NEW_TRANSACTIONS_AVAILABLE); Updated, which needs New, also fires
// UPDATED_TRANSACTIONS_AVAILABLE.
type DevTransactions struct {
	New     bool `json:"new"`
	Updated bool `json:"updated"`
}

// DevLinkAccount links a merchant account without the SDK, in the
// development environment only: POST /development/accounts/link. It
// returns [ErrDevelopmentOnly] without sending anything when the client is
// configured for [Production] or its BaseURL is a production host.
//
// Not retried: it fires webhooks and generates data.
func (c *Client) DevLinkAccount(ctx context.Context, req DevLinkAccountRequest) error {
	if err := c.devOnly("DevLinkAccount"); err != nil {
		return err
	}
	return c.do(ctx, call{method: "POST", op: "POST /development/accounts/link", path: "/development/accounts/link", body: req}, nil)
}

// DevDisconnectAccountRequest is the body of POST
// /development/accounts/disconnect.
type DevDisconnectAccountRequest struct {
	ExternalUserID string `json:"external_user_id"`
	MerchantID     int    `json:"merchant_id"`
}

// DevDisconnectAccount marks a merchant account disconnected and fires
// ACCOUNT_LOGIN_REQUIRED, in the development environment only: POST
// /development/accounts/disconnect.
//
// Not retried: it fires a webhook.
func (c *Client) DevDisconnectAccount(ctx context.Context, req DevDisconnectAccountRequest) error {
	if err := c.devOnly("DevDisconnectAccount"); err != nil {
		return err
	}
	return c.do(ctx, call{method: "POST", op: "POST /development/accounts/disconnect", path: "/development/accounts/disconnect", body: req}, nil)
}

// devOnly refuses the development helpers when the client talks to Knot's
// production environment, whether chosen by Environment or by a BaseURL
// naming a production host.
func (c *Client) devOnly(method string) error {
	if c.cfg.BaseURL == "" && c.cfg.Environment == Production {
		return fmt.Errorf("%w: %s", ErrDevelopmentOnly, method)
	}
	if u, err := url.Parse(c.baseURL); err == nil {
		host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
		if host == productionHost || strings.HasSuffix(host, "."+productionHost) {
			return fmt.Errorf("%w: %s (BaseURL is a production host)", ErrDevelopmentOnly, method)
		}
	}
	return nil
}

// productionHost is the domain of Knot's production hosts
// (production.knotapi.com, mtls.production.knotapi.com).
const productionHost = "production.knotapi.com"

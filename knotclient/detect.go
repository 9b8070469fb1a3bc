package knotclient

import (
	"context"
	"iter"
)

// DetectRequest is the body of POST /detect.
type DetectRequest struct {
	ExternalUserID string `json:"external_user_id"`
	Email          string `json:"email"`
	PhoneNumber    string `json:"phone_number,omitempty"` // E.164
}

// Detect starts detecting which merchants a user has accounts with: POST
// /detect (202). NEW_DETECTED_ACCOUNTS_AVAILABLE follows within about a
// minute.
//
// Never retried: an accepted (202) operation without idempotency key.
func (c *Client) Detect(ctx context.Context, req DetectRequest) error {
	return c.do(ctx, call{method: "POST", op: "POST /detect", path: "/detect", body: req}, nil)
}

// DetectedAccount is a merchant at which a user was detected to have an
// account.
type DetectedAccount struct {
	Merchant   Merchant  `json:"merchant"`
	DetectedAt *DateTime `json:"detected_at"`
}

// ListDetectedAccountsRequest is the body of POST /detected-accounts/list.
type ListDetectedAccountsRequest struct {
	ExternalUserID string `json:"external_user_id"`
	Cursor         string `json:"cursor,omitempty"`
	Limit          int    `json:"limit,omitempty"`
}

// ListDetectedAccountsResponse is one page of /detected-accounts/list.
type ListDetectedAccountsResponse struct {
	DetectedAccounts []DetectedAccount `json:"detected_accounts"`
	NextCursor       *string           `json:"next_cursor"`
	Limit            int               `json:"limit"`
}

// ListDetectedAccounts fetches one page of a user's detected accounts: POST
// /detected-accounts/list.
//
// Retried: it only reads.
func (c *Client) ListDetectedAccounts(ctx context.Context, req ListDetectedAccountsRequest) (*ListDetectedAccountsResponse, error) {
	var out ListDetectedAccountsResponse
	if err := c.do(ctx, call{method: "POST", op: "POST /detected-accounts/list", path: "/detected-accounts/list", body: req, retry: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AllDetectedAccounts iterates a user's detected accounts across pages,
// from req.Cursor until a null next_cursor. It stops at the first error,
// which it yields, and after Config.MaxPages pages.
func (c *Client) AllDetectedAccounts(ctx context.Context, req ListDetectedAccountsRequest) iter.Seq2[DetectedAccount, error] {
	seq := pages(ctx, c.cfg.MaxPages, req.Cursor, func(ctx context.Context, cursor string) (*ListDetectedAccountsResponse, *string, error) {
		r := req
		r.Cursor = cursor
		page, err := c.ListDetectedAccounts(ctx, r)
		if err != nil {
			return nil, nil, err
		}
		return page, page.NextCursor, nil
	})
	return flatten(seq, func(p *ListDetectedAccountsResponse) []DetectedAccount { return p.DetectedAccounts })
}

// SearchDetectedAccountsRequest is the body of POST /detected-accounts/search.
type SearchDetectedAccountsRequest struct {
	ExternalUserID string   `json:"external_user_id"`
	Names          []string `json:"names"`
}

// DetectedAccountMatch is the answer for one searched merchant name.
type DetectedAccountMatch struct {
	Name       string    `json:"name"`
	Detected   bool      `json:"detected"`
	DetectedAt *DateTime `json:"detected_at"`
}

// SearchDetectedAccounts checks whether a user was detected at the named
// merchants: POST /detected-accounts/search.
//
// Retried: it only reads.
func (c *Client) SearchDetectedAccounts(ctx context.Context, req SearchDetectedAccountsRequest) ([]DetectedAccountMatch, error) {
	var out []DetectedAccountMatch
	if err := c.do(ctx, call{method: "POST", op: "POST /detected-accounts/search", path: "/detected-accounts/search", body: req, retry: true}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

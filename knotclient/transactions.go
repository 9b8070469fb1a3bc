package knotclient

import (
	"context"
	"fmt"
	"iter"
	"net/url"
)

// SyncTransactionsRequest is the body of POST /transactions/sync.
type SyncTransactionsRequest struct {
	MerchantID     int    `json:"merchant_id"`
	ExternalUserID string `json:"external_user_id"`
	// Cursor is empty for the first call, then the last NextCursor.
	Cursor string `json:"cursor,omitempty"`
	// Limit is the page size, 1 to 100. Knot's default is disputed, so set it.
	Limit int `json:"limit,omitempty"`
}

// SyncTransactionsResponse is one page of /transactions/sync.
type SyncTransactionsResponse struct {
	Merchant     Merchant      `json:"merchant"`
	Transactions []Transaction `json:"transactions"`
	// NextCursor is nil on the last page. Persist it per (user, merchant)
	// after each page and start the next sync from it.
	NextCursor *string `json:"next_cursor"`
	Limit      int     `json:"limit"`
}

// SyncTransactions fetches one page of a user's transactions at a merchant:
// POST /transactions/sync. The first sync pages through all history, later
// ones return only what is new; transactions may repeat, so upsert on ID.
//
// Retried: it only reads (a cursor can be replayed).
func (c *Client) SyncTransactions(ctx context.Context, req SyncTransactionsRequest) (*SyncTransactionsResponse, error) {
	var out SyncTransactionsResponse
	if err := c.do(ctx, call{method: "POST", op: "POST /transactions/sync", path: "/transactions/sync", body: req, retry: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SyncTransactionPages iterates /transactions/sync from req.Cursor until
// Knot returns a null next_cursor, yielding each page (with its NextCursor,
// to persist). It stops at the first error, which it yields, and after
// Config.MaxPages pages.
func (c *Client) SyncTransactionPages(ctx context.Context, req SyncTransactionsRequest) iter.Seq2[*SyncTransactionsResponse, error] {
	return pages(ctx, c.cfg.MaxPages, req.Cursor, func(ctx context.Context, cursor string) (*SyncTransactionsResponse, *string, error) {
		r := req
		r.Cursor = cursor
		page, err := c.SyncTransactions(ctx, r)
		if err != nil {
			return nil, nil, err
		}
		return page, page.NextCursor, nil
	})
}

// AllTransactions iterates every transaction [Client.SyncTransactionPages]
// returns. Use SyncTransactionPages when you need to persist the cursor.
func (c *Client) AllTransactions(ctx context.Context, req SyncTransactionsRequest) iter.Seq2[Transaction, error] {
	return flatten(c.SyncTransactionPages(ctx, req), func(p *SyncTransactionsResponse) []Transaction { return p.Transactions })
}

// GetTransaction returns one transaction by ID: GET /transactions/{id}.
//
// Retried: it only reads.
func (c *Client) GetTransaction(ctx context.Context, id string) (*Transaction, error) {
	if id == "" {
		return nil, fmt.Errorf("%w: GetTransaction needs an ID", ErrInvalidArgument)
	}
	var out Transaction
	if err := c.do(ctx, call{method: "GET", op: "GET /transactions/{id}", path: "/transactions/" + url.PathEscape(id), retry: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RefreshTransactionsRequest is the body of POST /transactions/refresh.
type RefreshTransactionsRequest struct {
	MerchantID     int    `json:"merchant_id"`
	ExternalUserID string `json:"external_user_id"`
}

// RefreshTransactions asks Knot to refresh a user's transactions now: POST
// /transactions/refresh (202). Results arrive as webhooks.
//
// Never retried: an accepted (202) operation; Knot offers no idempotency
// key, so a repeat starts a second refresh.
func (c *Client) RefreshTransactions(ctx context.Context, req RefreshTransactionsRequest) error {
	return c.do(ctx, call{method: "POST", op: "POST /transactions/refresh", path: "/transactions/refresh", body: req}, nil)
}

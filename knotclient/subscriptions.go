package knotclient

import (
	"context"
	"fmt"
	"iter"
	"net/url"
)

// SubscriptionStatus is a subscription's status. Open enum.
type SubscriptionStatus string

// Subscription statuses.
const (
	SubscriptionActive             SubscriptionStatus = "ACTIVE"
	SubscriptionActiveCancellation SubscriptionStatus = "ACTIVE_CANCELLATION"
	SubscriptionActivePlanChange   SubscriptionStatus = "ACTIVE_PLAN_CHANGE"
	SubscriptionPending            SubscriptionStatus = "PENDING"
	SubscriptionPaused             SubscriptionStatus = "PAUSED"
	SubscriptionCancelled          SubscriptionStatus = "CANCELLED"
	SubscriptionSuspended          SubscriptionStatus = "SUSPENDED"
	SubscriptionUnrecognized       SubscriptionStatus = "UNRECOGNIZED"
)

// BillingCycle is how often a subscription bills. Open enum.
type BillingCycle string

// Billing cycles.
const (
	BillingMonthly      BillingCycle = "MONTHLY"
	BillingWeekly       BillingCycle = "WEEKLY"
	BillingBiweekly     BillingCycle = "BIWEEKLY"
	BillingAnnually     BillingCycle = "ANNUALLY"
	BillingDaily        BillingCycle = "DAILY"
	BillingUnrecognized BillingCycle = "UNRECOGNIZED"
)

// Subscription is a recurring plan at a merchant (SubscriptionManager).
type Subscription struct {
	ID                 string             `json:"id"`
	ExternalID         string             `json:"external_id"`
	Name               string             `json:"name"`
	Description        *string            `json:"description"`
	Merchant           Merchant           `json:"merchant"`
	Status             SubscriptionStatus `json:"status"`
	BillingCycle       BillingCycle       `json:"billing_cycle"`
	NextBillingDate    *DateTime          `json:"next_billing_date"`
	LastBillingDate    *DateTime          `json:"last_billing_date"`
	StartDate          *DateTime          `json:"start_date"`
	NextRenewalDate    *DateTime          `json:"next_renewal_date"`
	ExpirationDate     *DateTime          `json:"expiration_date"`
	CancelInstructions *string            `json:"cancel_instructions"`
	IsPaid             *bool              `json:"is_paid"`
	IsFamilyPlan       *bool              `json:"is_family_plan"`
	IsCancellable      bool               `json:"is_cancellable"`
	Price              SubscriptionPrice  `json:"price"`
}

// SubscriptionPrice is a subscription's recurring price.
type SubscriptionPrice struct {
	Total    Money  `json:"total"`
	Currency string `json:"currency"`
}

// GetSubscription returns one subscription: GET /subscriptions/{id}.
//
// Retried: it only reads.
func (c *Client) GetSubscription(ctx context.Context, id string) (*Subscription, error) {
	if id == "" {
		return nil, fmt.Errorf("%w: GetSubscription needs an ID", ErrInvalidArgument)
	}
	var out Subscription
	if err := c.do(ctx, call{method: "GET", op: "GET /subscriptions/{id}", path: "/subscriptions/" + url.PathEscape(id), retry: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListSubscriptionsRequest is the body of POST /subscriptions/list.
type ListSubscriptionsRequest struct {
	ExternalUserID string `json:"external_user_id"`
	Cursor         string `json:"cursor,omitempty"`
	Limit          int    `json:"limit,omitempty"`
}

// ListSubscriptionsResponse is one page of /subscriptions/list.
type ListSubscriptionsResponse struct {
	Subscriptions []Subscription `json:"subscriptions"`
	NextCursor    *string        `json:"next_cursor"`
	Limit         int            `json:"limit"`
}

// ListSubscriptions fetches one page of a user's subscriptions: POST
// /subscriptions/list.
//
// Retried: it only reads.
func (c *Client) ListSubscriptions(ctx context.Context, req ListSubscriptionsRequest) (*ListSubscriptionsResponse, error) {
	var out ListSubscriptionsResponse
	if err := c.do(ctx, call{method: "POST", op: "POST /subscriptions/list", path: "/subscriptions/list", body: req, retry: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AllSubscriptions iterates a user's subscriptions across pages, from
// req.Cursor until a null next_cursor. It stops at the first error, which
// it yields, and after Config.MaxPages pages.
func (c *Client) AllSubscriptions(ctx context.Context, req ListSubscriptionsRequest) iter.Seq2[Subscription, error] {
	seq := pages(ctx, c.cfg.MaxPages, req.Cursor, func(ctx context.Context, cursor string) (*ListSubscriptionsResponse, *string, error) {
		r := req
		r.Cursor = cursor
		page, err := c.ListSubscriptions(ctx, r)
		if err != nil {
			return nil, nil, err
		}
		return page, page.NextCursor, nil
	})
	return flatten(seq, func(p *ListSubscriptionsResponse) []Subscription { return p.Subscriptions })
}

// CancelSubscriptionRequest asks to cancel a subscription.
type CancelSubscriptionRequest struct {
	// SubscriptionID goes into the path.
	SubscriptionID string `json:"-"`
	ExternalUserID string `json:"external_user_id"`
	MerchantID     int    `json:"merchant_id"`
}

// CancelSubscription asks Knot to cancel a subscription: POST
// /subscriptions/{id}/cancel (202). Offer it only when the account has the
// "cancel" scope and the subscription IsCancellable.
//
// Never retried: an accepted (202) operation without idempotency key.
func (c *Client) CancelSubscription(ctx context.Context, req CancelSubscriptionRequest) error {
	if req.SubscriptionID == "" {
		return fmt.Errorf("%w: CancelSubscription needs a SubscriptionID", ErrInvalidArgument)
	}
	return c.do(ctx, call{method: "POST", op: "POST /subscriptions/{id}/cancel",
		path: "/subscriptions/" + url.PathEscape(req.SubscriptionID) + "/cancel", body: req}, nil)
}

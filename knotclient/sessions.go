package knotclient

import (
	"context"
	"log/slog"
)

// SessionType is the kind of SDK session. Open enum.
type SessionType string

// Session types. Shopping sessions are of type "link".
const (
	SessionCardSwitcher    SessionType = "card_switcher"
	SessionTransactionLink SessionType = "transaction_link"
	SessionLink            SessionType = "link"
	SessionVault           SessionType = "vault"
)

// CreateSessionRequest is the body of POST /session/create.
type CreateSessionRequest struct {
	Type           SessionType `json:"type"`
	ExternalUserID string      `json:"external_user_id"`
	// CardID is required for card_switcher sessions.
	CardID         string            `json:"card_id,omitempty"`
	PhoneNumber    string            `json:"phone_number,omitempty"` // E.164
	Email          string            `json:"email,omitempty"`
	ProcessorToken string            `json:"processor_token,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"` // echoed in webhooks
	Card           *SessionCard      `json:"card,omitempty"`     // older docs only
}

// SessionCard describes the card for a card_switcher session (older docs).
type SessionCard struct {
	Blocked  bool `json:"blocked"`
	HasFunds bool `json:"has_funds"`
}

// SessionResponse is the answer of /session/create and /session/extend.
// Knot asks that session IDs are not logged: String, GoString and LogValue
// redact it, so printing or logging the response shows only whether it is
// set. Read Session itself to hand it to the SDK.
type SessionResponse struct {
	Session string `json:"session"`
}

// String describes the response without the session ID.
func (r SessionResponse) String() string { return "SessionResponse{Session:" + redact(r.Session) + "}" }

// GoString is String for %#v.
func (r SessionResponse) GoString() string { return "knotclient." + r.String() }

// LogValue makes log/slog record the response without the session ID.
func (r SessionResponse) LogValue() slog.Value { return slog.StringValue(r.String()) }

// CreateSession creates an SDK session (valid 30 minutes): POST
// /session/create.
//
// Not retried: a repeated create would leave an extra live session.
func (c *Client) CreateSession(ctx context.Context, req CreateSessionRequest) (*SessionResponse, error) {
	var out SessionResponse
	if err := c.do(ctx, call{method: "POST", op: "POST /session/create", path: "/session/create", body: req}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ExtendSessionRequest is the body of POST /session/extend. Like
// [SessionResponse], it redacts the session ID when printed or logged.
type ExtendSessionRequest struct {
	SessionID string `json:"session_id"`
}

// String describes the request without the session ID.
func (r ExtendSessionRequest) String() string {
	return "ExtendSessionRequest{SessionID:" + redact(r.SessionID) + "}"
}

// GoString is String for %#v.
func (r ExtendSessionRequest) GoString() string { return "knotclient." + r.String() }

// LogValue makes log/slog record the request without the session ID.
func (r ExtendSessionRequest) LogValue() slog.Value { return slog.StringValue(r.String()) }

// redact stands in for a value that must not be printed: it only tells
// whether the value is set.
func redact(v string) string {
	if v == "" {
		return `""`
	}
	return "REDACTED"
}

// ExtendSession extends a live session by another 30 minutes: POST
// /session/extend.
//
// Retried (see the package documentation): extending twice has the effect
// of extending once, and the call is time-critical (the SDK asks shortly
// before expiry).
func (c *Client) ExtendSession(ctx context.Context, req ExtendSessionRequest) (*SessionResponse, error) {
	var out SessionResponse
	if err := c.do(ctx, call{method: "POST", op: "POST /session/extend", path: "/session/extend", body: req, retry: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

package knotclient

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
)

// Webhook errors, for errors.Is.
var (
	// ErrMissingSignature: the request has no Knot-Signature header.
	ErrMissingSignature = errors.New("knotclient: webhook has no Knot-Signature header")
	// ErrInvalidSignature: the signature does not match.
	ErrInvalidSignature = errors.New("knotclient: webhook signature does not match")
	// ErrMalformedWebhook: the body is not a JSON object with an event.
	ErrMalformedWebhook = errors.New("knotclient: malformed webhook body")
)

// Webhook header names and the one signing scheme Knot documents.
const (
	SignatureHeader      = "Knot-Signature"
	EncryptionTypeHeader = "Encryption-Type"
	EncryptionHMACSHA256 = "HMAC-SHA256"
)

// Event is a webhook's event name. Open enum: Knot adds events without a
// version bump, so handle unknown ones gracefully.
type Event string

// Webhook events.
const (
	EventAuthenticated                 Event = "AUTHENTICATED"
	EventCredentialsFailed             Event = "CREDENTIALS_FAILED"
	EventOTPRequired                   Event = "OTP_REQUIRED"
	EventOTPFailed                     Event = "OTP_FAILED"
	EventQuestionsRequired             Event = "QUESTIONS_REQUIRED"
	EventQuestionsFailed               Event = "QUESTIONS_FAILED"
	EventCardUpdating                  Event = "CARD_UPDATING"
	EventCardUpdated                   Event = "CARD_UPDATED"
	EventCardFailed                    Event = "CARD_FAILED"
	EventNewTransactionsAvailable      Event = "NEW_TRANSACTIONS_AVAILABLE"
	EventUpdatedTransactionsAvailable  Event = "UPDATED_TRANSACTIONS_AVAILABLE"
	EventAccountLoginRequired          Event = "ACCOUNT_LOGIN_REQUIRED"
	EventMerchantStatusUpdate          Event = "MERCHANT_STATUS_UPDATE"
	EventSyncCartSucceeded             Event = "SYNC_CART_SUCCEEDED"
	EventSyncCartFailed                Event = "SYNC_CART_FAILED"
	EventCheckoutSucceeded             Event = "CHECKOUT_SUCCEEDED"
	EventCheckoutFailed                Event = "CHECKOUT_FAILED"
	EventNewSubscriptionsAvailable     Event = "NEW_SUBSCRIPTIONS_AVAILABLE"
	EventUpdatedSubscriptionsAvailable Event = "UPDATED_SUBSCRIPTIONS_AVAILABLE"
	EventNewDetectedAccountsAvailable  Event = "NEW_DETECTED_ACCOUNTS_AVAILABLE"
	EventVaultingSucceeded             Event = "VAULTING_SUCCEEDED"
)

// Webhook is the envelope of every Knot webhook. Which fields are set
// depends on the event; Data is kept raw, decode it with
// [Webhook.CommonData] or [Webhook.DecodeData]. Webhooks can arrive more
// than once: deduplicate on IDs.
type Webhook struct {
	Event Event `json:"event"`
	// SessionID is set on session-scoped (SDK flow) events. Knot asks that
	// it is not logged; [Webhook.String] leaves it out.
	SessionID string `json:"session_id,omitempty"`
	// TaskID is an integer in webhooks; pass string(TaskID) to SwitchCard.
	TaskID         json.Number     `json:"task_id,omitempty"`
	ExternalUserID string          `json:"external_user_id,omitempty"`
	Merchant       *Merchant       `json:"merchant,omitempty"`
	Data           json.RawMessage `json:"data,omitempty"`
	Timestamp      Timestamp       `json:"timestamp,omitempty"`
	// Updated lists changed transactions on UPDATED_TRANSACTIONS_AVAILABLE
	// (Knot's skills show it top level; see UpdatedTransactionIDs).
	Updated []IDRef `json:"updated,omitempty"`
	// HasSupportedMerchants is set on NEW_DETECTED_ACCOUNTS_AVAILABLE.
	HasSupportedMerchants *bool `json:"has_supported_merchants,omitempty"`
}

// String describes the webhook for logs: event, task, merchant and time,
// never the session ID or data. It has a value receiver so that a Webhook
// printed by value is redacted too.
func (w Webhook) String() string {
	var b strings.Builder
	b.WriteString("webhook(event=" + string(w.Event))
	if w.TaskID != "" {
		b.WriteString(" task_id=" + string(w.TaskID))
	}
	if w.Merchant != nil {
		b.WriteString(" merchant_id=" + strconv.Itoa(w.Merchant.ID))
	}
	if w.Timestamp != 0 {
		b.WriteString(" timestamp=" + strconv.FormatInt(int64(w.Timestamp), 10))
	}
	b.WriteString(")")
	return b.String()
}

// GoString is String, so that %#v does not print the session ID either.
func (w Webhook) GoString() string { return "knotclient." + w.String() }

// LogValue makes log/slog record the webhook as [Webhook.String]; without
// it slog's JSON handler would marshal every field, the session ID
// included.
func (w Webhook) LogValue() slog.Value { return slog.StringValue(w.String()) }

// WebhookData is the union of the data fields Knot documents across events.
// Fields an event does not carry stay zero.
type WebhookData struct {
	CardID     string            `json:"card_id,omitempty"`
	SendCard   *bool             `json:"send_card,omitempty"` // AUTHENTICATED: send the card within 15 s
	Entrypoint string            `json:"entrypoint,omitempty"`
	Reason     string            `json:"reason,omitempty"` // *_FAILED; free text such as "card expired"
	Metadata   map[string]string `json:"metadata,omitempty"`
	// Subscriptions: CARD_UPDATED and *_SUBSCRIPTIONS_AVAILABLE.
	Subscriptions []IDRef `json:"subscriptions,omitempty"`
	// Transactions: CHECKOUT_SUCCEEDED (and possibly UPDATED_TRANSACTIONS_AVAILABLE).
	Transactions []IDRef `json:"transactions,omitempty"`
	// Type, Status, Platform and SDK: MERCHANT_STATUS_UPDATE.
	Type     ProductType `json:"type,omitempty"`
	Status   string      `json:"status,omitempty"` // "UP" or "DOWN"
	Platform Platform    `json:"platform,omitempty"`
	SDK      string      `json:"sdk,omitempty"`
	// Cart: SYNC_CART_SUCCEEDED, kept raw.
	Cart json.RawMessage `json:"cart,omitempty"`
	// DetectedAccounts: NEW_DETECTED_ACCOUNTS_AVAILABLE (older payloads).
	DetectedAccounts []Merchant `json:"detected_accounts,omitempty"`
}

// DecodeData decodes Data into v. A webhook without data leaves v as is.
func (w *Webhook) DecodeData(v any) error {
	if len(w.Data) == 0 || string(w.Data) == "null" {
		return nil
	}
	if err := json.Unmarshal(w.Data, v); err != nil {
		return fmt.Errorf("%w: data of %s: %w", ErrMalformedWebhook, w.Event, err)
	}
	return nil
}

// CommonData decodes Data into a [WebhookData].
func (w *Webhook) CommonData() (*WebhookData, error) {
	var d WebhookData
	if err := w.DecodeData(&d); err != nil {
		return nil, err
	}
	return &d, nil
}

// UpdatedTransactionIDs returns the IDs an UPDATED_TRANSACTIONS_AVAILABLE
// webhook lists, from the top-level updated array or, failing that,
// data.transactions (Knot's documents disagree on which).
func (w *Webhook) UpdatedTransactionIDs() []string {
	refs := w.Updated
	if len(refs) == 0 {
		if d, err := w.CommonData(); err == nil {
			refs = d.Transactions
		}
	}
	ids := make([]string, 0, len(refs))
	for _, r := range refs {
		ids = append(ids, r.ID)
	}
	return ids
}

// ParseWebhook decodes a webhook body. Unknown events and fields are kept or
// ignored, never an error. Verify the signature first with [VerifyWebhook].
func ParseWebhook(body []byte) (*Webhook, error) {
	var w Webhook
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedWebhook, err)
	}
	if w.Event == "" {
		return nil, fmt.Errorf("%w: no event", ErrMalformedWebhook)
	}
	return &w, nil
}

// signedFields are the body fields that take part in the signature.
type signedFields struct {
	Event     string          `json:"event"`
	SessionID json.RawMessage `json:"session_id"`
}

// signingString builds Knot's string to sign: Content-Length, Content-Type,
// Encryption-Type, event and (when present) session_id, as
// key|value|key|value.
func signingString(h http.Header, body []byte) (string, error) {
	var f signedFields
	if err := json.Unmarshal(body, &f); err != nil {
		return "", fmt.Errorf("%w: %w", ErrMalformedWebhook, err)
	}
	if f.Event == "" {
		return "", fmt.Errorf("%w: no event", ErrMalformedWebhook)
	}
	var b strings.Builder
	b.WriteString("Content-Length|" + strconv.Itoa(len(body)))
	b.WriteString("|Content-Type|" + h.Get("Content-Type"))
	b.WriteString("|Encryption-Type|" + h.Get(EncryptionTypeHeader))
	b.WriteString("|event|" + f.Event)
	if sid := rawString(f.SessionID); sid != "" {
		b.WriteString("|session_id|" + sid)
	}
	return b.String(), nil
}

// rawString returns a JSON string's value, a number's text, or "" for
// absent or null.
func rawString(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(raw))
}

func sign(msg, secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// SignWebhook returns the Knot-Signature value for a webhook with headers h
// and body, as Knot computes it. It is what [VerifyWebhook] checks against,
// for tests and fakes that send webhooks.
func SignWebhook(h http.Header, body []byte, secret string) (string, error) {
	msg, err := signingString(h, body)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sign(msg, secret)), nil
}

// VerifyWebhook checks a webhook's Knot-Signature header: base64 of
// HMAC-SHA256, keyed with the API secret of the environment, over
// "Content-Length|<len(body)>|Content-Type|<header>|Encryption-Type|<header>|event|<event>"
// followed by "|session_id|<session_id>" when the body has one. body is the
// request body, already read in full. The comparison is constant-time.
//
// It returns nil, or an error wrapping [ErrMissingSignature],
// [ErrInvalidSignature] or [ErrMalformedWebhook]. Note that Knot signs only
// these fields, not the whole body.
func VerifyWebhook(r *http.Request, body []byte, secret string) error {
	if secret == "" {
		return errors.New("knotclient: webhook secret is empty")
	}
	got := strings.TrimSpace(r.Header.Get(SignatureHeader))
	if got == "" {
		return ErrMissingSignature
	}
	if et := r.Header.Get(EncryptionTypeHeader); et != "" && !strings.EqualFold(et, EncryptionHMACSHA256) {
		return fmt.Errorf("%w: unsupported %s %q", ErrInvalidSignature, EncryptionTypeHeader, et)
	}
	msg, err := signingString(r.Header, body)
	if err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(got)
	if err != nil {
		if sig, err = base64.RawStdEncoding.DecodeString(got); err != nil {
			return fmt.Errorf("%w: signature is not base64", ErrInvalidSignature)
		}
	}
	if !hmac.Equal(sig, sign(msg, secret)) {
		return ErrInvalidSignature
	}
	return nil
}

// VerifyWebhook is [VerifyWebhook] with the secret from the client's
// [SecretSource].
func (c *Client) VerifyWebhook(ctx context.Context, r *http.Request, body []byte) error {
	secret, err := c.cfg.Secret.Secret(ctx)
	if err != nil {
		return fmt.Errorf("knotclient: webhook: get secret: %w", err)
	}
	return VerifyWebhook(r, body, secret)
}

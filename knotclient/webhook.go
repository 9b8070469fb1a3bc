package knotclient

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// WebhookSourceIP is the address Knot sends webhooks from, in every
// environment (Knot announces changes ahead). Allow only it: a signature
// alone does not stop a replay (see the package documentation).
const WebhookSourceIP = "35.232.249.218"

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

// UnverifiedWebhook is the decoded body of a Knot webhook: everything in
// it is as the sender wrote it. Knot's signature covers only the event and
// session_id fields (see [VerifyWebhook]), so even on a request whose
// signature is valid, every other field here — task, user, merchant, data,
// timestamp — may have been changed by whoever replays a captured
// signature. Take the event and session ID from the [VerifiedWebhook], use
// the rest as a hint, and re-read state from the API before acting on it.
//
// Which fields are set depends on the event; Data is kept raw, decode it
// with [UnverifiedWebhook.CommonData] or [UnverifiedWebhook.DecodeData].
// Webhooks can arrive more than once: deduplicate.
type UnverifiedWebhook struct {
	// Event is the body's event. When the signature verified it equals
	// [VerifiedWebhook.Event]; prefer that one.
	Event Event `json:"event"`
	// SessionID is set on session-scoped (SDK flow) events. When the
	// signature verified it equals [VerifiedWebhook.SessionID]; prefer that
	// one. Knot asks that it is not logged; formatting the webhook leaves
	// it out.
	SessionID string `json:"session_id,omitempty"`
	// TaskID is an integer in webhooks; pass string(TaskID) to SwitchCard.
	// Not signed.
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
// never the session ID or data. It has a value receiver so that a webhook
// printed by value is redacted too.
func (w UnverifiedWebhook) String() string {
	var b strings.Builder
	b.WriteString("unverified webhook(event=" + strconv.Quote(string(w.Event)))
	if w.TaskID != "" {
		b.WriteString(" task_id=" + strconv.Quote(string(w.TaskID)))
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
func (w UnverifiedWebhook) GoString() string { return "knotclient." + w.String() }

// Format writes [UnverifiedWebhook.String] for every verb, so that no verb
// (%d, %x, ...) prints the fields one by one.
func (w UnverifiedWebhook) Format(f fmt.State, verb rune) { formatRedacted(f, verb, w) }

// LogValue makes log/slog record the webhook as [UnverifiedWebhook.String];
// without it slog's JSON handler would marshal every field, the session ID
// included.
func (w UnverifiedWebhook) LogValue() slog.Value { return slog.StringValue(w.String()) }

// VerifiedWebhook is what a valid Knot-Signature vouches for, and nothing
// more: the event type and the session ID. (The signature also covers the
// Content-Type and Encryption-Type headers and the body length; they carry
// no meaning and are not repeated here.) Only [VerifyWebhook] makes a
// non-zero one.
//
// It does not vouch that the request is fresh: a captured request can be
// replayed, with any unsigned field changed, and verifies again (see the
// package documentation, "Webhooks").
type VerifiedWebhook struct {
	event     Event
	sessionID string
}

// Event returns the signed event type.
func (v VerifiedWebhook) Event() Event { return v.event }

// SessionID returns the signed session_id, or "" for events that carry
// none (account and data events such as NEW_TRANSACTIONS_AVAILABLE or
// MERCHANT_STATUS_UPDATE, where the signature covers the event type only).
// Knot asks that it is not logged.
func (v VerifiedWebhook) SessionID() string { return v.sessionID }

// HasSession reports whether the signature covers a session ID.
func (v VerifiedWebhook) HasSession() bool { return v.sessionID != "" }

// String describes the verified fields for logs, without the session ID.
func (v VerifiedWebhook) String() string {
	s := "verified webhook(event=" + strconv.Quote(string(v.event))
	if v.sessionID != "" {
		s += " session_id=REDACTED"
	}
	return s + ")"
}

// GoString is String, so that %#v does not print the session ID.
func (v VerifiedWebhook) GoString() string { return "knotclient." + v.String() }

// Format writes [VerifiedWebhook.String] for every verb.
func (v VerifiedWebhook) Format(f fmt.State, verb rune) { formatRedacted(f, verb, v) }

// LogValue makes log/slog record [VerifiedWebhook.String].
func (v VerifiedWebhook) LogValue() slog.Value { return slog.StringValue(v.String()) }

// formatRedacted writes v's String (GoString for %#v) whatever the verb.
func formatRedacted(f fmt.State, verb rune, v interface {
	String() string
	GoString() string
}) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, v.GoString())
		return
	}
	_, _ = io.WriteString(f, v.String())
}

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
func (w *UnverifiedWebhook) DecodeData(v any) error {
	if len(w.Data) == 0 || string(w.Data) == "null" {
		return nil
	}
	if err := json.Unmarshal(w.Data, v); err != nil {
		return fmt.Errorf("%w: data of %s: %w", ErrMalformedWebhook, w.Event, err)
	}
	return nil
}

// CommonData decodes Data into a [WebhookData].
func (w *UnverifiedWebhook) CommonData() (*WebhookData, error) {
	var d WebhookData
	if err := w.DecodeData(&d); err != nil {
		return nil, err
	}
	return &d, nil
}

// UpdatedTransactionIDs returns the IDs an UPDATED_TRANSACTIONS_AVAILABLE
// webhook lists, from the top-level updated array or, failing that,
// data.transactions (Knot's documents disagree on which).
func (w *UnverifiedWebhook) UpdatedTransactionIDs() []string {
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
// ignored, never an error. The result is unverified whatever the
// signature says: see [UnverifiedWebhook].
func ParseWebhook(body []byte) (*UnverifiedWebhook, error) {
	var w UnverifiedWebhook
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

// signed decodes the signed body fields. An event or session_id holding
// the separator "|" is refused: Knot's values never do, and with it the
// string to sign would be ambiguous (event "A|session_id|B" without a
// session signs the same as event "A" with session "B").
func signed(body []byte) (VerifiedWebhook, error) {
	var f signedFields
	if err := json.Unmarshal(body, &f); err != nil {
		return VerifiedWebhook{}, fmt.Errorf("%w: %w", ErrMalformedWebhook, err)
	}
	if f.Event == "" {
		return VerifiedWebhook{}, fmt.Errorf("%w: no event", ErrMalformedWebhook)
	}
	v := VerifiedWebhook{event: Event(f.Event), sessionID: rawString(f.SessionID)}
	if strings.Contains(f.Event, "|") || strings.Contains(v.sessionID, "|") {
		return VerifiedWebhook{}, fmt.Errorf("%w: event or session_id contains the separator |", ErrMalformedWebhook)
	}
	return v, nil
}

// signingString builds Knot's string to sign: Content-Length, Content-Type,
// Encryption-Type, event and (when present) session_id, as
// key|value|key|value.
func signingString(h http.Header, bodyLen int, v VerifiedWebhook) string {
	var b strings.Builder
	b.WriteString("Content-Length|" + strconv.Itoa(bodyLen))
	b.WriteString("|Content-Type|" + h.Get("Content-Type"))
	b.WriteString("|Encryption-Type|" + h.Get(EncryptionTypeHeader))
	b.WriteString("|event|" + string(v.event))
	if v.sessionID != "" {
		b.WriteString("|session_id|" + v.sessionID)
	}
	return b.String()
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
	v, err := signed(body)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sign(signingString(h, len(body), v), secret)), nil
}

// VerifyWebhook checks a webhook's Knot-Signature header: base64 of
// HMAC-SHA256, keyed with the API secret of the environment, over
// "Content-Length|<len(body)>|Content-Type|<header>|Encryption-Type|<header>|event|<event>"
// followed by "|session_id|<session_id>" when the body has one. body is the
// request body, already read in full. The comparison is constant-time.
//
// On success it returns the fields the signature covers, the event and the
// session ID, and nothing else: the rest of the body is not signed, so
// decode it with [ParseWebhook] into an [UnverifiedWebhook]. Otherwise it
// returns an error wrapping [ErrMissingSignature], [ErrInvalidSignature] or
// [ErrMalformedWebhook] (an empty secret is [ErrInvalidArgument]).
func VerifyWebhook(r *http.Request, body []byte, secret string) (VerifiedWebhook, error) {
	if secret == "" {
		return VerifiedWebhook{}, fmt.Errorf("%w: webhook secret is empty", ErrInvalidArgument)
	}
	got := strings.TrimSpace(r.Header.Get(SignatureHeader))
	if got == "" {
		return VerifiedWebhook{}, ErrMissingSignature
	}
	if et := r.Header.Get(EncryptionTypeHeader); et != "" && !strings.EqualFold(et, EncryptionHMACSHA256) {
		return VerifiedWebhook{}, fmt.Errorf("%w: unsupported %s %q", ErrInvalidSignature, EncryptionTypeHeader, shorten(et, 32))
	}
	v, err := signed(body)
	if err != nil {
		return VerifiedWebhook{}, err
	}
	sig, err := base64.StdEncoding.DecodeString(got)
	if err != nil {
		if sig, err = base64.RawStdEncoding.DecodeString(got); err != nil {
			return VerifiedWebhook{}, fmt.Errorf("%w: signature is not base64", ErrInvalidSignature)
		}
	}
	if !hmac.Equal(sig, sign(signingString(r.Header, len(body), v), secret)) {
		return VerifiedWebhook{}, ErrInvalidSignature
	}
	return v, nil
}

// VerifyWebhook is [VerifyWebhook] with the secret from the client's
// [SecretSource].
func (c *Client) VerifyWebhook(ctx context.Context, r *http.Request, body []byte) (VerifiedWebhook, error) {
	secret, err := c.cfg.Secret.Secret(ctx)
	if err != nil {
		return VerifiedWebhook{}, fmt.Errorf("knotclient: webhook: get secret: %w", err)
	}
	return VerifyWebhook(r, body, secret)
}

// shorten cuts s to at most n bytes of valid UTF-8.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

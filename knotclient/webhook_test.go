package knotclient_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient"
)

const (
	webhookSecret  = "whsec-dev-secret"
	cardUpdated    = `{"event":"CARD_UPDATED","session_id":"fb5aa994-ed1c-4c3e-b29a-b2a53222e584","task_id":25605,"external_user_id":"u1","merchant":{"id":11,"name":"Uber","logo":"l"},"data":{"card_id":"123456789","subscriptions":[{"id":"sub-1"}],"metadata":{"trace_id":"def456"}},"timestamp":1710864923198}`
	merchantStatus = `{"event":"MERCHANT_STATUS_UPDATE","merchant":{"id":19,"name":"DoorDash"},"data":{"type":"card_switcher","status":"DOWN","platform":"web"},"timestamp":"1710864923198"}`
)

// knotSign computes the signature independently of the package, straight
// from the documented recipe.
func knotSign(t *testing.T, msg string) string {
	t.Helper()
	m := hmac.New(sha256.New, []byte(webhookSecret))
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func webhookRequest(body, signature string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/knot/webhook", bytes.NewReader([]byte(body)))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Encryption-Type", "HMAC-SHA256")
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	if signature != "" {
		r.Header.Set("Knot-Signature", signature)
	}
	return r
}

const sessionID = "fb5aa994-ed1c-4c3e-b29a-b2a53222e584"

func TestVerifyWebhook(t *testing.T) {
	sessionMsg := "Content-Length|" + strconv.Itoa(len(cardUpdated)) +
		"|Content-Type|application/json|Encryption-Type|HMAC-SHA256|event|CARD_UPDATED|session_id|" + sessionID
	noSessionMsg := "Content-Length|" + strconv.Itoa(len(merchantStatus)) +
		"|Content-Type|application/json|Encryption-Type|HMAC-SHA256|event|MERCHANT_STATUS_UPDATE"
	good := knotSign(t, sessionMsg)

	tests := []struct {
		name        string
		req         *http.Request
		body        string
		secret      string
		wantErr     error // nil = valid
		wantEvent   knotclient.Event
		wantSession string
	}{
		{name: "good", req: webhookRequest(cardUpdated, good), body: cardUpdated, secret: webhookSecret,
			wantEvent: knotclient.EventCardUpdated, wantSession: sessionID},
		{name: "event without session_id omits the pair", req: webhookRequest(merchantStatus, knotSign(t, noSessionMsg)), body: merchantStatus, secret: webhookSecret,
			wantEvent: knotclient.EventMerchantStatusUpdate},
		{name: "unpadded base64 accepted", req: webhookRequest(cardUpdated, good[:len(good)-1]), body: cardUpdated, secret: webhookSecret,
			wantEvent: knotclient.EventCardUpdated, wantSession: sessionID},
		{name: "missing header", req: webhookRequest(cardUpdated, ""), body: cardUpdated, secret: webhookSecret, wantErr: knotclient.ErrMissingSignature},
		{name: "wrong secret", req: webhookRequest(cardUpdated, good), body: cardUpdated, secret: "other", wantErr: knotclient.ErrInvalidSignature},
		{name: "tampered length", req: webhookRequest(cardUpdated, good), body: cardUpdated + " ", secret: webhookSecret, wantErr: knotclient.ErrInvalidSignature},
		{name: "signature not base64", req: webhookRequest(cardUpdated, "%%%"), body: cardUpdated, secret: webhookSecret, wantErr: knotclient.ErrInvalidSignature},
		{name: "signature of another message", req: webhookRequest(cardUpdated, knotSign(t, noSessionMsg)), body: cardUpdated, secret: webhookSecret, wantErr: knotclient.ErrInvalidSignature},
		{name: "not JSON", req: webhookRequest("nope", good), body: "nope", secret: webhookSecret, wantErr: knotclient.ErrMalformedWebhook},
		{name: "no event", req: webhookRequest(`{"session_id":"x"}`, good), body: `{"session_id":"x"}`, secret: webhookSecret, wantErr: knotclient.ErrMalformedWebhook},
		{name: "empty secret", req: webhookRequest(cardUpdated, good), body: cardUpdated, secret: "", wantErr: knotclient.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := knotclient.VerifyWebhook(tt.req, []byte(tt.body), tt.secret)
			if tt.wantErr == nil {
				require.NoError(t, err)
				assert.Equal(t, tt.wantEvent, v.Event())
				assert.Equal(t, tt.wantSession, v.SessionID())
				assert.Equal(t, tt.wantSession != "", v.HasSession())
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
			assert.Equal(t, knotclient.VerifiedWebhook{}, v, "nothing is vouched for on error")
			assert.NotContains(t, err.Error(), webhookSecret)
			assert.NotContains(t, err.Error(), "fb5aa994")
		})
	}

	t.Run("tampered Content-Type header", func(t *testing.T) {
		r := webhookRequest(cardUpdated, good)
		r.Header.Set("Content-Type", "text/plain")
		_, err := knotclient.VerifyWebhook(r, []byte(cardUpdated), webhookSecret)
		require.ErrorIs(t, err, knotclient.ErrInvalidSignature)
	})
	t.Run("unsupported Encryption-Type", func(t *testing.T) {
		r := webhookRequest(cardUpdated, good)
		r.Header.Set("Encryption-Type", "HMAC-SHA1")
		_, err := knotclient.VerifyWebhook(r, []byte(cardUpdated), webhookSecret)
		require.ErrorIs(t, err, knotclient.ErrInvalidSignature)
	})
	t.Run("SignWebhook matches the recipe", func(t *testing.T) {
		sig, err := knotclient.SignWebhook(webhookRequest(cardUpdated, "").Header, []byte(cardUpdated), webhookSecret)
		require.NoError(t, err)
		assert.Equal(t, good, sig)
	})
	t.Run("client method uses its secret source", func(t *testing.T) {
		c, err := knotclient.New(knotclient.Config{ClientID: "cid", Secret: knotclient.StaticSecret(webhookSecret),
			Certificates: noCertGetter{}, Environment: knotclient.Development, Logger: discardLogger()})
		require.NoError(t, err)
		defer c.Close()
		v, err := c.VerifyWebhook(context.Background(), webhookRequest(cardUpdated, good), []byte(cardUpdated))
		require.NoError(t, err)
		assert.Equal(t, knotclient.EventCardUpdated, v.Event())
		_, err = c.VerifyWebhook(context.Background(), webhookRequest(cardUpdated, knotSign(t, "x")), []byte(cardUpdated))
		require.ErrorIs(t, err, knotclient.ErrInvalidSignature)
	})
}

// sameLength returns tmpl with PAD replaced by as many x as make it n bytes
// long: an attacker keeps a replayed body's length, which is signed.
func sameLength(t *testing.T, tmpl string, n int) string {
	t.Helper()
	pad := n - (len(tmpl) - len("PAD"))
	require.GreaterOrEqual(t, pad, 0, "template too long for %d bytes", n)
	out := strings.Replace(tmpl, "PAD", strings.Repeat("x", pad), 1)
	require.Len(t, out, n)
	return out
}

// TestVerifyWebhookReplay replays one captured request with its signature.
// Changing what the signature does not cover still verifies, but only the
// signed event and session ID are vouched for, and the changed fields come
// back typed as unverified. Changing a signed field is refused.
func TestVerifyWebhookReplay(t *testing.T) {
	captured := webhookRequest(cardUpdated, "")
	sig, err := knotclient.SignWebhook(captured.Header, []byte(cardUpdated), webhookSecret)
	require.NoError(t, err)
	n := len(cardUpdated)

	unsigned := map[string]string{
		"other user, task, card and merchant": sameLength(t, `{"event":"CARD_UPDATED","session_id":"`+sessionID+`","task_id":99999,"external_user_id":"attacker","merchant":{"id":45,"name":"Walmart"},"data":{"card_id":"666","reason":"PAD"},"timestamp":1}`, n),
		"reordered with other data":           sameLength(t, `{"data":{"send_card":true,"subscriptions":[{"id":"PAD"}]},"session_id":"`+sessionID+`","event":"CARD_UPDATED","task_id":1}`, n),
	}
	for name, body := range unsigned {
		t.Run("unsigned change verifies: "+name, func(t *testing.T) {
			v, err := knotclient.VerifyWebhook(webhookRequest(body, sig), []byte(body), webhookSecret)
			require.NoError(t, err, "Knot's signature does not cover these fields")
			assert.Equal(t, knotclient.EventCardUpdated, v.Event())
			assert.Equal(t, sessionID, v.SessionID())

			var hint *knotclient.UnverifiedWebhook
			hint, err = knotclient.ParseWebhook([]byte(body))
			require.NoError(t, err)
			assert.NotEqual(t, "25605", string(hint.TaskID), "the replayed task_id is what the attacker wrote")
			assert.Equal(t, v.Event(), hint.Event, "signed and parsed event agree")
			assert.Equal(t, v.SessionID(), hint.SessionID, "signed and parsed session agree")
		})
	}

	signedChanges := map[string]string{
		"event":            sameLength(t, `{"event":"CARD_FAILED","session_id":"`+sessionID+`","task_id":25605,"external_user_id":"u1","data":{"card_id":"123456789","reason":"PAD"},"timestamp":1710864923198}`, n),
		"session_id":       sameLength(t, `{"event":"CARD_UPDATED","session_id":"00000000-ed1c-4c3e-b29a-b2a53222e584","task_id":25605,"external_user_id":"u1","data":{"card_id":"123456789","reason":"PAD"},"timestamp":1710864923198}`, n),
		"session_id moved": sameLength(t, `{"event":"CARD_UPDATED","task_id":25605,"external_user_id":"u1","data":{"session_id":"`+sessionID+`","reason":"PAD"},"timestamp":1710864923198}`, n),
		"length":           cardUpdated + "\n",
	}
	for name, body := range signedChanges {
		t.Run("signed change refused: "+name, func(t *testing.T) {
			v, err := knotclient.VerifyWebhook(webhookRequest(body, sig), []byte(body), webhookSecret)
			require.ErrorIs(t, err, knotclient.ErrInvalidSignature)
			assert.Equal(t, knotclient.VerifiedWebhook{}, v)
		})
	}
}

// TestVerifyWebhookSeparator: Knot joins the signed values with "|", so an
// event "CARD_UPDATED|session_id|<id>" in a body without session_id signs
// the same string as the captured event and session. It must not verify
// as a different event.
func TestVerifyWebhookSeparator(t *testing.T) {
	captured := webhookRequest(cardUpdated, "")
	sig, err := knotclient.SignWebhook(captured.Header, []byte(cardUpdated), webhookSecret)
	require.NoError(t, err)
	forged := sameLength(t, `{"event":"CARD_UPDATED|session_id|`+sessionID+`","task_id":1,"data":{"reason":"PAD"}}`, len(cardUpdated))
	v, err := knotclient.VerifyWebhook(webhookRequest(forged, sig), []byte(forged), webhookSecret)
	require.ErrorIs(t, err, knotclient.ErrMalformedWebhook)
	assert.Equal(t, knotclient.VerifiedWebhook{}, v)

	_, err = knotclient.SignWebhook(captured.Header, []byte(`{"event":"A","session_id":"b|c"}`), webhookSecret)
	require.ErrorIs(t, err, knotclient.ErrMalformedWebhook, "a session_id with the separator is refused too")
}

// TestWebhookFormatting: neither type shows the session ID under any verb
// or slog handler, and values from the unsigned body are quoted so that
// they cannot forge log lines.
func TestWebhookFormatting(t *testing.T) {
	v, err := knotclient.VerifyWebhook(webhookRequest(cardUpdated, knotSign(t, "Content-Length|"+strconv.Itoa(len(cardUpdated))+
		"|Content-Type|application/json|Encryption-Type|HMAC-SHA256|event|CARD_UPDATED|session_id|"+sessionID)), []byte(cardUpdated), webhookSecret)
	require.NoError(t, err)
	hint, err := knotclient.ParseWebhook([]byte(cardUpdated))
	require.NoError(t, err)
	for name, val := range map[string]any{"VerifiedWebhook": v, "*VerifiedWebhook": &v, "UnverifiedWebhook": *hint, "*UnverifiedWebhook": hint} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d", "%x", "%X", "%t", "%10.3v"} {
			out := fmt.Sprintf(verb, val)
			assert.NotContains(t, out, "fb5aa994", "%s %s", name, verb)
			assert.NotContains(t, out, "b2a53222e584", "%s %s", name, verb)
		}
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("hook", "v", val)
		slog.New(slog.NewTextHandler(&buf, nil)).Info("hook", "v", val)
		assert.NotContains(t, buf.String(), "fb5aa994", name)
	}
	assert.Equal(t, `verified webhook(event="CARD_UPDATED" session_id=REDACTED)`, v.String())
	assert.Equal(t, `knotclient.verified webhook(event="CARD_UPDATED" session_id=REDACTED)`, fmt.Sprintf("%#v", v))

	evil, err := knotclient.ParseWebhook([]byte(`{"event":"X\nlevel=ERROR msg=forged","task_id":"12"}`))
	require.NoError(t, err)
	assert.Equal(t, `unverified webhook(event="X\nlevel=ERROR msg=forged" task_id="12")`, evil.String())
}

// TestVerifyWebhookThroughServer checks verification with a body read by a
// real net/http server (where Content-Length is consumed by the server).
func TestVerifyWebhookThroughServer(t *testing.T) {
	type result struct {
		v   knotclient.VerifiedWebhook
		err error
	}
	results := make(chan result, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		v, err := knotclient.VerifyWebhook(r, body, webhookSecret)
		results <- result{v, err}
	}))
	defer srv.Close()
	sig, err := knotclient.SignWebhook(http.Header{"Content-Type": {"application/json"}, "Encryption-Type": {"HMAC-SHA256"}},
		[]byte(cardUpdated), webhookSecret)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader([]byte(cardUpdated)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Encryption-Type", "HMAC-SHA256")
	req.Header.Set("Knot-Signature", sig)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	got := <-results
	require.NoError(t, got.err)
	assert.Equal(t, knotclient.EventCardUpdated, got.v.Event())
}

func TestParseWebhook(t *testing.T) {
	w, err := knotclient.ParseWebhook([]byte(cardUpdated))
	require.NoError(t, err)
	assert.Equal(t, knotclient.EventCardUpdated, w.Event)
	assert.Equal(t, "25605", string(w.TaskID))
	assert.Equal(t, "u1", w.ExternalUserID)
	assert.Equal(t, 11, w.Merchant.ID)
	assert.Equal(t, int64(1710864923198), w.Timestamp.Time().UnixMilli())
	d, err := w.CommonData()
	require.NoError(t, err)
	assert.Equal(t, "123456789", d.CardID)
	assert.Equal(t, []knotclient.IDRef{{ID: "sub-1"}}, d.Subscriptions)
	assert.Equal(t, "def456", d.Metadata["trace_id"])
	assert.NotContains(t, w.String(), "fb5aa994", "String leaves the session id out")
	assert.Equal(t, `unverified webhook(event="CARD_UPDATED" task_id="25605" merchant_id=11 timestamp=1710864923198)`, w.String())

	ms, err := knotclient.ParseWebhook([]byte(merchantStatus))
	require.NoError(t, err)
	assert.Empty(t, ms.SessionID)
	assert.Equal(t, knotclient.Timestamp(1710864923198), ms.Timestamp, "numeric string timestamp")
	md, err := ms.CommonData()
	require.NoError(t, err)
	assert.Equal(t, "DOWN", md.Status)
	assert.Equal(t, knotclient.ProductCardSwitcher, md.Type)

	auth, err := knotclient.ParseWebhook([]byte(`{"event":"AUTHENTICATED","session_id":"s","task_id":"77","data":{"card_id":"c","send_card":true},"timestamp":1}`))
	require.NoError(t, err)
	assert.Equal(t, "77", string(auth.TaskID), "task_id as string tolerated")
	ad, err := auth.CommonData()
	require.NoError(t, err)
	require.NotNil(t, ad.SendCard)
	assert.True(t, *ad.SendCard)

	future, err := knotclient.ParseWebhook([]byte(`{"event":"SOMETHING_NEW","novel":{"x":1},"data":[1,2,3]}`))
	require.NoError(t, err, "unknown events and fields are not errors")
	assert.Equal(t, knotclient.Event("SOMETHING_NEW"), future.Event)
	var arr []int
	require.NoError(t, future.DecodeData(&arr))
	assert.Equal(t, []int{1, 2, 3}, arr)
	_, err = future.CommonData()
	assert.ErrorIs(t, err, knotclient.ErrMalformedWebhook)

	for _, bad := range []string{``, `[]`, `{"event":""}`, `{"event":"X","timestamp":"soon"}`} {
		_, err := knotclient.ParseWebhook([]byte(bad))
		assert.ErrorIs(t, err, knotclient.ErrMalformedWebhook, bad)
	}
}

func TestUpdatedTransactionIDs(t *testing.T) {
	for name, body := range map[string]string{
		"top-level updated": `{"event":"UPDATED_TRANSACTIONS_AVAILABLE","updated":[{"id":"a"},{"id":"b"}]}`,
		"data.transactions": `{"event":"UPDATED_TRANSACTIONS_AVAILABLE","data":{"transactions":[{"id":"a"},{"id":"b"}]}}`,
	} {
		w, err := knotclient.ParseWebhook([]byte(body))
		require.NoError(t, err, name)
		assert.Equal(t, []string{"a", "b"}, w.UpdatedTransactionIDs(), name)
	}
}

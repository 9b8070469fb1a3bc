package knotclient_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
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

func TestVerifyWebhook(t *testing.T) {
	sessionMsg := "Content-Length|" + strconv.Itoa(len(cardUpdated)) +
		"|Content-Type|application/json|Encryption-Type|HMAC-SHA256|event|CARD_UPDATED|session_id|fb5aa994-ed1c-4c3e-b29a-b2a53222e584"
	noSessionMsg := "Content-Length|" + strconv.Itoa(len(merchantStatus)) +
		"|Content-Type|application/json|Encryption-Type|HMAC-SHA256|event|MERCHANT_STATUS_UPDATE"
	good := knotSign(t, sessionMsg)

	tests := []struct {
		name    string
		req     *http.Request
		body    string
		secret  string
		wantErr error // nil = valid
	}{
		{name: "good", req: webhookRequest(cardUpdated, good), body: cardUpdated, secret: webhookSecret},
		{name: "event without session_id omits the pair", req: webhookRequest(merchantStatus, knotSign(t, noSessionMsg)), body: merchantStatus, secret: webhookSecret},
		{name: "unpadded base64 accepted", req: webhookRequest(cardUpdated, good[:len(good)-1]), body: cardUpdated, secret: webhookSecret},
		{name: "missing header", req: webhookRequest(cardUpdated, ""), body: cardUpdated, secret: webhookSecret, wantErr: knotclient.ErrMissingSignature},
		{name: "wrong secret", req: webhookRequest(cardUpdated, good), body: cardUpdated, secret: "other", wantErr: knotclient.ErrInvalidSignature},
		{name: "tampered event", req: webhookRequest(cardUpdated, good),
			body:   bytes.NewBuffer(nil).String() + `{"event":"CARD_FAILED","session_id":"fb5aa994-ed1c-4c3e-b29a-b2a53222e584","task_id":25605,"external_user_id":"u1","merchant":{"id":11,"name":"Uber","logo":"l"},"data":{"card_id":"123456789","subscriptions":[{"id":"sub-1"}],"metadata":{"trace_id":"def456"}},"timestamp":1710864923198}`,
			secret: webhookSecret, wantErr: knotclient.ErrInvalidSignature},
		{name: "tampered session_id", req: webhookRequest(cardUpdated, good),
			body:   `{"event":"CARD_UPDATED","session_id":"fb5aa994-ed1c-4c3e-b29a-b2a53222e585","task_id":25605,"external_user_id":"u1","merchant":{"id":11,"name":"Uber","logo":"l"},"data":{"card_id":"123456789","subscriptions":[{"id":"sub-1"}],"metadata":{"trace_id":"def456"}},"timestamp":1710864923198}`,
			secret: webhookSecret, wantErr: knotclient.ErrInvalidSignature},
		{name: "tampered length", req: webhookRequest(cardUpdated, good), body: cardUpdated + " ", secret: webhookSecret, wantErr: knotclient.ErrInvalidSignature},
		{name: "signature not base64", req: webhookRequest(cardUpdated, "%%%"), body: cardUpdated, secret: webhookSecret, wantErr: knotclient.ErrInvalidSignature},
		{name: "not JSON", req: webhookRequest("nope", good), body: "nope", secret: webhookSecret, wantErr: knotclient.ErrMalformedWebhook},
		{name: "no event", req: webhookRequest(`{"session_id":"x"}`, good), body: `{"session_id":"x"}`, secret: webhookSecret, wantErr: knotclient.ErrMalformedWebhook},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := knotclient.VerifyWebhook(tt.req, []byte(tt.body), tt.secret)
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
			assert.NotContains(t, err.Error(), webhookSecret)
			assert.NotContains(t, err.Error(), "fb5aa994")
		})
	}

	t.Run("tampered Content-Type header", func(t *testing.T) {
		r := webhookRequest(cardUpdated, good)
		r.Header.Set("Content-Type", "text/plain")
		require.ErrorIs(t, knotclient.VerifyWebhook(r, []byte(cardUpdated), webhookSecret), knotclient.ErrInvalidSignature)
	})
	t.Run("unsupported Encryption-Type", func(t *testing.T) {
		r := webhookRequest(cardUpdated, good)
		r.Header.Set("Encryption-Type", "HMAC-SHA1")
		require.ErrorIs(t, knotclient.VerifyWebhook(r, []byte(cardUpdated), webhookSecret), knotclient.ErrInvalidSignature)
	})
	t.Run("empty secret refused", func(t *testing.T) {
		require.Error(t, knotclient.VerifyWebhook(webhookRequest(cardUpdated, good), []byte(cardUpdated), ""))
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
		require.NoError(t, c.VerifyWebhook(context.Background(), webhookRequest(cardUpdated, good), []byte(cardUpdated)))
		require.ErrorIs(t, c.VerifyWebhook(context.Background(), webhookRequest(cardUpdated, knotSign(t, "x")), []byte(cardUpdated)),
			knotclient.ErrInvalidSignature)
	})
}

// TestVerifyWebhookThroughServer checks verification with a body read by a
// real net/http server (where Content-Length is consumed by the server).
func TestVerifyWebhookThroughServer(t *testing.T) {
	results := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		results <- knotclient.VerifyWebhook(r, body, webhookSecret)
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
	require.NoError(t, <-results)
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
	assert.Equal(t, "webhook(event=CARD_UPDATED task_id=25605 merchant_id=11 timestamp=1710864923198)", w.String())

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

package knotclient_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient"
)

func TestErrorDecoding(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		wantType knotclient.ErrorType
		wantCode knotclient.ErrorCode
		wantMsg  string
		wantText string // substring of Error()
	}{
		{
			name: "knot body", status: 400,
			body:     `{"error_type":"INVALID_REQUEST","error_code":"INVALID_FIELD","error_message":"The type field is required.","extra":1}`,
			wantType: knotclient.ErrorTypeInvalidRequest, wantCode: knotclient.CodeInvalidField, wantMsg: "The type field is required.",
			wantText: `knotclient: POST /session/create: HTTP 400 Bad Request INVALID_REQUEST/INVALID_FIELD: "The type field is required."`,
		},
		{
			name: "bad credentials", status: 401,
			body:     `{"error_type":"INVALID_INPUT","error_code":"INVALID_API_KEYS","error_message":"Invalid client_id or secret provided."}`,
			wantType: knotclient.ErrorTypeInvalidInput, wantCode: knotclient.CodeInvalidAPIKeys, wantMsg: "Invalid client_id or secret provided.",
			wantText: "HTTP 401 Unauthorized INVALID_INPUT/INVALID_API_KEYS",
		},
		{
			name: "unknown code", status: 409, body: `{"error_type":"NEW_TYPE","error_code":"BRAND_NEW","error_message":"m"}`,
			wantType: "NEW_TYPE", wantCode: "BRAND_NEW", wantMsg: "m", wantText: "NEW_TYPE/BRAND_NEW",
		},
		{
			name: "500 server error body", status: 500, body: `{"message":"Server Error"}`,
			wantMsg: "Server Error", wantText: `HTTP 500 Internal Server Error: "Server Error"`,
		},
		{
			name: "non-JSON body", status: 502, body: "<html><body>Bad gateway from the load balancer</body></html>",
			wantText: "HTTP 502 Bad Gateway: non-JSON body (60 bytes)",
		},
		{
			name: "empty body", status: 403, body: "", wantText: "HTTP 403 Forbidden",
		},
		{
			name: "JSON of another shape", status: 404, body: `["not","an","object"]`, wantText: "HTTP 404 Not Found",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, respond(tt.status, tt.body))
			c := f.client(t, func(cfg *knotclient.Config) { cfg.MaxAttempts = 1 })
			_, err := c.CreateSession(context.Background(), knotclient.CreateSessionRequest{
				Type: knotclient.SessionCardSwitcher, ExternalUserID: "u1", CardID: "4111111111111111"})
			var e *knotclient.Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, "POST /session/create", e.Operation)
			assert.Equal(t, tt.status, e.StatusCode)
			assert.Equal(t, tt.wantType, e.Type)
			assert.Equal(t, tt.wantCode, e.Code)
			assert.Equal(t, tt.wantMsg, e.Message)
			assert.Equal(t, tt.body, string(e.Body))
			assert.Equal(t, 1, e.Attempts)
			assert.Contains(t, err.Error(), tt.wantText)
			assert.True(t, knotclient.IsStatus(err, tt.status))
			if tt.wantCode != "" {
				assert.True(t, knotclient.IsCode(err, tt.wantCode))
			}
			assert.False(t, knotclient.IsCode(err, knotclient.CodeNoAccess))
			assertNoSecrets(t, err.Error())
		})
	}
}

// assertNoSecrets checks an error text carries none of what must stay
// private: the secret, its Basic-auth encoding, request body values.
func assertNoSecrets(t *testing.T, text string) {
	t.Helper()
	for _, s := range []string{testSecret, "czNjcjN0", "4111111111111111", "session-id-private"} {
		assert.NotContains(t, text, s)
	}
}

func TestErrorBodyIsTruncated(t *testing.T) {
	f := newFake(t, respond(500, strings.Repeat("x", 10_000)))
	c := f.client(t, func(cfg *knotclient.Config) { cfg.MaxAttempts = 1 })
	_, err := c.GetJWEKey(context.Background())
	var e *knotclient.Error
	require.ErrorAs(t, err, &e)
	assert.Len(t, e.Body, 2048)
	assert.Less(t, len(err.Error()), 200)
}

func TestCardErrorMessageIn200IsFailure(t *testing.T) {
	f := newFake(t, respond(200, `{"error_type":"INVALID_REQUEST","error_code":"INVALID_JWE","error_message":"The card number is invalid."}`))
	c := f.client(t)
	err := c.SwitchCard(context.Background(), knotclient.SwitchCardRequest{TaskID: "1", JWE: "a.b.c.d.e"})
	var e *knotclient.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, http.StatusOK, e.StatusCode)
	assert.Equal(t, knotclient.CodeInvalidJWE, e.Code)
	assert.Equal(t, "The card number is invalid.", e.Message)
	assert.Contains(t, err.Error(), "POST /card: HTTP 200 INVALID_REQUEST/INVALID_JWE")

	ok := newFake(t, respond(200, `{"message":"Success"}`))
	require.NoError(t, ok.client(t).SwitchCard(context.Background(), knotclient.SwitchCardRequest{TaskID: "1", JWE: "a.b.c.d.e"}))
}

func TestErrorsNeverCarryTheSecretOrBodies(t *testing.T) {
	f := newFake(t, drop)
	c := f.client(t)
	ctx := context.Background()
	errs := []error{
		c.SwitchCard(ctx, knotclient.SwitchCardRequest{TaskID: "1", JWE: "4111111111111111"}),
		func() error {
			_, err := c.ExtendSession(ctx, knotclient.ExtendSessionRequest{SessionID: "session-id-private"})
			return err
		}(),
		func() error {
			_, err := c.GetAccounts(ctx, knotclient.GetAccountsRequest{ExternalUserID: "session-id-private"})
			return err
		}(),
	}
	for _, err := range errs {
		require.Error(t, err)
		assertNoSecrets(t, err.Error())
		assert.True(t, strings.HasPrefix(err.Error(), "knotclient: "), err.Error())
		assert.False(t, errors.Is(err, knotclient.ErrClosed))
	}
}

func TestDecodeErrorIsReported(t *testing.T) {
	f := newFake(t, respond(200, `{"merchant": "not an object"`))
	c := f.client(t)
	_, err := c.SyncTransactions(context.Background(), knotclient.SyncTransactionsRequest{MerchantID: 1, ExternalUserID: "u"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "knotclient: POST /transactions/sync: decode response")
}

// TestErrorScrubsEchoedCredentials: a proxy that echoes the request
// (Authorization header, decoded credentials) into its error body does not
// get the secret into the error text, Message or Body.
func TestErrorScrubsEchoedCredentials(t *testing.T) {
	token := base64.StdEncoding.EncodeToString([]byte(testClientID + ":" + testSecret))
	for name, tc := range map[string]struct {
		status int
		call   func(*knotclient.Client) error
	}{
		"error status": {502, func(c *knotclient.Client) error { _, err := c.GetJWEKey(context.Background()); return err }},
		"error in a 200 from /card": {200, func(c *knotclient.Client) error {
			return c.SwitchCard(context.Background(), knotclient.SwitchCardRequest{TaskID: "1", JWE: "a.b.c.d.e"})
		}},
	} {
		t.Run(name, func(t *testing.T) {
			// The secret appears raw and JSON-escaped (\u0033 is "3").
			escaped := strings.ReplaceAll(testSecret, "3", `\u0033`)
			body := `{"error_code":"ECHO","error_message":"you sent Authorization: Basic ` + token + ` (` + testSecret + `, ` + escaped + `)"}`
			f := newFake(t, respond(tc.status, body))
			c := f.client(t, func(cfg *knotclient.Config) { cfg.MaxAttempts = 1 })
			err := tc.call(c)
			var e *knotclient.Error
			require.ErrorAs(t, err, &e)
			for _, text := range []string{err.Error(), e.Message, string(e.Body)} {
				assert.NotContains(t, text, testSecret)
				assert.NotContains(t, text, token)
			}
			assert.Contains(t, e.Message, "Basic REDACTED")
		})
	}
}

func TestErrorMessageIsBoundedInText(t *testing.T) {
	f := newFake(t, respond(400, `{"error_code":"X","error_message":"`+strings.Repeat("m", 100_000)+`"}`))
	c := f.client(t)
	_, err := c.GetJWEKey(context.Background())
	var e *knotclient.Error
	require.ErrorAs(t, err, &e)
	assert.Len(t, e.Message, 100_000, "the field keeps the whole message")
	assert.Less(t, len(err.Error()), 700)
	assert.True(t, strings.HasSuffix(err.Error(), `..."`), err.Error())
}

package knotclient_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient"
)

// TestSessionIDsAreRedacted: the types that carry a session ID never show
// it through fmt (any verb, by value or by pointer) or log/slog (text or
// JSON handler), as Knot asks.
func TestSessionIDsAreRedacted(t *testing.T) {
	const sid = "fb5aa994-ed1c-4c3e-b29a-b2a53222e584"
	hook, err := knotclient.ParseWebhook([]byte(`{"event":"AUTHENTICATED","session_id":"` + sid + `","task_id":7}`))
	require.NoError(t, err)
	require.Equal(t, sid, hook.SessionID, "the field itself keeps the value")
	resp := knotclient.SessionResponse{Session: sid}
	req := knotclient.ExtendSessionRequest{SessionID: sid}

	values := map[string]any{
		"*UnverifiedWebhook": hook, "UnverifiedWebhook": *hook,
		"*SessionResponse": &resp, "SessionResponse": resp,
		"*ExtendSessionRequest": &req, "ExtendSessionRequest": req,
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
				out := fmt.Sprintf(verb, v)
				assert.NotContains(t, out, sid, verb)
				assert.NotContains(t, out, "fb5aa994", verb)
			}
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("event", "value", v)
			slog.New(slog.NewTextHandler(&buf, nil)).Info("event", "value", v)
			assert.NotContains(t, buf.String(), "fb5aa994")
		})
	}
	assert.Equal(t, `unverified webhook(event="AUTHENTICATED" task_id="7")`, fmt.Sprint(*hook))
	assert.Equal(t, "SessionResponse{Session:REDACTED}", resp.String())
	assert.Equal(t, `SessionResponse{Session:""}`, knotclient.SessionResponse{}.String(), "an empty ID shows as empty")
}

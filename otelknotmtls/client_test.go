package otelknotmtls_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/otelknotmtls"
	"github.com/knotmtls/knotmtls/provider"
)

// TestClientMetricsThroughPrometheus: calls to a knottest server over real
// mTLS, with injected 503, 429 and 404 answers, are counted per attempt and
// per retry by operation and outcome.
func TestClientMetricsThroughPrometheus(t *testing.T) {
	m := newMetrics(t)
	srv := knottest.NewTestServer(t)
	bundle, err := srv.IssueClient()
	require.NoError(t, err)
	p, err := provider.New(provider.Static(bundle), provider.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	defer p.Close()
	onAttempt, err := otelknotmtls.ClientOnAttempt(m.mp)
	require.NoError(t, err)
	c, err := knotclient.New(knotclient.Config{
		ClientID: srv.ClientID(), Secret: knotclient.StaticSecret(srv.Secret()), Certificates: p,
		BaseURL: srv.URL(), RootCAs: srv.RootCAs(), Logger: slog.New(slog.DiscardHandler),
		RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond,
		OnAttempt: onAttempt,
	})
	require.NoError(t, err)
	defer c.Close()
	ctx := context.Background()

	srv.Fail(knottest.Fault{Path: "/jwe/key", Status: 503, Times: 1})
	srv.Fail(knottest.Fault{Path: "/jwe/key", Status: 429, RetryAfter: "0", Times: 1})
	_, err = c.GetJWEKey(ctx)
	require.NoError(t, err, "succeeds on the third attempt")
	_, err = c.GetJWEKey(ctx)
	require.NoError(t, err)
	srv.Fail(knottest.Fault{Path: "/jwe/key", Status: 404, Times: 1})
	_, err = c.GetJWEKey(ctx)
	require.True(t, knotclient.IsStatus(err, 404))

	op := "GET /jwe/key"
	got := m.gather(t)
	for _, tt := range []struct {
		outcome           string
		attempts, retries float64
	}{
		{otelknotmtls.OutcomeSuccess, 2, 0},
		{otelknotmtls.OutcomeServerError, 1, 1},
		{otelknotmtls.OutcomeRateLimited, 1, 1},
		{otelknotmtls.OutcomeClientError, 1, 0},
	} {
		v, _ := value(got, "knotmtls_client_attempts_total", "operation", op, "outcome", tt.outcome)
		assert.Equal(t, tt.attempts, v, "attempts{outcome=%q}", tt.outcome)
		v, _ = value(got, "knotmtls_client_retries_total", "operation", op, "outcome", tt.outcome)
		assert.Equal(t, tt.retries, v, "retries{outcome=%q}", tt.outcome)
	}
	assert.Len(t, got["knotmtls_client_attempts_total"], 4, "names: %v", names(got))
	assert.Len(t, got["knotmtls_client_retries_total"], 2)

	text := m.scrape(t)
	assert.Contains(t, text, "\nknotmtls_client_attempts_total{")
	assert.Contains(t, text, "\nknotmtls_client_retries_total{")
	assert.NotContains(t, text, srv.Secret())
	noSerials(t, text, bundle)
}

// TestOutcome pins the classification of attempts into the bounded
// outcome set.
func TestOutcome(t *testing.T) {
	tests := []struct {
		ev   knotclient.AttemptEvent
		want string
	}{
		{knotclient.AttemptEvent{Status: 200}, otelknotmtls.OutcomeSuccess},
		{knotclient.AttemptEvent{Status: 202}, otelknotmtls.OutcomeSuccess},
		{knotclient.AttemptEvent{Status: 400}, otelknotmtls.OutcomeClientError},
		{knotclient.AttemptEvent{Status: 429}, otelknotmtls.OutcomeRateLimited},
		{knotclient.AttemptEvent{Status: 502}, otelknotmtls.OutcomeServerError},
		{knotclient.AttemptEvent{Err: &knotclient.SignError{TLS: errors.New("tls: failed to sign handshake")}}, otelknotmtls.OutcomeSignError},
		{knotclient.AttemptEvent{Err: fmt.Errorf("attempt: %w", context.DeadlineExceeded)}, otelknotmtls.OutcomeTimeout},
		{knotclient.AttemptEvent{Err: errors.New("connection reset by peer")}, otelknotmtls.OutcomeNetworkError},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, otelknotmtls.Outcome(tt.ev))
			assert.Contains(t, otelknotmtls.Outcomes, tt.want)
		})
	}
}

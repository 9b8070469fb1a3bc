package otelknotmtls

import (
	"context"
	"errors"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/knotmtls/knotmtls/knotclient"
)

// Outcomes of a Knot API attempt (the outcome attribute of the client
// metrics).
const (
	OutcomeSuccess      = "success"       // 2xx
	OutcomeClientError  = "client_error"  // 4xx other than 429
	OutcomeRateLimited  = "rate_limited"  // 429
	OutcomeServerError  = "server_error"  // 5xx
	OutcomeSignError    = "sign_error"    // the client key could not sign the handshake (Transit)
	OutcomeTimeout      = "timeout"       // no response within the attempt's timeout or the caller's deadline
	OutcomeNetworkError = "network_error" // any other failure before a response
)

// Outcomes lists every value of the outcome attribute of the client
// metrics.
var Outcomes = []string{OutcomeSuccess, OutcomeClientError, OutcomeRateLimited, OutcomeServerError,
	OutcomeSignError, OutcomeTimeout, OutcomeNetworkError}

// Outcome classifies an attempt into one of [Outcomes].
func Outcome(e knotclient.AttemptEvent) string {
	switch {
	case e.Err == nil && e.Status >= 200 && e.Status <= 299:
		return OutcomeSuccess
	case e.Err == nil && e.Status == http.StatusTooManyRequests:
		return OutcomeRateLimited
	case e.Err == nil && e.Status >= 500:
		return OutcomeServerError
	case e.Err == nil:
		return OutcomeClientError
	}
	var se *knotclient.SignError
	if errors.As(e.Err, &se) {
		return OutcomeSignError
	}
	if errors.Is(e.Err, context.DeadlineExceeded) {
		return OutcomeTimeout
	}
	return OutcomeNetworkError
}

// ClientOnAttempt returns a knotclient.Config.OnAttempt hook that counts
// every attempt (knotmtls.client.attempts) and every attempt followed by a
// retry (knotmtls.client.retries) by operation and outcome:
//
//	cfg.OnAttempt, err = otelknotmtls.ClientOnAttempt(mp)
func ClientOnAttempt(mp metric.MeterProvider, opts ...Option) (func(knotclient.AttemptEvent), error) {
	m, err := meter(mp)
	if err != nil {
		return nil, err
	}
	base := newConfig(opts).attrs
	attempts, err1 := m.Int64Counter("knotmtls.client.attempts", metric.WithUnit("{attempt}"),
		metric.WithDescription("Knot API attempts, by operation and outcome."))
	retries, err2 := m.Int64Counter("knotmtls.client.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("Knot API attempts followed by a retry, by operation and the failed attempt's outcome."))
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return func(e knotclient.AttemptEvent) {
		attrs := make([]attribute.KeyValue, 0, len(base)+2)
		attrs = append(append(attrs, base...), OperationKey.String(e.Op), OutcomeKey.String(Outcome(e)))
		set := metric.WithAttributeSet(attribute.NewSet(attrs...))
		ctx := context.Background()
		attempts.Add(ctx, 1, set)
		if e.Retry {
			retries.Add(ctx, 1, set)
		}
	}, nil
}

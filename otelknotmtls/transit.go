package otelknotmtls

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/metric"

	"github.com/knotmtls/knotmtls/vaultsource"
)

// Outcomes of a Transit signature (the outcome attribute of
// knotmtls.transit.sign.duration).
const (
	SignSuccess = "success"
	SignFailure = "failure"
)

// signBuckets are the histogram's bucket bounds in seconds: a Transit
// signature takes a few milliseconds on a near Vault, up to the 5 s sign
// timeout on a frozen one.
var signBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// TransitOption returns a vaultsource option that records every Transit
// signature in mp: its duration (knotmtls.transit.sign.duration, by
// outcome) and, for a failure, its reason (knotmtls.transit.sign.failures).
// Pass it to vaultsource.NewTransit. Each full TLS handshake that presents
// a Transit-backed certificate makes one signature; recording it costs a
// histogram and a counter update on that handshake's goroutine.
func TransitOption(mp metric.MeterProvider, opts ...Option) (vaultsource.TransitOption, error) {
	m, err := meter(mp)
	if err != nil {
		return nil, err
	}
	base := newConfig(opts).attrs
	duration, err1 := m.Float64Histogram("knotmtls.transit.sign.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of Transit signatures (one per full TLS handshake), by outcome."),
		metric.WithExplicitBucketBoundaries(signBuckets...))
	failures, err2 := m.Int64Counter("knotmtls.transit.sign.failures", metric.WithUnit("{failure}"),
		metric.WithDescription("Failed Transit signatures, by reason."))
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	ok := withAttr(base, OutcomeKey.String(SignSuccess))
	failed := withAttr(base, OutcomeKey.String(SignFailure))
	return vaultsource.OnSign(func(e vaultsource.SignEvent) {
		ctx := context.Background()
		if e.Err == nil {
			duration.Record(ctx, e.Duration.Seconds(), ok)
			return
		}
		duration.Record(ctx, e.Duration.Seconds(), failed)
		failures.Add(ctx, 1, withAttr(base, ReasonKey.String(Reason(e.Err))))
	}), nil
}

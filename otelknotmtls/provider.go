package otelknotmtls

import (
	"context"
	"crypto/x509"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/knotmtls/knotmtls/provider"
)

// InstrumentProvider exports the metrics of p (see the package
// documentation) through mp until stop is called. Call it right after
// provider.New, before the first handshake: New does no I/O, so no attempt
// is missed. The gauges read p.Status() when the metrics are collected;
// the counters count p's attempts and rotations as they happen. Nothing
// runs on the TLS handshake. stop unregisters everything; it does not close
// p.
func InstrumentProvider(mp metric.MeterProvider, p *provider.Provider, opts ...Option) (stop func() error, err error) {
	if p == nil {
		return nil, errors.New("otelknotmtls: nil Provider")
	}
	m, err := meter(mp)
	if err != nil {
		return nil, err
	}
	set := metric.WithAttributes(newConfig(opts).attrs...)
	var errs []error
	gauge := func(name, unit, desc string) metric.Float64ObservableGauge {
		g, err := m.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	notAfter := gauge("knotmtls.certificate.not_after", "s", "NotAfter of the served client certificate, in Unix seconds.")
	notBefore := gauge("knotmtls.certificate.not_before", "s", "NotBefore of the served client certificate, in Unix seconds.")
	lastSuccess := gauge("knotmtls.provider.last_success", "s", "End of the last successful certificate refresh, in Unix seconds.")
	stale, err := m.Int64ObservableGauge("knotmtls.provider.serving_stale",
		metric.WithDescription("1 while a still-valid certificate is served although the last refresh failed, else 0."))
	errs = append(errs, err)
	consecutive, err := m.Int64ObservableGauge("knotmtls.provider.consecutive_failures",
		metric.WithDescription("Refresh attempts failed since the last success."))
	errs = append(errs, err)
	attempts := counter("knotmtls.provider.refresh.attempts", "{attempt}", "Certificate refresh attempts that asked the source.")
	failures := counter("knotmtls.provider.refresh.failures", "{failure}", "Failed certificate refresh attempts, by reason.")
	rotations := counter("knotmtls.provider.rotations", "{rotation}", "Replacements of the served certificate (the first load excluded).")
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := p.Status()
		if st.Closed {
			return nil
		}
		if leaf := leafOf(st.Bundle); leaf != nil {
			o.ObserveFloat64(notAfter, float64(leaf.NotAfter.Unix()), set)
			o.ObserveFloat64(notBefore, float64(leaf.NotBefore.Unix()), set)
		}
		if !st.LastSuccess.IsZero() {
			o.ObserveFloat64(lastSuccess, float64(st.LastSuccess.UnixNano())/1e9, set)
		}
		var s int64
		if st.Bundle != nil && st.Valid && st.Failures > 0 {
			s = 1
		}
		o.ObserveInt64(stale, s, set)
		o.ObserveInt64(consecutive, int64(st.Failures), set)
		return nil
	}, notAfter, notBefore, lastSuccess, stale, consecutive)
	if err != nil {
		return nil, err
	}
	base := newConfig(opts).attrs
	stopAttempts := p.NotifyAttempt(func(a provider.Attempt) {
		ctx := context.Background()
		attempts.Add(ctx, 1, set)
		if a.Err != nil {
			failures.Add(ctx, 1, withAttr(base, ReasonKey.String(Reason(a.Err))))
		}
	})
	stopRotations := p.Notify(func(old, _ *provider.Bundle) {
		if old != nil {
			rotations.Add(context.Background(), 1, set)
		}
	})
	return func() error {
		stopAttempts()
		stopRotations()
		return reg.Unregister()
	}, nil
}

func leafOf(b *provider.Bundle) *x509.Certificate {
	if b == nil {
		return nil
	}
	return b.Leaf()
}

// withAttr returns base plus one attribute, without aliasing base.
func withAttr(base []attribute.KeyValue, kv attribute.KeyValue) metric.MeasurementOption {
	attrs := make([]attribute.KeyValue, 0, len(base)+1)
	return metric.WithAttributes(append(append(attrs, base...), kv)...)
}

package otelknotmtls_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/knotmtls/knotmtls/internal/pkitest"
	"github.com/knotmtls/knotmtls/otelknotmtls"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// TestProviderMetricsThroughPrometheus drives a real Provider over a test
// source through load, rotation, three kinds of failure and recovery, and
// reads every provider metric back through the Prometheus exporter: names,
// labels and values.
func TestProviderMetricsThroughPrometheus(t *testing.T) {
	m := newMetrics(t)
	ca := pkitest.NewCA("otel test CA")
	base := time.Now().Truncate(time.Second)
	b1 := issue(t, ca, clientID, 0, base.Add(-time.Hour), base.Add(10*24*time.Hour))
	b2 := issue(t, ca, clientID, 1, base.Add(-time.Minute), base.Add(20*24*time.Hour))
	wrongCN := issue(t, ca, "someone-else", 2, base.Add(-time.Minute), base.Add(30*24*time.Hour))
	src := &source{bundle: b1}
	p, err := provider.New(src, provider.WithRequirements(provider.Requirements{ClientID: clientID}),
		provider.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	defer p.Close()
	stop, err := otelknotmtls.InstrumentProvider(m.mp, p, otelknotmtls.WithAttributes(attribute.String("knot_client_id", clientID)))
	require.NoError(t, err)
	id := []string{"knot_client_id", clientID}
	ctx := context.Background()
	type want struct {
		notAfter, notBefore    time.Time
		attempts, rotations    float64
		stale, consecutive     float64
		failures               map[string]float64
		successAfter           time.Time
		successNotAfterCurrent bool
	}
	check := func(step string, w want) {
		t.Helper()
		got := m.gather(t)
		if w.notAfter.IsZero() {
			_, ok := value(got, "knotmtls_certificate_not_after_seconds", id...)
			assert.False(t, ok, "%s: no certificate, no not_after series", step)
		} else {
			v, ok := value(got, "knotmtls_certificate_not_after_seconds", id...)
			assert.True(t, ok, step)
			assert.Equal(t, float64(w.notAfter.Unix()), v, "%s: not_after", step)
			v, _ = value(got, "knotmtls_certificate_not_before_seconds", id...)
			assert.Equal(t, float64(w.notBefore.Unix()), v, "%s: not_before", step)
		}
		v, _ := value(got, "knotmtls_provider_refresh_attempts_total", id...)
		assert.Equal(t, w.attempts, v, "%s: attempts", step)
		v, _ = value(got, "knotmtls_provider_rotations_total", id...)
		assert.Equal(t, w.rotations, v, "%s: rotations", step)
		v, ok := value(got, "knotmtls_provider_serving_stale", id...)
		assert.True(t, ok, step)
		assert.Equal(t, w.stale, v, "%s: serving_stale", step)
		v, _ = value(got, "knotmtls_provider_consecutive_failures", id...)
		assert.Equal(t, w.consecutive, v, "%s: consecutive_failures", step)
		for _, reason := range otelknotmtls.Reasons {
			v, _ := value(got, "knotmtls_provider_refresh_failures_total", append([]string{"reason", reason}, id...)...)
			assert.Equal(t, w.failures[reason], v, "%s: failures{reason=%q}", step, reason)
		}
		assert.Len(t, got["knotmtls_provider_refresh_failures_total"], len(w.failures), "%s: only the reasons seen", step)
		if !w.successAfter.IsZero() {
			v, _ := value(got, "knotmtls_provider_last_success_seconds", id...)
			assert.InDelta(t, float64(p.Status().LastSuccess.UnixNano())/1e9, v, 1e-3, "%s: last_success is Status().LastSuccess", step)
			assert.GreaterOrEqual(t, v, float64(w.successAfter.UnixNano())/1e9, "%s: last_success moved", step)
		}
	}

	check("before the first load", want{})

	before := time.Now()
	_, err = p.Bundle(ctx)
	require.NoError(t, err)
	check("loaded", want{notAfter: b1.Leaf().NotAfter, notBefore: b1.Leaf().NotBefore, attempts: 1, successAfter: before})

	src.set(b2, nil)
	require.NoError(t, p.Refresh(ctx))
	check("rotated", want{notAfter: b2.Leaf().NotAfter, notBefore: b2.Leaf().NotBefore, attempts: 2, rotations: 1})

	src.set(nil, &vaultsource.Error{Op: "read", Path: "secret/data/knot", Err: vaultsource.ErrPermissionDenied})
	require.Error(t, p.Refresh(ctx))
	src.set(nil, errors.New("dial tcp 127.0.0.1:8200: connection refused"))
	require.Error(t, p.Refresh(ctx))
	src.set(wrongCN, nil)
	require.Error(t, p.Refresh(ctx))
	failing := want{notAfter: b2.Leaf().NotAfter, notBefore: b2.Leaf().NotBefore, attempts: 5, rotations: 1,
		stale: 1, consecutive: 3, failures: map[string]float64{"permission_denied": 1, "unavailable": 1, "invalid_bundle": 1}}
	check("failing, serving the last good certificate", failing)

	before = time.Now()
	src.set(b2, nil)
	require.NoError(t, p.Refresh(ctx))
	recovered := failing
	recovered.attempts, recovered.stale, recovered.consecutive, recovered.successAfter = 6, 0, 0, before
	check("recovered", recovered)

	text := m.scrape(t)
	for _, name := range []string{
		"knotmtls_certificate_not_after_seconds", "knotmtls_certificate_not_before_seconds",
		"knotmtls_provider_last_success_seconds", "knotmtls_provider_serving_stale",
		"knotmtls_provider_consecutive_failures", "knotmtls_provider_refresh_attempts_total",
		"knotmtls_provider_refresh_failures_total", "knotmtls_provider_rotations_total",
	} {
		assert.Contains(t, text, "\n"+name+"{", "scraped exposition has %s", name)
	}
	noSerials(t, text, b1, b2, wrongCN)
	assert.NotContains(t, text, "secret/data/knot", "no path in any label")

	require.NoError(t, stop())
	require.NoError(t, p.Refresh(ctx))
	got := m.gather(t)
	_, ok := value(got, "knotmtls_certificate_not_after_seconds", id...)
	assert.False(t, ok, "stop unregisters the gauges")
	v, _ := value(got, "knotmtls_provider_refresh_attempts_total", id...)
	assert.Equal(t, 6.0, v, "stop unregisters the attempt listener")
}

// TestInstrumentProviderRefusesNil: nil arguments are refused, not
// discovered at collection time.
func TestInstrumentProviderRefusesNil(t *testing.T) {
	m := newMetrics(t)
	_, err := otelknotmtls.InstrumentProvider(m.mp, nil)
	require.EqualError(t, err, "otelknotmtls: nil Provider")
	p, err := provider.New(&source{}, provider.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	defer p.Close()
	_, err = otelknotmtls.InstrumentProvider(nil, p)
	require.EqualError(t, err, "otelknotmtls: nil MeterProvider")
}

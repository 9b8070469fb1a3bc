package otelknotmtls_test

import (
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/knotmtls/knotmtls/internal/pkitest"
	"github.com/knotmtls/knotmtls/provider"
)

const clientID = "client-1"

// metrics is an OpenTelemetry MeterProvider exporting through the
// Prometheus exporter into its own registry.
type metrics struct {
	reg *prometheus.Registry
	mp  *sdkmetric.MeterProvider
}

func newMetrics(t *testing.T) *metrics { return newBenchMetrics(t) }

func newBenchMetrics(t testing.TB) *metrics {
	t.Helper()
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutTargetInfo(), otelprom.WithoutScopeInfo())
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return &metrics{reg: reg, mp: mp}
}

// sample is one gathered series: its labels and its value (a histogram's
// sample count and sum).
type sample struct {
	labels map[string]string
	value  float64
	sum    float64
}

// gather returns every series of the registry by family name.
func (m *metrics) gather(t *testing.T) map[string][]sample {
	t.Helper()
	fams, err := m.reg.Gather()
	require.NoError(t, err)
	out := map[string][]sample{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			s := sample{labels: map[string]string{}}
			for _, l := range mt.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				s.value = mt.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				s.value = mt.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				s.value = float64(mt.GetHistogram().GetSampleCount())
				s.sum = mt.GetHistogram().GetSampleSum()
			}
			out[f.GetName()] = append(out[f.GetName()], s)
		}
	}
	return out
}

// value returns the value of the series of name whose labels are exactly
// labels (key=value pairs), and whether it exists.
func value(got map[string][]sample, name string, labels ...string) (float64, bool) {
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, s := range got[name] {
		if len(s.labels) != len(want) {
			continue
		}
		match := true
		for k, v := range want {
			if s.labels[k] != v {
				match = false
			}
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

// names returns the sorted family names.
func names(got map[string][]sample) []string {
	var n []string
	for k := range got {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// scrape reads the registry over HTTP, as Prometheus does.
func (m *metrics) scrape(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// source is a CertificateSource whose answer the test sets.
type source struct {
	mu     sync.Mutex
	bundle *provider.Bundle
	err    error
}

func (s *source) set(b *provider.Bundle, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bundle, s.err = b, err
}

func (s *source) Fetch(context.Context) (*provider.Bundle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bundle, s.err
}

// issue returns a bundle for cn valid from notBefore to notAfter (whole
// seconds).
func issue(t *testing.T, ca *pkitest.CA, cn string, i int, notBefore, notAfter time.Time) *provider.Bundle {
	t.Helper()
	key := pkitest.CachedRSAKey(2048, i%3)
	cert := ca.Issue(pkitest.Leaf{CN: cn, Key: key, NotBefore: notBefore, NotAfter: notAfter})
	b, err := provider.NewBundle([]*x509.Certificate{cert}, key, provider.SerialHex(cert))
	require.NoError(t, err)
	return b
}

// noSerials fails when the exposition holds any of the serials.
func noSerials(t *testing.T, text string, bundles ...*provider.Bundle) {
	t.Helper()
	for _, b := range bundles {
		serial := provider.SerialHex(b.Leaf())
		require.False(t, strings.Contains(strings.ToLower(text), strings.ToLower(serial)), "serial %s in the metrics", serial)
		require.NotContains(t, text, b.Leaf().SerialNumber.String())
	}
}

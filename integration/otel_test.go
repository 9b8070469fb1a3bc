package integration_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/otelknotmtls"
	"github.com/knotmtls/knotmtls/vaultauth"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// promValue returns the value of the series of family name whose labels
// are exactly labels (pairs), a histogram's sample count; ok false when
// absent.
func promValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) (float64, bool) {
	t.Helper()
	fams, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel())*2 != len(labels) {
				continue
			}
			for i, l := range m.GetLabel() {
				if l.GetName() != labels[2*i] || l.GetValue() != labels[2*i+1] {
					continue metrics
				}
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue(), true
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue(), true
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// TestOTelMetricsAgainstVault wires otelknotmtls to a real Vault: Transit
// signatures of real mTLS handshakes (one per new connection, as many as
// Vault saw), a frozen Vault (sign failures, knotclient sign_error
// attempts and retries), recovery, the provider gauges, and an AppRole
// login with its renewal, all read back through the Prometheus exporter.
func TestOTelMetricsAgainstVault(t *testing.T) {
	e := vsStart(t)
	ctx := t.Context()
	require.NoError(t, e.vault.EnableTransit(ctx))
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutTargetInfo(), otelprom.WithoutScopeInfo())
	require.NoError(t, err)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })

	signMetrics, err := otelknotmtls.TransitOption(mp)
	require.NoError(t, err)
	const key = "knot-otel"
	tr, leaf := e.provisionTransit(t, key, signMetrics, vaultsource.WithSignTimeout(time.Second))
	p := e.newProvider(t, tr)
	stopProvider, err := otelknotmtls.InstrumentProvider(mp, p)
	require.NoError(t, err)
	t.Cleanup(func() { _ = stopProvider() })
	onAttempt, err := otelknotmtls.ClientOnAttempt(mp)
	require.NoError(t, err)
	// A new client for each call: its own connections and TLS session
	// cache, so every call is a full handshake that Transit signs.
	call := func() error {
		kc, err := knotclient.New(knotclient.Config{
			ClientID: e.knot.ClientID(), Secret: knotclient.StaticSecret(e.knot.Secret()), Certificates: p,
			BaseURL: e.knot.URL(), RootCAs: e.knot.RootCAs(), OnAttempt: onAttempt,
			RetryBaseDelay: 10 * time.Millisecond, RetryMaxDelay: 20 * time.Millisecond,
		})
		require.NoError(t, err)
		defer kc.Close()
		_, err = kc.GetJWEKey(ctx)
		return err
	}
	signPath := "transit/sign/" + key
	signs := func() int { return e.counter.count(http.MethodPut, signPath) }

	const calls = 5
	before := signs()
	for range calls {
		require.NoError(t, call())
	}
	vaultSigns := signs() - before
	require.Equal(t, calls, vaultSigns, "one Transit signature per new connection")
	v, _ := promValue(t, reg, "knotmtls_transit_sign_duration_seconds", "outcome", "success")
	assert.Equal(t, float64(vaultSigns), v, "every signature Vault made is in the histogram")
	v, _ = promValue(t, reg, "knotmtls_client_attempts_total", "operation", "GET /jwe/key", "outcome", "success")
	assert.Equal(t, float64(calls), v)
	v, _ = promValue(t, reg, "knotmtls_certificate_not_after_seconds")
	assert.Equal(t, float64(leaf.NotAfter.Unix()), v)
	v, _ = promValue(t, reg, "knotmtls_provider_refresh_attempts_total")
	assert.Equal(t, 1.0, v, "one load")

	// A frozen Vault: each handshake's signature times out (1 s); the call
	// is retried (the sign error is temporary) and fails after 3 attempts.
	require.NoError(t, e.vault.Pause(ctx))
	require.Error(t, call())
	require.NoError(t, e.vault.Unpause(ctx))
	fams, err := reg.Gather()
	require.NoError(t, err)
	var reasons []string
	for _, f := range fams {
		if f.GetName() == "knotmtls_transit_sign_failures_total" {
			for _, m := range f.GetMetric() {
				reasons = append(reasons, m.GetLabel()[0].GetValue())
			}
		}
	}
	t.Logf("sign failure reasons while Vault was frozen: %v", reasons)
	v, _ = promValue(t, reg, "knotmtls_transit_sign_failures_total", "reason", "unavailable")
	assert.Equal(t, float64(knotclient.DefaultMaxAttempts), v, "one sign failure per attempt")
	v, _ = promValue(t, reg, "knotmtls_transit_sign_duration_seconds", "outcome", "failure")
	assert.Equal(t, float64(knotclient.DefaultMaxAttempts), v)
	v, _ = promValue(t, reg, "knotmtls_client_attempts_total", "operation", "GET /jwe/key", "outcome", "sign_error")
	assert.Equal(t, float64(knotclient.DefaultMaxAttempts), v)
	v, _ = promValue(t, reg, "knotmtls_client_retries_total", "operation", "GET /jwe/key", "outcome", "sign_error")
	assert.Equal(t, float64(knotclient.DefaultMaxAttempts-1), v, "the last attempt is not retried")

	require.NoError(t, call(), "Vault is back")
	v, _ = promValue(t, reg, "knotmtls_transit_sign_duration_seconds", "outcome", "success")
	assert.Equal(t, float64(calls+1), v)

	// AppRole login on the same Vault, renewed by the watcher.
	root := e.client
	require.NoError(t, root.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &api.EnableAuthOptions{Type: "approle"}))
	_, err = root.Logical().WriteWithContext(ctx, "auth/approle/role/otel", map[string]any{"token_ttl": "3s", "token_max_ttl": "1h"})
	require.NoError(t, err)
	s, err := root.Logical().ReadWithContext(ctx, "auth/approle/role/otel/role-id")
	require.NoError(t, err)
	roleID := s.Data["role_id"].(string)
	s, err = root.Logical().WriteWithContext(ctx, "auth/approle/role/otel/secret-id", nil)
	require.NoError(t, err)
	secretID := s.Data["secret_id"].(string)
	shared, err := e.vault.Client()
	require.NoError(t, err)
	shared.ClearToken()
	method, err := vaultauth.AppRole(roleID, &approle.SecretID{FromString: secretID})
	require.NoError(t, err)
	a, err := vaultauth.New(shared, method)
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	stopAuth, err := otelknotmtls.InstrumentAuth(mp, a)
	require.NoError(t, err)
	t.Cleanup(func() { _ = stopAuth() })
	require.NoError(t, a.Start(ctx))
	deadline := time.Now().Add(30 * time.Second)
	for a.Status().Renewals < 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	require.GreaterOrEqual(t, a.Status().Renewals, 1, "the 3 s token was renewed")
	v, _ = promValue(t, reg, "knotmtls_vault_logins_total", "method", "approle")
	assert.Equal(t, 1.0, v)
	v, _ = promValue(t, reg, "knotmtls_vault_renewals_total", "method", "approle")
	assert.GreaterOrEqual(t, v, 1.0)
	assert.LessOrEqual(t, v, float64(a.Status().Renewals))
	v, ok := promValue(t, reg, "knotmtls_vault_token_expires_seconds", "method", "approle")
	require.True(t, ok)
	assert.InDelta(t, float64(time.Now().Add(3*time.Second).Unix()), v, 4)
}

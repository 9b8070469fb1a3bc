package otelknotmtls_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/otelknotmtls"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultauth"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// Example wires the provider and the Knot client to an OpenTelemetry
// MeterProvider that Prometheus scrapes, and traces every attempt with
// otelhttp through knotclient's WrapTransport. Each component takes one
// line; a Transit source would add otelknotmtls.TransitOption(mp) to
// vaultsource.NewTransit, and a Vault login otelknotmtls.InstrumentAuth(mp,
// auth). The knottest server stands in for Knot.
func Example() {
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutTargetInfo(), otelprom.WithoutScopeInfo())
	if err != nil {
		log.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer mp.Shutdown(context.Background())

	srv, err := knottest.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	bundle, err := srv.IssueClient()
	if err != nil {
		log.Fatal(err)
	}
	p, err := provider.New(provider.Static(bundle), provider.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	stop, err := otelknotmtls.InstrumentProvider(mp, p) // provider metrics
	if err != nil {
		log.Fatal(err)
	}
	defer stop()

	onAttempt, err := otelknotmtls.ClientOnAttempt(mp) // client metrics
	if err != nil {
		log.Fatal(err)
	}
	c, err := knotclient.New(knotclient.Config{
		ClientID:     srv.ClientID(),
		Secret:       knotclient.StaticSecret(srv.Secret()),
		Certificates: p,
		BaseURL:      srv.URL(),
		RootCAs:      srv.RootCAs(),
		OnAttempt:    onAttempt,
		// Tracing: one client span per attempt, with the global
		// TracerProvider (a no-op until one is installed). The span holds
		// the URL with its query (e.g. external_user_id), never the
		// Authorization header.
		WrapTransport: func(rt http.RoundTripper) http.RoundTripper { return otelhttp.NewTransport(rt) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.GetJWEKey(context.Background()); err != nil {
		log.Fatal(err)
	}

	// What Prometheus scrapes (a few of the series).
	scrape := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer scrape.Close()
	resp, err := http.Get(scrape.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		line := lines.Text()
		for _, name := range []string{"knotmtls_client_attempts_total{", "knotmtls_provider_refresh_attempts_total",
			"knotmtls_provider_serving_stale"} {
			if strings.HasPrefix(line, name) {
				fmt.Println(line)
			}
		}
	}
	// Output:
	// knotmtls_client_attempts_total{operation="GET /jwe/key",outcome="success"} 1
	// knotmtls_provider_refresh_attempts_total 1
	// knotmtls_provider_serving_stale 0
}

// ExampleTransitOption records the duration and failures of every Transit
// signature (one per full TLS handshake) of a source.
func ExampleTransitOption() {
	mp := sdkmetric.NewMeterProvider() // with a reader, as in Example
	opt, err := otelknotmtls.TransitOption(mp)
	if err != nil {
		log.Fatal(err)
	}
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	src, err := vaultsource.NewTransit(client, "transit", "knot", opt)
	if err != nil {
		log.Fatal(err)
	}
	_ = src // the provider's source, as usual
}

// ExampleInstrumentAuth exports the logins, failures, renewals and token
// expiry of a Vault login; the values are read from Auth.Status when the
// metrics are collected.
func ExampleInstrumentAuth() {
	mp := sdkmetric.NewMeterProvider() // with a reader, as in Example
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	method, err := vaultauth.AppRole("role-id", &approle.SecretID{FromFile: "/run/secrets/vault-secret-id"})
	if err != nil {
		log.Fatal(err)
	}
	auth, err := vaultauth.New(client, method)
	if err != nil {
		log.Fatal(err)
	}
	defer auth.Close()
	stop, err := otelknotmtls.InstrumentAuth(mp, auth)
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	// auth.Start(ctx), then the sources as usual.
}

package provider_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/knotmtls/knotmtls/internal/pkitest"
	"github.com/knotmtls/knotmtls/provider"
)

// ExampleProvider serves a certificate to a tls.Config and reports its state.
// In a service the source is a Vault or file source; here it is a static
// bundle issued by a throw-away CA.
func ExampleProvider() {
	ca := pkitest.NewCA("Knot test CA")
	key := pkitest.CachedRSAKey(2048, 0)
	leaf := ca.Issue(pkitest.Leaf{CN: "client-123", Key: key})
	bundle, err := provider.NewBundle([]*x509.Certificate{leaf}, key, "v1")
	if err != nil {
		panic(err)
	}

	p, err := provider.New(provider.Static(bundle),
		provider.WithRequirements(provider.Requirements{ClientID: "client-123"}),
		provider.WithLogger(slog.New(slog.DiscardHandler)),
		provider.OnNearingExpiry(func(b *provider.Bundle, left time.Duration) {
			fmt.Println("renew soon:", b, left)
		}))
	if err != nil {
		panic(err)
	}
	defer p.Close()

	cfg := provider.MTLSClientConfig(p, nil) // nil roots: the system roots, as Knot's hosts need
	cert, err := cfg.GetClientCertificate(&tls.CertificateRequestInfo{})
	if err != nil {
		panic(err)
	}
	st := p.Status()
	fmt.Println("presents:", cert.Leaf.Subject.CommonName)
	fmt.Println("valid:", st.Valid, "failures:", st.Failures)
	fmt.Println("serial matches openssl form:", provider.SerialHex(cert.Leaf) == fmt.Sprintf("%X", leaf.SerialNumber) ||
		provider.SerialHex(cert.Leaf) == fmt.Sprintf("0%X", leaf.SerialNumber))
	// Output:
	// presents: client-123
	// valid: true failures: 0
	// serial matches openssl form: true
}

// ExampleStatus_Health wires the provider's health to a readiness probe:
// 503 while no working certificate can be presented, 200 otherwise (alert
// on "degraded" rather than taking the instance out of service).
func ExampleStatus_Health() {
	ca := pkitest.NewCA("Knot test CA")
	key := pkitest.CachedRSAKey(2048, 0)
	bundle, _ := provider.NewBundle([]*x509.Certificate{ca.Issue(pkitest.Leaf{CN: "client-123", Key: key})}, key, "v1")
	p, _ := provider.New(provider.Static(bundle), provider.WithLogger(slog.New(slog.DiscardHandler)))
	defer p.Close()

	policy := provider.HealthPolicy{DegradedBelow: 7 * 24 * time.Hour, FailingAfterFailures: 20}
	ready := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := p.Status().Health(policy)
		if h.State == provider.Failing {
			http.Error(w, h.State.String()+": "+h.Reason, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, h.State, h.Reason)
	})
	probe := func() {
		rec := httptest.NewRecorder()
		ready.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		fmt.Println(rec.Code, strings.Fields(rec.Body.String())[0])
	}

	probe() // before the first load
	_, _ = p.Bundle(context.Background())
	probe()
	// Output:
	// 503 failing:
	// 200 healthy
}

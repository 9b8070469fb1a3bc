// Package otelknotmtls exports OpenTelemetry metrics for the knotmtls
// library: the certificate [provider.Provider], the Vault login
// ([vaultauth.Auth]), Transit signatures ([vaultsource.Transit]) and the
// Knot API client ([knotclient.Client]). It lives in its own module, as
// otelhttp lives outside net/http, so that the library itself never pulls
// OpenTelemetry.
//
// One call wires each component to a metric.MeterProvider:
//
//	stop, err := otelknotmtls.InstrumentProvider(mp, p)        // after provider.New
//	stop, err := otelknotmtls.InstrumentAuth(mp, auth)         // after vaultauth.New
//	opt, err := otelknotmtls.TransitOption(mp)                 // an option of vaultsource.NewTransit
//	cfg.OnAttempt, err = otelknotmtls.ClientOnAttempt(mp)      // a field of knotclient.Config
//
// # Metrics
//
// Names follow OpenTelemetry conventions; a Prometheus exporter adds the
// unit and _total suffixes shown in brackets.
//
// Provider (gauges are read from Provider.Status by an asynchronous
// callback at collection time, never on the TLS handshake):
//
//	knotmtls.certificate.not_after        gauge, s    [knotmtls_certificate_not_after_seconds]
//	knotmtls.certificate.not_before       gauge, s    [knotmtls_certificate_not_before_seconds]
//	knotmtls.provider.last_success        gauge, s    [knotmtls_provider_last_success_seconds]
//	knotmtls.provider.serving_stale       gauge, 0/1  [knotmtls_provider_serving_stale]
//	knotmtls.provider.consecutive_failures gauge      [knotmtls_provider_consecutive_failures]
//	knotmtls.provider.refresh.attempts    counter     [knotmtls_provider_refresh_attempts_total]
//	knotmtls.provider.refresh.failures    counter, reason [knotmtls_provider_refresh_failures_total]
//	knotmtls.provider.rotations           counter     [knotmtls_provider_rotations_total]
//
// The timestamps are Unix seconds, like cert-manager's
// certmanager_certificate_expiration_timestamp_seconds: alert on
// not_after - time() < 7*24*3600. serving_stale is 1 while the provider
// serves a still-valid certificate although its last refresh failed.
// Rotations count replacements of the served certificate, not the first
// load.
//
// Vault login (read from Auth.Status at collection time; attribute method,
// e.g. "approle"):
//
//	knotmtls.vault.logins                 counter     [knotmtls_vault_logins_total]
//	knotmtls.vault.login.failures         counter     [knotmtls_vault_login_failures_total]
//	knotmtls.vault.renewals               counter     [knotmtls_vault_renewals_total]
//	knotmtls.vault.token.expires          gauge, s    [knotmtls_vault_token_expires_seconds] (absent for a token that never expires)
//
// Transit:
//
//	knotmtls.transit.sign.duration        histogram, s, outcome [knotmtls_transit_sign_duration_seconds]
//	knotmtls.transit.sign.failures        counter, reason       [knotmtls_transit_sign_failures_total]
//
// Knot API client (attributes operation, e.g. "POST /session/create", and
// outcome):
//
//	knotmtls.client.attempts              counter     [knotmtls_client_attempts_total]
//	knotmtls.client.retries               counter     [knotmtls_client_retries_total]
//
// # Attributes
//
// Every attribute comes from a fixed set, so cardinality is bounded: reason
// is one of [Reasons] (provider.ErrorClass plus the Vault cases), outcome
// one of [Outcomes] or "success"/"failure" for signatures, operation one of
// knotclient's operation templates, method an auth method's name. No
// serial, no version string, no path and no error text is ever an
// attribute, and nothing secret is. [WithAttributes] adds attributes of
// your own to every instrument of one call, for example the Knot
// client_id and environment when one process talks to several; keep them
// to such fixed values.
//
// # Tracing
//
// Tracing stays with knotclient's Config.WrapTransport and otelhttp (see
// the example of ClientOnAttempt): the wrapper sees every attempt.
package otelknotmtls

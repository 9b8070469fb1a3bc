package otelknotmtls

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/metric"

	"github.com/knotmtls/knotmtls/vaultauth"
)

// InstrumentAuth exports the Vault login metrics of a (see the package
// documentation) through mp until stop is called. Every value is read
// from a.Status() when the metrics are collected, so it may be called at
// any time, before or after a.Start; the counters are the Auth's own
// totals. stop unregisters the callback; it does not close a.
func InstrumentAuth(mp metric.MeterProvider, a *vaultauth.Auth, opts ...Option) (stop func() error, err error) {
	if a == nil {
		return nil, errors.New("otelknotmtls: nil Auth")
	}
	m, err := meter(mp)
	if err != nil {
		return nil, err
	}
	base := newConfig(opts).attrs
	var errs []error
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	logins := counter("knotmtls.vault.logins", "{login}", "Successful Vault logins, the first one included.")
	failures := counter("knotmtls.vault.login.failures", "{failure}", "Failed Vault logins.")
	renewals := counter("knotmtls.vault.renewals", "{renewal}", "Successful Vault token renewals.")
	expires, err := m.Float64ObservableGauge("knotmtls.vault.token.expires", metric.WithUnit("s"),
		metric.WithDescription("When the Vault token runs out, in Unix seconds; absent for a token that never expires."))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := a.Status()
		set := withAttr(base, MethodKey.String(st.Method))
		o.ObserveInt64(logins, int64(st.Logins), set)
		o.ObserveInt64(failures, int64(st.LoginFailures), set)
		o.ObserveInt64(renewals, int64(st.Renewals), set)
		if st.LoggedIn && !st.TokenExpires.IsZero() {
			o.ObserveFloat64(expires, float64(st.TokenExpires.UnixNano())/1e9, set)
		}
		return nil
	}, logins, failures, renewals, expires)
	if err != nil {
		return nil, err
	}
	return reg.Unregister, nil
}

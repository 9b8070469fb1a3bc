package otelknotmtls

import (
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// ScopeName is the instrumentation scope of every instrument.
const ScopeName = "github.com/knotmtls/knotmtls/otelknotmtls"

// Attribute keys.
const (
	// ReasonKey classifies a failure; its values are [Reasons].
	ReasonKey = attribute.Key("reason")
	// OutcomeKey is the outcome of a signature or an API attempt.
	OutcomeKey = attribute.Key("outcome")
	// OperationKey is a knotclient operation template.
	OperationKey = attribute.Key("operation")
	// MethodKey is a Vault auth method's name.
	MethodKey = attribute.Key("method")
)

// Option configures one instrumenting call.
type Option interface {
	apply(*config)
}

type config struct {
	attrs []attribute.KeyValue
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithAttributes adds attrs to every measurement of the instruments one
// call creates, e.g. attribute.String("knot.client_id", id). Pass only
// values from a small fixed set: each distinct value is a time series.
func WithAttributes(attrs ...attribute.KeyValue) Option {
	return optionFunc(func(c *config) { c.attrs = append(c.attrs, attrs...) })
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// meter returns the package's meter of mp; nil mp is refused.
func meter(mp metric.MeterProvider) (metric.Meter, error) {
	if mp == nil {
		return nil, errors.New("otelknotmtls: nil MeterProvider")
	}
	return mp.Meter(ScopeName), nil
}

// Reasons the reason attribute takes beyond provider.ErrorClass's classes
// (unavailable, timeout, permission_denied, invalid_bundle, expired,
// not_yet_valid, source_panic, closed).
const (
	ReasonNotFound     = "not_found"     // secret, mount or Transit key absent
	ReasonSealed       = "sealed"        // Vault sealed
	ReasonRateLimited  = "rate_limited"  // Vault rate-limit quota (429)
	ReasonBadSignature = "bad_signature" // Vault's signature did not verify
	ReasonUnsupported  = "unsupported"   // a signature request Transit cannot serve
)

// Reasons lists every value of the reason attribute.
var Reasons = []string{
	provider.ClassUnavailable, provider.ClassTimeout, provider.ClassPermission, provider.ClassInvalidBundle,
	provider.ClassExpired, provider.ClassNotYetValid, provider.ClassSourcePanic, provider.ClassClosed,
	ReasonNotFound, ReasonSealed, ReasonRateLimited, ReasonBadSignature, ReasonUnsupported,
}

// Reason classifies err into one of [Reasons]. Vault errors of package
// vaultsource get the class Status.Health gives them (sealed,
// rate_limited, unavailable, permission_denied, not_found, invalid_bundle),
// a Transit signature that does not verify bad_signature and one Transit
// cannot make unsupported; anything else is provider.ErrorClass's answer.
// It returns "" for nil.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	switch {
	case errors.Is(err, vaultsource.ErrSealed): // before ErrUnavailable, which it wraps
		return ReasonSealed
	case errors.Is(err, vaultsource.ErrRateLimited):
		return ReasonRateLimited
	case errors.Is(err, vaultsource.ErrUnavailable): // a frozen Vault's sign timeout included
		return provider.ClassUnavailable
	case errors.Is(err, vaultsource.ErrPermissionDenied):
		return provider.ClassPermission
	case errors.Is(err, vaultsource.ErrSecretNotFound), errors.Is(err, vaultsource.ErrVersionDeleted),
		errors.Is(err, vaultsource.ErrKeyNotFound), errors.Is(err, vaultsource.ErrMountNotFound):
		return ReasonNotFound
	case errors.Is(err, vaultsource.ErrMissingField), errors.Is(err, vaultsource.ErrFieldType),
		errors.Is(err, vaultsource.ErrNoCertificateChain), errors.Is(err, vaultsource.ErrUnsupportedKeyType),
		errors.Is(err, vaultsource.ErrWrongKVVersion):
		return provider.ClassInvalidBundle
	case errors.Is(err, vaultsource.ErrBadSignature):
		return ReasonBadSignature
	case errors.Is(err, vaultsource.ErrUnsupportedSignature):
		return ReasonUnsupported
	}
	return provider.ErrorClass(err)
}

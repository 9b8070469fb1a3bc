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

// Reasons the reason attribute takes, beyond provider.ErrorClass's classes
// (unavailable, timeout, permission_denied, invalid_bundle, expired,
// not_yet_valid, source_panic, closed).
const (
	ReasonNotFound     = "not_found"     // secret, mount, Transit key or key version absent
	ReasonBadSignature = "bad_signature" // Vault's signature did not verify
	ReasonUnsupported  = "unsupported"   // key type or signature request not supported
	ReasonRateLimited  = "rate_limited"  // Vault rate-limit quota (429)
	ReasonSealed       = "sealed"        // Vault sealed
)

// Reasons lists every value of the reason attribute.
var Reasons = []string{
	provider.ClassUnavailable, provider.ClassTimeout, provider.ClassPermission, provider.ClassInvalidBundle,
	provider.ClassExpired, provider.ClassNotYetValid, provider.ClassSourcePanic, provider.ClassClosed,
	ReasonNotFound, ReasonBadSignature, ReasonUnsupported, ReasonRateLimited, ReasonSealed,
}

// Reason classifies err into one of [Reasons]: the Vault cases of package
// vaultsource first, then provider.ErrorClass. It returns "" for nil.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	switch {
	case errors.Is(err, vaultsource.ErrPermissionDenied):
		return provider.ClassPermission
	case errors.Is(err, vaultsource.ErrSealed):
		return ReasonSealed
	case errors.Is(err, vaultsource.ErrRateLimited):
		return ReasonRateLimited
	case errors.Is(err, vaultsource.ErrSecretNotFound), errors.Is(err, vaultsource.ErrVersionDeleted),
		errors.Is(err, vaultsource.ErrMountNotFound), errors.Is(err, vaultsource.ErrKeyNotFound),
		errors.Is(err, vaultsource.ErrNoCertificateChain):
		return ReasonNotFound
	case errors.Is(err, vaultsource.ErrBadSignature):
		return ReasonBadSignature
	case errors.Is(err, vaultsource.ErrUnsupportedSignature), errors.Is(err, vaultsource.ErrUnsupportedKeyType),
		errors.Is(err, vaultsource.ErrWrongKVVersion):
		return ReasonUnsupported
	case errors.Is(err, vaultsource.ErrMissingField), errors.Is(err, vaultsource.ErrFieldType),
		errors.Is(err, vaultsource.ErrUnexpectedResponse):
		return provider.ClassInvalidBundle
	}
	return provider.ErrorClass(err)
}

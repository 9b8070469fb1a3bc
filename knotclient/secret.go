package knotclient

import (
	"context"
	"errors"
)

// SecretSource supplies the Knot API secret (the Basic-auth password) for
// the client's client_id. It is asked once per API call, so an
// implementation backed by Vault or another store should cache the value and
// answer from memory; the [Client] never stores it.
type SecretSource interface {
	Secret(ctx context.Context) (string, error)
}

// SecretFunc adapts a function to a [SecretSource].
type SecretFunc func(ctx context.Context) (string, error)

// Secret calls f(ctx).
func (f SecretFunc) Secret(ctx context.Context) (string, error) { return f(ctx) }

// StaticSecret returns a [SecretSource] that always answers secret. Its
// String method does not reveal the value.
func StaticSecret(secret string) SecretSource { return staticSecret{secret: secret} }

type staticSecret struct{ secret string }

// Secret returns the fixed secret.
func (s staticSecret) Secret(context.Context) (string, error) {
	if s.secret == "" {
		return "", errors.New("knotclient: static secret is empty")
	}
	return s.secret, nil
}

// String hides the secret from fmt and loggers.
func (staticSecret) String() string { return "knotclient.StaticSecret(REDACTED)" }

// GoString hides the secret from %#v.
func (staticSecret) GoString() string { return "knotclient.StaticSecret(REDACTED)" }

package knotclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// SecretSource supplies the Knot API secret (the Basic-auth password) for
// the client's client_id. It is asked once per API call, so an
// implementation backed by Vault or another store should cache the value and
// answer from memory; the [Client] never stores it.
//
// An implementation that holds the secret should not print it: [Config]
// prints every SecretSource as REDACTED, but a caller's own fmt or slog call
// on the source is the implementation's business (see [StaticSecret]).
type SecretSource interface {
	Secret(ctx context.Context) (string, error)
}

// SecretFunc adapts a function to a [SecretSource].
type SecretFunc func(ctx context.Context) (string, error)

// Secret calls f(ctx).
func (f SecretFunc) Secret(ctx context.Context) (string, error) { return f(ctx) }

// redacted is what every formatting of a secret-holding value prints.
const redacted = "REDACTED"

// StaticSecret returns a [SecretSource] that always answers secret. The
// value never shows under any fmt verb or in slog output: it prints as
// knotclient.StaticSecret(REDACTED), and the secret is held behind a
// pointer, so even a struct printed without calling its methods (a field
// reached through unexported fields) shows an address only.
func StaticSecret(secret string) SecretSource { return staticSecret{p: &secret} }

type staticSecret struct{ p *string }

// Secret returns the fixed secret.
func (s staticSecret) Secret(context.Context) (string, error) {
	if s.p == nil || *s.p == "" {
		return "", errors.New("knotclient: static secret is empty")
	}
	return *s.p, nil
}

// String hides the secret.
func (staticSecret) String() string { return "knotclient.StaticSecret(" + redacted + ")" }

// GoString hides the secret from %#v.
func (s staticSecret) GoString() string { return s.String() }

// Format hides the secret under every verb (%x and %d included).
func (s staticSecret) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, s.String()) }

// LogValue hides the secret from slog handlers.
func (staticSecret) LogValue() slog.Value { return slog.StringValue(redacted) }

package provider_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/internal/pkitest"
	"github.com/knotmtls/knotmtls/provider"
)

// TestNoKeyUnderAnyVerb: a Bundle, a *Bundle, a Status and a *Provider
// print no private key material under any fmt verb, either slog handler or
// encoding/json. The marker is the key's private exponent, in decimal and
// hex, and its PEM body.
func TestNoKeyUnderAnyVerb(t *testing.T) {
	key := pkitest.CachedRSAKey(2048, 0)
	b := newIssuer().valid(t)
	require.Same(t, key, b.Key)
	p := newProvider(t, provider.Static(b))
	_, err := p.Bundle(context.Background())
	require.NoError(t, err)
	st := p.Status()

	markers := []string{key.D.String()[:24], fmt.Sprintf("%x", key.D)[:24], fmt.Sprintf("%X", key.D)[:24], key.Primes[0].String()[:24]}
	pemBody := strings.Split(string(pkitest.KeyPEM(key)), "\n")[3]
	markers = append(markers, pemBody)

	values := map[string]any{"Bundle": *b, "*Bundle": b, "Status": st, "*Status": &st, "*Provider": p}
	for name, v := range values {
		var outs []string
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			outs = append(outs, fmt.Sprintf(verb, v))
		}
		for _, h := range []func(*bytes.Buffer) slog.Handler{
			func(w *bytes.Buffer) slog.Handler { return slog.NewTextHandler(w, nil) },
			func(w *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(w, nil) },
		} {
			var buf bytes.Buffer
			slog.New(h(&buf)).Info("x", "v", v)
			outs = append(outs, buf.String())
		}
		if j, err := json.Marshal(v); err == nil {
			outs = append(outs, string(j))
		}
		for _, out := range outs {
			for _, m := range markers {
				require.NotContains(t, out, m, "%s leaks key material", name)
			}
		}
	}
	assert.Equal(t, p.String(), fmt.Sprintf("%#v", p))
	assert.Contains(t, p.String(), provider.SerialHex(b.Leaf()))
	j, err := json.Marshal(b)
	require.NoError(t, err)
	assert.Contains(t, string(j), provider.SerialHex(b.Leaf()))
}

package vaultsource_test

import (
	"testing"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

func newClient(t *testing.T) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = "http://127.0.0.1:1" // never dialled: constructors do no I/O
	c, err := api.NewClient(cfg)
	require.NoError(t, err)
	return c
}

func TestConstructorsValidate(t *testing.T) {
	c := newClient(t)
	tests := []struct {
		name string
		make func() error
	}{
		{"kv nil client", func() error { _, err := vaultsource.NewKV(nil, "secret", "p"); return err }},
		{"kv empty mount", func() error { _, err := vaultsource.NewKV(c, " / ", "p"); return err }},
		{"kv empty path", func() error { _, err := vaultsource.NewKV(c, "secret", ""); return err }},
		{"kv dot-dot path", func() error { _, err := vaultsource.NewKV(c, "secret", "../sys/x"); return err }},
		{"kv query in path", func() error { _, err := vaultsource.NewKV(c, "secret", "p?version=1"); return err }},
		{"kv bad version", func() error { _, err := vaultsource.NewKV(c, "secret", "p", vaultsource.WithKVVersion(0)); return err }},
		{"transit nil client", func() error { _, err := vaultsource.NewTransit(nil, "transit", "k"); return err }},
		{"transit empty key", func() error { _, err := vaultsource.NewTransit(c, "transit", ""); return err }},
		{"transit key with slash", func() error { _, err := vaultsource.NewTransit(c, "transit", "a/b"); return err }},
		{"transit bad pin", func() error {
			_, err := vaultsource.NewTransit(c, "transit", "k", vaultsource.WithKeyVersion(-1))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorIs(t, tt.make(), vaultsource.ErrInvalidArgument)
		})
	}
}

func TestSourcesImplementProviderInterfaces(t *testing.T) {
	c := newClient(t)
	kv, err := vaultsource.NewKV(c, "secret", "knot/client", vaultsource.WithFields(vaultsource.Fields{PrivateKey: "key"}))
	require.NoError(t, err)
	tr, err := vaultsource.NewTransit(c, "transit", "knot")
	require.NoError(t, err)
	for _, src := range []provider.CertificateSource{kv, tr} {
		_, ok := src.(provider.Versioner)
		assert.True(t, ok, "%s offers cheap version checks", src)
		_, ok = src.(provider.Watcher)
		assert.False(t, ok, "%s has no push notifications; the Provider polls", src)
	}
	assert.Equal(t, "vault kv-v2 secret/knot/client", kv.String())
	assert.Equal(t, "vault transit transit/keys/knot", tr.String())
}

func TestProvisionRejectsBadClientIDBeforeIO(t *testing.T) {
	c := newClient(t)
	_, err := vaultsource.ProvisionKV(t.Context(), c, "secret", "knot", "", vaultsource.ProvisionNew)
	assert.ErrorIs(t, err, vaultsource.ErrInvalidArgument)
	_, err = vaultsource.ProvisionTransit(t.Context(), c, "transit", "knot", "two words", vaultsource.ProvisionRotate)
	assert.ErrorIs(t, err, vaultsource.ErrInvalidArgument)
	_, err = vaultsource.ProvisionKV(t.Context(), c, "secret", "knot", "id", vaultsource.Mode(42))
	assert.ErrorIs(t, err, vaultsource.ErrInvalidArgument, "an unknown mode is refused before I/O")
}

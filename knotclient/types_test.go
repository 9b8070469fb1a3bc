package knotclient_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient"
)

func TestTimestamp(t *testing.T) {
	tests := []struct {
		in      string
		want    knotclient.Timestamp
		wantErr bool
	}{
		{`1710864923198`, 1710864923198, false},
		{`"1710864923198"`, 1710864923198, false},
		{`" 1710864923198 "`, 1710864923198, false},
		{`1.710864923198e12`, 1710864923198, false},
		{`null`, 0, false},
		{`""`, 0, false},
		{`"soon"`, 0, true},
		{`true`, 0, true},
	}
	for _, tt := range tests {
		var ts knotclient.Timestamp
		err := json.Unmarshal([]byte(tt.in), &ts)
		if tt.wantErr {
			assert.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, ts, tt.in)
	}
	assert.True(t, knotclient.Timestamp(0).Time().IsZero())
	assert.Equal(t, time.Date(2024, 3, 19, 16, 15, 23, 198e6, time.UTC), knotclient.Timestamp(1710864923198).Time().UTC())
	out, err := json.Marshal(knotclient.Timestamp(5))
	require.NoError(t, err)
	assert.Equal(t, "5", string(out))
}

func TestDateTime(t *testing.T) {
	tests := map[string]time.Time{
		"2024-11-10T00:00:00+00:00":   time.Date(2024, 11, 10, 0, 0, 0, 0, time.UTC),
		"2025-10-23T17:00:00Z":        time.Date(2025, 10, 23, 17, 0, 0, 0, time.UTC),
		"2025-10-23T17:00:00.123456Z": time.Date(2025, 10, 23, 17, 0, 0, 123456000, time.UTC),
		"2025-10-23T17:00:00-05:00":   time.Date(2025, 10, 23, 22, 0, 0, 0, time.UTC),
		"2025-10-23T17:00:00":         time.Date(2025, 10, 23, 17, 0, 0, 0, time.UTC),
		"2026-02-10":                  time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC),
	}
	for in, want := range tests {
		got, err := knotclient.DateTime(in).Time()
		require.NoError(t, err, in)
		assert.True(t, want.Equal(got), "%s: got %s", in, got)
	}
	_, err := knotclient.DateTime("next tuesday").Time()
	assert.Error(t, err)
}

// TestJWKPublicKey: a sound RSA-2048 key decodes; keys that are malformed
// or too weak to encrypt card data to are refused.
func TestJWKPublicKey(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	b64 := base64.RawURLEncoding.EncodeToString
	n2048, n1024 := b64(key.N.Bytes()), b64(small.N.Bytes())

	good := knotclient.JWK{Kty: "RSA", Alg: "RSA-OAEP-256", Use: "enc", N: n2048, E: "AQAB"}
	pub, err := good.PublicKey()
	require.NoError(t, err)
	assert.True(t, key.PublicKey.Equal(pub))
	noUse := good
	noUse.Use = ""
	_, err = noUse.PublicKey()
	assert.NoError(t, err, "use is optional")

	for name, k := range map[string]knotclient.JWK{
		"not RSA":          {Kty: "EC", N: n2048, E: "AQAB"},
		"signing key":      {Kty: "RSA", Use: "sig", N: n2048, E: "AQAB"},
		"bad modulus":      {Kty: "RSA", N: "!!", E: "AQAB"},
		"1024-bit modulus": {Kty: "RSA", N: n1024, E: "AQAB"},
		"tiny modulus":     {Kty: "RSA", N: "AQAB", E: "AQAB"},
		"no exponent":      {Kty: "RSA", N: n2048, E: ""},
		"exponent 1":       {Kty: "RSA", N: n2048, E: "AQ"},
		"even exponent":    {Kty: "RSA", N: n2048, E: "BA"},
		"huge exponent":    {Kty: "RSA", N: n2048, E: "AQABAQAB"},
	} {
		_, err := k.PublicKey()
		assert.Error(t, err, name)
	}
}

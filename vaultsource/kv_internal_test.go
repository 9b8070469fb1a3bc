package vaultsource

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/internal/pkitest"
	"github.com/knotmtls/knotmtls/provider"
)

// fakeSecret looks like a PEM key to a reader but holds no key.
var fakeSecret = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("TOP-SECRET-BYTES")}))

func TestConfigDefaults(t *testing.T) {
	c, err := newKVConfig(nil)
	require.NoError(t, err)
	assert.Equal(t, DefaultFields, c.fields)
	assert.Equal(t, Fields{Certificate: "certificate", PrivateKey: "private_key", Chain: "ca_chain", PendingPrivateKey: "pending_private_key"}, c.fields)
	assert.Equal(t, 2, c.kvVersion)
	assert.False(t, c.noMetadata)
	assert.Nil(t, c.auth)
	tc, err := newTransitConfig(nil)
	require.NoError(t, err)
	assert.Equal(t, 5*time.Second, tc.signTimeout, "a signature fails within 5 s by default")
	assert.LessOrEqual(t, DefaultSignTimeout, 5*time.Second)
	assert.Zero(t, tc.keyVersion)

	auth := denyAll{}
	c, err = newKVConfig([]KVOption{WithFields(Fields{PrivateKey: "key"}), WithKVVersion(1), WithoutMetadata(), WithAuth(auth), nil})
	require.NoError(t, err)
	assert.Equal(t, Fields{Certificate: "certificate", PrivateKey: "key", Chain: "ca_chain", PendingPrivateKey: "pending_private_key"}, c.fields)
	assert.Equal(t, 1, c.kvVersion)
	assert.True(t, c.noMetadata)
	assert.Equal(t, auth, c.auth)

	tc, err = newTransitConfig([]TransitOption{WithKeyVersion(3), WithSignTimeout(time.Second), WithAuth(auth), nil})
	require.NoError(t, err)
	assert.Equal(t, 3, tc.keyVersion)
	assert.Equal(t, time.Second, tc.signTimeout)
	assert.Equal(t, auth, tc.auth)
}

// denyAll is an Auth that never lets a request be retried.
type denyAll struct{}

func (denyAll) HandleDenied(context.Context, string, string, bool) error { return errors.New("no") }

func TestConfigRejects(t *testing.T) {
	for name, o := range map[string]KVOption{
		"kv version 3":       WithKVVersion(3),
		"duplicate field":    WithFields(Fields{Certificate: "private_key"}),
		"duplicate pending":  WithFields(Fields{PendingPrivateKey: "ca_chain"}),
		"all the same field": WithFields(Fields{Certificate: "x", PrivateKey: "x", Chain: "x", PendingPrivateKey: "x"}),
		"nil auth":           WithAuth(nil),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := newKVConfig([]KVOption{o})
			assert.ErrorIs(t, err, ErrInvalidArgument)
		})
	}
	for name, o := range map[string]TransitOption{
		"key version 0":     WithKeyVersion(0),
		"zero sign timeout": WithSignTimeout(0),
		"nil auth":          WithAuth(nil),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := newTransitConfig([]TransitOption{o})
			assert.ErrorIs(t, err, ErrInvalidArgument)
		})
	}
}

func TestTextField(t *testing.T) {
	data := map[string]any{
		"cert":      "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		"list":      []any{"PEM-A\n", "  PEM-B"},
		"empty":     "  \n",
		"null":      nil,
		"number":    json.Number("42"),
		"object":    map[string]any{"k": fakeSecret},
		"bool":      true,
		"bad_list":  []any{"PEM-A", json.Number("7")},
		"secretnum": []any{fakeSecret, map[string]any{}},
	}
	got, err := textField(data, "cert", true, "secret/data/x")
	require.NoError(t, err)
	assert.Equal(t, data["cert"], got)

	got, err = textField(data, "list", true, "secret/data/x")
	require.NoError(t, err)
	assert.Equal(t, "PEM-A\nPEM-B", got)

	got, err = textField(data, "absent", false, "secret/data/x")
	require.NoError(t, err, "an optional field may be absent")
	assert.Empty(t, got)

	tests := []struct {
		field string
		want  error
		about string
	}{
		{"absent", ErrMissingField, "no such field"},
		{"null", ErrMissingField, "no such field"},
		{"empty", ErrMissingField, "empty"},
		{"number", ErrFieldType, "a number"},
		{"object", ErrFieldType, "an object"},
		{"bool", ErrFieldType, "a boolean"},
		{"bad_list", ErrFieldType, "list item 1 is a number"},
		{"secretnum", ErrFieldType, "list item 1 is an object"},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			_, err := textField(data, tt.field, true, "secret/data/x")
			require.ErrorIs(t, err, tt.want)
			var e *Error
			require.True(t, errors.As(err, &e))
			assert.Equal(t, tt.field, e.Field)
			assert.Equal(t, "secret/data/x", e.Path)
			assert.Contains(t, err.Error(), tt.about)
			assert.NotContains(t, err.Error(), "TOP-SECRET", "values never appear in errors")
			assert.NotContains(t, err.Error(), "42")
		})
	}
}

func TestHashFields(t *testing.T) {
	a := hashFields("cert", "chain", "key")
	assert.True(t, strings.HasPrefix(a, "sha256:"))
	assert.Len(t, a, len("sha256:")+32)
	assert.Equal(t, a, hashFields("cert", "chain", "key"), "deterministic")
	assert.NotEqual(t, a, hashFields("cert", "chain", "key2"), "a new key is a new version")
	assert.NotEqual(t, a, hashFields("cert2", "chain", "key"))
	assert.NotEqual(t, hashFields("ab", "c", ""), hashFields("a", "bc", ""), "field boundaries count")
	assert.NotContains(t, hashFields(fakeSecret), "SECRET")
}

func TestDeletedNow(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		meta map[string]any
		want string
	}{
		{"no metadata", nil, ""},
		{"live", map[string]any{"deletion_time": "", "destroyed": false}, ""},
		{"destroyed", map[string]any{"deletion_time": "", "destroyed": true}, "version 4 is destroyed"},
		{"deleted", map[string]any{"deletion_time": "2026-01-01T00:00:00.123Z", "destroyed": false}, "version 4 was deleted at 2026-01-01T00:00:00.123Z"},
		{"scheduled deletion", map[string]any{"deletion_time": "2026-02-01T00:00:00Z", "destroyed": false}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, deletedNow(tt.meta, 4, now))
		})
	}
}

func TestIntField(t *testing.T) {
	data := map[string]any{"n": json.Number("7"), "f": 3.0, "i": 2, "s": "5", "bad": "x", "obj": map[string]any{}}
	for k, want := range map[string]int{"n": 7, "f": 3, "i": 2, "s": 5} {
		got, ok := intField(data, k)
		assert.True(t, ok, k)
		assert.Equal(t, want, got, k)
	}
	for _, k := range []string{"bad", "obj", "absent"} {
		_, ok := intField(data, k)
		assert.False(t, ok, k)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name   string
		status int
		msgs   []string
		req    request
		want   error
		detail string
	}{
		{"forbidden", 403, []string{"permission denied"}, request{op: "read", path: "secret/data/x", capability: "read"},
			ErrPermissionDenied, `the token needs the "read" capability on secret/data/x`},
		{"no mount", 404, []string{`no handler for route "nope/data/x". route entry not found.`}, request{path: "nope/data/x"},
			ErrMountNotFound, "no secrets engine"},
		{"kv not found", 404, nil, request{path: "secret/data/x"}, ErrSecretNotFound, ""},
		{"transit not found", 404, nil, request{path: "transit/keys/k", notFound: ErrKeyNotFound}, ErrKeyNotFound, ""},
		{"cas", 400, []string{"check-and-set parameter did not match the current version"}, request{}, ErrConflict, "nothing was written"},
		{"sealed", 503, []string{"Vault is sealed"}, request{}, ErrSealed, ""},
		{"sealed is unavailable", 503, []string{"Vault is sealed"}, request{}, ErrUnavailable, ""},
		{"no active node", 503, []string{"no active Vault instance found"}, request{}, ErrUnavailable, ""},
		{"standby", 500, []string{"local node not active but active cluster node not found"}, request{}, ErrUnavailable, ""},
		{"server error", 500, []string{"internal error"}, request{}, ErrUnavailable, ""},
		{"rate limited", 429, nil, request{}, ErrRateLimited, ""},
		{"rate limited is unavailable", 429, nil, request{}, ErrUnavailable, ""},
		{"invalid token", 403, []string{"permission denied", "invalid token"}, request{path: "p", capability: "read"}, ErrInvalidToken, `"read" capability`},
		{"invalid token is denied", 403, []string{"invalid token"}, request{}, ErrPermissionDenied, ""},
		{"bad request", 400, []string{"invalid key version"}, request{}, ErrRejected, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cause := &api.ResponseError{HTTPMethod: http.MethodGet, StatusCode: tt.status, Errors: tt.msgs}
			e := classify(tt.req, tt.status, tt.msgs, cause)
			assert.ErrorIs(t, e, tt.want)
			assert.Equal(t, tt.status, e.Status)
			assert.Contains(t, e.Detail, tt.detail)
			var re *api.ResponseError
			require.ErrorAs(t, e, &re, "the Vault error stays reachable")
			assert.Equal(t, tt.status, re.StatusCode)
		})
	}
}

func TestErrorFormat(t *testing.T) {
	e := &Error{Op: "read", Path: "secret/data/knot", Field: "private_key", Err: ErrPermissionDenied,
		Detail: "the token needs the \"read\" capability on secret/data/knot",
		Cause:  &api.ResponseError{StatusCode: 403, Errors: []string{"1 error occurred:\n\t* permission denied\n\n"}}}
	msg := e.Error()
	assert.Equal(t, `vaultsource: read secret/data/knot field "private_key": permission denied: the token needs the "read" capability on secret/data/knot (vault responded 403: 1 error occurred: * permission denied)`, msg)
	assert.NotContains(t, msg, "\n")

	raw := &Error{Op: "read", Path: "p", Err: ErrUnavailable, Cause: &api.ResponseError{StatusCode: 502, RawError: true, Errors: []string{"<html>" + fakeSecret}}}
	assert.Equal(t, "vaultsource: read p: vault unavailable (vault responded 502)", raw.Error(), "a non-JSON body is not echoed")

	// PEM problems come through as provider sentinels.
	_, perr := provider.ParsePrivateKey([]byte("garbage"))
	wrapped := &Error{Op: "parse", Path: "secret/data/knot", Field: "private_key", Err: perr}
	assert.ErrorIs(t, wrapped, provider.ErrNotPEM)
	var ce *provider.CheckError
	assert.ErrorAs(t, wrapped, &ce)
	assert.Contains(t, wrapped.Error(), `field "private_key": provider: not PEM data`)
}

func TestKVPaths(t *testing.T) {
	client, err := api.NewClient(api.DefaultConfig())
	require.NoError(t, err)
	v2, err := NewKV(client, "/secret/", "/knot/client/")
	require.NoError(t, err)
	assert.Equal(t, "secret/data/knot/client", v2.dataPath())
	assert.Equal(t, "secret/metadata/knot/client", v2.metadataPath())
	assert.Equal(t, "vault kv-v2 secret/knot/client", v2.String())

	v1, err := NewKV(client, "kv", "team/knot", WithKVVersion(1))
	require.NoError(t, err)
	assert.Equal(t, "kv/team/knot", v1.dataPath())
	assert.Equal(t, "vault kv-v1 kv/team/knot", v1.String())
}

func TestKVBundleFromFields(t *testing.T) {
	ca := pkitest.NewCA("knot test ca")
	key := pkitest.CachedRSAKey(2048, 0)
	other := pkitest.CachedRSAKey(2048, 1)
	leaf := ca.Issue(pkitest.Leaf{CN: "client-1", Key: key})
	client, err := api.NewClient(api.DefaultConfig())
	require.NoError(t, err)
	kv, err := NewKV(client, "secret", "knot")
	require.NoError(t, err)

	good := map[string]any{
		"certificate": string(pkitest.CertPEM(leaf)),
		"ca_chain":    []any{string(pkitest.CertPEM(ca.Cert))},
		"private_key": string(pkitest.KeyPEM(key)),
	}
	b, err := kv.bundle(kvSecret{data: good, exists: true, version: 7})
	require.NoError(t, err)
	assert.Equal(t, "7", b.Version)
	require.Len(t, b.Chain, 2)
	assert.True(t, b.Chain[1].Equal(ca.Cert))
	assert.Equal(t, leaf.NotAfter, b.NotAfter)

	with := func(field string, v any) map[string]any {
		m := map[string]any{}
		for k, x := range good {
			m[k] = x
		}
		if v == nil {
			delete(m, field)
		} else {
			m[field] = v
		}
		return m
	}
	tests := []struct {
		name  string
		data  map[string]any
		want  error
		field string
	}{
		{"missing certificate", with("certificate", nil), ErrMissingField, "certificate"},
		{"missing key", with("private_key", nil), ErrMissingField, "private_key"},
		{"key is a number", with("private_key", json.Number("1")), ErrFieldType, "private_key"},
		{"garbage certificate", with("certificate", "garbage"), provider.ErrNotPEM, "certificate"},
		{"truncated chain", with("ca_chain", "-----BEGIN CERTIFICATE-----\nAAAA"), provider.ErrTruncatedPEM, "ca_chain"},
		{"mismatched pair", with("private_key", string(pkitest.KeyPEM(other))), provider.ErrKeyMismatch, "private_key"},
		{"key in certificate field", with("certificate", string(pkitest.KeyPEM(key))), provider.ErrUnexpectedPEMType, "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kv.bundle(kvSecret{data: tt.data, exists: true, version: 8})
			require.ErrorIs(t, err, tt.want)
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tt.field, e.Field)
			for _, line := range strings.Split(string(pkitest.KeyPEM(key)), "\n")[1:3] {
				assert.NotContains(t, err.Error(), line, "no key bytes in errors")
			}
		})
	}

	v1, err := NewKV(client, "kv", "knot", WithKVVersion(1))
	require.NoError(t, err)
	b1, err := v1.bundle(kvSecret{data: good, exists: true})
	require.NoError(t, err)
	h, err := v1.hashVersion(good)
	require.NoError(t, err)
	assert.Equal(t, h, b1.Version, "KV v1 Fetch and Version agree")
}

package vaultsource

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDescribeKVSecret(t *testing.T) {
	full := map[string]any{"private_key": fakeSecret, "certificate": "CERT", "ca_chain": "CHAIN"}
	staged := map[string]any{"private_key": fakeSecret, "certificate": "CERT", "pending_private_key": fakeSecret}
	for _, tc := range []struct {
		name      string
		s         kvSecret
		kvVersion int
		want      KVDescription
	}{
		{"nothing stored", kvSecret{}, 2, KVDescription{}},
		{"served, no rotation", kvSecret{data: full, exists: true, version: 3}, 2,
			KVDescription{Exists: true, Version: 3, HasPrivateKey: true, HasCertificate: true, HasChain: true}},
		{"rotation staged", kvSecret{data: staged, exists: true, version: 4}, 2,
			KVDescription{Exists: true, Version: 4, HasPrivateKey: true, HasCertificate: true, Pending: true}},
		{"blank pending field", kvSecret{data: map[string]any{"private_key": fakeSecret, "pending_private_key": " \n"}, exists: true, version: 1}, 2,
			KVDescription{Exists: true, Version: 1, HasPrivateKey: true}},
		{"kv v1 has no version", kvSecret{data: staged, exists: true}, 1,
			KVDescription{Exists: true, HasPrivateKey: true, HasCertificate: true, Pending: true}},
		{"deleted latest version", kvSecret{exists: true, version: 5, deleted: "version 5 is destroyed"}, 2,
			KVDescription{Exists: true, Version: 5, Deleted: "version 5 is destroyed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := describeKVSecret(tc.s, DefaultFields, tc.kvVersion)
			assert.Equal(t, tc.want, got)
			assert.NotContains(t, fmt.Sprintf("%+v", got), "TOP-SECRET", "a description holds no key bytes")
		})
	}
}

func TestDescribeTransitKey(t *testing.T) {
	for _, tc := range []struct {
		name      string
		versions  map[string]map[string]any
		certified []int
		pending   bool
	}{
		{"new key, no certificate", map[string]map[string]any{"1": {"public_key": "PUB1"}}, nil, false},
		{"one certified version", map[string]map[string]any{"1": {"public_key": "PUB1", "certificate_chain": "C1"}}, []int{1}, false},
		{"rotation waits for its certificate", map[string]map[string]any{
			"1": {"public_key": "PUB1", "certificate_chain": "C1"}, "2": {"public_key": "PUB2"}}, []int{1}, true},
		{"old version certified after the new one", map[string]map[string]any{
			"1": {"public_key": "PUB1", "certificate_chain": "C1"}, "2": {"public_key": "PUB2", "certificate_chain": "C2"},
			"3": {"public_key": "PUB3", "certificate_chain": " "}}, []int{1, 2}, true},
		{"latest certified", map[string]map[string]any{
			"1": {"public_key": "PUB1"}, "2": {"public_key": "PUB2", "certificate_chain": "C2"}}, []int{2}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := parseTransitKey(keyResponse(t, "rsa-2048", tc.versions), "transit/keys/k")
			require.NoError(t, err)
			d := describeTransitKey(k)
			assert.True(t, d.Exists)
			assert.Equal(t, "rsa-2048", d.Type)
			assert.Equal(t, len(tc.versions), d.LatestVersion)
			assert.Len(t, d.Versions, len(tc.versions))
			assert.IsIncreasing(t, d.Versions)
			assert.Equal(t, tc.certified, d.CertifiedVersions)
			assert.Equal(t, tc.pending, d.Pending)
		})
	}
}

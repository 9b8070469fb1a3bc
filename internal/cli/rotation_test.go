package cli_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/internal/cli"
)

func TestRotationInfoString(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    cli.RotationInfo
		want string
	}{
		{"kv idle", cli.RotationInfo{SecretVersion: 3}, "none (secret version 3)"},
		{"kv v1 idle", cli.RotationInfo{}, "none"},
		{"kv staged", cli.RotationInfo{Pending: true, SecretVersion: 4, PendingField: "pending_private_key"},
			"in progress (a new key is staged in pending_private_key until its certificate is imported; secret version 4)"},
		{"transit idle", cli.RotationInfo{LatestKeyVersion: 2, CertifiedKeyVersions: []int{1, 2}},
			"none (latest key version 2; versions with a certificate: 1, 2)"},
		{"transit new key", cli.RotationInfo{LatestKeyVersion: 1},
			"none (latest key version 1; versions with a certificate: none)"},
		{"transit rotating", cli.RotationInfo{Pending: true, LatestKeyVersion: 3, CertifiedKeyVersions: []int{1, 2}},
			"in progress (key version 3 waits for its certificate; versions with a certificate: 1, 2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.r.String())
		})
	}
}

func TestRotationInfoJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    cli.RotationInfo
		want string
	}{
		{"kv", cli.RotationInfo{Pending: true, SecretVersion: 4, PendingField: "pending_private_key"},
			`{"pending":true,"secret_version":4,"pending_field":"pending_private_key"}`},
		{"kv idle keeps pending", cli.RotationInfo{SecretVersion: 2}, `{"pending":false,"secret_version":2}`},
		{"transit", cli.RotationInfo{LatestKeyVersion: 2, CertifiedKeyVersions: []int{1}, Pending: true},
			`{"pending":true,"latest_key_version":2,"certified_key_versions":[1]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.r)
			require.NoError(t, err)
			assert.JSONEq(t, tc.want, string(b))
		})
	}
}

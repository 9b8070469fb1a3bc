package vaultsource_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// TestErrorClass: a Vault failure reaches provider.ErrorClass (and so
// Status.Health and metric labels) as its own bounded class, through any
// wrapping; a sealed Vault says "sealed", a quota "rate_limited".
func TestErrorClass(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{vaultsource.ErrSealed, provider.ClassSealed},
		{vaultsource.ErrRateLimited, provider.ClassRateLimited},
		{vaultsource.ErrUnavailable, provider.ClassUnavailable},
		{vaultsource.ErrPermissionDenied, provider.ClassPermission},
		{vaultsource.ErrInvalidToken, provider.ClassPermission},
		{vaultsource.ErrSecretNotFound, provider.ClassNotFound},
		{vaultsource.ErrKeyNotFound, provider.ClassNotFound},
		{vaultsource.ErrVersionDeleted, provider.ClassNotFound},
		{vaultsource.ErrMissingField, provider.ClassInvalidBundle},
		{vaultsource.ErrNoCertificateChain, provider.ClassInvalidBundle},
		{&provider.CheckError{Err: provider.ErrKeyMismatch}, provider.ClassInvalidBundle},
		{vaultsource.ErrRejected, provider.ClassUnavailable}, // provider's default
	} {
		e := &vaultsource.Error{Op: "read", Path: "secret/data/knot/x", Err: tc.err}
		assert.Equal(t, tc.want, provider.ErrorClass(e), "%v", tc.err)
		assert.Equal(t, tc.want, provider.ErrorClass(fmt.Errorf("provider: refresh: %w", e)), "wrapped %v", tc.err)
	}
}

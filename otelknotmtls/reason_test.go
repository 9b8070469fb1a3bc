package otelknotmtls_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/knotmtls/knotmtls/otelknotmtls"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// TestReason pins the reason attribute of each failure: the Vault cases,
// the Transit signature cases and provider's own classes, all within
// Reasons.
func TestReason(t *testing.T) {
	vault := func(err error) error {
		return fmt.Errorf("provider: fetch: %w", &vaultsource.Error{Op: "read", Path: "secret/data/knot", Err: err})
	}
	tests := []struct {
		err  error
		want string
	}{
		{vault(vaultsource.ErrSealed), "sealed"},
		{vault(vaultsource.ErrRateLimited), "rate_limited"},
		{vault(vaultsource.ErrUnavailable), "unavailable"},
		{&vaultsource.Error{Op: "sign", Err: vaultsource.ErrUnavailable, Cause: context.DeadlineExceeded}, "unavailable"},
		{vault(vaultsource.ErrPermissionDenied), "permission_denied"},
		{vault(vaultsource.ErrInvalidToken), "permission_denied"},
		{vault(vaultsource.ErrSecretNotFound), "not_found"},
		{vault(vaultsource.ErrKeyNotFound), "not_found"},
		{vault(vaultsource.ErrMissingField), "invalid_bundle"},
		{vault(vaultsource.ErrNoCertificateChain), "invalid_bundle"},
		{vault(vaultsource.ErrBadSignature), "bad_signature"},
		{vault(vaultsource.ErrUnsupportedSignature), "unsupported"},
		{&provider.CheckError{Err: provider.ErrSubjectCN}, "invalid_bundle"},
		{fmt.Errorf("provider: %w", provider.ErrExpired), "expired"},
		{fmt.Errorf("fetch: %w", context.DeadlineExceeded), "timeout"},
		{errors.New("connection refused"), "unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			got := otelknotmtls.Reason(tt.err)
			assert.Equal(t, tt.want, got)
			assert.Contains(t, otelknotmtls.Reasons, got)
		})
	}
	assert.Empty(t, otelknotmtls.Reason(nil))
}

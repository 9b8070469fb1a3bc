package vaultresp

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		status int
		msgs   []string
		want   Class
	}{
		{0, nil, Unavailable},
		{200, nil, OK},
		{204, nil, OK},
		{403, []string{"permission denied"}, PermissionDenied},
		{403, []string{"2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"}, InvalidToken},
		{404, nil, NotFound},
		{429, nil, RateLimited},
		{503, []string{"Vault is sealed"}, Sealed},
		{503, []string{"no active Vault instance found"}, Unavailable},
		{500, []string{"local node not active but active cluster node not found"}, Unavailable},
		{412, nil, Unavailable},
		{400, []string{"invalid key version"}, Rejected},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Classify(tt.status, tt.msgs), "%d %v", tt.status, tt.msgs)
	}
	assert.Equal(t, Unavailable, ClassifyError(context.DeadlineExceeded))
	assert.Equal(t, OK, ClassifyError(nil))
	assert.Equal(t, Sealed, ClassifyError(&api.ResponseError{StatusCode: 503, Errors: []string{"Vault is sealed"}}))
	assert.Equal(t, "invalid token", InvalidToken.String())
}

func TestLookupSelfOffline(t *testing.T) {
	c, err := api.NewClient(&api.Config{Address: "http://127.0.0.1:1", MaxRetries: 0})
	require.NoError(t, err)
	c.SetToken("keep-me")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, class, err := LookupSelf(ctx, c, "other")
	require.Error(t, err)
	assert.Equal(t, Unavailable, class)
	assert.Equal(t, "keep-me", c.Token(), "the caller's client is not touched")
	assert.False(t, errors.Is(err, ErrTokenValid))
}

func TestNewBackoff(t *testing.T) {
	b := NewBackoff(time.Second, 4*time.Second, 0)
	var got []time.Duration
	for range 4 {
		got = append(got, b.NextBackOff())
	}
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}, got)
}

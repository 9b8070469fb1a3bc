package vaultsource

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoginBackoffSchedule(t *testing.T) {
	const (
		initial = time.Second
		limit   = 5 * time.Minute
	)
	tests := []struct {
		n    int
		want time.Duration
	}{
		{0, time.Second}, // defensive: treated like the first failure
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{4, 8 * time.Second},
		{5, 16 * time.Second},
		{6, 32 * time.Second},
		{7, 64 * time.Second},
		{8, 128 * time.Second},
		{9, 256 * time.Second},
		{10, limit},
		{11, limit},
		{1000, limit}, // no overflow
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("n=%d", tc.n), func(t *testing.T) {
			assert.Equal(t, tc.want, loginBackoff(tc.n, initial, limit, LoginBackoffJitter, 0), "n=%d no jitter", tc.n)
			// Jitter only shortens, by at most LoginBackoffJitter.
			for _, r := range []float64{0.25, 0.5, 0.999999} {
				got := loginBackoff(tc.n, initial, limit, LoginBackoffJitter, r)
				assert.LessOrEqual(t, got, tc.want, "n=%d r=%v", tc.n, r)
				assert.Greater(t, got, time.Duration(float64(tc.want)*(1-LoginBackoffJitter)), "n=%d r=%v", tc.n, r)
			}
		})
	}
}

func TestLoginBackoffShortSchedule(t *testing.T) {
	// The schedule tests use: 10ms doubling to 40ms.
	var got []time.Duration
	for n := 1; n <= 5; n++ {
		got = append(got, loginBackoff(n, 10*time.Millisecond, 40*time.Millisecond, 0, 0))
	}
	assert.Equal(t, []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond,
		40 * time.Millisecond, 40 * time.Millisecond}, got)
}

func TestReadTokenFile(t *testing.T) {
	const token = "hvs.CAESIExampleTokenValue0123456789"
	tests := []struct {
		name    string
		content string
		want    string
		errHas  string
		isEmpty bool
	}{
		{name: "plain", content: token, want: token},
		{name: "trailing newline", content: token + "\n", want: token},
		{name: "crlf and spaces", content: "  " + token + " \r\n", want: token},
		{name: "leading blank lines", content: "\n\n" + token, want: token},
		{name: "empty", content: "", errHas: "empty token", isEmpty: true},
		{name: "white space only", content: " \n\t\n", errHas: "empty token", isEmpty: true},
		{name: "two tokens", content: token + "\n" + token + "x\n", errHas: "not a token"},
		{name: "too large", content: strings.Repeat("a", maxTokenFileSize+1), errHas: "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token")
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			got, err := readTokenFile(path)
			if tc.errHas == "" {
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.errHas)
			assert.Contains(t, err.Error(), path, "the error names the file")
			assert.NotContains(t, err.Error(), token, "the error never holds the content")
			assert.Equal(t, tc.isEmpty, errors.Is(err, ErrEmptyToken))
		})
	}

	t.Run("missing file", func(t *testing.T) {
		_, err := readTokenFile(filepath.Join(t.TempDir(), "absent"))
		require.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("no path", func(t *testing.T) {
		_, err := readTokenFile("")
		require.ErrorContains(t, err, "no path")
	})
}

func TestTokenFileDiffers(t *testing.T) {
	f := &TokenFile{}
	assert.False(t, f.differs("a"), "first token seen is the baseline")
	assert.False(t, f.differs("a"))
	assert.True(t, f.differs("b"))
	f.remember("b") // a login read it
	assert.False(t, f.differs("b"))
	assert.True(t, f.differs("a"))
}

func TestExpiryGuard(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		at   time.Time
		ttl  time.Duration
		want time.Duration
	}{
		{"a tenth of a long TTL", now, time.Hour, 54 * time.Minute},
		{"a tenth of 20s", now, 20 * time.Second, 18 * time.Second},
		{"at least a second", now, 4 * time.Second, 3 * time.Second},
		{"counted from the renewal", now.Add(-2 * time.Second), 4 * time.Second, time.Second},
		{"a second or less left: now", now, time.Second, 0},
		{"already past: now", now.Add(-time.Minute), 10 * time.Second, -51 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// expiryGuard counts from its own clock reading, which is
			// elapsed later than now: bound it exactly, whatever the load.
			got := expiryGuard(tc.at, tc.ttl)
			elapsed := time.Since(now)
			assert.LessOrEqual(t, got, tc.want)
			assert.GreaterOrEqual(t, got, tc.want-elapsed)
		})
	}
}

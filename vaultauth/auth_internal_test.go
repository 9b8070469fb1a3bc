package vaultauth

import (
	"errors"
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
	want := []time.Duration{
		time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
		32 * time.Second, 64 * time.Second, 128 * time.Second, 256 * time.Second, limit, limit,
	}
	a := &Auth{cfg: authConfig{initialBackoff: initial, maxBackoff: limit}}
	restore := jitter
	jitter = 0
	exact := a.newBackoff()
	jitter = restore
	jittered := a.newBackoff()
	for n, w := range want {
		assert.Equal(t, w, exact.NextBackOff(), "step %d without jitter", n+1)
		got := jittered.NextBackOff()
		assert.GreaterOrEqual(t, got, time.Duration(float64(w)*(1-Jitter)), "step %d", n+1)
		assert.LessOrEqual(t, got, time.Duration(float64(w)*(1+Jitter))+1, "step %d", n+1)
	}
	for range 1000 { // no overflow
		exact.NextBackOff()
	}
	assert.Equal(t, limit, exact.NextBackOff())
	exact.Reset()
	assert.Equal(t, initial, exact.NextBackOff(), "a success starts the schedule over")
}

func TestLoginBackoffShortSchedule(t *testing.T) {
	// The schedule the unit tests use: 10ms doubling to 40ms.
	a := &Auth{cfg: authConfig{initialBackoff: 10 * time.Millisecond, maxBackoff: 40 * time.Millisecond}}
	restore := jitter
	jitter = 0
	defer func() { jitter = restore }()
	b := a.newBackoff()
	var got []time.Duration
	for range 5 {
		got = append(got, b.NextBackOff())
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

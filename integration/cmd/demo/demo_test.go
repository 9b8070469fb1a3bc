package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDemoRun runs the demo's whole flow against a real Vault and knottest,
// with a short load, once per KV rotation mode: every step passes, the
// rotation under load has no failed call and Knot sees both serials, and
// no private key PEM appears in the output.
func TestDemoRun(t *testing.T) {
	for _, rotation := range []string{"rotate", "force"} {
		t.Run(rotation, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.Workers = 4
			cfg.LoadAfter = 200 * time.Millisecond
			cfg.Poll = 100 * time.Millisecond
			cfg.Rotation = rotation
			var out bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			code := run(ctx, cfg, &out)
			text := out.String()
			require.Equal(t, 0, code, text)
			assert.Contains(t, text, "all steps passed")
			assert.Contains(t, text, "rotate under load (csr --"+rotation+", sign, import)")
			assert.Regexp(t, regexp.MustCompile(`load: \d+ calls in .*, 0 failed`), text)
			assert.Regexp(t, regexp.MustCompile(`4 workers, \d+ calls, 0 failed; serials [0-9A-F]+… -> [0-9A-F]+…`), text)
			assert.Len(t, regexp.MustCompile(`(?m)^    Knot saw serial [0-9A-F]+ on \d+ requests$`).FindAllString(text, -1), 2)
			assert.Regexp(t, regexp.MustCompile(`(?m)^  15\s+knotmtls status --transit\s+ok`), text)
			assert.NotContains(t, text, "PRIVATE KEY")
		})
	}
}

// TestDemoRejectsBadConfig proves a bad configuration exits 2 before
// anything is started.
func TestDemoRejectsBadConfig(t *testing.T) {
	for _, cfg := range []config{
		{Workers: 8, Poll: time.Second, Rotation: "sideways"},
		{Workers: 0, Poll: time.Second, Rotation: "rotate"},
		{Workers: 8, Poll: 0, Rotation: "rotate"},
	} {
		var out bytes.Buffer
		assert.Equal(t, 2, run(context.Background(), cfg, &out), out.String())
	}
}

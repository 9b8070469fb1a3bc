package filesource_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/filesource"
)

// BenchmarkVersion measures the Provider's poll check, and reports it
// against two baselines timed in the same run: a Fetch (what the check
// saves when nothing changed) and a bare stat of the files (the cheapest
// check, which mtime granularity makes unreliable).
func BenchmarkVersion(b *testing.B) {
	f := newFiles(b, newRoot(b).newPair(b, keyA))
	src, err := filesource.New(f.cert, f.key)
	require.NoError(b, err)
	ctx := context.Background()

	for b.Loop() {
		if _, err := src.Version(ctx); err != nil {
			b.Fatal(err)
		}
	}
	perVersion := float64(b.Elapsed().Nanoseconds()) / float64(b.N)

	const rounds = 200
	start := time.Now()
	for range rounds {
		if _, err := src.Fetch(ctx); err != nil {
			b.Fatal(err)
		}
	}
	perFetch := float64(time.Since(start).Nanoseconds()) / rounds

	start = time.Now()
	for range rounds {
		for _, p := range []string{f.cert, f.key} {
			if _, err := os.Stat(p); err != nil {
				b.Fatal(err)
			}
		}
	}
	perStat := float64(time.Since(start).Nanoseconds()) / rounds

	b.ReportMetric(perFetch/perVersion, "fetch/version")
	b.ReportMetric(perVersion/perStat, "version/stat")
}

// BenchmarkFetch measures a full Fetch: two reads of both files, PEM and
// key parsing, and the pair check.
func BenchmarkFetch(b *testing.B) {
	f := newFiles(b, newRoot(b).newPair(b, keyA))
	src, err := filesource.New(f.cert, f.key)
	require.NoError(b, err)
	ctx := context.Background()
	for b.Loop() {
		if _, err := src.Fetch(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

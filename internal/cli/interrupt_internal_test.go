package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWriteFileAtomic: the file holds its old content or all of the new,
// with the mode asked for, and no temporary file is left behind, also when
// the write fails.
func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "knot.csr")
	require.NoError(t, os.WriteFile(name, []byte("old"), 0o600))
	require.NoError(t, writeFileAtomic(name, []byte("new content"), 0o644))
	b, err := os.ReadFile(name)
	require.NoError(t, err)
	assert.Equal(t, "new content", string(b))
	fi, err := os.Stat(name)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())

	// A rename onto a directory fails: the temporary file is removed.
	sub := filepath.Join(dir, "sub")
	require.NoError(t, os.MkdirAll(filepath.Join(sub, "x"), 0o755))
	require.Error(t, writeFileAtomic(sub, []byte("data"), 0o644))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"knot.csr", "sub"}, names, "no temporary file left")

	require.Error(t, writeFileAtomic(filepath.Join(dir, "missing", "knot.csr"), []byte("x"), 0o644))
}

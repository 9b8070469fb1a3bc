package filesource_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/knotmtls/knotmtls/filesource"
	"github.com/knotmtls/knotmtls/provider"
)

// runWatch runs src.Watch in a goroutine, counting changed calls. stop
// cancels it and returns Watch's error once it has returned.
func runWatch(t *testing.T, src *filesource.Source) (calls *atomic.Int32, stop func() error) {
	t.Helper()
	calls = new(atomic.Int32)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Watch(ctx, func() { calls.Add(1) }) }()
	var stopped bool
	var err error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case err = <-done:
			case <-time.After(waitFor):
				t.Fatal("Watch did not return after its context was cancelled")
			}
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return calls, stop
}

func TestWatchReturnsNilOnCancelAndLeavesNoGoroutine(t *testing.T) {
	f := newFiles(t, newRoot(t).newPair(t, keyA))
	calls, stop := runWatch(t, newSource(t, f))
	require.Eventually(t, func() bool { return calls.Load() == 1 }, waitFor, tick, "the initial check after the watches are set up")

	require.NoError(t, stop())
	goleak.VerifyNone(t)
}

func TestWatchMergesAPairIntoOneChange(t *testing.T) {
	ca := newRoot(t)
	a, b := ca.newPair(t, keyA), ca.newPair(t, keyB)
	f := newFiles(t, a)
	// A long window, so that the two writes below land in one batch even on
	// a busy machine.
	src := newSource(t, f, filesource.WithDebounce(time.Second))
	calls, stop := runWatch(t, src)
	require.Eventually(t, func() bool { return calls.Load() == 1 }, waitFor, tick)

	writeFile(t, f.cert, b.certPEM)
	writeFile(t, f.key, b.keyPEM)
	require.Eventually(t, func() bool { return calls.Load() == 2 }, waitFor, tick)
	require.NoError(t, stop())
	assert.Equal(t, int32(2), calls.Load(), "the certificate and key writes caused one change")

	bundle, err := src.Fetch(context.Background())
	require.NoError(t, err)
	assert.Equal(t, b.serial(), provider.SerialHex(bundle.Leaf()))
}

func TestWatchIgnoresEventsThatChangeNothing(t *testing.T) {
	ca := newRoot(t)
	a, b := ca.newPair(t, keyA), ca.newPair(t, keyB)
	f := newFiles(t, a)
	// Count the reads of the certificate file: each batch of events ends
	// with one version check, so a new read tells that a batch was handled.
	var certReads atomic.Int32
	reader := func(role, path string) ([]byte, error) {
		if role == "certificate" {
			certReads.Add(1)
		}
		return filesource.ReadFile(role, path)
	}
	// A long window, so that the three events below land in one batch.
	src := newSource(t, f, filesource.WithDebounce(200*time.Millisecond), filesource.WithFileReader(reader))
	calls, _ := runWatch(t, src)
	require.Eventually(t, func() bool { return calls.Load() == 1 }, waitFor, tick)
	before := certReads.Load()

	// Events with no change of content: a chmod, an identical rewrite, an
	// unrelated file in the same directory.
	require.NoError(t, os.Chmod(f.cert, 0o640))
	writeFile(t, f.key, a.keyPEM)
	writeFile(t, filepath.Join(f.dir, "unrelated.txt"), []byte("hello"))
	require.Eventually(t, func() bool { return certReads.Load() > before }, waitFor, tick, "the batch was never checked")
	assert.Equal(t, int32(1), calls.Load(), "the batch was checked and no change was reported")

	// A real change after them is reported, once: had the no-op batch been
	// reported, this would be the third call.
	replaceFile(t, f.cert, b.certPEM)
	replaceFile(t, f.key, b.keyPEM)
	require.Eventually(t, func() bool { return calls.Load() >= 2 }, waitFor, tick)
	assert.Equal(t, int32(2), calls.Load())
}

func TestWatchReportsFilesDisappearing(t *testing.T) {
	f := newFiles(t, newRoot(t).newPair(t, keyA))
	calls, _ := runWatch(t, newSource(t, f, filesource.WithDebounce(10*time.Millisecond)))
	require.Eventually(t, func() bool { return calls.Load() == 1 }, waitFor, tick)

	// The Provider must hear of it, so that its status shows the problem.
	require.NoError(t, os.Remove(f.key))
	require.Eventually(t, func() bool { return calls.Load() == 2 }, waitFor, tick)
}

func TestWatchErrors(t *testing.T) {
	injected := errors.New("inotify: too many instances")
	tests := []struct {
		name    string
		setup   func(t *testing.T, f files) []filesource.Option
		wantErr error
		wantMsg string
	}{
		{
			name: "watcher cannot be created",
			setup: func(*testing.T, files) []filesource.Option {
				return []filesource.Option{filesource.WithWatcherFactory(func() (*fsnotify.Watcher, error) { return nil, injected })}
			},
			wantErr: injected,
			wantMsg: "filesource: create file watcher: inotify: too many instances",
		},
		{
			name: "directory does not exist",
			setup: func(t *testing.T, f files) []filesource.Option {
				require.NoError(t, os.RemoveAll(f.dir))
				return nil
			},
			wantErr: fs.ErrNotExist,
			wantMsg: "filesource: watch directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFiles(t, newRoot(t).newPair(t, keyA))
			src := newSource(t, f, tt.setup(t, f)...)
			called := false
			err := src.Watch(context.Background(), func() { called = true })
			require.ErrorIs(t, err, tt.wantErr)
			assert.Contains(t, err.Error(), tt.wantMsg)
			assert.False(t, called)
		})
	}
}

func TestWatchFailsWhenItsDirectoryIsRemoved(t *testing.T) {
	// With its directory gone the watch is dead; Watch says so, and the
	// Provider falls back to polling.
	base := t.TempDir()
	dir := filepath.Join(base, "certs")
	require.NoError(t, os.Mkdir(dir, 0o700))
	p := newRoot(t).newPair(t, keyA)
	f := files{dir: dir, cert: filepath.Join(dir, "tls.crt"), key: filepath.Join(dir, "tls.key")}
	writeFile(t, f.cert, p.certPEM)
	writeFile(t, f.key, p.keyPEM)

	src := newSource(t, f, filesource.WithDebounce(10*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- src.Watch(ctx, func() {
			select {
			case ready <- struct{}{}:
			default:
			}
		})
	}()
	select {
	case <-ready:
	case <-time.After(waitFor):
		t.Fatal("Watch never started")
	}

	require.NoError(t, os.RemoveAll(dir))
	select {
	case err := <-done:
		require.ErrorIs(t, err, fs.ErrNotExist)
		assert.Contains(t, err.Error(), dir)
	case <-time.After(waitFor):
		t.Fatal("Watch kept running on a removed directory")
	}
}

func TestWatchFollowsSymlinkIntoAnotherDirectory(t *testing.T) {
	// tls.crt and tls.key are symlinks into a directory the source was not
	// configured with; an in-place write there is still noticed.
	ca := newRoot(t)
	a, b := ca.newPair(t, keyA), ca.newPair(t, keyB)
	store := newFiles(t, a)
	linkDir := t.TempDir()
	f := files{dir: linkDir, cert: filepath.Join(linkDir, "tls.crt"), key: filepath.Join(linkDir, "tls.key")}
	require.NoError(t, os.Symlink(store.cert, f.cert))
	require.NoError(t, os.Symlink(store.key, f.key))

	calls, _ := runWatch(t, newSource(t, f, filesource.WithDebounce(10*time.Millisecond)))
	require.Eventually(t, func() bool { return calls.Load() == 1 }, waitFor, tick)

	writeFile(t, store.cert, b.certPEM)
	writeFile(t, store.key, b.keyPEM)
	require.Eventually(t, func() bool { return calls.Load() >= 2 }, waitFor, tick)
}

func TestWatchWithDoneContextReturnsAtOnce(t *testing.T) {
	f := newFiles(t, newRoot(t).newPair(t, keyA))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	require.NoError(t, newSource(t, f).Watch(ctx, func() { called = true }))
	assert.False(t, called)
}

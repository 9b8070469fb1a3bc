package filesource

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch calls changed whenever the content of the files may have changed,
// until ctx is done; then it returns nil. A [provider.Provider] runs it for
// the source's lifetime.
//
// It watches the directories holding the files (and, for a path that is a
// symlink into another directory, that directory too), gathers events for
// the debounce window, recomputes the version and calls changed only when
// the version, or the error reading it, differs from the last one it saw.
// Once its watches are in place it calls changed one time, so a change made
// before it started watching is not missed.
//
// Watch returns an error, and the Provider falls back to polling, when the
// watcher cannot be created, a directory cannot be watched, or a watched
// directory disappears. It starts no goroutine of its own, and the fsnotify
// watcher's goroutine has ended when it returns.
func (s *Source) Watch(ctx context.Context, changed func()) error {
	if ctx.Err() != nil {
		return nil
	}
	w, err := s.newWatcher()
	if err != nil {
		return fmt.Errorf("filesource: create file watcher: %w", err)
	}
	defer w.Close() // waits for fsnotify's reader goroutine

	if err := s.syncWatches(w); err != nil {
		return err
	}
	last := s.state(ctx)
	changed()

	var (
		timer *time.Timer
		fire  <-chan time.Time
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	arm := func() {
		if fire != nil {
			return // a batch is already open: this event joins it
		}
		if timer == nil {
			timer = time.NewTimer(s.debounce)
		} else {
			timer.Reset(s.debounce)
		}
		fire = timer.C
	}

	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-w.Events:
			if !ok {
				return errors.New("filesource: file watcher stopped")
			}
			arm()
		case _, ok := <-w.Errors:
			if !ok {
				return errors.New("filesource: file watcher stopped")
			}
			// Typically fsnotify.ErrEventOverflow: events were lost, so
			// the content may have changed unseen. Check it.
			arm()
		case <-fire:
			fire = nil
			if ctx.Err() != nil {
				return nil
			}
			if err := s.syncWatches(w); err != nil {
				return err
			}
			if now := s.state(ctx); now != last {
				last = now
				changed()
			}
		}
	}
}

// state is the version, or the error reading it, as one comparable string.
// Error strings name paths, never content.
func (s *Source) state(ctx context.Context) string {
	v, err := s.Version(ctx)
	if err != nil {
		return "error: " + err.Error()
	}
	return v
}

// paths returns the configured file paths.
func (s *Source) paths() []string {
	p := []string{s.certFile, s.keyFile}
	if s.chainFile != "" {
		p = append(p, s.chainFile)
	}
	return p
}

// syncWatches makes the watch list match what the files need now: the
// directory of each configured path (required), and the directory each path
// resolves to through symlinks (best effort; it changes when a symlink is
// swapped). Directories no longer needed are dropped.
func (s *Source) syncWatches(w *fsnotify.Watcher) error {
	have := map[string]bool{}
	for _, d := range w.WatchList() {
		have[d] = true
	}
	want := map[string]bool{}
	for _, p := range s.paths() {
		d := filepath.Dir(p)
		if want[d] {
			continue
		}
		want[d] = true
		if !have[d] {
			if err := w.Add(d); err != nil {
				return fmt.Errorf("filesource: watch directory %q: %w", d, err)
			}
		}
	}
	for _, p := range s.paths() {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			continue // missing for now; the configured directory's events cover it
		}
		d := filepath.Dir(real)
		if want[d] {
			continue
		}
		want[d] = true
		if !have[d] {
			_ = w.Add(d) // best effort, as above
		}
	}
	for d := range have {
		if !want[d] {
			_ = w.Remove(d) // may already be gone with its directory
		}
	}
	return nil
}

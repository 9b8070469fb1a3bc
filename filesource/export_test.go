package filesource

import "github.com/fsnotify/fsnotify"

// WithWatcherFactory replaces the fsnotify constructor, so that tests can
// make the watcher unavailable and see the Provider fall back to polling.
func WithWatcherFactory(f func() (*fsnotify.Watcher, error)) Option {
	return func(s *Source) error { s.newWatcher = f; return nil }
}

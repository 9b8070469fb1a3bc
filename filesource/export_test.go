package filesource

import "github.com/fsnotify/fsnotify"

// WithWatcherFactory replaces the fsnotify constructor, so that tests can
// make the watcher unavailable and see the Provider fall back to polling.
func WithWatcherFactory(f func() (*fsnotify.Watcher, error)) Option {
	return func(s *Source) error { s.newWatcher = f; return nil }
}

// WithFileReader replaces how the source reads one file (role is
// "certificate", "chain" or "key"), so that tests can act between the reads
// of one Fetch and count reads. ReadFile is the real reader.
func WithFileReader(f func(role, path string) ([]byte, error)) Option {
	return func(s *Source) error { s.readFile = f; return nil }
}

// ReadFile is the source's own file reader.
var ReadFile = readFile

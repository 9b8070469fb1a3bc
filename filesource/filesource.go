package filesource

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/knotmtls/knotmtls/provider"
)

// DefaultDebounce is how long [Source.Watch] gathers file events before it
// checks whether the content changed.
const DefaultDebounce = 100 * time.Millisecond

// MaxFileSize is the largest file the source reads. Certificate, chain and
// key files are a few kilobytes; a larger file is a misconfiguration (a wrong
// path, a log file) and is refused with [ErrFileTooLarge].
const MaxFileSize = 1 << 20

// stableReads bounds how many times Fetch re-reads the files while they keep
// changing under it.
const stableReads = 3

var (
	// ErrFileTooLarge is wrapped by the error for a file larger than
	// [MaxFileSize].
	ErrFileTooLarge = errors.New("file too large")
	// ErrNotRegularFile is wrapped by the error for a path that is a
	// directory, a device or a named pipe: the source reads its files many
	// times, which only a regular file (or a symlink to one) supports.
	ErrNotRegularFile = errors.New("not a regular file")
)

// FileError reports a problem with one of the source's files: it could not
// be read (Op "read") or its content is not what the role needs (Op
// "parse"). Err is the cause: an fs error (errors.Is(err, fs.ErrNotExist)
// holds for a missing file), [ErrFileTooLarge], [ErrNotRegularFile], or a
// [*provider.CheckError] wrapping one of the provider's sentinels. The
// message names the path, never the content.
type FileError struct {
	Op   string // "read" or "parse"
	Role string // "certificate", "chain" or "key"
	Path string
	Err  error
}

func (e *FileError) Error() string {
	return fmt.Sprintf("filesource: %s %s file %q: %v", e.Op, e.Role, e.Path, e.Err)
}

// Unwrap returns the cause.
func (e *FileError) Unwrap() error { return e.Err }

// Source reads a certificate (and optional chain) and a private key from PEM
// files. Create it with [New]. It is safe for concurrent use and holds no
// state between calls: it does not cache, the [provider.Provider] does.
type Source struct {
	certFile  string
	keyFile   string
	chainFile string
	debounce  time.Duration

	// newWatcher creates the fsnotify watcher and readFile reads one file;
	// tests replace them (export_test.go).
	newWatcher func() (*fsnotify.Watcher, error)
	readFile   func(role, path string) ([]byte, error)
}

// Compile-time checks of the optional interfaces the Provider looks for.
var (
	_ provider.CertificateSource = (*Source)(nil)
	_ provider.Versioner         = (*Source)(nil)
	_ provider.Watcher           = (*Source)(nil)
	_ fmt.Stringer               = (*Source)(nil)
)

// Option configures a [Source].
type Option func(*Source) error

// WithChainFile adds a file of chain certificates (PEM, issuer of the leaf
// first), appended after the certificates of the certificate file. An empty
// path means no chain file, so a value from configuration can be passed as
// it is. An empty chain file is allowed and adds nothing.
func WithChainFile(path string) Option {
	return func(s *Source) error {
		if path != "" {
			s.chainFile = filepath.Clean(path)
		}
		return nil
	}
}

// WithDebounce sets how long [Source.Watch] gathers file events before it
// checks for a change (default [DefaultDebounce]). Longer values merge a
// certificate and a key written further apart into one refresh.
func WithDebounce(d time.Duration) Option {
	return func(s *Source) error {
		if d <= 0 {
			return errors.New("filesource: debounce must be positive")
		}
		s.debounce = d
		return nil
	}
}

// New returns a Source for the given certificate and key files. It does no
// I/O: a missing or malformed file is reported by [Source.Fetch], so a
// service can start before Vault Agent has rendered the files.
func New(certFile, keyFile string, opts ...Option) (*Source, error) {
	if certFile == "" {
		return nil, errors.New("filesource: certificate file path is empty")
	}
	if keyFile == "" {
		return nil, errors.New("filesource: key file path is empty")
	}
	s := &Source{
		certFile:   filepath.Clean(certFile),
		keyFile:    filepath.Clean(keyFile),
		debounce:   DefaultDebounce,
		newWatcher: fsnotify.NewWatcher,
		readFile:   readFile,
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// String describes the source by its paths.
func (s *Source) String() string {
	if s.chainFile == "" {
		return fmt.Sprintf("filesource(cert=%q key=%q)", s.certFile, s.keyFile)
	}
	return fmt.Sprintf("filesource(cert=%q chain=%q key=%q)", s.certFile, s.chainFile, s.keyFile)
}

// snapshot is the content of the files at one read, with its digest.
type snapshot struct {
	cert, chain, key []byte
	version          string
}

// Version returns a digest of the current content of the certificate, chain
// and key files ("sha256:" and 16 hex digits). It reads the files but parses
// nothing. It equals the Version of the bundle Fetch returns for the same
// content.
func (s *Source) Version(ctx context.Context) (string, error) {
	snap, err := s.read(ctx)
	if err != nil {
		return "", err
	}
	return snap.version, nil
}

// Fetch reads and parses the files. The leaf comes first, then the rest of
// the certificate file, then the chain file. The key must match the leaf
// ([provider.ErrKeyMismatch] otherwise); Knot's other rules are left to the
// Provider. The bundle's Version is the digest of the bytes parsed.
//
// Fetch reads the files until two consecutive reads agree (at most a few
// times), so a write caught between the certificate and the key is not
// parsed as one pair; see the package documentation.
func (s *Source) Fetch(ctx context.Context) (*provider.Bundle, error) {
	snap, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	for range stableReads {
		again, err := s.read(ctx)
		if err != nil {
			return nil, err
		}
		stable := again.version == snap.version
		snap = again
		if stable {
			break
		}
	}
	return s.parse(snap)
}

func (s *Source) parse(snap *snapshot) (*provider.Bundle, error) {
	chain, err := provider.ParseCertificates(snap.cert)
	if err != nil {
		return nil, &FileError{Op: "parse", Role: "certificate", Path: s.certFile, Err: err}
	}
	if s.chainFile != "" && len(bytes.TrimSpace(snap.chain)) > 0 {
		extra, err := provider.ParseCertificates(snap.chain)
		if err != nil {
			return nil, &FileError{Op: "parse", Role: "chain", Path: s.chainFile, Err: err}
		}
		chain = append(chain, extra...)
	}
	key, err := provider.ParsePrivateKey(snap.key)
	if err != nil {
		return nil, &FileError{Op: "parse", Role: "key", Path: s.keyFile, Err: err}
	}
	if err := provider.CheckKeyPair(chain[0], key); err != nil {
		return nil, fmt.Errorf("filesource: key file %q does not belong to the certificate in %q: %w", s.keyFile, s.certFile, err)
	}
	return provider.NewBundle(chain, key, snap.version)
}

// read reads the three files and digests them.
func (s *Source) read(ctx context.Context) (*snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("filesource: %w", err)
	}
	var snap snapshot
	var err error
	if snap.cert, err = s.readFile("certificate", s.certFile); err != nil {
		return nil, err
	}
	if s.chainFile != "" {
		if snap.chain, err = s.readFile("chain", s.chainFile); err != nil {
			return nil, err
		}
	}
	if snap.key, err = s.readFile("key", s.keyFile); err != nil {
		return nil, err
	}
	snap.version = digest(snap.cert, snap.chain, snap.key)
	return &snap, nil
}

// digest hashes each part with its length, so bytes moving from one file to
// another change the version too.
func digest(parts ...[]byte) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)[:8])
}

// readFile reads one regular file of at most MaxFileSize bytes. Errors name
// the path once (the fs.PathError's own copy is dropped) and keep the cause
// for errors.Is.
func readFile(role, path string) ([]byte, error) {
	fail := func(err error) error {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return &FileError{Op: "read", Role: role, Path: path, Err: err}
	}
	// Stat first: opening a named pipe would block until a writer appears.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fail(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fail(fmt.Errorf("%w (mode %s)", ErrNotRegularFile, fi.Mode().Type()))
	}
	if fi.Size() > MaxFileSize {
		return nil, fail(fmt.Errorf("%w: %d bytes, at most %d", ErrFileTooLarge, fi.Size(), MaxFileSize))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fail(err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fail(err)
	}
	if len(data) > MaxFileSize {
		return nil, fail(fmt.Errorf("%w: more than %d bytes", ErrFileTooLarge, MaxFileSize))
	}
	return data, nil
}

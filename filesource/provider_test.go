package filesource_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/knotmtls/knotmtls/filesource"
	"github.com/knotmtls/knotmtls/provider"
)

// TestBadInputKeepsServingTheOldPair feeds each kind of bad file to a
// running Provider that serves a good pair. Each is reported with its own
// sentinel, parse-level problems already by Fetch (naming the file, never
// its content), Knot-rule problems by the Provider's checks; and in every
// case the Provider keeps serving the old certificate.
func TestBadInputKeepsServingTheOldPair(t *testing.T) {
	ca := newRoot(t)
	rsa1024 := mustRSA1024(t)
	ec := ecKey(t)
	encryptedLegacy := pem.EncodeToMemory(&pem.Block{
		Type: "RSA PRIVATE KEY",
		Headers: map[string]string{
			"Proc-Type": "4,ENCRYPTED",
			"DEK-Info":  "AES-128-CBC,0123456789ABCDEF0123456789ABCDEF",
		},
		Bytes: randomBytes(t, 1200),
	})
	encryptedPKCS8 := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: randomBytes(t, 1300)})

	const (
		atFetch = "fetch" // Source.Fetch refuses the files
		atCheck = "check" // Fetch succeeds, provider.Requirements refuses the bundle
	)
	tests := []struct {
		name    string
		stage   string
		wantErr error
		badFile string // the file Fetch names in its error: "cert" or "key"
		// write replaces the good pair in f with the bad input and returns
		// the bytes it wrote, to check that errors do not quote them.
		write func(t *testing.T, f files) []byte
	}{
		{
			name: "garbage certificate", stage: atFetch, wantErr: provider.ErrNotPEM, badFile: "cert",
			write: func(t *testing.T, f files) []byte {
				return put(t, f.cert, []byte("this is no certificate, only some plain text\n"))
			},
		},
		{
			name: "empty key file", stage: atFetch, wantErr: provider.ErrEmpty, badFile: "key",
			write: func(t *testing.T, f files) []byte { return put(t, f.key, nil) },
		},
		{
			name: "truncated certificate PEM", stage: atFetch, wantErr: provider.ErrTruncatedPEM, badFile: "cert",
			write: func(t *testing.T, f files) []byte {
				full := ca.newPair(t, keyB).certPEM
				return put(t, f.cert, full[:len(full)/2])
			},
		},
		{
			name: "encrypted key, Proc-Type and DEK-Info headers", stage: atFetch, wantErr: provider.ErrEncryptedKey, badFile: "key",
			write: func(t *testing.T, f files) []byte { return put(t, f.key, encryptedLegacy) },
		},
		{
			name: "encrypted key, ENCRYPTED PRIVATE KEY block", stage: atFetch, wantErr: provider.ErrEncryptedKey, badFile: "key",
			write: func(t *testing.T, f files) []byte { return put(t, f.key, encryptedPKCS8) },
		},
		{
			name: "private key in the certificate file", stage: atFetch, wantErr: provider.ErrUnexpectedPEMType, badFile: "cert",
			write: func(t *testing.T, f files) []byte { return put(t, f.cert, pkcs1PEM(rsaKey(t, keyB))) },
		},
		{
			name: "certificate file too large", stage: atFetch, wantErr: filesource.ErrFileTooLarge, badFile: "cert",
			write: func(t *testing.T, f files) []byte {
				return put(t, f.cert, []byte(strings.Repeat("x", filesource.MaxFileSize+1)))
			},
		},
		{
			name: "key path is a directory", stage: atFetch, wantErr: filesource.ErrNotRegularFile, badFile: "key",
			write: func(t *testing.T, f files) []byte {
				require.NoError(t, os.Remove(f.key))
				require.NoError(t, os.Mkdir(f.key, 0o700))
				return nil
			},
		},
		{
			name: "key file deleted", stage: atFetch, wantErr: fs.ErrNotExist, badFile: "key",
			write: func(t *testing.T, f files) []byte {
				require.NoError(t, os.Remove(f.key))
				return nil
			},
		},
		{
			name: "mismatched pair", stage: atFetch, wantErr: provider.ErrKeyMismatch,
			write: func(t *testing.T, f files) []byte { return put(t, f.key, pkcs1PEM(rsaKey(t, keyB))) },
		},
		{
			name: "RSA-1024 key", stage: atCheck, wantErr: provider.ErrKeySize,
			write: func(t *testing.T, f files) []byte {
				put(t, f.cert, pemCert(ca.issue(t, rsa1024.Public())))
				return put(t, f.key, pkcs1PEM(rsa1024))
			},
		},
		{
			name: "ECDSA key where RSA is required", stage: atCheck, wantErr: provider.ErrKeyType,
			write: func(t *testing.T, f files) []byte {
				put(t, f.cert, pemCert(ca.issue(t, ec.Public())))
				return put(t, f.key, sec1PEM(t, ec))
			},
		},
		{
			name: "SHA-1 signed certificate", stage: atCheck, wantErr: provider.ErrSignatureAlgorithm,
			write: func(t *testing.T, f files) []byte {
				// Go still creates SHA-1 signatures (it only refuses to
				// verify them), so no hand-built DER is needed.
				p := ca.newPair(t, keyB, func(c *x509.Certificate) { c.SignatureAlgorithm = x509.SHA1WithRSA })
				require.Equal(t, x509.SHA1WithRSA, p.cert.SignatureAlgorithm)
				put(t, f.cert, p.certPEM)
				return put(t, f.key, p.keyPEM)
			},
		},
		{
			name: "wrong CN", stage: atCheck, wantErr: provider.ErrSubjectCN,
			write: func(t *testing.T, f files) []byte {
				p := ca.newPair(t, keyB, func(c *x509.Certificate) { c.Subject.CommonName = "someone-else" })
				put(t, f.cert, p.certPEM)
				return put(t, f.key, p.keyPEM)
			},
		},
		{
			name: "expired", stage: atCheck, wantErr: provider.ErrExpired,
			write: func(t *testing.T, f files) []byte {
				p := ca.newPair(t, keyB, func(c *x509.Certificate) {
					c.NotBefore, c.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
				})
				put(t, f.cert, p.certPEM)
				return put(t, f.key, p.keyPEM)
			},
		},
		{
			name: "not yet valid", stage: atCheck, wantErr: provider.ErrNotYetValid,
			write: func(t *testing.T, f files) []byte {
				p := ca.newPair(t, keyB, func(c *x509.Certificate) {
					c.NotBefore, c.NotAfter = time.Now().Add(time.Hour), time.Now().Add(48*time.Hour)
				})
				put(t, f.cert, p.certPEM)
				return put(t, f.key, p.keyPEM)
			},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			good := ca.newPair(t, keyA)
			f := newFiles(t, good)
			src := newSource(t, f)
			p := newProvider(t, src)
			require.Equal(t, good.serial(), servedSerial(t, p))

			written := tt.write(t, f)

			b, fetchErr := src.Fetch(ctx)
			switch tt.stage {
			case atFetch:
				require.ErrorIs(t, fetchErr, tt.wantErr)
				assert.Nil(t, b)
				assert.True(t, strings.HasPrefix(fetchErr.Error(), "filesource: "), fetchErr.Error())
				if tt.badFile != "" {
					path := map[string]string{"cert": f.cert, "key": f.key}[tt.badFile]
					var fe *filesource.FileError
					require.ErrorAs(t, fetchErr, &fe)
					assert.Equal(t, path, fe.Path)
				} else {
					assert.Contains(t, fetchErr.Error(), f.cert)
					assert.Contains(t, fetchErr.Error(), f.key)
				}
				assertNoContent(t, fetchErr, written)
			case atCheck:
				require.NoError(t, fetchErr, "parsing succeeds; Knot's rules refuse it")
				require.ErrorIs(t, provider.Requirements{ClientID: clientID}.CheckBundle(b), tt.wantErr)
			}
			// Distinct: no other case's sentinel matches, bar the two
			// encrypted-key forms which share one.
			got := fetchErrOrCheck(t, src)
			for _, other := range tests {
				if other.wantErr != tt.wantErr {
					assert.NotErrorIs(t, got, other.wantErr, "also matches %q's sentinel", other.name)
				}
			}

			// The running Provider refuses it and keeps the old pair.
			err := p.Refresh(ctx)
			require.ErrorIs(t, err, tt.wantErr)
			assertNoContent(t, err, written)
			assert.Equal(t, good.serial(), servedSerial(t, p), "the old certificate keeps being served")
			st := p.Status()
			assert.ErrorIs(t, st.LastError, tt.wantErr)
			assert.Positive(t, st.Failures)
			assert.True(t, st.Valid)
		})
	}
}

// fetchErrOrCheck is the error a Provider would report for src's files.
func fetchErrOrCheck(t *testing.T, src *filesource.Source) error {
	t.Helper()
	b, err := src.Fetch(context.Background())
	if err != nil {
		return err
	}
	return provider.Requirements{ClientID: clientID}.CheckBundle(b)
}

func put(t *testing.T, path string, data []byte) []byte {
	t.Helper()
	writeFile(t, path, data)
	return data
}

func pemCert(c *x509.Certificate) []byte { return provider.EncodeCertificates([]*x509.Certificate{c}) }

func mustRSA1024(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	return k
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// TestHotReload rewrites the pair under a running Provider and waits for
// the new serial: with fsnotify (the poll interval is an hour, so only the
// watcher can explain the rotation) and with fsnotify unavailable (Watch
// fails, the Provider logs it and polls the cheap version every 50 ms).
func TestHotReload(t *testing.T) {
	ca := newRoot(t)
	writes := []struct {
		name  string
		write func(t testing.TB, path string, data []byte)
	}{
		{name: "in-place write", write: writeFile},
		{name: "rename over the old file", write: replaceFile},
	}
	modes := []struct {
		name       string
		srcOpts    []filesource.Option
		provOpts   []provider.Option
		wantLogged string
	}{
		{name: "fsnotify"},
		{
			name: "poll fallback",
			srcOpts: []filesource.Option{filesource.WithWatcherFactory(func() (*fsnotify.Watcher, error) {
				return nil, errors.New("too many open files")
			})},
			// Without a watcher, a poll that lands between the two writes
			// fails with a mismatch; a short backoff lets the next poll in.
			provOpts:   []provider.Option{provider.WithPollInterval(50 * time.Millisecond), provider.WithBackoff(50*time.Millisecond, 50*time.Millisecond)},
			wantLogged: "source watch stopped; relying on polling",
		},
	}
	for _, m := range modes {
		for _, w := range writes {
			t.Run(m.name+"/"+w.name, func(t *testing.T) {
				a, b := ca.newPair(t, keyA), ca.newPair(t, keyB)
				f := newFiles(t, a)
				logs := &syncBuffer{}
				opts := append([]provider.Option{provider.WithLogger(slog.New(slog.NewTextHandler(logs, nil)))}, m.provOpts...)
				src := newWatched(newSource(t, f, m.srcOpts...))
				p := newProvider(t, src, opts...)
				require.Equal(t, a.serial(), servedSerial(t, p))
				if m.wantLogged == "" {
					src.waitReady(t)
				}

				w.write(t, f.cert, b.certPEM)
				w.write(t, f.key, b.keyPEM)

				require.Eventually(t, func() bool { return servedSerial(t, p) == b.serial() }, waitFor, tick,
					"the provider never served the new certificate")
				if m.wantLogged != "" {
					assert.Contains(t, logs.String(), m.wantLogged)
					assert.Contains(t, logs.String(), "too many open files")
				} else {
					assert.NotContains(t, logs.String(), "source watch stopped")
				}
			})
		}
	}
}

// TestKubernetesSecretVolumeSwap reproduces the layout the kubelet writes
// for a secret volume, and its update: the files are symlinks through
// ..data, and an update creates a new timestamped directory, points a
// temporary symlink at it, renames that over ..data and deletes the old
// directory. Nothing touches tls.crt or tls.key themselves.
func TestKubernetesSecretVolumeSwap(t *testing.T) {
	ca := newRoot(t)
	dir := t.TempDir()
	publish := func(stamp string, p pair) {
		t.Helper()
		ts := filepath.Join(dir, "..2026_11_29_"+stamp)
		require.NoError(t, os.Mkdir(ts, 0o755))
		writeFile(t, filepath.Join(ts, "tls.crt"), p.certPEM)
		writeFile(t, filepath.Join(ts, "tls.key"), p.keyPEM)
		tmp := filepath.Join(dir, "..data_tmp")
		require.NoError(t, os.Symlink(filepath.Base(ts), tmp))
		require.NoError(t, os.Rename(tmp, filepath.Join(dir, "..data")))
	}
	a := ca.newPair(t, keyA)
	publish("10_00_00.000000001", a)
	for _, name := range []string{"tls.crt", "tls.key"} {
		require.NoError(t, os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)))
	}

	fsrc, err := filesource.New(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	require.NoError(t, err)
	src := newWatched(fsrc)
	p := newProvider(t, src)
	require.Equal(t, a.serial(), servedSerial(t, p))
	src.waitReady(t)

	// Two updates: the second proves the watch survived the first one's
	// deletion of the directory the symlinks pointed into.
	prev := "10_00_00.000000001"
	for i, next := range []pair{ca.newPair(t, keyB), ca.newPair(t, keyC)} {
		stamp := []string{"11_00_00.000000002", "12_00_00.000000003"}[i]
		publish(stamp, next)
		require.NoError(t, os.RemoveAll(filepath.Join(dir, "..2026_11_29_"+prev)))
		prev = stamp

		require.Eventually(t, func() bool { return servedSerial(t, p) == next.serial() }, waitFor, tick,
			"update %d was not noticed", i+1)
	}
}

// TestHalfWrittenPair writes the new certificate but not yet its key: the
// Provider keeps the old pair and reports ErrKeyMismatch; once the key lands
// it rotates. Backoff and polling are an hour, so both steps come from the
// watcher.
func TestHalfWrittenPair(t *testing.T) {
	ca := newRoot(t)
	a, b := ca.newPair(t, keyA), ca.newPair(t, keyB)
	f := newFiles(t, a)

	var (
		mu       sync.Mutex
		failures []error
	)
	failed := func() []error {
		mu.Lock()
		defer mu.Unlock()
		return append([]error(nil), failures...)
	}
	src := newWatched(newSource(t, f))
	p := newProvider(t, src, provider.OnRefreshFailed(func(err error, _ int, _ time.Duration) {
		mu.Lock()
		failures = append(failures, err)
		mu.Unlock()
	}))
	src.waitReady(t)

	replaceFile(t, f.cert, b.certPEM) // whole: an in-place write can be seen empty
	require.Eventually(t, func() bool { return len(failed()) > 0 }, waitFor, tick, "the half-written pair was not reported")
	for _, err := range failed() {
		require.ErrorIs(t, err, provider.ErrKeyMismatch)
	}
	assert.Equal(t, a.serial(), servedSerial(t, p), "the old pair keeps being served")
	assert.ErrorIs(t, p.Status().LastError, provider.ErrKeyMismatch)

	replaceFile(t, f.key, b.keyPEM)
	require.Eventually(t, func() bool { return servedSerial(t, p) == b.serial() }, waitFor, tick)
	assert.NoError(t, p.Status().LastError)
}

// TestProviderCloseStopsWatch checks that no goroutine, ours or fsnotify's,
// survives Provider.Close.
func TestProviderCloseStopsWatch(t *testing.T) {
	ca := newRoot(t)
	a, b := ca.newPair(t, keyA), ca.newPair(t, keyB)
	f := newFiles(t, a)
	src := newWatched(newSource(t, f))
	p, err := provider.New(src,
		provider.WithRequirements(provider.Requirements{ClientID: clientID}),
		provider.WithPollInterval(time.Hour), provider.WithLogger(quiet()))
	require.NoError(t, err)
	require.Equal(t, a.serial(), servedSerial(t, p))
	src.waitReady(t)

	// A rotation proves the watch is running before we stop it.
	writeFile(t, f.cert, b.certPEM)
	writeFile(t, f.key, b.keyPEM)
	require.Eventually(t, func() bool { return servedSerial(t, p) == b.serial() }, waitFor, tick)

	require.NoError(t, p.Close())
	goleak.VerifyNone(t)
}

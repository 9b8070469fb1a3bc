package filesource_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/knotmtls/knotmtls/filesource"
	"github.com/knotmtls/knotmtls/provider"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestNewValidatesArguments(t *testing.T) {
	tests := []struct {
		name      string
		cert, key string
		opts      []filesource.Option
		wantErr   string
	}{
		{name: "no certificate path", key: "k.pem", wantErr: "filesource: certificate file path is empty"},
		{name: "no key path", cert: "c.pem", wantErr: "filesource: key file path is empty"},
		{name: "zero debounce", cert: "c.pem", key: "k.pem", opts: []filesource.Option{filesource.WithDebounce(0)}, wantErr: "filesource: debounce must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := filesource.New(tt.cert, tt.key, tt.opts...)
			require.EqualError(t, err, tt.wantErr)
			assert.Nil(t, src)
		})
	}
}

func TestNewDoesNoIO(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "not-rendered-yet")
	src, err := filesource.New(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	require.NoError(t, err, "a service may start before Vault Agent rendered the files")

	_, err = src.Fetch(context.Background())
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestStringShowsPathsOnly(t *testing.T) {
	ca := newRoot(t)
	f := newFiles(t, ca.newPair(t, keyA))
	writeFile(t, f.chain, provider.EncodeCertificates([]*x509.Certificate{ca.cert}))

	src := newSource(t, f, filesource.WithChainFile(f.chain))
	_, err := src.Fetch(context.Background())
	require.NoError(t, err)

	assert.Equal(t, `filesource(cert="`+f.cert+`" chain="`+f.chain+`" key="`+f.key+`")`, src.String())
	assert.NotContains(t, src.String(), "BEGIN")

	noChain, err := filesource.New(f.cert, f.key, filesource.WithChainFile(""))
	require.NoError(t, err)
	assert.Equal(t, `filesource(cert="`+f.cert+`" key="`+f.key+`")`, noChain.String())
}

func TestFetchKeyFormats(t *testing.T) {
	ca := newRoot(t)
	rsaK := rsaKey(t, keyA)
	ecK := ecKey(t)
	ecParams := []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n")

	tests := []struct {
		name   string
		pub    crypto.PublicKey
		keyPEM []byte
	}{
		{name: "RSA PKCS#1", pub: rsaK.Public(), keyPEM: pkcs1PEM(rsaK)},
		{name: "RSA PKCS#8", pub: rsaK.Public(), keyPEM: pkcs8PEM(t, rsaK)},
		{name: "ECDSA SEC1", pub: ecK.Public(), keyPEM: sec1PEM(t, ecK)},
		{name: "ECDSA SEC1 after openssl EC PARAMETERS", pub: ecK.Public(), keyPEM: append(ecParams, sec1PEM(t, ecK)...)},
		{name: "ECDSA PKCS#8", pub: ecK.Public(), keyPEM: pkcs8PEM(t, ecK)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert := ca.issue(t, tt.pub)
			f := newFiles(t, pair{certPEM: provider.EncodeCertificates([]*x509.Certificate{cert}), keyPEM: tt.keyPEM})
			src := newSource(t, f)

			b, err := src.Fetch(context.Background())
			require.NoError(t, err)
			require.Len(t, b.Chain, 1)
			assert.True(t, b.Leaf().Equal(cert))
			assert.True(t, b.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(tt.pub), "the key is the leaf's key")
			assert.Equal(t, cert.NotAfter, b.NotAfter)

			v, err := src.Version(context.Background())
			require.NoError(t, err)
			assert.Equal(t, v, b.Version)
		})
	}
}

func TestFetchAppendsChainInOrder(t *testing.T) {
	root := newRoot(t)
	inter := root.intermediate(t)
	leaf := inter.issue(t, rsaKey(t, keyA).Public())
	enc := func(cs ...*x509.Certificate) []byte { return provider.EncodeCertificates(cs) }

	tests := []struct {
		name      string
		certPEM   []byte
		chainPEM  []byte // nil: no chain file configured
		wantChain []*x509.Certificate
	}{
		{name: "leaf only", certPEM: enc(leaf), wantChain: []*x509.Certificate{leaf}},
		{name: "chain in the certificate file", certPEM: enc(leaf, inter.cert, root.cert), wantChain: []*x509.Certificate{leaf, inter.cert, root.cert}},
		{name: "chain file", certPEM: enc(leaf), chainPEM: enc(inter.cert, root.cert), wantChain: []*x509.Certificate{leaf, inter.cert, root.cert}},
		{name: "split across both files", certPEM: enc(leaf, inter.cert), chainPEM: enc(root.cert), wantChain: []*x509.Certificate{leaf, inter.cert, root.cert}},
		{name: "empty chain file adds nothing", certPEM: enc(leaf, inter.cert), chainPEM: []byte("\n"), wantChain: []*x509.Certificate{leaf, inter.cert}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFiles(t, pair{certPEM: tt.certPEM, keyPEM: pkcs1PEM(rsaKey(t, keyA))})
			var opts []filesource.Option
			if tt.chainPEM != nil {
				writeFile(t, f.chain, tt.chainPEM)
				opts = append(opts, filesource.WithChainFile(f.chain))
			}
			b, err := newSource(t, f, opts...).Fetch(context.Background())
			require.NoError(t, err)

			require.Len(t, b.Chain, len(tt.wantChain))
			for i := range tt.wantChain {
				assert.True(t, tt.wantChain[i].Equal(b.Chain[i]), "chain[%d] is %q", i, b.Chain[i].Subject.CommonName)
			}
			roots := x509.NewCertPool()
			roots.AddCert(root.cert)
			req := provider.Requirements{ClientID: clientID, Roots: roots}
			if len(b.Chain) > 1 {
				assert.NoError(t, req.CheckBundle(b), "the provider accepts the chain as ordered")
			}
		})
	}
}

func TestVersion(t *testing.T) {
	ctx := context.Background()
	ca := newRoot(t)
	a := ca.newPair(t, keyA)
	f := newFiles(t, a)
	writeFile(t, f.chain, provider.EncodeCertificates([]*x509.Certificate{ca.cert}))
	src := newSource(t, f, filesource.WithChainFile(f.chain))

	version := func() string {
		t.Helper()
		v, err := src.Version(ctx)
		require.NoError(t, err)
		return v
	}

	t.Run("matches the fetched bundle and is stable", func(t *testing.T) {
		v := version()
		assert.Regexp(t, `^sha256:[0-9a-f]{16}$`, v)
		b, err := src.Fetch(ctx)
		require.NoError(t, err)
		assert.Equal(t, v, b.Version)
		assert.Equal(t, v, version())
	})

	t.Run("identical rewrite keeps the version", func(t *testing.T) {
		v := version()
		writeFile(t, f.cert, a.certPEM)
		replaceFile(t, f.key, a.keyPEM)
		assert.Equal(t, v, version())
	})

	t.Run("each file counts", func(t *testing.T) {
		for _, path := range []string{f.cert, f.chain, f.key} {
			before := version()
			orig, err := os.ReadFile(path)
			require.NoError(t, err)
			writeFile(t, path, append(orig, '\n'))
			assert.NotEqual(t, before, version(), "a change to %s", filepath.Base(path))
			writeFile(t, path, orig)
			assert.Equal(t, before, version())
		}
	})

	t.Run("same size and mtime still changes the version", func(t *testing.T) {
		// A stat-based version would miss this: content differs, size and
		// mtime do not.
		before := version()
		st, err := os.Stat(f.cert)
		require.NoError(t, err)
		orig, err := os.ReadFile(f.cert)
		require.NoError(t, err)
		edited := append([]byte(nil), orig...)
		edited[len(edited)/2] ^= 0x01
		writeFile(t, f.cert, edited)
		require.NoError(t, os.Chtimes(f.cert, st.ModTime(), st.ModTime()))
		st2, err := os.Stat(f.cert)
		require.NoError(t, err)
		require.Equal(t, st.Size(), st2.Size())
		require.Equal(t, st.ModTime(), st2.ModTime())

		assert.NotEqual(t, before, version())
		writeFile(t, f.cert, orig)
	})

	t.Run("bytes moving between files change the version", func(t *testing.T) {
		// Version parses nothing, so raw bytes will do.
		g := files{dir: t.TempDir()}
		g.cert, g.key = filepath.Join(g.dir, "c"), filepath.Join(g.dir, "k")
		other := newSource(t, g)
		writeFile(t, g.cert, []byte("ab"))
		writeFile(t, g.key, []byte("c"))
		v1, err := other.Version(ctx)
		require.NoError(t, err)
		writeFile(t, g.cert, []byte("a"))
		writeFile(t, g.key, []byte("bc"))
		v2, err := other.Version(ctx)
		require.NoError(t, err)
		assert.NotEqual(t, v1, v2)
	})
}

func TestMissingFileNamesThePath(t *testing.T) {
	ca := newRoot(t)
	tests := []struct {
		role string
		path func(files) string
	}{
		{role: "certificate", path: func(f files) string { return f.cert }},
		{role: "key", path: func(f files) string { return f.key }},
		{role: "chain", path: func(f files) string { return f.chain }},
	}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			f := newFiles(t, ca.newPair(t, keyA))
			writeFile(t, f.chain, provider.EncodeCertificates([]*x509.Certificate{ca.cert}))
			src := newSource(t, f, filesource.WithChainFile(f.chain))
			missing := tt.path(f)
			require.NoError(t, os.Remove(missing))

			_, fetchErr := src.Fetch(context.Background())
			_, versionErr := src.Version(context.Background())
			for _, err := range []error{fetchErr, versionErr} {
				require.ErrorIs(t, err, fs.ErrNotExist)
				var fe *filesource.FileError
				require.ErrorAs(t, err, &fe)
				assert.Equal(t, "read", fe.Op)
				assert.Equal(t, tt.role, fe.Role)
				assert.Equal(t, missing, fe.Path)
				assert.Equal(t, 1, strings.Count(err.Error(), missing), "the path appears once: %s", err)
				assert.True(t, strings.HasPrefix(err.Error(), "filesource: read "+tt.role+" file"), err.Error())
			}
		})
	}
}

func TestFetchHonoursContext(t *testing.T) {
	f := newFiles(t, newRoot(t).newPair(t, keyA))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := newSource(t, f).Fetch(ctx)
	require.ErrorIs(t, err, context.Canceled)
}

func TestFetchUnderChurnNeverMixesPair(t *testing.T) {
	// A writer replaces pair A by pair B (certificate, then key) at a chosen
	// moment inside one Fetch: right after Fetch has read a certificate file,
	// so the snapshot being read holds A's certificate and B's key. Fetch
	// must notice that consecutive reads disagree and read again, returning
	// B whole: B's certificate with B's key and B's version, and no error.
	// Without the re-read it would parse the torn snapshot and fail with
	// ErrKeyMismatch. When the files never settle, Fetch gives up after a
	// bounded number of reads with the typed mismatch, never a mixed pair.
	ca := newRoot(t)
	a, b := ca.newPair(t, keyA), ca.newPair(t, keyB)
	tests := []struct {
		name string
		// flip reports whether to write the other pair after the n-th
		// read of the certificate file (n counts from 1).
		flip     func(n int) bool
		want     *pair // nil: the typed mismatch
		maxReads int   // certificate reads Fetch may make
	}{
		{name: "write lands inside the first read", flip: func(n int) bool { return n == 1 }, want: &b, maxReads: 3},
		{name: "write lands inside the second read", flip: func(n int) bool { return n == 2 }, want: &b, maxReads: 4},
		{name: "writes land inside the first two reads", flip: func(n int) bool { return n <= 2 }, want: &a, maxReads: 4},
		{name: "the files never settle", flip: func(int) bool { return true }, maxReads: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFiles(t, a)
			current, reads := a, 0
			reader := func(role, path string) ([]byte, error) {
				data, err := filesource.ReadFile(role, path)
				if role == "certificate" {
					reads++
					if tt.flip(reads) {
						current = map[bool]pair{true: b, false: a}[current.serial() == a.serial()]
						replaceFile(t, f.cert, current.certPEM)
						replaceFile(t, f.key, current.keyPEM)
					}
				}
				return data, err
			}
			src := newSource(t, f, filesource.WithFileReader(reader))
			bundle, err := src.Fetch(context.Background())
			assert.LessOrEqual(t, reads, tt.maxReads)
			if tt.want == nil {
				require.ErrorIs(t, err, provider.ErrKeyMismatch)
				assert.Nil(t, bundle)
				return
			}
			require.NoError(t, err, "a torn read must be read again, not parsed")
			assert.Equal(t, tt.want.serial(), provider.SerialHex(bundle.Leaf()))
			require.NoError(t, provider.CheckKeyPair(bundle.Leaf(), bundle.Key))
			v, err := newSource(t, f).Version(context.Background())
			require.NoError(t, err)
			assert.Equal(t, v, bundle.Version, "the version is the digest of the files as parsed")
		})
	}
}

func TestErrorsNeverCarryContent(t *testing.T) {
	// A private key pasted into the certificate file: the error names the
	// block type and the path, never the key bytes.
	ca := newRoot(t)
	p := ca.newPair(t, keyA)
	f := newFiles(t, pair{certPEM: p.keyPEM, keyPEM: p.keyPEM})

	_, err := newSource(t, f).Fetch(context.Background())
	require.ErrorIs(t, err, provider.ErrUnexpectedPEMType)
	assert.Contains(t, err.Error(), f.cert)
	assertNoContent(t, err, p.keyPEM)
}

// assertNoContent fails if any substantial line of content appears in the
// error's message.
func assertNoContent(t *testing.T, err error, content []byte) {
	t.Helper()
	for _, line := range strings.Split(string(content), "\n") {
		line = strings.TrimSpace(line)
		if len(line) < 16 || strings.HasPrefix(line, "-----") {
			continue
		}
		if strings.Contains(err.Error(), line) {
			t.Errorf("error message contains file content %q", line)
			return
		}
	}
}

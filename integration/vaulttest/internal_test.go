package vaulttest

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"unseal key", "Unseal Key: abc+def=\n", "Unseal Key: [redacted]\n"},
		{"root token", "  Root Token: knotmtls-dev-root", "  Root Token: [redacted]"},
		{"other lines kept", "==> Vault server started!\nApi Address: http://x", "==> Vault server started!\nApi Address: http://x"},
		{"both", "Unseal Key: k\nRoot Token: t\n", "Unseal Key: [redacted]\nRoot Token: [redacted]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, redact(tt.in))
		})
	}
}

func TestTail(t *testing.T) {
	assert.Equal(t, "c\nd", tail("a\nb\nc\nd\n", 2))
	assert.Equal(t, "a\nb", tail("a\nb", 5))
}

func TestRingBufferKeepsTheEnd(t *testing.T) {
	r := newRingBuffer(8)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = r.Write([]byte("xxxx"))
		}()
	}
	wg.Wait()
	_, err := r.Write([]byte("0123456789"))
	require.NoError(t, err)
	assert.Equal(t, "[earlier output dropped]\n23456789", r.String())

	small := newRingBuffer(100)
	_, _ = small.Write([]byte("hello"))
	assert.Equal(t, "hello", small.String())
}

func TestKVVersion(t *testing.T) {
	tests := []struct {
		opts map[string]string
		want string
	}{
		{nil, ""},
		{map[string]string{"version": "1"}, ""},
		{map[string]string{"version": "2"}, "2"},
		{map[string]string{"other": "x"}, ""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, kvVersion(tt.opts), "%v", tt.opts)
	}
}

func TestFreePortPairIsBindable(t *testing.T) {
	p, err := freePortPair()
	require.NoError(t, err)
	for _, port := range []int{p, p + 1} {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		require.NoError(t, err)
		require.NoError(t, l.Close())
	}
}

func TestConfigPrecedence(t *testing.T) {
	t.Setenv(EnvBackend, BackendProcess)
	t.Setenv(EnvImage, "example/vault:env")
	t.Setenv(EnvBinary, "/env/vault")

	c := newConfig(nil)
	assert.Equal(t, BackendProcess, c.backend)
	assert.Equal(t, "example/vault:env", c.image)
	assert.Equal(t, "/env/vault", c.binary)

	c = newConfig([]Option{WithBackend(BackendContainer), WithImage("example/vault:opt"), WithBinary("/opt/vault"), WithLogf(nil)})
	assert.Equal(t, BackendContainer, c.backend)
	assert.Equal(t, "example/vault:opt", c.image)
	assert.Equal(t, "/opt/vault", c.binary)
	assert.NotNil(t, c.logf)

	t.Setenv(EnvBackend, "")
	assert.Equal(t, BackendAuto, newConfig(nil).backend)
}

func TestCachePaths(t *testing.T) {
	t.Setenv(EnvCache, "/cache")
	t.Setenv(EnvBinary, "")
	assert.Equal(t, "/cache", CacheDir())
	assert.Equal(t, "/cache/vault-"+VaultVersion, BinaryPath())
	t.Setenv(EnvBinary, "/elsewhere/vault")
	assert.Equal(t, "/elsewhere/vault", BinaryPath())
}

func TestStartErrors(t *testing.T) {
	ctx := context.Background()

	_, err := Start(ctx, WithBackend("vm"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown backend "vm"`)

	_, err = Start(ctx, WithBackend(BackendProcess), WithBinary("/nonexistent/vault"))
	require.ErrorIs(t, err, ErrBinaryNotFound)
	assert.Contains(t, err.Error(), "make vault-image")
}

func TestWriteContextLayout(t *testing.T) {
	bin := []byte("#!vault binary stand-in")
	var buf bytes.Buffer
	require.NoError(t, writeContext(&buf, bytes.NewReader(bin), int64(len(bin))))

	got := map[string]*tar.Header{}
	contents := map[string]string{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		got[h.Name] = h
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		contents[h.Name] = string(b)
	}
	require.Contains(t, got, "Dockerfile")
	assert.Contains(t, contents["Dockerfile"], "FROM scratch")
	assert.Contains(t, contents["Dockerfile"], "COPY rootfs/ /")
	require.Contains(t, got, "rootfs/tmp/")
	assert.Equal(t, int64(0o1777), got["rootfs/tmp/"].Mode)
	assert.Equal(t, byte(tar.TypeDir), got["rootfs/tmp/"].Typeflag)
	require.Contains(t, got, "rootfs/bin/vault")
	assert.Equal(t, int64(0o755), got["rootfs/bin/vault"].Mode)
	assert.Equal(t, string(bin), contents["rootfs/bin/vault"])
}

package vaulttest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// WithTLS makes [Start] serve Vault over HTTPS only, as production Vault
// runs: the dev server is started with -dev-tls, so Vault generates a fresh
// CA and a server certificate for 127.0.0.1 and localhost at every start.
// [Vault.Addr] is then https://..., [Vault.CACert] holds the CA,
// [Vault.CACertFile] is a file with it for VAULT_CACERT, and
// [Vault.Client] and [Vault.TLSConfig] trust it. Works with both backends.
func WithTLS() Option {
	return func(c *config) { c.tls = true }
}

// Where -dev-tls writes its files: the CA is vault-ca.pem (Vault's own
// server.VaultDevCAFilename). Inside the container the directory is /tmp,
// which the FROM scratch image creates and the upstream image has.
const (
	devTLSCAFile        = "vault-ca.pem"
	containerTLSCertDir = "/tmp"
)

// devTLSArgs are the server flags that turn TLS on, with the generated
// files in dir.
func devTLSArgs(dir string) []string {
	return []string{"-dev-tls", "-dev-tls-cert-dir=" + dir}
}

// tlsState is what a TLS-enabled Vault adds to a [Vault].
type tlsState struct {
	dir  string // harness-owned directory holding the CA copy; removed by Terminate
	pool *x509.CertPool
}

// setTLS records the CA a TLS Vault generated: it parses caPEM, writes it
// to CACertFile in a directory of its own (dir, or a new temporary one when
// dir is "") and switches Addr to https.
func (v *Vault) setTLS(caPEM []byte, dir string) error {
	tc, err := tlsConfigFor(caPEM)
	if err != nil {
		return fmt.Errorf("vaulttest: %w", err)
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "vaulttest-tls-")
		if err != nil {
			return fmt.Errorf("vaulttest: tls dir: %w", err)
		}
		dir = d
	}
	file := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(file, caPEM, 0o644); err != nil {
		return fmt.Errorf("vaulttest: write CA file: %w", err)
	}
	v.CACert = caPEM
	v.CACertFile = file
	v.tlsInfo = &tlsState{dir: dir, pool: tc.RootCAs}
	return nil
}

// TLSConfig returns a new client TLS configuration that trusts the CA of a
// Vault started [WithTLS], for transports passed to [Vault.ClientWith]; nil
// for a plain-HTTP Vault.
func (v *Vault) TLSConfig() *tls.Config {
	if v.tlsInfo == nil {
		return nil
	}
	return &tls.Config{RootCAs: v.tlsInfo.pool, MinVersion: tls.VersionTLS12}
}

// removeTLSDir deletes the harness's CA copy (Terminate).
func (v *Vault) removeTLSDir() {
	if v.tlsInfo != nil && v.tlsInfo.dir != "" {
		_ = os.RemoveAll(v.tlsInfo.dir)
	}
}

// tlsConfigFor returns a client TLS configuration trusting caPEM.
func tlsConfigFor(caPEM []byte) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("the CA written by vault -dev-tls does not parse")
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// waitFile polls until path exists and is not empty, then returns its
// content; it gives up when exited is closed or ctx ends.
func waitFile(ctx context.Context, path string, exited <-chan struct{}) ([]byte, error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return b, nil
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("process exited before it wrote %s", path)
		case <-ctx.Done():
			return nil, fmt.Errorf("%s not written before deadline: %w", path, ctx.Err())
		case <-tick.C:
		}
	}
}

// readContainerFile copies one small file out of a container.
func readContainerFile(ctx context.Context, cb *containerBackend, path string) ([]byte, error) {
	rc, err := cb.c.CopyFileFromContainer(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("copy %s from container: %w", path, err)
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, 1<<20))
}

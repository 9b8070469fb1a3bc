package vaulttest

import (
	"archive/tar"
	"context"
	"crypto/tls"
	_ "embed" // the image's Dockerfile
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/testcontainers/testcontainers-go"
	tcvault "github.com/testcontainers/testcontainers-go/modules/vault"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Dockerfile is the FROM scratch image definition shared with
// scripts/vault-image.sh.
//
//go:embed vault.Dockerfile
var dockerfile []byte

// Bounds for the slow Docker steps.
const (
	pingTimeout  = 15 * time.Second
	pullTimeout  = 5 * time.Minute
	buildTimeout = 10 * time.Minute
)

// containerBackend is a Vault dev container.
type containerBackend struct {
	c   *tcvault.VaultContainer
	cli *testcontainers.DockerClient
}

// logfLogger adapts a printf function to testcontainers' logger.
type logfLogger func(format string, args ...any)

// Printf logs one message through the printf function.
func (l logfLogger) Printf(format string, args ...any) { l(format, args...) }

// dockerClient connects to the Docker engine the way testcontainers finds
// it, and checks that it answers. testcontainers panics when it finds no
// Docker host; that becomes an error wrapping ErrDockerUnavailable.
func dockerClient(ctx context.Context) (cli *testcontainers.DockerClient, err error) {
	disableRyuk()
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			cli, err = nil, fmt.Errorf("%w: %v", ErrDockerUnavailable, r)
		}
	}()
	cli, err = testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDockerUnavailable, err)
	}
	if _, err := cli.Ping(ctx); err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("%w: %w", ErrDockerUnavailable, err)
	}
	return cli, nil
}

// DockerAvailable reports whether a Docker engine answers, as testcontainers
// would find it.
func DockerAvailable(ctx context.Context) bool {
	cli, err := dockerClient(ctx)
	if err != nil {
		return false
	}
	_ = cli.Close()
	return true
}

func startContainer(ctx context.Context, cfg *config) (*Vault, error) {
	cli, err := dockerClient(ctx)
	if err != nil {
		return nil, err
	}
	img, err := resolveImage(ctx, cli.Client, cfg)
	if err != nil {
		_ = cli.Close()
		return nil, err
	}

	start := time.Now()
	var cmd []testcontainers.ContainerCustomizer
	if cfg.tls {
		// The image's own command plus -dev-tls: Vault writes its CA to
		// /tmp, read back below.
		cmd = append(cmd, testcontainers.WithCmd(append([]string{"server", "-dev", "-dev-no-store-token"},
			devTLSArgs(containerTLSCertDir)...)...))
	}
	c, err := tcvault.Run(ctx, img, append([]testcontainers.ContainerCustomizer{
		testcontainers.WithLogger(logfLogger(cfg.logf)),
		tcvault.WithToken(RootToken),
		testcontainers.WithEnv(map[string]string{
			"VAULT_DEV_LISTEN_ADDRESS": "0.0.0.0:8200",
			"VAULT_DEV_ROOT_TOKEN_ID":  RootToken,
		}),
		// Wait on the log, not over the network: inside a container (a
		// /.dockerenv exists) testcontainers reports the bridge gateway as
		// the host, which may be unreachable; reachableAddr picks the
		// address below, loopback first.
		testcontainers.WithWaitStrategyAndDeadline(cfg.startTimeout,
			wait.ForLog(startedLine).WithStartupTimeout(cfg.startTimeout)),
	}, cmd...)...)
	if err != nil {
		msg := ""
		if c != nil {
			cb := &containerBackend{c: c, cli: cli}
			if out, lerr := cb.logs(ctx); lerr == nil && out != "" {
				msg = "\n" + tail(redact(out), 30)
			}
			tctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_ = c.Terminate(tctx)
			cancel()
		}
		_ = cli.Close()
		return nil, fmt.Errorf("vaulttest: run container %s: %w%s", img, err, msg)
	}
	cb := &containerBackend{c: c, cli: cli}

	var caPEM []byte
	var tc *tls.Config
	if cfg.tls {
		caPEM, err = readContainerFile(ctx, cb, containerTLSCertDir+"/"+devTLSCAFile)
		if err == nil {
			tc, err = tlsConfigFor(caPEM)
		}
	}
	var addr string
	if err == nil {
		addr, err = reachableAddr(ctx, c, tc, cfg.startTimeout)
	}
	if err != nil {
		msg := ""
		if out, lerr := cb.logs(ctx); lerr == nil && out != "" {
			msg = "\n" + tail(redact(out), 30)
		}
		tctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = cb.terminate(tctx)
		return nil, fmt.Errorf("vaulttest: container %s: %w%s", img, err, msg)
	}
	cfg.logf("vaulttest: container %s started in %s", img, time.Since(start).Round(time.Millisecond))
	v := &Vault{Addr: addr, Token: RootToken, Backend: "container " + img, b: cb}
	if cfg.tls {
		v.Backend += " (tls)"
		if err := v.setTLS(caPEM, ""); err != nil {
			tctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = cb.terminate(tctx)
			return nil, err
		}
	}
	return v, nil
}

// startedLine is what the dev server logs once it serves requests.
const startedLine = "Vault server started!"

// reachableAddr returns the base URL at which the container's port 8200
// answers /v1/sys/health. Loopback is tried alone first (Docker publishes
// ports there on a local engine); only if it never answers is the host
// testcontainers reports tried as well (a remote engine, or Docker outside
// the container the tests run in). A non-nil tc means https, verified
// with tc (Vault's -dev-tls certificate names 127.0.0.1 and localhost
// only, so TLS through another host fails verification).
func reachableAddr(ctx context.Context, c testcontainers.Container, tc *tls.Config, timeout time.Duration) (string, error) {
	p, err := c.MappedPort(ctx, "8200/tcp")
	if err != nil {
		return "", fmt.Errorf("mapped port: %w", err)
	}
	scheme := "http://"
	if tc != nil {
		scheme = "https://"
	}
	loopback := scheme + net.JoinHostPort("127.0.0.1", p.Port())
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = waitHealthy(lctx, loopback, tc, nil)
	cancel()
	if err == nil {
		return loopback, nil
	}
	host, herr := c.Host(ctx)
	if herr != nil {
		return "", fmt.Errorf("%s: %w; container host: %w", loopback, err, herr)
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if host == "localhost" || host == "127.0.0.1" {
		if err := waitHealthy(wctx, loopback, tc, nil); err != nil {
			return "", fmt.Errorf("%s: %w", loopback, err)
		}
		return loopback, nil
	}
	other := scheme + net.JoinHostPort(host, p.Port())
	if err := waitHealthy(wctx, other, tc, nil); err != nil {
		return "", fmt.Errorf("neither %s nor %s answers: %w", loopback, other, err)
	}
	return other, nil
}

// resolveImage picks the image: the configured one, else the local image,
// else the upstream image (present or pulled), else the local image built
// from the cached binary.
func resolveImage(ctx context.Context, cli *client.Client, cfg *config) (string, error) {
	if cfg.image != "" {
		return cfg.image, nil // testcontainers pulls it when missing
	}
	for _, img := range []string{LocalImage, UpstreamImage} {
		ok, err := imageExists(ctx, cli, img)
		if err != nil {
			return "", err
		}
		if ok {
			return img, nil
		}
	}
	pullErr := pullImage(ctx, cli, UpstreamImage)
	if pullErr == nil {
		return UpstreamImage, nil
	}
	cfg.logf("vaulttest: pull %s failed (%v); building %s from the Vault binary", UpstreamImage, pullErr, LocalImage)

	bin := cfg.binary
	if bin == "" {
		bin = BinaryPath()
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%w: no image %s, pull of %s failed (%w), and no binary at %s to build one; %s",
			ErrNoBackend, LocalImage, UpstreamImage, pullErr, bin, hint)
	}
	if err := BuildImage(ctx, bin, LocalImage, cfg.logf); err != nil {
		return "", err
	}
	return LocalImage, nil
}

func imageExists(ctx context.Context, cli *client.Client, ref string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	_, err := cli.ImageInspect(ctx, ref)
	if err == nil {
		return true, nil
	}
	if client.IsErrNotFound(err) {
		return false, nil
	}
	return false, fmt.Errorf("vaulttest: inspect image %s: %w", ref, err)
}

func pullImage(ctx context.Context, cli *client.Client, ref string) error {
	ctx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	rc, err := cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	return jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil)
}

// BuildImage builds the FROM scratch Vault image tagged tag from the static
// Vault binary bin, unless an image with that tag already exists. Concurrent
// callers (test binaries of several packages) take a lock file in
// [CacheDir] so that only one of them builds. logf may be nil.
func BuildImage(ctx context.Context, bin, tag string, logf func(format string, args ...any)) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	disableRyuk()
	tc, err := dockerClient(ctx)
	if err != nil {
		return err
	}
	defer tc.Close()
	cli := tc.Client

	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	if err := os.MkdirAll(CacheDir(), 0o755); err != nil {
		return fmt.Errorf("vaulttest: cache dir: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(CacheDir(), "vault-image.lock"))
	if err != nil {
		return err
	}
	defer unlock()

	if ok, err := imageExists(ctx, cli, tag); err != nil || ok {
		return err
	}
	f, err := os.Open(bin)
	if err != nil {
		return fmt.Errorf("%w: %w; %s", ErrBinaryNotFound, err, hint)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("vaulttest: stat %s: %w", bin, err)
	}

	start := time.Now()
	logf("vaulttest: building image %s from %s (%d MB)", tag, bin, st.Size()>>20)
	pr, pw := io.Pipe()
	defer pr.Close() // unblocks the writer if the build stops reading
	go func() { pw.CloseWithError(writeContext(pw, f, st.Size())) }()

	resp, err := cli.ImageBuild(ctx, pr, build.ImageBuildOptions{
		Tags:        []string{tag},
		Dockerfile:  "Dockerfile",
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
		Labels:      map[string]string{"org.knotmtls.vault-version": VaultVersion},
	})
	if err != nil {
		return fmt.Errorf("vaulttest: build image %s: %w", tag, err)
	}
	defer resp.Body.Close()
	var out strings.Builder
	if err := jsonmessage.DisplayJSONMessagesStream(resp.Body, &out, 0, false, nil); err != nil {
		return fmt.Errorf("vaulttest: build image %s: %w\n%s", tag, err, tail(out.String(), 20))
	}
	if ok, err := imageExists(ctx, cli, tag); err != nil || !ok {
		return errors.Join(fmt.Errorf("vaulttest: image %s missing after build:\n%s", tag, tail(out.String(), 20)), err)
	}
	logf("vaulttest: built image %s in %s", tag, time.Since(start).Round(time.Millisecond))
	return nil
}

// writeContext writes the build context: Dockerfile, rootfs/bin/vault and
// an empty rootfs/tmp.
func writeContext(w io.Writer, bin io.Reader, size int64) error {
	tw := tar.NewWriter(w)
	now := time.Now()
	dirs := []struct {
		name string
		mode int64
	}{{"rootfs/", 0o755}, {"rootfs/bin/", 0o755}, {"rootfs/tmp/", 0o1777}}
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile)), ModTime: now}); err != nil {
		return err
	}
	if _, err := tw.Write(dockerfile); err != nil {
		return err
	}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Name: d.name, Typeflag: tar.TypeDir, Mode: d.mode, ModTime: now}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "rootfs/bin/vault", Mode: 0o755, Size: size, ModTime: now}); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, bin, size); err != nil {
		return err
	}
	return tw.Close()
}

func (c *containerBackend) pause(ctx context.Context) error {
	if err := c.cli.ContainerPause(ctx, c.c.GetContainerID()); err != nil {
		return fmt.Errorf("vaulttest: pause container: %w", err)
	}
	return nil
}

func (c *containerBackend) unpause(ctx context.Context) error {
	if err := c.cli.ContainerUnpause(ctx, c.c.GetContainerID()); err != nil {
		return fmt.Errorf("vaulttest: unpause container: %w", err)
	}
	return nil
}

func (c *containerBackend) stop(ctx context.Context) error {
	grace := 5 * time.Second
	if err := c.c.Stop(ctx, &grace); err != nil {
		return fmt.Errorf("vaulttest: stop container: %w", err)
	}
	return nil
}

func (c *containerBackend) terminate(ctx context.Context) error {
	err := c.c.Terminate(ctx)
	_ = c.cli.Close()
	if err != nil {
		return fmt.Errorf("vaulttest: terminate container: %w", err)
	}
	return nil
}

func (c *containerBackend) logs(ctx context.Context) (string, error) {
	rc, err := c.c.Logs(ctx)
	if err != nil {
		return "", fmt.Errorf("vaulttest: container logs: %w", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	return string(b), err
}

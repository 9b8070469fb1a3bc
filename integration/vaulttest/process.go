package vaulttest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// processBackend runs the Vault binary as a local dev server.
type processBackend struct {
	cmd  *exec.Cmd
	out  *ringBuffer
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // cmd.Wait's result, valid after done is closed
}

// findBinary returns the Vault binary for the process backend: the
// configured path, else the cache, else "vault" on PATH.
func findBinary(cfg *config) (string, error) {
	if cfg.binary != "" {
		if _, err := os.Stat(cfg.binary); err != nil {
			return "", fmt.Errorf("%w: %s: %w; %s", ErrBinaryNotFound, cfg.binary, err, hint)
		}
		return cfg.binary, nil
	}
	p := BinaryPath()
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if lp, err := exec.LookPath("vault"); err == nil {
		return lp, nil
	}
	return "", fmt.Errorf("%w: not at %s nor on PATH; %s", ErrBinaryNotFound, p, hint)
}

func startProcess(ctx context.Context, cfg *config) (*Vault, error) {
	bin, err := findBinary(cfg)
	if err != nil {
		return nil, err
	}
	var tlsDir string
	if cfg.tls {
		d, err := os.MkdirTemp("", "vaulttest-tls-")
		if err != nil {
			return nil, fmt.Errorf("vaulttest: tls dir: %w", err)
		}
		tlsDir = d
	}
	start := time.Now()
	// A free port can be taken by someone else between our probe and
	// Vault's bind, so retry a few times on a bind failure.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePortPair()
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		pb, caPEM, err := launch(ctx, bin, addr, tlsDir, cfg.startTimeout)
		if err == nil {
			v := &Vault{Addr: "http://" + addr, Token: RootToken, Backend: "process " + bin, b: pb}
			if tlsDir != "" {
				v.Addr, v.Backend = "https://"+addr, v.Backend+" (tls)"
				if err := v.setTLS(caPEM, tlsDir); err != nil {
					_ = pb.kill(context.Background())
					_ = os.RemoveAll(tlsDir)
					return nil, err
				}
			}
			cfg.logf("vaulttest: process %s started on %s in %s", bin, addr, time.Since(start).Round(time.Millisecond))
			return v, nil
		}
		lastErr = err
		if ctx.Err() != nil || !errors.Is(err, errAddrInUse) {
			break
		}
	}
	if tlsDir != "" {
		_ = os.RemoveAll(tlsDir)
	}
	return nil, lastErr
}

var errAddrInUse = errors.New("address already in use")

// launch starts one Vault process listening on addr and waits until it is
// healthy, it exits, or the timeout passes. With a tlsDir it serves HTTPS
// (-dev-tls, files in tlsDir) and returns the CA it generated.
func launch(ctx context.Context, bin, addr, tlsDir string, timeout time.Duration) (*processBackend, []byte, error) {
	args := []string{"server", "-dev",
		"-dev-listen-address=" + addr,
		"-dev-root-token-id=" + RootToken,
		"-dev-no-store-token",
	}
	if tlsDir != "" {
		args = append(args, devTLSArgs(tlsDir)...)
		// A CA left by an attempt that lost its port must not be read
		// as this process's.
		_ = os.Remove(filepath.Join(tlsDir, devTLSCAFile))
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = processEnv()
	out := newRingBuffer(256 << 10)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.WaitDelay = 5 * time.Second // do not hang on output pipes held by strays
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("vaulttest: start %s: %w", bin, err)
	}
	pb := &processBackend{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		pb.err = cmd.Wait()
		close(pb.done)
	}()

	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var caPEM []byte
	err := func() error {
		if tlsDir == "" {
			return waitHealthy(wctx, "http://"+addr, nil, pb.done)
		}
		// Vault writes its CA before it listens.
		b, err := waitFile(wctx, filepath.Join(tlsDir, devTLSCAFile), pb.done)
		if err != nil {
			return err
		}
		tc, err := tlsConfigFor(b)
		if err != nil {
			return err
		}
		caPEM = b
		return waitHealthy(wctx, "https://"+addr, tc, pb.done)
	}()
	if err != nil {
		_ = pb.kill(context.Background())
		logs := out.String()
		if strings.Contains(logs, "address already in use") {
			err = fmt.Errorf("%w: %w", err, errAddrInUse)
		}
		return nil, nil, fmt.Errorf("vaulttest: vault process on %s: %w\n%s", addr, err, tail(redact(logs), 30))
	}
	return pb, caPEM, nil
}

// processEnv is the environment without VAULT_* variables, which could
// point the dev server at another address or token.
func processEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VAULT_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// waitHealthy polls addr/v1/sys/health until it answers 200, exited is
// closed, or ctx ends. tc (nil for http) verifies an https server.
func waitHealthy(ctx context.Context, addr string, tc *tls.Config, exited <-chan struct{}) error {
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: tc}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, addr+"/v1/sys/health", nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("health status %d", resp.StatusCode)
		} else {
			last = err
		}
		select {
		case <-exited:
			return errors.New("process exited before it was healthy")
		case <-ctx.Done():
			return fmt.Errorf("not healthy before deadline: %w (last: %v)", ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// freePortPair returns a loopback port p such that p and p+1 are free: the
// dev server also listens on p+1 for cluster traffic.
func freePortPair() (int, error) {
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("vaulttest: find free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1))
		_ = l.Close()
		if err != nil {
			continue
		}
		_ = l2.Close()
		return port, nil
	}
	return 0, errors.New("vaulttest: no free pair of loopback ports")
}

func (p *processBackend) pause(context.Context) error {
	if err := signalStop(p.cmd.Process); err != nil {
		return fmt.Errorf("vaulttest: pause process: %w", err)
	}
	return nil
}

func (p *processBackend) unpause(context.Context) error {
	if err := signalCont(p.cmd.Process); err != nil {
		return fmt.Errorf("vaulttest: unpause process: %w", err)
	}
	return nil
}

func (p *processBackend) stop(ctx context.Context) error { return p.kill(ctx) }

func (p *processBackend) terminate(ctx context.Context) error { return p.kill(ctx) }

// kill kills the process and waits until it has been reaped.
func (p *processBackend) kill(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("vaulttest: kill vault process: %w", err)
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("vaulttest: wait for vault process: %w", ctx.Err())
	}
}

func (p *processBackend) logs(context.Context) (string, error) { return p.out.String(), nil }

// ringBuffer keeps the last max bytes written to it. It is safe for
// concurrent use.
type ringBuffer struct {
	mu    sync.Mutex
	max   int
	buf   []byte
	trunc bool
}

func newRingBuffer(max int) *ringBuffer { return &ringBuffer{max: max} }

// Write appends p, dropping the oldest bytes beyond the limit.
func (r *ringBuffer) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	if over := len(r.buf) - r.max; over > 0 {
		r.buf = append(r.buf[:0], r.buf[over:]...)
		r.trunc = true
	}
	return len(p), nil
}

// String returns what is kept, marked when earlier output was dropped.
func (r *ringBuffer) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.trunc {
		return "[earlier output dropped]\n" + string(r.buf)
	}
	return string(r.buf)
}

package vaulttest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// ProxyAppRole is the AppRole auto-auth a [Proxy] logs in with.
type ProxyAppRole struct {
	RoleID   string
	SecretID string
	// Mount is the AppRole mount, "approle" when empty.
	Mount string
}

// Proxy is a real Vault Proxy ("vault proxy", the same binary as the
// server) in front of a [Vault], with AppRole auto-auth and
// api_proxy.use_auto_auth_token: clients send requests without a token and
// the proxy adds its own. It runs as a local process whatever the Vault's
// backend (a container's address is reachable on loopback).
type Proxy struct {
	// Addr is the proxy's base URL, e.g. http://127.0.0.1:38201: what a
	// service puts in VAULT_AGENT_ADDR.
	Addr string

	pb  *processBackend
	dir string
}

// StartProxy starts a Vault Proxy for v that logs in with role and waits
// until it answers. Stop it with [Proxy.Stop] (StartProxyTest does it at
// cleanup).
func StartProxy(ctx context.Context, v *Vault, role ProxyAppRole, opts ...Option) (*Proxy, error) {
	cfg := newConfig(opts)
	bin, err := findBinary(cfg)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "vaulttest-proxy-")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Proxy, error) {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	roleFile, secretFile := filepath.Join(dir, "role-id"), filepath.Join(dir, "secret-id")
	if err := os.WriteFile(roleFile, []byte(role.RoleID), 0o600); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(secretFile, []byte(role.SecretID), 0o600); err != nil {
		return fail(err)
	}
	mount := role.Mount
	if mount == "" {
		mount = "approle"
	}
	port, err := freePortPair()
	if err != nil {
		return fail(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	hcl := fmt.Sprintf(`
vault {
  address = %q
}
auto_auth {
  method "approle" {
    mount_path = "auth/%s"
    config = {
      role_id_file_path                   = %q
      secret_id_file_path                 = %q
      remove_secret_id_file_after_reading = false
    }
  }
}
api_proxy {
  use_auto_auth_token = true
}
listener "tcp" {
  address     = %q
  tls_disable = true
}
`, v.Addr, mount, roleFile, secretFile, addr)
	confFile := filepath.Join(dir, "proxy.hcl")
	if err := os.WriteFile(confFile, []byte(hcl), 0o600); err != nil {
		return fail(err)
	}
	cmd := exec.Command(bin, "proxy", "-config="+confFile)
	cmd.Env = processEnv()
	out := newRingBuffer(256 << 10)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return fail(fmt.Errorf("vaulttest: start vault proxy: %w", err))
	}
	pb := &processBackend{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		pb.err = cmd.Wait()
		close(pb.done)
	}()
	p := &Proxy{Addr: "http://" + addr, pb: pb, dir: dir}
	wctx, cancel := context.WithTimeout(ctx, cfg.startTimeout)
	defer cancel()
	if err := p.waitLoggedIn(wctx); err != nil {
		_ = p.Stop(context.Background())
		return nil, fmt.Errorf("vaulttest: vault proxy on %s: %w\n%s", addr, err, tail(redact(out.String()), 30))
	}
	cfg.logf("vaulttest: vault proxy %s on %s in front of %s", bin, addr, v.Addr)
	return p, nil
}

// waitLoggedIn polls lookup-self through the proxy (no token: the proxy
// adds its own) until it answers 200.
func (p *Proxy) waitLoggedIn(ctx context.Context) error {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.Addr+"/v1/auth/token/lookup-self", nil)
		resp, err := hc.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("lookup-self answered %d", resp.StatusCode)
		}
		last = err
		select {
		case <-p.pb.done:
			return errors.New("the proxy exited")
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// Logs returns the proxy's output (secrets redacted).
func (p *Proxy) Logs() string { return redact(p.pb.out.String()) }

// Stop kills the proxy and removes its files. It is idempotent.
func (p *Proxy) Stop(ctx context.Context) error {
	err := p.pb.kill(ctx)
	_ = os.RemoveAll(p.dir)
	return err
}

package vaultauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"golang.org/x/sync/singleflight"

	"github.com/knotmtls/knotmtls/internal/vaultresp"
)

// Proxy is the auth mode for a service that reaches Vault through a local
// Vault Proxy or Vault Agent with use_auto_auth_token: the proxy logs in,
// renews and adds its token to every request, so the service holds no
// token. Point the client at the proxy with VAULT_AGENT_ADDR (read by
// api.DefaultConfig), an http://127.0.0.1 address or a unix:// socket.
//
// A Proxy does no login and no renewal. When Vault answers 403 it asks the
// proxy's token about itself (auth/token/lookup-self through the proxy):
// a valid token means the policy denies the path (an error wrapping
// [ErrPermissionDenied], no retry); an invalid one means the proxy's token
// was revoked or expired, and since a Vault Proxy logs in again after it
// returned such a 403, HandleDenied waits briefly ([WithProxyWait]) and lets
// the caller retry once. When Vault's 403 itself said "invalid token" there
// is no lookup, only the wait. Concurrent callers share one lookup and one
// wait; a verdict holds for one wait period.
type Proxy struct {
	client *api.Client
	cfg    proxyConfig
	log    *slog.Logger
	group  singleflight.Group

	mu      sync.Mutex
	verdict proxyVerdict
	st      ProxyStatus
}

type proxyVerdict struct {
	err   error // nil: retry
	until time.Time
}

// ProxyStatus counts what a [Proxy] did.
type ProxyStatus struct {
	// Lookups counts lookup-self requests sent through the proxy.
	Lookups int
	// Retries counts 403s answered with "retry" (the proxy's token was
	// invalid); Denials those answered with a permission error.
	Retries int
	Denials int
}

var errProxyClient = errors.New("vaultauth: nil vault client")

// NewProxy returns a [Proxy] for client and clears any token set on it (a
// token on the client would replace the proxy's). It does no I/O.
func NewProxy(client *api.Client, opts ...ProxyOption) (*Proxy, error) {
	if client == nil {
		return nil, errProxyClient
	}
	cfg := proxyConfig{wait: DefaultProxyWait, timeout: DefaultTimeout}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.configureProxy(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	client.ClearToken()
	return &Proxy{client: client, cfg: cfg, log: cfg.logger.With("component", "vaultauth", "method", "proxy")}, nil
}

// String says what it is; a Proxy holds no token.
func (p *Proxy) String() string { return "vaultauth.Proxy(" + p.client.Address() + ")" }

// Status returns the counters.
func (p *Proxy) Status() ProxyStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// HandleDenied is called by the Vault sources after a 403 for path (which
// needs capability; invalidToken: Vault said "invalid token"). It returns nil when the request should be retried
// once (the proxy's token was invalid and the proxy had time to log in
// again), or an error wrapping [ErrPermissionDenied] (the proxy's token is
// valid: a policy problem) or [ErrUnavailable].
func (p *Proxy) HandleDenied(ctx context.Context, path, capability string, invalidToken bool) error {
	p.mu.Lock()
	v := p.verdict
	p.mu.Unlock()
	if time.Now().Before(v.until) && (v.err == nil || !invalidToken) {
		return p.annotate(v.err, path, capability)
	}
	ch := p.group.DoChan("", func() (any, error) { return nil, p.diagnose(path, capability, invalidToken) })
	select {
	case <-ctx.Done():
		return ctx.Err()
	case r := <-ch:
		return p.annotate(r.Err, path, capability)
	}
}

// annotate names the caller's own path in a denial.
func (p *Proxy) annotate(err error, path, capability string) error {
	if errors.Is(err, ErrPermissionDenied) {
		return fmt.Errorf("vaultauth: %w: the proxy's token lacks %q on %s", ErrPermissionDenied, capability, path)
	}
	return err
}

func (p *Proxy) diagnose(path, capability string, invalidToken bool) error {
	class, lerr := vaultresp.InvalidToken, error(nil)
	if !invalidToken {
		// Vault did not say why: ask about the proxy's token. (When it did
		// say "invalid token", the proxy is already logging in again and a
		// lookup now would see its new, valid token.)
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.timeout)
		_, class, lerr = vaultresp.LookupSelf(ctx, p.client, "")
		cancel()
	}
	var err error
	switch class {
	case vaultresp.OK:
		err = ErrPermissionDenied
		p.log.Warn("vaultauth: the vault proxy's token is valid but its policy denies the request",
			"path", path, "capability", capability)
	case vaultresp.InvalidToken:
		p.log.Info("vaultauth: the vault proxy's token is invalid; waiting for the proxy to log in again",
			"wait", p.cfg.wait)
		t := time.NewTimer(p.cfg.wait)
		<-t.C
	default:
		err = fmt.Errorf("%w: lookup-self through the proxy (%s): %s", ErrUnavailable, class, oneLine(lerr))
	}
	p.mu.Lock()
	if !invalidToken {
		p.st.Lookups++
	}
	switch {
	case err == nil:
		p.st.Retries++
	case errors.Is(err, ErrPermissionDenied):
		p.st.Denials++
	}
	if class == vaultresp.OK || class == vaultresp.InvalidToken {
		p.verdict = proxyVerdict{err: err, until: time.Now().Add(p.cfg.wait)}
	}
	p.mu.Unlock()
	return err
}

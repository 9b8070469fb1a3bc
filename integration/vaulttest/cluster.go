package vaulttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/vault/api"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

// ClusterSize is the number of Vault nodes [StartCluster] starts.
const ClusterSize = 3

// Errors of the cluster harness.
var (
	// ErrNoActiveNode is returned (wrapped) when no running node is the
	// active one before the deadline.
	ErrNoActiveNode = errors.New("vaulttest: no active vault node")
	// ErrNodeNotRunning is returned by operations on a killed node that
	// need it running (Pause, Seal, Unseal, Client requests).
	ErrNodeNotRunning = errors.New("vaulttest: vault node is not running")
)

// Cluster is a 3-node Vault cluster with integrated storage (Raft), every
// node initialised, unsealed and joined, with KV v2 mounted at secret/ and
// Transit at transit/. Clients reach it the way users do, through one
// address that stays up: [Cluster.Addr] is a [LoopbackProxy] over the nodes
// that skips dead ones; a standby forwards requests to the active node.
//
// The root token and the unseal key are kept inside and never printed:
// every fmt verb on a Cluster shows only its backend and node addresses.
type Cluster struct {
	// Backend says what runs the nodes: "container <image>" (one Docker
	// network) or "process <binary>" (loopback processes).
	Backend string
	// Nodes are the cluster's nodes; Nodes[0] was initialised first.
	Nodes []*Node

	proxy   *LoopbackProxy
	secrets *clusterSecrets // behind a pointer: fmt shows only its address
	logf    func(format string, args ...any)
	closeFn func(ctx context.Context) error // removes the network / temp dir

	mu         sync.Mutex
	terminated bool
	transports []*http.Transport
}

// clusterSecrets holds what init returned.
type clusterSecrets struct {
	rootToken string
	unsealKey string
}

// Format prints a placeholder for every verb: the values never leave.
func (*clusterSecrets) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "[redacted]") }

// Node is one Vault server of a [Cluster].
type Node struct {
	// Name is the node's Raft node_id and, on the container backend, its
	// host name on the cluster's Docker network ("vault-1").
	Name string

	joinAddr string // the API address the other nodes reach this one at (raft join)
	cluster  *Cluster
	r        nodeRunner

	mu      sync.Mutex
	running bool
	paused  bool
}

// nodeRunner is what runs one node: a container or a process.
type nodeRunner interface {
	// start starts (or restarts) the node and returns the host:port, on
	// loopback, at which its API listener is reachable.
	start(ctx context.Context) (string, error)
	hostAddr() string
	kill(ctx context.Context) error
	pause(ctx context.Context) error
	unpause(ctx context.Context) error
	terminate(ctx context.Context) error
	logs(ctx context.Context) (string, error)
}

// Format prints the cluster's backend and node addresses for every verb;
// the root token and unseal key are never printed.
func (c *Cluster) Format(f fmt.State, _ rune) {
	names := make([]string, 0, len(c.Nodes))
	for _, n := range c.Nodes {
		names = append(names, n.String())
	}
	addr := ""
	if c.proxy != nil {
		addr = c.proxy.URL()
	}
	_, _ = fmt.Fprintf(f, "vaulttest.Cluster{%s, addr %s, nodes [%s]}", c.Backend, addr, strings.Join(names, " "))
}

// String returns the node's name and host address.
func (n *Node) String() string { return n.Name + "@" + n.Addr() }

// Addr returns the node's own API base URL on loopback, e.g.
// http://127.0.0.1:32770. It may change when the node restarts.
func (n *Node) Addr() string { return "http://" + n.r.hostAddr() }

// Running reports whether the node has been started and not killed.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.running
}

// Addr returns the base URL of the cluster's one address (the proxy), e.g.
// http://127.0.0.1:41234.
func (c *Cluster) Addr() string { return c.proxy.URL() }

// Proxy returns the load balancer in front of the nodes.
func (c *Cluster) Proxy() *LoopbackProxy { return c.proxy }

// Client returns a root-token client for the cluster's address (the proxy).
// It ignores VAULT_* environment variables.
func (c *Cluster) Client() (*api.Client, error) { return c.ClientWith(nil) }

// ClientWith is [Cluster.Client] with the HTTP transport replaced by rt (for
// example one that counts requests). A nil rt gives a pooled transport whose
// idle connections [Cluster.Terminate] closes.
func (c *Cluster) ClientWith(rt http.RoundTripper) (*api.Client, error) {
	return c.client(c.Addr(), rt, c.secrets.rootToken, false)
}

// Client returns a root-token client talking to this node only (no proxy),
// with vault/api's retries and redirects off so that each call is one
// request answered by this node (a standby forwards it to the active node,
// or answers 307 while it cannot).
func (n *Node) Client() (*api.Client, error) {
	cl, err := n.cluster.client(n.Addr(), nil, n.cluster.secrets.rootToken, true)
	if err != nil {
		return nil, err
	}
	cl.SetMaxRetries(0)
	return cl, nil
}

func (c *Cluster) client(addr string, rt http.RoundTripper, token string, noRedirects bool) (*api.Client, error) {
	cfg := api.DefaultConfig()
	cfg.Error = nil
	cfg.DisableRedirects = noRedirects
	cfg.Address = addr
	cfg.HttpClient = cleanhttp.DefaultPooledClient()
	if rt == nil {
		if tr, ok := cfg.HttpClient.Transport.(*http.Transport); ok {
			c.mu.Lock()
			c.transports = append(c.transports, tr)
			c.mu.Unlock()
		}
	} else {
		cfg.HttpClient.Transport = rt
	}
	cl, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vaulttest: new client: %w", err)
	}
	cl.ClearNamespace()
	if token != "" {
		cl.SetToken(token)
	} else {
		cl.ClearToken()
	}
	return cl, nil
}

// NodeHealth is what a node's /v1/sys/health says.
type NodeHealth struct {
	// Status is the HTTP status: 200 active, 429 standby, 503 sealed,
	// 501 not initialised.
	Status int
	api.HealthResponse
}

// Active reports whether the node is the unsealed active node.
func (h NodeHealth) Active() bool { return h.Status == http.StatusOK && !h.Sealed && !h.Standby }

// healthClient answers quickly and never retries: the harness polls.
var healthClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// Health asks this node (not the proxy) for /v1/sys/health, once.
func (n *Node) Health(ctx context.Context) (NodeHealth, error) {
	return health(ctx, n.Addr())
}

func health(ctx context.Context, base string) (NodeHealth, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/sys/health", nil)
	if err != nil {
		return NodeHealth{}, err
	}
	resp, err := healthClient.Do(req)
	if err != nil {
		return NodeHealth{}, fmt.Errorf("vaulttest: health %s: %w", base, err)
	}
	defer resp.Body.Close()
	h := NodeHealth{Status: resp.StatusCode}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return h, fmt.Errorf("vaulttest: health %s: %w", base, err)
	}
	if err := json.Unmarshal(body, &h.HealthResponse); err != nil {
		return h, fmt.Errorf("vaulttest: health %s: status %d: %w", base, resp.StatusCode, err)
	}
	return h, nil
}

// Active returns the running node that is active now, or an error wrapping
// [ErrNoActiveNode] (for example during an election).
func (c *Cluster) Active(ctx context.Context) (*Node, error) {
	var errs []error
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		h, err := n.Health(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if h.Active() {
			return n, nil
		}
	}
	return nil, fmt.Errorf("%w: %w", ErrNoActiveNode, errors.Join(errs...))
}

// WaitActive polls the running nodes (every 50 ms) until one other than
// except (which may be nil) is active, and returns it with the time waited.
func (c *Cluster) WaitActive(ctx context.Context, except *Node) (*Node, time.Duration, error) {
	start := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		n, err := c.Active(ctx)
		if err == nil && n != except {
			return n, time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return nil, time.Since(start), fmt.Errorf("%w after %s: %w", ErrNoActiveNode, time.Since(start).Round(time.Millisecond), ctx.Err())
		case <-tick.C:
		}
	}
}

// Standbys returns the running nodes other than the active one.
func (c *Cluster) Standbys(ctx context.Context) ([]*Node, error) {
	active, err := c.Active(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Node
	for _, n := range c.Nodes {
		if n != active && n.Running() {
			out = append(out, n)
		}
	}
	return out, nil
}

// Kill kills the node at once (docker kill / SIGKILL): no step-down, its
// connections die with it, its Raft data stays for [Cluster.Restart].
func (c *Cluster) Kill(ctx context.Context, n *Node) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.running {
		return nil
	}
	if n.paused {
		if err := n.r.unpause(ctx); err != nil {
			return err
		}
		n.paused = false
	}
	if err := n.r.kill(ctx); err != nil {
		return err
	}
	n.running = false
	c.logf("vaulttest: cluster node %s killed", n.Name)
	return nil
}

// Restart starts a killed node again with its Raft data and points the
// proxy at its (possibly new) port. Like any Vault server with a Shamir seal
// it comes back sealed: call [Cluster.Unseal]. Restarting a running node
// does nothing.
func (c *Cluster) Restart(ctx context.Context, n *Node) error {
	n.mu.Lock()
	if n.running {
		n.mu.Unlock()
		return nil
	}
	start := time.Now()
	if _, err := n.r.start(ctx); err != nil {
		n.mu.Unlock()
		return err
	}
	n.running = true
	n.mu.Unlock()
	if err := c.updateProxy(); err != nil {
		return err
	}
	if err := waitResponding(ctx, n.Addr()); err != nil {
		return fmt.Errorf("vaulttest: restart %s: %w", n.Name, err)
	}
	c.logf("vaulttest: cluster node %s restarted (sealed) in %s", n.Name, time.Since(start).Round(time.Millisecond))
	return nil
}

// Pause freezes the node (docker pause / SIGSTOP): it accepts connections
// but answers nothing, and stops heartbeating, so the others elect a leader
// without it if it was active.
func (c *Cluster) Pause(ctx context.Context, n *Node) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.running {
		return ErrNodeNotRunning
	}
	if n.paused {
		return nil
	}
	if err := n.r.pause(ctx); err != nil {
		return err
	}
	n.paused = true
	return nil
}

// Unpause resumes a paused node.
func (c *Cluster) Unpause(ctx context.Context, n *Node) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.running {
		return ErrNodeNotRunning
	}
	if !n.paused {
		return nil
	}
	if err := n.r.unpause(ctx); err != nil {
		return err
	}
	n.paused = false
	return nil
}

// Seal seals the node through sys/seal. Vault seals only an active node
// (which steps down, so a standby takes over) and refuses to seal a standby;
// to get a sealed cluster, kill and restart every node.
func (c *Cluster) Seal(ctx context.Context, n *Node) error {
	if !n.Running() {
		return ErrNodeNotRunning
	}
	cl, err := n.Client()
	if err != nil {
		return err
	}
	if err := cl.Sys().SealWithContext(ctx); err != nil {
		return fmt.Errorf("vaulttest: seal %s: %w", n.Name, err)
	}
	return nil
}

// Unseal unseals the node with the cluster's key and waits (bounded by ctx)
// until it reports unsealed.
func (c *Cluster) Unseal(ctx context.Context, n *Node) error {
	if !n.Running() {
		return ErrNodeNotRunning
	}
	cl, err := n.Client()
	if err != nil {
		return err
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var sentAt time.Time
	for {
		h, herr := n.Health(ctx)
		if herr == nil && h.Initialized && !h.Sealed {
			return nil
		}
		// A joining node may need the key again once its join completes:
		// send it again every 2 s while the node stays sealed.
		if time.Since(sentAt) > 2*time.Second {
			if _, err := cl.Sys().UnsealWithContext(ctx, c.secrets.unsealKey); err == nil {
				sentAt = time.Now()
			} else if ctx.Err() == nil {
				c.logf("vaulttest: unseal %s: %v (retrying)", n.Name, err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("vaulttest: unseal %s: %w (last health: status %d sealed %v initialized %v, err %v)",
				n.Name, ctx.Err(), h.Status, h.Sealed, h.Initialized, herr)
		case <-tick.C:
		}
	}
}

// Logs returns the node's output so far (for diagnostics).
func (c *Cluster) Logs(ctx context.Context, n *Node) (string, error) {
	out, err := n.r.logs(ctx)
	return redact(out), err
}

// Terminate stops and removes every node, the proxy and what the backend
// created (network, temporary directory). It is idempotent.
func (c *Cluster) Terminate(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.terminated {
		return nil
	}
	c.terminated = true
	var errs []error
	if c.proxy != nil {
		errs = append(errs, c.proxy.Close())
	}
	for _, n := range c.Nodes {
		n.mu.Lock()
		if n.paused {
			errs = append(errs, n.r.unpause(ctx))
			n.paused = false
		}
		errs = append(errs, n.r.terminate(ctx))
		n.running = false
		n.mu.Unlock()
	}
	if c.closeFn != nil {
		errs = append(errs, c.closeFn(ctx))
	}
	for _, tr := range c.transports {
		tr.CloseIdleConnections()
	}
	c.transports = nil
	return errors.Join(errs...)
}

func (c *Cluster) updateProxy() error {
	addrs := make([]string, 0, len(c.Nodes))
	for _, n := range c.Nodes {
		addrs = append(addrs, n.r.hostAddr())
	}
	return c.proxy.SetBackends(addrs...)
}

// StartCluster starts a [ClusterSize]-node Raft cluster with the same
// backend resolution as [Start] (container when Docker answers, else local
// processes; [WithBackend] forces one). It initialises node 1 (one Shamir key
// share), unseals it, joins the others with sys/storage/raft/join, unseals
// them, waits until all are Raft voters (10–30 s: autopilot promotes joined
// nodes on its 10 s reconcile), and mounts KV v2 at secret/ and
// Transit at transit/. Elections are sped up with performance_multiplier=1.
// The caller must call [Cluster.Terminate].
func StartCluster(ctx context.Context, opts ...Option) (*Cluster, error) {
	cfg := newConfig(opts)
	disableRyuk()
	switch cfg.backend {
	case BackendContainer:
		return startClusterOn(ctx, cfg, newContainerCluster)
	case BackendProcess:
		return startClusterOn(ctx, cfg, newProcessCluster)
	case BackendAuto:
	default:
		return nil, fmt.Errorf("vaulttest: unknown backend %q (want %q, %q or %q)",
			cfg.backend, BackendAuto, BackendContainer, BackendProcess)
	}
	c, cerr := startClusterOn(ctx, cfg, newContainerCluster)
	if cerr == nil {
		return c, nil
	}
	if ctx.Err() != nil {
		return nil, cerr
	}
	cfg.logf("vaulttest: container cluster unavailable, trying local processes: %v", cerr)
	c, perr := startClusterOn(ctx, cfg, newProcessCluster)
	if perr == nil {
		return c, nil
	}
	return nil, fmt.Errorf("%w:\n  container: %w\n  process: %w", ErrNoBackend, cerr, perr)
}

// StartClusterTest starts a cluster for a test: it fails the test when
// StartCluster fails, logs the backend, and terminates the cluster in
// t.Cleanup (logging each node's last output first if the test failed).
func StartClusterTest(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	opts = append([]Option{WithLogf(t.Logf)}, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := StartCluster(ctx, opts...)
	if err != nil {
		t.Fatalf("vaulttest: start cluster: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if t.Failed() {
			for _, n := range c.Nodes {
				if out, err := c.Logs(ctx, n); err == nil {
					t.Logf("vault node %s output, last lines:\n%s", n.Name, tail(out, 40))
				}
			}
		}
		if err := c.Terminate(ctx); err != nil {
			t.Errorf("vaulttest: terminate cluster: %v", err)
		}
	})
	t.Logf("vault cluster backend: %s", c.Backend)
	return c
}

// clusterBackend creates the nodes of one backend.
type clusterBackend struct {
	name    string
	nodes   []*Node
	closeFn func(ctx context.Context) error
}

type newBackendFunc func(ctx context.Context, cfg *config) (*clusterBackend, error)

func startClusterOn(ctx context.Context, cfg *config, newBackend newBackendFunc) (*Cluster, error) {
	start := time.Now()
	b, err := newBackend(ctx, cfg)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Backend: b.name, Nodes: b.nodes, logf: cfg.logf, closeFn: b.closeFn, secrets: &clusterSecrets{}}
	for _, n := range c.Nodes {
		n.cluster = c
	}
	fail := func(err error) (*Cluster, error) {
		var logs strings.Builder
		for _, n := range c.Nodes {
			if out, lerr := c.Logs(ctx, n); lerr == nil && out != "" {
				fmt.Fprintf(&logs, "\n--- %s:\n%s", n.Name, tail(out, 15))
			}
		}
		tctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_ = c.Terminate(tctx)
		return nil, fmt.Errorf("vaulttest: cluster on %s: %w%s", b.name, err, logs.String())
	}
	// Start all nodes first (in parallel: container starts are slow).
	var wg sync.WaitGroup
	errs := make([]error, len(c.Nodes))
	for i, n := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := n.r.start(ctx); err != nil {
				errs[i] = fmt.Errorf("start %s: %w", n.Name, err)
				return
			}
			n.mu.Lock()
			n.running = true
			n.mu.Unlock()
			errs[i] = waitResponding(ctx, n.Addr())
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	proxy, err := NewLoopbackProxy()
	if err != nil {
		return fail(err)
	}
	c.proxy = proxy
	if err := c.updateProxy(); err != nil {
		return fail(err)
	}
	cfg.logf("vaulttest: cluster nodes started in %s", time.Since(start).Round(time.Millisecond))
	if err := c.bootstrap(ctx); err != nil {
		return fail(err)
	}
	cfg.logf("vaulttest: cluster %v ready in %s", c, time.Since(start).Round(time.Millisecond))
	return c, nil
}

// bootstrap initialises, unseals and joins the nodes and mounts the engines.
func (c *Cluster) bootstrap(ctx context.Context) error {
	first := c.Nodes[0]
	cl, err := c.client(first.Addr(), nil, "", true)
	if err != nil {
		return err
	}
	cl.SetMaxRetries(0)
	init, err := cl.Sys().InitWithContext(ctx, &api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		return fmt.Errorf("init %s: %w", first.Name, err)
	}
	if len(init.Keys) != 1 || init.RootToken == "" {
		return fmt.Errorf("init %s: got %d keys and an empty root token: %v", first.Name, len(init.Keys), init.RootToken == "")
	}
	c.secrets.unsealKey, c.secrets.rootToken = init.Keys[0], init.RootToken
	if err := c.Unseal(ctx, first); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	_, took, err := c.WaitActive(wctx, nil)
	cancel()
	if err != nil {
		return err
	}
	c.logf("vaulttest: cluster node %s initialised and active after %s", first.Name, took.Round(time.Millisecond))

	root, err := first.Client()
	if err != nil {
		return err
	}
	// Promote joining nodes to voters quickly (the default waits 10 s).
	// (A raw write: api.AutopilotConfig always sends an Enterprise-only
	// field that Vault CE refuses.)
	if err := c.retryUnavailable(ctx, "autopilot configuration", func() error {
		_, err := root.Logical().WriteWithContext(ctx, "sys/storage/raft/autopilot/configuration", map[string]any{
			"server_stabilization_time": "1s",
		})
		return err
	}); err != nil {
		return err
	}
	for _, n := range c.Nodes[1:] {
		ncl, err := c.client(n.Addr(), nil, "", true)
		if err != nil {
			return err
		}
		ncl.SetMaxRetries(0)
		what := fmt.Sprintf("raft join %s to %s", n.Name, first.joinAddr)
		if err := c.retryUnavailable(ctx, what, func() error {
			resp, err := ncl.Sys().RaftJoinWithContext(ctx, &api.RaftJoinRequest{LeaderAPIAddr: first.joinAddr})
			if err == nil && !resp.Joined {
				return errors.New("not joined")
			}
			return err
		}); err != nil {
			return err
		}
		if err := c.Unseal(ctx, n); err != nil {
			return err
		}
	}
	if err := c.waitVoters(ctx, root); err != nil {
		return err
	}
	for _, m := range []struct {
		path string
		in   *api.MountInput
	}{
		{"secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}},
		{"transit", &api.MountInput{Type: "transit"}},
	} {
		if err := c.retryUnavailable(ctx, "mount "+m.in.Type+" at "+m.path+"/", func() error {
			mounts, err := root.Sys().ListMountsWithContext(ctx)
			if err != nil {
				return err
			}
			if _, ok := mounts[m.path+"/"]; ok {
				return nil // an earlier attempt got through
			}
			return root.Sys().MountWithContext(ctx, m.path, m.in)
		}); err != nil {
			return err
		}
	}
	return nil
}

// retryUnavailable runs fn until it succeeds, fails with something other
// than Vault being unavailable (a 5xx, a redirect, no answer), or 60 s pass.
// On a loaded machine a leader with performance_multiplier=1 can lose its
// lease and step down at any time; setup rides that out.
func (c *Cluster) retryUnavailable(ctx context.Context, what string, fn func() error) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode < 500 && re.StatusCode != http.StatusTemporaryRedirect {
			return fmt.Errorf("%s: %w", what, err)
		}
		c.logf("vaulttest: %s: attempt %d: %v (retrying)", what, attempt, oneLineErr(err))
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %w)", what, ctx.Err(), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// oneLineErr folds vault/api's multi-line errors for the log.
func oneLineErr(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// waitVoters waits until autopilot has promoted every node to a voter
// (joining nodes start as non-voters; autopilot reconciles every 10 s), so
// that the cluster keeps a quorum when one node dies.
func (c *Cluster) waitVoters(ctx context.Context, root *api.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	var last string
	for {
		st, err := root.Sys().RaftAutopilotStateWithContext(ctx)
		if err == nil && st != nil {
			now := fmt.Sprintf("healthy=%v voters=%v non-voters=%v", st.Healthy, st.Voters, st.NonVoters)
			if now != last {
				c.logf("vaulttest: autopilot after %s: %s", time.Since(start).Round(time.Millisecond), now)
			}
			last = now
			if len(st.Voters) == len(c.Nodes) {
				c.logf("vaulttest: cluster has %d voters after %s", len(st.Voters), time.Since(start).Round(time.Millisecond))
				return nil
			}
		} else if err != nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d raft voters: %w (last: %s)", len(c.Nodes), ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// waitResponding waits until base answers /v1/sys/health with any HTTP
// status (an uninitialised or sealed node answers 501 or 503).
func waitResponding(ctx context.Context, base string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		_, err := health(ctx, base)
		if err == nil {
			return nil
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil // an HTTP answer all the same
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not answering: %w (last: %v)", base, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// nodeConfig renders a node's server configuration.
func nodeConfig(name, listen, clusterListen, apiAddr, clusterAddr, raftPath string) string {
	return fmt.Sprintf(`disable_mlock = true
ui = false
api_addr = %q
cluster_addr = %q
cluster_name = "knotmtls-test"

listener "tcp" {
  address = %q
  cluster_address = %q
  tls_disable = true
}

storage "raft" {
  path = %q
  node_id = %q
  performance_multiplier = 1
}
`, apiAddr, clusterAddr, listen, clusterListen, raftPath, name)
}

// --- container backend ---------------------------------------------------

const (
	containerConfigPath = "/vault/config/vault.hcl"
	containerRaftPath   = "/vault/raft"
)

func newContainerCluster(ctx context.Context, cfg *config) (*clusterBackend, error) {
	tc, err := dockerClient(ctx)
	if err != nil {
		return nil, err
	}
	img, err := resolveImage(ctx, tc.Client, cfg)
	if err != nil {
		_ = tc.Close()
		return nil, err
	}
	nw, err := network.New(ctx)
	if err != nil {
		_ = tc.Close()
		return nil, fmt.Errorf("vaulttest: create docker network: %w", err)
	}
	b := &clusterBackend{name: "container " + img}
	b.closeFn = func(ctx context.Context) error {
		err := nw.Remove(ctx)
		_ = tc.Close()
		if err != nil {
			return fmt.Errorf("vaulttest: remove docker network: %w", err)
		}
		return nil
	}
	for i := range ClusterSize {
		name := "vault-" + strconv.Itoa(i+1)
		// The API port is published on a loopback port chosen here, so that
		// api_addr (where a standby redirects clients when it cannot
		// forward) is an address the host can reach, and stays the same
		// across restarts.
		port, err := freePort()
		if err != nil {
			_ = b.closeFn(ctx)
			return nil, err
		}
		hostAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		hcl := nodeConfig(name, "0.0.0.0:8200", "0.0.0.0:8201",
			"http://"+hostAddr, "https://"+name+":8201", containerRaftPath)
		b.nodes = append(b.nodes, &Node{
			Name:     name,
			joinAddr: "http://" + name + ":8200",
			r: &containerNode{
				name: name, image: img, hcl: hcl, networkName: nw.Name, port: port,
				cli: tc, logf: cfg.logf, timeout: cfg.startTimeout,
			},
		})
	}
	return b, nil
}

// containerNode is one node in a container on the cluster's network. Its
// API port is published on 127.0.0.1 only.
type containerNode struct {
	name, image, hcl, networkName string
	port                          int // published on 127.0.0.1
	cli                           *testcontainers.DockerClient
	logf                          func(string, ...any)
	timeout                       time.Duration

	mu   sync.Mutex
	c    testcontainers.Container
	addr string
}

func (n *containerNode) hostAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addr
}

func (n *containerNode) start(ctx context.Context) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.c == nil {
		req := testcontainers.GenericContainerRequest{
			ContainerRequest: testcontainers.ContainerRequest{
				Image:          n.image,
				Cmd:            []string{"server", "-config=" + containerConfigPath},
				ExposedPorts:   []string{"127.0.0.1:" + strconv.Itoa(n.port) + ":8200/tcp"},
				Networks:       []string{n.networkName},
				NetworkAliases: map[string][]string{n.networkName: {n.name}},
				Env:            map[string]string{"VAULT_LOG_LEVEL": "info"},
				Files: []testcontainers.ContainerFile{
					{Reader: strings.NewReader(n.hcl), ContainerFilePath: containerConfigPath, FileMode: 0o644},
					// Creates the Raft directory (scratch has no mkdir).
					{Reader: strings.NewReader(""), ContainerFilePath: containerRaftPath + "/.keep", FileMode: 0o600},
				},
				WaitingFor: wait.ForLog(startedLine).WithStartupTimeout(n.timeout),
			},
			Started: true,
			Logger:  logfLogger(n.logf),
		}
		c, err := testcontainers.GenericContainer(ctx, req)
		if c != nil {
			n.c = c
		}
		if err != nil {
			return "", fmt.Errorf("vaulttest: run container %s: %w", n.name, err)
		}
	} else if err := n.cli.ContainerStart(ctx, n.c.GetContainerID(), container.StartOptions{}); err != nil {
		return "", fmt.Errorf("vaulttest: start container %s: %w", n.name, err)
	}
	addr, err := n.publishedAddr(ctx)
	if err != nil {
		return "", err
	}
	n.addr = addr
	return addr, nil
}

// publishedAddr reads the loopback host port Docker published for 8200.
func (n *containerNode) publishedAddr(ctx context.Context) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		insp, err := n.cli.ContainerInspect(ctx, n.c.GetContainerID())
		if err != nil {
			return "", fmt.Errorf("vaulttest: inspect container %s: %w", n.name, err)
		}
		if insp.NetworkSettings != nil {
			for _, pb := range insp.NetworkSettings.Ports["8200/tcp"] {
				if pb.HostPort != "" {
					return net.JoinHostPort("127.0.0.1", pb.HostPort), nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("vaulttest: container %s: port 8200 not published", n.name)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (n *containerNode) id() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.c == nil {
		return ""
	}
	return n.c.GetContainerID()
}

func (n *containerNode) kill(ctx context.Context) error {
	if err := n.cli.ContainerKill(ctx, n.id(), "KILL"); err != nil {
		return fmt.Errorf("vaulttest: kill container %s: %w", n.name, err)
	}
	// Wait until Docker has seen it exit, so a restart can follow at once.
	waitC, errC := n.cli.ContainerWait(ctx, n.id(), container.WaitConditionNotRunning)
	select {
	case <-waitC:
		return nil
	case err := <-errC:
		return fmt.Errorf("vaulttest: wait for container %s: %w", n.name, err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *containerNode) pause(ctx context.Context) error {
	if err := n.cli.ContainerPause(ctx, n.id()); err != nil {
		return fmt.Errorf("vaulttest: pause container %s: %w", n.name, err)
	}
	return nil
}

func (n *containerNode) unpause(ctx context.Context) error {
	if err := n.cli.ContainerUnpause(ctx, n.id()); err != nil {
		return fmt.Errorf("vaulttest: unpause container %s: %w", n.name, err)
	}
	return nil
}

func (n *containerNode) terminate(ctx context.Context) error {
	n.mu.Lock()
	c := n.c
	n.mu.Unlock()
	if c == nil {
		return nil
	}
	if err := c.Terminate(ctx); err != nil {
		return fmt.Errorf("vaulttest: terminate container %s: %w", n.name, err)
	}
	return nil
}

func (n *containerNode) logs(ctx context.Context) (string, error) {
	n.mu.Lock()
	c := n.c
	n.mu.Unlock()
	if c == nil {
		return "", nil
	}
	rc, err := c.Logs(ctx)
	if err != nil {
		return "", fmt.Errorf("vaulttest: container logs %s: %w", n.name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	return string(b), err
}

// --- process backend -----------------------------------------------------

func newProcessCluster(_ context.Context, cfg *config) (*clusterBackend, error) {
	bin, err := findBinary(cfg)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "knotmtls-vault-cluster-")
	if err != nil {
		return nil, fmt.Errorf("vaulttest: cluster temp dir: %w", err)
	}
	b := &clusterBackend{name: "process " + bin, closeFn: func(context.Context) error { return os.RemoveAll(dir) }}
	for i := range ClusterSize {
		name := "vault-" + strconv.Itoa(i+1)
		port, err := freePortPair()
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		clusterAddr := "127.0.0.1:" + strconv.Itoa(port+1)
		raft := filepath.Join(dir, name, "raft")
		if err := os.MkdirAll(raft, 0o700); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("vaulttest: raft dir: %w", err)
		}
		conf := filepath.Join(dir, name, "vault.hcl")
		hcl := nodeConfig(name, addr, clusterAddr, "http://"+addr, "https://"+clusterAddr, raft)
		if err := os.WriteFile(conf, []byte(hcl), 0o600); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("vaulttest: node config: %w", err)
		}
		b.nodes = append(b.nodes, &Node{
			Name:     name,
			joinAddr: "http://" + addr,
			r:        &processNode{bin: bin, conf: conf, addr: addr, home: filepath.Join(dir, name)},
		})
	}
	return b, nil
}

// processNode is one node as a local process listening on loopback.
type processNode struct {
	bin, conf, addr, home string

	mu sync.Mutex
	pb *processBackend
}

func (n *processNode) hostAddr() string { return n.addr }

func (n *processNode) start(context.Context) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	cmd := exec.Command(n.bin, "server", "-config="+n.conf)
	cmd.Env = append(processEnv(), "HOME="+n.home, "VAULT_LOG_LEVEL=info")
	out := newRingBuffer(256 << 10)
	if n.pb != nil {
		// Keep the earlier run's output for diagnostics.
		_, _ = out.Write([]byte(n.pb.out.String()))
	}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.WaitDelay = 5 * time.Second
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("vaulttest: start %s: %w", n.bin, err)
	}
	pb := &processBackend{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		pb.err = cmd.Wait()
		close(pb.done)
	}()
	n.pb = pb
	return n.addr, nil
}

func (n *processNode) cur() *processBackend {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pb
}

func (n *processNode) kill(ctx context.Context) error {
	if pb := n.cur(); pb != nil {
		return pb.kill(ctx)
	}
	return nil
}

func (n *processNode) pause(ctx context.Context) error   { return n.cur().pause(ctx) }
func (n *processNode) unpause(ctx context.Context) error { return n.cur().unpause(ctx) }
func (n *processNode) terminate(ctx context.Context) error {
	return n.kill(ctx)
}

func (n *processNode) logs(context.Context) (string, error) {
	if pb := n.cur(); pb != nil {
		return pb.out.String(), nil
	}
	return "", nil
}

// freePort returns a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("vaulttest: find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

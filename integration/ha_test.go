package integration_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/knotmtls/knotmtls/integration/vaulttest"
	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// Fault scenarios (ha, seal, quota, long outage) share the helpers below;
// their names start with "fault". Each scenario logs one "figures:" line:
// Knot calls, failed calls, p99 latency, Vault requests during the fault
// (by status), recovery time.

// faultReq is one Vault request as the library's client sent it.
type faultReq struct {
	at         time.Time
	method     string
	path       string // API path without /v1/
	status     int    // 0: no response (transport error)
	retryAfter string
}

// faultCounter is an http.RoundTripper that records every Vault request
// (each vault/api retry included) with its time and status.
type faultCounter struct {
	base *http.Transport
	mu   sync.Mutex
	reqs []faultReq
}

func newFaultCounter(t *testing.T) *faultCounter {
	c := &faultCounter{base: cleanhttp.DefaultPooledTransport()}
	t.Cleanup(c.base.CloseIdleConnections)
	return c
}

func (c *faultCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	at := time.Now()
	resp, err := c.base.RoundTrip(r)
	rec := faultReq{at: at, method: r.Method, path: strings.TrimPrefix(r.URL.Path, "/v1/")}
	if resp != nil {
		rec.status = resp.StatusCode
		rec.retryAfter = resp.Header.Get("Retry-After")
	}
	c.mu.Lock()
	c.reqs = append(c.reqs, rec)
	c.mu.Unlock()
	return resp, err
}

// between returns the requests sent in [from, to).
func (c *faultCounter) between(from, to time.Time) []faultReq {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []faultReq
	for _, r := range c.reqs {
		if !r.at.Before(from) && r.at.Before(to) {
			out = append(out, r)
		}
	}
	return out
}

// faultStatuses summarises requests by status: "200=3 503=6 err=1".
func faultStatuses(reqs []faultReq) string {
	by := map[int]int{}
	for _, r := range reqs {
		by[r.status]++
	}
	codes := make([]int, 0, len(by))
	for c := range by {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	parts := make([]string, 0, len(codes))
	for _, c := range codes {
		name := strconv.Itoa(c)
		if c == 0 {
			name = "err"
		}
		parts = append(parts, fmt.Sprintf("%s=%d", name, by[c]))
	}
	return strings.Join(parts, " ")
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// faultOK reports whether a request got a 2xx answer.
func faultOK(r faultReq) bool { return r.status >= 200 && r.status < 300 }

// faultWindow is the outage as the client saw it: from its first failed
// request to its first successful one after that (zero if none failed).
func faultWindow(reqs []faultReq) (window time.Duration, failedFirst time.Time) {
	for i, r := range reqs {
		if faultOK(r) {
			continue
		}
		for _, s := range reqs[i+1:] {
			if faultOK(s) {
				return s.at.Sub(r.at), r.at
			}
		}
		return 0, r.at
	}
	return 0, time.Time{}
}

// faultLoad runs workers that call Knot every interval until stopped (or
// for at most 10 minutes), recording latencies and failures.
type faultLoad struct {
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	ok, failed atomic.Int64

	mu       sync.Mutex
	lat      []faultCall
	firstErr string
}

// faultCall is one Knot call: when it started and how long it took.
type faultCall struct {
	at   time.Time
	took time.Duration
}

func startFaultLoad(call func(context.Context) error, workers int, every time.Duration) *faultLoad {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	l := &faultLoad{cancel: cancel}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				start := time.Now()
				err := call(ctx)
				took := time.Since(start)
				if ctx.Err() != nil {
					return
				}
				l.mu.Lock()
				l.lat = append(l.lat, faultCall{at: start, took: took})
				if err != nil && l.firstErr == "" {
					l.firstErr = err.Error()
				}
				l.mu.Unlock()
				if err != nil {
					l.failed.Add(1)
				} else {
					l.ok.Add(1)
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	return l
}

// stop ends the load and waits for the workers; it is idempotent.
func (l *faultLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

func (l *faultLoad) calls() int64 { return l.ok.Load() + l.failed.Load() }

// p99 is the 99th percentile latency of all calls so far.
func (l *faultLoad) p99() time.Duration { return l.p99Between(time.Time{}, time.Now().Add(time.Hour)) }

// p99Between is the 99th percentile latency of the calls started in
// [from, to).
func (l *faultLoad) p99Between(from, to time.Time) time.Duration {
	l.mu.Lock()
	var s []time.Duration
	for _, c := range l.lat {
		if !c.at.Before(from) && c.at.Before(to) {
			s = append(s, c.took)
		}
	}
	l.mu.Unlock()
	if len(s) == 0 {
		return 0
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)*99)/100]
}

func (l *faultLoad) firstError() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.firstErr
}

// waitOK waits until n more calls have succeeded.
func (l *faultLoad) waitOK(t *testing.T, n int64) {
	t.Helper()
	target := l.ok.Load() + n
	waitFor(t, 30*time.Second, fmt.Sprintf("%d successful Knot calls", n), func() bool { return l.ok.Load() >= target })
}

// faultKnotCall returns a Knot call through knotclient presenting p's
// certificate. Keep-alives are off, so every call is a new mTLS handshake
// that asks the Provider for the certificate; retries are off, so every
// failure counts.
func faultKnotCall(t *testing.T, knot *knottest.Server, p *provider.Provider) func(context.Context) error {
	t.Helper()
	c, err := knotclient.New(knotclient.Config{
		ClientID:     knot.ClientID(),
		Secret:       knotclient.StaticSecret(knot.Secret()),
		Certificates: p,
		BaseURL:      knot.URL(),
		RootCAs:      knot.RootCAs(),
		MaxAttempts:  1,
		Timeout:      10 * time.Second,
		Transport:    &http.Transport{DisableKeepAlives: true},
		// Every call a full handshake that asks the provider: resumption
		// would let calls through without the certificate ever being read.
		DisableSessionResumption: true,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return func(ctx context.Context) error {
		_, err := c.GetJWEKey(ctx)
		return err
	}
}

func faultRequirements(knot *knottest.Server) provider.Requirements {
	pool := x509.NewCertPool()
	pool.AddCert(knot.CA())
	return provider.Requirements{ClientID: knot.ClientID(), Roots: pool}
}

// faultFailure is one failed refresh reported by the Provider.
type faultFailure struct {
	at      time.Time
	err     error
	n       int // consecutive failures so far, this one included
	retryIn time.Duration
}

// faultProvider is a Provider whose refresh failures are recorded.
type faultProvider struct {
	*provider.Provider
	mu    sync.Mutex
	fails []faultFailure
}

func newFaultProvider(t *testing.T, src provider.CertificateSource, knot *knottest.Server, opts ...provider.Option) *faultProvider {
	t.Helper()
	fp := &faultProvider{}
	opts = append([]provider.Option{
		provider.WithRequirements(faultRequirements(knot)),
		provider.OnRefreshFailed(func(err error, n int, retryIn time.Duration) {
			fp.mu.Lock()
			fp.fails = append(fp.fails, faultFailure{at: time.Now(), err: err, n: n, retryIn: retryIn})
			fp.mu.Unlock()
		}),
	}, opts...)
	p, err := provider.New(src, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	fp.Provider = p
	return fp
}

// failuresBetween returns the failures reported in [from, to).
func (fp *faultProvider) failuresBetween(from, to time.Time) []faultFailure {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	var out []faultFailure
	for _, f := range fp.fails {
		if !f.at.Before(from) && f.at.Before(to) {
			out = append(out, f)
		}
	}
	return out
}

// recoveredAfter reports whether the Provider's last refresh succeeded
// after t.
func (fp *faultProvider) recoveredAfter(t time.Time) bool {
	s := fp.Status()
	return s.Failures == 0 && s.LastSuccess.After(t)
}

// assertBackoff checks the Provider's backoff between consecutive failed
// refreshes (no success in between): each delay grows until it reaches the
// cap, and the next attempt never comes before the delay has passed (no
// tight loop). It returns the delays for the figures.
func assertBackoff(t *testing.T, fails []faultFailure, limit time.Duration) []time.Duration {
	t.Helper()
	delays := make([]time.Duration, 0, len(fails))
	for i, f := range fails {
		delays = append(delays, f.retryIn.Round(time.Millisecond))
		assert.LessOrEqual(t, f.retryIn, limit, "backoff is capped")
		if i == 0 || f.n != fails[i-1].n+1 {
			continue // the first failure after a success starts again
		}
		prev := fails[i-1]
		if prev.retryIn < limit {
			assert.Greater(t, f.retryIn, prev.retryIn, "backoff grows until the cap (failure %d)", f.n)
		} else {
			assert.Equal(t, limit, f.retryIn, "backoff stays at the cap (failure %d)", f.n)
		}
		assert.GreaterOrEqual(t, f.at.Sub(prev.at), prev.retryIn-20*time.Millisecond,
			"failure %d came %s after the previous one, whose retry delay was %s", f.n, f.at.Sub(prev.at), prev.retryIn)
	}
	return delays
}

// vaultAPIAttempts is how many requests vault/api sends for one call that
// keeps failing with a retryable status: the first and its default 2
// retries. A refresh attempt may cost up to this many Vault requests.
const vaultAPIAttempts = 3

// haEnv is a Raft cluster reached through its proxy, a counting client for
// the library and a fake Knot.
type haEnv struct {
	cluster *vaulttest.Cluster
	root    *api.Client // through the proxy, not counted
	client  *api.Client // through the proxy, counted: what the library uses
	counter *faultCounter
	knot    *knottest.Server
}

func haStart(t *testing.T) *haEnv {
	t.Helper()
	start := time.Now()
	c := vaulttest.StartClusterTest(t)
	t.Logf("cluster ready in %s", time.Since(start).Round(time.Millisecond))
	root, err := c.Client()
	require.NoError(t, err)
	counter := newFaultCounter(t)
	client, err := c.ClientWith(counter)
	require.NoError(t, err)
	return &haEnv{cluster: c, root: root, client: client, counter: counter, knot: knottest.NewTestServer(t)}
}

// haKillActive kills the active node and waits for a new one; it returns
// the killed node, the new active node, when the kill was issued and when
// the harness first saw the new leader.
func (e *haEnv) haKillActive(t *testing.T) (killed, elected *vaulttest.Node, killedAt, electedAt time.Time) {
	t.Helper()
	ctx := t.Context()
	killed = e.waitActive(t)
	killedAt = time.Now()
	require.NoError(t, e.cluster.Kill(ctx, killed))
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	elected, _, err := e.cluster.WaitActive(wctx, killed)
	require.NoError(t, err)
	electedAt = time.Now()
	t.Logf("killed active %s at %s; %s active %s after the kill (harness polls every 50 ms)",
		killed.Name, killedAt.Format("15:04:05.000"), elected.Name, electedAt.Sub(killedAt).Round(time.Millisecond))
	return killed, elected, killedAt, electedAt
}

// waitActive returns the active node, waiting (bounded) if an election is
// under way: on a loaded machine a leader with performance_multiplier=1 may
// step down by itself.
func (e *haEnv) waitActive(t *testing.T) *vaulttest.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	n, _, err := e.cluster.WaitActive(ctx, nil)
	require.NoError(t, err)
	return n
}

// haRejoin restarts and unseals a killed node and checks it rejoined as a
// standby.
func (e *haEnv) haRejoin(t *testing.T, n *vaulttest.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	require.NoError(t, e.cluster.Restart(ctx, n))
	h, err := n.Health(ctx)
	require.NoError(t, err)
	assert.True(t, h.Sealed, "a restarted node comes back sealed")
	require.NoError(t, e.cluster.Unseal(ctx, n))
	waitFor(t, 60*time.Second, n.Name+" to rejoin as a standby", func() bool {
		h, err := n.Health(ctx)
		return err == nil && h.Initialized && !h.Sealed && h.Standby
	})
	// A standby forwards requests once its connection to the active node
	// is up (before that it redirects): wait for a forwarded request.
	nc, err := n.Client()
	require.NoError(t, err)
	waitFor(t, 60*time.Second, n.Name+" to forward requests", func() bool {
		_, err := nc.Auth().Token().LookupSelfWithContext(ctx)
		return err == nil
	})
}

// TestHACluster runs the Raft HA scenarios (and the sealed cluster of
// seal_test.go) against one 3-node cluster
// behind a loopback TCP proxy, each under 8 workers calling Knot over mTLS
// through knotclient with a Provider on a vaultsource.KV source.
func TestHACluster(t *testing.T) {
	e := haStart(t)

	// Kill the active node that the proxy sends the client to: its
	// connections die, the proxy fails over to a standby that answers
	// 500/503 until a new leader is elected.
	t.Run("kill active", func(t *testing.T) {
		testStart := time.Now()
		ctx := t.Context()
		const poll = 500 * time.Millisecond
		const backoffMax = 2 * time.Second
		kv, leaf := faultProvisionKV(t, e.client, e.knot, "knot/ha-kill")
		fp := newFaultProvider(t, kv, e.knot, provider.WithPollInterval(poll), provider.WithJitter(0),
			provider.WithBackoff(250*time.Millisecond, backoffMax), provider.WithFetchTimeout(5*time.Second))
		call := faultKnotCall(t, e.knot, fp.Provider)
		require.NoError(t, call(ctx))
		load := startFaultLoad(call, 8, 100*time.Millisecond)
		defer load.stop()
		load.waitOK(t, 40)

		// Make the active node the proxy's first choice (it is node 1 after
		// setup, unless a leader stepped down since), so the kill hits the
		// client's path, and move the client's pooled connections there.
		active := e.waitActive(t)
		backends := []string{strings.TrimPrefix(active.Addr(), "http://")}
		for _, n := range e.cluster.Nodes {
			if n != active {
				backends = append(backends, strings.TrimPrefix(n.Addr(), "http://"))
			}
		}
		require.NoError(t, e.cluster.Proxy().SetBackends(backends...))
		e.cluster.Proxy().CloseConnections()
		killed, _, killedAt, electedAt := e.haKillActive(t)
		recoveredIn := waitFor(t, 60*time.Second, "the provider to recover after the election", func() bool {
			return fp.recoveredAfter(electedAt)
		})
		recoveredAt := time.Now()
		load.waitOK(t, 16)
		load.stop()

		reqs := e.counter.between(killedAt, recoveredAt)
		fails := fp.failuresBetween(killedAt, recoveredAt)
		window, _ := faultWindow(reqs)
		st := fp.Status()
		failedReqs := 0
		for _, r := range reqs {
			if !faultOK(r) {
				failedReqs++
			}
		}
		assert.Zero(t, load.failed.Load(), "failed Knot calls (first: %s)", load.firstError())
		// The client met the election (else this test proves nothing): some
		// of its Vault requests failed. vault/api retries a 5xx or a broken
		// connection twice, 1–1.5 s apart, which can hide a short election
		// from the Provider; any refresh that still fails is typed and
		// backs off.
		require.Positive(t, failedReqs, "failed Vault requests during the election")
		for _, f := range fails {
			assert.ErrorIs(t, f.err, vaultsource.ErrUnavailable, "a typed error says Vault is unavailable")
		}
		delays := assertBackoff(t, fails, backoffMax)
		// No tight retry loop: each refresh attempt (the failed ones, the one
		// in flight at the kill and the one that succeeded) is one vault/api
		// call with at most its 2 retries.
		assert.LessOrEqual(t, len(reqs), vaultAPIAttempts*(len(fails)+2), "Vault requests from the kill to recovery")
		// ... and attempts come no faster than the poll interval or the
		// first backoff step allow.
		assert.LessOrEqual(t, len(reqs), vaultAPIAttempts*(int(recoveredAt.Sub(killedAt)/(250*time.Millisecond))+2),
			"Vault requests per time from the kill to recovery")
		assert.True(t, st.Valid)
		assert.Equal(t, provider.SerialHex(leaf), provider.SerialHex(st.Bundle.Leaf()), "the cached certificate kept serving")

		e.haRejoin(t, killed)
		t.Logf("figures: scenario=kill-active(proxy target) calls=%d failed=%d p99=%s (before the kill %s, kill to recovery %s) election(harness)=%s election(client window)=%s vault_requests_during_fault=%d (%s; %d failed) refresh_failures=%d retry_delays=%v recovery_after_kill=%s recovery_after_election=%s wall=%s proxy=%+v",
			load.calls(), load.failed.Load(), load.p99().Round(time.Millisecond),
			load.p99Between(time.Time{}, killedAt).Round(time.Millisecond), load.p99Between(killedAt, recoveredAt).Round(time.Millisecond),
			electedAt.Sub(killedAt).Round(time.Millisecond), window.Round(time.Millisecond),
			len(reqs), faultStatuses(reqs), failedReqs, len(fails), delays,
			recoveredAt.Sub(killedAt).Round(time.Millisecond), recoveredIn.Round(time.Millisecond),
			time.Since(testStart).Round(time.Second), e.cluster.Proxy().Stats())
	})

	// A new certificate is imported right after the new leader is elected:
	// the Provider picks it up within one poll interval of its recovery.
	t.Run("rotation after election", func(t *testing.T) {
		testStart := time.Now()
		ctx := t.Context()
		const poll = 500 * time.Millisecond
		const path = "knot/ha-rotate"
		kv, leaf := faultProvisionKV(t, e.client, e.knot, path)
		fp := newFaultProvider(t, kv, e.knot, provider.WithPollInterval(poll), provider.WithJitter(0),
			provider.WithBackoff(250*time.Millisecond, 2*time.Second), provider.WithFetchTimeout(5*time.Second))
		call := faultKnotCall(t, e.knot, fp.Provider)
		require.NoError(t, call(ctx))
		load := startFaultLoad(call, 8, 100*time.Millisecond)
		defer load.stop()
		load.waitOK(t, 40)

		killed, _, killedAt, electedAt := e.haKillActive(t)
		// The operator's import goes through the same proxy; right after an
		// election the first write may still meet a standby that has not
		// seen the new leader, so it is retried (bounded).
		var serialB string
		var importErr error
		importAttempts := 0
		waitFor(t, 30*time.Second, "the rotation import to succeed", func() bool {
			importAttempts++
			serialB, importErr = faultRotateKV(ctx, e.root, e.knot, path)
			if importErr != nil {
				t.Logf("import attempt %d: %v", importAttempts, importErr)
				time.Sleep(200 * time.Millisecond)
			}
			return importErr == nil
		})
		importedAt := time.Now()
		pickedUp := waitFor(t, 30*time.Second, "the new serial at Knot", func() bool { return serialSeen(e.knot, serialB) })
		pickedAt := time.Now()
		recovered := fp.Status().LastSuccess
		load.waitOK(t, 16)
		load.stop()

		fails := fp.failuresBetween(killedAt, pickedAt)
		reqs := e.counter.between(killedAt, pickedAt)
		assert.Zero(t, load.failed.Load(), "failed Knot calls (first: %s)", load.firstError())
		assert.NotEqual(t, provider.SerialHex(leaf), serialB)
		assert.Equal(t, serialB, provider.SerialHex(fp.Status().Bundle.Leaf()))
		// The poll that sees the new version comes at most one interval
		// after the client gets answers from Vault again: its first
		// successful request after the import (a poll in flight may still be
		// in vault/api's 1–1.5 s retry wait at the import), or the end of the
		// backoff of a refresh that failed after it. Then the next handshake
		// presents the new serial.
		healthyAt := importedAt
		for _, r := range e.counter.between(importedAt, pickedAt) {
			if faultOK(r) {
				healthyAt = r.at
				break
			}
		}
		if len(fails) > 0 && fails[len(fails)-1].at.After(importedAt) {
			healthyAt = later(healthyAt, fails[len(fails)-1].at.Add(fails[len(fails)-1].retryIn))
		}
		assert.LessOrEqual(t, pickedAt.Sub(healthyAt), poll+time.Second,
			"new serial seen within one poll interval (+1 s for the fetch and the next handshake)")

		e.haRejoin(t, killed)
		t.Logf("figures: scenario=rotation-after-election(active behind a forwarding standby) calls=%d failed=%d p99=%s (before the kill %s) election(harness)=%s import_attempts=%d import_done_after_election=%s new_serial_seen_after_import=%s (after vault answered again %s; poll %s) refresh_failures=%d vault_requests_during_fault=%d (%s) last_success=%s wall=%s",
			load.calls(), load.failed.Load(), load.p99().Round(time.Millisecond), load.p99Between(time.Time{}, killedAt).Round(time.Millisecond),
			electedAt.Sub(killedAt).Round(time.Millisecond), importAttempts,
			importedAt.Sub(electedAt).Round(time.Millisecond), pickedUp.Round(time.Millisecond), pickedAt.Sub(healthyAt).Round(time.Millisecond), poll,
			len(fails), len(reqs), faultStatuses(reqs), recovered.Format("15:04:05.000"),
			time.Since(testStart).Round(time.Second))
	})

	// AppRole with short TTLs: the token is renewed and replaced by new
	// logins across the election, and the source keeps reading with it.
	t.Run("approle renewal and re-login across election", func(t *testing.T) {
		testStart := time.Now()
		ctx := t.Context()
		const path = "knot/ha-auth"
		faultProvisionKV(t, e.root, e.knot, path)
		require.NoError(t, e.root.Sys().PutPolicyWithContext(ctx, "knot-ha-read", `
path "secret/data/knot/ha-auth"     { capabilities = ["read"] }
path "secret/metadata/knot/ha-auth" { capabilities = ["read"] }
`))
		require.NoError(t, e.root.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &api.EnableAuthOptions{Type: "approle"}))
		_, err := e.root.Logical().WriteWithContext(ctx, "auth/approle/role/knot-ha", map[string]any{
			"token_policies": "knot-ha-read", "token_ttl": "4s", "token_max_ttl": "12s",
		})
		require.NoError(t, err)
		s, err := e.root.Logical().ReadWithContext(ctx, "auth/approle/role/knot-ha/role-id")
		require.NoError(t, err)
		roleID := s.Data["role_id"].(string)
		s, err = e.root.Logical().WriteWithContext(ctx, "auth/approle/role/knot-ha/secret-id", nil)
		require.NoError(t, err)
		secretID := s.Data["secret_id"].(string)

		counter := newFaultCounter(t)
		shared, err := e.cluster.ClientWith(counter)
		require.NoError(t, err)
		shared.ClearToken()
		var evMu sync.Mutex
		var events []string
		auth := startFaultAppRole(t, shared, roleID, secretID, func(kind string) {
			evMu.Lock()
			events = append(events, fmt.Sprintf("%s+%s", kind, time.Since(testStart).Round(100*time.Millisecond)))
			evMu.Unlock()
		})
		kv := auth.newKV(t, path)
		fp := newFaultProvider(t, kv, e.knot, provider.WithPollInterval(500*time.Millisecond), provider.WithJitter(0),
			provider.WithBackoff(250*time.Millisecond, 2*time.Second), provider.WithFetchTimeout(5*time.Second))
		call := faultKnotCall(t, e.knot, fp.Provider)
		require.NoError(t, call(ctx))
		load := startFaultLoad(call, 8, 100*time.Millisecond)
		defer load.stop()
		waitFor(t, 30*time.Second, "a token renewal before the fault", func() bool { return auth.status().Renewals >= 1 })
		before := auth.status()

		killed, _, killedAt, electedAt := e.haKillActive(t)
		// The token issued before the election reaches its 12 s max TTL
		// after it, so a re-login must happen on the new leader; renewals
		// resume on the new token.
		waitFor(t, 45*time.Second, "a login and a renewal after the election", func() bool {
			st := auth.status()
			return st.LoggedIn && st.LastLogin.After(electedAt) && st.LastRenewal.After(st.LastLogin) && fp.recoveredAfter(st.LastLogin)
		})
		doneAt := time.Now()
		after := auth.status()
		load.waitOK(t, 16)
		load.stop()

		// The source reads with the current token.
		_, err = kv.Version(ctx)
		require.NoError(t, err)
		reqs := counter.between(killedAt, doneAt)
		assert.Zero(t, load.failed.Load(), "failed Knot calls (first: %s)", load.firstError())
		assert.Greater(t, after.Logins, before.Logins, "re-logged in")
		assert.Greater(t, after.Renewals, before.Renewals, "renewed")
		assert.Zero(t, after.Consecutive)
		assert.True(t, fp.Status().Valid)

		e.haRejoin(t, killed)
		evMu.Lock()
		evs := strings.Join(events, " ")
		evMu.Unlock()
		t.Logf("figures: scenario=approle-across-election calls=%d failed=%d p99=%s (before the kill %s) election(harness)=%s logins=%d->%d renewals=%d->%d login_failures=%d->%d vault_requests_during_fault=%d (%s) relogin_and_renewal_done_after_kill=%s wall=%s events=[%s]",
			load.calls(), load.failed.Load(), load.p99().Round(time.Millisecond), load.p99Between(time.Time{}, killedAt).Round(time.Millisecond),
			electedAt.Sub(killedAt).Round(time.Millisecond),
			before.Logins, after.Logins, before.Renewals, after.Renewals, before.LoginFailures, after.LoginFailures,
			len(reqs), faultStatuses(reqs), doneAt.Sub(killedAt).Round(time.Millisecond),
			time.Since(testStart).Round(time.Second), evs)
	})

	// Transit: every new connection's full handshake signs through Vault.
	t.Run("transit kill active", func(t *testing.T) {
		t.Run("resumption", func(t *testing.T) { testHATransitKill(t, e, true) })
		t.Run("no resumption", func(t *testing.T) { testHATransitKill(t, e, false) })
	})

	// Last: it restarts every node.
	t.Run("sealed cluster", func(t *testing.T) { testSealedCluster(t, e) })
}

// TestClusterHarness proves each backend gives a working Raft cluster: three
// healthy voters, node 1 active and first in the proxy, a KV write through
// the proxy, a frozen active node replaced by an election (the window
// reported), the old node back as a standby after the thaw, a killed node
// restarted sealed and unsealed, and a Terminate that leaks nothing.
func TestClusterHarness(t *testing.T) {
	for _, backend := range []string{vaulttest.BackendContainer, vaulttest.BackendProcess} {
		t.Run(backend, func(t *testing.T) {
			requireBackendPossible(t, backend)
			before := goleak.IgnoreCurrent()
			testStart := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			c, err := vaulttest.StartCluster(ctx, vaulttest.WithBackend(backend), vaulttest.WithLogf(t.Logf))
			require.NoError(t, err)
			started := time.Since(testStart)
			defer func() { _ = c.Terminate(context.Background()) }()
			require.True(t, strings.HasPrefix(c.Backend, backend+" "), c.Backend)
			require.Len(t, c.Nodes, vaulttest.ClusterSize)
			assert.NotContains(t, fmt.Sprintf("%+v", c), "hvs.", "no token in the cluster's text")

			active, err := c.Active(ctx)
			require.NoError(t, err)
			assert.Equal(t, c.Nodes[0], active, "node 1 was initialised first and is active")
			assert.Equal(t, strings.TrimPrefix(active.Addr(), "http://"), c.Proxy().Backends()[0])
			root, err := c.Client()
			require.NoError(t, err)
			st, err := root.Sys().RaftAutopilotStateWithContext(ctx)
			require.NoError(t, err)
			assert.Len(t, st.Voters, vaulttest.ClusterSize)
			_, err = root.KVv2("secret").Put(ctx, "harness", map[string]any{"k": "v"})
			require.NoError(t, err)
			mounts, err := root.Sys().ListMountsWithContext(ctx)
			require.NoError(t, err)
			assert.Equal(t, "transit", mounts["transit/"].Type)

			// A write through a standby is forwarded to the active node.
			standbys, err := c.Standbys(ctx)
			require.NoError(t, err)
			require.Len(t, standbys, 2)
			sc, err := standbys[0].Client()
			require.NoError(t, err)
			_, err = sc.KVv2("secret").Put(ctx, "harness", map[string]any{"k": "via standby"})
			require.NoError(t, err)

			// Freeze the active node: the others elect a new leader.
			require.NoError(t, c.Pause(ctx, active))
			frozenAt := time.Now()
			wctx, wcancel := context.WithTimeout(ctx, time.Minute)
			elected, _, err := c.WaitActive(wctx, active)
			wcancel()
			require.NoError(t, err)
			election := time.Since(frozenAt)
			require.NoError(t, c.Unpause(ctx, active))
			waitFor(t, time.Minute, "the thawed node to step down", func() bool {
				h, err := active.Health(ctx)
				return err == nil && h.Standby && !h.Sealed
			})
			s, err := root.KVv2("secret").Get(ctx, "harness")
			require.NoError(t, err)
			assert.Equal(t, "via standby", s.Data["k"], "data survived the election")

			// Kill a standby, restart it: it is sealed until unsealed.
			require.NoError(t, c.Kill(ctx, elected))
			require.NoError(t, c.Kill(ctx, elected), "Kill is idempotent")
			assert.False(t, elected.Running())
			require.ErrorIs(t, c.Pause(ctx, elected), vaulttest.ErrNodeNotRunning)
			wctx, wcancel = context.WithTimeout(ctx, time.Minute)
			_, _, err = c.WaitActive(wctx, elected)
			wcancel()
			require.NoError(t, err)
			require.NoError(t, c.Restart(ctx, elected))
			h, err := elected.Health(ctx)
			require.NoError(t, err)
			assert.True(t, h.Sealed)
			require.NoError(t, c.Unseal(ctx, elected))
			waitFor(t, time.Minute, "the restarted node to rejoin", func() bool {
				h, err := elected.Health(ctx)
				return err == nil && !h.Sealed && h.Standby
			})

			require.NoError(t, c.Terminate(ctx))
			require.NoError(t, c.Terminate(ctx), "Terminate is idempotent")
			goleak.VerifyNone(t, before)
			t.Logf("figures: backend=%s cluster_start=%s election_after_freezing_active=%s (harness polls every 50 ms) wall=%s",
				c.Backend, started.Round(time.Millisecond), election.Round(time.Millisecond), time.Since(testStart).Round(time.Second))
		})
	}
}

const (
	haTransitPerConn  = 10              // knottest closes each connection after this many requests
	haTransitSignTTL  = 2 * time.Second // Transit sign timeout: a handshake during the election fails fast
	haTransitAttempts = knotclient.DefaultMaxAttempts
)

// retryLog records knotclient's "retrying" events (one per repeated
// attempt) with the error of the attempt that failed.
type retryLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *retryLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *retryLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "knot call failed; retrying" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && a.Key == "error" {
			l.mu.Lock()
			l.errs = append(l.errs, err)
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

func (l *retryLog) errors() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}
func (l *retryLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *retryLog) WithGroup(string) slog.Handler      { return l }

// haFailedCall is a Knot call that failed: when it started, how long it
// took, its error.
type haFailedCall struct {
	at   time.Time
	took time.Duration
	err  error
}

// testHATransitKill kills the active node while 8 workers call Knot with a
// Transit-backed certificate through knotclient, against a knottest server
// that closes each connection after 10 requests, so new connections (and
// handshakes) keep coming. With TLS session resumption (knotclient's
// default) new connections resume and need no Transit signature: no call
// fails. Without it every new connection signs through Vault: only calls
// whose handshakes needed Vault during the election fail, each attempt
// within the sign timeout, typed vaultsource.ErrUnavailable, and each was
// retried by knotclient first.
func testHATransitKill(t *testing.T, e *haEnv, resume bool) {
	testStart := time.Now()
	ctx := t.Context()
	name := map[bool]string{true: "resumption", false: "no-resumption"}[resume]
	key := "knot-ha-" + name
	knot := knottest.NewTestServer(t, knottest.WithMaxRequestsPerConn(haTransitPerConn))
	tr, leaf := faultProvisionTransit(t, e.client, knot, key, vaultsource.WithSignTimeout(haTransitSignTTL))
	// No poll: the handshakes' signatures are the only Vault requests.
	fp := newFaultProvider(t, tr, knot, provider.WithPollInterval(time.Hour), provider.WithFetchTimeout(5*time.Second))
	retries := &retryLog{}
	c, err := knotclient.New(knotclient.Config{
		ClientID: knot.ClientID(), Secret: knotclient.StaticSecret(knot.Secret()),
		Certificates: fp.Provider, BaseURL: knot.URL(), RootCAs: knot.RootCAs(),
		Timeout: 10 * time.Second, MaxAttempts: haTransitAttempts,
		DisableSessionResumption: !resume,
		Logger:                   slog.New(retries),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })

	var mu sync.Mutex
	var failedCalls []haFailedCall
	var okSinceFail atomic.Int64
	call := func(ctx context.Context) error {
		start := time.Now()
		_, err := c.GetJWEKey(ctx)
		if err != nil && ctx.Err() == nil {
			mu.Lock()
			failedCalls = append(failedCalls, haFailedCall{at: start, took: time.Since(start), err: err})
			mu.Unlock()
			okSinceFail.Store(0)
		} else if err == nil {
			okSinceFail.Add(1)
		}
		return err
	}
	require.NoError(t, call(ctx))
	load := startFaultLoad(call, 8, 20*time.Millisecond)
	defer load.stop()
	load.waitOK(t, 80)
	require.Zero(t, load.failed.Load(), "before the kill (first: %s)", load.firstError())

	// As in "kill active": the proxy's first choice is the active node, so
	// the kill hits the client's path.
	active := e.waitActive(t)
	backends := []string{strings.TrimPrefix(active.Addr(), "http://")}
	for _, n := range e.cluster.Nodes {
		if n != active {
			backends = append(backends, strings.TrimPrefix(n.Addr(), "http://"))
		}
	}
	require.NoError(t, e.cluster.Proxy().SetBackends(backends...))
	e.cluster.Proxy().CloseConnections()
	hsBefore, retriesBefore := knot.Handshakes(), len(retries.errors())
	killed, _, killedAt, electedAt := e.haKillActive(t)

	// Recovered: 80 calls in a row succeeded after the election, and
	// (without resumption) a signature was made through the new leader.
	signs := func(from, to time.Time) []faultReq {
		var out []faultReq
		for _, r := range e.counter.between(from, to) {
			if r.method == http.MethodPut && r.path == "transit/sign/"+key {
				out = append(out, r)
			}
		}
		return out
	}
	okSinceFail.Store(0)
	recoveredIn := waitFor(t, 60*time.Second, "80 calls in a row to succeed after the election", func() bool {
		if okSinceFail.Load() < 80 {
			return false
		}
		if resume {
			return true
		}
		for _, r := range signs(electedAt, time.Now()) {
			if faultOK(r) {
				return true
			}
		}
		return false
	})
	recoveredAt := time.Now()
	load.stop()
	hs := knot.Handshakes()
	retriedErrs := retries.errors()[retriesBefore:]
	retried := int64(len(retriedErrs))
	var slowestCall time.Duration // of all calls from the kill to recovery
	load.mu.Lock()
	for _, c := range load.lat {
		if !c.at.Before(killedAt) && c.at.Before(recoveredAt) {
			slowestCall = max(slowestCall, c.took)
		}
	}
	load.mu.Unlock()

	electionSigns := signs(killedAt, electedAt)
	faultSigns := signs(killedAt, recoveredAt)
	failedSigns := 0
	for _, r := range faultSigns {
		if !faultOK(r) {
			failedSigns++
		}
	}
	mu.Lock()
	fails := append([]haFailedCall(nil), failedCalls...)
	mu.Unlock()
	var slowest time.Duration
	// Each attempt of a failed call waited at most the sign timeout (plus
	// the handshake and the TLS alert), and knotclient's backoff between
	// attempts is at most 250 ms, 500 ms (±jitter).
	perCall := haTransitAttempts*(haTransitSignTTL+time.Second) + 2*time.Second
	for _, f := range fails {
		slowest = max(slowest, f.took)
		assert.ErrorIs(t, f.err, vaultsource.ErrUnavailable, "a failed call is a handshake that could not sign: %v", f.err)
		var se *knotclient.SignError
		assert.ErrorAs(t, f.err, &se, "failed at the handshake's signature")
		assert.LessOrEqual(t, f.took, perCall, "failed fast: %d attempts within the sign timeout each", haTransitAttempts)
		assert.False(t, f.at.Before(killedAt.Add(-perCall)), "no call failed before the kill (%s)", f.at.Format("15:04:05.000"))
		assert.True(t, f.at.Before(recoveredAt), "no call failed after recovery")
	}
	// A handshake that failed was a signature Vault could not make, and
	// knotclient repeated it.
	for _, err := range retriedErrs {
		assert.ErrorIs(t, err, vaultsource.ErrUnavailable, "a retried attempt failed at the handshake's signature: %v", err)
		var se *knotclient.SignError
		assert.ErrorAs(t, err, &se)
	}
	// Fast: no call, retried or not, waited longer than its attempts'
	// sign timeouts and knotclient's backoff.
	assert.LessOrEqual(t, slowestCall, perCall, "slowest call from the kill to recovery")
	st := fp.Status()
	assert.True(t, st.Valid)
	assert.Equal(t, provider.SerialHex(leaf), provider.SerialHex(st.Bundle.Leaf()), "the cached certificate kept serving")
	if resume {
		assert.Zero(t, retried, "no handshake failed, nothing was retried")
		assert.Zero(t, load.failed.Load(), "with resumption no call fails (first: %s)", load.firstError())
		assert.Empty(t, faultSigns, "resumed connections need no Transit signature")
		assert.Greater(t, hs.Resumed-hsBefore.Resumed, 0, "new connections were made during the fault, and resumed")
	} else {
		// The handshakes met the election (else this proves nothing):
		// Transit sign requests failed, and handshakes with them.
		require.Positive(t, failedSigns, "Transit sign requests failed during the election")
		require.Positive(t, retried, "handshakes failed during the election and knotclient retried them")
		assert.Zero(t, hs.Resumed, "no resumption")
		assert.Greater(t, hs.Full-hsBefore.Full, 0)
		assert.Equal(t, int64(len(fails)), load.failed.Load())
		// Every failed call was a handshake that could not sign, repeated
		// by knotclient before it gave up.
		assert.GreaterOrEqual(t, retried, int64(len(fails))*(haTransitAttempts-1), "knotclient retried the failed handshakes")
	}

	e.haRejoin(t, killed)
	t.Logf("figures: scenario=transit-kill-active(%s, new connection every %d requests, sign timeout %s) calls=%d failed=%d p99=%s (before the kill %s, kill to recovery %s) slowest_call=%s slowest_failed_call=%s election(harness)=%s transit_signs_during_election=%d (%s) transit_signs_kill_to_recovery=%d (%s; %d failed) knotclient_retries=%d handshakes_kill_to_recovery=%d full/%d resumed recovery_after_kill=%s (after election %s) wall=%s",
		name, haTransitPerConn, haTransitSignTTL, load.calls(), load.failed.Load(), load.p99().Round(time.Millisecond),
		load.p99Between(time.Time{}, killedAt).Round(time.Millisecond), load.p99Between(killedAt, recoveredAt).Round(time.Millisecond),
		slowestCall.Round(time.Millisecond), slowest.Round(time.Millisecond), electedAt.Sub(killedAt).Round(time.Millisecond),
		len(electionSigns), faultStatuses(electionSigns), len(faultSigns), faultStatuses(faultSigns), failedSigns, retried,
		hs.Full-hsBefore.Full, hs.Resumed-hsBefore.Resumed, recoveredAt.Sub(killedAt).Round(time.Millisecond),
		recoveredIn.Round(time.Millisecond), time.Since(testStart).Round(time.Second))
}

package integration_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// testSealedCluster seals a whole Raft cluster while 8 workers call
// Knot: the cached certificate keeps serving, refreshes back off against the
// 503 "Vault is sealed" answers (Vault requests counted), and after the
// unseal the Provider recovers within one backoff step.
//
// Vault seals only an active node through sys/seal (it steps down and a
// standby takes over: a failover, covered by TestHACluster) and refuses to
// seal a standby, so a sealed cluster is what every Shamir-sealed cluster
// is after a full restart: every node killed, started again, sealed.
//
// It runs as the last subtest of TestHACluster, on its cluster (a cluster
// start costs 20–40 s).
func testSealedCluster(t *testing.T, e *haEnv) {
	testStart := time.Now()
	ctx := t.Context()
	const poll = 300 * time.Millisecond
	const backoffMax = 2 * time.Second
	kv, leaf := faultProvisionKV(t, e.client, e.knot, "knot/seal")
	fp := newFaultProvider(t, kv, e.knot, provider.WithPollInterval(poll), provider.WithJitter(0),
		provider.WithBackoff(250*time.Millisecond, backoffMax), provider.WithFetchTimeout(5*time.Second))
	call := faultKnotCall(t, e.knot, fp.Provider)
	require.NoError(t, call(ctx))
	load := startFaultLoad(call, 8, 100*time.Millisecond)
	defer load.stop()
	load.waitOK(t, 40)

	// sys/seal on a standby is refused by Vault.
	e.waitActive(t)
	standbys, err := e.cluster.Standbys(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, standbys)
	standbyErr := e.cluster.Seal(ctx, standbys[0])
	require.Error(t, standbyErr, "Vault does not seal a standby")
	assert.Contains(t, standbyErr.Error(), "cannot seal when in standby mode")
	t.Logf("sys/seal on standby %s: %v", standbys[0].Name, standbyErr)

	// Full restart: every node killed and started again, sealed.
	downAt := time.Now()
	for _, n := range e.cluster.Nodes {
		require.NoError(t, e.cluster.Kill(ctx, n))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(e.cluster.Nodes))
	for i, n := range e.cluster.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.cluster.Restart(ctx, n)
		}()
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	for _, n := range e.cluster.Nodes {
		h, err := n.Health(ctx)
		require.NoError(t, err)
		require.True(t, h.Sealed, "%s is sealed after its restart", n.Name)
		require.Equal(t, http.StatusServiceUnavailable, h.Status)
	}
	sealedAt := time.Now()

	// Hold the seal until the provider has failed against it three times.
	isSealed := func(f faultFailure) bool { return strings.Contains(f.err.Error(), "Vault is sealed") }
	waitFor(t, 30*time.Second, "three refresh failures against the sealed cluster", func() bool {
		n := 0
		for _, f := range fp.failuresBetween(sealedAt, time.Now()) {
			if isSealed(f) {
				n++
			}
		}
		return n >= 3
	})
	st := fp.Status()
	unsealStart := time.Now()
	okDuring := load.ok.Load()

	// Unseal every node; a leader is elected once two are unsealed.
	for _, n := range e.cluster.Nodes {
		require.NoError(t, e.cluster.Unseal(ctx, n))
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	_, _, err = e.cluster.WaitActive(wctx, nil)
	cancel()
	require.NoError(t, err)
	activeAt := time.Now()
	recovered := waitFor(t, 30*time.Second, "the provider to recover after the unseal", func() bool {
		return fp.recoveredAfter(activeAt)
	})
	load.waitOK(t, 16)
	load.stop()

	// What Status() says while sealed: failing, still valid, a typed
	// error (ErrSealed, which wraps ErrUnavailable) that carries Vault's 503
	// and its "Vault is sealed" message, and health says "sealed".
	assert.Positive(t, st.Failures)
	assert.True(t, st.Valid, "the cached certificate is still valid")
	require.Error(t, st.LastError)
	assert.ErrorIs(t, st.LastError, vaultsource.ErrSealed)
	assert.ErrorIs(t, st.LastError, vaultsource.ErrUnavailable)
	h := st.Health(provider.HealthPolicy{})
	assert.Equal(t, provider.ClassSealed, h.LastError, "health while sealed: %+v", h)
	var ve *vaultsource.Error
	require.True(t, errors.As(st.LastError, &ve), "a *vaultsource.Error: %v", st.LastError)
	assert.Equal(t, http.StatusServiceUnavailable, ve.Status)
	assert.Contains(t, st.LastError.Error(), "Vault is sealed")
	assert.Equal(t, provider.SerialHex(leaf), provider.SerialHex(st.Bundle.Leaf()))

	sealedReqs := e.counter.between(sealedAt, unsealStart)
	fails := fp.failuresBetween(sealedAt, unsealStart)
	assert.Zero(t, load.failed.Load(), "failed Knot calls (first: %s)", load.firstError())
	delays := assertBackoff(t, fails, backoffMax)
	assert.LessOrEqual(t, len(sealedReqs), vaultAPIAttempts*(len(fails)+1),
		"no tight retry loop: at most one vault/api call (with its retries) per refresh attempt")
	// One backoff step: the next attempt after the cluster is back comes at
	// most backoffMax later; an attempt already in flight may still be in
	// vault/api's retry wait (1–1.5 s per retry).
	assert.LessOrEqual(t, recovered, backoffMax+3*time.Second,
		"recovery within one backoff step (+ one vault/api retry cycle of an attempt in flight)")

	t.Logf("figures: scenario=sealed-cluster calls=%d failed=%d p99=%s (before %s, while sealed %s) ok_calls_while_down_or_sealed=%d sealed_for=%s vault_requests_while_sealed=%d (%s) refresh_failures_while_sealed=%d retry_delays=%v unseal_to_active=%s recovery_after_active=%s status_while_sealed={failures:%d valid:%v status:%d err:%q} wall=%s (down at %s)",
		load.calls(), load.failed.Load(), load.p99().Round(time.Millisecond),
		load.p99Between(time.Time{}, downAt).Round(time.Millisecond), load.p99Between(sealedAt, unsealStart).Round(time.Millisecond), okDuring,
		unsealStart.Sub(sealedAt).Round(time.Millisecond), len(sealedReqs), faultStatuses(sealedReqs), len(fails), delays,
		activeAt.Sub(unsealStart).Round(time.Millisecond), recovered.Round(time.Millisecond),
		st.Failures, st.Valid, ve.Status, st.LastError.Error(), time.Since(testStart).Round(time.Second), downAt.Format("15:04:05.000"))
}

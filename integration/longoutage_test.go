package integration_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/provider"
)

// TestLongVaultOutageUnderLoad freezes Vault for 60 s (docker pause or
// SIGSTOP) while 8 workers call Knot with a KV source: every call keeps
// succeeding on the cached certificate (checked every second of the
// outage), refreshes back off up to their cap so the Vault requests during
// the outage stay bounded, and the Provider recovers within one backoff
// step of the unpause.
func TestLongVaultOutageUnderLoad(t *testing.T) {
	testStart := time.Now()
	v, client, counter, knot := startFaultVault(t)
	ctx := t.Context()

	const outage = 60 * time.Second
	const poll = 500 * time.Millisecond
	const backoffMax = 5 * time.Second
	const fetchTimeout = 2 * time.Second
	kv, leaf := faultProvisionKV(t, client, knot, "knot/long-outage")
	fp := newFaultProvider(t, kv, knot, provider.WithPollInterval(poll), provider.WithJitter(0),
		provider.WithBackoff(250*time.Millisecond, backoffMax), provider.WithFetchTimeout(fetchTimeout))
	call := faultKnotCall(t, knot, fp.Provider)
	require.NoError(t, call(ctx))
	load := startFaultLoad(call, 8, 100*time.Millisecond)
	defer load.stop()
	load.waitOK(t, 40)

	require.NoError(t, v.Pause(ctx))
	pausedAt := time.Now()
	// The outage lasts 60 s; every second the calls so far must all have
	// succeeded and the served certificate must still be the valid one.
	tick := time.NewTicker(time.Second)
	okAtStart := load.ok.Load()
	for time.Since(pausedAt) < outage {
		<-tick.C
		require.Zero(t, load.failed.Load(), "a Knot call failed %s into the outage: %s", time.Since(pausedAt).Round(time.Second), load.firstError())
		st := fp.Status()
		require.True(t, st.Valid)
		require.Equal(t, provider.SerialHex(leaf), provider.SerialHex(st.Bundle.Leaf()))
	}
	tick.Stop()
	okDuring := load.ok.Load() - okAtStart
	st := fp.Status()
	uctx, cancel := context.WithTimeout(ctx, time.Minute)
	require.NoError(t, v.Unpause(uctx))
	cancel()
	unpausedAt := time.Now()
	recovered := waitFor(t, 30*time.Second, "the provider to recover after the unpause", func() bool {
		return fp.recoveredAfter(unpausedAt)
	})
	load.waitOK(t, 16)
	load.stop()

	reqs := counter.between(pausedAt, unpausedAt)
	fails := fp.failuresBetween(pausedAt, unpausedAt)
	assert.Zero(t, load.failed.Load(), "failed Knot calls (first: %s)", load.firstError())
	assert.Positive(t, okDuring, "calls kept flowing during the outage")
	require.GreaterOrEqual(t, len(fails), 5, "the outage was noticed")
	delays := assertBackoff(t, fails, backoffMax)
	assert.Equal(t, backoffMax, fails[len(fails)-1].retryIn, "the backoff reached its cap")
	// Each attempt is one request that hangs until the fetch timeout (a
	// frozen Vault answers nothing, and vault/api does not retry a request
	// whose context ended): attempts are one fetch timeout plus one backoff
	// delay apart, so a 60 s outage allows at most this many.
	maxRequests := len(fails) + 1
	assert.LessOrEqual(t, len(reqs), maxRequests, "Vault requests during the outage")
	assert.LessOrEqual(t, len(fails), int(outage/(fetchTimeout+250*time.Millisecond))+1, "refresh attempts are bounded by timeout + backoff")
	assert.Positive(t, st.Failures)
	assert.LessOrEqual(t, recovered, backoffMax+fetchTimeout+time.Second, "recovery within one backoff step (+ an attempt in flight)")

	t.Logf("figures: scenario=60s-pause calls=%d failed=%d p99=%s (before %s, during the pause %s) ok_calls_during_outage=%d vault_requests_during_outage=%d (%s) refresh_failures=%d retry_delays=%v recovery_after_unpause=%s wall=%s backend=%s",
		load.calls(), load.failed.Load(), load.p99().Round(time.Millisecond),
		load.p99Between(time.Time{}, pausedAt).Round(time.Millisecond), load.p99Between(pausedAt, unpausedAt).Round(time.Millisecond), okDuring,
		len(reqs), faultStatuses(reqs), len(fails), delays, recovered.Round(time.Millisecond),
		time.Since(testStart).Round(time.Second), v.Backend)
}

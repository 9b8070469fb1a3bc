package integration_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// TestVaultOutage freezes Vault while 8 goroutines call Knot: no call
// fails while the cached certificate is valid, the Provider reports refresh
// failures with a growing, capped backoff and one Vault request per
// attempt, and after Vault returns it recovers and picks up a new version.
func TestVaultOutage(t *testing.T) {
	e := vsStart(t)
	ctx := t.Context()
	const path = "knot/outage"
	const outage = 4 * time.Second
	kv, leafA := e.provisionKV(t, "secret", path)

	var mu sync.Mutex
	var delays []time.Duration
	var lastErr error
	p := e.newProvider(t, kv,
		provider.WithPollInterval(300*time.Millisecond), provider.WithJitter(0),
		provider.WithBackoff(200*time.Millisecond, time.Second), provider.WithFetchTimeout(time.Second),
		provider.OnRefreshFailed(func(err error, _ int, retryIn time.Duration) {
			mu.Lock()
			delays = append(delays, retryIn)
			lastErr = err
			mu.Unlock()
		}))
	call := e.knotAPI(t, p)
	require.NoError(t, call(ctx))

	load := startLoadFunc(call, 8)
	defer load.stop()
	time.Sleep(300 * time.Millisecond)

	e.counter.reset()
	require.NoError(t, e.vault.Pause(ctx))
	pausedAt := time.Now()
	time.Sleep(outage)
	attempts := e.counter.total.Load()
	st := p.Status()
	okDuringOutage := load.ok.Load()
	require.NoError(t, e.vault.Unpause(ctx))
	unpausedAt := time.Now()

	mu.Lock()
	failures := len(delays)
	seen := append([]time.Duration(nil), delays...)
	outageErr := lastErr
	mu.Unlock()
	require.GreaterOrEqual(t, failures, 2, "the outage was noticed")
	assert.ErrorIs(t, outageErr, context.DeadlineExceeded)
	assert.True(t, st.Valid)
	assert.Equal(t, provider.SerialHex(leafA), provider.SerialHex(st.Bundle.Leaf()), "last good certificate keeps serving")
	for i := 1; i < len(seen); i++ {
		assert.GreaterOrEqual(t, seen[i], seen[i-1], "backoff never shrinks while failing")
		assert.LessOrEqual(t, seen[i], time.Second, "backoff is capped")
	}
	// One Vault request per refresh attempt (plus the one in flight): no
	// hidden retry storm against a Vault that is down.
	assert.LessOrEqual(t, attempts, int64(failures+1), "vault requests during the outage")

	recovered := waitFor(t, 15*time.Second, "the provider to recover", func() bool {
		s := p.Status()
		return s.Failures == 0 && s.LastSuccess.After(unpausedAt)
	})

	// A new version written after the outage is picked up.
	rotator, err := vaultsource.NewKV(e.client, "secret", path)
	require.NoError(t, err)
	csr, err := rotator.Provision(ctx, e.knot.ClientID(), vaultsource.ProvisionRotate)
	require.NoError(t, err)
	certB, err := e.knot.SignCSR(csr)
	require.NoError(t, err)
	require.NoError(t, importErr(kv.ImportCertificate(ctx, e.requirements(), certB, nil)))
	leavesB, err := provider.ParseCertificates(certB)
	require.NoError(t, err)
	serialB := provider.SerialHex(leavesB[0])
	pickedUp := waitFor(t, 10*time.Second, "the new serial at Knot", func() bool { return serialSeen(e.knot, serialB) })
	load.stop()

	assert.Zero(t, load.failed.Load(), "failed Knot calls (first: %v)", load.firstErr.Load())
	assert.Zero(t, p.Status().Failures)
	t.Logf("figures: outage %s (paused at %s); %d Knot calls succeeded during it, %d failed overall of %d; %d refresh failures, retry delays %v; %d vault requests during the outage; recovered %s after unpause; new serial %s seen %s after import; last error: %v",
		outage, pausedAt.Format("15:04:05.000"), okDuringOutage, load.failed.Load(), load.ok.Load()+load.failed.Load(),
		failures, seen, attempts, recovered.Round(time.Millisecond), serialB, pickedUp.Round(time.Millisecond), outageErr)
}

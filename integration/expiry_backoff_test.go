package integration_test

import (
	"crypto/tls"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/integration/vaulttest"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// TestExpiryBackoffAgainstVault: a KV-backed Provider whose certificate
// expires while no new version is stored. Scaled down from the defaults
// (1 min poll, 1 s -> 5 min backoff) to a 2 s poll and a 1 s -> 16 s backoff
// observed for 60 s after NotAfter, with handshakes arriving all along. Vault's
// own audit device counts the requests: the full secret (the private key) is
// read at most once after NotAfter, because the cheap metadata read says
// nothing changed, and metadata is read about once per backoff step
// (1+2+4+8+16+16 s: 7 attempts in 60 s), polls and handshakes adding none.
// The failure counter only grows.
func TestExpiryBackoffAgainstVault(t *testing.T) {
	e := vsStart(t)
	ctx := t.Context()
	require.NoError(t, e.vault.EnableAudit(ctx))
	const mount, path = "secret", "knot/expiry"
	csr, err := vaultsource.ProvisionKV(ctx, e.client, mount, path, e.knot.ClientID(), vaultsource.ProvisionNew)
	require.NoError(t, err)
	notAfter := time.Now().Add(5 * time.Second).Truncate(time.Second)
	certPEM, err := e.knot.SignCSRValidity(csr, time.Now().Add(-time.Minute), notAfter)
	require.NoError(t, err)
	kv, err := vaultsource.NewKV(e.client, mount, path)
	require.NoError(t, err)
	_, err = kv.ImportCertificate(ctx, e.requirements(), certPEM, nil)
	require.NoError(t, err)

	type failure struct {
		n     int
		delay time.Duration
		err   error
	}
	var (
		mu       sync.Mutex
		failures []failure
	)
	loaded := time.Now()
	p := e.newProvider(t, kv,
		provider.WithPollInterval(2*time.Second),
		provider.WithBackoff(time.Second, 16*time.Second),
		provider.OnRefreshFailed(func(err error, n int, d time.Duration) {
			mu.Lock()
			failures = append(failures, failure{n, d, err})
			mu.Unlock()
		}))
	_, err = p.Bundle(ctx)
	require.NoError(t, err)

	// Handshakes every 50 ms throughout: served until NotAfter, refused after.
	var servedLate, refusedEarly, handshakes atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			began := time.Now()
			_, err := p.GetClientCertificate(&tls.CertificateRequestInfo{})
			handshakes.Add(1)
			switch {
			case err == nil && !began.Before(notAfter):
				servedLate.Add(1)
			case err != nil && time.Now().Before(notAfter):
				refusedEarly.Add(1)
			}
		}
	}()

	const window = 60 * time.Second
	end := notAfter.Add(window)
	require.Eventually(t, func() bool { return time.Now().After(end) }, window+30*time.Second, 100*time.Millisecond)
	close(stop)
	<-done

	reqs, err := e.vault.AuditRequests(ctx)
	require.NoError(t, err)
	count := func(kind string, from, to time.Time) int {
		n := 0
		for _, r := range reqs {
			if r.Operation == "read" && r.Path == mount+"/"+kind+"/"+path && !r.Time.Before(from) && r.Time.Before(to) {
				n++
			}
		}
		return n
	}
	dataBefore, metaBefore := count("data", loaded, notAfter), count("metadata", loaded, notAfter)
	data, meta := count("data", notAfter, end), count("metadata", notAfter, end)
	require.Positive(t, vaulttest.CountAudit(reqs, "read", mount+"/data/"+path, loaded), "the audit device saw the first load")

	assert.LessOrEqual(t, data, 1, "full-secret reads after NotAfter")
	assert.GreaterOrEqual(t, meta, 6, "metadata reads after NotAfter: one per backoff step")
	assert.LessOrEqual(t, meta, 8, "metadata reads after NotAfter: polls and handshakes add none")
	assert.Zero(t, servedLate.Load(), "a handshake that began after NotAfter was served")
	assert.Zero(t, refusedEarly.Load(), "a handshake was refused before NotAfter")

	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, failures)
	var delays []time.Duration
	for i, f := range failures {
		assert.Equal(t, i+1, f.n, "consecutive failures only grow")
		assert.True(t, errors.Is(f.err, provider.ErrExpired), "failure %d: %v", i+1, f.err)
		delays = append(delays, f.delay.Round(100*time.Millisecond))
		if i > 0 {
			assert.GreaterOrEqual(t, f.delay, failures[i-1].delay*8/10, "the backoff never shrinks (jitter aside)")
		}
	}
	assert.LessOrEqual(t, failures[len(failures)-1].delay, 16*time.Second*11/10, "capped at 16 s plus jitter")
	st := p.Status()
	assert.Equal(t, len(failures), st.Failures)
	assert.False(t, st.Valid)
	t.Logf("figures: backend %s; before NotAfter (%s): %d data, %d metadata reads; in the %s after NotAfter: %d full-secret (data) reads, %d metadata reads, %d failures with delays %v, %d handshakes (0 served late, 0 refused early); client-side counter: %s",
		e.vault.Backend, notAfter.Sub(loaded).Round(100*time.Millisecond), dataBefore, metaBefore, window, data, meta,
		len(failures), delays, handshakes.Load(), e.counter)
}

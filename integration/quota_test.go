package integration_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// TestRateLimitQuotaUnderLoad puts a Vault rate-limit quota (response
// headers on) on the KV mount while 8 workers call Knot: polls meet 429 with
// Retry-After, every next request waits at least that long (vault/api's
// default backoff, RateLimitLinearJitterBackoff, honours Retry-After inside
// one call), there is no tight retry loop (requests counted and spaced),
// the certificate keeps serving, and once the quota is removed the
// Provider is healthy again.
func TestRateLimitQuotaUnderLoad(t *testing.T) {
	testStart := time.Now()
	v, client, counter, knot := startFaultVault(t)
	ctx := t.Context()
	root, err := v.Client()
	require.NoError(t, err)

	const poll = 250 * time.Millisecond
	const backoffMax = 4 * time.Second
	const quotaInterval = 3 * time.Second
	kv, leaf := faultProvisionKV(t, client, knot, "knot/quota")
	fp := newFaultProvider(t, kv, knot, provider.WithPollInterval(poll), provider.WithJitter(0),
		provider.WithBackoff(500*time.Millisecond, backoffMax), provider.WithFetchTimeout(10*time.Second))
	call := faultKnotCall(t, knot, fp.Provider)
	require.NoError(t, call(ctx))
	load := startFaultLoad(call, 8, 100*time.Millisecond)
	defer load.stop()
	load.waitOK(t, 40)

	_, err = root.Logical().WriteWithContext(ctx, "sys/quotas/config", map[string]any{"enable_rate_limit_response_headers": true})
	require.NoError(t, err)
	_, err = root.Logical().WriteWithContext(ctx, "sys/quotas/rate-limit/knot-kv", map[string]any{
		"path": "secret/", "rate": 1, "interval": quotaInterval.String(),
	})
	require.NoError(t, err)
	quotaAt := time.Now()

	limitedSince := func(from time.Time) int {
		n := 0
		for _, r := range counter.between(from, time.Now()) {
			if r.status == http.StatusTooManyRequests {
				n++
			}
		}
		return n
	}
	waitFor(t, 40*time.Second, "four 429 answers to the library", func() bool { return limitedSince(quotaAt) >= 4 })
	st := fp.Status()
	_, err = root.Logical().DeleteWithContext(ctx, "sys/quotas/rate-limit/knot-kv")
	require.NoError(t, err)
	liftedAt := time.Now()
	recovered := waitFor(t, 30*time.Second, "a successful refresh after the quota is lifted", func() bool {
		return fp.recoveredAfter(liftedAt)
	})
	load.waitOK(t, 16)
	load.stop()

	reqs := counter.between(quotaAt, liftedAt)
	fails := fp.failuresBetween(quotaAt, liftedAt)
	var limited, withHeader, honoured int
	var retryAfters []string
	minGap := time.Duration(1<<63 - 1)
	for i, r := range reqs {
		if i > 0 {
			minGap = min(minGap, r.at.Sub(reqs[i-1].at))
		}
		if r.status != http.StatusTooManyRequests {
			continue
		}
		limited++
		retryAfters = append(retryAfters, r.retryAfter)
		secs, err := strconv.Atoi(r.retryAfter)
		if err != nil || i+1 >= len(reqs) {
			continue
		}
		withHeader++
		if reqs[i+1].at.Sub(r.at) >= time.Duration(secs)*time.Second {
			honoured++
		}
	}
	window := liftedAt.Sub(quotaAt)

	assert.Zero(t, load.failed.Load(), "failed Knot calls (first: %s)", load.firstError())
	require.GreaterOrEqual(t, limited, 4, "Vault answered 429")
	require.Positive(t, withHeader, "429 carries Retry-After with response headers on: %v", retryAfters)
	assert.Equal(t, withHeader, honoured, "every request after a 429 waited its Retry-After (%v)", retryAfters)
	for _, f := range fails {
		assert.ErrorIs(t, f.err, vaultsource.ErrUnavailable, "a typed error")
	}
	assertBackoff(t, fails, backoffMax)
	// No tight loop: requests are spaced by at least half a poll interval
	// (vault/api waits Retry-After, or ≥ 1 s, between its own retries), and
	// their number stays within one request per half poll interval.
	assert.GreaterOrEqual(t, minGap, poll/2, "smallest gap between Vault requests")
	assert.LessOrEqual(t, len(reqs), int(window/(poll/2))+1, "Vault requests under the quota")
	assert.True(t, st.Valid)
	assert.Equal(t, provider.SerialHex(leaf), provider.SerialHex(st.Bundle.Leaf()), "the certificate kept serving")
	assert.LessOrEqual(t, recovered, quotaInterval+poll+time.Second, "healthy within one quota interval of the lift")

	t.Logf("figures: scenario=rate-limit-quota(1 per %s on secret/) calls=%d failed=%d p99=%s (before %s, under quota %s) quota_for=%s vault_requests_under_quota=%d (%s) min_gap=%s retry_after=%v honoured=%d/%d refresh_failures=%d provider_status_under_quota={failures:%d valid:%v} recovery_after_lift=%s wall=%s",
		quotaInterval, load.calls(), load.failed.Load(), load.p99().Round(time.Millisecond),
		load.p99Between(time.Time{}, quotaAt).Round(time.Millisecond), load.p99Between(quotaAt, liftedAt).Round(time.Millisecond), window.Round(time.Millisecond),
		len(reqs), faultStatuses(reqs), minGap.Round(time.Millisecond), retryAfters, honoured, withHeader, len(fails),
		st.Failures, st.Valid, recovered.Round(time.Millisecond), time.Since(testStart).Round(time.Second))
}

// TestRateLimitQuotaLongerThanFetchTimeout: the quota's window (12 s) is
// longer than the Provider's fetch timeout (3 s), so vault/api cannot wait
// the Retry-After out inside one attempt. The library answers the 429 at
// once with the hint (vaultsource.Error.RetryAfter) and the Provider's next
// attempt waits at least that long: one Vault request per attempt, none
// before the Retry-After of the 429 before it, and the certificate keeps
// serving 8 workers throughout.
func TestRateLimitQuotaLongerThanFetchTimeout(t *testing.T) {
	testStart := time.Now()
	v, client, counter, knot := startFaultVault(t)
	ctx := t.Context()
	root, err := v.Client()
	require.NoError(t, err)

	const poll = 250 * time.Millisecond
	const backoffMax = 30 * time.Second
	const fetchTimeout = 3 * time.Second
	const quotaInterval = 12 * time.Second
	kv, leaf := faultProvisionKV(t, client, knot, "knot/quota-long")
	fp := newFaultProvider(t, kv, knot, provider.WithPollInterval(poll), provider.WithJitter(0),
		provider.WithBackoff(500*time.Millisecond, backoffMax), provider.WithFetchTimeout(fetchTimeout))
	call := faultKnotCall(t, knot, fp.Provider)
	require.NoError(t, call(ctx))
	load := startFaultLoad(call, 8, 100*time.Millisecond)
	defer load.stop()
	load.waitOK(t, 40)

	_, err = root.Logical().WriteWithContext(ctx, "sys/quotas/config", map[string]any{"enable_rate_limit_response_headers": true})
	require.NoError(t, err)
	_, err = root.Logical().WriteWithContext(ctx, "sys/quotas/rate-limit/knot-kv-long", map[string]any{
		"path": "secret/", "rate": 1, "interval": quotaInterval.String(),
	})
	require.NoError(t, err)
	quotaAt := time.Now()
	waitFor(t, 60*time.Second, "two refreshes refused by the quota", func() bool { return len(fp.failuresBetween(quotaAt, time.Now())) >= 2 })
	st := fp.Status()
	_, err = root.Logical().DeleteWithContext(ctx, "sys/quotas/rate-limit/knot-kv-long")
	require.NoError(t, err)
	liftedAt := time.Now()
	recovered := waitFor(t, backoffMax+10*time.Second, "a successful refresh after the quota is lifted", func() bool {
		return fp.recoveredAfter(liftedAt)
	})
	load.waitOK(t, 16)
	load.stop()

	reqs := counter.between(quotaAt, liftedAt)
	all := counter.between(quotaAt, time.Now()) // the request after the last 429 comes after the lift
	fails := fp.failuresBetween(quotaAt, liftedAt)
	var limited, honoured int
	var retryAfters []string
	for i, r := range reqs {
		if r.status != http.StatusTooManyRequests {
			continue
		}
		limited++
		retryAfters = append(retryAfters, r.retryAfter)
		secs, err := strconv.Atoi(r.retryAfter)
		require.NoError(t, err, "429 carries Retry-After with response headers on")
		require.Greater(t, len(all), i+1, "a request followed the 429")
		if next := all[i+1].at; next.Sub(r.at) >= time.Duration(secs)*time.Second {
			honoured++
		} else {
			t.Errorf("a request %s after a 429 with Retry-After %ss", all[i+1].at.Sub(r.at).Round(time.Millisecond), r.retryAfter)
		}
	}
	var hints []time.Duration
	for _, f := range fails {
		assert.ErrorIs(t, f.err, vaultsource.ErrRateLimited, "a typed error")
		var e *vaultsource.Error
		require.ErrorAs(t, f.err, &e)
		hints = append(hints, e.RetryAfter())
		require.Positive(t, e.RetryAfter(), "the hint reached the Provider: %v", f.err)
		assert.GreaterOrEqual(t, f.retryIn, min(e.RetryAfter(), backoffMax), "the backoff waits the Retry-After out")
	}

	assert.Zero(t, load.failed.Load(), "failed Knot calls (first: %s)", load.firstError())
	require.GreaterOrEqual(t, limited, 2, "Vault answered 429")
	assert.Equal(t, limited, honoured, "no request before the Retry-After of the 429 before it (%v)", retryAfters)
	// One request per refused attempt: vault/api did not sleep into the
	// fetch timeout and retry (an attempt in flight at the lift may add one).
	assert.LessOrEqual(t, limited, len(fails)+1, "429 answers per refused attempt")
	assert.True(t, st.Valid)
	assert.Equal(t, provider.SerialHex(leaf), provider.SerialHex(st.Bundle.Leaf()), "the certificate kept serving")

	t.Logf("figures: scenario=rate-limit-quota(1 per %s on secret/, fetch timeout %s) calls=%d failed=%d p99=%s (under quota %s) quota_for=%s vault_requests_under_quota=%d (%s) retry_after=%v honoured=%d/%d refresh_failures=%d hints=%v retry_in=%v recovery_after_lift=%s wall=%s",
		quotaInterval, fetchTimeout, load.calls(), load.failed.Load(), load.p99().Round(time.Millisecond),
		load.p99Between(quotaAt, liftedAt).Round(time.Millisecond), liftedAt.Sub(quotaAt).Round(time.Millisecond),
		len(reqs), faultStatuses(reqs), retryAfters, honoured, limited, len(fails), hints, func() []time.Duration {
			out := make([]time.Duration, 0, len(fails))
			for _, f := range fails {
				out = append(out, f.retryIn.Round(time.Millisecond))
			}
			return out
		}(), recovered.Round(time.Millisecond), time.Since(testStart).Round(time.Second))
}

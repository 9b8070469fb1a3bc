package integration_test

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// Issue 9 item 4 against real Vault: a Transit-backed knotclient talks to
// a fake Knot that closes each connection after resumePerConn requests, so
// new connections (and handshakes) happen all the time under load. With
// TLS session resumption (knotclient's default) a new connection resumes
// without a Transit signature; without it every new connection signs
// through Vault.

const (
	resumeWorkers = 8
	resumePerConn = 10
	resumeSignTTL = 2 * time.Second // Transit sign timeout: a frozen Vault fails a handshake fast
)

// resumeEnv is a provisioned Transit key behind a Provider and a fake Knot
// that recycles connections. Each client gets its own (resumeEnv per
// client): dials net/http abandoned under load finish their handshakes
// later, and must not be counted for another client.
type resumeEnv struct {
	*vsEnv
	key  string
	prov *provider.Provider
}

// newResumeEnv provisions Transit key key in base's Vault (Transit
// mounted) for a new fake Knot.
func newResumeEnv(t *testing.T, base *vsEnv, key string) *resumeEnv {
	t.Helper()
	e := base.withKnot(t, knottest.WithMaxRequestsPerConn(resumePerConn))
	tr, _ := e.provisionTransit(t, key, vaultsource.WithSignTimeout(resumeSignTTL))
	// No poll during the test: the handshake signatures are the only
	// Vault requests the load makes.
	p := e.newProvider(t, tr, provider.WithPollInterval(time.Hour))
	return &resumeEnv{vsEnv: e, key: key, prov: p}
}

func (e *resumeEnv) signs() int { return e.counter.count(http.MethodPut, "transit/sign/"+e.key) }

func (e *resumeEnv) client(t *testing.T, resume bool) *knotclient.Client {
	t.Helper()
	c, err := knotclient.New(knotclient.Config{
		ClientID: e.knot.ClientID(), Secret: knotclient.StaticSecret(e.knot.Secret()),
		Certificates: e.prov, BaseURL: e.knot.URL(), RootCAs: e.knot.RootCAs(),
		Timeout:                  5 * time.Second,
		DisableSessionResumption: !resume,
		Logger:                   slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// resumeLoad runs resumeWorkers workers calling GetJWEKey, each at most one
// call per pace, until stop; it records outcomes and latencies.
type resumeLoad struct {
	calls, failed atomic.Int64
	mu            sync.Mutex
	lat           []time.Duration
	errs          map[string]int
	stop          chan struct{}
	wg            sync.WaitGroup
}

func startResumeLoad(c *knotclient.Client, pace time.Duration) *resumeLoad {
	l := &resumeLoad{stop: make(chan struct{}), errs: map[string]int{}}
	for range resumeWorkers {
		l.wg.Go(func() {
			tick := time.NewTicker(pace)
			defer tick.Stop()
			for {
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
				start := time.Now()
				_, err := c.GetJWEKey(context.Background())
				d := time.Since(start)
				l.calls.Add(1)
				l.mu.Lock()
				l.lat = append(l.lat, d)
				if err != nil {
					l.failed.Add(1)
					l.errs[err.Error()]++
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

// snapshot returns calls, failures and the p99 latency of the calls made
// since the last snapshot, and starts a new window.
func (l *resumeLoad) snapshot() (calls, failed int64, p99 time.Duration, errs map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	calls, failed = l.calls.Swap(0), l.failed.Swap(0)
	lat := slices.Clone(l.lat)
	l.lat = l.lat[:0]
	errs, l.errs = l.errs, map[string]int{}
	if len(lat) > 0 {
		slices.Sort(lat)
		p99 = lat[(len(lat)*99)/100]
	}
	return calls, failed, p99, errs
}

func (l *resumeLoad) halt() {
	close(l.stop)
	l.wg.Wait()
}

// TestTransitResumptionSavesSignatures: 8 workers, 1,000 calls, a new
// connection every 10 requests: Vault signatures per 1,000 calls with and
// without resumption.
func TestTransitResumptionSavesSignatures(t *testing.T) {
	base := vsStart(t)
	require.NoError(t, base.vault.EnableTransit(t.Context()))
	const calls = 1000
	figures := map[bool]int{}
	for _, resume := range []bool{true, false} {
		e := newResumeEnv(t, base, map[bool]string{true: "knot-resume", false: "knot-no-resume"}[resume])
		c := e.client(t, resume)
		e.knot.Reset()
		before := e.signs()
		var next, failed atomic.Int64
		var wg sync.WaitGroup
		for range resumeWorkers {
			wg.Go(func() {
				for next.Add(1) <= calls {
					if _, err := c.GetJWEKey(context.Background()); err != nil {
						failed.Add(1)
						t.Errorf("call failed: %v", err)
					}
				}
			})
		}
		wg.Wait()
		signs := e.signs() - before
		hs := e.knot.Handshakes()
		figures[resume] = signs
		require.Zero(t, failed.Load())
		require.Len(t, e.knot.Requests(), calls)
		require.GreaterOrEqual(t, hs.Full+hs.Resumed, calls/resumePerConn)
		assert.GreaterOrEqual(t, signs, hs.Full, "every full handshake signed through Transit")
		if resume {
			assert.LessOrEqual(t, signs, resumeWorkers, "only the first handshakes sign")
		} else {
			assert.Zero(t, hs.Resumed)
			assert.GreaterOrEqual(t, signs, calls/resumePerConn, "every new connection signs")
		}
		t.Logf("figures resumption=%v: %d calls, %d failed, %d connections (%d full, %d resumed), %d Transit signs per %d calls",
			resume, calls, failed.Load(), hs.Full+hs.Resumed, hs.Full, hs.Resumed, signs, calls)
	}
	assert.Greater(t, figures[false], 10*figures[true], "resumption saves at least 90%% of the signatures")
}

// TestTransitResumptionRidesOutFrozenVault: Vault is frozen (harness
// Pause) for 30 s under load (8 workers, one call per 20 ms each, a new
// connection every 10 requests). With resumption no call fails and no
// Transit sign is attempted; without it every new connection needs Vault,
// so calls fail (after the sign timeout and knotclient's retries) until
// Vault is back. Prints calls / failures / p99 per phase.
func TestTransitResumptionRidesOutFrozenVault(t *testing.T) {
	base := vsStart(t)
	require.NoError(t, base.vault.EnableTransit(t.Context()))
	const (
		freeze = 30 * time.Second
		pace   = 20 * time.Millisecond
	)
	for _, resume := range []bool{true, false} {
		name := map[bool]string{true: "resumption", false: "no resumption"}[resume]
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			e := newResumeEnv(t, base, map[bool]string{true: "knot-resume", false: "knot-no-resume"}[resume])
			c := e.client(t, resume)
			e.knot.Reset()
			l := startResumeLoad(c, pace)
			defer l.halt()
			// Warm up until every worker has made calls and tickets exist.
			require.Eventually(t, func() bool { return l.calls.Load() >= 20*resumeWorkers }, time.Minute, 5*time.Millisecond)
			calls, failed, p99, errs := l.snapshot()
			require.Zero(t, failed, "before the freeze: %v", errs)
			t.Logf("figures %s before: %d calls, %d failed, p99 %s", name, calls, failed, p99)

			signsBefore, hsBefore := e.signs(), e.knot.Handshakes()
			require.NoError(t, e.vault.Pause(ctx))
			frozeAt := time.Now()
			timer := time.NewTimer(freeze)
			<-timer.C // the outage is the scenario: its length is fixed
			calls, failed, p99, errs = l.snapshot()
			signsFrozen := e.signs() - signsBefore
			hs := e.knot.Handshakes()
			require.NoError(t, e.vault.Unpause(ctx))
			thawedAt := time.Now()
			t.Logf("figures %s frozen %s: %d calls, %d failed, p99 %s, %d Transit sign requests, %d full / %d resumed handshakes; errors %v",
				name, thawedAt.Sub(frozeAt).Round(time.Millisecond), calls, failed, p99, signsFrozen,
				hs.Full-hsBefore.Full, hs.Resumed-hsBefore.Resumed, errs)
			require.Greater(t, calls, int64(resumeWorkers), "the load ran during the freeze")
			if resume {
				assert.Zero(t, failed, "with resumption a frozen Vault fails no call: %v", errs)
				assert.Zero(t, signsFrozen, "no Transit sign during the freeze")
				assert.Greater(t, int64(hs.Resumed-hsBefore.Resumed), calls/resumePerConn/2,
					"new connections kept being made, and resumed")
			} else {
				assert.Positive(t, failed, "without resumption new connections need Vault: %v", errs)
				assert.Positive(t, signsFrozen, "handshakes tried to sign through the frozen Vault")
			}

			// Recovery: the next 8 calls in a row succeed.
			var streak atomic.Int64
			require.Eventually(t, func() bool {
				calls, failed, _, _ := l.snapshot()
				if failed > 0 {
					streak.Store(0)
				} else {
					streak.Add(calls)
				}
				return streak.Load() >= int64(resumeWorkers)
			}, time.Minute, 10*time.Millisecond)
			t.Logf("figures %s recovery: %s after unpause", name, time.Since(thawedAt).Round(time.Millisecond))
		})
	}
}

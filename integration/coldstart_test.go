package integration_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/knotmtls/knotmtls/provider"
)

// TestColdStartStorm: 1,000 concurrent first callers of a new Provider
// (half through the TLS hook, half through Bundle) cause exactly one read
// of the KV secret, and all get the same certificate.
func TestColdStartStorm(t *testing.T) {
	e := vsStart(t)
	const path = "knot/storm"
	kv, leaf := e.provisionKV(t, "secret", path)
	e.counter.base.CloseIdleConnections()
	leaks := goleak.IgnoreCurrent()
	e.counter.reset()

	p, err := provider.New(kv, provider.WithRequirements(e.requirements()))
	require.NoError(t, err)

	const n = 1000
	var (
		wg     sync.WaitGroup
		failed atomic.Int64
		certs  sync.Map
		start  = make(chan struct{})
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var c *tls.Certificate
			if i%2 == 0 {
				cert, err := p.GetClientCertificate(nil)
				if err != nil {
					failed.Add(1)
					return
				}
				c = cert
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				b, err := p.Bundle(ctx)
				if err != nil {
					failed.Add(1)
					return
				}
				c = &tls.Certificate{Leaf: b.Leaf()}
			}
			certs.Store(provider.SerialHex(c.Leaf), true)
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	took := time.Since(began)

	assert.Zero(t, failed.Load())
	var serials []string
	certs.Range(func(k, _ any) bool { serials = append(serials, k.(string)); return true })
	assert.Equal(t, []string{provider.SerialHex(leaf)}, serials)
	dataReads := e.counter.count(http.MethodGet, "secret/data/"+path)
	assert.Equal(t, 1, dataReads, "exactly one KV data read")
	assert.Zero(t, e.counter.count(http.MethodGet, "secret/metadata/"+path), "the first load needs no version check")
	total := e.counter.total.Load()

	require.NoError(t, p.Close())
	e.counter.base.CloseIdleConnections()
	goleak.VerifyNone(t, leaks)
	t.Logf("figures: %d concurrent first calls served in %s; %d KV data read(s), %d Vault requests in total; serial %s",
		n, took.Round(time.Millisecond), dataReads, total, provider.SerialHex(leaf))
}

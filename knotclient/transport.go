package knotclient

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/knotmtls/knotmtls/provider"
)

// notifier is the optional rotation-subscription half of a certificate
// getter: [provider.RotationNotifier], which *provider.Provider implements.
type notifier = provider.RotationNotifier

// sessionCacheSize is the capacity of the TLS session cache: sessions are
// kept per server name, and a client talks to one Knot host.
const sessionCacheSize = 8

// newSessionCache returns the cache for one generation of connections: a
// rotation starts a new, empty one, so that no session created with the old
// certificate is resumed after it.
func newSessionCache() tls.ClientSessionCache { return tls.NewLRUClientSessionCache(sessionCacheSize) }

// newBaseTransport returns the client's own transport, built from
// cfg.Transport (cloned) or from defaults that match http.DefaultTransport,
// with the TLS config hooked to the certificate getter.
func newBaseTransport(cfg *Config) *http.Transport {
	var t *http.Transport
	if cfg.Transport != nil {
		t = cfg.Transport.Clone()
		// Clone set the original's HTTP/2 defaults (its TLS config now offers
		// "h2" in ALPN) and copied that TLS config; a transport with its own
		// TLS config only speaks HTTP/2 when forced, so without this an h2
		// server's answer is read as HTTP/1. An explicit TLSNextProto (an
		// empty map turns HTTP/2 off) is left alone.
		if t.TLSNextProto == nil {
			t.ForceAttemptHTTP2 = true
		}
	} else {
		dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		t = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           dialer.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: 1 * time.Second,
		}
	}
	if t.MaxIdleConnsPerHost == 0 {
		t.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = provider.MTLSClientConfig(cfg.Certificates, cfg.RootCAs)
	} else {
		provider.HookMTLSClientConfig(t.TLSClientConfig, cfg.Certificates)
		if cfg.RootCAs != nil {
			t.TLSClientConfig.RootCAs = cfg.RootCAs
		}
	}
	t.TLSClientConfig.InsecureSkipVerify = false // also refused by New
	// The client owns the session cache: one shared with a caller's
	// transport, or kept across a rotation, would resume sessions of the
	// old certificate.
	t.TLSClientConfig.ClientSessionCache = nil
	if !cfg.DisableSessionResumption {
		t.TLSClientConfig.ClientSessionCache = newSessionCache()
	}
	return t
}

// generation is one *http.Transport and the number of responses it is still
// serving. After a certificate rotation the generation is retired: no new
// request uses it, and once its last response is closed its connections are
// closed too.
type generation struct {
	t        *http.Transport
	inflight atomic.Int64
	retired  atomic.Bool
}

func (g *generation) release() {
	if g.inflight.Add(-1) == 0 && g.retired.Load() {
		g.t.CloseIdleConnections()
	}
}

func (g *generation) retire() {
	g.retired.Store(true)
	// Closes idle connections now and, until another request queues on
	// this transport (which only a request racing the swap can do, and
	// release handles that), every HTTP/1 connection that becomes idle.
	g.t.CloseIdleConnections()
}

// rotatingTransport sends each request over the current generation. When
// the client certificate rotates it starts a new generation (a clone of the
// transport with an empty pool and, with resumption on, an empty TLS
// session cache) so that the very next request does a full handshake with
// the new certificate, whatever connections are busy at that moment.
type rotatingTransport struct {
	cur    atomic.Pointer[generation]
	mu     sync.Mutex // serialises rotate and close
	closed bool
}

func newRotatingTransport(t *http.Transport) *rotatingTransport {
	rt := &rotatingTransport{}
	rt.cur.Store(&generation{t: t})
	return rt
}

// acquire returns the current generation with its in-flight count raised.
// A generation retired by a rotation is skipped; one retired by close stays
// current and is used (the call was racing Close).
func (rt *rotatingTransport) acquire() *generation {
	for {
		g := rt.cur.Load()
		g.inflight.Add(1)
		if !g.retired.Load() || rt.cur.Load() == g {
			return g
		}
		g.release()
	}
}

// RoundTrip implements http.RoundTripper.
func (rt *rotatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	g := rt.acquire()
	resp, err := g.t.RoundTrip(req)
	if err != nil {
		g.release()
		return nil, err
	}
	resp.Body = &releaseBody{ReadCloser: resp.Body, g: g}
	return resp, nil
}

// rotate moves new requests to a fresh transport and retires the old one.
func (rt *rotatingTransport) rotate() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.closed {
		return
	}
	old := rt.cur.Load()
	t := old.t.Clone() // shares the old session cache until replaced
	if t.TLSClientConfig.ClientSessionCache != nil {
		t.TLSClientConfig.ClientSessionCache = newSessionCache()
	}
	rt.cur.Store(&generation{t: t})
	old.retire()
}

// CloseIdleConnections closes the idle connections of the current
// generation (http.Client.CloseIdleConnections calls it).
func (rt *rotatingTransport) CloseIdleConnections() {
	rt.cur.Load().t.CloseIdleConnections()
}

func (rt *rotatingTransport) close() {
	rt.mu.Lock()
	rt.closed = true
	rt.mu.Unlock()
	rt.cur.Load().retire()
}

// releaseBody lowers its generation's in-flight count once, on Close.
type releaseBody struct {
	io.ReadCloser
	g    *generation
	done atomic.Bool
}

// Close closes the body and releases the generation.
func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	if b.done.CompareAndSwap(false, true) {
		b.g.release()
	}
	return err
}

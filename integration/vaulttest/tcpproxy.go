package vaulttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotLoopback is returned by [NewLoopbackProxy] and
// [LoopbackProxy.SetBackends] for a backend that is not a loopback address:
// the proxy only ever connects to this machine.
var ErrNotLoopback = errors.New("vaulttest: proxy backend is not a loopback address")

// ErrNoLiveBackend is what a proxied connection meets (it is closed at once,
// and counted in [ProxyStats].Refused) when no backend accepts a connection.
var ErrNoLiveBackend = errors.New("vaulttest: no live proxy backend")

// proxyDialTimeout bounds one dial to one backend.
const proxyDialTimeout = time.Second

// LoopbackProxy is a small layer-4 load balancer on a loopback port, the
// "one address that stays up" in front of a Vault cluster: each accepted
// connection is piped to the first backend, in order, that accepts a TCP
// connection. A dead node (its port refuses connections) is skipped; a live
// node is used whatever Vault answers on it, like a TCP load balancer or DNS
// round-robin without HTTP health checks. Standbys forward requests to the
// active node, so every live node serves; during an election they answer
// 500/503, which is what a client behind such a balancer has to ride out.
//
// The backends are host:port pairs on 127.0.0.0/8 or ::1 only.
type LoopbackProxy struct {
	ln net.Listener

	mu       sync.Mutex
	backends []string
	conns    map[net.Conn]struct{}
	closed   bool

	accepted, failovers, refused atomic.Int64
	wg                           sync.WaitGroup
}

// ProxyStats counts what a [LoopbackProxy] did.
type ProxyStats struct {
	// Accepted is the number of client connections accepted.
	Accepted int64
	// Failovers is how many times a backend refused and the next was tried.
	Failovers int64
	// Refused is the number of client connections closed because no
	// backend accepted (see [ErrNoLiveBackend]).
	Refused int64
}

// NewLoopbackProxy listens on a free loopback port and proxies to backends
// (host:port, loopback only). Call [LoopbackProxy.Close] when done.
func NewLoopbackProxy(backends ...string) (*LoopbackProxy, error) {
	if err := checkLoopback(backends); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("vaulttest: proxy listen: %w", err)
	}
	p := &LoopbackProxy{ln: ln, backends: append([]string(nil), backends...), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func checkLoopback(backends []string) error {
	for _, b := range backends {
		host, _, err := net.SplitHostPort(b)
		if err != nil {
			return fmt.Errorf("vaulttest: proxy backend %q: %w", b, err)
		}
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("%w: %q", ErrNotLoopback, b)
		}
	}
	return nil
}

// Addr returns the proxy's listening address, host:port.
func (p *LoopbackProxy) Addr() string { return p.ln.Addr().String() }

// URL returns "http://" + [LoopbackProxy.Addr].
func (p *LoopbackProxy) URL() string { return "http://" + p.Addr() }

// Backends returns the backends in the order they are tried.
func (p *LoopbackProxy) Backends() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.backends...)
}

// SetBackends replaces the backends (for example after a node restarted on
// a new port). Connections already established are left alone.
func (p *LoopbackProxy) SetBackends(backends ...string) error {
	if err := checkLoopback(backends); err != nil {
		return err
	}
	p.mu.Lock()
	p.backends = append([]string(nil), backends...)
	p.mu.Unlock()
	return nil
}

// Stats returns the counters.
func (p *LoopbackProxy) Stats() ProxyStats {
	return ProxyStats{Accepted: p.accepted.Load(), Failovers: p.failovers.Load(), Refused: p.refused.Load()}
}

// CloseConnections closes every proxied connection now (both sides), as a
// load balancer does when it takes a backend out; the proxy keeps accepting.
func (p *LoopbackProxy) CloseConnections() {
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
}

// Close stops accepting, closes every proxied connection and waits for the
// proxy's goroutines. It is idempotent.
func (p *LoopbackProxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	err := p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *LoopbackProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.accepted.Add(1)
		if !p.track(c) {
			_ = c.Close()
			return
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

// track registers c so that Close can close it; false once closed.
func (p *LoopbackProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *LoopbackProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

// dial connects to the first backend that accepts.
func (p *LoopbackProxy) dial() (net.Conn, error) {
	var errs []error
	for i, b := range p.Backends() {
		if i > 0 {
			p.failovers.Add(1)
		}
		ctx, cancel := context.WithTimeout(context.Background(), proxyDialTimeout)
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", b)
		cancel()
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("%w: %w", ErrNoLiveBackend, errors.Join(errs...))
}

func (p *LoopbackProxy) handle(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	backend, err := p.dial()
	if err != nil {
		p.refused.Add(1)
		return
	}
	if !p.track(backend) {
		_ = backend.Close()
		return
	}
	defer p.untrack(backend)
	// Either direction ending (a dead backend, a client that left) ends
	// the connection: closing both unblocks the other copy. HTTP clients
	// never half-close, so nothing is cut short.
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(backend, client)
	go pipe(client, backend)
	<-done
	_ = client.Close()
	_ = backend.Close()
	<-done
}

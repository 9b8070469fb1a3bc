package vaulttest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// FaultProxy is a loopback TCP proxy in front of a Vault address that can
// lose the answer to a request Vault has already carried out: armed with
// [FaultProxy.DropResponseTo], it forwards the next request whose bytes
// contain a pattern (for example "PUT /v1/secret/data/knot/x") and then
// closes the connection instead of forwarding Vault's response. That is a
// write committed whose response was lost, which vault/api answers by
// sending the write again. Point a client at [FaultProxy.URL].
type FaultProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	pattern []byte // armed when non-nil
	conns   map[net.Conn]struct{}
	closed  bool
	wg      sync.WaitGroup

	dropped  atomic.Int64
	requests atomic.Int64
}

// NewFaultProxy listens on a free loopback port and forwards to target
// ("host:port" or a Vault URL such as http://127.0.0.1:8200).
func NewFaultProxy(target string) (*FaultProxy, error) {
	for _, p := range []string{"http://", "https://"} {
		if len(target) > len(p) && target[:len(p)] == p {
			target = target[len(p):]
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &FaultProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// URL is the proxy's address as a Vault URL, http://127.0.0.1:port.
func (p *FaultProxy) URL() string { return "http://" + p.ln.Addr().String() }

// DropResponseTo arms the proxy: the response to the next request whose
// bytes contain pattern is not forwarded; its connection is closed.
func (p *FaultProxy) DropResponseTo(pattern string) {
	p.mu.Lock()
	p.pattern = []byte(pattern)
	p.mu.Unlock()
}

// Dropped returns how many responses were dropped.
func (p *FaultProxy) Dropped() int64 { return p.dropped.Load() }

// Close stops the proxy and closes every connection.
func (p *FaultProxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *FaultProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *FaultProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *FaultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *FaultProxy) serve(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(server) {
		return
	}
	defer p.untrack(server)
	var drop atomic.Bool // the current request's response is to be dropped
	done := make(chan struct{}, 2)
	go func() { // client -> server
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				p.requests.Add(1)
				p.mu.Lock()
				if p.pattern != nil && bytes.Contains(buf[:n], p.pattern) {
					p.pattern = nil
					drop.Store(true)
				}
				p.mu.Unlock()
				if _, werr := server.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() { // server -> client
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 && drop.Load() {
				// Vault has answered: the request was carried out. Lose
				// the answer.
				p.dropped.Add(1)
				_ = client.Close()
				_ = server.Close()
				return
			}
			if n > 0 {
				if _, werr := client.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					_ = client.Close()
				}
				return
			}
		}
	}()
	<-done
	_ = client.Close()
	_ = server.Close()
	<-done
}

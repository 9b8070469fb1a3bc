package knottest

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/knotmtls/knotmtls/provider"
)

// maxBody is the largest request body the fake reads and records.
const maxBody = 1 << 20

// Request is one request that reached the HTTP layer, as recorded by the
// server.
type Request struct {
	Method, Path, RawQuery string
	// Body is the request body (up to 1 MiB).
	Body []byte
	// Header is a copy of the request headers, Authorization included.
	Header http.Header
	// ClientSerial is the serial ([provider.SerialHex]) of the client
	// certificate presented on the connection that carried the request.
	ClientSerial string
	// ClientCN is that certificate's subject CN.
	ClientCN string
	// TLSVersion is the negotiated TLS version (tls.VersionTLS12, ...).
	TLSVersion uint16
	// Proto is the HTTP protocol of the request: "HTTP/1.1" or "HTTP/2.0".
	Proto string
	// Resumed reports whether the connection resumed an earlier TLS session
	// (a session ticket) instead of a full handshake. ClientSerial is then
	// the serial of the certificate presented in that earlier handshake.
	Resumed bool
	// AuthOK reports whether Basic auth matched the client_id and secret.
	AuthOK bool
	// Time is when the request arrived.
	Time time.Time
	// Status is the HTTP status written; 0 while the request is in flight
	// and for requests whose connection was dropped or abandoned.
	Status int
}

func (r Request) clone() Request {
	r.Body = bytes.Clone(r.Body)
	r.Header = r.Header.Clone()
	return r
}

// Server is a fake Knot API over mutual TLS. Create it with [NewServer] or
// [NewTestServer]; it is safe for concurrent use.
type Server struct {
	cfg      config
	clientCA *authority
	serverCA *authority
	url      string
	srv      *http.Server
	api      *api

	closing   chan struct{} // closed by Close: wakes delayed handlers
	serveDone chan struct{} // closed when Serve returns
	closeOnce sync.Once
	conns     sync.WaitGroup // connections not yet closed or hijacked
	handlers  sync.WaitGroup // handlers running

	mu            sync.Mutex
	closed        bool
	gen           int // bumped by Reset so in-flight requests do not update new records
	requests      []Request
	faults        []*faultState
	handshakeErrs []string
	handshakes    Handshakes
}

// Handshakes counts the TLS handshakes the server completed certificate
// verification for, since it started or was last Reset.
type Handshakes struct {
	// Full handshakes: the client signed a CertificateVerify with its key.
	Full int
	// Resumed handshakes reused a session ticket: no client signature.
	Resumed int
}

// connInfo is the per-connection state, stored in each connection's
// context.
type connInfo struct {
	conn     net.Conn
	requests atomic.Int64
}

type connInfoKey struct{}

// NewServer starts a fake Knot API on 127.0.0.1 with a random port. It
// generates its CAs and server certificate in memory. Call Close when done.
func NewServer(opts ...Option) (*Server, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.minVersion < tls.VersionTLS12 {
		return nil, fmt.Errorf("knottest: minimum TLS version %s is below TLS 1.2", tls.VersionName(cfg.minVersion))
	}
	if cfg.maxVersion != 0 && cfg.maxVersion < cfg.minVersion {
		return nil, fmt.Errorf("knottest: maximum TLS version %s is below the minimum %s",
			tls.VersionName(cfg.maxVersion), tls.VersionName(cfg.minVersion))
	}
	if cfg.clientID == "" {
		return nil, errors.New("knottest: empty client_id")
	}
	if cfg.certValidity <= 0 {
		return nil, errors.New("knottest: certificate validity must be positive")
	}
	if cfg.maxPerConn < 0 {
		return nil, errors.New("knottest: max requests per connection must not be negative")
	}

	now := time.Now()
	clientCA, err := newClientCA(now)
	if err != nil {
		return nil, err
	}
	serverCA, err := newServerCA(now)
	if err != nil {
		return nil, err
	}
	serverCert, err := serverCA.serverCertificate(now)
	if err != nil {
		return nil, err
	}

	s := &Server{
		cfg:       cfg,
		clientCA:  clientCA,
		serverCA:  serverCA,
		api:       newAPI(),
		closing:   make(chan struct{}),
		serveDone: make(chan struct{}),
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(clientCA.cert)
	tlsCfg := &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
		MinVersion:   cfg.minVersion,
		MaxVersion:   cfg.maxVersion,
		NextProtos:   []string{"http/1.1"},

		SessionTicketsDisabled: !cfg.tickets,
		VerifyConnection:       s.countHandshake,
	}
	if cfg.http2 {
		tlsCfg.NextProtos = []string{"h2", "http/1.1"}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("knottest: listen: %w", err)
	}
	s.url = "https://" + ln.Addr().String()

	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(cfg.http2)
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(errorLogWriter{s}, "", 0),
		Protocols:         &protocols,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connInfoKey{}, &connInfo{conn: c})
		},
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				s.conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				s.conns.Done()
			}
		},
	}
	go func() {
		defer close(s.serveDone)
		_ = s.srv.Serve(tls.NewListener(ln, tlsCfg))
	}()
	return s, nil
}

// NewTestServer is [NewServer] for tests: it fails t on error and closes
// the server in t.Cleanup.
func NewTestServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := NewServer(opts...)
	if err != nil {
		t.Fatalf("knottest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// URL returns the base URL, https://127.0.0.1:port, without a trailing
// slash.
func (s *Server) URL() string { return s.url }

// ClientID returns the client_id the server expects.
func (s *Server) ClientID() string { return s.cfg.clientID }

// Secret returns the Basic auth secret the server expects.
func (s *Server) Secret() string { return s.cfg.secret }

// Close stops the server: it wakes handlers sleeping in a [Fault] delay,
// closes the listener and every connection, and waits until every
// connection and handler goroutine has finished. It is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.closing)
		_ = s.srv.Close()
		<-s.serveDone
		s.conns.Wait()
		s.handlers.Wait()
	})
}

// Requests returns copies of the recorded requests, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = r.clone()
	}
	return out
}

// Serials returns the distinct client certificate serials
// ([provider.SerialHex] form) of the recorded requests, in first-seen order.
func (s *Server) Serials() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	seen := make(map[string]bool)
	for _, r := range s.requests {
		if r.ClientSerial != "" && !seen[r.ClientSerial] {
			seen[r.ClientSerial] = true
			out = append(out, r.ClientSerial)
		}
	}
	return out
}

// HandshakeErrors returns the TLS handshake failures the server saw since
// it started or was last Reset, as the server logged them (for example
// "... tls: client didn't provide a certificate"). Connections refused at
// the handshake never reach HTTP and are not in [Server.Requests]. The
// server records a failure after it sends its alert, so a client may see
// its error slightly before the failure shows up here.
func (s *Server) HandshakeErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.handshakeErrs...)
}

// Handshakes returns how many full and resumed TLS handshakes the server
// has verified since it started or was last Reset. A handshake is counted
// when the server has checked the client certificate (or, resumed, the
// session carrying it), before the handshake's last message.
func (s *Server) Handshakes() Handshakes {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handshakes
}

// countHandshake is the server's tls.Config.VerifyConnection: it runs on
// every full and resumed handshake and refuses none.
func (s *Server) countHandshake(cs tls.ConnectionState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs.DidResume {
		s.handshakes.Resumed++
	} else {
		s.handshakes.Full++
	}
	return nil
}

// Reset clears the recorded requests, handshake errors and counts, and
// queued faults. Fixture state (linked accounts, sessions) is kept.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	s.requests = nil
	s.faults = nil
	s.handshakeErrs = nil
	s.handshakes = Handshakes{}
}

// errorLogWriter receives net/http's error log: TLS handshake failures and
// other connection errors.
type errorLogWriter struct{ s *Server }

func (w errorLogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	if strings.Contains(line, "TLS handshake error") {
		w.s.mu.Lock()
		w.s.handshakeErrs = append(w.s.handshakeErrs, line)
		w.s.mu.Unlock()
		w.s.cfg.logger.Warn("knottest: tls handshake failed", "error", line)
	} else {
		w.s.cfg.logger.Warn("knottest: http server", "error", line)
	}
	return len(p), nil
}

// statusWriter remembers the status a handler writes.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// serveHTTP records the request, applies faults, checks the certificate CN
// and Basic auth, then dispatches to the API.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		panic(http.ErrAbortHandler)
	}
	s.handlers.Add(1)
	s.mu.Unlock()
	defer s.handlers.Done()

	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		panic(http.ErrAbortHandler) // the client went away mid-body
	}
	rec := Request{
		Method:   r.Method,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Body:     body,
		Header:   r.Header.Clone(),
		Proto:    r.Proto,
		Time:     time.Now(),
	}
	if r.TLS != nil {
		rec.TLSVersion = r.TLS.Version
		rec.Resumed = r.TLS.DidResume
		if len(r.TLS.PeerCertificates) > 0 {
			leaf := r.TLS.PeerCertificates[0]
			rec.ClientSerial = provider.SerialHex(leaf)
			rec.ClientCN = leaf.Subject.CommonName
		}
	}
	user, pass, hasAuth := r.BasicAuth()
	rec.AuthOK = hasAuth &&
		subtle.ConstantTimeCompare([]byte(user), []byte(s.cfg.clientID)) == 1 &&
		subtle.ConstantTimeCompare([]byte(pass), []byte(s.cfg.secret)) == 1

	s.mu.Lock()
	idx, gen := len(s.requests), s.gen
	s.requests = append(s.requests, rec)
	fault, hasFault := s.takeFault(r.URL.Path)
	s.mu.Unlock()

	ci, _ := r.Context().Value(connInfoKey{}).(*connInfo)
	if n := s.cfg.maxPerConn; n > 0 && ci != nil && ci.requests.Add(1) >= int64(n) {
		// net/http closes an HTTP/1.1 connection after this response and
		// sends a graceful GOAWAY on an HTTP/2 one.
		w.Header().Set("Connection", "close")
	}

	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		s.mu.Lock()
		if s.gen == gen && idx < len(s.requests) {
			s.requests[idx].Status = sw.status
		}
		s.mu.Unlock()
		s.cfg.logger.Info("knottest: request", "method", r.Method, "path", r.URL.Path,
			"status", sw.status, "client_serial", rec.ClientSerial, "client_cn", rec.ClientCN,
			"tls", tls.VersionName(rec.TLSVersion), "proto", rec.Proto, "resumed", rec.Resumed, "auth_ok", rec.AuthOK)
	}()

	if hasFault && s.applyFault(sw, w, r, fault) {
		return
	}
	if len(body) > maxBody {
		writeJSON(sw, http.StatusRequestEntityTooLarge, invalidField("The request body is too large."))
		return
	}
	if rec.ClientCN != s.cfg.clientID {
		e := invalidAPIKeys("The client certificate does not belong to this client_id.")
		writeJSON(sw, e.status, e)
		return
	}
	if !rec.AuthOK {
		e := invalidAPIKeys("Invalid client_id or secret provided.")
		writeJSON(sw, e.status, e)
		return
	}
	s.api.serve(sw, r, body)
}

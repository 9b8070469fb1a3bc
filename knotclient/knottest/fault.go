package knottest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Fault is a misbehaviour the server applies to matching requests; queue one
// with [Server.Fail]. Faults apply to every request that reaches HTTP, before
// the certificate CN and Basic auth are checked, and the request is recorded
// either way.
//
// The parts combine in this order: wait Delay; then Drop the connection,
// or answer with Status and/or Body; a fault with neither Drop, Status nor
// Body lets the request through to the normal handler after the delay (with
// Retry-After set if RetryAfter is).
type Fault struct {
	// Path restricts the fault to one exact URL path ("/transactions/sync");
	// "" matches every path.
	Path string
	// Status is the status to answer with. Without Body the body is
	// Knot-shaped ({"error_type":...,"error_code":...,"error_message":...}),
	// except 500, which gets {"message":"Server Error"} as Knot documents,
	// and other 5xx, which get {"message":"<status text>"}. 429 gets
	// RATE_LIMIT / RATE_LIMIT_EXCEEDED (Knot documents no 429 at all).
	Status int
	// RetryAfter is the Retry-After header value, typically with 429 or 503.
	RetryAfter string
	// Delay is how long to wait before anything else. The wait ends early,
	// and the request is abandoned without a response, when the client
	// goes away or the server is closed.
	Delay time.Duration
	// Drop closes the TCP connection (with a reset) without any response;
	// over HTTP/2 that ends every other request on the connection too.
	// net/http transparently retries an idempotent request (GET, or one
	// with GetBody and an Idempotency-Key) when a reused connection closes
	// before answering, so a single drop may be invisible to a net/http
	// client on a warm connection; drop a POST, or use Times > 1.
	Drop bool
	// Body replaces the response body verbatim, for example a non-JSON proxy
	// page. Without Status the status is 200.
	Body string
	// ContentType is the Content-Type sent with Body; "" means
	// application/json when Body is valid JSON and text/html otherwise.
	ContentType string
	// Times is how many matching requests the fault applies to; 0 (or
	// negative) means every matching request until [Server.Reset].
	Times int
}

type faultState struct {
	f    Fault
	left int // remaining uses; <= 0 means unlimited
}

// Fail queues a fault. Faults are consulted in the order they were queued;
// the first one whose Path matches and that has uses left applies, so
// Fail(A{Times: 1}); Fail(B{Times: 1}) gives A to the next matching request
// and B to the one after. Fail panics if Status is set but is not a valid
// HTTP status code (100-999).
func (s *Server) Fail(f Fault) {
	if f.Status != 0 && (f.Status < 100 || f.Status > 999) {
		panic(fmt.Sprintf("knottest: invalid fault status %d", f.Status))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &faultState{f: f, left: f.Times})
}

// takeFault returns the fault for a request to path and uses it up. The
// caller holds s.mu.
func (s *Server) takeFault(path string) (Fault, bool) {
	for i, st := range s.faults {
		if st.f.Path != "" && st.f.Path != path {
			continue
		}
		if st.f.Times > 0 {
			st.left--
			if st.left <= 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return st.f, true
	}
	return Fault{}, false
}

// applyFault applies f and reports whether the response is complete. sw is
// the recording writer, raw the connection's own writer (for hijacking).
func (s *Server) applyFault(sw *statusWriter, raw http.ResponseWriter, r *http.Request, f Fault) bool {
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			panic(http.ErrAbortHandler)
		case <-s.closing:
			t.Stop()
			panic(http.ErrAbortHandler)
		}
	}
	if f.Drop {
		conn, _, err := http.NewResponseController(raw).Hijack()
		if err != nil {
			// HTTP/2 cannot hand its connection over: close it under
			// the server instead, which ends every stream on it.
			if ci, ok := r.Context().Value(connInfoKey{}).(*connInfo); ok {
				dropConn(ci.conn)
			}
			panic(http.ErrAbortHandler)
		}
		dropConn(conn)
		return true
	}
	if f.RetryAfter != "" {
		sw.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.Status == 0 && f.Body == "" {
		return false
	}
	status := f.Status
	if status == 0 {
		status = http.StatusOK
	}
	if f.Body == "" {
		writeJSON(sw, status, faultBody(status))
		return true
	}
	ct := f.ContentType
	if ct == "" {
		ct = "text/html; charset=utf-8"
		if json.Valid([]byte(f.Body)) {
			ct = "application/json"
		}
	}
	sw.Header().Set("Content-Type", ct)
	sw.WriteHeader(status)
	_, _ = sw.Write([]byte(f.Body))
	return true
}

// dropConn closes a hijacked connection abruptly: no TLS close_notify, and a
// TCP reset where possible, like a crashing proxy.
func dropConn(conn net.Conn) {
	type netConner interface{ NetConn() net.Conn }
	if nc, ok := conn.(netConner); ok {
		conn = nc.NetConn()
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

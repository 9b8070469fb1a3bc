package knotclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/knotmtls/knotmtls/provider"
)

// maxResponseBytes bounds how much of a response body is read.
const maxResponseBytes = 16 << 20

// errResponseTooLarge is returned when a response exceeds maxResponseBytes.
var errResponseTooLarge = errors.New("response body exceeds 16 MiB")

// Client calls the Knot API over mutual TLS. Create it with [New]; it is
// safe for concurrent use and should be reused: it keeps connections alive.
// Call [Client.Close] when done.
type Client struct {
	cfg     Config
	baseURL string // no trailing slash
	log     *slog.Logger

	// Prebuilt header values, shared read-only by every request.
	hdrKnotVersion []string
	hdrUserAgent   []string
	hdrJSON        []string

	once sync.Once
	rt   atomic.Pointer[rotatingTransport]
	hc   *http.Client

	stopNotify func()
	closeOnce  sync.Once
	closed     atomic.Bool
	done       chan struct{} // closed by Close: ends retry waits
}

// New returns a Client for cfg. It validates cfg and does no I/O: the
// transport, and with it the first TLS handshake and the first call to the
// certificate getter, happens on the first API call. If cfg.Certificates has
// a Notify method (as *provider.Provider does), New subscribes to it.
func New(cfg Config) (*Client, error) {
	cfg, u, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ua := defaultUserAgent()
	if cfg.UserAgent != "" {
		ua = cfg.UserAgent + " " + ua
	}
	c := &Client{
		cfg:            cfg,
		baseURL:        u.String(),
		log:            cfg.Logger.With("component", "knotmtls/knotclient"),
		hdrKnotVersion: []string{cfg.KnotVersion},
		hdrUserAgent:   []string{ua},
		hdrJSON:        []string{"application/json"},
		done:           make(chan struct{}),
	}
	if n, ok := cfg.Certificates.(notifier); ok {
		c.stopNotify = n.Notify(c.rotated)
	}
	return c, nil
}

// BaseURL returns the URL the client sends requests to.
func (c *Client) BaseURL() string { return c.baseURL }

// String describes the client by its client_id and the scheme and host it
// calls. It never includes the secret or anything the certificate getter
// holds.
func (c *Client) String() string {
	return fmt.Sprintf("knotclient.Client{ClientID:%q, BaseURL:%q}", c.cfg.ClientID, urlOrigin(c.baseURL))
}

// Format prints [Client.String] under every verb: fmt would otherwise print
// the fields, the Config with its Secret among them.
func (c *Client) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// LogValue describes the client for slog handlers, as [Client.String] does.
func (c *Client) LogValue() slog.Value {
	return slog.GroupValue(slog.String("client_id", c.cfg.ClientID), slog.String("base_url", urlOrigin(c.baseURL)))
}

// httpClient builds the transport on first use.
func (c *Client) httpClient() *http.Client {
	c.once.Do(func() {
		rt := newRotatingTransport(newBaseTransport(&c.cfg))
		var top http.RoundTripper = rt
		if c.cfg.WrapTransport != nil {
			top = c.cfg.WrapTransport(rt)
		}
		c.hc = &http.Client{
			Transport: top,
			// Knot's API does not redirect; following one could resend a
			// body that must not be sent twice.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		c.rt.Store(rt)
		if c.closed.Load() { // Close raced the build
			rt.close()
		}
	})
	return c.hc
}

// rotated is the certificate getter's rotation callback.
func (c *Client) rotated(old, new *provider.Bundle) {
	if old == nil { // first load, during the first handshake: nothing to move
		return
	}
	rt := c.rt.Load()
	if rt == nil { // transport not built yet: it will use the new one
		return
	}
	rt.rotate()
	c.log.Info("client certificate rotated; new requests use new connections",
		"old_serial", provider.SerialHex(old.Leaf()), "new_serial", provider.SerialHex(new.Leaf()))
}

// Close unsubscribes from certificate rotation and closes idle connections;
// responses still being read finish, and their connections close after. A
// call waiting to retry gives up at once, returning its last error wrapped
// with [ErrClosed]. It does not close the certificate provider. Calls made
// after Close return [ErrClosed]. Close is idempotent and always returns
// nil.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		close(c.done)
		if c.stopNotify != nil {
			c.stopNotify()
		}
		if rt := c.rt.Load(); rt != nil {
			rt.close()
		}
	})
	return nil
}

// call describes one API operation.
type call struct {
	method string
	op     string     // method + path template, for errors and logs
	path   string     // escaped path, leading slash
	query  url.Values // optional
	body   any        // nil: no request body
	// retry marks calls that are safe to send more than once.
	retry bool
	// errorIn200 treats an error_message in a 2xx body as a failure.
	errorIn200 bool
}

// do runs c with retries per its policy and decodes a 2xx body into out
// (when out is non-nil).
func (c *Client) do(ctx context.Context, cl call, out any) error {
	if c.closed.Load() {
		return fmt.Errorf("%w (%s)", ErrClosed, cl.op)
	}
	var payload []byte
	if cl.body != nil {
		var err error
		if payload, err = json.Marshal(cl.body); err != nil {
			return fmt.Errorf("knotclient: %s: encode request: %w", cl.op, err)
		}
	}
	secret, err := c.cfg.Secret.Secret(ctx)
	if err != nil {
		return fmt.Errorf("knotclient: %s: get secret: %w", cl.op, err)
	}
	if secret == "" {
		return fmt.Errorf("knotclient: %s: the secret source returned an empty secret", cl.op)
	}
	token := base64.StdEncoding.EncodeToString([]byte(c.cfg.ClientID + ":" + secret))
	auth := []string{"Basic " + token}
	target := c.baseURL + cl.path
	if len(cl.query) > 0 {
		target += "?" + cl.query.Encode()
	}
	hc := c.httpClient()
	attempts := 1
	if cl.retry {
		attempts = c.cfg.MaxAttempts
	}
	for n := 1; ; n++ {
		start := time.Now()
		status, hdr, body, err := c.attempt(ctx, hc, cl, target, payload, auth)
		ev := AttemptEvent{Op: cl.op, Attempt: n, Status: status, Err: err, Duration: time.Since(start)}
		done := func(err error) error { c.observe(ev); return err } // no retry follows
		var (
			lastErr error
			delay   time.Duration
		)
		if err == nil {
			if status >= 200 && status <= 299 {
				return done(c.decode(cl, status, body, out, secret, token))
			}
			apiErr := newError(cl.op, status, body, secret, token)
			apiErr.Attempts = n
			ra, hasRA := parseRetryAfter(hdr.Get("Retry-After"), time.Now())
			apiErr.RetryAfter = ra
			if !cl.retry || n >= attempts || !retryableStatus(status) {
				return done(apiErr)
			}
			if err := ctx.Err(); err != nil {
				return done(fmt.Errorf("%w (retry abandoned: %w)", apiErr, err))
			}
			if hasRA && ra > c.cfg.MaxRetryAfter {
				return done(apiErr)
			}
			lastErr, delay = apiErr, backoff(c.cfg.RetryBaseDelay, c.cfg.RetryMaxDelay, n)
			if hasRA {
				delay = ra
			}
			c.log.Info("knot call failed; retrying", "op", cl.op, "status", status,
				"attempt", n, "max_attempts", attempts, "delay", delay)
		} else {
			if n > 1 {
				lastErr = fmt.Errorf("knotclient: %s: after %d attempts: %w", cl.op, n, err)
			} else {
				lastErr = fmt.Errorf("knotclient: %s: %w", cl.op, err)
			}
			if n >= c.cfg.MaxAttempts || !retryAttempt(ctx, cl, err) {
				return done(lastErr)
			}
			delay = backoff(c.cfg.RetryBaseDelay, c.cfg.RetryMaxDelay, n)
			c.log.Info("knot call failed; retrying", "op", cl.op, "error", err,
				"attempt", n, "max_attempts", c.cfg.MaxAttempts, "delay", delay)
		}
		ev.Retry, ev.Delay = true, delay
		c.observe(ev)
		if err := sleep(ctx, c.done, delay); err != nil {
			return fmt.Errorf("%w (retry abandoned: %w)", lastErr, err)
		}
	}
}

// attempt sends one request and reads the whole response.
func (c *Client) attempt(ctx context.Context, hc *http.Client, cl call, target string, payload []byte, auth []string) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, target, body)
	if err != nil {
		return 0, nil, nil, err
	}
	h := req.Header
	h["Authorization"] = auth
	h["Knot-Version"] = c.hdrKnotVersion
	h["User-Agent"] = c.hdrUserAgent
	h["Accept"] = c.hdrJSON
	if payload != nil {
		h["Content-Type"] = c.hdrJSON
	}
	req, gotConn := traceConn(req)
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error // its text repeats the URL, query included
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, nil, nil, c.classifyAttempt(err, gotConn.Load())
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read response: %w", err)
	}
	if len(b) > maxResponseBytes {
		return 0, nil, nil, errResponseTooLarge
	}
	return resp.StatusCode, resp.Header, b, nil
}

// decode handles a 2xx response. secrets are scrubbed from an error.
func (c *Client) decode(cl call, status int, body []byte, out any, secrets ...string) error {
	if cl.errorIn200 {
		var eb errorBody
		if json.Unmarshal(body, &eb) == nil && (eb.ErrorMessage != "" || eb.Code != "") {
			e := newError(cl.op, status, body, secrets...)
			e.Attempts = 1
			return e
		}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("knotclient: %s: decode response: %w", cl.op, err)
	}
	return nil
}

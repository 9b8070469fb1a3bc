package vaultsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/hashicorp/vault/api"

	"github.com/knotmtls/knotmtls/internal/retryafter"
	"github.com/knotmtls/knotmtls/internal/vaultresp"
)

// vault performs requests through a caller-configured *api.Client and turns
// Vault's answers into *Error values. On a 403 it retries once: at once when
// another caller's re-login already replaced the token the request was sent
// with, or when auth.HandleDenied says so.
type vault struct {
	client *api.Client
	auth   Auth
}

// request is one Vault API call.
type request struct {
	op         string         // for errors: "read", "write", ...
	method     string         // http.MethodGet or http.MethodPut
	path       string         // API path without /v1/
	capability string         // policy capability needed on path
	body       map[string]any // JSON body for PUT
	notFound   error          // sentinel for a 404 (default ErrSecretNotFound)
	noRelogin  bool           // a 403 is expected and final (diagnostic probes)
	noRetry    bool           // no vault/api retries (a write that must not repeat)
}

// do performs r. On a Vault error status it returns an *Error; for a 404
// whose body still carries data (a deleted KV v2 version) it returns that
// secret as well.
func (v *vault) do(ctx context.Context, r request) (*api.Secret, error) {
	token := v.client.Token()
	sec, status, err := v.once(ctx, r)
	if status != http.StatusForbidden || v.auth == nil || r.noRelogin {
		return sec, err
	}
	// A token set while this request was under way (a concurrent caller's
	// re-login) is tried as is: many handshakes that fail together with a
	// revoked token cause one login, not one each.
	if v.client.Token() != token {
		sec, _, err = v.once(ctx, r)
		return sec, err
	}
	if herr := v.auth.HandleDenied(ctx, r.path, r.capability, errors.Is(err, ErrInvalidToken)); herr != nil {
		if v.client.Token() != token { // a login finished meanwhile
			sec, _, err = v.once(ctx, r)
			return sec, err
		}
		var e *Error
		if errors.As(err, &e) {
			switch {
			case errors.Is(herr, vaultresp.ErrTokenValid):
				e.Detail = fmt.Sprintf("the token is valid (lookup-self) but its policy lacks the %q capability on %s; a new login would not help", r.capability, r.path)
			default:
				e.Err = ErrInvalidToken
				e.Detail += "; re-login failed"
			}
			e.Cause = errors.Join(e.Cause, fmt.Errorf("vaultsource: auth: %w", herr))
		}
		return sec, err
	}
	sec, _, err = v.once(ctx, r)
	return sec, err
}

func (v *vault) once(ctx context.Context, r request) (*api.Secret, int, error) {
	if t := v.client.ClientTimeout(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	boundRetryAfter(v.client)
	ctx = context.WithValue(ctx, boundedKey{}, true)
	var (
		resp *api.Response
		err  error
	)
	client := v.client
	if r.noRetry {
		c, cerr := v.client.Clone()
		if cerr != nil {
			return nil, 0, &Error{Op: r.op, Path: r.path, Err: ErrInvalidArgument, Cause: cerr}
		}
		c.SetToken(v.client.Token())
		// Clone copies headers only with CloneHeaders set: without them
		// the write would leave the namespace (X-Vault-Namespace) behind.
		c.SetHeaders(v.client.Headers())
		c.SetMaxRetries(0)
		client = c
	}
	switch r.method {
	case http.MethodGet:
		resp, err = client.Logical().ReadRawWithContext(ctx, r.path)
	default:
		var body []byte
		body, err = json.Marshal(r.body)
		if err != nil {
			return nil, 0, &Error{Op: r.op, Path: r.path, Err: ErrInvalidArgument, Detail: "request body cannot be encoded"}
		}
		// Not Logical().WriteRawWithContext: it cancels its own timeout
		// context before returning the response, so over HTTP/2 (any TLS
		// Vault, with Go's default transport) reading the body fails with
		// "context canceled". once applies the client timeout itself.
		req := client.NewRequest(r.method, "/v1/"+r.path)
		req.BodyBytes = body
		resp, err = client.RawRequestWithContext(ctx, req) //nolint:staticcheck // see above
		clear(body)                                        // it may hold a private key
	}
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		if resp == nil {
			e := &Error{Op: r.op, Path: r.path, Err: ErrUnavailable, Cause: err}
			if errors.Is(err, context.DeadlineExceeded) {
				e.Detail = "no answer from Vault in time"
			}
			return nil, 0, e
		}
		var msgs []string
		var re *api.ResponseError
		if errors.As(err, &re) {
			msgs = re.Errors
		}
		// Response.Error buffered the body; a 404 may still carry data.
		sec, _ := api.ParseSecret(resp.Body)
		e := classify(r, resp.StatusCode, msgs, err)
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			e.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
		return sec, resp.StatusCode, e
	}
	sec, err := api.ParseSecret(resp.Body)
	if err != nil {
		return nil, resp.StatusCode, &Error{Op: r.op, Path: r.path, Status: resp.StatusCode, Err: ErrUnexpectedResponse, Cause: err}
	}
	return sec, resp.StatusCode, nil
}

// boundedKey marks the context of vaultsource's own requests for the retry
// policy boundRetryAfter installs.
type boundedKey struct{}

// bounded holds the clients whose retry policy boundRetryAfter wrapped,
// weakly: a client that is no longer used is collected, and its entry
// removed.
var bounded sync.Map // weak.Pointer[api.Client] -> struct{}

// boundRetryAfter wraps c's retry policy (once per client) so that a 429 or
// 503 whose Retry-After outlasts the request's deadline ends vault/api's
// retries at once: vault/api would otherwise sleep that Retry-After out
// inside the call, until the deadline cancels it and the header is lost.
// The answer then reaches once, whose error carries the hint
// ([Error.RetryAfter]) for provider's backoff. Only vaultsource's own
// requests (marked with boundedKey) are affected; other requests through
// the same client are retried by the client's policy exactly as before. A
// policy the caller sets later (SetCheckRetry) replaces the wrapper: hints
// are then still read when vault/api gives up before the deadline.
func boundRetryAfter(c *api.Client) {
	wp := weak.Make(c)
	if _, loaded := bounded.LoadOrStore(wp, struct{}{}); loaded {
		return
	}
	runtime.AddCleanup(c, func(wp weak.Pointer[api.Client]) { bounded.Delete(wp) }, wp)
	var next func(context.Context, *http.Response, error) (bool, error) = c.CheckRetry()
	if next == nil {
		next = api.DefaultRetryPolicy // what vault/api applies when none is set
	}
	c.SetCheckRetry(func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		retry, rerr := next(ctx, resp, err)
		if !retry || rerr != nil || resp == nil || ctx.Value(boundedKey{}) == nil ||
			(resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
			return retry, rerr
		}
		wait := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		if deadline, ok := ctx.Deadline(); ok && wait > 0 && time.Until(deadline) < wait {
			return false, nil // answer now; the caller waits Retry-After out
		}
		return retry, rerr
	})
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an
// HTTP-date; 0 when there is none, it is malformed or already past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	d, _ := retryafter.Parse(v, now)
	return d
}

// classify maps a Vault error status to a sentinel (the classes of
// internal/vaultresp, shared with vaultauth, plus the KV and Transit
// specifics).
func classify(r request, status int, msgs []string, cause error) *Error {
	e := &Error{Op: r.op, Path: r.path, Status: status, Cause: cause}
	joined := strings.ToLower(strings.Join(msgs, "; "))
	switch class := vaultresp.Classify(status, msgs); {
	case class == vaultresp.PermissionDenied || class == vaultresp.InvalidToken:
		e.Err = ErrPermissionDenied
		if class == vaultresp.InvalidToken {
			e.Err = ErrInvalidToken
		}
		e.Capability = r.capability
		if r.capability != "" {
			e.Detail = fmt.Sprintf("the token needs the %q capability on %s", r.capability, r.path)
		}
	case status == http.StatusNotFound && strings.Contains(joined, "no handler for route"):
		e.Err = ErrMountNotFound
		e.Detail = "no secrets engine is mounted there"
	case class == vaultresp.NotFound:
		e.Err = r.notFound
		if e.Err == nil {
			e.Err = ErrSecretNotFound
		}
	case status == http.StatusBadRequest && strings.Contains(joined, "check-and-set parameter did not match"):
		e.Err = ErrConflict
		e.Detail = "the secret's current version is not the one this write was based on; nothing was written"
	case class == vaultresp.Sealed:
		e.Err = ErrSealed
	case class == vaultresp.RateLimited:
		e.Err = ErrRateLimited
	case class == vaultresp.Unavailable:
		e.Err = ErrUnavailable
	default:
		e.Err = ErrRejected
	}
	return e
}

// mapField returns data[name] as a map, or nil.
func mapField(data map[string]any, name string) map[string]any {
	if data == nil {
		return nil
	}
	m, _ := data[name].(map[string]any)
	return m
}

// intField returns data[name] as an int (Vault numbers arrive as
// json.Number), reporting whether it was present and numeric.
func intField(data map[string]any, name string) (int, bool) {
	switch n := data[name].(type) {
	case json.Number:
		i, err := n.Int64()
		return int(i), err == nil
	case float64:
		return int(n), true
	case int:
		return n, true
	case string:
		var i int
		_, err := fmt.Sscan(n, &i)
		return i, err == nil
	}
	return 0, false
}

func stringValue(data map[string]any, name string) string {
	s, _ := data[name].(string)
	return s
}

func joinPath(parts ...string) string {
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		if p = strings.Trim(p, "/"); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "/")
}

func cleanName(what, s string) (string, error) {
	s = strings.Trim(strings.TrimSpace(s), "/")
	if strings.TrimSpace(s) == "" {
		return "", optionError("%s must not be empty", what)
	}
	if strings.Contains(s, "..") || strings.ContainsAny(s, "?#") {
		return "", optionError("%s %q is not a valid Vault path segment", what, s)
	}
	return s, nil
}

func checkClient(c *api.Client) error {
	if c == nil {
		return optionError("nil Vault client")
	}
	return nil
}

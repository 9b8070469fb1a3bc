package knotclient

import "time"

// AttemptEvent describes one attempt of an API call, passed to
// [Config.OnAttempt] after the attempt ended and the client decided whether
// to repeat it. It holds no secret, no request or response body and no URL.
type AttemptEvent struct {
	// Op is the operation as a method and path template, e.g.
	// "POST /session/create" or "GET /transactions/{id}": a fixed set, never
	// an ID.
	Op string
	// Attempt is 1 for the first attempt of the call, 2 for its first
	// retry, and so on.
	Attempt int
	// Status is the HTTP status of the response, 0 when none arrived.
	Status int
	// Err is the transport error when no response arrived (a
	// [*SignError] when the client key could not sign), nil otherwise.
	Err error
	// Duration is the attempt, from sending the request to reading the
	// whole response.
	Duration time.Duration
	// Retry is true when the call repeats after this attempt.
	Retry bool
	// Delay is the wait before that retry (0 when Retry is false).
	Delay time.Duration
}

// observe reports ev to Config.OnAttempt, if set.
func (c *Client) observe(ev AttemptEvent) {
	if c.cfg.OnAttempt != nil {
		c.cfg.OnAttempt(ev)
	}
}

// Package vaultresp classifies Vault's answers for the packages that talk
// to Vault (vaultauth and vaultsource), which must not import each other:
// unavailable, sealed, rate limited, permission denied, invalid token, bad
// response. It also holds the lookup-self probe both use to tell an
// invalid token from a valid token whose policy denies a path, and the one
// backoff constructor they share.
package vaultresp

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/hashicorp/vault/api"
)

// Class is what a Vault answer means for the caller.
type Class int

// Classes of Vault answers.
const (
	// OK: a 2xx answer.
	OK Class = iota
	// Unavailable: no answer (network error, timeout), a 5xx that is not a
	// seal, or a 412 (a performance standby not yet caught up).
	Unavailable
	// Sealed: 503 from a sealed Vault.
	Sealed
	// RateLimited: 429, a rate-limit quota.
	RateLimited
	// PermissionDenied: 403; the token may be valid (a policy problem) or
	// not (use [LookupSelf] to tell).
	PermissionDenied
	// InvalidToken: a 403 that says the token is invalid, expired or
	// revoked (lookup-self refused, or Vault said "invalid token").
	InvalidToken
	// NotFound: 404.
	NotFound
	// BadResponse: an answer that is not what Vault sends (not JSON, wrong
	// shape).
	BadResponse
	// Rejected: any other 4xx.
	Rejected
)

// String names the class.
func (c Class) String() string {
	switch c {
	case OK:
		return "ok"
	case Unavailable:
		return "unavailable"
	case Sealed:
		return "sealed"
	case RateLimited:
		return "rate limited"
	case PermissionDenied:
		return "permission denied"
	case InvalidToken:
		return "invalid token"
	case NotFound:
		return "not found"
	case BadResponse:
		return "bad response"
	case Rejected:
		return "rejected"
	}
	return "unknown"
}

// Classify maps a Vault HTTP status and its error messages to a class.
// status 0 means no response arrived.
func Classify(status int, msgs []string) Class {
	joined := strings.ToLower(strings.Join(msgs, "; "))
	switch {
	case status == 0:
		return Unavailable
	case status >= 200 && status <= 299:
		return OK
	case status == http.StatusForbidden && strings.Contains(joined, "invalid token"):
		return InvalidToken
	case status == http.StatusForbidden:
		return PermissionDenied
	case status == http.StatusNotFound:
		return NotFound
	case status == http.StatusTooManyRequests:
		return RateLimited
	case status == http.StatusServiceUnavailable && strings.Contains(joined, "sealed"):
		return Sealed
	case status == http.StatusPreconditionFailed || status >= 500:
		return Unavailable
	}
	return Rejected
}

// ClassifyError classifies an error returned by vault/api: an
// *api.ResponseError by its status and messages, anything else (a network
// error, a context error) as [Unavailable].
func ClassifyError(err error) Class {
	if err == nil {
		return OK
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		return Classify(re.StatusCode, re.Errors)
	}
	return Unavailable
}

// ErrTokenValid is returned (wrapped) by a login manager's HandleDenied when
// lookup-self says the token is valid: the 403 is the policy's, a new login
// would not help. vaultauth exports it as vaultauth.ErrTokenValid.
var ErrTokenValid = errors.New("the token is valid; its policy denies the request")

// LookupSelf looks token up (auth/token/lookup-self, allowed by Vault's
// default policy) on a clone of client without changing client. An empty
// token sends none, so a Vault Proxy or Agent with use_auto_auth_token
// looks up its own. The class is [OK] for a valid token, [InvalidToken] for
// a 403 (invalid, expired or revoked), otherwise the class of the failure.
func LookupSelf(ctx context.Context, client *api.Client, token string) (*api.Secret, Class, error) {
	c, err := client.CloneWithHeaders()
	if err != nil {
		return nil, BadResponse, err
	}
	c.ClearToken()
	if token != "" {
		c.SetToken(token)
	}
	s, err := c.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		cl := ClassifyError(err)
		if cl == PermissionDenied {
			cl = InvalidToken
		}
		return nil, cl, err
	}
	if s == nil || s.Data == nil {
		return nil, BadResponse, errors.New("lookup-self: empty response")
	}
	return s, OK, nil
}

// Jitter is the randomization factor of [NewBackoff]: each wait is the
// step's length ± this fraction.
const Jitter = 0.2

// NewBackoff returns the exponential backoff every Vault-facing loop uses:
// initial, doubling, capped at limit, each wait randomized by ±jitter.
func NewBackoff(initial, limit time.Duration, jitter float64) *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     initial,
		RandomizationFactor: jitter,
		Multiplier:          2,
		MaxInterval:         limit,
	}
	b.Reset()
	return b
}

// OneLine folds an error's text onto one line (Vault's API errors span
// lines) and bounds its length.
func OneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	const limit = 300
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return s
}

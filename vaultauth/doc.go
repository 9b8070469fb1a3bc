// Package vaultauth logs in to HashiCorp Vault and keeps the token valid
// for the Vault sources of this module (package vaultsource) or any other
// user of a shared *api.Client.
//
// An [Auth] logs in with a method ([Token], [TokenFile], [AppRole],
// [Kubernetes], [Userpass], [PerLogin] or any api.AuthMethod), sets the
// token on the client and keeps it valid: one goroutine owns the token
// state, renews it with an api.LifetimeWatcher, logs in again when renewal
// ends or the credentials change, retries failed logins with exponential
// backoff (github.com/cenkalti/backoff/v5) and revokes the tokens it
// replaced.
//
// When Vault answers 403, the sources call [Auth.HandleDenied]. It tells
// the cases apart with auth/token/lookup-self: an invalid, expired or
// revoked token is replaced by one shared login (at most one per backoff
// step, whatever the number of callers); a valid token whose policy denies
// the path causes no login at all, and the caller gets
// [ErrPermissionDenied] naming the path and capability, logged once per
// backoff step.
//
// A service that reaches Vault through a local Vault Proxy or Agent with
// use_auto_auth_token holds no token: use [NewProxy] instead of an Auth.
//
// The package depends on vault/api and its auth modules only; join it to a
// source with vaultsource.WithAuth. Neither an Auth nor any method prints a
// token or a credential under any fmt verb, in logs, events or errors.
package vaultauth

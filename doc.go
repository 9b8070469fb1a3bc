// Package knotmtls wires the pieces of this module for the common case in
// one call: a Vault login (package vaultauth), the KV or Transit source at
// the conventional location (package vaultsource), the certificate provider
// (package provider) and the Knot API client (package knotclient).
//
//	c, err := knotmtls.NewFromEnv(ctx) // KNOT_CLIENT_ID, KNOT_ENVIRONMENT, KNOTMTLS_VAULT_AUTH, VAULT_ADDR...
//	if err != nil {
//		log.Fatal(err) // a *ConfigError lists every missing or contradictory setting
//	}
//	defer c.Close()
//	session, err := c.Knot.CreateSession(ctx, req)
//
// [New] takes a [Config] instead of the environment. Every piece stays
// replaceable: your own *api.Client ([WithVaultClient]), any api.AuthMethod
// (Config.Login) or a Vault Proxy (Config.Proxy), any
// provider.CertificateSource (Config.Source), provider and source options,
// and every knotclient setting (Config.Knot: BaseURL and RootCAs for a
// knottest server, timeouts, retries, WrapTransport for tracing). The
// pieces New built are the fields of [Client]; [Client.Close] closes them
// all, in reverse order.
//
// # Locations
//
// The identity of client_id in environment env lives, unless configured
// otherwise, in the KV v2 secret secret/knot/<env>/<client_id> or the
// Transit key transit/keys/knot-<env>-<client_id>: the locations the CLI
// (cmd/knotmtls) provisions and docs/policies/ grant
// (vaultsource.DefaultKVPath, vaultsource.DefaultTransitKey).
//
// # Environment
//
// [ConfigFromEnv] reads the variables named by the Env constants:
// KNOT_CLIENT_ID, KNOT_ENVIRONMENT, the Knot secret (KNOT_SECRET, or
// KNOTMTLS_SECRET_KV_PATH naming a KV secret that holds it), the store
// (KNOTMTLS_STORE=kv|transit and location overrides), the login
// (KNOTMTLS_VAULT_AUTH=token|token-file|approle|kubernetes|userpass|proxy
// and each method's parameters) and, for tests, KNOTMTLS_KNOT_BASE_URL and
// KNOTMTLS_KNOT_CA_FILE. Vault's own settings (VAULT_ADDR,
// VAULT_AGENT_ADDR, VAULT_CACERT, VAULT_NAMESPACE, VAULT_TOKEN...) are read
// by api.DefaultConfig as every Vault client does.
//
// # Failures
//
// A configuration is checked before any I/O and refused with one
// [*ConfigError] listing every problem. A step that fails afterwards is a
// [*SetupError] naming the step, wrapping the typed error of the package
// that failed (vaultauth.LoginError, vaultsource.ErrSecretNotFound,
// provider.ErrExpired...). New fetches the first certificate, so a missing
// or invalid identity fails at start-up rather than on the first request.
//
// No type of this package prints a token, a credential or the Knot secret
// under any fmt verb or through slog.
package knotmtls

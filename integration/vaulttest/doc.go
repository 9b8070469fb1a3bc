// Package vaulttest starts a real HashiCorp Vault dev server for tests.
//
// Tests that claim to work with Vault run against a real Vault server, never
// a mock of its HTTP API. [Start] picks a backend:
//
//   - container: a Vault dev container started with testcontainers-go. The
//     image is VAULT_IMAGE when set, else the local image
//     knotmtls/vault-dev:1.21.0 when present, else hashicorp/vault:1.21.0 if
//     it can be pulled, else knotmtls/vault-dev:1.21.0 built on the spot
//     from the cached Vault binary (a FROM scratch image).
//   - process: when no Docker engine is reachable, the cached Vault binary
//     runs as a local "vault server -dev" process on a free loopback port.
//
// The Vault binary lives at ${KNOTMTLS_CACHE:-$HOME/.cache/knotmtls}/vault-1.21.0.
// It is compiled from the Go module proxy by the integration/vaultserver
// module; run "make vault-image" at the repository root to build the binary
// and the image ahead of time (the first build takes a long time).
//
// By default a container is tried first; if no Docker engine answers or the
// container cannot start, a local process is started instead. The backend
// can be forced with [WithBackend] or the environment variable
// KNOTMTLS_VAULT_BACKEND ("container" or "process"). [Vault.Backend] says
// which one was used, and [StartTest] logs it. Start never skips: when no
// backend works it returns an error that says what to do, so that CI fails
// loudly instead of passing without Vault.
//
// Ryuk (the testcontainers reaper, whose image cannot be pulled everywhere)
// is disabled: loading this package sets TESTCONTAINERS_RYUK_DISABLED=true
// unless it is already set, and [Vault.Terminate] removes what Start
// created. The container is reached on 127.0.0.1 first, whatever host
// testcontainers reports (inside a container it reports the bridge gateway).
//
// [WithTLS] serves Vault over HTTPS only (vault server -dev-tls, with both
// backends): Vault generates a CA and a certificate for 127.0.0.1 at each
// start; [Vault.CACert], [Vault.CACertFile] (for VAULT_CACERT) and
// [Vault.TLSConfig] hand the CA to clients, and [Vault.Client] trusts it.
//
// The dev server keeps everything in memory and is unsealed with the root
// token [RootToken]; KV v2 is mounted at secret/. Use [Vault.EnableTransit]
// and [Vault.EnableKVv1] for the other engines, and [Vault.Pause] /
// [Vault.Unpause] / [Vault.Stop] to simulate outages.
package vaulttest

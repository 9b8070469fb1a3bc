// Package vaultsource keeps Knot mTLS client identities in HashiCorp Vault
// so the private key never has to be written to disk.
//
// Two [provider.CertificateSource] implementations feed a
// [provider.Provider], which caches, validates and rotates:
//
//   - [KV] reads the certificate, optional chain and private key (PEM
//     fields, names in [DefaultFields]) from one KV v2 or v1 secret. Its
//     Version is the KV v2 version number, checked with a metadata read, so
//     polling for rotation never transfers the key.
//   - [Transit] keeps the key inside a non-exportable Transit key: every TLS
//     handshake signs through Vault (prehashed, RSA-PSS with salt length =
//     hash or PKCS#1 v1.5, pinned key version), and each signature is
//     verified locally before TLS sees it. The certificate chain is stored on
//     the key version with set-certificate (Vault 1.15+).
//
// Provisioning does Knot's onboarding without a key file: [ProvisionKV]
// generates the key in memory and stores it in KV, [ProvisionTransit]
// creates it inside Transit; both return only the CSR for Knot.
// [KV.ImportCertificate] and [Transit.ImportCertificate] check the
// certificate Knot returns (client_id, key size, signature algorithm,
// validity, chain, key pair) and store it; a certificate that does not fit
// is refused with a typed error and nothing is written.
//
// Sources take a caller-configured *api.Client: api.DefaultConfig and
// api.NewClient read VAULT_ADDR, VAULT_CACERT, VAULT_NAMESPACE and the other
// standard variables. Keeping the client logged in is the job of package
// vaultauth (or of a Vault Proxy, with vaultauth.NewProxy); join it to a
// source with [WithAuth] so that a 403 is diagnosed (a revoked or expired
// token is replaced by one shared re-login; a valid token whose policy lacks
// a capability is reported at once, without a login) and retried at most
// once. The two packages share no types: a source sees its login only
// through the one-method [Auth] interface.
//
// Options are typed per target: a [KVOption] configures a [KV], a
// [TransitOption] a [Transit], an [Option] (such as [WithAuth]) both, so an
// option that does not apply does not compile. Provisioning choices are a
// [Mode] argument of the provisioning call ([ProvisionNew],
// [ProvisionRotate], [ProvisionForce], [ProvisionExisting]). Provisioning is
// idempotent under vault/api's retries: a check-and-set failure after a
// retried write reports success when the secret holds exactly what the call
// wrote, a Transit rotate is never doubled, and importing the certificate
// already stored writes nothing and says so ([Imported].Unchanged).
//
// Constructors do no I/O and sources do not cache. Every error from the
// sources and provisioning is an [*Error] wrapping a sentinel such as [ErrSecretNotFound] or
// [ErrPermissionDenied] (or a provider sentinel such as
// provider.ErrKeyMismatch), naming the Vault path and field but never a
// secret value; String methods show the mount and path only. A Transit
// signature made during a TLS handshake is bounded by [WithSignTimeout]
// (default [DefaultSignTimeout], 5 s); its typed error survives crypto/tls
// for knotclient, which matches it with errors.Is.
package vaultsource

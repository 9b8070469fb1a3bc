# knotmtls runtime policy, KV storage (vaultsource.KV, the default).
#
# What a service needs to call Knot with the identity stored by
# "knotmtls csr" / "knotmtls import": read the secret, and read its
# metadata so the provider's rotation poll is a cheap version check that never
# transfers the key. Read-only: a compromised service cannot replace the key
# or the certificate. "knotmtls status" and "knotmtls check" need the same.
#
# Replace ENV (development or production) and CLIENT_ID, one policy per
# identity; adjust "secret" if the KV v2 engine is mounted elsewhere.

path "secret/data/knot/ENV/CLIENT_ID" {
  capabilities = ["read"]
}

path "secret/metadata/knot/ENV/CLIENT_ID" {
  capabilities = ["read"]
}

# Optional: the Knot API secret (Basic auth password), if it is kept in Vault
# ("knotmtls check --secret-kv knot/ENV/CLIENT_ID-api", field "secret").
path "secret/data/knot/ENV/CLIENT_ID-api" {
  capabilities = ["read"]
}

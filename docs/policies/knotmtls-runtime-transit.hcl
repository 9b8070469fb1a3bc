# knotmtls runtime policy, Transit storage (vaultsource.Transit, --transit).
#
# The private key never leaves Vault: the service reads the key's public parts
# and the certificate chain stored on each key version, and asks Vault to sign
# each TLS handshake. It cannot export, rotate, delete or re-certify the key.
# "knotmtls status --transit" needs the read; "knotmtls check --transit" both.
#
# Replace ENV and CLIENT_ID (the default key name is knot-ENV-CLIENT_ID);
# adjust "transit" if the engine is mounted elsewhere.

path "transit/keys/knot-ENV-CLIENT_ID" {
  capabilities = ["read"]
}

path "transit/sign/knot-ENV-CLIENT_ID" {
  capabilities = ["update"]
}

# Optional: the Knot API secret, if it is kept in KV v2.
path "secret/data/knot/ENV/CLIENT_ID-api" {
  capabilities = ["read"]
}

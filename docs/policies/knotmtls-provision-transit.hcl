# knotmtls provisioning policy, Transit storage: for the operator or pipeline
# that runs "knotmtls csr --transit" (creates the non-exportable rsa-2048 key,
# adds key versions to rotate, has Vault sign the CSR) and
# "knotmtls import --transit" (stores the certificate chain on the key
# version). Not for the service: the service gets the runtime policy.
#
# It grants no export, backup, delete or config change of the key: the key
# stays non-exportable for its whole life. Creating a Transit key is an
# "update" on transit/keys/<name> (the endpoint has no existence check, so
# "create" is not what Vault asks for).
#
# Replace ENV and CLIENT_ID (the default key name is knot-ENV-CLIENT_ID).

path "transit/keys/knot-ENV-CLIENT_ID" {
  capabilities = ["read", "update"]
}

path "transit/keys/knot-ENV-CLIENT_ID/csr" {
  capabilities = ["update"]
}

path "transit/keys/knot-ENV-CLIENT_ID/rotate" {
  capabilities = ["update"]
}

path "transit/keys/knot-ENV-CLIENT_ID/set-certificate" {
  capabilities = ["update"]
}

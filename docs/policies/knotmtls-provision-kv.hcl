# knotmtls provisioning policy, KV storage: for the operator or pipeline that
# runs "knotmtls csr" (creates or rotates the key) and "knotmtls import"
# (stores the certificate Knot signed). Give it to a short-lived token or a
# separate AppRole, never to the service: the service gets the runtime policy.
#
# Writes use check-and-set, so "create" covers the first key and "update"
# every later write; no delete or destroy is needed. KV v2 keeps earlier
# versions, which hold earlier keys: see the rotation section of
# docs/production.md for cleaning them up.
#
# Replace ENV and CLIENT_ID.

path "secret/data/knot/ENV/CLIENT_ID" {
  capabilities = ["create", "read", "update"]
}

path "secret/metadata/knot/ENV/CLIENT_ID" {
  capabilities = ["read"]
}

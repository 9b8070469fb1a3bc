package vaultsource

// Conventional locations of a Knot client identity in Vault, derived from
// the Knot environment and client_id so that one Vault can hold the
// identities of several clients and both Knot environments side by side.
// The CLI (cmd/knotmtls) and the root package knotmtls both use them, and
// the policies in docs/policies/ are written for them.
const (
	// DefaultKVMount is the KV secrets engine mount of the identity.
	DefaultKVMount = "secret"
	// DefaultTransitMount is the Transit secrets engine mount of the
	// identity.
	DefaultTransitMount = "transit"
)

// DefaultKVPath is the KV secret path, inside [DefaultKVMount], of the
// identity of clientID in the Knot environment env:
// "knot/<env>/<client_id>".
func DefaultKVPath(env, clientID string) string { return "knot/" + env + "/" + clientID }

// DefaultTransitKey is the Transit key name, inside [DefaultTransitMount],
// of the identity of clientID in the Knot environment env:
// "knot-<env>-<client_id>".
func DefaultTransitKey(env, clientID string) string { return "knot-" + env + "-" + clientID }

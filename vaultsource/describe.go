package vaultsource

import (
	"context"
	"errors"
	"slices"
	"strings"
)

// KVDescription is a read-only summary of a KV secret for monitoring and
// for showing a rotation in progress. It says which fields are present,
// never what they hold.
type KVDescription struct {
	// Exists is true when the secret exists (for KV v2: some version,
	// possibly deleted, exists).
	Exists bool
	// Version is the current KV v2 secret version; 0 for KV v1 or when
	// nothing is stored.
	Version int
	// HasPrivateKey, HasCertificate and HasChain say whether the current
	// key, certificate and chain fields are set.
	HasPrivateKey  bool
	HasCertificate bool
	HasChain       bool
	// Pending is true when a new key staged by [KV.Provision] with
	// [ProvisionRotate] waits in the pending private key field for its
	// certificate: a rotation is in progress.
	Pending bool
	// Deleted explains why the latest KV v2 version holds no data (deleted
	// or destroyed); "" otherwise.
	Deleted string
}

// Describe reads the secret once and reports which fields are set and its
// current version, without parsing or returning any of their values. A
// missing secret is not an error: Exists is false. Errors are those of a
// read ([ErrPermissionDenied], [ErrUnavailable], [ErrWrongKVVersion], ...).
func (k *KV) Describe(ctx context.Context) (KVDescription, error) {
	s, err := k.read(ctx)
	if err != nil {
		return KVDescription{}, err
	}
	return describeKVSecret(s, k.cfg.fields, k.cfg.kvVersion), nil
}

func describeKVSecret(s kvSecret, f Fields, kvVersion int) KVDescription {
	d := KVDescription{Exists: s.exists, Deleted: s.deleted}
	if kvVersion == 2 {
		d.Version = s.version
	}
	if s.data != nil {
		d.HasPrivateKey = present(s.data, f.PrivateKey)
		d.HasCertificate = present(s.data, f.Certificate)
		d.HasChain = present(s.data, f.Chain)
		d.Pending = present(s.data, f.PendingPrivateKey)
	}
	return d
}

// TransitDescription is a read-only summary of a Transit key for
// monitoring and for showing a rotation in progress. It holds version
// numbers only: no public key, certificate or key material.
type TransitDescription struct {
	// Exists is false when the key does not exist.
	Exists bool
	// Type is the Transit key type, e.g. "rsa-2048".
	Type string
	// LatestVersion is the key's latest version.
	LatestVersion int
	// Versions lists the available key versions, ascending.
	Versions []int
	// CertifiedVersions lists the versions that have a certificate chain
	// stored with set-certificate, ascending.
	CertifiedVersions []int
	// Pending is true when the latest version has no certificate while an
	// older one has: a rotation ([ProvisionRotate]) waits for its certificate
	// and the older version keeps serving.
	Pending bool
}

// Describe reads the key description once and reports its versions and
// which have a certificate chain. A missing key is not an error: Exists is
// false. Other errors are those of a read ([ErrPermissionDenied],
// [ErrUnavailable], [ErrUnsupportedKeyType] for a key with no public keys).
func (t *Transit) Describe(ctx context.Context) (TransitDescription, error) {
	k, err := t.readKey(ctx)
	if errors.Is(err, ErrKeyNotFound) {
		return TransitDescription{}, nil
	}
	if err != nil {
		return TransitDescription{}, err
	}
	return describeTransitKey(k), nil
}

func describeTransitKey(k *transitKey) TransitDescription {
	d := TransitDescription{Exists: true, Type: k.typ, LatestVersion: k.latest}
	for v, kv := range k.versions {
		d.Versions = append(d.Versions, v)
		if strings.TrimSpace(kv.chain) != "" {
			d.CertifiedVersions = append(d.CertifiedVersions, v)
		}
	}
	slices.Sort(d.Versions)
	slices.Sort(d.CertifiedVersions)
	if n := len(d.CertifiedVersions); n > 0 && d.CertifiedVersions[n-1] < d.LatestVersion {
		d.Pending = true
	}
	return d
}

package vaultsource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/knotmtls/knotmtls/provider"
)

// KV reads the client identity from one secret of a Vault KV engine (v2 by
// default, v1 with [WithKVVersion]). Its fields hold PEM text: see [Fields]
// for names and defaults. It is a [provider.CertificateSource] and a
// [provider.Versioner]; it does not cache, the Provider does.
//
// Vault policy for reading (KV v2, mount "secret", path "knot/client"):
//
//	path "secret/data/knot/client"     { capabilities = ["read"] }
//	path "secret/metadata/knot/client" { capabilities = ["read"] }
//
// Provisioning and import also need "create" and "update" on the data path.
type KV struct {
	v     vault
	mount string
	path  string
	cfg   kvConfig
}

var (
	_ provider.CertificateSource = (*KV)(nil)
	_ provider.Versioner         = (*KV)(nil)
)

// NewKV returns a source for the secret at path in the KV engine mounted at
// mount (for example "secret" and "knot/client"). The client carries the
// address, TLS settings, namespace and token (api.DefaultConfig reads
// VAULT_ADDR, VAULT_CACERT, ...; VAULT_NAMESPACE is honoured by
// api.NewClient). NewKV does no I/O.
func NewKV(client *api.Client, mount, path string, opts ...KVOption) (*KV, error) {
	if err := checkClient(client); err != nil {
		return nil, err
	}
	m, err := cleanName("KV mount", mount)
	if err != nil {
		return nil, err
	}
	p, err := cleanName("KV secret path", path)
	if err != nil {
		return nil, err
	}
	cfg, err := newKVConfig(opts)
	if err != nil {
		return nil, err
	}
	return &KV{v: vault{client: client, auth: cfg.auth}, mount: m, path: p, cfg: cfg}, nil
}

// String names the secret, e.g. "vault kv-v2 secret/knot/client". It never
// includes secret data.
func (k *KV) String() string {
	return fmt.Sprintf("vault kv-v%d %s/%s", k.cfg.kvVersion, k.mount, k.path)
}

// dataPath is the API path of the secret's data.
func (k *KV) dataPath() string {
	if k.cfg.kvVersion == 1 {
		return joinPath(k.mount, k.path)
	}
	return joinPath(k.mount, "data", k.path)
}

func (k *KV) metadataPath() string { return joinPath(k.mount, "metadata", k.path) }

// kvSecret is one read of the secret.
type kvSecret struct {
	data    map[string]any // field values; nil when absent or deleted
	exists  bool           // KV v2: some version exists; KV v1: data present
	version int            // KV v2 version of data (or of the deleted latest version)
	deleted string         // KV v2: why the latest version has no data
}

// read reads the secret's data. A missing secret is not an error here.
func (k *KV) read(ctx context.Context) (kvSecret, error) {
	sec, err := k.v.do(ctx, request{op: "read", method: http.MethodGet, path: k.dataPath(), capability: "read"})
	if err != nil {
		var e *Error
		if !errors.As(err, &e) || !errors.Is(e.Err, ErrSecretNotFound) {
			return kvSecret{}, err
		}
		if k.cfg.kvVersion == 2 && sec != nil {
			// A deleted or destroyed latest version: metadata, no data.
			if meta := mapField(sec.Data, "metadata"); meta != nil {
				v, _ := intField(meta, "version")
				return kvSecret{exists: true, version: v, deleted: deletionReason(meta, v)}, nil
			}
		}
		return kvSecret{}, nil
	}
	if sec == nil || sec.Data == nil {
		return kvSecret{}, nil
	}
	if k.cfg.kvVersion == 1 {
		return kvSecret{data: sec.Data, exists: true}, nil
	}
	meta := mapField(sec.Data, "metadata")
	v, ok := intField(meta, "version")
	data := mapField(sec.Data, "data")
	if !ok {
		return kvSecret{}, &Error{Op: "read", Path: k.dataPath(), Err: ErrWrongKVVersion,
			Detail: "the answer has no KV v2 version metadata; if the mount is KV v1 construct the source with WithKVVersion(1)"}
	}
	if data == nil {
		return kvSecret{exists: true, version: v, deleted: deletionReason(meta, v)}, nil
	}
	return kvSecret{data: data, exists: true, version: v}, nil
}

func deletionReason(meta map[string]any, v int) string {
	if d, _ := meta["destroyed"].(bool); d {
		return fmt.Sprintf("version %d is destroyed", v)
	}
	if t := stringValue(meta, "deletion_time"); t != "" {
		return fmt.Sprintf("version %d was deleted at %s", v, t)
	}
	return fmt.Sprintf("version %d has no data", v)
}

// missing builds the error for an absent or deleted secret, diagnosing a
// wrong mount or KV version first.
func (k *KV) missing(ctx context.Context, s kvSecret, path string) error {
	if s.deleted != "" {
		return &Error{Op: "read", Path: path, Status: http.StatusNotFound, Err: ErrVersionDeleted,
			Detail: s.deleted + "; undelete it or write a new version (the served certificate is kept)"}
	}
	if err := k.checkMount(ctx); err != nil {
		return err
	}
	detail := "nothing is stored at " + k.mount + "/" + k.path
	if k.cfg.kvVersion == 2 && (strings.HasPrefix(k.path, "data/") || strings.HasPrefix(k.path, "metadata/")) {
		detail += "; give the secret's path without the API's data/ or metadata/ prefix (KV v2 adds it)"
	}
	return &Error{Op: "read", Path: path, Status: http.StatusNotFound, Err: ErrSecretNotFound, Detail: detail}
}

// checkMount asks Vault which engine serves the secret's path (the same
// preflight request the vault CLI makes) and reports a missing mount or a
// KV version mismatch. It is only called after a read found nothing; when
// the probe itself is not allowed it reports nothing.
func (k *KV) checkMount(ctx context.Context) error {
	probe := joinPath("sys/internal/ui/mounts", k.mount, k.path)
	sec, err := k.v.do(ctx, request{op: "check mount", method: http.MethodGet, path: probe, noRelogin: true})
	if err != nil || sec == nil || sec.Data == nil {
		var e *Error
		if errors.As(err, &e) && (errors.Is(e.Err, ErrMountNotFound) || e.Status == http.StatusBadRequest) {
			return &Error{Op: "check mount", Path: k.mount, Status: e.Status, Err: ErrMountNotFound,
				Detail: "no secrets engine is mounted at " + k.mount, Cause: e.Cause}
		}
		return nil
	}
	mountPath := strings.Trim(stringValue(sec.Data, "path"), "/")
	typ := stringValue(sec.Data, "type")
	if mountPath != "" && mountPath != k.mount {
		return &Error{Op: "check mount", Path: k.mount, Err: ErrMountNotFound,
			Detail: fmt.Sprintf("%s/%s belongs to the mount %q, not %q", k.mount, k.path, mountPath, k.mount)}
	}
	if typ != "" && typ != "kv" && typ != "generic" {
		return &Error{Op: "check mount", Path: k.mount, Err: ErrWrongKVVersion,
			Detail: fmt.Sprintf("mount %q is a %q engine, not KV", k.mount, typ)}
	}
	if typ == "" {
		return nil
	}
	version := 1
	if v := stringValue(mapField(sec.Data, "options"), "version"); v == "2" {
		version = 2
	}
	if version != k.cfg.kvVersion {
		return &Error{Op: "check mount", Path: k.mount, Err: ErrWrongKVVersion,
			Detail: fmt.Sprintf("mount %q is KV v%d but the source is configured for KV v%d: use WithKVVersion(%d)",
				k.mount, version, k.cfg.kvVersion, version)}
	}
	return nil
}

// Fetch reads the secret and returns its certificate chain and key. The
// bundle's Version is the KV v2 version number ("7"), or for KV v1 a
// SHA-256 over the field values ("sha256:…"). Errors are [*Error] values
// wrapping [ErrSecretNotFound], [ErrVersionDeleted], [ErrMissingField],
// [ErrFieldType], [ErrPermissionDenied], [ErrMountNotFound],
// [ErrWrongKVVersion], [ErrUnavailable], or a provider sentinel for PEM
// problems and a mismatched key pair.
func (k *KV) Fetch(ctx context.Context) (*provider.Bundle, error) {
	s, err := k.read(ctx)
	if err != nil {
		return nil, err
	}
	if s.data == nil {
		return nil, k.missing(ctx, s, k.dataPath())
	}
	return k.bundle(s)
}

// Version returns the version the next Fetch would return. For KV v2 it
// reads only the secret's metadata (current_version), so polling never
// transfers the key; with [WithoutMetadata] it reads the data instead. A
// deleted or destroyed latest version is [ErrVersionDeleted]. KV v1 keeps no
// metadata: Version reads the data and hashes it, costing a full read.
func (k *KV) Version(ctx context.Context) (string, error) {
	if k.cfg.kvVersion == 1 || k.cfg.noMetadata {
		s, err := k.read(ctx)
		if err != nil {
			return "", err
		}
		if s.data == nil {
			return "", k.missing(ctx, s, k.dataPath())
		}
		if k.cfg.kvVersion == 2 {
			return strconv.Itoa(s.version), nil
		}
		return k.hashVersion(s.data)
	}
	path := k.metadataPath()
	sec, err := k.v.do(ctx, request{op: "read metadata", method: http.MethodGet, path: path, capability: "read"})
	if err != nil {
		var e *Error
		if errors.As(err, &e) && errors.Is(e.Err, ErrPermissionDenied) {
			e.Detail += " (or construct the source WithoutMetadata to poll the data path)"
			return "", e
		}
		if errors.As(err, &e) && errors.Is(e.Err, ErrSecretNotFound) {
			return "", k.missing(ctx, kvSecret{}, path)
		}
		return "", err
	}
	if sec == nil || sec.Data == nil {
		return "", k.missing(ctx, kvSecret{}, path)
	}
	cur, ok := intField(sec.Data, "current_version")
	if !ok {
		return "", &Error{Op: "read metadata", Path: path, Err: ErrUnexpectedResponse, Detail: "no current_version in the metadata"}
	}
	if cur == 0 {
		return "", k.missing(ctx, kvSecret{}, path)
	}
	meta := mapField(mapField(sec.Data, "versions"), strconv.Itoa(cur))
	if reason := deletedNow(meta, cur, time.Now()); reason != "" {
		return "", k.missing(ctx, kvSecret{deleted: reason}, path)
	}
	return strconv.Itoa(cur), nil
}

// deletedNow reports why version v (its metadata entry) is unreadable now,
// or "" when it is readable. A deletion_time in the future (a mount's
// delete_version_after) does not count yet.
func deletedNow(meta map[string]any, v int, now time.Time) string {
	if meta == nil {
		return ""
	}
	if d, _ := meta["destroyed"].(bool); d {
		return fmt.Sprintf("version %d is destroyed", v)
	}
	dt := stringValue(meta, "deletion_time")
	if dt == "" {
		return ""
	}
	if t, err := time.Parse(time.RFC3339Nano, dt); err == nil && t.After(now) {
		return ""
	}
	return fmt.Sprintf("version %d was deleted at %s", v, dt)
}

// bundle parses the fields of a read into a Bundle, attributing every
// problem to its field.
func (k *KV) bundle(s kvSecret) (*provider.Bundle, error) {
	f := k.cfg.fields
	path := k.dataPath()
	certPEM, err := textField(s.data, f.Certificate, true, path)
	if err != nil {
		return nil, err
	}
	chainPEM, err := textField(s.data, f.Chain, false, path)
	if err != nil {
		return nil, err
	}
	keyPEM, err := textField(s.data, f.PrivateKey, true, path)
	if err != nil {
		return nil, err
	}
	version := strconv.Itoa(s.version)
	if k.cfg.kvVersion == 1 {
		version = hashFields(certPEM, chainPEM, keyPEM)
	}
	chain, err := provider.ParseCertificates([]byte(certPEM))
	if err != nil {
		return nil, &Error{Op: "parse", Path: path, Field: f.Certificate, Err: err}
	}
	if strings.TrimSpace(chainPEM) != "" {
		extra, err := provider.ParseCertificates([]byte(chainPEM))
		if err != nil {
			return nil, &Error{Op: "parse", Path: path, Field: f.Chain, Err: err}
		}
		chain = append(chain, extra...)
	}
	key, err := provider.ParsePrivateKey([]byte(keyPEM))
	if err != nil {
		return nil, &Error{Op: "parse", Path: path, Field: f.PrivateKey, Err: err}
	}
	if err := provider.CheckKeyPair(chain[0], key); err != nil {
		return nil, &Error{Op: "parse", Path: path, Field: f.PrivateKey, Err: err}
	}
	b, err := provider.NewBundle(chain, key, version)
	if err != nil {
		return nil, &Error{Op: "parse", Path: path, Err: err}
	}
	return b, nil
}

// hashVersion is the KV v1 version: a hash of the three identity fields.
func (k *KV) hashVersion(data map[string]any) (string, error) {
	f := k.cfg.fields
	path := k.dataPath()
	cert, err := textField(data, f.Certificate, true, path)
	if err != nil {
		return "", err
	}
	chain, err := textField(data, f.Chain, false, path)
	if err != nil {
		return "", err
	}
	key, err := textField(data, f.PrivateKey, true, path)
	if err != nil {
		return "", err
	}
	return hashFields(cert, chain, key), nil
}

// hashFields returns "sha256:" and the first 128 bits of a SHA-256 over the
// length-prefixed values: a change of any field changes it, and it reveals
// nothing about them.
func hashFields(values ...string) string {
	h := sha256.New()
	for _, v := range values {
		fmt.Fprintf(h, "%d:", len(v))
		h.Write([]byte(v))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// textField returns a PEM text field. A string is returned as is; a list of
// strings (Vault PKI's ca_chain shape) is joined with newlines. Absent or
// empty required fields are ErrMissingField; other JSON types ErrFieldType.
// The value never appears in an error.
func textField(data map[string]any, name string, required bool, path string) (string, error) {
	raw, ok := data[name]
	if !ok || raw == nil {
		if !required {
			return "", nil
		}
		return "", &Error{Op: "read", Path: path, Field: name, Err: ErrMissingField,
			Detail: "the secret has no such field (fields are configurable with WithFields)"}
	}
	var s string
	switch v := raw.(type) {
	case string:
		s = v
	case []any:
		parts := make([]string, 0, len(v))
		for i, item := range v {
			str, ok := item.(string)
			if !ok {
				return "", &Error{Op: "read", Path: path, Field: name, Err: ErrFieldType,
					Detail: fmt.Sprintf("list item %d is %s, want a PEM string", i, jsonType(item))}
			}
			parts = append(parts, strings.TrimSpace(str))
		}
		s = strings.Join(parts, "\n")
	default:
		return "", &Error{Op: "read", Path: path, Field: name, Err: ErrFieldType,
			Detail: fmt.Sprintf("the value is %s, want a PEM string", jsonType(raw))}
	}
	if strings.TrimSpace(s) == "" && required {
		return "", &Error{Op: "read", Path: path, Field: name, Err: ErrMissingField, Detail: "the field is empty"}
	}
	return s, nil
}

// jsonType names a decoded JSON value's type without showing it.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	default:
		return "a number"
	}
}

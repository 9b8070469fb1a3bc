package vaultsource

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"unicode"

	"github.com/hashicorp/vault/api"

	"github.com/knotmtls/knotmtls/provider"
)

// The provisioning flow Knot asks for, without the key touching disk:
//
//  1. ProvisionKV (key generated in memory, stored in KV) or ProvisionTransit
//     (key generated inside Transit) returns the CSR to send to Knot.
//  2. Knot returns the certificate it signed.
//  3. ImportCertificate on the same KV or Transit checks it against Knot's
//     rules and the stored key, and stores it next to the key.
//
// Only the CSR is ever returned; no function writes or returns key bytes.

// ProvisionKV generates an RSA-2048 key in memory, stores it (PKCS#8 PEM) in
// the KV secret mount/path and returns a CSR for clientID (SHA-256 with RSA,
// CN=clientID) to send to Knot. It is NewKV followed by [KV.Provision].
func ProvisionKV(ctx context.Context, client *api.Client, mount, path, clientID string, mode Mode, opts ...KVOption) ([]byte, error) {
	kv, err := NewKV(client, mount, path, opts...)
	if err != nil {
		return nil, err
	}
	return kv.Provision(ctx, clientID, mode)
}

// ProvisionTransit creates the rsa-2048 Transit key keyName (not exportable,
// no plaintext backup) and returns a CSR for clientID that Vault signed with
// it. It is NewTransit followed by [Transit.Provision].
func ProvisionTransit(ctx context.Context, client *api.Client, mount, keyName, clientID string, mode Mode, opts ...TransitOption) ([]byte, error) {
	t, err := NewTransit(client, mount, keyName, opts...)
	if err != nil {
		return nil, err
	}
	return t.Provision(ctx, clientID, mode)
}

// Imported says what an import stored.
type Imported struct {
	// Unchanged is true when exactly this certificate (and chain) was
	// already stored: nothing was written, no new KV version or
	// set-certificate.
	Unchanged bool
	// Version is the KV v2 secret version that holds the certificate
	// (0 for KV v1 and Transit).
	Version int
	// KeyVersion is the Transit key version the certificate is stored on:
	// the pinned one ([WithKeyVersion]) or the version whose public key it
	// carries, which may be older than the latest (0 for KV).
	KeyVersion int
	// Promoted is true when a KV key staged by [ProvisionRotate] became the
	// current key.
	Promoted bool
}

func checkMode(m Mode) error {
	if m < ProvisionNew || m > ProvisionExisting {
		return optionError("unknown provisioning mode %d", int(m))
	}
	return nil
}

// checkClientID validates a Knot client_id used as the subject CN.
func checkClientID(clientID string) error {
	if strings.TrimSpace(clientID) == "" {
		return optionError("the Knot client_id must not be empty")
	}
	if len(clientID) > 64 {
		return optionError("the Knot client_id is %d bytes; a subject CN holds at most 64", len(clientID))
	}
	for _, r := range clientID {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return optionError("the Knot client_id contains whitespace or control characters")
		}
	}
	return nil
}

// buildCSR returns a PEM CSR for clientID signed by key: SHA-256 with RSA,
// subject CN=clientID, checked against Knot's CSR rules before it is
// returned.
func buildCSR(key crypto.Signer, clientID string) ([]byte, error) {
	if err := checkClientID(clientID); err != nil {
		return nil, err
	}
	tmpl := &x509.CertificateRequest{
		Subject:            pkix.Name{CommonName: clientID},
		SignatureAlgorithm: x509.SHA256WithRSA,
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, &Error{Op: "create csr", Err: ErrInvalidArgument, Detail: err.Error()}
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	if err := checkCSR(csrPEM, clientID, key.Public()); err != nil {
		return nil, err
	}
	return csrPEM, nil
}

// checkCSR parses a CSR and checks Knot's rules and, when pub is set, that
// it carries pub.
func checkCSR(csrPEM []byte, clientID string, pub crypto.PublicKey) error {
	csr, err := provider.ParseCSR(csrPEM)
	if err != nil {
		return &Error{Op: "check csr", Err: err}
	}
	if err := (provider.Requirements{ClientID: clientID}).CheckCSR(csr); err != nil {
		return &Error{Op: "check csr", Err: err}
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if e, ok := pub.(equaler); pub != nil && (!ok || !e.Equal(csr.PublicKey)) {
		return &Error{Op: "check csr", Err: &provider.CheckError{Err: provider.ErrKeyMismatch,
			Detail: "the certificate request does not carry the stored key's public half"}}
	}
	return nil
}

// encodeKey returns key as PKCS#8 PEM.
func encodeKey(key crypto.Signer) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", &Error{Op: "encode key", Err: ErrInvalidArgument, Detail: "the key cannot be encoded as PKCS#8"}
	}
	defer clear(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

// importChain parses and checks a certificate Knot signed (certPEM, which
// may include its chain, plus an optional chainPEM) against req.
func importChain(req provider.Requirements, certPEM, chainPEM []byte, path string) ([]*x509.Certificate, error) {
	if req.ClientID == "" {
		return nil, &Error{Op: "import", Path: path, Err: ErrInvalidArgument, Detail: "Requirements.ClientID must be set to import a certificate"}
	}
	chain, err := provider.ParseCertificates(certPEM)
	if err != nil {
		return nil, &Error{Op: "import", Path: path, Field: "certificate", Err: err}
	}
	if len(strings.TrimSpace(string(chainPEM))) > 0 {
		extra, err := provider.ParseCertificates(chainPEM)
		if err != nil {
			return nil, &Error{Op: "import", Path: path, Field: "chain", Err: err}
		}
		chain = append(chain, extra...)
	}
	if err := req.CheckCertificate(chain[0]); err != nil {
		return nil, &Error{Op: "import", Path: path, Field: "certificate", Err: err}
	}
	if err := req.CheckChain(chain); err != nil {
		return nil, &Error{Op: "import", Path: path, Field: "chain", Err: err}
	}
	return chain, nil
}

// --- KV ---

// Provision generates an RSA-2048 key in memory, stores it in the secret
// and returns a CSR for clientID. It never overwrites a stored key by
// accident:
//
//   - KV v2 writes with check-and-set: cas=0 for a new secret, so a secret
//     created concurrently makes it fail with [ErrKeyExists]; otherwise the
//     version it read, so a concurrent change fails with [ErrConflict]. A
//     check-and-set failure is checked by reading the secret again: when it
//     holds exactly what this call wrote (vault/api retried a write whose
//     answer was lost), Provision succeeds.
//   - A secret that already holds a key is refused with [ErrKeyExists] in
//     [ProvisionNew] mode; [ProvisionRotate] stages the new key in the
//     pending field (the current certificate keeps serving until
//     [KV.ImportCertificate]) and [ProvisionForce] replaces key and
//     certificate. [ProvisionExisting] writes nothing and returns the CSR of
//     the stored key, like [KV.CSR].
//   - KV v1 has no check-and-set: Provision checks for an existing key
//     first, so two concurrent provisioners can both write and the last one
//     wins. Run provisioning from one place.
//
// Other fields of the secret are preserved. Only the CSR is returned.
func (k *KV) Provision(ctx context.Context, clientID string, mode Mode) ([]byte, error) {
	if err := checkMode(mode); err != nil {
		return nil, err
	}
	if mode == ProvisionExisting {
		return k.CSR(ctx, clientID)
	}
	if err := checkClientID(clientID); err != nil {
		return nil, err
	}
	s, err := k.read(ctx)
	if err != nil {
		return nil, err
	}
	if !s.exists {
		// Refuse to create data in the wrong place (e.g. a KV v1 mount
		// addressed as v2 would store a secret named "data/<path>").
		if err := k.checkMount(ctx); err != nil {
			return nil, err
		}
	}
	f := k.cfg.fields
	path := k.dataPath()
	hasKey := present(s.data, f.PrivateKey)
	hasPending := present(s.data, f.PendingPrivateKey)

	key, err := rsa.GenerateKey(rand.Reader, provider.RSAKeyBits)
	if err != nil {
		return nil, &Error{Op: "generate key", Err: err}
	}
	csr, err := buildCSR(key, clientID)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}

	data := maps.Clone(s.data)
	if data == nil {
		data = map[string]any{}
	}
	switch {
	case !hasKey && !hasPending:
		data[f.PrivateKey] = keyPEM
		delete(data, f.Certificate) // leftovers cannot match a new key
		delete(data, f.Chain)
	case mode == ProvisionRotate && hasPending:
		return nil, &Error{Op: "provision", Path: path, Field: f.PendingPrivateKey, Err: ErrKeyExists,
			Detail: "a new key is already staged; get its CSR again (existing), import its certificate, or replace key and certificate (force)"}
	case mode == ProvisionRotate:
		data[f.PendingPrivateKey] = keyPEM
	case mode == ProvisionForce:
		data[f.PrivateKey] = keyPEM
		delete(data, f.Certificate)
		delete(data, f.Chain)
		delete(data, f.PendingPrivateKey)
	default:
		return nil, &Error{Op: "provision", Path: path, Field: f.PrivateKey, Err: ErrKeyExists,
			Detail: fmt.Sprintf("the secret already holds a private key%s; get its CSR again (existing), rotate to stage a new key while the current certificate keeps serving, or force to replace it", k.versionNote(s))}
	}
	if _, err := k.write(ctx, "provision", data, s); err != nil {
		return nil, err
	}
	return csr, nil
}

func (k *KV) versionNote(s kvSecret) string {
	if k.cfg.kvVersion == 2 && s.version > 0 {
		return fmt.Sprintf(" (version %d)", s.version)
	}
	return ""
}

// present reports whether data has a non-empty value under name.
func present(data map[string]any, name string) bool {
	switch v := data[name].(type) {
	case nil:
		return false
	case string:
		return strings.TrimSpace(v) != ""
	default:
		return true
	}
}

// write stores data as the secret's new content; for KV v2 with
// check-and-set against the version s was read at (0: must not exist), and
// returns the version written (0 for KV v1). When the check-and-set fails
// it reads the secret again: if it holds exactly data, the write did
// commit (vault/api retried it after its answer was lost, or an identical
// write won) and write reports success with that version.
func (k *KV) write(ctx context.Context, op string, data map[string]any, s kvSecret) (int, error) {
	body := data
	if k.cfg.kvVersion == 2 {
		body = map[string]any{"data": data, "options": map[string]any{"cas": s.version}}
	}
	capability := "update"
	if !s.exists {
		capability = "create"
	}
	sec, err := k.v.do(ctx, request{op: op, method: http.MethodPut, path: k.dataPath(), capability: capability, body: body})
	var e *Error
	if errors.As(err, &e) && errors.Is(e.Err, ErrConflict) {
		if now, rerr := k.read(ctx); rerr == nil && now.data != nil && reflect.DeepEqual(now.data, data) {
			return now.version, nil
		}
		if s.version == 0 {
			e.Err = ErrKeyExists
			e.Detail = "the secret was created concurrently (check-and-set cas=0 failed); nothing was written"
		}
	}
	if err != nil {
		return 0, err
	}
	v := 0
	if sec != nil {
		v, _ = intField(sec.Data, "version")
	}
	return v, nil
}

// CSR returns a CSR for clientID signed by the key stored in the secret:
// the staged pending key when there is one, else the current key. Use it to
// send Knot the request again without generating a new key.
func (k *KV) CSR(ctx context.Context, clientID string) ([]byte, error) {
	if err := checkClientID(clientID); err != nil {
		return nil, err
	}
	s, err := k.read(ctx)
	if err != nil {
		return nil, err
	}
	if s.data == nil {
		return nil, k.missing(ctx, s, k.dataPath())
	}
	f := k.cfg.fields
	name := f.PrivateKey
	if present(s.data, f.PendingPrivateKey) {
		name = f.PendingPrivateKey
	}
	key, err := k.parseKeyField(s.data, name)
	if err != nil {
		return nil, err
	}
	return buildCSR(key, clientID)
}

func (k *KV) parseKeyField(data map[string]any, name string) (crypto.Signer, error) {
	path := k.dataPath()
	text, err := textField(data, name, true, path)
	if err != nil {
		return nil, err
	}
	key, err := provider.ParsePrivateKey([]byte(text))
	if err != nil {
		return nil, &Error{Op: "parse", Path: path, Field: name, Err: err}
	}
	return key, nil
}

// ImportCertificate checks the certificate Knot signed (certPEM, leaf first,
// optionally followed by its chain; chainPEM may add more chain) against req
// (ClientID is required; set Roots to Knot's CA to verify the chain) and
// against the key stored in the secret (the pending key first, then the
// current one), then writes it into the secret. With KV v2 the write uses
// check-and-set on the version read, so a concurrent change fails with
// [ErrConflict] (unless what is stored afterwards is exactly this import).
// When the pending key matches it becomes the current key. Importing the
// certificate and chain already stored with the current key writes nothing
// and reports Unchanged. Any failed check returns its precise typed error
// and writes nothing.
func (k *KV) ImportCertificate(ctx context.Context, req provider.Requirements, certPEM, chainPEM []byte) (Imported, error) {
	path := k.dataPath()
	chain, err := importChain(req, certPEM, chainPEM, path)
	if err != nil {
		return Imported{}, err
	}
	s, err := k.read(ctx)
	if err != nil {
		return Imported{}, err
	}
	if s.data == nil {
		return Imported{}, k.missing(ctx, s, path)
	}
	f := k.cfg.fields
	matched := ""
	var mismatch error
	for _, name := range []string{f.PendingPrivateKey, f.PrivateKey} {
		if !present(s.data, name) {
			continue
		}
		key, err := k.parseKeyField(s.data, name)
		if err != nil {
			return Imported{}, err
		}
		if err := provider.CheckKeyPair(chain[0], key); err != nil {
			if mismatch == nil || name == f.PrivateKey {
				mismatch = err
			}
			continue
		}
		matched = name
		break
	}
	if matched == "" {
		if mismatch == nil {
			return Imported{}, &Error{Op: "import", Path: path, Field: f.PrivateKey, Err: ErrMissingField,
				Detail: "no private key is stored; provision one first"}
		}
		return Imported{}, &Error{Op: "import", Path: path, Field: f.PrivateKey, Err: mismatch,
			Detail: "the certificate belongs to neither the stored key nor a staged one; nothing was written"}
	}
	data := maps.Clone(s.data)
	data[f.Certificate] = string(provider.EncodeCertificates(chain[:1]))
	if len(chain) > 1 {
		data[f.Chain] = string(provider.EncodeCertificates(chain[1:]))
	} else {
		delete(data, f.Chain)
	}
	if matched == f.PrivateKey && reflect.DeepEqual(data, s.data) {
		return Imported{Unchanged: true, Version: s.version}, nil
	}
	promoted := matched == f.PendingPrivateKey
	if promoted {
		data[f.PrivateKey] = data[f.PendingPrivateKey]
		delete(data, f.PendingPrivateKey)
	}
	v, err := k.write(ctx, "import", data, s)
	if err != nil {
		return Imported{}, err
	}
	return Imported{Version: v, Promoted: promoted}, nil
}

// --- Transit ---

// Provision creates the Transit key (type rsa-2048, exportable=false,
// allow_plaintext_backup=false) and returns a CSR for clientID that Vault
// signs with it (POST <mount>/keys/<key>/csr; Vault 1.15+). An existing key
// is refused with [ErrKeyExists] in [ProvisionNew] mode; [ProvisionRotate]
// and [ProvisionForce] add exactly one key version (a rotate whose answer
// was lost is checked, never sent twice) and return that version's CSR; the
// source keeps presenting the older version until the new one's certificate
// is imported. [ProvisionExisting] writes nothing and returns the CSR of the
// pinned or latest version, like [Transit.CSR].
// An existing key that is not rsa-2048, or that could be exported, is always
// refused. Creating a key is not atomic in Vault: two concurrent
// provisioners of the same new key both succeed on the same key.
func (t *Transit) Provision(ctx context.Context, clientID string, mode Mode) ([]byte, error) {
	if err := checkMode(mode); err != nil {
		return nil, err
	}
	if mode == ProvisionExisting {
		return t.CSR(ctx, clientID)
	}
	if err := checkClientID(clientID); err != nil {
		return nil, err
	}
	path := t.keyPath()
	k, err := t.readKey(ctx)
	switch {
	case errors.Is(err, ErrKeyNotFound):
		_, err = t.v.do(ctx, request{op: "create key", method: http.MethodPut, path: path, capability: "update",
			body: map[string]any{"type": "rsa-2048", "exportable": false, "allow_plaintext_backup": false}})
		if err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		if err := checkProvisionedKey(k, path); err != nil {
			return nil, err
		}
		if mode == ProvisionNew {
			return nil, &Error{Op: "provision", Path: path, Err: ErrKeyExists,
				Detail: fmt.Sprintf("the key exists (latest version %d); get its CSR again (existing), or rotate to add a new key version", k.latest)}
		}
		if err := t.rotate(ctx, k.latest); err != nil {
			return nil, err
		}
	}
	k, err = t.readKey(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkProvisionedKey(k, path); err != nil {
		return nil, err
	}
	return t.csr(ctx, k, k.latest, clientID)
}

// rotate adds exactly one key version after before. The rotate request is
// sent without vault/api's retries (a retried rotate whose first answer was
// lost would add two versions); when it fails without an answer the key is
// read again: one more version means the rotation committed, none means it
// did not and it is sent again (at most three times).
func (t *Transit) rotate(ctx context.Context, before int) error {
	path := t.keyPath()
	var err error
	for range 3 {
		_, err = t.v.do(ctx, request{op: "rotate key", method: http.MethodPut, path: joinPath(path, "rotate"),
			capability: "update", noRetry: true})
		if err == nil || !errors.Is(err, ErrUnavailable) {
			return err
		}
		k, rerr := t.readKey(ctx)
		switch {
		case rerr != nil:
			return err
		case k.latest == before+1:
			return nil // committed; only the answer was lost
		case k.latest != before:
			return &Error{Op: "rotate key", Path: path, Err: ErrConflict,
				Detail: fmt.Sprintf("the key went from version %d to %d while rotating; someone else rotated it too", before, k.latest)}
		}
	}
	return err
}

// checkProvisionedKey refuses keys that do not meet Knot's rules or could
// leave Vault.
func checkProvisionedKey(k *transitKey, path string) error {
	if k.typ != "rsa-2048" {
		return &Error{Op: "provision", Path: path, Err: ErrUnsupportedKeyType,
			Detail: fmt.Sprintf("the key is %q; Knot requires rsa-2048", k.typ)}
	}
	if k.exportable || k.allowPlaintextBackup {
		return &Error{Op: "provision", Path: path, Err: ErrKeyExportable,
			Detail: "the key is exportable or allows plaintext backup; use a new key name"}
	}
	return nil
}

// CSR returns a CSR for clientID signed inside Vault by the pinned key
// version ([WithKeyVersion]) or the latest one, without changing the key.
func (t *Transit) CSR(ctx context.Context, clientID string) ([]byte, error) {
	if err := checkClientID(clientID); err != nil {
		return nil, err
	}
	k, err := t.readKey(ctx)
	if err != nil {
		return nil, err
	}
	v := k.latest
	if t.cfg.keyVersion > 0 {
		v = t.cfg.keyVersion
	}
	return t.csr(ctx, k, v, clientID)
}

func (t *Transit) csr(ctx context.Context, k *transitKey, version int, clientID string) ([]byte, error) {
	path := joinPath(t.keyPath(), "csr")
	kv, ok := k.versions[version]
	if !ok {
		return nil, &Error{Op: "create csr", Path: path, Err: ErrKeyNotFound, Detail: fmt.Sprintf("key version %d is not available", version)}
	}
	pub, err := parsePublicKey(kv.publicKey)
	if err != nil {
		return nil, &Error{Op: "create csr", Path: t.keyPath(), Err: ErrUnexpectedResponse, Detail: err.Error()}
	}
	tmpl, err := templateCSR(clientID)
	if err != nil {
		return nil, err
	}
	sec, err := t.v.do(ctx, request{op: "create csr", method: http.MethodPut, path: path, capability: "update",
		notFound: ErrKeyNotFound, body: map[string]any{"version": version, "csr": string(tmpl)}})
	if err != nil {
		return nil, err
	}
	var csrPEM string
	if sec != nil {
		csrPEM = stringValue(sec.Data, "csr")
	}
	if err := checkCSR([]byte(csrPEM), clientID, pub); err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Path = path
		}
		return nil, err
	}
	return []byte(csrPEM), nil
}

// templateCSR is the subject template Transit copies into the CSR it signs.
// Transit discards the template's key and signature, so a throwaway P-256
// key signs it.
func templateCSR(clientID string) ([]byte, error) {
	throwaway, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, &Error{Op: "create csr", Err: err}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: clientID}}, throwaway)
	if err != nil {
		return nil, &Error{Op: "create csr", Err: ErrInvalidArgument, Detail: err.Error()}
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// ImportCertificate checks the certificate Knot signed (certPEM, leaf
// first, optionally with its chain; chainPEM may add more) against req
// (ClientID is required) and against the public key of the pinned key
// version or, unpinned, of whichever version it belongs to, then stores it
// on that version with set-certificate. Imported.KeyVersion is that
// version, which may be older than the latest. A chain already stored on
// that version writes nothing and reports Unchanged. Any failed check
// returns its precise typed error and writes nothing.
func (t *Transit) ImportCertificate(ctx context.Context, req provider.Requirements, certPEM, chainPEM []byte) (Imported, error) {
	path := t.keyPath()
	chain, err := importChain(req, certPEM, chainPEM, path)
	if err != nil {
		return Imported{}, err
	}
	k, err := t.readKey(ctx)
	if err != nil {
		return Imported{}, err
	}
	if !signingKeyType(k.typ) {
		return Imported{}, &Error{Op: "import", Path: path, Err: ErrUnsupportedKeyType, Detail: fmt.Sprintf("key type %q cannot sign", k.typ)}
	}
	candidates := make([]int, 0, len(k.versions))
	if t.cfg.keyVersion > 0 {
		if _, ok := k.versions[t.cfg.keyVersion]; !ok {
			return Imported{}, &Error{Op: "import", Path: path, Err: ErrKeyNotFound, Detail: fmt.Sprintf("key version %d is not available", t.cfg.keyVersion)}
		}
		candidates = append(candidates, t.cfg.keyVersion)
	} else {
		for v := range k.versions {
			candidates = append(candidates, v)
		}
		sort.Sort(sort.Reverse(sort.IntSlice(candidates)))
	}
	version := 0
	var mismatch error
	for _, v := range candidates {
		pub, err := parsePublicKey(k.versions[v].publicKey)
		if err != nil {
			continue
		}
		if err := provider.CheckKeyPair(chain[0], t.signer(v, pub)); err != nil {
			if mismatch == nil {
				mismatch = err
			}
			continue
		}
		version = v
		break
	}
	if version == 0 {
		if mismatch == nil {
			mismatch = &provider.CheckError{Err: provider.ErrKeyMismatch, Detail: "no key version has a readable public key"}
		}
		return Imported{}, &Error{Op: "import", Path: path, Err: mismatch,
			Detail: "the certificate's key is not a version of this Transit key; nothing was written"}
	}
	chainText := string(provider.EncodeCertificates(chain))
	if strings.TrimSpace(k.versions[version].chain) == strings.TrimSpace(chainText) {
		return Imported{Unchanged: true, KeyVersion: version}, nil
	}
	_, err = t.v.do(ctx, request{op: "set certificate", method: http.MethodPut, path: joinPath(path, "set-certificate"),
		capability: "update", notFound: ErrKeyNotFound,
		body: map[string]any{"certificate_chain": chainText, "version": version}})
	if err != nil {
		return Imported{}, err
	}
	return Imported{KeyVersion: version}, nil
}

package vaultsource

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/knotmtls/knotmtls/provider"
)

// Transit presents a certificate whose private key is a non-exportable
// Vault Transit key: the key never leaves Vault, every TLS handshake signs
// through <mount>/sign/<key>. The certificate chain lives on the key version
// itself (Vault 1.15+ set-certificate). It is a [provider.CertificateSource]
// and a [provider.Versioner]; it does not cache, the Provider does.
//
// The bundle's signer pins the key version whose certificate it presents,
// so rotating the Transit key does not change the signing key under a
// certificate; the source moves to a newer version once that version has a
// certificate chain. Every signature is verified locally against the key
// version's public key before it is returned.
//
// Vault policy (mount "transit", key "knot"):
//
//	path "transit/keys/knot" { capabilities = ["read"] }
//	path "transit/sign/knot" { capabilities = ["update"] }
//
// Provisioning also needs "update" (Vault's capability for these POST/PUT
// endpoints, including creating the key) on transit/keys/knot,
// transit/keys/knot/csr, transit/keys/knot/rotate and
// transit/keys/knot/set-certificate.
type Transit struct {
	v     vault
	mount string
	key   string
	cfg   transitConfig
	errs  *signErrors // recent signature failures, for knotclient
}

var (
	_ provider.CertificateSource = (*Transit)(nil)
	_ provider.Versioner         = (*Transit)(nil)
)

// NewTransit returns a source for the Transit key keyName in the engine
// mounted at mount (for example "transit" and "knot"). It does no I/O.
func NewTransit(client *api.Client, mount, keyName string, opts ...TransitOption) (*Transit, error) {
	if err := checkClient(client); err != nil {
		return nil, err
	}
	m, err := cleanName("transit mount", mount)
	if err != nil {
		return nil, err
	}
	k, err := cleanName("transit key name", keyName)
	if err != nil {
		return nil, err
	}
	if strings.Contains(k, "/") {
		return nil, optionError("transit key name %q must not contain '/'", k)
	}
	cfg, err := newTransitConfig(opts)
	if err != nil {
		return nil, err
	}
	return &Transit{v: vault{client: client, auth: cfg.auth}, mount: m, key: k, cfg: cfg, errs: &signErrors{}}, nil
}

// String names the key, e.g. "vault transit transit/keys/knot".
func (t *Transit) String() string {
	return "vault transit " + t.keyPath()
}

func (t *Transit) keyPath() string { return joinPath(t.mount, "keys", t.key) }

// transitKey is the part of GET <mount>/keys/<key> the source uses.
type transitKey struct {
	typ                  string
	exportable           bool
	allowPlaintextBackup bool
	latest               int
	versions             map[int]keyVersion
}

type keyVersion struct {
	publicKey string // PEM
	chain     string // PEM, leaf first; "" before set-certificate
}

// readKey reads the key's description (public parts only).
func (t *Transit) readKey(ctx context.Context) (*transitKey, error) {
	path := t.keyPath()
	sec, err := t.v.do(ctx, request{op: "read key", method: http.MethodGet, path: path, capability: "read", notFound: ErrKeyNotFound})
	if err != nil {
		return nil, err
	}
	if sec == nil || sec.Data == nil {
		return nil, &Error{Op: "read key", Path: path, Status: http.StatusNotFound, Err: ErrKeyNotFound}
	}
	return parseTransitKey(sec.Data, path)
}

func parseTransitKey(data map[string]any, path string) (*transitKey, error) {
	k := &transitKey{typ: stringValue(data, "type"), versions: map[int]keyVersion{}}
	k.exportable, _ = data["exportable"].(bool)
	k.allowPlaintextBackup, _ = data["allow_plaintext_backup"].(bool)
	k.latest, _ = intField(data, "latest_version")
	keys, ok := data["keys"].(map[string]any)
	if !ok {
		return nil, &Error{Op: "read key", Path: path, Err: ErrUnsupportedKeyType,
			Detail: fmt.Sprintf("key type %q has no public keys (it is not a signing key)", k.typ)}
	}
	for ver, raw := range keys {
		n, err := strconv.Atoi(ver)
		if err != nil {
			continue
		}
		m, ok := raw.(map[string]any)
		if !ok {
			continue
		}
		k.versions[n] = keyVersion{publicKey: stringValue(m, "public_key"), chain: stringValue(m, "certificate_chain")}
	}
	return k, nil
}

// signingKeyType reports whether a Transit key type can sign TLS handshakes
// through this package.
func signingKeyType(typ string) bool {
	return strings.HasPrefix(typ, "rsa-") || strings.HasPrefix(typ, "ecdsa-")
}

// pick selects the key version to present: the pinned one, or the latest
// version that has a certificate chain.
func (t *Transit) pick(k *transitKey) (int, keyVersion, error) {
	path := t.keyPath()
	if !signingKeyType(k.typ) {
		return 0, keyVersion{}, &Error{Op: "read key", Path: path, Err: ErrUnsupportedKeyType,
			Detail: fmt.Sprintf("key type %q cannot sign TLS handshakes; Knot needs rsa-2048", k.typ)}
	}
	if v := t.cfg.keyVersion; v > 0 {
		kv, ok := k.versions[v]
		if !ok {
			return 0, keyVersion{}, &Error{Op: "read key", Path: path, Err: ErrKeyNotFound,
				Detail: fmt.Sprintf("version %d is not available (latest is %d)", v, k.latest)}
		}
		if strings.TrimSpace(kv.chain) == "" {
			return 0, keyVersion{}, &Error{Op: "read key", Path: path, Err: ErrNoCertificateChain,
				Detail: fmt.Sprintf("version %d has no certificate; import the one Knot signed with ImportCertificate", v)}
		}
		return v, kv, nil
	}
	vers := make([]int, 0, len(k.versions))
	for v := range k.versions {
		vers = append(vers, v)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(vers)))
	for _, v := range vers {
		if kv := k.versions[v]; strings.TrimSpace(kv.chain) != "" {
			return v, kv, nil
		}
	}
	return 0, keyVersion{}, &Error{Op: "read key", Path: path, Err: ErrNoCertificateChain,
		Detail: "no key version has a certificate; import the one Knot signed with ImportCertificate"}
}

// versionString identifies a key version and the chain stored on it, so a
// new set-certificate on the same version is noticed too.
func versionString(key string, v int, chainPEM string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(chainPEM)))
	return fmt.Sprintf("transit:%s:v%d:%s", key, v, hex.EncodeToString(sum[:8]))
}

// Fetch reads the key and returns the chosen version's certificate chain
// with a signer that signs through Vault. The Version is
// "transit:<key>:v<version>:<chain hash>".
func (t *Transit) Fetch(ctx context.Context) (*provider.Bundle, error) {
	k, err := t.readKey(ctx)
	if err != nil {
		return nil, err
	}
	v, kv, err := t.pick(k)
	if err != nil {
		return nil, err
	}
	path := t.keyPath()
	pub, err := parsePublicKey(kv.publicKey)
	if err != nil {
		return nil, &Error{Op: "parse", Path: path, Field: fmt.Sprintf("keys.%d.public_key", v), Err: ErrUnexpectedResponse, Detail: err.Error()}
	}
	chain, err := provider.ParseCertificates([]byte(kv.chain))
	if err != nil {
		return nil, &Error{Op: "parse", Path: path, Field: fmt.Sprintf("keys.%d.certificate_chain", v), Err: err}
	}
	signer := t.signer(v, pub)
	if err := provider.CheckKeyPair(chain[0], signer); err != nil {
		return nil, &Error{Op: "parse", Path: path, Field: fmt.Sprintf("keys.%d.certificate_chain", v), Err: err}
	}
	b, err := provider.NewBundle(chain, signer, versionString(t.key, v, kv.chain))
	if err != nil {
		return nil, &Error{Op: "parse", Path: path, Err: err}
	}
	return b, nil
}

// Version returns the version the next Fetch would return, with one read of
// the key description (public keys and chains only: as cheap as a KV
// metadata read).
func (t *Transit) Version(ctx context.Context) (string, error) {
	k, err := t.readKey(ctx)
	if err != nil {
		return "", err
	}
	v, kv, err := t.pick(k)
	if err != nil {
		return "", err
	}
	return versionString(t.key, v, kv.chain), nil
}

func (t *Transit) signer(version int, pub crypto.PublicKey) *transitSigner {
	return &transitSigner{v: t.v, path: joinPath(t.mount, "sign", t.key), key: t.key, version: version, pub: pub,
		timeout: t.cfg.signTimeout, errs: t.errs, onSign: t.cfg.onSign}
}

// parsePublicKey parses Transit's public_key PEM (PKIX, or PKCS#1 for RSA).
func parsePublicKey(pemText string) (crypto.PublicKey, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, fmt.Errorf("public key is not PEM")
	}
	switch block.Type {
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return x509.ParsePKIXPublicKey(block.Bytes)
	}
}

// transitSigner is a crypto.Signer backed by one Transit key version.
type transitSigner struct {
	v       vault
	path    string // <mount>/sign/<key>
	key     string
	version int
	pub     crypto.PublicKey
	timeout time.Duration
	errs    *signErrors
	onSign  []func(SignEvent)
}

// Public returns the key version's public key.
func (s *transitSigner) Public() crypto.PublicKey { return s.pub }

// String names the key version; it has no key material to show.
func (s *transitSigner) String() string {
	return fmt.Sprintf("transit signer %s v%d", s.path, s.version)
}

// Sign signs a digest with the pinned key version through Vault, bounded by
// the sign timeout, and verifies the signature locally before returning it.
// Errors are [*Error] values; crypto/tls keeps only their text, so each is
// also recorded for [transitSigner.SignError].
func (s *transitSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	start := time.Now()
	sig, err := s.sign(digest, opts)
	if err != nil && s.errs != nil {
		s.errs.add(err)
	}
	if len(s.onSign) > 0 {
		ev := SignEvent{KeyVersion: s.version, Duration: time.Since(start), Err: err}
		for _, fn := range s.onSign {
			fn(ev)
		}
	}
	return sig, err
}

// SignError returns the typed error of a recent failed signature whose
// text is text (what crypto/tls put after "tls: failed to sign handshake:
// "), or nil. knotclient calls it to give a failed handshake back its
// error class (errors.Is with [ErrUnavailable], [ErrPermissionDenied]).
func (s *transitSigner) SignError(text string) error {
	if s.errs == nil {
		return nil
	}
	return s.errs.find(text)
}

func (s *transitSigner) sign(digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	p, err := signParams(s.pub, digest, opts)
	if err != nil {
		return nil, &Error{Op: "sign", Path: s.path, Err: ErrUnsupportedSignature, Detail: err.Error()}
	}
	body := map[string]any{
		"input":          base64.StdEncoding.EncodeToString(digest),
		"prehashed":      true,
		"hash_algorithm": p.hashAlgorithm,
		"key_version":    s.version,
	}
	if p.signatureAlgorithm != "" {
		body["signature_algorithm"] = p.signatureAlgorithm
	}
	if p.saltLength != "" {
		body["salt_length"] = p.saltLength
	}
	if p.marshalingAlgorithm != "" {
		body["marshaling_algorithm"] = p.marshalingAlgorithm
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	sec, err := s.v.do(ctx, request{op: "sign", method: http.MethodPut, path: s.path, capability: "update", body: body, notFound: ErrKeyNotFound})
	if err != nil {
		var e *Error
		if ctx.Err() != nil && errors.As(err, &e) {
			// Whatever the last attempt saw, the signature ran out of time:
			// Vault is not answering (frozen, partitioned, overloaded).
			e.Err = ErrUnavailable
			e.Detail = fmt.Sprintf("no signature from Vault within the %s sign timeout", s.timeout)
		}
		return nil, err
	}
	var sigText string
	if sec != nil {
		sigText = stringValue(sec.Data, "signature")
	}
	sig, err := parseSignature(sigText, s.version)
	if err != nil {
		return nil, &Error{Op: "sign", Path: s.path, Err: ErrUnexpectedResponse, Detail: err.Error()}
	}
	if err := verifySignature(s.pub, digest, sig, opts); err != nil {
		return nil, &Error{Op: "sign", Path: s.path, Err: ErrBadSignature,
			Detail: fmt.Sprintf("key version %d: %v; the signature was discarded", s.version, err)}
	}
	return sig, nil
}

// signParameters are the Transit sign options for one crypto.Signer call.
type signParameters struct {
	hashAlgorithm       string // sha2-256, ...
	signatureAlgorithm  string // RSA: pss or pkcs1v15
	saltLength          string // RSA-PSS: hash, auto or a byte count
	marshalingAlgorithm string // ECDSA: asn1
}

// transitHashes maps Go hash functions to Transit's hash_algorithm names.
var transitHashes = map[crypto.Hash]string{
	crypto.SHA1:     "sha1",
	crypto.SHA224:   "sha2-224",
	crypto.SHA256:   "sha2-256",
	crypto.SHA384:   "sha2-384",
	crypto.SHA512:   "sha2-512",
	crypto.SHA3_224: "sha3-224",
	crypto.SHA3_256: "sha3-256",
	crypto.SHA3_384: "sha3-384",
	crypto.SHA3_512: "sha3-512",
}

// signParams maps a crypto.Signer request to Transit sign parameters. A
// *rsa.PSSOptions asks for RSA-PSS (salt "hash" for
// rsa.PSSSaltLengthEqualsHash, which TLS requires; Transit's default "auto"
// would give a maximum-length salt that TLS 1.3 peers reject); any other
// opts on an RSA key ask for PKCS#1 v1.5; ECDSA signatures are ASN.1 DER, as
// crypto.Signer promises.
func signParams(pub crypto.PublicKey, digest []byte, opts crypto.SignerOpts) (signParameters, error) {
	if opts == nil {
		return signParameters{}, fmt.Errorf("no signer options (hash function) given")
	}
	h := opts.HashFunc()
	name, ok := transitHashes[h]
	if !ok {
		if h == 0 {
			return signParameters{}, fmt.Errorf("signing an unhashed message is not supported; pass a digest and its hash function")
		}
		return signParameters{}, fmt.Errorf("hash function %s is not supported by Transit", h)
	}
	if len(digest) != h.Size() {
		return signParameters{}, fmt.Errorf("digest is %d bytes, %s needs %d", len(digest), h, h.Size())
	}
	p := signParameters{hashAlgorithm: name}
	pss, isPSS := opts.(*rsa.PSSOptions)
	switch pub.(type) {
	case *rsa.PublicKey:
		if !isPSS {
			p.signatureAlgorithm = "pkcs1v15"
			return p, nil
		}
		p.signatureAlgorithm = "pss"
		switch sl := pss.SaltLength; {
		case sl == rsa.PSSSaltLengthEqualsHash:
			p.saltLength = "hash"
		case sl == rsa.PSSSaltLengthAuto:
			p.saltLength = "auto"
		case sl > 0:
			p.saltLength = strconv.Itoa(sl)
		default:
			return signParameters{}, fmt.Errorf("RSA-PSS salt length %d is not valid", sl)
		}
		return p, nil
	case *ecdsa.PublicKey:
		if isPSS {
			return signParameters{}, fmt.Errorf("RSA-PSS options given for an ECDSA key")
		}
		p.marshalingAlgorithm = "asn1"
		return p, nil
	default:
		return signParameters{}, fmt.Errorf("key type %T cannot sign through this package", pub)
	}
}

// parseSignature decodes Transit's "vault:v<N>:<base64>" and checks that
// the pinned version signed it.
func parseSignature(s string, wantVersion int) ([]byte, error) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) != 3 || parts[0] != "vault" || !strings.HasPrefix(parts[1], "v") {
		return nil, fmt.Errorf("signature is not in the vault:v<N>:<base64> form")
	}
	v, err := strconv.Atoi(parts[1][1:])
	if err != nil {
		return nil, fmt.Errorf("signature version %q is not a number", parts[1])
	}
	if v != wantVersion {
		return nil, fmt.Errorf("signature made with key version %d, want %d", v, wantVersion)
	}
	sig, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("signature is not base64: %v", err)
	}
	return sig, nil
}

// verifySignature checks sig over digest with pub, using the same scheme
// the signer was asked for.
func verifySignature(pub crypto.PublicKey, digest, sig []byte, opts crypto.SignerOpts) error {
	h := opts.HashFunc()
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			return rsa.VerifyPSS(k, h, digest, sig, pss)
		}
		return rsa.VerifyPKCS1v15(k, h, digest, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return fmt.Errorf("ecdsa: verification error")
		}
		return nil
	default:
		return fmt.Errorf("cannot verify signatures of key type %T", pub)
	}
}

// signErrors keeps the last few signature failures of a Transit source so
// that a TLS handshake's flattened error can be matched back to its typed
// error. Entries older than signErrorTTL are ignored.
type signErrors struct {
	mu   sync.Mutex
	ring [8]signErrorEntry
	next int
}

type signErrorEntry struct {
	err error
	at  time.Time
}

const signErrorTTL = time.Minute

func (r *signErrors) add(err error) {
	r.mu.Lock()
	r.ring[r.next] = signErrorEntry{err: err, at: time.Now()}
	r.next = (r.next + 1) % len(r.ring)
	r.mu.Unlock()
}

// find returns the most recent error whose text is text.
func (r *signErrors) find(text string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	for i := 1; i <= len(r.ring); i++ {
		e := r.ring[(r.next-i+len(r.ring))%len(r.ring)]
		if e.err != nil && now.Sub(e.at) < signErrorTTL && e.err.Error() == text {
			return e.err
		}
	}
	return nil
}

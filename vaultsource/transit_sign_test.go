package vaultsource_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/internal/pkitest"
	"github.com/knotmtls/knotmtls/vaultauth"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// These tests put a fault-injecting stand-in for Transit's keys and sign
// endpoints behind the source, to see exactly what the signer sends and to
// make Vault return what a real server never does (a signature that does
// not verify, another key version, a 403 that a re-login cannot cure).
// The same signer against a real Vault is tested in
// integration/transit_test.go.

// fakeTransitVersion is one key version of fakeTransit.
type fakeTransitVersion struct {
	key   crypto.Signer // what Vault holds for this version
	chain string        // certificate_chain PEM
}

// fakeTransit serves GET /v1/transit/keys/knot and PUT /v1/transit/sign/knot.
// versions is fixed before serving; the fault fields are set with tamper.
type fakeTransit struct {
	versions map[int]fakeTransitVersion
	// forbid is how many sign requests are answered 403 before signing.
	forbid atomic.Int32
	// hang makes sign requests wait for the client to give up (a frozen
	// Vault: the connection stays open, nothing comes back).
	hang atomic.Bool

	mu sync.Mutex
	// signWith, if set, signs instead of the requested version's key (a
	// tampered or corrupted answer).
	signWith crypto.Signer
	// maxSalt makes RSA-PSS use the largest salt, as Transit's default
	// salt_length "auto" does, whatever was asked for.
	maxSalt bool
	// answerVersion, if set, is the version named in the signature.
	answerVersion int
	// onForbid, if set, runs before a 403 is sent.
	onForbid func()
	signs    []map[string]any // decoded bodies of the sign requests
}

// tamper changes the fake's answers under its lock.
func (f *fakeTransit) tamper(fn func(f *fakeTransit)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeTransit) serve(t *testing.T) *api.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v1/transit/keys/knot":
			f.keys(t, w)
		case (r.Method == http.MethodPut || r.Method == http.MethodPost) && r.URL.Path == "/v1/transit/sign/knot":
			f.sign(t, w, r)
		default:
			writeJSON(w, http.StatusNotFound, map[string]any{"errors": []string{"no handler for route"}})
		}
	}))
	t.Cleanup(srv.Close)
	cfg := api.DefaultConfig()
	cfg.Address = srv.URL
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	require.NoError(t, err)
	c.SetToken("fake-token")
	return c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeTransit) keys(t *testing.T, w http.ResponseWriter) {
	keys := map[string]any{}
	latest := 0
	for v, kv := range f.versions {
		der, err := x509.MarshalPKIXPublicKey(kv.key.Public())
		if !assert.NoError(t, err) {
			return
		}
		keys[strconv.Itoa(v)] = map[string]any{
			"public_key":        string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
			"certificate_chain": kv.chain,
		}
		latest = max(latest, v)
	}
	typ := "rsa-2048"
	if _, ok := f.versions[latest].key.(*ecdsa.PrivateKey); ok {
		typ = "ecdsa-p256"
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"type": typ, "latest_version": latest, "exportable": false, "keys": keys,
	}})
}

// transitHashes maps Transit's hash_algorithm names back to Go hashes.
var transitHashes = map[string]crypto.Hash{"sha2-256": crypto.SHA256, "sha2-384": crypto.SHA384, "sha2-512": crypto.SHA512}

func (f *fakeTransit) sign(t *testing.T, w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	var body map[string]any
	if !assert.NoError(t, dec.Decode(&body)) {
		return
	}
	f.mu.Lock()
	f.signs = append(f.signs, body)
	signWith, maxSalt, answerVersion, onForbid := f.signWith, f.maxSalt, f.answerVersion, f.onForbid
	f.mu.Unlock()
	if f.hang.Load() {
		<-r.Context().Done()
		return
	}
	if f.forbid.Add(-1) >= 0 {
		if onForbid != nil {
			onForbid()
		}
		writeJSON(w, http.StatusForbidden, map[string]any{"errors": []string{"permission denied"}})
		return
	}
	n, err := body["key_version"].(json.Number).Int64()
	if !assert.NoError(t, err) {
		return
	}
	version := int(n)
	signer := f.versions[version].key
	if signWith != nil {
		signer = signWith
	}
	digest, err := base64.StdEncoding.DecodeString(body["input"].(string))
	if !assert.NoError(t, err) {
		return
	}
	h := transitHashes[body["hash_algorithm"].(string)]
	var sig []byte
	switch k := signer.(type) {
	case *rsa.PrivateKey:
		if body["signature_algorithm"] == "pss" {
			salt := rsa.PSSSaltLengthAuto
			if body["salt_length"] == "hash" && !maxSalt {
				salt = rsa.PSSSaltLengthEqualsHash
			}
			sig, err = rsa.SignPSS(rand.Reader, k, h, digest, &rsa.PSSOptions{SaltLength: salt, Hash: h})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, k, h, digest)
		}
	case *ecdsa.PrivateKey:
		sig, err = ecdsa.SignASN1(rand.Reader, k, digest)
	}
	if !assert.NoError(t, err) {
		return
	}
	if answerVersion != 0 {
		version = answerVersion
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"signature": "vault:v" + strconv.Itoa(version) + ":" + base64.StdEncoding.EncodeToString(sig),
	}})
}

func (f *fakeTransit) lastSign() map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.signs) == 0 {
		return nil
	}
	return f.signs[len(f.signs)-1]
}

func (f *fakeTransit) signCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.signs)
}

// newFakeTransit returns a fake whose versions 1..len(keys) hold keys, each
// with a certificate for it.
func newFakeTransit(keys ...crypto.Signer) *fakeTransit {
	ca := pkitest.NewCA("fake transit ca")
	f := &fakeTransit{versions: map[int]fakeTransitVersion{}}
	for i, k := range keys {
		leaf := ca.Issue(pkitest.Leaf{CN: "client-1", Key: k})
		f.versions[i+1] = fakeTransitVersion{key: k, chain: string(pkitest.CertPEM(leaf))}
	}
	return f
}

func hashOf(h crypto.Hash, msg string) []byte {
	hh := h.New()
	hh.Write([]byte(msg))
	return hh.Sum(nil)
}

// TestTransitSignRequest proves the parameters of every sign request: the
// digest as input with prehashed=true, the hash named as Transit names it,
// the pinned key_version, RSA-PSS with salt_length=hash (what TLS accepts)
// or PKCS#1 v1.5, ECDSA in ASN.1; and that the signature handed back
// verifies the way a TLS peer checks it.
func TestTransitSignRequest(t *testing.T) {
	rsa1, rsa2 := pkitest.CachedRSAKey(2048, 0), pkitest.CachedRSAKey(2048, 1)
	ec := pkitest.ECKey()

	tests := []struct {
		name    string
		keys    []crypto.Signer
		pin     int
		opts    crypto.SignerOpts
		want    map[string]any // expected body fields besides input and prehashed
		without []string       // body fields that must be absent
	}{
		{"tls1.3 rsa-pss sha256", []crypto.Signer{rsa1}, 0,
			&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256},
			map[string]any{"hash_algorithm": "sha2-256", "signature_algorithm": "pss", "salt_length": "hash", "key_version": "1"},
			[]string{"marshaling_algorithm"}},
		{"tls1.3 rsa-pss sha512", []crypto.Signer{rsa1}, 0,
			&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA512},
			map[string]any{"hash_algorithm": "sha2-512", "signature_algorithm": "pss", "salt_length": "hash", "key_version": "1"},
			[]string{"marshaling_algorithm"}},
		{"tls1.2 pkcs1v15 sha384", []crypto.Signer{rsa1}, 0, crypto.SHA384,
			map[string]any{"hash_algorithm": "sha2-384", "signature_algorithm": "pkcs1v15", "key_version": "1"},
			[]string{"salt_length", "marshaling_algorithm"}},
		{"latest version with a chain", []crypto.Signer{rsa1, rsa2}, 0, crypto.SHA256,
			map[string]any{"hash_algorithm": "sha2-256", "signature_algorithm": "pkcs1v15", "key_version": "2"}, nil},
		{"pinned older version", []crypto.Signer{rsa1, rsa2}, 1, crypto.SHA256,
			map[string]any{"hash_algorithm": "sha2-256", "signature_algorithm": "pkcs1v15", "key_version": "1"}, nil},
		{"ecdsa asn1", []crypto.Signer{ec}, 0, crypto.SHA256,
			map[string]any{"hash_algorithm": "sha2-256", "marshaling_algorithm": "asn1", "key_version": "1"},
			[]string{"signature_algorithm", "salt_length"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeTransit(tt.keys...)
			var opts []vaultsource.TransitOption
			if tt.pin > 0 {
				opts = append(opts, vaultsource.WithKeyVersion(tt.pin))
			}
			src, err := vaultsource.NewTransit(f.serve(t), "transit", "knot", opts...)
			require.NoError(t, err)
			b, err := src.Fetch(t.Context())
			require.NoError(t, err)

			digest := hashOf(tt.opts.HashFunc(), "handshake transcript")
			sig, err := b.Key.Sign(rand.Reader, digest, tt.opts)
			require.NoError(t, err)

			body := f.lastSign()
			require.NotNil(t, body)
			assert.Equal(t, base64.StdEncoding.EncodeToString(digest), body["input"], "the digest is sent, not a message")
			assert.Equal(t, true, body["prehashed"])
			for k, v := range tt.want {
				assert.Equal(t, v, fieldString(body[k]), k)
			}
			for _, k := range tt.without {
				assert.NotContains(t, body, k)
			}

			// Verify as a TLS peer would, with the certificate's key.
			pub := b.Leaf().PublicKey
			switch o := tt.opts.(type) {
			case *rsa.PSSOptions:
				assert.NoError(t, rsa.VerifyPSS(pub.(*rsa.PublicKey), o.Hash, digest, sig,
					&rsa.PSSOptions{SaltLength: o.Hash.Size(), Hash: o.Hash}), "salt length = hash length")
			default:
				if k, ok := pub.(*rsa.PublicKey); ok {
					assert.NoError(t, rsa.VerifyPKCS1v15(k, tt.opts.HashFunc(), digest, sig))
				} else {
					assert.True(t, ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest, sig))
				}
			}
		})
	}
}

func fieldString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case nil:
		return "<absent>"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// TestTransitSignatureVerifiedLocally proves that a signature Vault
// returns is checked before TLS sees it: one made by another key, an
// RSA-PSS signature with Transit's default maximum salt (which TLS 1.3
// peers reject), or one naming another key version is discarded with a
// typed error.
func TestTransitSignatureVerifiedLocally(t *testing.T) {
	pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	tests := []struct {
		name   string
		tamper func(f *fakeTransit)
		want   error
		detail string
	}{
		{"another key", func(f *fakeTransit) { f.signWith = pkitest.CachedRSAKey(2048, 2) }, vaultsource.ErrBadSignature, "discarded"},
		{"maximum salt", func(f *fakeTransit) { f.maxSalt = true }, vaultsource.ErrBadSignature, "discarded"},
		{"another key version", func(f *fakeTransit) { f.answerVersion = 2 }, vaultsource.ErrUnexpectedResponse, "key version 2, want 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeTransit(pkitest.CachedRSAKey(2048, 0))
			src, err := vaultsource.NewTransit(f.serve(t), "transit", "knot")
			require.NoError(t, err)
			b, err := src.Fetch(t.Context())
			require.NoError(t, err)
			f.tamper(tt.tamper)

			sig, err := b.Key.Sign(rand.Reader, hashOf(crypto.SHA256, "transcript"), pss)
			require.ErrorIs(t, err, tt.want)
			assert.Nil(t, sig, "nothing is handed to TLS")
			assert.Contains(t, err.Error(), tt.detail)
			var ve *vaultsource.Error
			require.ErrorAs(t, err, &ve)
			assert.Equal(t, "transit/sign/knot", ve.Path)
			assert.Equal(t, 1, f.signCount())
		})
	}
}

// countingAuth counts HandleDenied calls and answers them with err.
type countingAuth struct {
	calls      atomic.Int32
	err        error
	path, capa atomic.Value
}

func (r *countingAuth) HandleDenied(_ context.Context, path, capability string, _ bool) error {
	r.calls.Add(1)
	r.path.Store(path)
	r.capa.Store(capability)
	return r.err
}

// TestTransitSignReloginOnce proves the 403 handling on the signing path:
// the Auth is asked once, naming path and capability; a nil answer means one
// retry; a 403 that survives it, or an error answer (re-login failed, or
// the token is valid and the policy denies), is ErrPermissionDenied after
// exactly one question, naming the capability the token lacks. When another
// caller's re-login replaced the token meanwhile, the retry uses that token
// without asking.
func TestTransitSignReloginOnce(t *testing.T) {
	loginErr := errors.New("approle: invalid secret id")
	tests := []struct {
		name       string
		forbid     int32
		authErr    error
		concurrent bool // another caller's re-login sets a new token meanwhile
		wantErr    error
		wantAsks   int32
		wantSigns  int
		detail     string
	}{
		{"revoked token replaced", 1, nil, false, nil, 1, 2, ""},
		{"403 after the re-login", 5, nil, false, vaultsource.ErrPermissionDenied, 1, 2, "capability"},
		{"re-login fails", 5, loginErr, false, vaultsource.ErrInvalidToken, 1, 1, "re-login failed"},
		{"valid token, policy denies", 5, fmt.Errorf("x: %w", vaultauth.ErrPermissionDenied), false,
			vaultsource.ErrPermissionDenied, 1, 1, `the token is valid (lookup-self) but its policy lacks the "update" capability on transit/sign/knot`},
		{"token replaced by a concurrent re-login", 1, nil, true, nil, 0, 2, ""},
		{"403 with the concurrently set token", 5, nil, true, vaultsource.ErrPermissionDenied, 0, 2, "capability"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeTransit(pkitest.CachedRSAKey(2048, 0))
			rl := &countingAuth{err: tt.authErr}
			client := f.serve(t)
			src, err := vaultsource.NewTransit(client, "transit", "knot", vaultsource.WithAuth(rl))
			require.NoError(t, err)
			b, err := src.Fetch(t.Context())
			require.NoError(t, err)
			f.forbid.Store(tt.forbid)
			if tt.concurrent {
				f.tamper(func(f *fakeTransit) { f.onForbid = func() { client.SetToken("fake-token-2") } })
			}

			_, err = b.Key.Sign(rand.Reader, hashOf(crypto.SHA256, "transcript"), crypto.SHA256)
			assert.Equal(t, tt.wantAsks, rl.calls.Load(), "questions to the Auth")
			assert.Equal(t, tt.wantSigns, f.signCount(), "sign requests: the first and at most one retry")
			if tt.wantAsks > 0 {
				assert.Equal(t, "transit/sign/knot", rl.path.Load())
				assert.Equal(t, "update", rl.capa.Load())
			}
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
			require.ErrorIs(t, err, vaultsource.ErrPermissionDenied)
			var ve *vaultsource.Error
			require.ErrorAs(t, err, &ve)
			assert.Equal(t, "update", ve.Capability)
			assert.False(t, ve.Temporary(), "a permission problem is never temporary")
			if tt.authErr != nil {
				assert.ErrorIs(t, err, tt.authErr, "the Auth's answer is kept")
			}
			assert.Contains(t, err.Error(), tt.detail)
			assert.NotContains(t, err.Error(), "fake-token")
			assert.False(t, strings.Contains(err.Error(), "\n"), "one line")
		})
	}
}

// TestTransitSignFailsFastWhenVaultFreezes: with Vault frozen, a signature
// fails within the sign timeout (not the Vault client's 60 s) with a
// temporary ErrUnavailable, and the signer hands the typed error back for
// the text crypto/tls keeps of it.
func TestTransitSignFailsFastWhenVaultFreezes(t *testing.T) {
	f := newFakeTransit(pkitest.CachedRSAKey(2048, 0))
	client := f.serve(t)
	require.Equal(t, 60*time.Second, client.ClientTimeout(), "the client's own timeout is long")
	const timeout = 300 * time.Millisecond
	src, err := vaultsource.NewTransit(client, "transit", "knot", vaultsource.WithSignTimeout(timeout))
	require.NoError(t, err)
	b, err := src.Fetch(t.Context())
	require.NoError(t, err)
	f.hang.Store(true)

	start := time.Now()
	_, err = b.Key.Sign(rand.Reader, hashOf(crypto.SHA256, "transcript"), crypto.SHA256)
	elapsed := time.Since(start)
	require.ErrorIs(t, err, vaultsource.ErrUnavailable)
	assert.GreaterOrEqual(t, elapsed, timeout)
	assert.Less(t, elapsed, timeout+2*time.Second, "bounded by the sign timeout")
	assert.Contains(t, err.Error(), "no signature from Vault within the 300ms sign timeout")
	var ve *vaultsource.Error
	require.ErrorAs(t, err, &ve)
	assert.True(t, ve.Temporary())

	rec, ok := b.Key.(interface{ SignError(string) error })
	require.True(t, ok, "the signer records its errors for knotclient")
	assert.Same(t, err, rec.SignError(err.Error()), "the flattened text maps back to the typed error")
	assert.Nil(t, rec.SignError("some other text"))
}

// TestTransitOnSignReportsEverySignature: OnSign hooks see each signature
// once, in order, with the key version, a duration and the typed error of
// a failure; a nil hook is refused.
func TestTransitOnSignReportsEverySignature(t *testing.T) {
	f := newFakeTransit(pkitest.CachedRSAKey(2048, 0))
	var mu sync.Mutex
	var events []vaultsource.SignEvent
	record := func(e vaultsource.SignEvent) { mu.Lock(); events = append(events, e); mu.Unlock() }
	var second atomic.Int32
	src, err := vaultsource.NewTransit(f.serve(t), "transit", "knot",
		vaultsource.OnSign(record), vaultsource.OnSign(func(vaultsource.SignEvent) { second.Add(1) }))
	require.NoError(t, err)
	b, err := src.Fetch(t.Context())
	require.NoError(t, err)

	digest := hashOf(crypto.SHA256, "transcript")
	_, err = b.Key.Sign(rand.Reader, digest, crypto.SHA256)
	require.NoError(t, err)
	f.forbid.Store(1)
	_, err = b.Key.Sign(rand.Reader, digest, crypto.SHA256)
	require.ErrorIs(t, err, vaultsource.ErrPermissionDenied)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, events, 2)
	assert.Equal(t, 1, events[0].KeyVersion)
	assert.NoError(t, events[0].Err)
	assert.Positive(t, events[0].Duration)
	assert.ErrorIs(t, events[1].Err, vaultsource.ErrPermissionDenied)
	assert.Same(t, err, events[1].Err, "the hook sees the error the signer returned")
	assert.EqualValues(t, 2, second.Load(), "every hook is called")

	_, err = vaultsource.NewTransit(f.serve(t), "transit", "knot", vaultsource.OnSign(nil))
	require.ErrorIs(t, err, vaultsource.ErrInvalidArgument)
}

package vaultsource

// Fuzz targets for the decoding of Vault answers: a KV secret read, a
// Transit key description and a Transit signature. Each feeds the raw JSON
// body through api.ParseSecret, as vault/api does with a response, then
// through the package's decoding functions: no I/O, no Vault.
//
// This file is self-contained on purpose (vaultsource is being reworked):
// the unexported names it relies on are mapField, intField, deletionReason,
// kvSecret, (*KV).bundle, (*KV).hashVersion, describeKVSecret,
// parseTransitKey, (*Transit).pick, parsePublicKey, versionString,
// describeTransitKey and parseSignature.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/knotmtls/knotmtls/provider"
)

// fuzzClient is a Vault client that is never used for a request.
func fuzzClient(t testing.TB) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = "http://127.0.0.1:1"
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("vault client: %v", err)
	}
	return c
}

// requireFuzzError fails unless err is a *Error wrapping one of the
// package's sentinels, or a provider check error, and does not show any
// of the secret values (long enough to be told from ordinary text).
func requireFuzzError(t *testing.T, err error, secrets ...string) {
	t.Helper()
	var e *Error
	var ce *provider.CheckError
	if !errors.As(err, &e) && !errors.As(err, &ce) {
		t.Fatalf("error %q (%T) is neither a *vaultsource.Error nor a *provider.CheckError", err, err)
	}
	if !strings.HasPrefix(err.Error(), "vaultsource: ") {
		t.Fatalf("error %q lacks the vaultsource: prefix", err)
	}
	msg := err.Error()
	for _, s := range secrets {
		s = strings.TrimSpace(s)
		if len(s) >= 24 && strings.Contains(msg, s) {
			t.Fatalf("error %q shows a secret field value", msg)
		}
		// Nor any line of it (a PEM body line of a key).
		for _, line := range strings.Split(s, "\n") {
			if line = strings.TrimSpace(line); len(line) >= 24 && !strings.HasPrefix(line, "-----") && strings.Contains(msg, line) {
				t.Fatalf("error %q shows a line of a secret field value", msg)
			}
		}
	}
}

func FuzzKVSecret(f *testing.F) {
	// A complete secret, generated at run time so that no usable key is
	// committed (nor is any PEM key block: the key variants are built below). ECDSA, because
	// RSA key generation in an instrumented fuzz binary eats the budget.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fuzz-client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		f.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		f.Fatal(err)
	}
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	fields := map[string]any{"certificate": certPEM, "ca_chain": []string{certPEM},
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))}
	v2, _ := json.Marshal(map[string]any{"data": map[string]any{"data": fields, "metadata": map[string]any{"version": 3}}})
	v1, _ := json.Marshal(map[string]any{"data": fields})
	f.Add(v2, uint8(1))
	f.Add(v1, uint8(0))
	// Variants built here rather than committed (no PEM private key in the
	// seed corpora): a key cut short, a staged pending key, the chain as one
	// string, and a v1 secret read as v2.
	junk := maps.Clone(fields)
	junk["private_key"] = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8[:40]}))
	pending := maps.Clone(fields)
	pending["pending_private_key"] = fields["private_key"]
	chainString := maps.Clone(fields)
	chainString["ca_chain"] = certPEM + certPEM
	for _, flds := range []map[string]any{junk, pending, chainString} {
		b, _ := json.Marshal(map[string]any{"data": map[string]any{"data": flds, "metadata": map[string]any{"version": 2}}})
		f.Add(b, uint8(1))
	}
	junkV1, _ := json.Marshal(map[string]any{"data": junk})
	f.Add(junkV1, uint8(0))
	f.Add(v1, uint8(1))
	client := fuzzClient(f)
	f.Fuzz(func(t *testing.T, body []byte, version uint8) {
		sec, err := api.ParseSecret(bytes.NewReader(body))
		if err != nil || sec == nil || sec.Data == nil {
			return // vault/api would have failed the read already
		}
		kvVersion := int(version%2) + 1
		k, err := NewKV(client, "secret", "knot/client", WithKVVersion(kvVersion))
		if err != nil {
			t.Fatal(err)
		}
		s := kvSecret{data: sec.Data, exists: true}
		if kvVersion == 2 {
			meta := mapField(sec.Data, "metadata")
			v, _ := intField(meta, "version")
			s = kvSecret{data: mapField(sec.Data, "data"), exists: true, version: v}
			if s.data == nil {
				s.deleted = deletionReason(meta, v)
			}
		}
		keyText, _ := s.data[k.cfg.fields.PrivateKey].(string)
		d := describeKVSecret(s, k.cfg.fields, kvVersion)
		if d.Exists != s.exists || (kvVersion == 2 && d.Version != s.version) {
			t.Fatalf("describe %+v does not match the read %+v", d, s)
		}
		if kvVersion == 1 {
			if v, err := k.hashVersion(s.data); err != nil {
				requireFuzzError(t, err, keyText)
			} else if !strings.HasPrefix(v, "sha256:") || len(v) != len("sha256:")+32 {
				t.Fatalf("KV v1 version %q is not sha256:<32 hex>", v)
			}
		}
		b, err := k.bundle(s)
		if err != nil {
			requireFuzzError(t, err, keyText)
			return
		}
		if err := provider.CheckKeyPair(b.Leaf(), b.Key); err != nil {
			t.Fatalf("bundle with a mismatched key accepted: %v", err)
		}
		if kvVersion == 2 && b.Version != strconv.Itoa(s.version) {
			t.Fatalf("bundle version %q, want %d", b.Version, s.version)
		}
	})
}

func FuzzTransitKey(f *testing.F) {
	f.Add([]byte(`{"data":{"type":"rsa-2048","latest_version":1,"keys":{"1":{"public_key":"x"}}}}`), uint8(0))
	client := fuzzClient(f)
	f.Fuzz(func(t *testing.T, body []byte, pin uint8) {
		sec, err := api.ParseSecret(bytes.NewReader(body))
		if err != nil || sec == nil || sec.Data == nil {
			return
		}
		// No option slice: its type differs between option designs.
		var tr *Transit
		if p := int(pin % 4); p != 0 { // pin versions 1-3 a quarter of the time each
			tr, err = NewTransit(client, "transit", "knot", WithKeyVersion(p))
		} else {
			tr, err = NewTransit(client, "transit", "knot")
		}
		if err != nil {
			t.Fatal(err)
		}
		k, err := parseTransitKey(sec.Data, tr.keyPath())
		if err != nil {
			requireFuzzError(t, err)
			return
		}
		d := describeTransitKey(k)
		if len(d.Versions) != len(k.versions) || !slices.IsSorted(d.Versions) || !slices.IsSorted(d.CertifiedVersions) {
			t.Fatalf("description %+v does not list the %d versions in order", d, len(k.versions))
		}
		for _, cv := range d.CertifiedVersions {
			if !slices.Contains(d.Versions, cv) {
				t.Fatalf("certified version %d is not a version: %+v", cv, d)
			}
		}
		v, kv, err := tr.pick(k)
		if err != nil {
			requireFuzzError(t, err)
			return
		}
		if p := int(pin % 4); p != 0 && v != p {
			t.Fatalf("picked version %d with version %d pinned", v, p)
		} else if p == 0 && (len(d.CertifiedVersions) == 0 || v != d.CertifiedVersions[len(d.CertifiedVersions)-1]) {
			t.Fatalf("picked version %d, want the latest certified of %v", v, d.CertifiedVersions)
		}
		if strings.TrimSpace(kv.chain) == "" {
			t.Fatalf("picked version %d has no chain", v)
		}
		if vs := versionString("knot", v, kv.chain); !strings.HasPrefix(vs, "transit:knot:v"+strconv.Itoa(v)+":") {
			t.Fatalf("version string %q", vs)
		}
		pub, err := parsePublicKey(kv.publicKey)
		if err != nil {
			return // Fetch reports it as ErrUnexpectedResponse
		}
		chain, err := provider.ParseCertificates([]byte(kv.chain))
		if err != nil {
			requireFuzzError(t, &Error{Op: "parse", Path: tr.keyPath(), Err: err})
			return
		}
		// The signer Fetch would build must pass the key pair check exactly
		// when its public key is the leaf's (compared as DER here).
		signerDER, err1 := x509.MarshalPKIXPublicKey(pub)
		leafDER, err2 := x509.MarshalPKIXPublicKey(chain[0].PublicKey)
		same := err1 == nil && err2 == nil && bytes.Equal(signerDER, leafDER)
		if err := provider.CheckKeyPair(chain[0], tr.signer(v, pub)); (err == nil) != same {
			t.Fatalf("key pair check %v, but the public keys are the same: %v", err, same)
		}
	})
}

func FuzzTransitSignature(f *testing.F) {
	f.Add("vault:v1:"+base64.StdEncoding.EncodeToString([]byte("sig")), 1)
	f.Fuzz(func(t *testing.T, s string, want int) {
		sig, err := parseSignature(s, want)
		if err != nil {
			if sig != nil {
				t.Fatalf("signature returned with error %v", err)
			}
			return
		}
		// Accepted: it must be exactly vault:v<want>:<standard base64>.
		parts := strings.SplitN(s, ":", 3)
		if len(parts) != 3 || parts[0] != "vault" {
			t.Fatalf("accepted %q", s)
		}
		if n, err := strconv.Atoi(strings.TrimPrefix(parts[1], "v")); err != nil || n != want {
			t.Fatalf("accepted %q for version %d", s, want)
		}
		raw, err := base64.StdEncoding.DecodeString(parts[2])
		if err != nil || !bytes.Equal(raw, sig) {
			t.Fatalf("signature bytes of %q do not round-trip", s)
		}
	})
}

package provider

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"time"
)

// Requirements are Knot's rules for mTLS client material. The zero value
// requires nothing about the client_id; set ClientID.
type Requirements struct {
	// ClientID is the Knot client_id; the certificate and CSR subject CN
	// must equal it.
	ClientID string
	// AllowLargerKeys accepts RSA keys larger than 2048 bits. Knot asks for
	// exactly 2048; leave this false unless Knot confirmed otherwise.
	AllowLargerKeys bool
	// Roots, when set, must verify the chain (for example Knot's issuing CA).
	Roots *x509.CertPool
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// RSAKeyBits is the key size Knot requires.
const RSAKeyBits = 2048

func (r Requirements) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func fail(err error, format string, args ...any) error {
	return &CheckError{Err: err, Detail: fmt.Sprintf(format, args...)}
}

// CheckPublicKey checks that pub is an RSA key of the size Knot requires.
func (r Requirements) CheckPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		if bits == RSAKeyBits || (r.AllowLargerKeys && bits > RSAKeyBits) {
			return nil
		}
		if bits < RSAKeyBits {
			return fail(ErrKeySize, "key is RSA-%d; Knot requires RSA-%d: generate a new 2048-bit key", bits, RSAKeyBits)
		}
		return fail(ErrKeySize, "key is RSA-%d; Knot requires RSA-%d (set AllowLargerKeys only if Knot accepts larger keys)", bits, RSAKeyBits)
	case *ecdsa.PublicKey:
		return fail(ErrKeyType, "key is ECDSA %s; Knot requires RSA-%d", k.Curve.Params().Name, RSAKeyBits)
	case ed25519.PublicKey:
		return fail(ErrKeyType, "key is Ed25519; Knot requires RSA-%d", RSAKeyBits)
	case nil:
		return fail(ErrNoKey, "no public key")
	default:
		return fail(ErrKeyType, "key type %T; Knot requires RSA-%d", pub, RSAKeyBits)
	}
}

func (r Requirements) checkCN(what, cn string) error {
	if r.ClientID == "" {
		return nil
	}
	if cn != r.ClientID {
		return fail(ErrSubjectCN, "%s subject CN is %q, expected the client_id %q", what, cn, r.ClientID)
	}
	return nil
}

// CheckCSR checks a certificate request the way Knot does before signing it:
// RSA-2048, signed with SHA-256 with RSA, CN equal to the client_id, and a
// valid self-signature.
func (r Requirements) CheckCSR(csr *x509.CertificateRequest) error {
	if csr == nil {
		return fail(ErrMalformedCSR, "no certificate request")
	}
	if err := r.CheckPublicKey(csr.PublicKey); err != nil {
		return err
	}
	if csr.SignatureAlgorithm != x509.SHA256WithRSA {
		return fail(ErrSignatureAlgorithm, "certificate request is signed with %s; Knot requires SHA256-RSA (openssl req -sha256)", csr.SignatureAlgorithm)
	}
	if err := csr.CheckSignature(); err != nil {
		return fail(ErrCSRSignature, "%v", err)
	}
	return r.checkCN("certificate request", csr.Subject.CommonName)
}

// caSignatureAlgorithms are the signatures a CA may put on the leaf: SHA-256
// or stronger, with RSA (PKCS#1 v1.5 or PSS), ECDSA or Ed25519. Knot's rules
// bind our key and CSR, not the CA's own key, so any sound algorithm is
// accepted; MD5 and SHA-1 (and MD2, DSA) are not.
var caSignatureAlgorithms = map[x509.SignatureAlgorithm]bool{
	x509.SHA256WithRSA: true, x509.SHA384WithRSA: true, x509.SHA512WithRSA: true,
	x509.SHA256WithRSAPSS: true, x509.SHA384WithRSAPSS: true, x509.SHA512WithRSAPSS: true,
	x509.ECDSAWithSHA256: true, x509.ECDSAWithSHA384: true, x509.ECDSAWithSHA512: true,
	x509.PureEd25519: true,
}

// CheckCertificate checks a leaf certificate on its own: RSA-2048 key, CN
// equal to the client_id, usable for client authentication, valid now, and
// signed by its CA with a sound algorithm: SHA-256, SHA-384 or SHA-512 with
// RSA, RSA-PSS or ECDSA (or Ed25519). MD5 and SHA-1 signatures are refused
// with [ErrSignatureAlgorithm]. The SHA-256-with-RSA rule is Knot's rule for
// the CSR ([Requirements.CheckCSR]), not for the CA's signature.
func (r Requirements) CheckCertificate(leaf *x509.Certificate) error {
	if leaf == nil {
		return fail(ErrNoCertificate, "no leaf certificate")
	}
	if err := r.CheckPublicKey(leaf.PublicKey); err != nil {
		return err
	}
	if !caSignatureAlgorithms[leaf.SignatureAlgorithm] {
		return fail(ErrSignatureAlgorithm, "certificate serial %s is signed by its CA with %s, which is broken or unsupported; "+
			"a CA must sign with SHA-256 or stronger (RSA, RSA-PSS or ECDSA): ask the issuer for a new certificate", SerialHex(leaf), leaf.SignatureAlgorithm)
	}
	if err := r.checkCN("certificate", leaf.Subject.CommonName); err != nil {
		return err
	}
	if len(leaf.ExtKeyUsage) > 0 {
		ok := false
		for _, u := range leaf.ExtKeyUsage {
			if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
				ok = true
			}
		}
		if !ok {
			return fail(ErrKeyUsage, "certificate serial %s has extended key usages but not clientAuth", SerialHex(leaf))
		}
	}
	now := r.now()
	if now.Before(leaf.NotBefore) {
		return fail(ErrNotYetValid, "certificate serial %s is valid from %s (now %s): check the clock or wait", SerialHex(leaf),
			leaf.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if !now.Before(leaf.NotAfter) {
		return fail(ErrExpired, "certificate serial %s expired at %s: request a new certificate from Knot", SerialHex(leaf),
			leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// CheckKeyPair checks that key is the private key of leaf, by comparing the
// public halves (no signing is needed, so it is cheap for remote signers).
func CheckKeyPair(leaf *x509.Certificate, key crypto.Signer) error {
	if leaf == nil {
		return fail(ErrNoCertificate, "no leaf certificate")
	}
	if key == nil {
		return fail(ErrNoKey, "no private key")
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(equaler)
	if !ok || !pub.Equal(leaf.PublicKey) {
		return fail(ErrKeyMismatch, "the key's public half does not match certificate serial %s (cert and key come from different pairs)", SerialHex(leaf))
	}
	return nil
}

// CheckChain checks that each certificate is issued and signed by the next
// one, and, when Roots is set, that the chain verifies up to one of them for
// client authentication.
func (r Requirements) CheckChain(chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return fail(ErrNoCertificate, "empty chain")
	}
	for i := 0; i+1 < len(chain); i++ {
		child, parent := chain[i], chain[i+1]
		if !bytes.Equal(child.RawIssuer, parent.RawSubject) {
			return fail(ErrChainOrder, "certificate %d (%q) is not issued by certificate %d (%q): put the leaf first, then its issuer", i, child.Subject.CommonName, i+1, parent.Subject.CommonName)
		}
		if err := child.CheckSignatureFrom(parent); err != nil {
			return fail(ErrChainOrder, "certificate %d is not signed by certificate %d: %v", i, i+1, err)
		}
	}
	if r.Roots != nil {
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		_, err := chain[0].Verify(x509.VerifyOptions{
			Roots: r.Roots, Intermediates: inter, CurrentTime: r.now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		if err != nil {
			return fail(ErrUntrustedChain, "%v", err)
		}
	}
	return nil
}

// CheckBundle runs every check on a bundle: leaf rules, key pair, chain.
// A Provider calls it before it serves a new bundle.
func (r Requirements) CheckBundle(b *Bundle) error {
	if b == nil || len(b.Chain) == 0 {
		return fail(ErrNoCertificate, "the bundle holds no certificate")
	}
	if err := r.CheckCertificate(b.Chain[0]); err != nil {
		return err
	}
	if err := CheckKeyPair(b.Chain[0], b.Key); err != nil {
		return err
	}
	return r.CheckChain(b.Chain)
}

package provider

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

var pemBegin = []byte("-----BEGIN ")

// decodePEM returns every PEM block in data, rejecting empty input, non-PEM
// input and truncated blocks with distinct errors. what names the input in
// messages ("certificate", "private key").
func decodePEM(data []byte, what string) ([]*pem.Block, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fail(ErrEmpty, "the %s input is empty", what)
	}
	var blocks []*pem.Block
	rest := data
	for {
		i := bytes.Index(rest, pemBegin)
		if i < 0 {
			break
		}
		block, next := pem.Decode(rest[i:])
		if block == nil {
			return nil, fail(ErrTruncatedPEM, "the %s input has a PEM header without a matching, well-formed END line", what)
		}
		blocks = append(blocks, block)
		rest = next
	}
	if len(blocks) == 0 {
		return nil, fail(ErrNotPEM, "the %s input holds no PEM block (expected -----BEGIN ...-----)", what)
	}
	return blocks, nil
}

// ParseCertificates parses every CERTIFICATE block in data, in order (leaf
// first, as Knot and Vault hand them out). Other block types are an error so
// that a key pasted into a certificate field is noticed.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	blocks, err := decodePEM(data, "certificate")
	if err != nil {
		return nil, err
	}
	certs := make([]*x509.Certificate, 0, len(blocks))
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			// Never echo the block: it may be a key.
			return nil, fail(ErrUnexpectedPEMType, "PEM block %d is %q, expected CERTIFICATE", i, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fail(ErrMalformedCert, "PEM block %d: %v", i, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// ParsePrivateKey parses one PEM private key: PKCS#1 ("RSA PRIVATE KEY"),
// PKCS#8 ("PRIVATE KEY") or SEC1 ("EC PRIVATE KEY"). Encrypted keys are
// refused with [ErrEncryptedKey]: decrypt them in memory first, or better,
// keep the key in Vault. Error messages never contain key bytes.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	blocks, err := decodePEM(data, "private key")
	if err != nil {
		return nil, err
	}
	var key any
	found := 0
	for _, b := range blocks {
		if _, ok := b.Headers["DEK-Info"]; ok || b.Headers["Proc-Type"] == "4,ENCRYPTED" || b.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, fail(ErrEncryptedKey, "the private key is password-protected; store it unencrypted in Vault (never on disk) or decrypt it in memory")
		}
		switch b.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		case "EC PARAMETERS":
			continue // openssl ecparam emits this before the key
		default:
			return nil, fail(ErrUnexpectedPEMType, "PEM block is %q, expected a private key", b.Type)
		}
		if err != nil {
			// x509 errors hold no key bytes, but ASN.1 errors can dump long
			// structure descriptions: keep the first part only.
			return nil, fail(ErrUnsupportedKey, "%s block could not be parsed: %s", b.Type, shorten(err.Error(), 120))
		}
		found++
	}
	if found != 1 {
		return nil, fail(ErrNoKey, "expected exactly one private key, found %d", found)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fail(ErrUnsupportedKey, "key type %T cannot sign", key)
	}
	return signer, nil
}

// ParseCSR parses one PEM CERTIFICATE REQUEST.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	blocks, err := decodePEM(data, "certificate request")
	if err != nil {
		return nil, err
	}
	if len(blocks) != 1 || (blocks[0].Type != "CERTIFICATE REQUEST" && blocks[0].Type != "NEW CERTIFICATE REQUEST") {
		return nil, fail(ErrUnexpectedPEMType, "expected one CERTIFICATE REQUEST block, found %d block(s) starting with %q", len(blocks), blocks[0].Type)
	}
	csr, err := x509.ParseCertificateRequest(blocks[0].Bytes)
	if err != nil {
		return nil, fail(ErrMalformedCSR, "%v", err)
	}
	return csr, nil
}

// ParseBundle builds a Bundle from PEM: certPEM holds the leaf and optionally
// its chain, chainPEM (may be empty) more chain certificates, keyPEM the
// leaf's private key. It checks that the key matches the leaf but not Knot's
// other rules; see [Requirements.CheckBundle].
func ParseBundle(certPEM, chainPEM, keyPEM []byte, version string) (*Bundle, error) {
	chain, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(chainPEM)) > 0 {
		extra, err := ParseCertificates(chainPEM)
		if err != nil {
			return nil, fmt.Errorf("chain: %w", err)
		}
		chain = append(chain, extra...)
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if err := CheckKeyPair(chain[0], key); err != nil {
		return nil, err
	}
	return NewBundle(chain, key, version)
}

// EncodeCertificates returns the chain as concatenated PEM CERTIFICATE blocks.
func EncodeCertificates(chain []*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range chain {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

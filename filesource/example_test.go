package filesource_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/knotmtls/knotmtls/filesource"
	"github.com/knotmtls/knotmtls/provider"
)

// ExampleNew reads a certificate and key that something else wrote to disk
// (here: generated on the spot, as Vault Agent would render them).
func ExampleNew() {
	dir, err := os.MkdirTemp("", "filesource-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := writeExamplePair(certFile, keyFile, "client-123"); err != nil {
		log.Fatal(err)
	}

	src, err := filesource.New(certFile, keyFile)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	b, err := src.Fetch(ctx)
	if err != nil {
		log.Fatal(err)
	}
	version, err := src.Version(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("cn:", b.Leaf().Subject.CommonName)
	fmt.Println("chain length:", len(b.Chain))
	fmt.Println("content-hash version:", strings.HasPrefix(b.Version, "sha256:"), version == b.Version)
	// Output:
	// cn: client-123
	// chain length: 1
	// content-hash version: true true
}

// Example_provider serves the files through a Provider, which checks Knot's
// rules, reloads the pair when the files change and plugs into tls.Config.
func Example_provider() {
	dir, err := os.MkdirTemp("", "filesource-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := writeExamplePair(certFile, keyFile, "client-123"); err != nil {
		log.Fatal(err)
	}

	src, err := filesource.New(certFile, keyFile)
	if err != nil {
		log.Fatal(err)
	}
	p, err := provider.New(src, provider.WithRequirements(provider.Requirements{ClientID: "client-123"}))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	cert, err := p.Certificate(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	tlsConfig := provider.MTLSClientConfig(p, nil) // for an http.Transport
	fmt.Println("serving:", cert.Leaf.Subject.CommonName)
	fmt.Println("min TLS 1.2:", tlsConfig.MinVersion == tls.VersionTLS12)
	// Output:
	// serving: client-123
	// min TLS 1.2: true
}

// writeExamplePair writes a self-signed RSA-2048 client certificate for cn
// and its PKCS#8 key. A real deployment gets the certificate from Knot.
func writeExamplePair(certFile, keyFile, cn string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:       big.NewInt(time.Now().UnixNano()),
		Subject:            pkix.Name{CommonName: cn},
		NotBefore:          time.Now().Add(-time.Minute),
		NotAfter:           time.Now().Add(time.Hour),
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		SignatureAlgorithm: x509.SHA256WithRSA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
}

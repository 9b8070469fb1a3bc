package integration_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/knotmtls/knotmtls/integration/clitest"
	"github.com/knotmtls/knotmtls/internal/cli"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
)

// TestCLILifecycleKV walks the whole KV lifecycle through cli.Run against a
// real Vault and knottest: csr (key generated in memory, stored in KV, CSR
// out), Knot signs, import, status (text and JSON), check over real mTLS
// (secret from the environment and from KV, and a wrong secret), then a
// staged rotation (--rotate: the old certificate keeps serving until the
// import) and a forced one (--force).
func TestCLILifecycleKV(t *testing.T) {
	e := newCLIEnv(t)
	ctx := context.Background()
	path := cli.DefaultKVPath("development", e.clientID)
	knotCA := e.write("knot-ca.pem", provider.EncodeCertificates([]*x509.Certificate{e.knot.CA()}))

	// csr --out: the CSR goes to the file, instructions to stdout.
	csrFile := filepath.Join(e.dir, "knot.csr")
	r := e.run(e.cmd("csr", "--out", csrFile)...)
	require.Equal(t, cli.ExitOK, r.code, r)
	assert.Contains(t, r.stdout, "Send "+csrFile+" to Knot for client_id "+e.clientID+" in the development environment")
	assert.Contains(t, r.stdout, "knotmtls import --client-id "+e.clientID+" --env development --cert")
	assert.Contains(t, r.stdout, "Vault KV v2 secret/"+path+" (version 1), field private_key")
	assert.Contains(t, r.stdout, "RSA-2048, signed SHA256-RSA")
	csrPEM := readFileT(t, csrFile)
	csr := readCSR(t, csrPEM)
	assert.Equal(t, e.clientID, csr.Subject.CommonName)
	assert.Equal(t, x509.SHA256WithRSA, csr.SignatureAlgorithm)

	data := e.kvData(path)
	key, err := provider.ParsePrivateKey([]byte(data["private_key"].(string)))
	require.NoError(t, err)
	assert.True(t, key.Public().(*rsa.PublicKey).Equal(csr.PublicKey), "the CSR carries the stored key")
	assert.NotContains(t, data, "certificate")

	// csr --existing: stdout is exactly the CSR (pipeable), instructions on stderr.
	r = e.run(e.cmd("csr", "--existing")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	assert.True(t, strings.HasPrefix(r.stdout, "-----BEGIN CERTIFICATE REQUEST-----"), r.stdout)
	assert.True(t, strings.HasSuffix(r.stdout, "-----END CERTIFICATE REQUEST-----\n"), r.stdout)
	assert.True(t, readCSR(t, []byte(r.stdout)).PublicKey.(*rsa.PublicKey).Equal(csr.PublicKey))
	assert.Contains(t, r.stderr, "Next:")
	assert.Contains(t, r.stderr, "already stored")

	// Before the import there is a key but no certificate.
	r = e.run(e.cmd("status")...)
	assert.Equal(t, cli.ExitRefused, r.code, r)
	assert.Contains(t, r.stdout, "result:       missing (exit 4)")
	assert.Contains(t, r.stdout, `hint:         a key is stored but no certificate yet: import the certificate Knot returned with "knotmtls import"`)

	// Knot signs; import checks it against the key and Knot's CA.
	certFile, leaf := e.sign("knot.crt", csrPEM)
	serial := provider.SerialHex(leaf)
	r = e.run(e.cmd("import", "--cert", certFile, "--knot-ca", knotCA)...)
	require.Equal(t, cli.ExitOK, r.code, r)
	assert.Contains(t, r.stdout, "imported certificate serial "+serial+" for client_id "+e.clientID)
	assert.Contains(t, r.stdout, "stored in:  Vault KV v2 secret/"+path+" (version 2)")
	assert.Equal(t, string(provider.EncodeCertificates([]*x509.Certificate{leaf})), e.kvData(path)["certificate"])

	r = e.run(e.cmd("status", "--knot-ca", knotCA)...)
	require.Equal(t, cli.ExitOK, r.code, r)
	for _, want := range []string{
		"stored in:    Vault KV v2 secret/" + path + " (version 2)",
		"subject:      CN=" + e.clientID,
		"serial:       " + serial,
		"key:          RSA-2048, SHA256-RSA",
		"days left)",
		"result:       ok (exit 0)",
	} {
		assert.Contains(t, r.stdout, want)
	}

	r = e.run(e.cmd("status", "--json")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	var rep cli.StatusReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	assert.Equal(t, cli.ResultOK, rep.Result)
	assert.Equal(t, cli.ExitOK, rep.ExitCode)
	assert.Equal(t, cli.StoreLocation{Kind: "kv", Mount: "secret", Path: path, KVVersion: 2, Version: "2"}, rep.Store)
	require.NotNil(t, rep.Certificate)
	assert.Equal(t, serial, rep.Certificate.Serial)
	assert.Equal(t, "CN="+e.clientID, rep.Certificate.Subject)
	assert.Equal(t, leaf.NotAfter.UTC(), rep.Certificate.NotAfter)
	assert.InDelta(t, 364, rep.Certificate.DaysLeft, 1)
	assert.Equal(t, "RSA-2048", rep.Certificate.PublicKey)
	assert.Equal(t, "auto", rep.Warn)
	assert.Equal(t, "30d", rep.WarnThreshold, "a 365-day certificate: the last 30 days")
	assert.Empty(t, rep.Problem)

	// check: a real mTLS request through provider + knotclient.
	e.knot.Reset()
	r = e.run(e.checkArgs()...)
	require.Equal(t, cli.ExitOK, r.code, r)
	assert.Contains(t, r.stdout, "presented:    client certificate serial "+serial)
	assert.Contains(t, r.stdout, "http status:  200 OK")
	assert.Regexp(t, `tls:\s+TLS 1\.[23]`, r.stdout)
	reqs := e.knot.Requests()
	require.NotEmpty(t, reqs)
	last := reqs[len(reqs)-1]
	assert.Equal(t, "/merchant/list", last.Path)
	assert.Equal(t, serial, last.ClientSerial)
	assert.True(t, last.AuthOK)

	r = e.run(e.checkArgs("--json")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	var crep cli.CheckReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &crep), r.stdout)
	assert.Equal(t, serial, crep.Serial)
	assert.Equal(t, 200, crep.HTTPStatus)
	assert.Contains(t, []string{"TLS 1.2", "TLS 1.3"}, crep.TLSVersion)
	assert.Equal(t, "2", crep.Store.Version)
	assert.Equal(t, cli.ResultOK, crep.Result)
	assert.Equal(t, e.knot.URL(), crep.URL)

	// The Knot secret can come from KV instead of the environment.
	_, err = e.root.KVv2("secret").Put(ctx, path+"-api", map[string]any{"secret": e.knot.Secret()})
	require.NoError(t, err)
	t.Setenv("KNOT_SECRET", "")
	r = e.run(e.checkArgs("--secret-kv", path+"-api")...)
	require.Equal(t, cli.ExitOK, r.code, r)

	// A wrong secret: the handshake works, Knot answers 401.
	t.Setenv("KNOT_SECRET", "not-the-secret")
	r = e.run(e.checkArgs()...)
	assert.Equal(t, cli.ExitCheckFailed, r.code, r)
	assert.Contains(t, r.stdout, "http status:  401 Unauthorized")
	assert.Contains(t, r.stdout, "knot error:   INVALID_API_KEYS")
	assert.Contains(t, r.stdout, "check the secret")
	assert.NotContains(t, r.stdout+r.stderr, "not-the-secret")
	t.Setenv("KNOT_SECRET", e.knot.Secret())

	// Staged rotation: the new key waits in pending_private_key and the old
	// certificate keeps serving until the new one is imported.
	csr2File := filepath.Join(e.dir, "knot-2.csr")
	r = e.run(e.cmd("csr", "--rotate", "--out", csr2File)...)
	require.Equal(t, cli.ExitOK, r.code, r)
	assert.Contains(t, r.stdout, "field pending_private_key")
	r = e.run(e.cmd("status", "--json")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep))
	assert.Equal(t, serial, rep.Certificate.Serial, "the old certificate keeps serving")
	assert.Equal(t, "3", rep.Store.Version)

	cert2File, leaf2 := e.sign("knot-2.crt", readFileT(t, csr2File))
	r = e.run(e.cmd("import", "--cert", cert2File)...)
	require.Equal(t, cli.ExitOK, r.code, r)
	assert.NotContains(t, e.kvData(path), "pending_private_key", "the staged key was promoted")
	e.knot.Reset()
	r = e.run(e.checkArgs()...)
	require.Equal(t, cli.ExitOK, r.code, r)
	assert.Contains(t, r.stdout, "presented:    client certificate serial "+provider.SerialHex(leaf2))
	assert.Equal(t, []string{provider.SerialHex(leaf2)}, e.knot.Serials())

	// Forced replacement: key and certificate go at once; status says so.
	csr3File := filepath.Join(e.dir, "knot-3.csr")
	r = e.run(e.cmd("csr", "--force", "--out", csr3File)...)
	require.Equal(t, cli.ExitOK, r.code, r)
	assert.Contains(t, r.stdout, "Warning: until the import")
	r = e.run(e.cmd("status")...)
	assert.Equal(t, cli.ExitRefused, r.code, r)
	assert.Contains(t, r.stdout, "result:       missing")
	cert3File, leaf3 := e.sign("knot-3.crt", readFileT(t, csr3File))
	r = e.run(e.cmd("import", "--cert", cert3File)...)
	require.Equal(t, cli.ExitOK, r.code, r)
	r = e.run(e.cmd("status")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	assert.Contains(t, r.stdout, "serial:       "+provider.SerialHex(leaf3))

	// --rotate on an empty path simply creates the first key.
	fresh := "knot/development/fresh-rotate"
	e.watchKV(fresh)
	r = e.run(e.cmd("csr", "--rotate", "--kv-path", fresh)...)
	require.Equal(t, cli.ExitOK, r.code, r)
	assert.Contains(t, r.stderr, "private key created in Vault KV v2 secret/"+fresh+" (version 1), field private_key")
	assert.Contains(t, e.kvData(fresh), "private_key")
	assert.NotContains(t, e.kvData(fresh), "pending_private_key")
}

// TestCLICheckFailures proves check's failure reports: an expired stored
// certificate (exit 6, no request made), a certificate Knot did not issue
// (the handshake is refused: exit 7), an unreachable Knot and a server CA
// that does not verify Knot's certificate (exit 7), each with a hint.
func TestCLICheckFailures(t *testing.T) {
	e := newCLIEnv(t)
	r := e.run(e.cmd("csr")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	csrPEM := []byte(r.stdout)
	path := cli.DefaultKVPath("development", e.clientID)

	// A certificate for the right client_id from another CA (say, another
	// environment's): import does not know Knot's CA unless told.
	otherKnot := knottest.NewTestServer(t)
	foreign, err := otherKnot.SignCSR(csrPEM)
	require.NoError(t, err)
	r = e.runIn(foreign, e.cmd("import", "--cert", "-")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	e.knot.Reset()
	r = e.run(e.checkArgs()...)
	assert.Equal(t, cli.ExitCheckFailed, r.code, r)
	assert.Contains(t, r.stdout, "presented:    client certificate serial")
	assert.Contains(t, r.stdout, "Knot (or a proxy) refused it")
	assert.Empty(t, e.knot.Requests(), "the request never reached HTTP")
	// The server records its side of the failed handshake after sending
	// the alert the client already acted on: wait for it.
	require.Eventually(t, func() bool { return len(e.knot.HandshakeErrors()) > 0 }, 10*time.Second, 5*time.Millisecond,
		"knottest recorded the refused handshake")

	cert, err := e.knot.SignCSR(csrPEM)
	require.NoError(t, err)
	r = e.runIn(cert, e.cmd("import", "--cert", "-")...)
	require.Equal(t, cli.ExitOK, r.code, r)

	t.Run("unreachable Knot", func(t *testing.T) {
		r := e.run(e.cmd("check", "--base-url", "https://127.0.0.1:1", "--ca-file", e.caFile, "--json")...)
		assert.Equal(t, cli.ExitCheckFailed, r.code, r)
		var rep cli.CheckReport
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
		assert.Equal(t, "failed", rep.Result)
		assert.Equal(t, 0, rep.HTTPStatus)
		assert.Contains(t, rep.Problem, "connection refused")
		assert.Contains(t, rep.Hint, "--base-url")
	})
	t.Run("wrong server CA", func(t *testing.T) {
		wrongCA := e.write("wrong-ca.pem", provider.EncodeCertificates([]*x509.Certificate{e.knot.CA()}))
		r := e.run(e.cmd("check", "--base-url", e.knot.URL(), "--ca-file", wrongCA)...)
		assert.Equal(t, cli.ExitCheckFailed, r.code, r)
		assert.Contains(t, r.stdout, "certificate signed by unknown authority")
	})
	t.Run("expired certificate stored", func(t *testing.T) {
		now := time.Now()
		expired, err := e.knot.SignCSRValidity(csrPEM, now.Add(-48*time.Hour), now.Add(-time.Hour))
		require.NoError(t, err)
		data := e.kvData(path)
		data["certificate"] = string(expired)
		_, err = e.root.KVv2("secret").Put(context.Background(), path, data)
		require.NoError(t, err)
		e.knot.Reset()
		r := e.run(e.checkArgs()...)
		assert.Equal(t, cli.ExitExpired, r.code, r)
		assert.Contains(t, r.stdout, "certificate expired")
		assert.Contains(t, r.stdout, "csr --rotate")
		assert.Empty(t, e.knot.Requests())
	})
}

// TestCLILifecycleTransit walks the Transit lifecycle: the key is created
// inside Vault (non-exportable), Vault signs the CSR, the certificate is
// imported from stdin, status and check work with every handshake signed by
// Vault, and a rotation adds a key version that takes over only once its
// certificate is imported.
func TestCLILifecycleTransit(t *testing.T) {
	e := newCLIEnv(t)
	require.NoError(t, e.vault.EnableTransit(context.Background()))
	key := cli.DefaultTransitKey("development", e.clientID)

	r := e.run(e.cmd("csr", "--transit")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	csrPEM := []byte(r.stdout)
	csr := readCSR(t, csrPEM)
	assert.Equal(t, e.clientID, csr.Subject.CommonName)
	assert.Equal(t, x509.SHA256WithRSA, csr.SignatureAlgorithm)
	assert.Contains(t, r.stderr, "inside Vault Transit key transit/keys/"+key+"; it cannot be exported")
	k := e.transitKey(key)
	assert.Equal(t, "rsa-2048", k["type"])
	assert.Equal(t, false, k["exportable"])
	assert.Equal(t, false, k["allow_plaintext_backup"])

	r = e.run(e.cmd("csr", "--transit")...)
	assert.Equal(t, cli.ExitRefused, r.code, r)
	assert.Contains(t, r.stderr, "--rotate")

	r = e.run(e.cmd("status", "--transit")...)
	assert.Equal(t, cli.ExitRefused, r.code, r)
	assert.Contains(t, r.stdout, "knotmtls import --transit")

	certPEM, err := e.knot.SignCSR(csrPEM)
	require.NoError(t, err)
	leaf, err := provider.ParseCertificates(certPEM)
	require.NoError(t, err)
	serial := provider.SerialHex(leaf[0])
	r = e.runIn(certPEM, e.cmd("import", "--transit", "--cert", "-")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	assert.Contains(t, r.stdout, "stored in:  Vault Transit key transit/keys/"+key+" (key version 1)")

	r = e.run(e.cmd("status", "--transit", "--json")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	var rep cli.StatusReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	assert.Equal(t, cli.StoreLocation{Kind: "transit", Mount: "transit", Key: key, KeyVersion: 1}, rep.Store)
	assert.Equal(t, serial, rep.Certificate.Serial)
	assert.Equal(t, cli.ResultOK, rep.Result)

	e.knot.Reset()
	r = e.run(e.checkArgs("--transit")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	assert.Contains(t, r.stdout, "identity:     Vault Transit key transit/keys/"+key+" (key version 1)")
	assert.Contains(t, r.stdout, "presented:    client certificate serial "+serial)
	assert.Equal(t, []string{serial}, e.knot.Serials())

	// Rotation: a new key version; version 1 keeps signing until the import.
	r = e.run(e.cmd("csr", "--transit", "--rotate")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	csr2 := []byte(r.stdout)
	r = e.run(e.cmd("status", "--transit", "--json")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep))
	assert.Equal(t, 1, rep.Store.KeyVersion)
	assert.Equal(t, serial, rep.Certificate.Serial)

	cert2, err := e.knot.SignCSR(csr2)
	require.NoError(t, err)
	leaf2, err := provider.ParseCertificates(cert2)
	require.NoError(t, err)
	r = e.runIn(cert2, e.cmd("import", "--transit", "--cert", "-")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	assert.Contains(t, r.stdout, "(key version 2)")
	e.knot.Reset()
	r = e.run(e.checkArgs("--transit", "--json")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	var crep cli.CheckReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &crep), r.stdout)
	assert.Equal(t, provider.SerialHex(leaf2[0]), crep.Serial)
	assert.Equal(t, 2, crep.Store.KeyVersion)
	assert.Equal(t, false, e.transitKey(key)["exportable"])
}

// TestCLIRefusalsLeaveVaultUnchanged proves that every refused csr or
// import exits with the documented code and a precise reason, and leaves
// the KV secret (current version, update time, every field) or the Transit
// key (versions, certificates) exactly as it was.
func TestCLIRefusalsLeaveVaultUnchanged(t *testing.T) {
	e := newCLIEnv(t)
	path := cli.DefaultKVPath("development", e.clientID)
	r := e.run(e.cmd("csr")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	certFile, _ := e.sign("knot.crt", []byte(r.stdout))
	r = e.run(e.cmd("import", "--cert", certFile)...)
	require.Equal(t, cli.ExitOK, r.code, r)
	csrPEM := []byte(e.run(e.cmd("csr", "--existing")...).stdout)

	other, err := e.knot.IssueClient() // right CN and CA, another key
	require.NoError(t, err)
	wrongCN, err := e.knot.IssueClientCN("someone-else")
	require.NoError(t, err)
	now := time.Now()
	expired, err := e.knot.SignCSRValidity(csrPEM, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	require.NoError(t, err)
	future, err := e.knot.SignCSRValidity(csrPEM, now.Add(24*time.Hour), now.Add(48*time.Hour))
	require.NoError(t, err)
	valid, err := e.knot.SignCSR(csrPEM)
	require.NoError(t, err)
	pasted, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	pastedDER, err := x509.MarshalPKCS8PrivateKey(pasted)
	require.NoError(t, err)
	pastedPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pastedDER})

	cases := []struct {
		name  string
		args  []string
		stdin []byte
		code  int
		want  []string
	}{
		{"csr over an existing key", e.cmd("csr"), nil, cli.ExitRefused,
			[]string{"a private key already exists", "--force", "--rotate"}},
		{"certificate for another key", e.cmd("import", "--cert", "-"), provider.EncodeCertificates(other.Chain), cli.ExitRefused,
			[]string{"private key does not match certificate", "nothing was written", "csr --existing"}},
		{"wrong CN", e.cmd("import", "--cert", "-"), provider.EncodeCertificates(wrongCN.Chain), cli.ExitRefused,
			[]string{"subject CN does not match client_id", `"someone-else"`, `"` + e.clientID + `"`}},
		{"expired", e.cmd("import", "--cert", "-"), expired, cli.ExitExpired,
			[]string{"certificate expired", "csr --rotate"}},
		{"not yet valid", e.cmd("import", "--cert", "-"), future, cli.ExitRefused,
			[]string{"certificate not yet valid"}},
		{"untrusted chain", e.cmd("import", "--cert", "-", "--knot-ca", e.caFile), valid, cli.ExitRefused,
			[]string{"certificate chain not trusted", "--knot-ca"}},
		{"not PEM", e.cmd("import", "--cert", "-"), []byte("hello, this is not a certificate"), cli.ExitRefused,
			[]string{"not PEM data"}},
		{"empty input", e.cmd("import", "--cert", "-"), nil, cli.ExitRefused,
			[]string{"empty input"}},
	}
	before := e.kvSnapshot(path)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.runIn(tc.stdin, tc.args...)
			assert.Equal(t, tc.code, r.code, r)
			for _, w := range tc.want {
				assert.Contains(t, r.stderr, w)
			}
			assert.Empty(t, r.stdout)
			assert.Equal(t, before, e.kvSnapshot(path), "Vault must be unchanged")
		})
	}

	t.Run("private key pasted into import", func(t *testing.T) {
		r := e.exec(pastedPEM, true, e.cmd("import", "--cert", "-")...)
		assert.Equal(t, cli.ExitRefused, r.code, r)
		assert.Contains(t, r.stderr, "expected CERTIFICATE")
		assert.Contains(t, r.stderr, "never paste a private key")
		require.NotEmpty(t, clitest.KeyChunks(string(pastedPEM)))
		require.False(t, clitest.LeaksKey(r.stdout+r.stderr, string(pastedPEM)), "the pasted key is echoed")
		assert.Equal(t, before, e.kvSnapshot(path))
	})

	t.Run("transit", func(t *testing.T) {
		require.NoError(t, e.vault.EnableTransit(context.Background()))
		key := cli.DefaultTransitKey("development", e.clientID)
		r := e.run(e.cmd("csr", "--transit")...)
		require.Equal(t, cli.ExitOK, r.code, r)
		cert, err := e.knot.SignCSR([]byte(r.stdout))
		require.NoError(t, err)
		r = e.runIn(cert, e.cmd("import", "--transit", "--cert", "-")...)
		require.Equal(t, cli.ExitOK, r.code, r)
		keyBefore := e.transitKey(key)

		r = e.runIn(provider.EncodeCertificates(other.Chain), e.cmd("import", "--transit", "--cert", "-")...)
		assert.Equal(t, cli.ExitRefused, r.code, r)
		assert.Contains(t, r.stderr, "not a version of this Transit key")
		r = e.run(e.cmd("csr", "--transit")...)
		assert.Equal(t, cli.ExitRefused, r.code, r)
		assert.Contains(t, r.stderr, "the key exists (latest version 1)")
		r = e.runIn(provider.EncodeCertificates(wrongCN.Chain), e.cmd("import", "--transit", "--cert", "-")...)
		assert.Equal(t, cli.ExitRefused, r.code, r)
		assert.Contains(t, r.stderr, "subject CN does not match client_id")
		assert.Equal(t, keyBefore, e.transitKey(key), "the Transit key must be unchanged")
	})
}

// TestCLIStatusExitCodes proves status's exit codes and JSON results for
// each state a monitoring check must tell apart: ok, expiring within
// --warn, expired, invalid (the certificate is not for this client_id, or
// not for the stored key) and missing; and the default threshold without
// --warn, the last third of the validity at most 30 days, by which a fresh
// 30-day certificate is ok (it was "expiring" under the old fixed 30d).
func TestCLIStatusExitCodes(t *testing.T) {
	e := newCLIEnv(t)
	ctx := context.Background()
	now := time.Now()
	// provision stores a key at a fresh path and returns its path and CSR.
	provision := func(name string) (string, []byte) {
		path := "knot/development/status-" + name
		e.watchKV(path)
		r := e.run(e.cmd("csr", "--kv-path", path)...)
		require.Equal(t, cli.ExitOK, r.code, r)
		return path, []byte(r.stdout)
	}
	// importValidity imports a certificate valid from notBefore to notAfter.
	importValidity := func(path string, csrPEM []byte, notBefore, notAfter time.Time) {
		cert, err := e.knot.SignCSRValidity(csrPEM, notBefore, notAfter)
		require.NoError(t, err)
		r := e.runIn(cert, e.cmd("import", "--kv-path", path, "--cert", "-")...)
		require.Equal(t, cli.ExitOK, r.code, r)
	}
	// storeDirectly writes a certificate into the secret with the root
	// token, as if time had passed or someone had edited it by hand.
	storeDirectly := func(path string, certPEM []byte) {
		data := e.kvData(path)
		data["certificate"] = string(certPEM)
		_, err := e.root.KVv2("secret").Put(ctx, path, data)
		require.NoError(t, err)
	}

	okPath, okCSR := provision("ok")
	importValidity(okPath, okCSR, now.Add(-time.Hour), now.Add(365*24*time.Hour))
	soonPath, soonCSR := provision("soon")
	importValidity(soonPath, soonCSR, now.Add(-time.Hour), now.Add(10*24*time.Hour+time.Hour))
	// A fresh 30-day certificate, and one of 30 days with 5 left.
	freshPath, freshCSR := provision("fresh30")
	importValidity(freshPath, freshCSR, now.Add(-time.Hour), now.Add(30*24*time.Hour-time.Hour))
	latePath, lateCSR := provision("late30")
	importValidity(latePath, lateCSR, now.Add(-25*24*time.Hour), now.Add(5*24*time.Hour))
	expiredPath, expiredCSR := provision("expired")
	expiredCert, err := e.knot.SignCSRValidity(expiredCSR, now.Add(-30*24*time.Hour), now.Add(-24*time.Hour))
	require.NoError(t, err)
	storeDirectly(expiredPath, expiredCert)
	mismatchPath, _ := provision("mismatch")
	other, err := e.knot.IssueClient()
	require.NoError(t, err)
	storeDirectly(mismatchPath, provider.EncodeCertificates(other.Chain))
	missingPath, _ := provision("missing")

	cases := []struct {
		name      string
		args      []string
		code      int
		result    string
		certInfo  bool
		want      string
		warn      string // StatusReport.Warn
		threshold string // StatusReport.WarnThreshold
	}{
		{"ok", e.cmd("status", "--kv-path", okPath), cli.ExitOK, cli.ResultOK, true, "", "auto", "30d"},
		{"ok: a fresh 30-day certificate is not expiring", e.cmd("status", "--kv-path", freshPath), cli.ExitOK, cli.ResultOK, true, "", "auto", "10d"},
		{"ok: 10 days left of 10 are not the last third", e.cmd("status", "--kv-path", soonPath), cli.ExitOK, cli.ResultOK, true, "", "auto", ""},
		{"ok with a short warn", e.cmd("status", "--kv-path", soonPath, "--warn", "5d"), cli.ExitOK, cli.ResultOK, true, "", "5d", "5d"},
		{"expiring in the last third of 30 days", e.cmd("status", "--kv-path", latePath), cli.ExitExpiring, cli.ResultExpiring, true,
			"within its last 10d (the last third of its 30d validity, at most 30d; set --warn to choose)", "auto", "10d"},
		{"expiring within 2w", e.cmd("status", "--kv-path", soonPath, "--warn", "2w"), cli.ExitExpiring, cli.ResultExpiring, true,
			"within --warn 14d, which is not shorter than its whole 10d validity", "14d", "14d"},
		{"expiring: --warn 30d on a fresh 30-day certificate says why", e.cmd("status", "--kv-path", freshPath, "--warn", "30d"), cli.ExitExpiring, cli.ResultExpiring, true,
			"within --warn 30d, which is not shorter than its whole 30d validity: it is expiring from the day it is issued", "30d", "30d"},
		{"expired", e.cmd("status", "--kv-path", expiredPath), cli.ExitExpired, cli.ResultExpired, true, "certificate expired", "auto", ""},
		{"invalid: another client_id", []string{"status", "--client-id", "another-client", "--env", "development", "--kv-path", okPath},
			cli.ExitRefused, cli.ResultInvalid, true, "subject CN does not match client_id", "auto", ""},
		{"invalid: certificate of another key", e.cmd("status", "--kv-path", mismatchPath), cli.ExitRefused, cli.ResultInvalid, false, "private key does not match certificate", "auto", ""},
		{"missing: no certificate yet", e.cmd("status", "--kv-path", missingPath), cli.ExitRefused, cli.ResultMissing, false, "missing field", "auto", ""},
		{"missing: nothing stored", e.cmd("status", "--kv-path", "knot/development/nothing-here"), cli.ExitRefused, cli.ResultMissing, false, "secret not found", "auto", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(tc.args...)
			assert.Equal(t, tc.code, r.code, r)
			assert.Contains(t, r.stdout, "result:       "+tc.result)
			assert.Contains(t, r.stdout, tc.want)
			assert.Empty(t, r.stderr)

			r = e.run(append(tc.args, "--json")...)
			assert.Equal(t, tc.code, r.code, r)
			var rep cli.StatusReport
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
			assert.Equal(t, tc.result, rep.Result)
			assert.Equal(t, tc.code, rep.ExitCode)
			assert.Contains(t, rep.Problem, tc.want)
			assert.Equal(t, tc.certInfo, rep.Certificate != nil)
			assert.Equal(t, tc.warn, rep.Warn)
			if tc.threshold != "" {
				assert.Equal(t, tc.threshold, rep.WarnThreshold)
			}
			if tc.result != cli.ResultOK {
				assert.NotEmpty(t, rep.Hint)
			}
			if tc.result == cli.ResultExpired {
				assert.Negative(t, rep.Certificate.DaysLeft)
			}
		})
	}
}

// TestCLIVaultErrors proves the actionable errors for Vault problems, all
// with exit code 3: a policy that lacks a capability (path and capability
// named, as a policy snippet), a missing mount, a KV v1 mount used as v2,
// a missing Transit mount, a rejected token; and that --token-file works.
func TestCLIVaultErrors(t *testing.T) {
	e := newCLIEnv(t)
	ctx := context.Background()
	path := cli.DefaultKVPath("development", e.clientID)
	require.NoError(t, e.vault.EnableKVv1(ctx, "kv1"))
	r := e.run(e.cmd("csr")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	certFile, _ := e.sign("knot.crt", []byte(r.stdout))

	runtime := e.cliToken("knotmtls-runtime-kv.hcl", "development")
	t.Run("permission denied", func(t *testing.T) {
		t.Setenv("VAULT_TOKEN", runtime)
		before := e.kvSnapshot(path)
		r := e.run(e.cmd("import", "--cert", certFile)...)
		assert.Equal(t, cli.ExitVault, r.code, r)
		assert.Contains(t, r.stderr, "permission denied")
		assert.Contains(t, r.stderr, `path "secret/data/knot/development/`+e.clientID+`" { capabilities = ["update"] }`)
		assert.Equal(t, before, e.kvSnapshot(path))
		r = e.run(e.cmd("status", "--json", "--kv-path", "knot/production/"+e.clientID)...)
		assert.Equal(t, cli.ExitVault, r.code, r)
		var rep cli.StatusReport
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
		assert.Equal(t, cli.ResultError, rep.Result)
		assert.Contains(t, rep.Hint, `"read" on secret/data/knot/production/`+e.clientID)
	})
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"missing KV mount", e.cmd("status", "--kv-mount", "nope"), []string{"mount not found", "vault secrets enable", "--kv-mount"}},
		{"KV v1 mount used as v2", e.cmd("status", "--kv-mount", "kv1"), []string{"mount is not the configured KV version", "--kv-version 1"}},
		{"csr into a KV v1 mount used as v2", e.cmd("csr", "--kv-mount", "kv1"), []string{"mount is not the configured KV version", "--kv-version"}},
		{"missing Transit mount", e.cmd("status", "--transit"), []string{"mount not found", "--transit-mount"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(tc.args...)
			assert.Equal(t, cli.ExitVault, r.code, r)
			for _, w := range tc.want {
				assert.Contains(t, r.stdout+r.stderr, w)
			}
		})
	}
	t.Run("rejected token", func(t *testing.T) {
		t.Setenv("VAULT_TOKEN", "hvs.not-a-valid-token")
		r := e.run(e.cmd("status")...)
		assert.Equal(t, cli.ExitVault, r.code, r)
		assert.Contains(t, r.stdout, "Vault refused the token")
		assert.NotContains(t, r.stdout+r.stderr, "hvs.not-a-valid-token")
	})
	t.Run("token file", func(t *testing.T) {
		t.Setenv("VAULT_TOKEN", "")
		file := e.write("token", []byte(e.vault.Token+"\n"))
		r := e.run(e.cmd("csr", "--existing", "--token-file", file)...)
		assert.Equal(t, cli.ExitOK, r.code, r)
		assert.NotContains(t, r.stdout+r.stderr, e.vault.Token)
	})
	t.Run("KV v1 with --kv-version 1", func(t *testing.T) {
		r := e.run(e.cmd("csr", "--kv-mount", "kv1", "--kv-version", "1")...)
		require.Equal(t, cli.ExitOK, r.code, r)
		cert, err := e.knot.SignCSR([]byte(r.stdout))
		require.NoError(t, err)
		r = e.runIn(cert, e.cmd("import", "--kv-mount", "kv1", "--kv-version", "1", "--cert", "-")...)
		require.Equal(t, cli.ExitOK, r.code, r)
		r = e.run(e.cmd("status", "--kv-mount", "kv1", "--kv-version", "1")...)
		require.Equal(t, cli.ExitOK, r.code, r)
		assert.Contains(t, r.stdout, "Vault KV v1 kv1/"+path+" (version sha256:")
		sec, err := e.root.KVv1("kv1").Get(ctx, path)
		require.NoError(t, err)
		k, _ := sec.Data["private_key"].(string)
		require.NotEmpty(t, k)
		require.False(t, clitest.LeaksKey(r.stdout+r.stderr, k))
	})
}

// TestCLIPolicies proves the example policies in docs/policies are
// sufficient and least-privilege: the provisioning policies allow csr and
// import, the runtime policies allow status and check but not csr or
// import, for KV and for Transit.
func TestCLIPolicies(t *testing.T) {
	e := newCLIEnv(t)
	require.NoError(t, e.vault.EnableTransit(context.Background()))
	tokens := map[string]string{}
	for _, f := range []string{"knotmtls-provision-kv.hcl", "knotmtls-runtime-kv.hcl", "knotmtls-provision-transit.hcl", "knotmtls-runtime-transit.hcl"} {
		tokens[f] = e.cliToken(f, "development")
	}
	for _, mode := range []struct {
		name  string
		flags []string
		pol   string
	}{
		{"kv", nil, "kv"},
		{"transit", []string{"--transit"}, "transit"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Setenv("VAULT_TOKEN", tokens["knotmtls-provision-"+mode.pol+".hcl"])
			r := e.run(e.cmd("csr", mode.flags...)...)
			require.Equal(t, cli.ExitOK, r.code, r)
			cert, err := e.knot.SignCSR([]byte(r.stdout))
			require.NoError(t, err)
			r = e.runIn(cert, e.cmd("import", append(mode.flags, "--cert", "-")...)...)
			require.Equal(t, cli.ExitOK, r.code, r)
			r = e.run(e.cmd("csr", append(mode.flags, "--rotate")...)...)
			require.Equal(t, cli.ExitOK, r.code, "rotation needs only the provisioning policy: %s", r)
			csr2 := []byte(r.stdout)
			cert2, err := e.knot.SignCSR(csr2)
			require.NoError(t, err)
			r = e.runIn(cert2, e.cmd("import", append(mode.flags, "--cert", "-")...)...)
			require.Equal(t, cli.ExitOK, r.code, r)
			// A new certificate for the current key (a new serial): its
			// import needs a write, whether or not re-importing a stored
			// certificate does.
			cert3, err := e.knot.SignCSR(csr2)
			require.NoError(t, err)

			t.Setenv("VAULT_TOKEN", tokens["knotmtls-runtime-"+mode.pol+".hcl"])
			r = e.run(e.cmd("status", mode.flags...)...)
			require.Equal(t, cli.ExitOK, r.code, r)
			r = e.run(e.checkArgs(mode.flags...)...)
			require.Equal(t, cli.ExitOK, r.code, r)
			r = e.run(e.cmd("csr", append(mode.flags, "--rotate")...)...)
			assert.Equal(t, cli.ExitVault, r.code, r)
			assert.Contains(t, r.stderr, "permission denied")
			r = e.runIn(cert3, e.cmd("import", append(mode.flags, "--cert", "-")...)...)
			assert.Equal(t, cli.ExitVault, r.code, r)
			assert.Contains(t, r.stderr, "permission denied")
		})
	}
}

func readFileT(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	require.NoError(t, err)
	return b
}

// TestCLINoGoroutineLeak proves a run of every command leaves no goroutine
// behind (Vault login loop, provider, Knot and Vault connections), so the
// demo and tests can call cli.Run many times in one process.
func TestCLINoGoroutineLeak(t *testing.T) {
	e := newCLIEnv(t)
	require.NoError(t, e.vault.EnableTransit(context.Background()))
	before := goleak.IgnoreCurrent()
	for _, mode := range [][]string{nil, {"--transit"}} {
		r := e.run(e.cmd("csr", mode...)...)
		require.Equal(t, cli.ExitOK, r.code, r)
		cert, err := e.knot.SignCSR([]byte(r.stdout))
		require.NoError(t, err)
		r = e.runIn(cert, e.cmd("import", append(mode, "--cert", "-")...)...)
		require.Equal(t, cli.ExitOK, r.code, r)
		r = e.run(e.cmd("status", mode...)...)
		require.Equal(t, cli.ExitOK, r.code, r)
		r = e.run(e.checkArgs(mode...)...)
		require.Equal(t, cli.ExitOK, r.code, r)
	}
	goleak.VerifyNone(t, before)
}

package integration_test

import (
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/internal/cli"
	"github.com/knotmtls/knotmtls/provider"
)

// TestCLIInterruptFinishesVaultWrite proves, against a real Vault behind a
// proxy that holds one request, what Ctrl-C does to the commands that
// write: interrupted while the write is in flight, csr and import let it
// finish, exit 1, and say what is now stored, which Vault confirms;
// interrupted before the write, csr exits 1 and Vault is unchanged.
func TestCLIInterruptFinishesVaultWrite(t *testing.T) {
	e := newCLIEnv(t)
	path := cli.DefaultKVPath("development", e.clientID)
	isWrite := func(r *http.Request) bool {
		return (r.Method == http.MethodPut || r.Method == http.MethodPost) && r.URL.Path == "/v1/secret/data/"+path
	}
	var csrPEM []byte
	t.Run("csr interrupted during the key write", func(t *testing.T) {
		p := e.holdingProxy(isWrite)
		t.Setenv("VAULT_ADDR", p.URL)
		out := filepath.Join(e.dir, "interrupted.csr")
		run := e.start(nil, e.cmd("csr", "--out", out)...)
		p.waitHeld(t, run)
		run.Interrupt()
		p.Release()
		r := e.wait(run)
		require.Equal(t, cli.ExitError, r.code, r)
		assert.True(t, strings.HasPrefix(r.stderr, "knotmtls: interrupted: finishing storing the key in Vault first (within --timeout); Ctrl-C again ends at once"), r.stderr)
		assert.Contains(t, r.stderr, `knotmtls csr: cli: interrupted (Ctrl-C or SIGTERM): the new key is stored in Vault KV v2 secret/`+path+
			` (version 1), but no CSR was written: print it with "knotmtls csr --existing"`)
		assert.Empty(t, r.stdout)
		assert.NoFileExists(t, out)

		// What the message says is what Vault holds.
		key, err := provider.ParsePrivateKey([]byte(e.kvData(path)["private_key"].(string)))
		require.NoError(t, err)
		r = e.run(e.cmd("csr", "--existing")...)
		require.Equal(t, cli.ExitOK, r.code, r)
		csrPEM = []byte(r.stdout)
		assert.True(t, readCSR(t, csrPEM).PublicKey.(*rsa.PublicKey).Equal(key.Public()),
			"csr --existing prints the CSR of the key the interrupted run stored")
	})
	t.Run("import interrupted during the certificate write", func(t *testing.T) {
		require.NotNil(t, csrPEM)
		certFile, cert := e.sign("interrupted.crt", csrPEM)
		p := e.holdingProxy(isWrite)
		t.Setenv("VAULT_ADDR", p.URL)
		run := e.start(nil, e.cmd("import", "--cert", certFile)...)
		p.waitHeld(t, run)
		run.Interrupt()
		p.Release()
		r := e.wait(run)
		require.Equal(t, cli.ExitError, r.code, r)
		assert.True(t, strings.HasPrefix(r.stderr, "knotmtls: interrupted: finishing storing the certificate in Vault first"), r.stderr)
		assert.Contains(t, r.stderr, "interrupted (Ctrl-C or SIGTERM): the import is complete: the certificate is stored in Vault KV v2 secret/"+path+" (version 2)")
		stored, err := provider.ParseCertificates([]byte(e.kvData(path)["certificate"].(string)))
		require.NoError(t, err)
		assert.True(t, stored[0].Equal(cert), "Vault holds the certificate the message says")
	})
	t.Run("csr --rotate interrupted before the write", func(t *testing.T) {
		before := e.kvSnapshot(path)
		// csr --rotate first asks whether anything is stored (a metadata
		// read); hold that read, so the interrupt comes before any write.
		p := e.holdingProxy(func(r *http.Request) bool {
			return r.Method == http.MethodGet && r.URL.Path == "/v1/secret/metadata/"+path
		})
		t.Setenv("VAULT_ADDR", p.URL)
		run := e.start(nil, e.cmd("csr", "--rotate")...)
		p.waitHeld(t, run)
		run.Interrupt()
		r := e.wait(run)
		require.Equal(t, cli.ExitError, r.code, r)
		assert.Contains(t, r.stderr, "interrupted (Ctrl-C or SIGTERM): nothing was changed: no key was stored in Vault and no CSR was written")
		assert.NotContains(t, r.stderr, "finishing", "no write had begun")
		assert.Empty(t, r.stdout)
		assert.NotContains(t, r.stderr, "hint:")
		assert.Equal(t, before, e.kvSnapshot(path), "Vault is unchanged")
	})
}

// TestCLIInterruptDuringCheck proves Ctrl-C while check waits on Knot exits
// 1 (it exited 7, "the mTLS request failed") and the report says it was
// interrupted and changed nothing.
func TestCLIInterruptDuringCheck(t *testing.T) {
	e := newCLIEnv(t)
	r := e.run(e.cmd("csr")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	certFile, _ := e.sign("knot.crt", []byte(r.stdout))
	r = e.run(e.cmd("import", "--cert", certFile)...)
	require.Equal(t, cli.ExitOK, r.code, r)

	addr, accepted := hangingListener(t)
	for _, extra := range [][]string{nil, {"--json"}} {
		run := e.start(nil, e.cmd("check", append([]string{"--base-url", "https://" + addr, "--ca-file", e.caFile}, extra...)...)...)
		select {
		case <-accepted:
		case <-t.Context().Done():
			t.Fatal("check never connected to Knot")
		}
		run.Interrupt()
		r := e.wait(run)
		require.Equal(t, cli.ExitError, r.code, r)
		if extra == nil {
			assert.Contains(t, r.stdout, "result:       interrupted (exit 1)")
			assert.Contains(t, r.stdout, "nothing was changed (check only reads Vault and makes one read-only request to Knot)")
			continue
		}
		var rep cli.CheckReport
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
		assert.Equal(t, cli.ResultInterrupted, rep.Result)
		assert.Equal(t, cli.ExitError, rep.ExitCode)
	}
}

// TestCLISchemeMismatch proves an https:// address pointed at a Vault that
// serves plain HTTP (the dev server) gets its own hint, not "Vault refused
// the token". The reverse (http:// at an HTTPS Vault) is pinned by the
// unit test TestSchemeMismatchHint against a Go TLS listener, which is
// what Vault's listener is.
func TestCLISchemeMismatch(t *testing.T) {
	e := newCLIEnv(t)
	t.Setenv("VAULT_ADDR", strings.Replace(e.vault.Addr, "http://", "https://", 1))
	t.Setenv("VAULT_MAX_RETRIES", "0")
	r := e.run(e.cmd("csr")...)
	assert.Equal(t, cli.ExitVault, r.code, r)
	assert.Contains(t, r.stderr, "hint: Vault answers plain HTTP but the address is https://: use http:// in VAULT_ADDR (or --vault-addr)")
	assert.NotContains(t, r.stderr, "refused the token")
	r = e.run(e.cmd("status", "--json")...)
	assert.Equal(t, cli.ExitVault, r.code, r)
	var rep cli.StatusReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	assert.Contains(t, rep.Hint, "Vault answers plain HTTP")
}

// TestCLIFlagConflictsChangeNothing proves flags that exclude each other
// or do not apply exit 2 before any request: Vault is unchanged.
func TestCLIFlagConflictsChangeNothing(t *testing.T) {
	e := newCLIEnv(t)
	path := cli.DefaultKVPath("development", e.clientID)
	r := e.run(e.cmd("csr")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	before := e.kvSnapshot(path)
	cases := []struct {
		args []string
		want string
	}{
		{e.cmd("csr", "--rotate", "--force"), "--rotate and --force cannot be used together"},
		{e.cmd("csr", "--force", "--existing"), "--existing and --force cannot be used together"},
		{e.cmd("csr", "--transit-key", "other"), "--transit-key applies only with --transit"},
		{e.cmd("csr", "--force", "--approle-role-id", "r"), "--approle-role-id applies only with --auth approle"},
	}
	for _, tc := range cases {
		r := e.run(tc.args...)
		assert.Equal(t, cli.ExitUsage, r.code, r)
		assert.Contains(t, r.stderr, tc.want)
		assert.Empty(t, r.stdout)
	}
	assert.Equal(t, before, e.kvSnapshot(path), "Vault is unchanged")
}

// TestCLISkipVerifyWarns proves VAULT_SKIP_VERIFY prints one warning line
// on stderr and leaves the command working (here against the dev Vault)
// and its --json output parseable.
func TestCLISkipVerifyWarns(t *testing.T) {
	e := newCLIEnv(t)
	r := e.run(e.cmd("csr")...)
	require.Equal(t, cli.ExitOK, r.code, r)
	t.Setenv("VAULT_SKIP_VERIFY", "true")
	r = e.run(e.cmd("status", "--json")...)
	assert.Equal(t, cli.ExitRefused, r.code, r) // no certificate yet
	var rep cli.StatusReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	assert.Equal(t, cli.ResultMissing, rep.Result)
	assert.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
	assert.True(t, strings.HasPrefix(r.stderr, "knotmtls: warning: VAULT_SKIP_VERIFY is set: Vault's TLS certificate is NOT verified"), r.stderr)
}

package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/knotmtls/knotmtls/internal/cli"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := cli.Run(ctx, args, strings.NewReader(""), &out, &errOut)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

var commandNames = []string{"csr", "import", "status", "check"}

// TestHelp proves every way of asking for help prints it on stdout and
// exits 0, that each command's help lists its own flags with two dashes and
// the documented exit codes.
func TestHelp(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"help"}, []string{"Commands:", "csr", "import", "status", "check", "Exit codes:"}},
		{[]string{"--help"}, []string{"Commands:", "Lifecycle:"}},
		{[]string{"-h"}, []string{"Commands:"}},
		{[]string{"csr", "--help"}, []string{"Usage: knotmtls csr", "--force", "--rotate", "--existing", "--out file", "--transit", "--client-id", "--vault-addr", "--auth method"}},
		{[]string{"help", "csr"}, []string{"Usage: knotmtls csr"}},
		{[]string{"import", "-h"}, []string{"Usage: knotmtls import", "--cert", "--chain file", "--knot-ca file", "nothing in Vault is changed"}},
		{[]string{"status", "--help"}, []string{"Usage: knotmtls status", "--warn duration", "default: the last third of its validity, at most 30d", "--json", "warn_threshold", "1 when interrupted"}},
		{[]string{"check", "--help"}, []string{"Usage: knotmtls check", "--base-url", "--ca-file", "--secret-env", "(default \"KNOT_SECRET\")", "--secret-kv", "TLS version"}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := run(t, tc.args...)
			require.Equal(t, cli.ExitOK, r.code, r.stderr)
			assert.Empty(t, r.stderr)
			for _, w := range tc.want {
				assert.Contains(t, r.stdout, w)
			}
			assert.Contains(t, r.stdout, "Exit codes:")
		})
	}
}

// TestHelpDocumentsExitCodes proves the exit-code table in the help text
// matches the Exit constants.
func TestHelpDocumentsExitCodes(t *testing.T) {
	want := map[int]string{
		cli.ExitOK: "ok", cli.ExitError: "other error", cli.ExitUsage: "usage", cli.ExitVault: "Vault",
		cli.ExitRefused: "refused or invalid", cli.ExitExpiring: "within --warn", cli.ExitExpired: "expired",
		cli.ExitCheckFailed: "check",
	}
	line := regexp.MustCompile(`(?m)^  (\d)  (.*)$`)
	for _, name := range append([]string{""}, commandNames...) {
		args := []string{"help"}
		if name != "" {
			args = append(args, name)
		}
		r := run(t, args...)
		require.Equal(t, cli.ExitOK, r.code)
		got := map[int]string{}
		for _, m := range line.FindAllStringSubmatch(r.stdout[strings.Index(r.stdout, "Exit codes:"):], -1) {
			n, err := strconv.Atoi(m[1])
			require.NoError(t, err)
			got[n] = m[2]
		}
		require.Len(t, got, len(want), "help %q", name)
		for code, text := range want {
			assert.Contains(t, got[code], text, "help %q exit code %d", name, code)
		}
	}
}

// TestUsageErrors proves bad command lines exit 2 with a precise message
// on stderr, before any Vault request, and print nothing on stdout.
func TestUsageErrors(t *testing.T) {
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1") // never reached: usage errors come first
	t.Setenv("VAULT_TOKEN", "unused")
	t.Setenv("KNOT_SECRET", "")
	id := []string{"--client-id", "acme", "--env", "development"}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no arguments", nil, "Commands:"},
		{"unknown command", []string{"rotate"}, `unknown command "rotate"`},
		{"help for unknown command", []string{"help", "rotate"}, `unknown command "rotate"`},
		{"unknown flag", []string{"status", "--frobnicate"}, "flag provided but not defined: -frobnicate"},
		{"missing client id", []string{"status", "--env", "development"}, "--client-id is required"},
		{"missing env", []string{"csr", "--client-id", "acme"}, "--env is required"},
		{"bad env", []string{"status", "--client-id", "acme", "--env", "staging"}, `--env "staging": want development or production`},
		{"client id with slash", []string{"status", "--client-id", "a/b", "--env", "production"}, "contains whitespace"},
		{"bad kv version", append([]string{"status", "--kv-version", "3"}, id...), "--kv-version 3: want 1 or 2"},
		{"negative key version", append([]string{"status", "--transit", "--key-version", "-1"}, id...), "--key-version must not be negative"},
		{"positional argument", append([]string{"status", "extra"}, id...), `unexpected argument "extra"`},
		{"positional after flags", append(append([]string{"status"}, id...), "extra"), `unexpected argument "extra"`},
		{"bad warn", append([]string{"status", "--warn", "soon"}, id...), `invalid duration "soon"`},
		{"negative warn", append([]string{"status", "--warn", "-3d"}, id...), `invalid duration "-3d"`},
		{"bad timeout", append([]string{"status", "--timeout", "0s"}, id...), "--timeout must be positive"},
		{"existing with force", append([]string{"csr", "--existing", "--force"}, id...), "--existing prints the CSR of the stored key"},
		{"bad auth", append([]string{"status", "--auth", "ldap"}, id...), `--auth "ldap": want token, approle or kubernetes`},
		{"approle without role id", append([]string{"status", "--auth", "approle", "--approle-secret-id-file", "/nonexistent"}, id...), "--approle-role-id"},
		{"approle without secret id file", append([]string{"status", "--auth", "approle", "--approle-role-id", "r"}, id...), "--approle-secret-id-file"},
		{"kubernetes without role", append([]string{"status", "--auth", "kubernetes"}, id...), "--k8s-role"},
		{"import without cert", append([]string{"import"}, id...), "--cert is required"},
		{"check over http", append([]string{"check", "--base-url", "http://knot.example"}, id...), "https only"},
		{"check over http with credentials", append([]string{"check", "--base-url", "http://u:hunter2@knot.example"}, id...), "https only"},
		{"check with credentials in the URL", append([]string{"check", "--base-url", "https://u:hunter2@knot.example"}, id...), "must not carry user info"},
		{"check with a query in the URL", append([]string{"check", "--base-url", "https://knot.example/?token=hunter2"}, id...), "must not carry a query or a fragment"},
		{"check without secret", append([]string{"check"}, id...), "KNOT_SECRET (--secret-env) is empty"},
		{"check with no secret source", append([]string{"check", "--secret-env", ""}, id...), "--secret-env VAR or --secret-kv PATH"},
		{"ca file from stdin", append([]string{"status", "--knot-ca", "-"}, id...), "cannot be read from stdin"},
		{"client id with colon", []string{"status", "--client-id", "a:b", "--env", "production"}, `'/' or ':'`},
		// Flags that exclude each other.
		{"rotate with force", append([]string{"csr", "--rotate", "--force"}, id...), "--rotate and --force cannot be used together"},
		{"existing with rotate", append([]string{"csr", "--existing", "--rotate"}, id...), "--existing and --rotate cannot be used together"},
		{"secret env with secret kv", append([]string{"check", "--secret-env", "S", "--secret-kv", "knot/api"}, id...), "--secret-env and --secret-kv cannot be used together"},
		// Flags that would be ignored.
		{"kv path with transit", append([]string{"status", "--transit", "--kv-path", "knot/x"}, id...), "--kv-path applies only without --transit"},
		{"kv mount with transit", append([]string{"import", "--transit", "--kv-mount", "kv", "--cert", "-"}, id...), "--kv-mount applies only without --transit"},
		{"transit key without transit", append([]string{"csr", "--transit-key", "k"}, id...), "--transit-key applies only with --transit"},
		{"key version without transit", append([]string{"status", "--key-version", "2"}, id...), "--key-version applies only with --transit"},
		{"token file with approle", append([]string{"status", "--auth", "approle", "--approle-role-id", "r", "--approle-secret-id-file", "/f", "--token-file", "/t"}, id...), "--token-file applies only with --auth token"},
		{"approle flag with token auth", append([]string{"status", "--approle-role-id", "r"}, id...), "--approle-role-id applies only with --auth approle"},
		{"k8s flag with approle", append([]string{"status", "--auth", "approle", "--k8s-role", "r"}, id...), "--k8s-role applies only with --auth kubernetes"},
		{"secret field without secret kv", append([]string{"check", "--secret-field", "f"}, id...), "--secret-field applies only with --secret-kv"},
		{"kv path with transit in check", append([]string{"check", "--transit", "--secret-kv", "knot/api", "--kv-path", "p"}, id...), "--kv-path applies only without --transit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("VAULT_ROLE_ID", "")
			r := run(t, tc.args...)
			assert.Equal(t, cli.ExitUsage, r.code, "stderr: %s", r.stderr)
			assert.Contains(t, r.stderr, tc.want)
			assert.NotContains(t, r.stderr, "hunter2", "credentials in a flag are never echoed")
			assert.Empty(t, r.stdout)
		})
	}
}

// TestVersion proves the version command prints the module version.
func TestVersion(t *testing.T) {
	r := run(t, "version")
	require.Equal(t, cli.ExitOK, r.code)
	assert.Equal(t, "knotmtls "+cli.Version()+"\n", r.stdout)
}

// TestExitCodeOf proves the mapping from the library's typed errors to the
// documented exit codes, including errors wrapped the way vaultsource and
// provider wrap them.
func TestExitCodeOf(t *testing.T) {
	ve := func(sentinel error) error {
		return &vaultsource.Error{Op: "read", Path: "secret/data/knot/x", Err: sentinel}
	}
	check := func(sentinel error) error { return &provider.CheckError{Err: sentinel, Detail: "d"} }
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, cli.ExitOK},
		{"plain error", errors.New("boom"), cli.ExitError},
		{"unavailable", ve(vaultsource.ErrUnavailable), cli.ExitVault},
		{"permission denied", ve(vaultsource.ErrPermissionDenied), cli.ExitVault},
		{"mount not found", ve(vaultsource.ErrMountNotFound), cli.ExitVault},
		{"wrong kv version", ve(vaultsource.ErrWrongKVVersion), cli.ExitVault},
		{"rejected", ve(vaultsource.ErrRejected), cli.ExitVault},
		{"bad signature from vault", ve(vaultsource.ErrBadSignature), cli.ExitVault},
		{"invalid argument", ve(vaultsource.ErrInvalidArgument), cli.ExitUsage},
		{"secret not found", ve(vaultsource.ErrSecretNotFound), cli.ExitRefused},
		{"missing field", ve(vaultsource.ErrMissingField), cli.ExitRefused},
		{"key exists", ve(vaultsource.ErrKeyExists), cli.ExitRefused},
		{"conflict", ve(vaultsource.ErrConflict), cli.ExitRefused},
		{"no certificate chain", ve(vaultsource.ErrNoCertificateChain), cli.ExitRefused},
		{"key not found", ve(vaultsource.ErrKeyNotFound), cli.ExitRefused},
		{"exportable key", ve(vaultsource.ErrKeyExportable), cli.ExitRefused},
		{"key mismatch", ve(check(provider.ErrKeyMismatch)), cli.ExitRefused},
		{"wrong cn", ve(check(provider.ErrSubjectCN)), cli.ExitRefused},
		{"bare check error", check(provider.ErrKeySize), cli.ExitRefused},
		{"not yet valid", check(provider.ErrNotYetValid), cli.ExitRefused},
		{"expired", ve(check(provider.ErrExpired)), cli.ExitExpired},
		{"expired via provider", fmt.Errorf("%w: %w", provider.ErrNoValidBundle, check(provider.ErrExpired)), cli.ExitExpired},
		{"unavailable via provider", fmt.Errorf("%w: %w", provider.ErrNoValidBundle, ve(vaultsource.ErrUnavailable)), cli.ExitVault},
		{"timeout wrapped as unavailable", &vaultsource.Error{Err: vaultsource.ErrUnavailable, Cause: context.DeadlineExceeded}, cli.ExitVault},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, cli.ExitCodeOf(tc.err))
		})
	}
}

// TestHint proves the hints name what to fix: the Vault path and the
// capability (as a policy snippet), the mount flag, the KV version flag,
// the csr flags, the client_id.
func TestHint(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want []string
	}{
		{"permission denied", &vaultsource.Error{Op: "write", Path: "secret/data/knot/development/acme", Capability: "create", Err: vaultsource.ErrPermissionDenied},
			[]string{`"create"`, `path "secret/data/knot/development/acme" { capabilities = ["create"] }`, "docs/policies/"}},
		{"unreachable", &vaultsource.Error{Err: vaultsource.ErrUnavailable}, []string{"VAULT_ADDR", "--vault-addr", "unsealed"}},
		{"mount", &vaultsource.Error{Path: "kv", Err: vaultsource.ErrMountNotFound}, []string{"vault secrets enable", "--kv-mount", "--transit-mount"}},
		{"kv version", &vaultsource.Error{Err: vaultsource.ErrWrongKVVersion}, []string{"--kv-version 1 or 2"}},
		{"key exists", &vaultsource.Error{Err: vaultsource.ErrKeyExists}, []string{"--existing", "--rotate", "--force"}},
		{"no certificate yet", &vaultsource.Error{Field: "certificate", Err: vaultsource.ErrMissingField}, []string{"knotmtls import"}},
		{"transit no certificate", &vaultsource.Error{Err: vaultsource.ErrNoCertificateChain}, []string{"knotmtls import --transit"}},
		{"nothing stored", &vaultsource.Error{Err: vaultsource.ErrSecretNotFound}, []string{"knotmtls csr", "--client-id", "--env"}},
		{"wrong cn", &provider.CheckError{Err: provider.ErrSubjectCN}, []string{"--client-id"}},
		{"key mismatch", &provider.CheckError{Err: provider.ErrKeyMismatch}, []string{"csr --existing"}},
		{"expired", &provider.CheckError{Err: provider.ErrExpired}, []string{"csr --rotate"}},
		{"key pasted", &provider.CheckError{Err: provider.ErrUnexpectedPEMType}, []string{"never paste a private key"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := cli.Hint(tc.err)
			for _, w := range tc.want {
				assert.Contains(t, h, w)
			}
		})
	}
	assert.Empty(t, cli.Hint(errors.New("something else")))
}

func TestParseDays(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"30d", 30 * 24 * time.Hour, false},
		{"1.5d", 36 * time.Hour, false},
		{"2w", 14 * 24 * time.Hour, false},
		{"720h", 720 * time.Hour, false},
		{"90m", 90 * time.Minute, false},
		{"0d", 0, false},
		{" 7d ", 7 * 24 * time.Hour, false},
		{"", 0, true},
		{"d", 0, true},
		{"-1d", 0, true},
		{"-5h", 0, true},
		{"thirty", 0, true},
		{"99999d", 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := cli.ParseDays(tc.in)
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestDefaultLocations(t *testing.T) {
	assert.Equal(t, "knot/production/6d2f", cli.DefaultKVPath("production", "6d2f"))
	assert.Equal(t, "knot-development-6d2f", cli.DefaultTransitKey("development", "6d2f"))
}

// closedAddr returns an http address on which nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return "http://" + addr
}

// TestVaultUnreachable proves every command reports an unreachable Vault
// with exit code 3 and a hint naming VAULT_ADDR, and that status --json
// still prints a report that parses into StatusReport.
func TestVaultUnreachable(t *testing.T) {
	t.Setenv("VAULT_ADDR", closedAddr(t))
	t.Setenv("VAULT_TOKEN", "s.not-used")
	t.Setenv("VAULT_MAX_RETRIES", "0")
	t.Setenv("KNOT_SECRET", "secret")
	id := []string{"--client-id", "acme", "--env", "development"}
	for _, args := range [][]string{
		append([]string{"csr"}, id...),
		append([]string{"import", "--cert", "-"}, id...),
		append([]string{"status"}, id...),
		append([]string{"check"}, id...),
	} {
		t.Run(args[0], func(t *testing.T) {
			r := run(t, args...)
			assert.Equal(t, cli.ExitVault, r.code)
			assert.Contains(t, r.stdout+r.stderr, "cannot reach Vault at http://127.0.0.1:")
			assert.Contains(t, r.stdout+r.stderr, "VAULT_ADDR")
		})
	}
	t.Run("status --json", func(t *testing.T) {
		r := run(t, append([]string{"status", "--json"}, id...)...)
		require.Equal(t, cli.ExitVault, r.code)
		var rep cli.StatusReport
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
		assert.Equal(t, cli.ResultError, rep.Result)
		assert.Equal(t, cli.ExitVault, rep.ExitCode)
		assert.Equal(t, "acme", rep.ClientID)
		assert.Equal(t, "kv", rep.Store.Kind)
		assert.Equal(t, "knot/development/acme", rep.Store.Path)
		assert.Equal(t, "auto", rep.Warn)
		assert.Empty(t, rep.WarnThreshold, "no certificate was read")
		assert.Nil(t, rep.Certificate)
		assert.Contains(t, rep.Hint, "VAULT_ADDR")
	})
	t.Run("--vault-addr overrides VAULT_ADDR", func(t *testing.T) {
		other := closedAddr(t)
		r := run(t, append([]string{"status", "--vault-addr", other}, id...)...)
		assert.Equal(t, cli.ExitVault, r.code)
		assert.Contains(t, r.stdout, "cannot reach Vault at "+other)
	})
}

// TestNoVaultToken proves a missing token is reported as a Vault problem
// (exit 3) with the ways to provide one, without any request.
func TestNoVaultToken(t *testing.T) {
	t.Setenv("VAULT_ADDR", closedAddr(t))
	t.Setenv("VAULT_TOKEN", "")
	t.Setenv("HOME", t.TempDir()) // no ~/.vault-token
	r := run(t, "csr", "--client-id", "acme", "--env", "production")
	assert.Equal(t, cli.ExitVault, r.code)
	assert.Contains(t, r.stderr, "no Vault token: set VAULT_TOKEN, pass --token-file")
	assert.Empty(t, r.stdout)
}

// TestMissingInputFile proves an unreadable --cert is an input error
// (exit 1), reported before Vault is contacted.
func TestMissingInputFile(t *testing.T) {
	t.Setenv("VAULT_ADDR", closedAddr(t))
	t.Setenv("VAULT_TOKEN", "unused")
	r := run(t, "import", "--client-id", "acme", "--env", "production", "--cert", t.TempDir()+"/missing.crt")
	assert.Equal(t, cli.ExitError, r.code)
	assert.Contains(t, r.stderr, "missing.crt")
}

func TestStoreLocationString(t *testing.T) {
	assert.Equal(t, "Vault KV v2 secret/knot/production/acme (version 7)",
		cli.StoreLocation{Kind: "kv", Mount: "secret", Path: "knot/production/acme", KVVersion: 2, Version: "7"}.String())
	assert.Equal(t, "Vault Transit key transit/keys/knot-production-acme (key version 2)",
		cli.StoreLocation{Kind: "transit", Mount: "transit", Key: "knot-production-acme", KeyVersion: 2}.String())
}

package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/knotmtls/knotmtls/internal/cli"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// hangingServer accepts connections and never answers: a Vault (or Knot)
// that is stuck. accepted receives one value per accepted connection.
type hangingServer struct {
	addr     string
	accepted chan struct{}
}

func newHangingServer(t *testing.T) *hangingServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h := &hangingServer{addr: ln.Addr().String(), accepted: make(chan struct{}, 64)}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			h.accepted <- struct{}{}
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return h
}

// runInterrupted runs args and cancels the run's context, as Ctrl-C does
// in main, once the command has connected to the hanging server.
func runInterrupted(t *testing.T, h *hangingServer, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- cli.Run(ctx, args, strings.NewReader(""), &out, &errOut) }()
	select {
	case <-h.accepted:
	case code := <-done:
		t.Fatalf("the command ended (exit %d) before it reached the server:\n%s%s", code, out.String(), errOut.String())
	case <-time.After(20 * time.Second):
		t.Fatal("the command did not connect to the server")
	}
	cancel() // Ctrl-C
	select {
	case code := <-done:
		return result{code: code, stdout: out.String(), stderr: errOut.String()}
	case <-time.After(20 * time.Second):
		t.Fatal("the command did not stop after the interrupt")
		return result{}
	}
}

// TestInterruptExitsOne: Ctrl-C (the caller's context cancelled) while a
// command waits on Vault exits 1 in every command, and the output says it
// was interrupted and that nothing was changed; csr --out leaves no file.
// Before, csr exited 3 with a hint about the --auth flags.
func TestInterruptExitsOne(t *testing.T) {
	h := newHangingServer(t)
	t.Setenv("VAULT_ADDR", "http://"+h.addr)
	t.Setenv("VAULT_TOKEN", "s.unused")
	t.Setenv("VAULT_MAX_RETRIES", "0")
	t.Setenv("KNOT_SECRET", "secret")
	out := filepath.Join(t.TempDir(), "knot.csr")
	id := []string{"--client-id", "acme", "--env", "development"}
	cases := []struct {
		args []string
		want string
	}{
		{append([]string{"csr", "--out", out}, id...), "nothing was changed: no key was stored in Vault and no CSR was written"},
		{append([]string{"csr", "--rotate", "--transit"}, id...), "nothing was changed: no key was stored in Vault"},
		{append([]string{"import", "--cert", "-"}, id...), "nothing was changed: no certificate was stored in Vault"},
		{append([]string{"status"}, id...), "nothing was changed (status only reads)"},
		{append([]string{"check"}, id...), "nothing was changed (check only reads"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args[:2], " "), func(t *testing.T) {
			r := runInterrupted(t, h, tc.args...)
			require.Equal(t, cli.ExitError, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			text := r.stdout + r.stderr
			assert.Contains(t, text, "interrupted (Ctrl-C or SIGTERM)")
			assert.Contains(t, text, tc.want)
			assert.NotContains(t, text, "hint:", "an interrupt needs no hint: the outcome is stated")
			assert.NotContains(t, text, "--auth")
			assert.NoFileExists(t, out)
		})
	}
	t.Run("status --json", func(t *testing.T) {
		r := runInterrupted(t, h, append([]string{"status", "--json"}, id...)...)
		require.Equal(t, cli.ExitError, r.code, r.stderr)
		var rep cli.StatusReport
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
		assert.Equal(t, cli.ResultInterrupted, rep.Result)
		assert.Equal(t, cli.ExitError, rep.ExitCode)
		assert.Contains(t, rep.Problem, "nothing was changed")
	})
	t.Run("check --json", func(t *testing.T) {
		r := runInterrupted(t, h, append([]string{"check", "--json"}, id...)...)
		require.Equal(t, cli.ExitError, r.code, r.stderr)
		var rep cli.CheckReport
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
		assert.Equal(t, cli.ResultInterrupted, rep.Result)
		assert.Equal(t, cli.ExitError, rep.ExitCode)
	})
}

// TestInterruptBeforeStart: a run whose context is already cancelled
// exits 1 without a request, in every command.
func TestInterruptBeforeStart(t *testing.T) {
	h := newHangingServer(t)
	t.Setenv("VAULT_ADDR", "http://"+h.addr)
	t.Setenv("VAULT_TOKEN", "s.unused")
	t.Setenv("KNOT_SECRET", "secret")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, name := range commandNames {
		t.Run(name, func(t *testing.T) {
			args := []string{name, "--client-id", "acme", "--env", "development"}
			if name == "import" {
				args = append(args, "--cert", "-")
			}
			var out, errOut bytes.Buffer
			code := cli.Run(ctx, args, strings.NewReader(""), &out, &errOut)
			assert.Equal(t, cli.ExitError, code, errOut.String())
			assert.Contains(t, out.String()+errOut.String(), "interrupted (Ctrl-C or SIGTERM)")
		})
	}
}

// TestTimeoutIsNotAnInterrupt: --timeout running out is a timeout, not an
// interrupt: it keeps the Vault exit code and its hint names --timeout.
func TestTimeoutIsNotAnInterrupt(t *testing.T) {
	h := newHangingServer(t)
	t.Setenv("VAULT_ADDR", "http://"+h.addr)
	t.Setenv("VAULT_TOKEN", "s.unused")
	t.Setenv("VAULT_MAX_RETRIES", "0")
	r := run(t, "status", "--client-id", "acme", "--env", "development", "--timeout", "300ms")
	assert.Equal(t, cli.ExitVault, r.code, r.stdout+r.stderr)
	assert.NotContains(t, r.stdout+r.stderr, "interrupted")
}

// TestSchemeMismatchHint: an http:// address pointed at a TLS listener,
// and an https:// address pointed at a plain HTTP listener, each get their
// own hint naming the scheme to use, not "Vault refused the token".
func TestSchemeMismatchHint(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(tlsSrv.Close)
	plainSrv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plainSrv.Close)
	t.Setenv("VAULT_TOKEN", "s.unused")
	t.Setenv("VAULT_MAX_RETRIES", "0")
	cases := []struct {
		name, addr, want string
	}{
		{"http to an https server", "http://" + tlsSrv.Listener.Addr().String(), "Vault serves HTTPS but the address is http://: use https://"},
		{"https to an http server", "https://" + plainSrv.Listener.Addr().String(), "Vault answers plain HTTP but the address is https://: use http://"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("VAULT_ADDR", tc.addr)
			r := run(t, "csr", "--client-id", "acme", "--env", "development")
			assert.Equal(t, cli.ExitVault, r.code, r.stderr)
			assert.Contains(t, r.stderr, "hint: "+tc.want)
			assert.NotContains(t, r.stderr, "refused the token")
			r = run(t, "status", "--json", "--client-id", "acme", "--env", "development")
			var rep cli.StatusReport
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
			assert.Contains(t, rep.Hint, tc.want)
		})
	}
}

// TestSkipVerifyWarning: VAULT_SKIP_VERIFY (which the Vault client obeys)
// and VAULT_TLS_SKIP_VERIFY (which it ignores) each print exactly one
// warning line on stderr, saying what they do; without them, none.
func TestSkipVerifyWarning(t *testing.T) {
	t.Setenv("VAULT_ADDR", closedAddr(t))
	t.Setenv("VAULT_TOKEN", "s.unused")
	t.Setenv("VAULT_MAX_RETRIES", "0")
	cases := []struct {
		name, skip, tlsSkip string
		want                string
	}{
		{"VAULT_SKIP_VERIFY", "true", "", "knotmtls: warning: VAULT_SKIP_VERIFY is set: Vault's TLS certificate is NOT verified"},
		{"VAULT_SKIP_VERIFY=1 wins", "1", "true", "knotmtls: warning: VAULT_SKIP_VERIFY is set"},
		{"VAULT_TLS_SKIP_VERIFY", "", "true", "knotmtls: warning: VAULT_TLS_SKIP_VERIFY is set but has no effect"},
		{"neither", "", "", ""},
		{"false", "false", "0", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("VAULT_SKIP_VERIFY", tc.skip)
			t.Setenv("VAULT_TLS_SKIP_VERIFY", tc.tlsSkip)
			for _, name := range []string{"csr", "status"} {
				r := run(t, name, "--json", "--client-id", "acme", "--env", "development")
				if name == "csr" {
					r = run(t, name, "--client-id", "acme", "--env", "development")
				}
				assert.Equal(t, cli.ExitVault, r.code, r.stderr)
				var warnings []string
				for _, l := range strings.Split(r.stderr, "\n") {
					if strings.Contains(l, "warning") {
						warnings = append(warnings, l)
					}
				}
				if tc.want == "" {
					assert.Empty(t, warnings, name)
					continue
				}
				require.Len(t, warnings, 1, "%s: one warning line:\n%s", name, r.stderr)
				assert.True(t, strings.HasPrefix(warnings[0], tc.want), "%s: %s", name, warnings[0])
				assert.NotContains(t, r.stdout, "warning", "stdout stays machine-readable")
			}
		})
	}
}

// TestAutoWarn: without --warn, status warns in the last third of the
// validity, at most 30 days, so a fresh certificate is never expiring.
func TestAutoWarn(t *testing.T) {
	day := 24 * time.Hour
	cases := []struct {
		validity, want time.Duration
	}{
		{30 * day, 10 * day},
		{90 * day, 30 * day},
		{365 * day, 30 * day},
		{6 * time.Hour, 2 * time.Hour},
		{0, 0},
		{-day, 0},
	}
	for _, tc := range cases {
		t.Run(tc.validity.String(), func(t *testing.T) {
			got := cli.AutoWarn(tc.validity)
			assert.Equal(t, tc.want, got)
			if tc.validity > 0 {
				assert.Less(t, got, tc.validity, "a fresh certificate is not expiring")
			}
		})
	}
}

// TestErrorMessagesNameFlags: the library's advice in terms of Go options
// reaches the operator as the flags that do the same.
func TestErrorMessagesNameFlags(t *testing.T) {
	cases := []struct {
		detail string
		want   []string
	}{
		{"the answer has no KV v2 version metadata; if the mount is KV v1 use WithKVVersion(1)", []string{"use --kv-version 1"}},
		{`mount "kv" is KV v1 but the source is configured for KV v2: use WithKVVersion(1)`, []string{"use --kv-version 1"}},
		{"the secret has no such field (fields are configurable with WithFields)", []string{"(knotmtls uses the fields private_key, certificate, pending_private_key)"}},
		{"a new key is already staged; get its CSR again with CSR, import its certificate, or pass WithForce to replace it", []string{"print its CSR again with --existing", "pass --force"}},
		{"the secret already holds a private key; get its CSR again with CSR, use WithRotate to stage a new key while the current certificate keeps serving, or WithForce to replace it", []string{"use --rotate", "or --force"}},
		{"the key exists (latest version 1); get its CSR again with CSR, or pass WithRotate to add a new key version", []string{"pass --rotate"}},
		// The same advice in terms of provisioning modes.
		{"the answer has no KV v2 version metadata; if the mount is KV v1 construct the source with WithKVVersion(1)", []string{"if the mount is KV v1 use --kv-version 1"}},
		{"a new key is already staged; get its CSR again (existing), import its certificate, or replace key and certificate (force)", []string{"print its CSR again with --existing", "replace key and certificate (--force)"}},
		{"the secret already holds a private key; get its CSR again (existing), rotate to stage a new key while the current certificate keeps serving, or force to replace it", []string{"print its CSR again with --existing, --rotate to stage a new key", "or --force to replace it"}},
		{"the key exists (latest version 1); get its CSR again (existing), or rotate to add a new key version", []string{"or --rotate to add a new key version"}},
		{`permission denied (or construct the source WithoutMetadata to poll the data path)`, []string{"permission denied\n"}},
	}
	for _, tc := range cases {
		t.Run(tc.detail, func(t *testing.T) {
			err := &vaultsource.Error{Op: "provision", Path: "secret/data/knot/x", Detail: tc.detail, Err: vaultsource.ErrKeyExists}
			var stderr bytes.Buffer
			r := cli.ReportError(&stderr, "csr", err)
			assert.Equal(t, cli.ExitRefused, r)
			for _, w := range tc.want {
				assert.Contains(t, stderr.String(), w)
			}
			assert.NotRegexp(t, goOption, stderr.String())
		})
	}
}

// goOption matches the name of a Go option, method or provisioning mode in
// a message.
var goOption = regexp.MustCompile(`\bWith[A-Z]\w*|\bwith CSR\b|\((existing|force|rotate)\)|(^|[^-])\b(rotate|force) to\b|construct the source`)

// TestFlagWordsCoverLibraryMessages: every Go option named in a string
// literal of the library packages the CLI prints errors from (vaultsource,
// vaultauth, provider, knotclient, filesource) is turned into a flag. It reads their source, so a message added there with a new
// Go option fails here until the CLI translates it.
func TestFlagWordsCoverLibraryMessages(t *testing.T) {
	found := 0
	// vaultauth and internal/vaultresp hold the Vault login and error
	// classification once they exist; the others must be there.
	optional := map[string]bool{"vaultauth": true, filepath.Join("internal", "vaultresp"): true}
	for _, dir := range []string{"vaultsource", "provider", "knotclient", "filesource", "vaultauth", filepath.Join("internal", "vaultresp")} {
		files, err := filepath.Glob(filepath.Join("..", "..", dir, "*.go"))
		require.NoError(t, err)
		if !optional[dir] {
			require.NotEmpty(t, files, dir)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			src, err := os.ReadFile(name)
			require.NoError(t, err)
			f, err := parser.ParseFile(token.NewFileSet(), name, src, 0)
			require.NoError(t, err)
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(lit.Value)
				if err != nil || !goOption.MatchString(s) {
					return true
				}
				found++
				assert.NotRegexp(t, goOption, cli.FlagWords(s), "%s: %q", name, s)
				return true
			})
		}
	}
	assert.Positive(t, found, "the library's messages name Go options (else this test checks nothing)")
}

// TestReportErrorIsOneLine: an error printed by the CLI is one line plus
// an optional hint line.
func TestReportErrorIsOneLine(t *testing.T) {
	var stderr bytes.Buffer
	cli.ReportError(&stderr, "status", errors.New("first\nsecond\tthird"))
	assert.Equal(t, "knotmtls status: first second third\n", stderr.String())
}

// blockingReader is a stdin nobody types into: Read reports that it was
// called and blocks until the test ends.
type blockingReader struct {
	reading chan struct{}
	once    sync.Once
	closed  chan struct{}
}

func (r *blockingReader) Read([]byte) (int, error) {
	r.once.Do(func() { close(r.reading) })
	<-r.closed
	return 0, io.EOF
}

// TestInterruptWhileReadingStdin: Ctrl-C while import waits for a pasted
// certificate on stdin ends the run at once (exit 1, nothing changed),
// before Vault is contacted.
func TestInterruptWhileReadingStdin(t *testing.T) {
	t.Setenv("VAULT_ADDR", closedAddr(t))
	t.Setenv("VAULT_TOKEN", "s.unused")
	stdin := &blockingReader{reading: make(chan struct{}), closed: make(chan struct{})}
	t.Cleanup(func() { close(stdin.closed) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, []string{"import", "--client-id", "acme", "--env", "development", "--cert", "-"}, stdin, &out, &errOut)
	}()
	select {
	case <-stdin.reading:
	case <-time.After(20 * time.Second):
		t.Fatal("import never read stdin")
	}
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, cli.ExitError, code, errOut.String())
		assert.Contains(t, errOut.String(), "interrupted (Ctrl-C or SIGTERM): nothing was changed: no certificate was stored in Vault")
	case <-time.After(20 * time.Second):
		t.Fatal("import kept waiting on stdin after the interrupt")
	}
}

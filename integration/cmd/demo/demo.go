package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/knotmtls/knotmtls/integration/clitest"
	"github.com/knotmtls/knotmtls/integration/vaulttest"
	"github.com/knotmtls/knotmtls/internal/cli"
	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// config is what a demo run does.
type config struct {
	Workers   int           // goroutines calling Knot during the rotation
	LoadAfter time.Duration // load kept up after Knot saw the new serial
	Rotation  string        // "rotate" or "force"
	Poll      time.Duration // provider poll interval
	Transit   bool          // also walk the Transit path
	Backend   string        // vaulttest backend, "" = auto
	Verbose   bool          // library logs to the output
}

func defaultConfig() config {
	return config{Workers: 8, LoadAfter: 750 * time.Millisecond, Rotation: "rotate", Poll: 200 * time.Millisecond, Transit: true}
}

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// Write writes p under the lock.
func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// step is one line of the summary.
type step struct {
	name   string
	ok     bool
	took   time.Duration
	detail string
}

// demo is one run's state.
type demo struct {
	cfg   config
	out   io.Writer
	log   *slog.Logger
	steps []step
	total int

	dir       string
	vault     *vaulttest.Vault
	root      *api.Client
	knot      *knottest.Server
	caFile    string
	tokenFile string
	clientID  string
	env       string
}

// run walks the lifecycle and returns the process exit code: 0 when every
// step passed.
func run(ctx context.Context, cfg config, out io.Writer) int {
	if cfg.Rotation != "rotate" && cfg.Rotation != "force" {
		fmt.Fprintf(out, "demo: -rotation %q: want rotate or force\n", cfg.Rotation)
		return 2
	}
	if cfg.Workers < 1 || cfg.Poll <= 0 {
		fmt.Fprintln(out, "demo: -workers must be at least 1 and -poll positive")
		return 2
	}
	// Provider hooks print from the provider's goroutine: serialise writes.
	out = &lockedWriter{w: out}
	d := &demo{cfg: cfg, out: out, env: "development", log: slog.New(slog.DiscardHandler)}
	if cfg.Verbose {
		d.log = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	start := time.Now()
	fmt.Fprintf(out, "knotmtls demo: the Knot mTLS client certificate lifecycle with the key in Vault\n\n")
	ok := d.walk(ctx)
	d.cleanup()
	d.summary(time.Since(start), ok)
	if !ok {
		return 1
	}
	return 0
}

func (d *demo) walk(ctx context.Context) bool {
	var err error
	if d.dir, err = os.MkdirTemp("", "knotmtls-demo-"); err != nil {
		fmt.Fprintf(d.out, "demo: %v\n", err)
		return false
	}
	var (
		kvPath  string
		csrPEM  []byte
		serial1 string
		p       *provider.Provider
		client  *knotclient.Client
	)
	defer func() {
		if client != nil {
			_ = client.Close()
		}
		if p != nil {
			_ = p.Close()
		}
	}()
	steps := []struct {
		name string
		fn   func() (string, error)
	}{
		{"start Vault dev server", func() (string, error) { return d.startVault(ctx) }},
		{"start Knot (knottest, real mTLS)", func() (string, error) { return d.startKnot() }},
		{"knotmtls csr (KV): key made in memory, stored in Vault", func() (string, error) {
			kvPath = cli.DefaultKVPath(d.env, d.clientID)
			if err := d.cli(ctx, nil, "csr", "--out", d.file("knot.csr")); err != nil {
				return "", err
			}
			csrPEM, err = os.ReadFile(d.file("knot.csr"))
			return "secret/" + kvPath + ", CSR in knot.csr", err
		}},
		{"Knot signs the CSR", func() (string, error) {
			var leaf *x509.Certificate
			_, leaf, err = d.sign(csrPEM, "knot.crt")
			if err != nil {
				return "", err
			}
			serial1 = provider.SerialHex(leaf)
			return "serial " + serial1, nil
		}},
		{"knotmtls import (KV)", func() (string, error) {
			return "certificate stored next to the key", d.cli(ctx, nil, "import", "--cert", d.file("knot.crt"))
		}},
		{"knotmtls status (KV)", func() (string, error) { return "ok, exit 0", d.cli(ctx, nil, "status") }},
		{"knotmtls check (KV): mTLS request via provider + knotclient", func() (string, error) {
			return "200 from POST /merchant/list", d.cli(ctx, nil, d.checkArgs()...)
		}},
		{"typed calls over mTLS (knotclient)", func() (string, error) {
			p, client, err = d.newClient(ctx, kvPath)
			if err != nil {
				return "", err
			}
			return d.typedCalls(ctx, client)
		}},
		{"rotate under load (csr --" + d.cfg.Rotation + ", sign, import)", func() (string, error) {
			return d.rotateUnderLoad(ctx, p, client, serial1)
		}},
		{"knotmtls status after rotation", func() (string, error) { return "new serial, exit 0", d.cli(ctx, nil, "status") }},
		{"knotmtls status --json (monitoring)", func() (string, error) { return d.statusJSON(ctx) }},
	}
	if d.cfg.Transit {
		var transitCSR []byte
		steps = append(steps, []struct {
			name string
			fn   func() (string, error)
		}{
			{"knotmtls csr --transit: key created inside Vault", func() (string, error) {
				out, err := d.cliOut(ctx, nil, "csr", "--transit")
				transitCSR = out
				if err != nil {
					return "", err
				}
				return d.transitKeyFacts(ctx)
			}},
			{"Knot signs + knotmtls import --transit (stdin)", func() (string, error) {
				cert, leaf, err := d.sign(transitCSR, "knot-transit.crt")
				if err != nil {
					return "", err
				}
				if err := d.cli(ctx, cert, "import", "--transit", "--cert", "-"); err != nil {
					return "", err
				}
				return "serial " + provider.SerialHex(leaf), nil
			}},
			{"knotmtls check --transit: every handshake signed by Vault", func() (string, error) {
				return "200 from POST /merchant/list", d.cli(ctx, nil, d.checkArgs("--transit")...)
			}},
			{"knotmtls status --transit", func() (string, error) { return "ok, exit 0", d.cli(ctx, nil, "status", "--transit") }},
		}...)
	}
	d.total = len(steps)
	for i, s := range steps {
		fmt.Fprintf(d.out, "==> [%d/%d] %s\n", i+1, d.total, s.name)
		t0 := time.Now()
		detail, err := s.fn()
		st := step{name: s.name, ok: err == nil, took: time.Since(t0), detail: detail}
		if err != nil {
			st.detail = err.Error()
		}
		d.steps = append(d.steps, st)
		if err != nil {
			fmt.Fprintf(d.out, "    FAILED after %s: %v\n\n", round(st.took), err)
			return false
		}
		fmt.Fprintf(d.out, "    ok (%s)\n\n", round(st.took))
	}
	return true
}

func (d *demo) file(name string) string { return filepath.Join(d.dir, name) }

func round(t time.Duration) time.Duration {
	if t < time.Second {
		return t.Round(time.Millisecond)
	}
	return t.Round(10 * time.Millisecond)
}

func (d *demo) startVault(ctx context.Context) (string, error) {
	var opts []vaulttest.Option
	if d.cfg.Backend != "" {
		opts = append(opts, vaulttest.WithBackend(d.cfg.Backend))
	}
	if d.cfg.Verbose {
		opts = append(opts, vaulttest.WithLogf(func(format string, args ...any) {
			fmt.Fprintf(d.out, "    vaulttest: "+format+"\n", args...)
		}))
	}
	v, err := vaulttest.Start(ctx, opts...)
	if err != nil {
		return "", err
	}
	d.vault = v
	if d.root, err = v.Client(); err != nil {
		return "", err
	}
	if err := v.EnableTransit(ctx); err != nil {
		return "", err
	}
	// The CLI reads the token from a file (as from a Vault Agent sink), so
	// the demo leaves its own environment alone.
	d.tokenFile = d.file("vault-token")
	if err := os.WriteFile(d.tokenFile, []byte(v.Token), 0o600); err != nil {
		return "", err
	}
	fmt.Fprintf(d.out, "    backend: %s\n    address: %s (KV v2 at secret/, Transit at transit/)\n", v.Backend, v.Addr)
	fmt.Fprintf(d.out, "    every knotmtls command below also gets --vault-addr %s --token-file <file>\n", v.Addr)
	return v.Backend, nil
}

func (d *demo) startKnot() (string, error) {
	k, err := knottest.NewServer(knottest.WithLogger(d.log))
	if err != nil {
		return "", err
	}
	d.knot = k
	d.clientID = k.ClientID()
	ca, err := clitest.ServerCAPEM(k)
	if err != nil {
		return "", err
	}
	d.caFile = d.file("knottest-server-ca.pem")
	if err := os.WriteFile(d.caFile, ca, 0o644); err != nil {
		return "", err
	}
	// The Knot API secret lives in Vault too: check reads it with --secret-kv.
	if _, err := d.root.KVv2("secret").Put(context.Background(), cli.DefaultKVPath(d.env, d.clientID)+"-api",
		map[string]any{"secret": k.Secret()}); err != nil {
		return "", err
	}
	fmt.Fprintf(d.out, "    %s, client_id %s; its API secret stored at secret/%s-api\n", k.URL(), d.clientID, cli.DefaultKVPath(d.env, d.clientID))
	return k.URL(), nil
}

// cli runs one knotmtls command through cli.Run and shows its output.
func (d *demo) cli(ctx context.Context, stdin []byte, args ...string) error {
	_, err := d.cliOut(ctx, stdin, args[0], args[1:]...)
	return err
}

// cliOut is cli returning stdout.
func (d *demo) cliOut(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	out, code := d.cliRun(ctx, stdin, name, args...)
	if code != cli.ExitOK {
		return out, fmt.Errorf("knotmtls %s exited %d", name, code)
	}
	return out, nil
}

// cliRun runs and shows one knotmtls command and returns its stdout and
// exit code.
func (d *demo) cliRun(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, int) {
	runner := &clitest.Runner{ClientID: d.clientID, Env: d.env, Timeout: cli.DefaultTimeout,
		Hidden: []string{"--vault-addr", d.vault.Addr, "--token-file", d.tokenFile}}
	full := runner.Args(name, args...)
	shown := strings.ReplaceAll(strings.Join(full, " "), d.dir+string(filepath.Separator), "")
	if stdin != nil {
		shown = "cat cert.pem | knotmtls " + shown
	} else {
		shown = "knotmtls " + shown
	}
	fmt.Fprintf(d.out, "    $ %s\n", shown)
	r := runner.Run(ctx, stdin, full...)
	strip := func(s string) []byte { return []byte(strings.ReplaceAll(s, d.dir+string(filepath.Separator), "")) }
	d.show(strip(r.Stdout), strip(r.Stderr))
	return []byte(r.Stdout), r.Code
}

// show prints a command's output indented; a PEM block is shortened to
// its first and last line (it is public, but long).
func (d *demo) show(outs ...[]byte) {
	for _, o := range outs {
		lines := strings.Split(strings.TrimRight(string(o), "\n"), "\n")
		inPEM := false
		for _, l := range lines {
			switch {
			case l == "":
				continue
			case strings.HasPrefix(l, "-----BEGIN "):
				inPEM = true
				fmt.Fprintf(d.out, "    | %s\n    | ...\n", l)
			case strings.HasPrefix(l, "-----END "):
				inPEM = false
				fmt.Fprintf(d.out, "    | %s\n", l)
			case inPEM:
			default:
				fmt.Fprintf(d.out, "    | %s\n", l)
			}
		}
	}
}

func (d *demo) checkArgs(extra ...string) []string {
	return append([]string{"check", "--base-url", d.knot.URL(), "--ca-file", d.caFile,
		"--secret-kv", cli.DefaultKVPath(d.env, d.clientID) + "-api"}, extra...)
}

// sign has knottest sign a CSR as Knot does and keeps the certificate file.
func (d *demo) sign(csrPEM []byte, name string) ([]byte, *x509.Certificate, error) {
	certPEM, err := d.knot.SignCSR(csrPEM)
	if err != nil {
		return nil, nil, err
	}
	certs, err := provider.ParseCertificates(certPEM)
	if err != nil {
		return nil, nil, err
	}
	leaf := certs[0]
	fmt.Fprintf(d.out, "    Knot issued serial %s, %s, valid until %s\n", provider.SerialHex(leaf), leaf.Subject, leaf.NotAfter.UTC().Format(time.RFC3339))
	return certPEM, leaf, os.WriteFile(d.file(name), certPEM, 0o644)
}

// newClient builds what a service builds: a KV source, a provider that
// polls it, and a Knot client over mTLS.
func (d *demo) newClient(ctx context.Context, kvPath string) (*provider.Provider, *knotclient.Client, error) {
	vc, err := d.vault.Client()
	if err != nil {
		return nil, nil, err
	}
	src, err := vaultsource.NewKV(vc, "secret", kvPath)
	if err != nil {
		return nil, nil, err
	}
	p, err := provider.New(src,
		provider.WithRequirements(provider.Requirements{ClientID: d.clientID}),
		provider.WithPollInterval(d.cfg.Poll),
		provider.WithBackoff(100*time.Millisecond, time.Second),
		provider.WithLogger(d.log),
		provider.OnRotated(func(old, b *provider.Bundle) {
			if old != nil && provider.SerialHex(old.Leaf()) != provider.SerialHex(b.Leaf()) {
				fmt.Fprintf(d.out, "    provider: rotated serial %s -> %s (KV version %s)\n",
					provider.SerialHex(old.Leaf()), provider.SerialHex(b.Leaf()), b.Version)
			}
		}),
		provider.OnRefreshFailed(func(err error, failures int, retryIn time.Duration) {
			if failures == 1 {
				fmt.Fprintf(d.out, "    provider: refresh failed, still serving the current certificate (retry in %s): %s\n",
					retryIn.Round(time.Millisecond), shorten(err.Error()))
			}
		}),
	)
	if err != nil {
		return nil, nil, err
	}
	if err := p.Refresh(ctx); err != nil {
		_ = p.Close()
		return nil, nil, err
	}
	c, err := knotclient.New(knotclient.Config{
		ClientID:     d.clientID,
		Secret:       knotclient.StaticSecret(d.knot.Secret()),
		Certificates: p,
		BaseURL:      d.knot.URL(),
		RootCAs:      d.knot.RootCAs(),
		Logger:       d.log,
	})
	if err != nil {
		_ = p.Close()
		return nil, nil, err
	}
	fmt.Fprintf(d.out, "    service side: vaultsource.KV secret/%s -> provider (poll %s) -> knotclient\n", kvPath, d.cfg.Poll)
	return p, c, nil
}

func shorten(s string) string {
	if len(s) > 160 {
		return s[:160] + "..."
	}
	return s
}

func (d *demo) typedCalls(ctx context.Context, c *knotclient.Client) (string, error) {
	sess, err := c.CreateSession(ctx, knotclient.CreateSessionRequest{Type: knotclient.SessionTransactionLink, ExternalUserID: "demo-user-1"})
	if err != nil {
		return "", err
	}
	fmt.Fprintf(d.out, "    CreateSession: session created (%d-character id, not shown)\n", len(sess.Session))
	merchants, err := c.ListMerchants(ctx, knotclient.ListMerchantsRequest{Type: knotclient.ProductTransactionLink})
	if err != nil {
		return "", err
	}
	names := make([]string, 0, 3)
	for i, m := range merchants {
		if i == 3 {
			break
		}
		names = append(names, m.Name)
	}
	if len(merchants) > len(names) {
		names = append(names, "...")
	}
	fmt.Fprintf(d.out, "    ListMerchants: %d merchants (%s)\n", len(merchants), strings.Join(names, ", "))
	pages, txs := 0, 0
	for page, err := range c.SyncTransactionPages(ctx, knotclient.SyncTransactionsRequest{MerchantID: knottest.MerchantID, ExternalUserID: "demo-user-1", Limit: 5}) {
		if err != nil {
			return "", err
		}
		pages++
		txs += len(page.Transactions)
	}
	fmt.Fprintf(d.out, "    SyncTransactions: %d transactions in %d pages (cursor iteration until next_cursor is null)\n", txs, pages)
	return fmt.Sprintf("session, %d merchants, %d transactions", len(merchants), txs), nil
}

// loadStats counts the calls of the load goroutines.
type loadStats struct {
	calls, failed atomic.Int64
	mu            sync.Mutex
	errs          []string
}

func (s *loadStats) fail(err error) {
	s.failed.Add(1)
	s.mu.Lock()
	if len(s.errs) < 3 {
		s.errs = append(s.errs, err.Error())
	}
	s.mu.Unlock()
}

// rotateUnderLoad keeps Workers goroutines calling Knot while a new key is
// provisioned (through the CLI), signed and imported, until Knot has seen
// the new certificate and LoadAfter has passed.
func (d *demo) rotateUnderLoad(ctx context.Context, p *provider.Provider, c *knotclient.Client, oldSerial string) (string, error) {
	d.knot.Reset()
	var stats loadStats
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	started := time.Now()
	for w := range d.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; loadCtx.Err() == nil; i++ {
				var err error
				switch (w + i) % 3 {
				case 0:
					_, err = c.ListMerchants(loadCtx, knotclient.ListMerchantsRequest{Type: knotclient.ProductCardSwitcher})
				case 1:
					_, err = c.GetJWEKey(loadCtx)
				default:
					_, err = c.SyncTransactions(loadCtx, knotclient.SyncTransactionsRequest{MerchantID: knottest.MerchantID, ExternalUserID: "demo-user-1", Limit: 5})
				}
				if loadCtx.Err() != nil {
					return // the load was stopped mid-call: not a failure
				}
				stats.calls.Add(1)
				if err != nil {
					stats.fail(err)
				}
			}
		}()
	}
	stop := func() {
		stopLoad()
		wg.Wait()
	}
	fmt.Fprintf(d.out, "    %d goroutines calling Knot (ListMerchants, GetJWEKey, SyncTransactions) with serial %s\n", d.cfg.Workers, oldSerial)

	csr2, err := d.cliOut(ctx, nil, "csr", "--"+d.cfg.Rotation)
	if err != nil {
		stop()
		return "", err
	}
	_, leaf2, err := d.sign(csr2, "knot-2.crt")
	if err != nil {
		stop()
		return "", err
	}
	newSerial := provider.SerialHex(leaf2)
	if err := d.cli(ctx, nil, "import", "--cert", d.file("knot-2.crt")); err != nil {
		stop()
		return "", err
	}
	imported := time.Now()
	seen, err := waitFor(ctx, 15*time.Second, func() bool {
		for _, s := range d.knot.Serials() {
			if s == newSerial {
				return true
			}
		}
		return false
	})
	if err != nil {
		stop()
		return "", fmt.Errorf("demo: Knot never saw the new serial %s: %w", newSerial, err)
	}
	fmt.Fprintf(d.out, "    Knot saw the new serial %s after %s (import -> provider poll -> new connections)\n", newSerial, round(seen.Sub(imported)))
	select {
	case <-time.After(d.cfg.LoadAfter):
	case <-ctx.Done():
	}
	stop()
	elapsed := time.Since(started)

	per := map[string]int{}
	for _, r := range d.knot.Requests() {
		per[r.ClientSerial]++
	}
	serials := d.knot.Serials()
	calls, failed := stats.calls.Load(), stats.failed.Load()
	fmt.Fprintf(d.out, "    load: %d calls in %s (%.0f/s), %d failed\n", calls, round(elapsed), float64(calls)/elapsed.Seconds(), failed)
	for _, s := range serials {
		fmt.Fprintf(d.out, "    Knot saw serial %s on %d requests\n", s, per[s])
	}
	if cur := p.Status().Bundle; cur == nil || provider.SerialHex(cur.Leaf()) != newSerial {
		return "", errors.New("demo: the provider does not serve the new certificate")
	}
	switch {
	case failed > 0:
		return "", fmt.Errorf("demo: %d of %d calls failed during the rotation: %s", failed, calls, strings.Join(stats.errs, "; "))
	case len(serials) != 2 || serials[0] != oldSerial || serials[1] != newSerial:
		return "", fmt.Errorf("demo: Knot saw serials %v, want [%s %s]", serials, oldSerial, newSerial)
	}
	return fmt.Sprintf("%d workers, %d calls, 0 failed; serials %s -> %s", d.cfg.Workers, calls, short(oldSerial), short(newSerial)), nil
}

func short(serial string) string {
	if len(serial) > 10 {
		return serial[:10] + "…"
	}
	return serial
}

// waitFor polls cond every 10 ms until it holds, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) (time.Time, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("demo: not within %s", timeout)
		case <-tick.C:
		}
	}
}

func (d *demo) statusJSON(ctx context.Context) (string, error) {
	out, code := d.cliRun(ctx, nil, "status", "--json", "--warn", "400d")
	var rep cli.StatusReport
	if err := json.Unmarshal(out, &rep); err != nil {
		return "", fmt.Errorf("demo: status --json: %w", err)
	}
	if code != cli.ExitExpiring || rep.Result != cli.ResultExpiring || rep.ExitCode != code {
		return "", fmt.Errorf("demo: status --warn 400d on a 365-day certificate: exit %d, result %q; want exit %d, %q",
			code, rep.Result, cli.ExitExpiring, cli.ResultExpiring)
	}
	return fmt.Sprintf("--warn 400d: result %q, exit %d, %d days left", rep.Result, code, rep.Certificate.DaysLeft), nil
}

func (d *demo) transitKeyFacts(ctx context.Context) (string, error) {
	name := cli.DefaultTransitKey(d.env, d.clientID)
	sec, err := d.root.Logical().ReadWithContext(ctx, "transit/keys/"+name)
	if err != nil || sec == nil {
		return "", fmt.Errorf("demo: read transit key %s: %v", name, err)
	}
	fmt.Fprintf(d.out, "    Vault: transit/keys/%s type=%v exportable=%v allow_plaintext_backup=%v\n",
		name, sec.Data["type"], sec.Data["exportable"], sec.Data["allow_plaintext_backup"])
	if sec.Data["exportable"] != false {
		return "", fmt.Errorf("demo: the transit key is exportable")
	}
	return "transit/keys/" + name + " (not exportable)", nil
}

func (d *demo) cleanup() {
	if d.knot != nil {
		d.knot.Close()
	}
	if d.vault != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_ = d.vault.Terminate(ctx)
		cancel()
	}
	if d.dir != "" {
		_ = os.RemoveAll(d.dir)
	}
}

func (d *demo) summary(total time.Duration, ok bool) {
	fmt.Fprintf(d.out, "Summary\n")
	tw := tabwriter.NewWriter(d.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  #\tstep\tresult\ttime\tdetail\n")
	for i, s := range d.steps {
		res := "ok"
		if !s.ok {
			res = "FAILED"
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", i+1, s.name, res, round(s.took), shorten(s.detail))
	}
	for i := len(d.steps); i < d.total; i++ {
		fmt.Fprintf(tw, "  %d\t-\tskipped\t\t\n", i+1)
	}
	_ = tw.Flush()
	verdict := "all steps passed"
	if !ok {
		verdict = "FAILED"
	}
	fmt.Fprintf(d.out, "\n  total %s: %s\n", round(total), verdict)
}

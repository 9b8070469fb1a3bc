package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// Exit codes of every command. They are part of the command-line contract:
// monitoring runs "knotmtls status" and branches on them.
const (
	// ExitOK: success; for status, the stored certificate passes every
	// check and does not expire within --warn.
	ExitOK = 0
	// ExitError: an error not covered below (reading an input file,
	// writing output), and every interrupted run (Ctrl-C, SIGTERM): the
	// message then says what was done and what was not.
	ExitError = 1
	// ExitUsage: unknown command, bad flag value or missing flag.
	ExitUsage = 2
	// ExitVault: Vault could not be used: unreachable, sealed, login
	// failed, permission denied, no such mount, wrong KV version.
	ExitVault = 3
	// ExitRefused: the material is refused or invalid: nothing stored yet,
	// a key already exists (csr without --force), a certificate that fails
	// Knot's rules or does not match the stored key (import), a stored
	// certificate that fails a check (status, check). Nothing was changed.
	ExitRefused = 4
	// ExitExpiring: status only: valid, but expires within --warn.
	ExitExpiring = 5
	// ExitExpired: the certificate has expired (status, check; import
	// refuses an expired certificate with this code too).
	ExitExpired = 6
	// ExitCheckFailed: check only: the mTLS request failed (TLS handshake
	// refused, network error, or Knot answered with an error status).
	ExitCheckFailed = 7
)

// exitCodesHelp documents the exit codes in every help text.
const exitCodesHelp = `Exit codes:
  0  ok (status: valid and not expiring within --warn)
  1  other error (input file, output), or interrupted (Ctrl-C, SIGTERM):
     the message says what was done and what was not
  2  usage: unknown command, bad or missing flag, flags that exclude
     each other or do not apply
  3  Vault: unreachable, sealed, login failed, permission denied,
     no such mount, wrong KV version
  4  refused or invalid: nothing stored yet, key already exists,
     certificate fails Knot's rules or does not match the stored key;
     nothing was changed
  5  status: valid but expires within --warn (default: the last third
     of its validity, at most 30 days)
  6  certificate expired
  7  check: the mTLS request failed (handshake, network, Knot error status)
`

// DefaultTimeout bounds a whole command unless --timeout says otherwise.
const DefaultTimeout = 2 * time.Minute

// command is one subcommand.
type command struct {
	name    string
	summary string
	usage   string // synopsis line(s), after "knotmtls "
	help    string // description and examples
	// untouched says what an interrupted run left alone when it stopped
	// before the command changed anything.
	untouched string
	// conflicts lists the flag rules checked after parsing.
	conflicts []flagRule
	// setup registers the command's flags and returns the function that
	// runs it once the flags are parsed.
	setup func(fs *flag.FlagSet, e *env) func(ctx context.Context) error
}

var commands = []*command{csrCommand, importCommand, statusCommand, checkCommand}

func findCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// env is what one run reads and writes.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	verbose        bool
	timeout        time.Duration
	now            func() time.Time
	// parent is the caller's context: its cancellation (Ctrl-C, SIGTERM
	// in main) is an interrupt, told apart from --timeout.
	parent context.Context
	// set holds the names of the flags given on the command line.
	set map[string]bool
}

// logger returns the logger handed to the library packages: their warnings
// only with --verbose (the command itself reports every failure), on stderr.
func (e *env) logger() *slog.Logger {
	if !e.verbose {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Run runs the knotmtls command line: args are the arguments after the
// program name ("status", "--client-id", "...", ...). It reads stdin only for
// "import --cert -", writes results to stdout and errors, hints and progress
// to stderr, and returns the process exit code (see the Exit constants).
// The Vault connection comes from the standard VAULT_* environment variables
// (api.DefaultConfig) and the command's flags. Run never prints key material.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now, parent: ctx}
	if len(args) == 0 {
		writeMainUsage(stderr)
		return ExitUsage
	}
	switch name := args[0]; name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && name == "help" {
			c := findCommand(args[1])
			if c == nil {
				fmt.Fprintf(stderr, "knotmtls: unknown command %q\n\n", args[1])
				writeMainUsage(stderr)
				return ExitUsage
			}
			writeCommandHelp(stdout, c)
			return ExitOK
		}
		writeMainUsage(stdout)
		return ExitOK
	case "version", "--version":
		fmt.Fprintf(stdout, "knotmtls %s\n", Version())
		return ExitOK
	}
	c := findCommand(args[0])
	if c == nil {
		fmt.Fprintf(stderr, "knotmtls: unknown command %q\n\n", args[0])
		writeMainUsage(stderr)
		return ExitUsage
	}
	return runCommand(ctx, c, args[1:], e)
}

func runCommand(ctx context.Context, c *command, args []string, e *env) int {
	fs := newFlagSet(c.name)
	registerCommon(fs, e)
	run := c.setup(fs, e)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeCommandHelp(e.stdout, c)
			return ExitOK
		}
		return reportUsage(e.stderr, c, err.Error())
	}
	if fs.NArg() > 0 {
		return reportUsage(e.stderr, c, fmt.Sprintf("unexpected argument %q (every input is a flag)", fs.Arg(0)))
	}
	if e.timeout <= 0 {
		return reportUsage(e.stderr, c, "--timeout must be positive")
	}
	e.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { e.set[f.Name] = true })
	if err := checkFlagRules(fs, e.set, c.conflicts); err != nil {
		return reportUsage(e.stderr, c, err.msg)
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	err := run(ctx)
	if err == nil {
		return ExitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return reportUsage(e.stderr, c, ue.msg)
	}
	var coded *exitError
	if errors.As(err, &coded) && coded.reported {
		return coded.code
	}
	var ie *interruptedError
	if e.interrupted() && !errors.As(err, &ie) {
		// The command stopped before it changed anything (a command
		// that got further reports an interruptedError itself).
		err = &interruptedError{outcome: c.untouched}
	}
	reportError(e.stderr, c.name, err)
	return ExitCodeOf(err)
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("knotmtls "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and help are printed by Run
	return fs
}

// usageError is a bad command line found after flag parsing.
type usageError struct{ msg string }

func (e *usageError) Error() string { return "cli: " + e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitError carries an exit code for an outcome the command has already
// reported itself (status and check print their own report).
type exitError struct {
	code     int
	err      error
	reported bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func reportUsage(w io.Writer, c *command, msg string) int {
	fmt.Fprintf(w, "knotmtls %s: %s\n", c.name, msg)
	fmt.Fprintf(w, "usage: knotmtls %s\n", c.usage)
	fmt.Fprintf(w, "Run 'knotmtls %s --help' for the flags.\n", c.name)
	return ExitUsage
}

func writeMainUsage(w io.Writer) {
	fmt.Fprint(w, `knotmtls manages the Knot mTLS client certificate with its private key in
HashiCorp Vault: the key is generated in memory and stored in Vault KV, or
created inside Vault Transit and never leaves it. No key is written to disk or
printed.

Usage:
  knotmtls <command> [flags]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `  help     show help for a command: knotmtls help <command>
  version  print the version

Lifecycle:
  1. knotmtls csr    --client-id ID --env development --out knot.csr
  2. send knot.csr to Knot; Knot returns the signed certificate
  3. knotmtls import --client-id ID --env development --cert knot.crt
  4. knotmtls check  --client-id ID --env development --secret-env KNOT_SECRET
  5. knotmtls status --client-id ID --env development   (cron/monitoring)
  Add --transit to every step to keep the key inside Vault Transit.

Vault: VAULT_ADDR, VAULT_TOKEN, VAULT_CACERT, VAULT_NAMESPACE and the other
standard VAULT_* variables, or --vault-addr and the --auth flags.

`)
	fmt.Fprint(w, exitCodesHelp)
}

func writeCommandHelp(w io.Writer, c *command) {
	fmt.Fprintf(w, "Usage: knotmtls %s\n\n%s\n", c.usage, strings.TrimSpace(c.help))
	fs := newFlagSet(c.name)
	var e env
	c.setup(fs, &e)
	groups := []struct {
		title string
		names map[string]bool
	}{
		{"Flags", nil},
		{"Identity and location flags", flagNames(func(fs *flag.FlagSet) { new(target).register(fs) })},
		{"Vault flags", flagNames(func(fs *flag.FlagSet) { new(vaultFlags).register(fs) })},
		{"Common flags", flagNames(func(fs *flag.FlagSet) { registerCommon(fs, new(env)) })},
	}
	registerCommon(fs, &e)
	for _, g := range groups {
		var buf strings.Builder
		fs.VisitAll(func(f *flag.Flag) {
			own := true
			for _, other := range groups[1:] {
				if other.names[f.Name] {
					own = false
				}
			}
			if (g.names == nil && own) || g.names[f.Name] {
				writeFlag(&buf, f)
			}
		})
		if buf.Len() > 0 {
			fmt.Fprintf(w, "\n%s:\n%s", g.title, buf.String())
		}
	}
	fmt.Fprintf(w, "\n%s", exitCodesHelp)
}

// registerCommon registers the flags every command has.
func registerCommon(fs *flag.FlagSet, e *env) {
	fs.BoolVar(&e.verbose, "verbose", false, "log what the library does (Vault logins, refreshes) on stderr")
	fs.DurationVar(&e.timeout, "timeout", DefaultTimeout, "give up after this `duration`")
}

// flagNames returns the names of the flags register defines.
func flagNames(register func(*flag.FlagSet)) map[string]bool {
	fs := newFlagSet("")
	register(fs)
	names := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { names[f.Name] = true })
	return names
}

// writeFlag prints one flag the way flag.PrintDefaults does, with two dashes.
func writeFlag(w io.Writer, f *flag.Flag) {
	name, usage := flag.UnquoteUsage(f)
	line := "  --" + f.Name
	if name != "" {
		line += " " + name
	}
	fmt.Fprintf(w, "%s\n      %s", line, usage)
	if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
		if fmt.Sprintf("%T", f.Value) == "*flag.stringValue" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		} else {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
	}
	fmt.Fprintln(w)
}

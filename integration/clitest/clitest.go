// Package clitest drives the knotmtls command line in process, through
// the same [cli.Run] the binary calls, and checks its output for key
// material. The integration tests and the demo both run the CLI with it, so
// they drive it the same way.
package clitest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/knotmtls/knotmtls/internal/cli"
	"github.com/knotmtls/knotmtls/knotclient/knottest"
)

// DefaultTimeout bounds one command when [Runner.Timeout] is zero.
const DefaultTimeout = 2 * time.Minute

// Result is one finished command.
type Result struct {
	// Args are the arguments after the program name, without the
	// runner's Hidden ones.
	Args []string
	// Stdin is what the command read on stdin (nil: nothing).
	Stdin []byte
	// Code is the exit code (see the cli.Exit constants).
	Code int
	// Stdout and Stderr are everything the command wrote.
	Stdout, Stderr string
}

// String shows the result for a test failure message.
func (r Result) String() string {
	return "knotmtls " + strings.Join(r.Args, " ") + "\nexit " + strconv.Itoa(r.Code) +
		"\nstdout:\n" + r.Stdout + "\nstderr:\n" + r.Stderr
}

// Runner runs knotmtls commands for one identity. The zero value runs
// commands as given.
type Runner struct {
	// ClientID and Env are the --client-id and --env [Runner.Args] adds.
	ClientID, Env string
	// Hidden are appended to every command's arguments and left out of
	// [Result.Args]: connection flags such as --vault-addr and
	// --token-file that a transcript need not show.
	Hidden []string
	// Timeout bounds each command (default [DefaultTimeout]).
	Timeout time.Duration
	// Observe, if set, is called with every result, e.g. to keep the
	// outputs for a key-material check or to print them.
	Observe func(Result)
}

// Args returns the arguments of command name with the identity flags
// (--client-id, --env) and extra.
func (r *Runner) Args(name string, extra ...string) []string {
	return append([]string{name, "--client-id", r.ClientID, "--env", r.Env}, extra...)
}

// Run runs one command with stdin (nil: empty) and returns its result.
func (r *Runner) Run(ctx context.Context, stdin []byte, args ...string) Result {
	return r.Start(ctx, stdin, args...).Wait()
}

// Running is a command started by [Runner.Start].
type Running struct {
	interrupt context.CancelFunc
	done      chan Result
	result    *Result
}

// Start starts one command in its own goroutine; [Running.Interrupt]
// interrupts it the way Ctrl-C does (main cancels the context it passes to
// cli.Run), and [Running.Wait] waits for its result.
func (r *Runner) Start(ctx context.Context, stdin []byte, args ...string) *Running {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	ctx, interrupt := context.WithCancel(ctx)
	run := &Running{interrupt: interrupt, done: make(chan Result, 1)}
	full := append(append([]string(nil), args...), r.Hidden...)
	go func() {
		defer cancelTimeout()
		defer interrupt()
		var stdout, stderr bytes.Buffer
		code := cli.Run(ctx, full, bytes.NewReader(stdin), &stdout, &stderr)
		res := Result{Args: args, Stdin: stdin, Code: code, Stdout: stdout.String(), Stderr: stderr.String()}
		if r.Observe != nil {
			r.Observe(res)
		}
		run.done <- res
	}()
	return run
}

// Interrupt interrupts the command as Ctrl-C does.
func (r *Running) Interrupt() { r.interrupt() }

// Wait waits for the command to end and returns its result; it may be
// called more than once.
func (r *Running) Wait() Result {
	if r.result == nil {
		res := <-r.done
		r.result = &res
	}
	return *r.result
}

// Run runs one command with the zero [Runner].
func Run(ctx context.Context, stdin []byte, args ...string) Result {
	return new(Runner).Run(ctx, stdin, args...)
}

// KeyChunks cuts the base64 body of a PEM private key into 24-character
// pieces: any of them in an output is a leak of the key.
func KeyChunks(keyPEM string) []string {
	block, _ := pem.Decode([]byte(keyPEM))
	if block == nil {
		return nil
	}
	body := string(pem.EncodeToMemory(&pem.Block{Type: "X", Bytes: block.Bytes}))
	body = strings.NewReplacer("-----BEGIN X-----", "", "-----END X-----", "").Replace(body)
	body = strings.Join(strings.Fields(body), "")
	var chunks []string
	for i := 0; i+24 <= len(body); i += 24 {
		chunks = append(chunks, body[i:i+24])
	}
	return chunks
}

// LeaksKey reports whether text holds a piece of any of the PEM private
// keys, whatever line breaks or spaces it put in between.
func LeaksKey(text string, keyPEMs ...string) bool {
	text = strings.Join(strings.Fields(text), "")
	for _, k := range keyPEMs {
		for _, c := range KeyChunks(k) {
			if strings.Contains(text, c) {
				return true
			}
		}
	}
	return false
}

// ServerCAPEM returns the PEM of the CA that signed the knottest server's
// certificate, for "knotmtls check --ca-file". It takes it from the chain
// a verified handshake builds against the server's RootCAs (knottest
// exposes the pool, not the certificate); the server then refuses the
// handshake, as no client certificate is sent.
func ServerCAPEM(s *knottest.Server) ([]byte, error) {
	var ca *x509.Certificate
	cfg := &tls.Config{
		RootCAs:    s.RootCAs(),
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &tls.Certificate{}, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.VerifiedChains) > 0 {
				chain := cs.VerifiedChains[0]
				ca = chain[len(chain)-1]
			}
			return nil
		},
	}
	addr := strings.TrimPrefix(s.URL(), "https://")
	conn, err := tls.Dial("tcp", addr, cfg)
	if err == nil {
		_ = conn.Close()
	}
	if ca == nil {
		return nil, fmt.Errorf("clitest: no verified server chain from %s (handshake: %v)", addr, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), nil
}

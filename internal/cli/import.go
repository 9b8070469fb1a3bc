package cli

import (
	"context"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/knotmtls/knotmtls/provider"
)

// importUntouched is what an interrupted import that stopped early left alone.
const importUntouched = "nothing was changed: no certificate was stored in Vault"

var importCommand = &command{
	name:    "import",
	summary: "check the certificate Knot signed and store it next to the key",
	usage:   "import --client-id ID --env development|production --cert FILE|- [--chain FILE] [--knot-ca FILE] [--transit] [flags]",
	help: `
Reads the client certificate Knot returned (PEM, leaf first; it may include
its chain), checks it and stores it in Vault next to the key "knotmtls csr"
created:

  - Knot's rules: RSA-2048 key, SHA-256 with RSA signature, subject CN equal
    to --client-id, usable for client authentication, valid now;
  - with --knot-ca, that the chain verifies up to Knot's issuing CA;
  - that it belongs to the stored key (KV: the staged key of "csr --rotate"
    first, then the current one; Transit: the pinned or matching key
    version).

A certificate that fails any check is refused with the precise reason and
nothing in Vault is changed. Interrupted (Ctrl-C), import exits 1 and says
whether the certificate was stored: before the write began nothing changed;
a write that has begun is finished (within --timeout) and reported. On success services using the knotmtls provider
pick the new certificate up within their poll interval; the certificate they
serve now keeps working until then.

Examples:
  knotmtls import --client-id 6d2f... --env development --cert knot-dev.crt
  pbpaste | knotmtls import --client-id 6d2f... --env production --transit --cert -
`,
	setup:     setupImport,
	untouched: importUntouched,
	conflicts: commonRules(nil),
}

// maxPEMInput bounds what is read from a certificate input.
const maxPEMInput = 1 << 20

type importFlags struct {
	target
	vault  vaultFlags
	cert   string
	chain  string
	knotCA string
}

func setupImport(fs *flag.FlagSet, e *env) func(context.Context) error {
	f := &importFlags{}
	f.target.register(fs)
	f.vault.register(fs)
	fs.StringVar(&f.cert, "cert", "", "certificate PEM `file` Knot returned, - for stdin (required)")
	fs.StringVar(&f.chain, "chain", "", "optional issuing chain PEM `file`")
	fs.StringVar(&f.knotCA, "knot-ca", "", "optional PEM `file` of Knot's issuing CA: the chain must verify up to it")
	return func(ctx context.Context) error { return runImport(ctx, e, f) }
}

func runImport(ctx context.Context, e *env, f *importFlags) error {
	if err := f.target.validate(); err != nil {
		return err
	}
	if err := f.vault.validate(); err != nil {
		return err
	}
	if f.cert == "" {
		return usagef("--cert is required: the certificate file Knot returned, or - for stdin")
	}
	certPEM, err := readInput(ctx, f.cert, e.stdin)
	if err != nil {
		return err
	}
	var chainPEM []byte
	if f.chain != "" {
		if chainPEM, err = readInput(ctx, f.chain, e.stdin); err != nil {
			return err
		}
	}
	req := f.target.requirements()
	if f.knotCA != "" {
		if req.Roots, err = loadPool(f.knotCA); err != nil {
			return err
		}
	}
	e.warnVaultTLS()
	conn, err := f.vault.connect(ctx, e.logger())
	if err != nil {
		return err
	}
	defer conn.Close()
	st, err := f.target.open(conn.client, conn.sourceOptions()...)
	if err != nil {
		return err
	}
	if e.interrupted() {
		return interruptedf("%s", importUntouched)
	}
	loc, unchanged, err := f.store(ctx, e, st, req, certPEM, chainPEM)
	if e.interrupted() {
		return interruptedWrite(err,
			"storing the certificate did not finish within --timeout: whether Vault holds it is unknown; run \"knotmtls status\" to see",
			"nothing was changed: the certificate was not stored",
			fmt.Sprintf("the import is complete: the certificate is stored in %s; only this report was cut short", loc))
	}
	if err != nil {
		return err
	}
	// The import succeeded: describe what is stored now.
	leaf, _ := provider.ParseCertificates(certPEM) // parsed fine during the import
	var info CertificateInfo
	if len(leaf) > 0 {
		info = describeCertificate(leaf[0], e.now())
	}
	w := e.stdout
	if unchanged {
		fmt.Fprintf(w, "certificate serial %s for client_id %s (Knot %s environment) is already stored: nothing was written\n", info.Serial, f.clientID, f.env)
	} else {
		fmt.Fprintf(w, "imported certificate serial %s for client_id %s (Knot %s environment)\n", info.Serial, f.clientID, f.env)
	}
	fmt.Fprintf(w, "  subject:    %s\n", info.Subject)
	fmt.Fprintf(w, "  issuer:     %s\n", info.Issuer)
	fmt.Fprintf(w, "  valid:      %s to %s (%d days left)\n", info.NotBefore.Format(time.RFC3339), info.NotAfter.Format(time.RFC3339), info.DaysLeft)
	fmt.Fprintf(w, "  stored in:  %s\n", loc)
	fmt.Fprintf(w, "Services using the knotmtls provider switch to it within their poll interval.\n")
	transit := ""
	if f.transit {
		transit = " --transit"
	}
	fmt.Fprintf(w, "Verify with: knotmtls check --client-id %s --env %s%s --secret-env KNOT_SECRET\n", f.clientID, f.env, transit)
	return nil
}

// store imports the certificate and returns where it is stored, and whether
// it was stored already (then nothing was written). Once begun, the write is
// finished even on Ctrl-C (see env.uninterruptible).
func (f *importFlags) store(ctx context.Context, e *env, st store, req provider.Requirements, certPEM, chainPEM []byte) (StoreLocation, bool, error) {
	ctx, cancel := e.uninterruptible(ctx, "storing the certificate in Vault")
	defer cancel()
	loc := f.target.location()
	imported, err := st.ImportCertificate(ctx, req, certPEM, chainPEM)
	if err != nil {
		return loc, false, err
	}
	if f.transit {
		// Report the key version the certificate was stored on: it may be
		// older than the one a source presents.
		loc.KeyVersion = imported.KeyVersion
		return loc, imported.Unchanged, nil
	}
	if v, err := st.Version(ctx); err == nil {
		loc = loc.withVersion(v)
	}
	return loc, imported.Unchanged, nil
}

// readInput reads a PEM input from a file, or from stdin for "-". A read
// of stdin (an operator pasting a certificate) gives up when ctx ends, so
// Ctrl-C works while it waits.
func readInput(ctx context.Context, name string, stdin io.Reader) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = stdin
	} else {
		fh, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("cli: read certificate input: %w", err)
		}
		defer fh.Close()
		r = fh
	}
	type read struct {
		b   []byte
		err error
	}
	done := make(chan read, 1)
	go func() {
		b, err := io.ReadAll(io.LimitReader(r, maxPEMInput+1))
		done <- read{b, err}
	}()
	var res read
	select {
	case res = <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("cli: read %s: %w", name, ctx.Err())
	}
	if res.err != nil {
		return nil, fmt.Errorf("cli: read %s: %w", name, res.err)
	}
	if len(res.b) > maxPEMInput {
		return nil, fmt.Errorf("cli: %s is larger than %d bytes; a certificate PEM is a few KiB", name, maxPEMInput)
	}
	return res.b, nil
}

// loadPool reads a PEM file of CA certificates into a pool.
func loadPool(name string) (*x509.CertPool, error) {
	if name == "-" {
		return nil, usagef("a CA file cannot be read from stdin")
	}
	b, err := readInput(context.Background(), name, nil)
	if err != nil {
		return nil, err
	}
	certs, err := provider.ParseCertificates(b)
	if err != nil {
		// A bad CA file is an input problem, not a refused certificate.
		return nil, &exitError{code: ExitError, err: fmt.Errorf("cli: CA file %s: %w", name, err)}
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

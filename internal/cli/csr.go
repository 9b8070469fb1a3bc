package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// csrUntouched is what an interrupted csr that stopped early left alone.
const csrUntouched = "nothing was changed: no key was stored in Vault and no CSR was written"

var csrCommand = &command{
	name:    "csr",
	summary: "create the key in Vault and print the CSR to send to Knot",
	usage:   "csr --client-id ID --env development|production [--transit] [--out FILE] [--rotate|--force|--existing] [flags]",
	help: `
Creates the RSA-2048 private key Knot asks for without it touching disk, and
prints the certificate signing request (CSR, SHA-256 with RSA, CN=<client-id>)
to send to Knot.

  KV (default)  the key is generated in memory and written to the KV secret
                <kv-mount>/<kv-path> (default secret/knot/<env>/<client-id>)
                with check-and-set, so a concurrent writer cannot be
                overwritten.
  --transit     the key is created inside Vault Transit as a non-exportable
                rsa-2048 key <transit-mount>/keys/<transit-key> (default
                transit/keys/knot-<env>-<client-id>); Vault signs the CSR.

An existing key is never replaced by accident. To rotate:

  --rotate    KV: stage the new key next to the current one; the current
              certificate keeps serving until "knotmtls import" stores the
              new certificate and promotes the key. Transit: add a key
              version; the current version keeps signing until its
              certificate is imported. Use this for live identities.
  --force     KV: replace key and certificate now (services keep the
              certificate they have in memory, but one that restarts before
              the import has none). Transit: same as --rotate.
  --existing  print the CSR of the key already stored (the staged one if
              any) without creating a key, e.g. when the CSR was lost.

The CSR is public: it goes to stdout, or to --out (written whole or not at
all). The private key is never written or printed. Instructions go to stderr
(stdout with --out).

Interrupted (Ctrl-C), csr exits 1 and says where it stopped: before the key
was stored nothing changed; once the store in Vault has begun it is finished
(within --timeout), and the message names what is stored and how to print
its CSR (--existing).

Examples:
  knotmtls csr --client-id 6d2f... --env development --out knot-dev.csr
  knotmtls csr --client-id 6d2f... --env production --transit --out knot-prod.csr
  knotmtls csr --client-id 6d2f... --env production --rotate --out knot-prod-2.csr
`,
	setup:     setupCSR,
	untouched: csrUntouched,
	conflicts: append([]flagRule{
		{exclusive: []string{"existing", "rotate", "force"},
			why: "--existing prints the CSR of the stored key and creates none; --rotate stages a new key while the current certificate keeps serving; --force replaces key and certificate now: choose one"},
	}, commonRules(nil)...),
}

type csrFlags struct {
	target
	vault    vaultFlags
	out      string
	force    bool
	rotate   bool
	existing bool
}

func setupCSR(fs *flag.FlagSet, e *env) func(context.Context) error {
	f := &csrFlags{}
	f.target.register(fs)
	f.vault.register(fs)
	fs.StringVar(&f.out, "out", "", "write the CSR PEM to this `file` instead of stdout")
	fs.BoolVar(&f.force, "force", false, "replace an existing key (see above)")
	fs.BoolVar(&f.rotate, "rotate", false, "stage a new key (KV) or add a key version (Transit) while the current certificate keeps serving")
	fs.BoolVar(&f.existing, "existing", false, "print the CSR of the stored key instead of creating one")
	return func(ctx context.Context) error { return runCSR(ctx, e, f) }
}

func runCSR(ctx context.Context, e *env, f *csrFlags) error {
	if err := f.target.validate(); err != nil {
		return err
	}
	if err := f.vault.validate(); err != nil {
		return err
	}
	e.warnVaultTLS()
	conn, err := f.vault.connect(ctx, e.logger())
	if err != nil {
		return err
	}
	defer conn.Close()
	mode := vaultsource.ProvisionNew
	switch {
	case f.rotate:
		mode = vaultsource.ProvisionRotate
	case f.force:
		mode = vaultsource.ProvisionForce
	}
	st, err := f.target.open(conn.client, conn.sourceOptions()...)
	if err != nil {
		return err
	}
	// With --rotate or --force, find out whether anything is stored yet: on
	// an empty store they simply create the first key, and the
	// instructions must say so.
	fresh := false
	if f.rotate || f.force {
		_, verr := st.Version(ctx)
		fresh = errors.Is(verr, vaultsource.ErrSecretNotFound) || errors.Is(verr, vaultsource.ErrKeyNotFound)
	}
	var csrPEM []byte
	loc := f.target.location()
	if f.existing {
		csrPEM, err = st.CSR(ctx, f.clientID)
	} else {
		if e.interrupted() {
			return interruptedf("%s", csrUntouched)
		}
		// Once begun, the store is finished: an interrupt now would leave
		// nobody knowing whether Vault holds a new key.
		wctx, cancel := e.uninterruptible(ctx, "storing the key in Vault")
		csrPEM, err = st.Provision(wctx, f.clientID, mode)
		if err == nil && !f.transit {
			// Informational: the version the key was written at. A token
			// without metadata access still gets its CSR.
			if v, verr := st.Version(wctx); verr == nil {
				loc = loc.withVersion(v)
			}
		}
		cancel()
		if e.interrupted() {
			return interruptedWrite(err,
				"no CSR was written, and storing the key did not finish within --timeout: whether Vault holds a new key is unknown; run \"knotmtls status\" to see",
				"nothing was changed: no CSR was written, and the key was not stored",
				fmt.Sprintf("the new key is stored in %s, but no CSR was written: print it with \"knotmtls csr --existing\" (same --client-id, --env and location flags)", loc))
		}
	}
	if err != nil {
		return err
	}
	csr, err := provider.ParseCSR(csrPEM)
	if err != nil {
		return fmt.Errorf("cli: the CSR returned by Vault does not parse: %w", err)
	}
	if f.existing && !f.transit {
		if v, err := st.Version(ctx); err == nil {
			loc = loc.withVersion(v)
		}
	}
	if f.existing && e.interrupted() {
		return interruptedf("%s", csrUntouched)
	}

	info := e.stderr
	if f.out != "" {
		if err := writeFileAtomic(f.out, csrPEM, 0o644); err != nil {
			return fmt.Errorf("cli: write the CSR: %w", err)
		}
		info = e.stdout
	} else if _, err := e.stdout.Write(csrPEM); err != nil {
		return fmt.Errorf("cli: write the CSR: %w", err)
	}
	writeCSRInstructions(info, f, csr, loc, fresh)
	return nil
}

func writeCSRInstructions(w io.Writer, f *csrFlags, csr *x509.CertificateRequest, loc StoreLocation, fresh bool) {
	action := "created"
	staged := f.rotate && !f.transit && !fresh
	switch {
	case fresh:
	case f.existing:
		action = "already stored"
	case f.rotate && !f.transit:
		action = "staged (the current certificate keeps serving until the import)"
	case f.rotate || (f.force && f.transit):
		action = "created as a new key version (the current version keeps signing until the import)"
	case f.force:
		action = "replaced (the stored certificate was removed with the old key)"
	}
	keyWhere := "private key " + action + " in " + loc.String() + ", field " + vaultsource.DefaultFields.PrivateKey
	if staged {
		keyWhere = "private key " + action + " in " + loc.String() + ", field " + vaultsource.DefaultFields.PendingPrivateKey
	}
	if f.transit {
		keyWhere = "private key " + action + " inside " + loc.String() + "; it cannot be exported"
	}
	dest := "the CSR above (stdout)"
	if f.out != "" {
		dest = f.out
	}
	transit := ""
	if f.transit {
		transit = " --transit"
	}
	fmt.Fprintf(w, "CSR for client_id %s (Knot %s environment)\n", f.clientID, f.env)
	fmt.Fprintf(w, "  subject:          %s\n", csr.Subject.String())
	fmt.Fprintf(w, "  key:              %s, signed %s\n", describePublicKey(csr.PublicKey), csr.SignatureAlgorithm)
	fmt.Fprintf(w, "  public key sha256: %s\n", spkiFingerprint(csr.RawSubjectPublicKeyInfo))
	fmt.Fprintf(w, "  %s\n", keyWhere)
	fmt.Fprintf(w, "Next:\n")
	fmt.Fprintf(w, "  1. Send %s to Knot for client_id %s in the %s environment\n", dest, f.clientID, f.env)
	fmt.Fprintf(w, "     (the CSR is public; never send or share a private key).\n")
	fmt.Fprintf(w, "  2. Knot returns the signed client certificate. Store it with:\n")
	fmt.Fprintf(w, "       knotmtls import --client-id %s --env %s%s --cert knot.crt\n", f.clientID, f.env, transit)
	fmt.Fprintf(w, "  3. Verify with: knotmtls check --client-id %s --env %s%s --secret-env KNOT_SECRET\n", f.clientID, f.env, transit)
	if f.force && !f.transit && !fresh {
		fmt.Fprintf(w, "Warning: until the import, a service that starts now finds no certificate; running\n")
		fmt.Fprintf(w, "services keep the one they loaded. Prefer --rotate for live identities.\n")
	}
}

// describePublicKey names a public key's algorithm and size ("RSA-2048").
func describePublicKey(pub any) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	default:
		return fmt.Sprintf("%T", pub)
	}
}

// spkiFingerprint is the SHA-256 of a SubjectPublicKeyInfo, hex: it lets an
// operator match a CSR, a certificate and a stored key without seeing keys.
func spkiFingerprint(spki []byte) string {
	sum := sha256.Sum256(spki)
	return hex.EncodeToString(sum[:])
}

package cli

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/knotmtls/knotmtls/provider"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// statusUntouched is what an interrupted status that stopped early left alone.
const statusUntouched = "nothing was changed (status only reads)"

var statusCommand = &command{
	name:    "status",
	summary: "report what is stored and whether it passes Knot's rules (for monitoring)",
	usage:   "status --client-id ID --env development|production [--transit] [--warn DURATION] [--json] [--knot-ca FILE] [flags]",
	help: `
Reads the stored identity from Vault exactly as a service would (KV secret, or
the Transit key's public parts and certificate) and reports the certificate's
subject, issuer, serial, validity with days left, where it is stored (KV path
and version, or Transit key and key version; never the key) and whether it
passes Knot's rules and matches the stored key. It also says whether a
rotation is in progress: a KV key staged by "csr --rotate" in
pending_private_key, or a Transit key version newer than the last one with a
certificate (presence and version numbers only).

The exit code makes it a monitoring check: 0 when valid for longer than
--warn, 5 when it expires within --warn, 6 when expired, 4 when invalid or
nothing is stored yet, 3 when Vault cannot be read, 1 when interrupted.
--json prints one JSON object (also on failure): result, exit_code, problem,
hint, warn and warn_threshold, certificate (subject, issuer, serial,
not_before, not_after, days_left, public_key_sha256), chain, store and
rotation.

Without --warn, a certificate is expiring in the last third of its validity
(NotAfter - NotBefore), and at most in its last 30 days: a fresh
certificate is never expiring. A 30-day certificate is expiring in its last
10 days, a 90-day or 1-year certificate in its last 30 days. --warn sets a
fixed threshold instead.

Examples:
  knotmtls status --client-id 6d2f... --env production --warn 30d
  knotmtls status --client-id 6d2f... --env production --transit --json
`,
	setup:     setupStatus,
	untouched: statusUntouched,
	conflicts: commonRules(nil),
}

// MaxAutoWarn caps the threshold status uses without --warn; see
// [AutoWarn].
const MaxAutoWarn = 30 * 24 * time.Hour

// AutoWarn is the expiry threshold status uses without --warn for a
// certificate valid for validity (NotAfter - NotBefore): a third of it, to
// the minute, at most [MaxAutoWarn]. A freshly issued certificate is thus never
// "expiring", whatever validity Knot gives it; a 30-day certificate is
// expiring in its last 10 days, one of 90 days or more in its last 30.
func AutoWarn(validity time.Duration) time.Duration {
	return max(0, min((validity/3).Round(time.Minute), MaxAutoWarn))
}

// warnAuto is the Warn of a StatusReport without --warn.
const warnAuto = "auto"

// Results of a StatusReport.
const (
	ResultOK       = "ok"
	ResultExpiring = "expiring"
	ResultExpired  = "expired"
	ResultInvalid  = "invalid"
	ResultMissing  = "missing"
	ResultError    = "error"
	// ResultInterrupted: the run was interrupted (Ctrl-C, SIGTERM) before
	// the report was complete; exit code ExitError.
	ResultInterrupted = "interrupted"
)

// StatusReport is what "knotmtls status --json" prints: one JSON object.
type StatusReport struct {
	// ClientID and Environment are the --client-id and --env asked about.
	ClientID    string `json:"client_id"`
	Environment string `json:"environment"`
	// Store is where the identity lives, with the version that was read.
	Store StoreLocation `json:"store"`
	// Certificate describes the stored leaf certificate, when one could
	// be read.
	Certificate *CertificateInfo `json:"certificate,omitempty"`
	// Chain describes the issuing certificates stored after the leaf.
	Chain []CertificateInfo `json:"chain,omitempty"`
	// Rotation says whether a key rotation is in progress, from a
	// read-only description of the store (field presence and version
	// numbers only). It is omitted when Vault could not be read.
	Rotation *RotationInfo `json:"rotation,omitempty"`
	// Result is "ok", "expiring" (valid, but expires within
	// WarnThreshold), "expired", "invalid" (fails a check, e.g. the key does
	// not match), "missing" (nothing or no certificate stored yet),
	// "error" (Vault could not be read) or "interrupted" (Ctrl-C or
	// SIGTERM before the report was complete).
	Result string `json:"result"`
	// Problem explains any result other than "ok"; Hint says what to do.
	Problem string `json:"problem,omitempty"`
	Hint    string `json:"hint,omitempty"`
	// Warn is the --warn given, e.g. "30d" or "36h0m0s", or "auto"
	// without --warn (see [AutoWarn]).
	Warn string `json:"warn"`
	// WarnThreshold is the threshold applied to the certificate read, e.g.
	// "10d": --warn, or the automatic one. Empty when no certificate was
	// read.
	WarnThreshold string `json:"warn_threshold,omitempty"`
	// ExitCode is the process exit code status returns for this report.
	ExitCode int `json:"exit_code"`
	// CheckedAt is when the report was made.
	CheckedAt time.Time `json:"checked_at"`
}

// RotationInfo describes the rotation state of the store. It holds no key
// material: only whether a key is staged and version numbers.
type RotationInfo struct {
	// Pending is true while a rotation is in progress: for KV a new key
	// staged by "csr --rotate" waits in pending_private_key for its
	// certificate; for Transit the latest key version has no certificate
	// while an older one has. The current certificate keeps serving until
	// "knotmtls import".
	Pending bool `json:"pending"`
	// SecretVersion is the current KV v2 secret version (KV only; 0 for
	// KV v1 or when nothing is stored).
	SecretVersion int `json:"secret_version,omitempty"`
	// PendingField names the KV field holding the staged key when Pending
	// (KV only).
	PendingField string `json:"pending_field,omitempty"`
	// LatestKeyVersion is the Transit key's latest version (Transit only).
	LatestKeyVersion int `json:"latest_key_version,omitempty"`
	// CertifiedKeyVersions lists the Transit key versions that have a
	// certificate chain, ascending (Transit only).
	CertifiedKeyVersions []int `json:"certified_key_versions,omitempty"`
}

// describeRotation reads the store's rotation state; nil when it cannot.
func describeRotation(ctx context.Context, st store) *RotationInfo {
	switch s := st.(type) {
	case *vaultsource.KV:
		d, err := s.Describe(ctx)
		if err != nil || !d.Exists {
			return nil
		}
		info := &RotationInfo{Pending: d.Pending, SecretVersion: d.Version}
		if d.Pending {
			info.PendingField = vaultsource.DefaultFields.PendingPrivateKey
		}
		return info
	case *vaultsource.Transit:
		d, err := s.Describe(ctx)
		if err != nil || !d.Exists {
			return nil
		}
		return &RotationInfo{Pending: d.Pending, LatestKeyVersion: d.LatestVersion, CertifiedKeyVersions: d.CertifiedVersions}
	}
	return nil
}

// String describes the rotation state on one line.
func (r *RotationInfo) String() string {
	state := "none"
	if r.Pending {
		state = "in progress"
	}
	if r.LatestKeyVersion > 0 {
		certified := "none"
		if len(r.CertifiedKeyVersions) > 0 {
			parts := make([]string, len(r.CertifiedKeyVersions))
			for i, v := range r.CertifiedKeyVersions {
				parts[i] = strconv.Itoa(v)
			}
			certified = strings.Join(parts, ", ")
		}
		if r.Pending {
			return fmt.Sprintf("%s (key version %d waits for its certificate; versions with a certificate: %s)", state, r.LatestKeyVersion, certified)
		}
		return fmt.Sprintf("%s (latest key version %d; versions with a certificate: %s)", state, r.LatestKeyVersion, certified)
	}
	var notes []string
	if r.Pending {
		notes = append(notes, "a new key is staged in "+r.PendingField+" until its certificate is imported")
	}
	if r.SecretVersion > 0 {
		notes = append(notes, fmt.Sprintf("secret version %d", r.SecretVersion))
	}
	if len(notes) == 0 {
		return state
	}
	return state + " (" + strings.Join(notes, "; ") + ")"
}

// CertificateInfo describes one certificate (public data only).
type CertificateInfo struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	Serial    string    `json:"serial"` // hex, as provider.SerialHex prints it (the openssl form)
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// DaysLeft is the number of whole days until NotAfter; negative once
	// expired.
	DaysLeft           int    `json:"days_left"`
	PublicKey          string `json:"public_key"` // e.g. "RSA-2048"
	SignatureAlgorithm string `json:"signature_algorithm"`
	// PublicKeySHA256 is the SHA-256 of the SubjectPublicKeyInfo, hex: the
	// same value csr prints, to match a CSR, a certificate and a key.
	PublicKeySHA256 string `json:"public_key_sha256"`
}

func describeCertificate(c *x509.Certificate, now time.Time) CertificateInfo {
	left := c.NotAfter.Sub(now)
	days := int(left / (24 * time.Hour))
	if left < 0 {
		days = -int((-left + 24*time.Hour - 1) / (24 * time.Hour))
	}
	return CertificateInfo{
		Subject:            c.Subject.String(),
		Issuer:             c.Issuer.String(),
		Serial:             provider.SerialHex(c),
		NotBefore:          c.NotBefore.UTC(),
		NotAfter:           c.NotAfter.UTC(),
		DaysLeft:           days,
		PublicKey:          describePublicKey(c.PublicKey),
		SignatureAlgorithm: c.SignatureAlgorithm.String(),
		PublicKeySHA256:    spkiFingerprint(c.RawSubjectPublicKeyInfo),
	}
}

type statusFlags struct {
	target
	vault  vaultFlags
	warn   time.Duration
	json   bool
	knotCA string
}

func setupStatus(fs *flag.FlagSet, e *env) func(context.Context) error {
	f := &statusFlags{}
	f.target.register(fs)
	f.vault.register(fs)
	fs.Var(daysFlag{&f.warn}, "warn", "exit 5 when the certificate expires within this `duration` (e.g. 30d, 2w, 720h; default: the last third of its validity, at most 30d)")
	fs.BoolVar(&f.json, "json", false, "print the report as JSON")
	fs.StringVar(&f.knotCA, "knot-ca", "", "optional PEM `file` of Knot's issuing CA: the chain must verify up to it")
	return func(ctx context.Context) error { return runStatus(ctx, e, f) }
}

func runStatus(ctx context.Context, e *env, f *statusFlags) error {
	if err := f.target.validate(); err != nil {
		return err
	}
	if err := f.vault.validate(); err != nil {
		return err
	}
	req := f.target.requirements()
	if f.knotCA != "" {
		var err error
		if req.Roots, err = loadPool(f.knotCA); err != nil {
			return err
		}
	}
	now := e.now()
	req.Now = func() time.Time { return now }
	rep := &StatusReport{
		ClientID: f.clientID, Environment: f.env, Store: f.target.location(),
		Warn: warnAuto, CheckedAt: now.UTC(),
	}
	if e.set["warn"] {
		rep.Warn = formatDays(f.warn)
	}
	e.warnVaultTLS()
	f.inspect(ctx, e, req, rep)
	if e.interrupted() {
		rep.Result, rep.ExitCode, rep.Hint = ResultInterrupted, ExitError, ""
		rep.Problem = "interrupted (Ctrl-C or SIGTERM) before the report was complete; " + statusUntouched
	}
	if f.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("cli: write the report: %w", err)
		}
	} else {
		writeStatus(e.stdout, rep)
	}
	if rep.ExitCode == ExitOK {
		return nil
	}
	// The report says everything; make Run return the code quietly.
	return &exitError{code: rep.ExitCode, err: errors.New("cli: status: " + rep.Result), reported: true}
}

// inspect fills in rep: connect, fetch, check.
func (f *statusFlags) inspect(ctx context.Context, e *env, req provider.Requirements, rep *StatusReport) {
	fail := func(result string, err error) {
		rep.Result, rep.Problem, rep.Hint, rep.ExitCode = result, message(err), Hint(err), ExitCodeOf(err)
	}
	conn, err := f.vault.connect(ctx, e.logger())
	if err != nil {
		fail(ResultError, err)
		return
	}
	defer conn.Close()
	st, err := f.target.open(conn.client, conn.sourceOptions()...)
	if err != nil {
		fail(ResultError, err)
		return
	}
	defer func() {
		// Read-only and best effort: it never changes the result or the
		// exit code.
		if rep.Result != ResultError {
			rep.Rotation = describeRotation(ctx, st)
		}
	}()
	b, err := st.Fetch(ctx)
	if err != nil {
		switch code := ExitCodeOf(err); {
		case errors.Is(err, vaultsource.ErrSecretNotFound), errors.Is(err, vaultsource.ErrKeyNotFound),
			errors.Is(err, vaultsource.ErrMissingField), errors.Is(err, vaultsource.ErrNoCertificateChain),
			errors.Is(err, vaultsource.ErrVersionDeleted):
			fail(ResultMissing, err)
		case code == ExitRefused:
			fail(ResultInvalid, err)
		default:
			fail(ResultError, err)
		}
		return
	}
	rep.Store = rep.Store.withVersion(b.Version)
	leaf := b.Leaf()
	info := describeCertificate(leaf, req.Now())
	rep.Certificate = &info
	for _, c := range b.Chain[1:] {
		rep.Chain = append(rep.Chain, describeCertificate(c, req.Now()))
	}
	if err := req.CheckBundle(b); err != nil {
		if errors.Is(err, provider.ErrExpired) {
			fail(ResultExpired, err)
		} else {
			fail(ResultInvalid, err)
		}
		return
	}
	validity := leaf.NotAfter.Sub(leaf.NotBefore)
	threshold, within := f.warn, "within --warn "+formatDays(f.warn)
	if !e.set["warn"] {
		threshold = AutoWarn(validity)
		within = fmt.Sprintf("within its last %s (the last third of its %s validity, at most 30d; set --warn to choose)",
			formatDays(threshold), formatDays(validity.Round(24*time.Hour)))
	} else if threshold >= validity.Round(time.Minute) {
		within += fmt.Sprintf(", which is not shorter than its whole %s validity: it is expiring from the day it is issued",
			formatDays(validity.Round(24*time.Hour)))
	}
	rep.WarnThreshold = formatDays(threshold)
	if left := leaf.NotAfter.Sub(req.Now()); left <= threshold {
		rep.Result, rep.ExitCode = ResultExpiring, ExitExpiring
		rep.Problem = fmt.Sprintf("the certificate expires in %s (%s), %s",
			formatLeft(left), info.NotAfter.Format(time.RFC3339), within)
		rep.Hint = "rotate now: \"knotmtls csr --rotate\", send the CSR to Knot, then \"knotmtls import\""
		return
	}
	rep.Result, rep.ExitCode = ResultOK, ExitOK
}

// formatLeft prints a remaining validity: whole days from two days on,
// else hours and minutes.
func formatLeft(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	}
	return d.Round(time.Minute).String()
}

func writeStatus(w io.Writer, r *StatusReport) {
	fmt.Fprintf(w, "client_id:    %s (Knot %s environment)\n", r.ClientID, r.Environment)
	fmt.Fprintf(w, "stored in:    %s\n", r.Store)
	if c := r.Certificate; c != nil {
		fmt.Fprintf(w, "subject:      %s\n", c.Subject)
		fmt.Fprintf(w, "issuer:       %s\n", c.Issuer)
		fmt.Fprintf(w, "serial:       %s\n", c.Serial)
		fmt.Fprintf(w, "key:          %s, %s (public key sha256 %s)\n", c.PublicKey, c.SignatureAlgorithm, c.PublicKeySHA256)
		fmt.Fprintf(w, "not before:   %s\n", c.NotBefore.Format(time.RFC3339))
		fmt.Fprintf(w, "not after:    %s (%d days left)\n", c.NotAfter.Format(time.RFC3339), c.DaysLeft)
		for i, ch := range r.Chain {
			fmt.Fprintf(w, "chain[%d]:     %s (expires %s)\n", i+1, ch.Subject, ch.NotAfter.Format(time.RFC3339))
		}
	}
	if r.Rotation != nil {
		fmt.Fprintf(w, "rotation:     %s\n", r.Rotation)
	}
	fmt.Fprintf(w, "result:       %s (exit %d)\n", r.Result, r.ExitCode)
	if r.Problem != "" {
		fmt.Fprintf(w, "problem:      %s\n", r.Problem)
	}
	if r.Hint != "" {
		fmt.Fprintf(w, "hint:         %s\n", r.Hint)
	}
}

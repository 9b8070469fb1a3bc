package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/provider"
)

// checkUntouched is what an interrupted check that stopped early left alone.
const checkUntouched = "nothing was changed (check only reads Vault and makes one read-only request to Knot)"

var checkCommand = &command{
	name:    "check",
	summary: "make a real mTLS request to Knot with the stored certificate",
	usage:   "check --client-id ID --env development|production [--transit] [--base-url URL] [--ca-file FILE] [--secret-env VAR | --secret-kv PATH] [--json] [flags]",
	help: `
Loads the stored identity through the same code a service uses (a knotmtls
provider over the Vault KV or Transit source, and the knotclient Knot client)
and makes one read-only request, POST /merchant/list, to the environment's
mTLS host (https://mtls.<env>.knotapi.com) or --base-url. With --transit every
TLS handshake signs inside Vault.

It reports the TLS version, the serial of the client certificate presented
and the HTTP status. Any 2xx answer is success; a refused handshake, a
network error or an error status from Knot exits 7 (401 INVALID_API_KEYS
means the secret or the certificate's client_id is wrong).

The Basic auth secret comes from the environment variable --secret-env
(default KNOT_SECRET) or, with --secret-kv, from a KV secret in --kv-mount
(field --secret-field). It is never printed.

check changes nothing; interrupted (Ctrl-C), it exits 1 and its report says
so.

Examples:
  KNOT_SECRET=... knotmtls check --client-id 6d2f... --env development
  knotmtls check --client-id 6d2f... --env production --transit --secret-kv knot/production/api
  knotmtls check --client-id knot-test-client --env development \
      --base-url https://127.0.0.1:8443 --ca-file knottest-ca.pem
`,
	setup:     setupCheck,
	untouched: checkUntouched,
	conflicts: append([]flagRule{
		{exclusive: []string{"secret-env", "secret-kv"},
			why: "the Knot secret comes from one place: the environment variable --secret-env, or the KV secret --secret-kv"},
		{only: []string{"secret-field"}, applies: func(v flagValues) bool { return v.set["secret-kv"] }, when: "with --secret-kv"},
	}, commonRules(func(v flagValues) bool { return v.set["secret-kv"] })...),
}

// CheckReport is what "knotmtls check --json" prints: one JSON object.
type CheckReport struct {
	ClientID    string `json:"client_id"`
	Environment string `json:"environment"`
	// URL is the Knot base URL that was called.
	URL string `json:"url"`
	// Operation is the request made, e.g. "POST /merchant/list".
	Operation string `json:"operation"`
	// Store is where the identity lives, with the version presented.
	Store StoreLocation `json:"store"`
	// Serial is the serial of the client certificate presented in the TLS
	// handshake, as provider.SerialHex prints it; empty if none was
	// presented.
	Serial string `json:"serial,omitempty"`
	// TLSVersion is the negotiated version, e.g. "TLS 1.3".
	TLSVersion string `json:"tls_version,omitempty"`
	// HTTPStatus is Knot's HTTP status; 0 when no response arrived.
	HTTPStatus int `json:"http_status"`
	// KnotErrorCode is Knot's error_code when it answered with an error.
	KnotErrorCode string `json:"knot_error_code,omitempty"`
	// Duration is how long the request took, handshake included.
	Duration string `json:"duration"`
	// Result is "ok", "failed" or "interrupted" (Ctrl-C or SIGTERM; exit
	// code ExitError); Problem and Hint explain a failure.
	Result   string `json:"result"`
	Problem  string `json:"problem,omitempty"`
	Hint     string `json:"hint,omitempty"`
	ExitCode int    `json:"exit_code"`
}

type checkFlags struct {
	target
	vault       vaultFlags
	baseURL     string
	caFile      string
	secretEnv   string
	secretKV    string
	secretField string
	product     string
	json        bool
}

func setupCheck(fs *flag.FlagSet, e *env) func(context.Context) error {
	f := &checkFlags{}
	f.target.register(fs)
	f.vault.register(fs)
	fs.StringVar(&f.baseURL, "base-url", "", "Knot API `URL` (default: the --env mTLS host)")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM `file` of the CA that signed the server's certificate (default: system roots)")
	fs.StringVar(&f.secretEnv, "secret-env", "KNOT_SECRET", "environment `variable` holding the Knot secret")
	fs.StringVar(&f.secretKV, "secret-kv", "", "read the Knot secret from this KV secret `path` in --kv-mount instead")
	fs.StringVar(&f.secretField, "secret-field", "secret", "`field` of --secret-kv holding the secret")
	fs.StringVar(&f.product, "product", string(knotclient.ProductCardSwitcher), "product `type` for the /merchant/list request")
	fs.BoolVar(&f.json, "json", false, "print the report as JSON")
	return func(ctx context.Context) error { return runCheck(ctx, e, f) }
}

// checkFailure is a failed mTLS request, with a hint.
type checkFailure struct {
	err  error
	hint string
}

func (e *checkFailure) Error() string { return "cli: check: " + e.err.Error() }
func (e *checkFailure) Unwrap() error { return e.err }

func runCheck(ctx context.Context, e *env, f *checkFlags) error {
	if err := f.target.validate(); err != nil {
		return err
	}
	if err := f.vault.validate(); err != nil {
		return err
	}
	base := f.baseURL
	if base == "" {
		base = knotclient.Environment(f.env).BaseURL()
	}
	// The messages below do not repeat the URL: it could carry credentials,
	// and the report prints the URL.
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return usagef("--base-url must be an absolute https:// URL: Knot is called over https only")
	}
	if u.User != nil {
		return usagef("--base-url must not carry user info: the Knot secret comes from --secret-env or --secret-kv")
	}
	if u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(base, "?") || strings.HasSuffix(base, "#") {
		return usagef("--base-url must not carry a query or a fragment: give the scheme, host and optional path prefix only")
	}
	var cfg knotclient.Config
	if f.caFile != "" {
		pool, err := loadPool(f.caFile)
		if err != nil {
			return err
		}
		cfg.RootCAs = pool
	}
	rep := &CheckReport{ClientID: f.clientID, Environment: f.env, URL: base,
		Operation: "POST /merchant/list", Store: f.target.location()}
	e.warnVaultTLS()
	err = f.call(ctx, e, cfg, rep)
	switch {
	case e.interrupted():
		rep.Result, rep.ExitCode = ResultInterrupted, ExitError
		rep.Problem = "interrupted (Ctrl-C or SIGTERM) before the check was complete; " + checkUntouched
		if err == nil {
			err = &interruptedError{outcome: checkUntouched}
		}
	case err != nil && ExitCodeOf(err) == ExitUsage:
		return err
	case err != nil:
		rep.Result, rep.Problem, rep.Hint, rep.ExitCode = "failed", message(err), Hint(err), ExitCodeOf(err)
	default:
		rep.Result, rep.ExitCode = ResultOK, ExitOK
	}
	if f.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if werr := enc.Encode(rep); werr != nil {
			return fmt.Errorf("cli: write the report: %w", werr)
		}
	} else {
		writeCheck(e.stdout, rep)
	}
	if rep.ExitCode == ExitOK {
		return nil
	}
	return &exitError{code: rep.ExitCode, err: err, reported: true}
}

// call loads the identity, makes the request and fills in rep.
func (f *checkFlags) call(ctx context.Context, e *env, cfg knotclient.Config, rep *CheckReport) error {
	if f.secretKV == "" {
		if f.secretEnv == "" {
			return usagef("give the Knot secret with --secret-env VAR or --secret-kv PATH")
		}
		if os.Getenv(f.secretEnv) == "" {
			return usagef("the environment variable %s (--secret-env) is empty: set it to the Knot secret, or use --secret-kv PATH", f.secretEnv)
		}
	}
	conn, err := f.vault.connect(ctx, e.logger())
	if err != nil {
		return err
	}
	defer conn.Close()
	secret, err := f.secret(ctx, conn.client)
	if err != nil {
		return err
	}
	st, err := f.target.open(conn.client, conn.sourceOptions()...)
	if err != nil {
		return err
	}
	p, err := provider.New(st, provider.WithRequirements(f.target.requirements()), provider.WithLogger(e.logger()))
	if err != nil {
		return err
	}
	defer p.Close()
	b, err := p.Bundle(ctx)
	if err != nil {
		return err
	}
	rep.Store = rep.Store.withVersion(b.Version)

	rec := &recorder{getter: p}
	cfg.ClientID = f.clientID
	cfg.Secret = knotclient.StaticSecret(secret)
	cfg.Certificates = rec
	cfg.BaseURL = rep.URL
	cfg.MaxAttempts = 1 // a check reports the first answer
	cfg.Logger = e.logger()
	cfg.UserAgent = "knotmtls-check"
	cfg.WrapTransport = rec.wrap
	client, err := knotclient.New(cfg)
	if err != nil {
		return err
	}
	defer client.Close()
	start := time.Now()
	_, err = client.ListMerchants(ctx, knotclient.ListMerchantsRequest{Type: knotclient.ProductType(f.product)})
	rep.Duration = time.Since(start).Round(time.Millisecond).String()
	rep.Serial, rep.TLSVersion, rep.HTTPStatus = rec.result()
	if err == nil {
		return nil
	}
	var ke *knotclient.Error
	if errors.As(err, &ke) {
		rep.KnotErrorCode = string(ke.Code)
		hint := "Knot answered with an error status: see the error code and message"
		if ke.StatusCode == http.StatusUnauthorized {
			hint = "Knot refused the credentials: check the secret (--secret-env / --secret-kv) and that the certificate's CN is this client_id; development and production have different secrets"
		}
		return &checkFailure{err: err, hint: hint}
	}
	if ctx.Err() != nil {
		return &checkFailure{err: err, hint: "no answer in time: check the network path to " + rep.URL + ", or raise --timeout"}
	}
	hint := "the request did not get an answer: check --base-url, the network and --ca-file"
	if rep.Serial != "" && rep.HTTPStatus == 0 {
		hint = "the TLS connection failed after the client certificate was presented: Knot (or a proxy) refused it; check that Knot issued this certificate for this environment, and --ca-file"
	}
	return &checkFailure{err: err, hint: hint}
}

// secret returns the Knot Basic auth secret from the environment or KV.
func (f *checkFlags) secret(ctx context.Context, client *api.Client) (string, error) {
	if f.secretKV == "" {
		return os.Getenv(f.secretEnv), nil
	}
	var (
		sec *api.KVSecret
		err error
	)
	path := strings.Trim(f.secretKV, "/")
	if f.kvVersion == 1 {
		sec, err = client.KVv1(f.kvMount).Get(ctx, path)
	} else {
		sec, err = client.KVv2(f.kvMount).Get(ctx, path)
	}
	apiPath := f.kvMount + "/" + path
	if f.kvVersion == 2 {
		apiPath = f.kvMount + "/data/" + path
	}
	if err != nil {
		return "", secretReadError(apiPath, err)
	}
	v, _ := sec.Data[f.secretField].(string)
	if v == "" {
		return "", &exitError{code: ExitRefused, err: fmt.Errorf("cli: the KV secret %s has no string field %q holding the Knot secret", apiPath, f.secretField)}
	}
	return v, nil
}

// secretReadError turns a failed read of the Knot secret into the same
// classes as the vaultsource errors, naming the path and capability.
func secretReadError(path string, err error) error {
	var re *api.ResponseError
	switch {
	case errors.Is(err, api.ErrSecretNotFound):
		return &exitError{code: ExitRefused, err: fmt.Errorf("cli: no Knot secret stored at %s (--secret-kv): %w", path, err)}
	case errors.As(err, &re) && re.StatusCode == http.StatusForbidden:
		return &exitError{code: ExitVault, err: fmt.Errorf("cli: read the Knot secret: permission denied: the token needs the \"read\" capability on %s", path)}
	default:
		return &exitError{code: ExitVault, err: fmt.Errorf("cli: read the Knot secret at %s: %w", path, err)}
	}
}

// recorder wraps the certificate getter and the transport to learn what a
// request presented and got: the client certificate serial, the TLS version
// and the HTTP status.
type recorder struct {
	getter provider.ClientCertificateGetter

	mu      sync.Mutex
	serial  string
	version uint16
	status  int
}

func (r *recorder) GetClientCertificate(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c, err := r.getter.GetClientCertificate(cri)
	if err == nil && c != nil && c.Leaf != nil {
		r.mu.Lock()
		r.serial = provider.SerialHex(c.Leaf)
		r.mu.Unlock()
	}
	return c, err
}

func (r *recorder) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if resp != nil {
			r.mu.Lock()
			r.status = resp.StatusCode
			if resp.TLS != nil {
				r.version = resp.TLS.Version
			}
			r.mu.Unlock()
		}
		return resp, err
	})
}

func (r *recorder) result() (serial, version string, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.version != 0 {
		version = tls.VersionName(r.version)
	}
	return r.serial, version, r.status
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func writeCheck(w io.Writer, r *CheckReport) {
	fmt.Fprintf(w, "client_id:    %s (Knot %s environment)\n", r.ClientID, r.Environment)
	fmt.Fprintf(w, "request:      %s %s\n", r.Operation, r.URL)
	fmt.Fprintf(w, "identity:     %s\n", r.Store)
	if r.TLSVersion != "" {
		fmt.Fprintf(w, "tls:          %s\n", r.TLSVersion)
	}
	if r.Serial != "" {
		fmt.Fprintf(w, "presented:    client certificate serial %s\n", r.Serial)
	}
	if r.HTTPStatus != 0 {
		fmt.Fprintf(w, "http status:  %d %s\n", r.HTTPStatus, http.StatusText(r.HTTPStatus))
	}
	if r.KnotErrorCode != "" {
		fmt.Fprintf(w, "knot error:   %s\n", r.KnotErrorCode)
	}
	if r.Duration != "" {
		fmt.Fprintf(w, "took:         %s\n", r.Duration)
	}
	fmt.Fprintf(w, "result:       %s (exit %d)\n", r.Result, r.ExitCode)
	if r.Problem != "" {
		fmt.Fprintf(w, "problem:      %s\n", r.Problem)
	}
	if r.Hint != "" {
		fmt.Fprintf(w, "hint:         %s\n", r.Hint)
	}
}

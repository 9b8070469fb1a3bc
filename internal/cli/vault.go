package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"

	"github.com/knotmtls/knotmtls/vaultauth"
	"github.com/knotmtls/knotmtls/vaultsource"
)

// Auth methods of --auth.
const (
	AuthToken      = "token"
	AuthAppRole    = "approle"
	AuthKubernetes = "kubernetes"
)

// DefaultKubernetesTokenPath is where Kubernetes mounts the service account
// token (vaultauth.DefaultKubernetesTokenPath).
const DefaultKubernetesTokenPath = vaultauth.DefaultKubernetesTokenPath

// vaultFlags are the Vault connection and login flags every command has.
type vaultFlags struct {
	addr         string
	namespace    string
	auth         string
	tokenFile    string
	roleID       string
	secretIDFile string
	approleMount string
	wrapped      bool
	k8sRole      string
	k8sMount     string
	k8sTokenFile string
}

func (v *vaultFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&v.addr, "vault-addr", "", "Vault `address` (default $VAULT_ADDR)")
	fs.StringVar(&v.namespace, "vault-namespace", "", "Vault Enterprise `namespace` (default $VAULT_NAMESPACE)")
	fs.StringVar(&v.auth, "auth", AuthToken, "Vault login `method`: token, approle or kubernetes")
	fs.StringVar(&v.tokenFile, "token-file", "", "token: read the token from this `file` (e.g. a Vault Agent sink) instead of $VAULT_TOKEN or ~/.vault-token")
	fs.StringVar(&v.roleID, "approle-role-id", "", "approle: role `id` (default $VAULT_ROLE_ID)")
	fs.StringVar(&v.secretIDFile, "approle-secret-id-file", "", "approle: `file` holding the secret id (never pass it as a flag)")
	fs.StringVar(&v.approleMount, "approle-mount", "approle", "approle: auth `mount` path")
	fs.BoolVar(&v.wrapped, "approle-wrapped", false, "approle: the secret id file holds a response-wrapping token")
	fs.StringVar(&v.k8sRole, "k8s-role", "", "kubernetes: Vault `role` to log in as")
	fs.StringVar(&v.k8sMount, "k8s-mount", "kubernetes", "kubernetes: auth `mount` path")
	fs.StringVar(&v.k8sTokenFile, "k8s-token-file", DefaultKubernetesTokenPath, "kubernetes: service account token `file`")
}

// vaultConn is a logged-in Vault client. Close it when done.
type vaultConn struct {
	client *api.Client
	auth   *vaultauth.Auth
	http   *http.Client
}

// Close stops the token renewal and closes idle connections, so that a
// caller running many commands in one process (tests, the demo) keeps no
// connection goroutines behind. The token is not revoked.
func (c *vaultConn) Close() {
	if c == nil {
		return
	}
	if c.auth != nil {
		_ = c.auth.Close()
	}
	if c.http != nil {
		c.http.CloseIdleConnections()
	}
}

// sourceOptions are the options every vaultsource source gets: a 403 makes
// it log in again once.
func (c *vaultConn) sourceOptions() []vaultsource.Option {
	return []vaultsource.Option{vaultsource.WithAuth(c.auth)}
}

// validate checks the login flags without I/O.
func (v *vaultFlags) validate() error {
	switch v.auth {
	case AuthToken:
	case AuthAppRole:
		if v.roleID == "" {
			v.roleID = os.Getenv("VAULT_ROLE_ID")
		}
		if v.roleID == "" {
			return usagef("--auth approle needs --approle-role-id (or $VAULT_ROLE_ID)")
		}
		if v.secretIDFile == "" {
			return usagef("--auth approle needs --approle-secret-id-file")
		}
	case AuthKubernetes:
		if v.k8sRole == "" {
			return usagef("--auth kubernetes needs --k8s-role")
		}
	default:
		return usagef("--auth %q: want token, approle or kubernetes", v.auth)
	}
	return nil
}

// method returns the login method the flags select, without I/O.
func (v *vaultFlags) method(client *api.Client) (api.AuthMethod, error) {
	if err := v.validate(); err != nil {
		return nil, err
	}
	switch v.auth {
	case AuthToken:
		if v.tokenFile != "" {
			return &vaultauth.TokenFile{Path: v.tokenFile}, nil
		}
		if tok := client.Token(); tok != "" { // $VAULT_TOKEN, read by api.NewClient
			return vaultauth.Token(tok), nil
		}
		if home, err := os.UserHomeDir(); err == nil {
			p := filepath.Join(home, ".vault-token") // what "vault login" leaves behind
			if _, err := os.Stat(p); err == nil {
				return &vaultauth.TokenFile{Path: p}, nil
			}
		}
		return nil, &vaultSetupError{msg: "no Vault token: set VAULT_TOKEN, pass --token-file, run \"vault login\", or use --auth approle or --auth kubernetes"}
	case AuthAppRole:
		opts := []approle.LoginOption{approle.WithMountPath(v.approleMount)}
		if v.wrapped {
			opts = append(opts, approle.WithWrappingToken())
		}
		return vaultauth.AppRole(v.roleID, &approle.SecretID{FromFile: v.secretIDFile}, opts...)
	case AuthKubernetes:
		return vaultauth.Kubernetes(v.k8sRole,
			kubernetes.WithMountPath(v.k8sMount),
			kubernetes.WithServiceAccountTokenPath(v.k8sTokenFile))
	}
	return nil, usagef("--auth %q: want token, approle or kubernetes", v.auth)
}

// connect builds a Vault client from the standard VAULT_* environment and
// the flags, and logs in.
func (v *vaultFlags) connect(ctx context.Context, log *slog.Logger) (*vaultConn, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, &vaultSetupError{msg: "the VAULT_* environment is invalid", err: cfg.Error}
	}
	if v.addr != "" {
		cfg.Address = v.addr
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, &vaultSetupError{msg: "cannot configure the Vault client", err: err}
	}
	if v.namespace != "" {
		client.SetNamespace(v.namespace)
	}
	method, err := v.method(client)
	if err != nil {
		return nil, err
	}
	auth, err := vaultauth.New(client, method, vaultauth.WithLogger(log))
	if err != nil {
		return nil, &vaultSetupError{msg: "cannot set up the Vault login", err: err}
	}
	conn := &vaultConn{client: client, auth: auth, http: cfg.HttpClient}
	if err := auth.Start(ctx); err != nil {
		conn.Close()
		return nil, &loginFailure{addr: client.Address(), method: v.auth, err: err}
	}
	return conn, nil
}

// vaultSetupError is a Vault configuration problem found before any request.
type vaultSetupError struct {
	msg string
	err error
}

func (e *vaultSetupError) Error() string {
	if e.err == nil {
		return "cli: vault: " + e.msg
	}
	return "cli: vault: " + e.msg + ": " + e.err.Error()
}

func (e *vaultSetupError) Unwrap() error { return e.err }

// loginFailure is a failed first login, with what is needed for a hint.
type loginFailure struct {
	addr   string
	method string
	err    error
}

func (e *loginFailure) Error() string {
	return fmt.Sprintf("cli: vault login (%s) at %s failed: %v", e.method, e.addr, e.err)
}

func (e *loginFailure) Unwrap() error { return e.err }

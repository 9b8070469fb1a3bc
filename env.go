package knotmtls

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"
	"github.com/hashicorp/vault/api/auth/userpass"

	"github.com/knotmtls/knotmtls/knotclient"
	"github.com/knotmtls/knotmtls/vaultauth"
)

// Environment variables read by [ConfigFromEnv] and [NewFromEnv], besides
// the standard VAULT_* ones that api.DefaultConfig reads (VAULT_ADDR,
// VAULT_AGENT_ADDR, VAULT_CACERT, VAULT_NAMESPACE, VAULT_TOKEN...).
const (
	// EnvClientID is the Knot client_id (required).
	EnvClientID = "KNOT_CLIENT_ID"
	// EnvEnvironment is the Knot environment: development or production
	// (required).
	EnvEnvironment = "KNOT_ENVIRONMENT"
	// EnvSecret holds the Knot secret. Exactly one of EnvSecret and
	// EnvSecretKVPath is required.
	EnvSecret = "KNOT_SECRET"
	// EnvSecretKVPath is a KV secret path, inside EnvKVMount, holding the
	// Knot secret in the field EnvSecretKVField (default "secret").
	EnvSecretKVPath  = "KNOTMTLS_SECRET_KV_PATH"
	EnvSecretKVField = "KNOTMTLS_SECRET_KV_FIELD"

	// EnvStore says where the key lives: kv (default) or transit.
	EnvStore = "KNOTMTLS_STORE"
	// EnvKVMount, EnvKVPath and EnvKVVersion override the KV location
	// (defaults secret, knot/<env>/<client_id>, 2).
	EnvKVMount   = "KNOTMTLS_KV_MOUNT"
	EnvKVPath    = "KNOTMTLS_KV_PATH"
	EnvKVVersion = "KNOTMTLS_KV_VERSION"
	// EnvTransitMount and EnvTransitKey override the Transit location
	// (defaults transit, knot-<env>-<client_id>).
	EnvTransitMount = "KNOTMTLS_TRANSIT_MOUNT"
	EnvTransitKey   = "KNOTMTLS_TRANSIT_KEY"

	// EnvVaultAuth is the Vault login method (required): token (VAULT_TOKEN),
	// token-file, approle, kubernetes, userpass or proxy (a Vault Proxy or
	// Agent at VAULT_AGENT_ADDR holds the token).
	EnvVaultAuth = "KNOTMTLS_VAULT_AUTH"
	// EnvTokenFile is the token file of token-file (a Vault Agent sink).
	EnvTokenFile = "KNOTMTLS_VAULT_TOKEN_FILE"
	// AppRole: role id and secret-id file (both required), whether the
	// file holds a response-wrapping token, auth mount (default approle).
	EnvAppRoleRoleID       = "KNOTMTLS_APPROLE_ROLE_ID"
	EnvAppRoleSecretIDFile = "KNOTMTLS_APPROLE_SECRET_ID_FILE"
	EnvAppRoleWrapped      = "KNOTMTLS_APPROLE_WRAPPED"
	EnvAppRoleMount        = "KNOTMTLS_APPROLE_MOUNT"
	// Kubernetes: Vault role (required), auth mount (default kubernetes),
	// service account token file (default
	// vaultauth.DefaultKubernetesTokenPath).
	EnvK8sRole      = "KNOTMTLS_K8S_ROLE"
	EnvK8sMount     = "KNOTMTLS_K8S_MOUNT"
	EnvK8sTokenFile = "KNOTMTLS_K8S_TOKEN_FILE"
	// Userpass (development): user name and password file (both
	// required), auth mount (default userpass).
	EnvUserpassUsername     = "KNOTMTLS_USERPASS_USERNAME"
	EnvUserpassPasswordFile = "KNOTMTLS_USERPASS_PASSWORD_FILE"
	EnvUserpassMount        = "KNOTMTLS_USERPASS_MOUNT"

	// EnvKnotBaseURL and EnvKnotCAFile point the Knot client at another
	// server, such as a knottest server (the CLI's --base-url and
	// --ca-file): Knot.BaseURL and Knot.RootCAs.
	EnvKnotBaseURL = "KNOTMTLS_KNOT_BASE_URL"
	EnvKnotCAFile  = "KNOTMTLS_KNOT_CA_FILE"
)

// Values of [EnvVaultAuth].
const (
	AuthToken      = "token"
	AuthTokenFile  = "token-file"
	AuthAppRole    = "approle"
	AuthKubernetes = "kubernetes"
	AuthUserpass   = "userpass"
	AuthProxy      = "proxy"
)

// authParams are the variables of each login method; a variable of another
// method than the chosen one is refused, so nobody believes it took effect.
var authParams = map[string][]string{
	AuthToken:      nil,
	AuthTokenFile:  {EnvTokenFile},
	AuthAppRole:    {EnvAppRoleRoleID, EnvAppRoleSecretIDFile, EnvAppRoleWrapped, EnvAppRoleMount},
	AuthKubernetes: {EnvK8sRole, EnvK8sMount, EnvK8sTokenFile},
	AuthUserpass:   {EnvUserpassUsername, EnvUserpassPasswordFile, EnvUserpassMount},
	AuthProxy:      nil,
}

func authNames() string {
	names := make([]string, 0, len(authParams))
	for n := range authParams {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// NewFromEnv is [New] with the [Config] that [ConfigFromEnv] reads from the
// environment. Its [*ConfigError] lists the problems of the KNOT_* and
// KNOTMTLS_* variables and of the VAULT_* ones together.
func NewFromEnv(ctx context.Context) (*Client, error) {
	cfg, err := ConfigFromEnv()
	var ce *ConfigError
	if errors.As(err, &ce) {
		// Report the VAULT_* problems New would find too, all at once.
		ce.Problems = append(ce.Problems, vaultEnvProblems(api.DefaultConfig())...)
		return nil, ce
	}
	if err != nil {
		return nil, err
	}
	return New(ctx, cfg)
}

// ConfigFromEnv reads a [Config] from the environment variables named by
// the Env constants (the standard VAULT_* variables are read later, by
// api.DefaultConfig in [New]). It contacts nothing: it reads only the
// environment and the file of [EnvKnotCAFile]. Missing, malformed or
// contradictory settings are reported together in one [*ConfigError],
// naming the variables. Adjust the Config it returns (for example to add
// provider options) and pass it to New.
func ConfigFromEnv() (Config, error) { return configFromEnv(os.Getenv) }

func configFromEnv(getenv func(string) string) (Config, error) {
	var p problems
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	cfg := Config{
		ClientID:    get(EnvClientID),
		Environment: knotclient.Environment(get(EnvEnvironment)),
	}
	if cfg.ClientID == "" {
		p.add("%s is required (the client_id Knot gave you)", EnvClientID)
	}
	switch cfg.Environment {
	case knotclient.Development, knotclient.Production:
	case "":
		p.add("%s is required: development or production", EnvEnvironment)
	default:
		p.add("%s=%q: want development or production", EnvEnvironment, cfg.Environment)
	}

	// The Knot secret: never trimmed, never quoted in a problem.
	secret := getenv(EnvSecret)
	cfg.SecretKVPath = get(EnvSecretKVPath)
	cfg.SecretField = get(EnvSecretKVField)
	switch {
	case secret != "" && cfg.SecretKVPath != "":
		p.add("%s and %s exclude each other: the Knot secret comes from one place", EnvSecret, EnvSecretKVPath)
	case secret == "" && cfg.SecretKVPath == "":
		p.add("the Knot secret is required: set %s, or %s to a KV secret holding it", EnvSecret, EnvSecretKVPath)
	case secret != "":
		cfg.Secret = knotclient.StaticSecret(secret)
	}
	if cfg.SecretField != "" && cfg.SecretKVPath == "" {
		p.add("%s applies only with %s", EnvSecretKVField, EnvSecretKVPath)
	}

	// Where the key lives.
	cfg.KVMount = get(EnvKVMount)
	switch store := get(EnvStore); store {
	case "", "kv":
		cfg.KVPath = get(EnvKVPath)
		for _, n := range []string{EnvTransitMount, EnvTransitKey} {
			if get(n) != "" {
				p.add("%s applies only with %s=transit", n, EnvStore)
			}
		}
	case "transit":
		cfg.Transit = true
		cfg.TransitMount, cfg.TransitKey = get(EnvTransitMount), get(EnvTransitKey)
		if get(EnvKVPath) != "" {
			p.add("%s applies only with %s=kv (with transit the key is %s)", EnvKVPath, EnvStore, EnvTransitKey)
		}
	default:
		p.add("%s=%q: want kv or transit", EnvStore, store)
	}
	if v := get(EnvKVVersion); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || (n != 1 && n != 2) {
			p.add("%s=%q: want 1 or 2", EnvKVVersion, v)
		}
		cfg.KVVersion = n
	}

	if cfg.Transit && cfg.SecretKVPath == "" {
		for _, n := range []string{EnvKVMount, EnvKVVersion} {
			if get(n) != "" {
				p.add("%s is unused with %s=transit and without %s", n, EnvStore, EnvSecretKVPath)
			}
		}
	}
	authEnv(getenv, &cfg, &p)

	// A test server instead of Knot.
	cfg.Knot.BaseURL = get(EnvKnotBaseURL)
	if f := get(EnvKnotCAFile); f != "" {
		pem, err := os.ReadFile(f)
		pool := x509.NewCertPool()
		switch {
		case err != nil:
			p.add("%s: %v", EnvKnotCAFile, err)
		case !pool.AppendCertsFromPEM(pem):
			p.add("%s %s: no PEM certificate in it", EnvKnotCAFile, f)
		default:
			cfg.Knot.RootCAs = pool
		}
	}
	if err := p.err(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// authEnv reads the login method and its parameters into cfg.
func authEnv(getenv func(string) string, cfg *Config, p *problems) {
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	method := get(EnvVaultAuth)
	_, known := authParams[method]
	switch {
	case method == "":
		p.add("%s is required: %s", EnvVaultAuth, authNames())
	case !known:
		p.add("%s=%q: want %s", EnvVaultAuth, method, authNames())
	}
	for m, names := range authParams {
		if m == method || !known {
			continue
		}
		for _, n := range names {
			if get(n) != "" {
				p.add("%s applies only with %s=%s", n, EnvVaultAuth, m)
			}
		}
	}
	need := func(name string) string {
		v := get(name)
		if v == "" {
			p.add("%s=%s needs %s", EnvVaultAuth, method, name)
		}
		return v
	}
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	var (
		m   api.AuthMethod
		err error
	)
	switch method {
	case AuthToken:
		// api.NewClient reads VAULT_TOKEN too; vaultauth.Token keeps the
		// lookup, renewal and denial diagnosis.
		tok := strings.TrimSpace(getenv("VAULT_TOKEN"))
		if tok == "" {
			p.add("%s=%s needs VAULT_TOKEN (or use %s with a Vault Agent sink)", EnvVaultAuth, method, AuthTokenFile)
			return
		}
		m = vaultauth.Token(tok)
	case AuthTokenFile:
		if f := need(EnvTokenFile); f != "" {
			m = &vaultauth.TokenFile{Path: f}
		}
	case AuthAppRole:
		role, file := need(EnvAppRoleRoleID), need(EnvAppRoleSecretIDFile)
		opts := []approle.LoginOption{approle.WithMountPath(or(get(EnvAppRoleMount), "approle"))}
		if w := get(EnvAppRoleWrapped); w != "" {
			b, perr := strconv.ParseBool(w)
			if perr != nil {
				p.add("%s=%q: want true or false", EnvAppRoleWrapped, w)
			} else if b {
				opts = append(opts, approle.WithWrappingToken())
			}
		}
		if role != "" && file != "" {
			m, err = vaultauth.AppRole(role, &approle.SecretID{FromFile: file}, opts...)
		}
	case AuthKubernetes:
		if role := need(EnvK8sRole); role != "" {
			m, err = vaultauth.Kubernetes(role,
				kubernetes.WithMountPath(or(get(EnvK8sMount), "kubernetes")),
				kubernetes.WithServiceAccountTokenPath(or(get(EnvK8sTokenFile), vaultauth.DefaultKubernetesTokenPath)))
		}
	case AuthUserpass:
		user, file := need(EnvUserpassUsername), need(EnvUserpassPasswordFile)
		if user != "" && file != "" {
			m, err = vaultauth.Userpass(user, &userpass.Password{FromFile: file},
				userpass.WithMountPath(or(get(EnvUserpassMount), "userpass")))
		}
	case AuthProxy:
		cfg.Proxy = true
	}
	if err != nil {
		p.add("%s=%s: %v", EnvVaultAuth, method, err)
	}
	cfg.Login = m
}

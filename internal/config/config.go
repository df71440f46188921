// Package config reads tenant-registry's configuration from the environment.
// A bad value stops start-up with an error naming the variable.
package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/platform/tenant-registry/internal/secret"
)

// Environments.
const (
	Dev   = "dev"
	Stage = "stage"
	Prod  = "prod"
)

// Config is the service's configuration. README.md lists every variable.
type Config struct {
	Env  string // APP_ENV: dev, stage or prod
	Addr string // ADDR: listen address

	DatabaseURL string // DATABASE_URL: PostgreSQL; empty → embedded SQLite
	// DatabaseListenURL (DATABASE_LISTEN_URL, default DATABASE_URL) is the
	// verify cache listener's direct connection, for when DATABASE_URL goes
	// through PgBouncer in transaction mode.
	DatabaseListenURL string
	SQLitePath        string // SQLITE_PATH: the embedded store's file; empty → in memory
	DBMaxConns        int    // DB_MAX_CONNS: PostgreSQL pool size

	KeycloakIssuer       string // KEYCLOAK_ISSUER: OIDC issuer of bearer tokens
	KeycloakAudience     string // KEYCLOAK_AUDIENCE: expected token audience
	KeycloakAdminURL     string // KEYCLOAK_ADMIN_URL: Keycloak base URL for the Admin API; empty → mock
	KeycloakRealm        string // KEYCLOAK_REALM
	KeycloakClientID     string // KEYCLOAK_CLIENT_ID
	KeycloakClientSecret string // KEYCLOAK_CLIENT_SECRET
	KeycloakInviteURL    string // KEYCLOAK_INVITE_URL: where invited admins set up their account
	KeycloakOrgDomain    string // KEYCLOAK_ORG_DOMAIN_SUFFIX: gives new organisations the domain <slug>.<suffix> (Keycloak < 26.4)

	CORSAllowedOrigins []string // CORS_ALLOWED_ORIGINS: comma-separated origins
	LogLevel           string   // LOG_LEVEL: debug, info, warn, error

	// ShutdownDelay (SHUTDOWN_DELAY, default 5s, ≥ 0) is how long a replica
	// keeps serving after SIGTERM with /readyz answering 503, so that load
	// balancers stop sending it requests before it stops accepting them.
	ShutdownDelay   time.Duration
	ShutdownTimeout time.Duration // SHUTDOWN_TIMEOUT: grace period for in-flight requests, after SHUTDOWN_DELAY
	RPCTimeout      time.Duration // RPC_TIMEOUT: default deadline of a unary RPC (default 10s; a client may ask for less)

	CatalogFile   string        // CATALOG_FILE: product catalog JSON; empty → the embedded default
	SweepInterval time.Duration // SWEEP_INTERVAL: how often expired trials are recorded (default 1m)
	RetentionDays int           // RETENTION_DAYS: audit events older than this are deleted; 0 keeps them forever

	// APIKeySecret (API_KEY_SECRET) keys the HMAC under which API keys are
	// stored; at least 32 bytes. Required in stage and prod; in dev an
	// empty value means DevAPIKeySecret.
	APIKeySecret string

	// IDPSecretKey (IDP_SECRET_KEY: base64 of 32 bytes) seals secrets
	// stored by the registry (IdP client secrets, webhook signing secrets)
	// with AES-256-GCM (package secret). Required in stage and prod; in dev
	// an empty value means DevIDPSecretKey.
	IDPSecretKey []byte

	// DeletionGrace (DELETION_GRACE, default 720h) is how long an
	// offboarded tenant can be restored before the sweeper purges it.
	DeletionGrace time.Duration

	// WebhookRetryBase (WEBHOOK_RETRY_BASE, default 5s) is the first retry
	// delay of a failed webhook delivery; each retry doubles it.
	WebhookRetryBase time.Duration
	// WebhookAllowPrivate (WEBHOOK_ALLOW_PRIVATE: true or false; default
	// true in dev, false in stage and prod) lets webhook targets be http
	// URLs and resolve to loopback, private, link-local or metadata
	// addresses.
	WebhookAllowPrivate bool

	// AuditSigningKeyFile (AUDIT_SIGNING_KEY_FILE) names the Ed25519
	// private key (PKCS#8 PEM) that signs audit digests. Required in stage
	// and prod (app.New reads it, and refuses a file that is unreadable or
	// not an Ed25519 key); in dev an empty value means a key generated at
	// start.
	AuditSigningKeyFile string
	// AuditDigestInterval (AUDIT_DIGEST_INTERVAL, default 1h) is how often
	// every replica signs digests of the chains that moved.
	AuditDigestInterval time.Duration
}

// DevIDPSecretKey is the documented IDP_SECRET_KEY used in APP_ENV=dev when
// none is set (base64 of 32 bytes). It is public: stage and prod refuse it.
const DevIDPSecretKey = "ZGV2LW9ubHktaWRwLXNlY3JldC1rZXktMzItYnl0ZXM="

// DevAPIKeySecret is the documented API_KEY_SECRET used in APP_ENV=dev when
// none is set. It is public: stage and prod refuse it and refuse to start
// without their own.
const DevAPIKeySecret = "tenant-registry-dev-only-api-key-secret-not-for-production"

// minAPIKeySecret is the shortest API_KEY_SECRET accepted.
const minAPIKeySecret = 32

// Load reads the configuration through getenv.
func Load(getenv func(string) string) (Config, error) {
	c := Config{
		Env:                  or(getenv("APP_ENV"), Dev),
		Addr:                 or(getenv("ADDR"), ":8090"),
		DatabaseURL:          getenv("DATABASE_URL"),
		DatabaseListenURL:    getenv("DATABASE_LISTEN_URL"),
		SQLitePath:           getenv("SQLITE_PATH"),
		KeycloakIssuer:       getenv("KEYCLOAK_ISSUER"),
		KeycloakAudience:     or(getenv("KEYCLOAK_AUDIENCE"), "tenant-registry"),
		KeycloakAdminURL:     getenv("KEYCLOAK_ADMIN_URL"),
		KeycloakRealm:        or(getenv("KEYCLOAK_REALM"), "platform"),
		KeycloakClientID:     or(getenv("KEYCLOAK_CLIENT_ID"), "tenant-registry"),
		KeycloakClientSecret: getenv("KEYCLOAK_CLIENT_SECRET"),
		KeycloakInviteURL:    getenv("KEYCLOAK_INVITE_URL"),
		KeycloakOrgDomain:    getenv("KEYCLOAK_ORG_DOMAIN_SUFFIX"),
		LogLevel:             or(getenv("LOG_LEVEL"), "info"),
		CatalogFile:          getenv("CATALOG_FILE"),
		APIKeySecret:         getenv("API_KEY_SECRET"),
		AuditSigningKeyFile:  getenv("AUDIT_SIGNING_KEY_FILE"),
	}
	var err error
	switch c.Env {
	case Dev, Stage, Prod:
	default:
		return c, fmt.Errorf("APP_ENV: must be dev, stage or prod, got %q", c.Env)
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return c, fmt.Errorf("ADDR: want host:port (e.g. :8090), got %q", c.Addr)
	}
	if c.DatabaseURL != "" {
		u, err := url.Parse(c.DatabaseURL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return c, fmt.Errorf("DATABASE_URL: want a postgres:// URL")
		}
	}
	if c.DatabaseListenURL != "" {
		u, err := url.Parse(c.DatabaseListenURL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return c, fmt.Errorf("DATABASE_LISTEN_URL: want a postgres:// URL")
		}
		if c.DatabaseURL == "" {
			return c, fmt.Errorf("DATABASE_LISTEN_URL: needs DATABASE_URL (the embedded store has no listener)")
		}
	} else {
		c.DatabaseListenURL = c.DatabaseURL
	}
	if c.DBMaxConns, err = intVar(getenv, "DB_MAX_CONNS", 20, 1, 1000); err != nil {
		return c, err
	}
	for _, v := range []struct{ name, value string }{
		{"KEYCLOAK_ISSUER", c.KeycloakIssuer},
		{"KEYCLOAK_ADMIN_URL", c.KeycloakAdminURL},
		{"KEYCLOAK_INVITE_URL", c.KeycloakInviteURL},
	} {
		if v.value == "" {
			continue
		}
		if u, err := url.Parse(v.value); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, fmt.Errorf("%s: want an http(s) URL, got %q", v.name, v.value)
		}
	}
	if c.KeycloakAdminURL != "" && c.KeycloakClientSecret == "" {
		return c, fmt.Errorf("KEYCLOAK_CLIENT_SECRET: required when KEYCLOAK_ADMIN_URL is set")
	}
	for _, o := range strings.Split(getenv("CORS_ALLOWED_ORIGINS"), ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		if o == "*" {
			return c, fmt.Errorf("CORS_ALLOWED_ORIGINS: the wildcard is not allowed (requests carry credentials); list the origins")
		}
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" {
			return c, fmt.Errorf("CORS_ALLOWED_ORIGINS: %q is not an origin like https://portal.example.com", o)
		}
		c.CORSAllowedOrigins = append(c.CORSAllowedOrigins, o)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return c, fmt.Errorf("LOG_LEVEL: must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.ShutdownDelay, err = delayVar(getenv, "SHUTDOWN_DELAY", 5*time.Second); err != nil {
		return c, err
	}
	if c.ShutdownTimeout, err = durationVar(getenv, "SHUTDOWN_TIMEOUT", 20*time.Second); err != nil {
		return c, err
	}
	if c.RPCTimeout, err = durationVar(getenv, "RPC_TIMEOUT", 10*time.Second); err != nil {
		return c, err
	}
	if c.RPCTimeout < 100*time.Millisecond || c.RPCTimeout > 10*time.Minute {
		return c, fmt.Errorf("RPC_TIMEOUT: want a duration from 100ms to 10m, got %q", getenv("RPC_TIMEOUT"))
	}
	if c.RetentionDays, err = intVar(getenv, "RETENTION_DAYS", 0, 0, 36500); err != nil {
		return c, err
	}
	if c.SweepInterval, err = durationVar(getenv, "SWEEP_INTERVAL", time.Minute); err != nil {
		return c, err
	}
	switch {
	case c.APIKeySecret == "" && c.Env == Dev:
		c.APIKeySecret = DevAPIKeySecret
	case c.APIKeySecret == "":
		return c, fmt.Errorf("API_KEY_SECRET: required when APP_ENV=%s (at least %d bytes, e.g. from openssl rand -base64 48)", c.Env, minAPIKeySecret)
	case len(c.APIKeySecret) < minAPIKeySecret:
		return c, fmt.Errorf("API_KEY_SECRET: must be at least %d bytes, got %d", minAPIKeySecret, len(c.APIKeySecret))
	case c.Env != Dev && c.APIKeySecret == DevAPIKeySecret:
		return c, fmt.Errorf("API_KEY_SECRET: the public dev default is not allowed when APP_ENV=%s", c.Env)
	}
	if c.Env != Dev {
		if c.KeycloakIssuer == "" {
			return c, fmt.Errorf("KEYCLOAK_ISSUER: required when APP_ENV=%s (anonymous calls are for dev only)", c.Env)
		}
		if c.DatabaseURL == "" {
			return c, fmt.Errorf("DATABASE_URL: required when APP_ENV=%s (the embedded store is for dev only)", c.Env)
		}
		if c.KeycloakAdminURL == "" {
			return c, fmt.Errorf("KEYCLOAK_ADMIN_URL: required when APP_ENV=%s (the mock Keycloak adapter is for dev only)", c.Env)
		}
	}
	switch raw := getenv("IDP_SECRET_KEY"); {
	case raw == "" && c.Env == Dev:
		raw = DevIDPSecretKey
		fallthrough
	case raw != "":
		if c.Env != Dev && raw == DevIDPSecretKey {
			return c, fmt.Errorf("IDP_SECRET_KEY: the public dev default is not allowed when APP_ENV=%s", c.Env)
		}
		if c.IDPSecretKey, err = secret.ParseKey(raw); err != nil {
			return c, fmt.Errorf("IDP_SECRET_KEY: %w", err)
		}
	default:
		return c, fmt.Errorf("IDP_SECRET_KEY: required when APP_ENV=%s (base64 of 32 bytes, e.g. from openssl rand -base64 32)", c.Env)
	}
	if c.DeletionGrace, err = delayVar(getenv, "DELETION_GRACE", 720*time.Hour); err != nil {
		return c, err
	}
	if c.WebhookRetryBase, err = durationVar(getenv, "WEBHOOK_RETRY_BASE", 5*time.Second); err != nil {
		return c, err
	}
	switch v := getenv("WEBHOOK_ALLOW_PRIVATE"); v {
	case "":
		c.WebhookAllowPrivate = c.Env == Dev
	case "true", "false":
		c.WebhookAllowPrivate = v == "true"
	default:
		return c, fmt.Errorf("WEBHOOK_ALLOW_PRIVATE: must be true or false, got %q", v)
	}
	if c.AuditSigningKeyFile == "" && c.Env != Dev {
		return c, fmt.Errorf("AUDIT_SIGNING_KEY_FILE: required when APP_ENV=%s (a PKCS#8 PEM Ed25519 private key, e.g. from openssl genpkey -algorithm ed25519)", c.Env)
	}
	if c.AuditDigestInterval, err = durationVar(getenv, "AUDIT_DIGEST_INTERVAL", time.Hour); err != nil {
		return c, err
	}
	return c, nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func intVar(getenv func(string) string, name string, def, lo, hi int) (int, error) {
	s := getenv(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s: want a whole number from %d to %d, got %q", name, lo, hi, s)
	}
	return n, nil
}

func durationVar(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	s := getenv(name)
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s: want a positive duration such as 20s, got %q", name, s)
	}
	return d, nil
}

// delayVar is durationVar where 0 is allowed (no delay).
func delayVar(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	s := getenv(name)
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s: want a duration of 0 or more such as 5s, got %q", name, s)
	}
	return d, nil
}

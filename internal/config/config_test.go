package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/config"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// prod is a complete production environment.
var prod = []string{
	"APP_ENV", "prod", "DATABASE_URL", "postgres://u@db/registry", "KEYCLOAK_ISSUER", "https://sso.example/realms/platform",
	"KEYCLOAK_ADMIN_URL", "https://sso.example", "KEYCLOAK_CLIENT_SECRET", "x", "API_KEY_SECRET", strings.Repeat("s", 40),
	"IDP_SECRET_KEY", "cHJvZHVjdGlvbi1pZHAta2V5LWZvci10aGUtdGVzdHM=",
	"AUDIT_SIGNING_KEY_FILE", "/etc/tenant-registry/audit/signing.key",
}

func TestDefaults(t *testing.T) {
	c, err := config.Load(env())
	if err != nil {
		t.Fatal(err)
	}
	if c.Env != config.Dev || c.Addr != ":8090" || c.DatabaseURL != "" || c.DBMaxConns != 20 ||
		c.APIKeySecret != config.DevAPIKeySecret || c.SweepInterval != time.Minute || c.RetentionDays != 0 {
		t.Errorf("defaults = %+v", c)
	}
	if got, want := string(c.IDPSecretKey), "dev-only-idp-secret-key-32-bytes"; got != want {
		t.Errorf("IDP_SECRET_KEY default = %q, want %q", got, want)
	}
	if got, want := c.DeletionGrace, 720*time.Hour; got != want {
		t.Errorf("DELETION_GRACE default = %v, want %v", got, want)
	}
	if got, want := c.WebhookRetryBase, 5*time.Second; got != want {
		t.Errorf("WEBHOOK_RETRY_BASE default = %v, want %v", got, want)
	}
	if !c.WebhookAllowPrivate {
		t.Errorf("WEBHOOK_ALLOW_PRIVATE default in dev = false, want true")
	}
	if got, want := c.AuditDigestInterval, time.Hour; got != want {
		t.Errorf("AUDIT_DIGEST_INTERVAL default = %v, want %v", got, want)
	}
	if c.AuditSigningKeyFile != "" {
		t.Errorf("AUDIT_SIGNING_KEY_FILE default = %q, want empty (dev generates a key)", c.AuditSigningKeyFile)
	}
	if c, err := config.Load(env(prod...)); err != nil || c.WebhookAllowPrivate {
		t.Errorf("WEBHOOK_ALLOW_PRIVATE default in prod = %v (%v), want false", c.WebhookAllowPrivate, err)
	}
	if got, want := c.ShutdownDelay, 5*time.Second; got != want {
		t.Errorf("SHUTDOWN_DELAY default = %v, want %v", got, want)
	}
	if got, want := c.ShutdownTimeout, 20*time.Second; got != want {
		t.Errorf("SHUTDOWN_TIMEOUT default = %v, want %v", got, want)
	}
	for _, tc := range []struct {
		value string
		want  time.Duration
	}{
		{"0", 0}, // no delay: stop accepting at once
		{"0s", 0},
		{"2s", 2 * time.Second},
		{"1500ms", 1500 * time.Millisecond},
	} {
		c, err := config.Load(env("SHUTDOWN_DELAY", tc.value))
		if got := c.ShutdownDelay; err != nil || got != tc.want {
			t.Errorf("SHUTDOWN_DELAY=%s: %v %v, want %v", tc.value, got, err, tc.want)
		}
	}
	if _, err := config.Load(env(prod...)); err != nil {
		t.Errorf("a complete prod environment: %v", err)
	}
	for _, tc := range []struct{ name, listen, want string }{
		{"default", "", "postgres://pgbouncer:6432/r"},
		{"direct", "postgres://db:5432/r", "postgres://db:5432/r"},
	} {
		c, err := config.Load(env("DATABASE_URL", "postgres://pgbouncer:6432/r", "DATABASE_LISTEN_URL", tc.listen))
		if err != nil || c.DatabaseListenURL != tc.want {
			t.Errorf("DATABASE_LISTEN_URL %s: %q %v, want %q", tc.name, c.DatabaseListenURL, err, tc.want)
		}
	}
	c, err = config.Load(env("CORS_ALLOWED_ORIGINS", "https://portal.example, http://localhost:5173"))
	if err != nil || strings.Join(c.CORSAllowedOrigins, " ") != "https://portal.example http://localhost:5173" {
		t.Errorf("origins = %v, %v", c.CORSAllowedOrigins, err)
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	without := func(name string) []string {
		var out []string
		for i := 0; i < len(prod); i += 2 {
			if prod[i] != name {
				out = append(out, prod[i], prod[i+1])
			}
		}
		return out
	}
	cases := []struct {
		env  []string
		want string
	}{
		{[]string{"APP_ENV", "production"}, "APP_ENV"},
		{[]string{"ADDR", "8090"}, "ADDR"},
		{[]string{"DATABASE_URL", "mysql://x"}, "DATABASE_URL"},
		{[]string{"DATABASE_LISTEN_URL", "mysql://x", "DATABASE_URL", "postgres://db/r"}, "DATABASE_LISTEN_URL"},
		{[]string{"DATABASE_LISTEN_URL", "postgres://db/r"}, "DATABASE_LISTEN_URL"},
		{[]string{"DB_MAX_CONNS", "many"}, "DB_MAX_CONNS"},
		{[]string{"KEYCLOAK_ISSUER", "not a url"}, "KEYCLOAK_ISSUER"},
		{[]string{"KEYCLOAK_ADMIN_URL", "ftp://kc"}, "KEYCLOAK_ADMIN_URL"},
		{[]string{"KEYCLOAK_ADMIN_URL", "https://kc"}, "KEYCLOAK_CLIENT_SECRET"},
		{[]string{"CORS_ALLOWED_ORIGINS", "*"}, "CORS_ALLOWED_ORIGINS"},
		{[]string{"CORS_ALLOWED_ORIGINS", "https://portal.example/path"}, "CORS_ALLOWED_ORIGINS"},
		{[]string{"LOG_LEVEL", "verbose"}, "LOG_LEVEL"},
		{[]string{"SHUTDOWN_TIMEOUT", "-1s"}, "SHUTDOWN_TIMEOUT"},
		{[]string{"SHUTDOWN_TIMEOUT", "0"}, "SHUTDOWN_TIMEOUT"},
		{[]string{"SHUTDOWN_DELAY", "-1s"}, "SHUTDOWN_DELAY"},
		{[]string{"SHUTDOWN_DELAY", "soon"}, "SHUTDOWN_DELAY"},
		{[]string{"SHUTDOWN_DELAY", "5"}, "SHUTDOWN_DELAY"},
		{[]string{"SWEEP_INTERVAL", "often"}, "SWEEP_INTERVAL"},
		{[]string{"RPC_TIMEOUT", "soon"}, "RPC_TIMEOUT"},
		{[]string{"RPC_TIMEOUT", "1ms"}, "RPC_TIMEOUT"},
		{[]string{"RETENTION_DAYS", "-3"}, "RETENTION_DAYS"},
		{[]string{"API_KEY_SECRET", "short"}, "API_KEY_SECRET"},
		{without("API_KEY_SECRET"), "API_KEY_SECRET"},
		{append(without("API_KEY_SECRET"), "API_KEY_SECRET", config.DevAPIKeySecret), "API_KEY_SECRET"},
		{without("IDP_SECRET_KEY"), "IDP_SECRET_KEY"},
		{append(without("IDP_SECRET_KEY"), "IDP_SECRET_KEY", config.DevIDPSecretKey), "IDP_SECRET_KEY"},
		{[]string{"IDP_SECRET_KEY", "c2hvcnQ="}, "IDP_SECRET_KEY"},
		{[]string{"IDP_SECRET_KEY", "not base64!"}, "IDP_SECRET_KEY"},
		{[]string{"DELETION_GRACE", "-1h"}, "DELETION_GRACE"},
		{[]string{"WEBHOOK_RETRY_BASE", "0"}, "WEBHOOK_RETRY_BASE"},
		{[]string{"WEBHOOK_ALLOW_PRIVATE", "yes"}, "WEBHOOK_ALLOW_PRIVATE"},
		{without("KEYCLOAK_ISSUER"), "KEYCLOAK_ISSUER"},
		{without("DATABASE_URL"), "DATABASE_URL"},
		{without("KEYCLOAK_ADMIN_URL"), "KEYCLOAK_ADMIN_URL"},
		{without("AUDIT_SIGNING_KEY_FILE"), "AUDIT_SIGNING_KEY_FILE"},
		{[]string{"AUDIT_DIGEST_INTERVAL", "hourly"}, "AUDIT_DIGEST_INTERVAL"},
		{[]string{"AUDIT_DIGEST_INTERVAL", "0"}, "AUDIT_DIGEST_INTERVAL"},
	}
	for _, c := range cases {
		_, err := config.Load(env(c.env...))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("env %v: err = %v, want one starting with %s", c.env, err, c.want)
		}
	}
}

package server_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/app"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/config"
	"github.com/platform/tenant-registry/internal/entitlement"
	"github.com/platform/tenant-registry/internal/evidence"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/project"
	"github.com/platform/tenant-registry/internal/sso"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/tenant"
)

const acmeID = "00000000-0000-0000-0000-000000000001"

// keySecret is the API-key HMAC secret of every test stack.
const keySecret = "server-test-secret-0123456789abcdef"

// stack is the whole service over one store, wired by app.New as
// cmd/server wires it (APP_ENV=dev unless a test says otherwise, so acme is
// seeded), served over httptest.
type stack struct {
	srv          *httptest.Server
	tenants      *tenant.Service
	entitlements *entitlement.Service
	audit        *audit.Service
	keys         *apikey.Service
	projects     *project.Service
	sso          *sso.Service
}

type stackConfig struct {
	opts    app.Deps
	mutate  func(*config.Config)
	workers bool
}

type stackOption func(*stackConfig)

// withClock runs every service on clock.
func withClock(clock clock.Clock) stackOption {
	return func(c *stackConfig) { c.opts.Clock = clock }
}

// withLogger gives the services and the server log.
func withLogger(log *slog.Logger) stackOption { return func(c *stackConfig) { c.opts.Logger = log } }

// withProvisioner replaces the Keycloak the configuration names.
func withProvisioner(p tenant.Provisioner) stackOption {
	return func(c *stackConfig) { c.opts.Provisioner = p }
}

// withKeycloak makes a (fake) Keycloak Admin API adapter the service's
// Keycloak for provisioning, single sign-on and invitations.
func withKeycloak(a *keycloak.HTTPAdapter) stackOption {
	return func(c *stackConfig) {
		c.opts.Provisioner, c.opts.IdentityProviders, c.opts.Inviter = a, a, a
	}
}

// withTelemetry records spans and metrics.
func withTelemetry(tp trace.TracerProvider, mp metric.MeterProvider) stackOption {
	return func(c *stackConfig) { c.opts.TracerProvider, c.opts.MeterProvider = tp, mp }
}

// withConfig changes the configuration (token issuer, environment, RPC
// deadline) before app.New.
func withConfig(f func(*config.Config)) stackOption { return func(c *stackConfig) { c.mutate = f } }

// withWorkers runs the app's background jobs (App.Run: provisioning, the
// purge and trial sweeps, the verify cache's listener, ...) for the test's
// life, as cmd/server does; they stop before the store closes.
func withWorkers() stackOption { return func(c *stackConfig) { c.workers = true } }

// signingKeyFile writes a new Ed25519 key as AUDIT_SIGNING_KEY_FILE holds
// it and returns its path.
func signingKeyFile(t testing.TB) string {
	t.Helper()
	k, err := evidence.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "signing.key")
	if err := os.WriteFile(path, k.PrivateKeyPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newStack(t testing.TB, st *store.Store, opts ...stackOption) *stack {
	t.Helper()
	cfg, err := config.Load(func(k string) string {
		if k == "API_KEY_SECRET" {
			return keySecret
		}
		return "" // the defaults: APP_ENV=dev
	})
	if err != nil {
		t.Fatal(err)
	}
	c := stackConfig{opts: app.Deps{Store: st, Clock: clock.System, Logger: slog.New(slog.DiscardHandler)}}
	for _, o := range opts {
		o(&c)
	}
	if c.mutate != nil {
		c.mutate(&cfg)
	}
	if cfg.Env != config.Dev && cfg.AuditSigningKeyFile == "" {
		cfg.AuditSigningKeyFile = signingKeyFile(t) // stage and prod need one
	}
	c.opts.Config = cfg
	a, err := app.New(context.Background(), c.opts)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Env != config.Dev { // the dev seed is dev's; the tests want acme anyway
		if err := a.Tenants.SeedDev(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	s := &stack{srv: httptest.NewServer(a.Handler), tenants: a.Tenants, entitlements: a.Entitlements, audit: a.Audit, keys: a.APIKeys, projects: a.Projects, sso: a.SSO}
	t.Cleanup(s.srv.Close)
	if c.workers {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); a.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return s
}

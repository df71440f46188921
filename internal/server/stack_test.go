package server_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/catalog"
	"github.com/platform/tenant-registry/internal/entitlement"
	"github.com/platform/tenant-registry/internal/registry"
	"github.com/platform/tenant-registry/internal/server"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/tenant"
)

const acmeID = "00000000-0000-0000-0000-000000000001"

// keySecret is the API-key HMAC secret of every test stack.
var keySecret = []byte("server-test-secret-0123456789abcdef")

// stack is the whole service over one store, wired as cmd/server wires it,
// seeded with the dev tenant acme and served over httptest.
type stack struct {
	srv          *httptest.Server
	tenants      *tenant.Service
	entitlements *entitlement.Service
	audit        *audit.Service
	keys         *apikey.Service
}

type stackConfig struct {
	clock      registry.Clock
	log        *slog.Logger
	mutate     func(*server.Deps)
	tenantOpts []tenant.Option
}

type stackOption func(*stackConfig)

// withClock runs every service on clock.
func withClock(clock registry.Clock) stackOption { return func(c *stackConfig) { c.clock = clock } }

// withLogger gives the services and the server log.
func withLogger(log *slog.Logger) stackOption { return func(c *stackConfig) { c.log = log } }

// withTenantOptions adds options of the tenant service (a Keycloak).
func withTenantOptions(opts ...tenant.Option) stackOption {
	return func(c *stackConfig) { c.tenantOpts = append(c.tenantOpts, opts...) }
}

// withDeps changes the server's dependencies before NewServer (token
// authentication, telemetry, a missing service).
func withDeps(f func(*server.Deps)) stackOption { return func(c *stackConfig) { c.mutate = f } }

func newStack(t testing.TB, st *store.Store, opts ...stackOption) *stack {
	t.Helper()
	cfg := stackConfig{clock: registry.SystemClock, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	clock, log := cfg.clock, cfg.log
	rec := audit.NewRecorder(clock, st.Postgres())
	s := &stack{tenants: tenant.NewService(st.Client, rec, clock, append([]tenant.Option{tenant.WithLogger(log)}, cfg.tenantOpts...)...)}
	if err := s.tenants.SeedDev(context.Background()); err != nil {
		t.Fatal(err)
	}
	var err error
	s.keys, err = apikey.New(apikey.Options{Client: st.Client, Recorder: rec, Clock: clock, Secret: keySecret, Postgres: st.Postgres(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	cat := catalog.Default()
	s.entitlements = entitlement.NewService(st.Client, rec, cat, clock)
	s.audit = audit.NewService(st.Client, rec, clock, audit.Options{Logger: log})
	d := server.Deps{
		Logger: log, Store: st, Tenants: s.tenants, Entitlements: s.entitlements,
		Catalog: cat, Audit: s.audit, APIKeys: s.keys,
	}
	if cfg.mutate != nil {
		cfg.mutate(&d)
	}
	h, err := server.NewServer(d)
	if err != nil {
		t.Fatal(err)
	}
	s.srv = httptest.NewServer(h)
	t.Cleanup(s.srv.Close)
	return s
}

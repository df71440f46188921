// Command server runs tenant-registry.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/auth"
	"github.com/platform/tenant-registry/internal/catalog"
	"github.com/platform/tenant-registry/internal/config"
	"github.com/platform/tenant-registry/internal/entitlement"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/registry"
	"github.com/platform/tenant-registry/internal/server"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/telemetry"
	"github.com/platform/tenant-registry/internal/tenant"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "tenant-registry: %v\n", err)
		os.Exit(1)
	}
}

// run starts the service and serves until ctx is done, then shuts down
// gracefully: in-flight requests finish, new ones are refused.
func run(ctx context.Context, _ []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := newLogger(stdout, cfg.LogLevel)
	tel, err := telemetry.Setup(ctx, getenv)
	if err != nil {
		return err
	}
	defer shutdownTelemetry(tel, log) // last: after the server and the workers
	clock := registry.Clock(registry.SystemClock)
	products := catalog.Default()
	if cfg.CatalogFile != "" {
		if products, err = catalog.Load(cfg.CatalogFile); err != nil {
			return fmt.Errorf("CATALOG_FILE: %w", err)
		}
	}

	var st *store.Store
	if cfg.DatabaseURL == "" {
		st, err = store.OpenSQLite(ctx, cfg.SQLitePath)
	} else {
		st, err = store.Open(ctx, cfg.DatabaseURL, store.Options{MaxConns: cfg.DBMaxConns})
	}
	if err != nil {
		return err
	}
	if !st.Postgres() {
		log.Info("using the embedded SQLite store (dev only)", "path", or(cfg.SQLitePath, "(in memory)"))
	}
	defer st.Close()
	instrument(tel, st, log)

	recorder := audit.NewRecorder(clock, st.Postgres())
	provisioner, err := newProvisioner(cfg, log)
	if err != nil {
		return err
	}
	tenantOpts := []tenant.Option{tenant.WithProvisioner(provisioner), tenant.WithLogger(log)}
	if cfg.Env == config.Prod {
		tenantOpts = append(tenantOpts, tenant.WithoutInviteURLs())
	}
	tenants := tenant.NewService(st.Client, recorder, clock, tenantOpts...)
	entitlements := entitlement.NewService(st.Client, recorder, products, clock)
	audits := audit.NewService(st.Client, recorder, clock, audit.Options{RetentionDays: cfg.RetentionDays, Logger: log})
	apiKeys, err := apikey.New(apikey.Options{
		Client: st.Client, Recorder: recorder, Clock: clock, Secret: []byte(cfg.APIKeySecret),
		Postgres: st.Postgres(), Logger: log,
	})
	if err != nil {
		return err
	}
	if err := registerGauges(tel, st, apiKeys, log); err != nil {
		return err
	}
	if cfg.Env == config.Dev {
		if err := tenants.SeedDev(ctx); err != nil {
			return fmt.Errorf("dev seed: %w", err)
		}
	}

	handler, err := server.NewServer(server.Deps{
		Logger: log, Store: st, Tenants: tenants, Entitlements: entitlements, Catalog: products, Audit: audits, APIKeys: apiKeys,
		Auth:               newAuthenticator(cfg, clock, log),
		CORSAllowedOrigins: cfg.CORSAllowedOrigins,
		TracerProvider:     tel.TracerProvider, MeterProvider: tel.MeterProvider, RPCTimeout: cfg.RPCTimeout,
	})
	if err != nil {
		return err
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // h2c, for gRPC clients without TLS
	srv := &http.Server{
		Addr:              cfg.Addr,
		Handler:           handler,
		Protocols:         &protocols,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("ADDR: %w", err)
	}
	log.Info("tenant-registry listening", "addr", ln.Addr().String(), "env", cfg.Env, "store", st.Dialect)

	// Background work stops when run returns, before the store is closed.
	workCtx, stopWork := context.WithCancel(ctx)
	var workers sync.WaitGroup
	defer func() { stopWork(); workers.Wait() }()
	workers.Go(func() { tenants.RunProvisioner(workCtx, provisioningInterval) })
	workers.Go(func() { entitlements.RunSweeper(workCtx, cfg.SweepInterval, log) })
	// API keys: the cache-invalidation listener (PostgreSQL only, on its own
	// direct connection; until it delivers every verify reads the database)
	// and the last_used_at flusher.
	workers.Go(func() {
		if err := apiKeys.Listen(workCtx, cfg.DatabaseListenURL); err != nil {
			log.Error("api key cache listener not started; every verify reads the database", "error", err)
		}
	})
	workers.Go(func() { apiKeys.RunUsageFlusher(workCtx) })
	if cfg.RetentionDays > 0 {
		workers.Go(func() { audits.RunRetention(workCtx, auditRetentionInterval) })
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// auditRetentionInterval is how often the audit retention sweeper runs
// (when RETENTION_DAYS > 0).
const auditRetentionInterval = time.Hour

// newAuthenticator verifies bearer tokens from KEYCLOAK_ISSUER (discovery is
// lazy, so the service starts while Keycloak is still booting); in dev a
// call without a token is served as a platform admin.
func newAuthenticator(cfg config.Config, clock registry.Clock, log *slog.Logger) *auth.Authenticator {
	var v *auth.Verifier
	if cfg.KeycloakIssuer != "" {
		v = auth.NewVerifier(cfg.KeycloakIssuer, cfg.KeycloakAudience, clock)
	}
	anonymous := cfg.Env == config.Dev
	if anonymous {
		log.Warn("APP_ENV=dev: requests without a token are served as a platform admin")
	}
	return auth.NewAuthenticator(v, anonymous)
}

// provisioningInterval is how often the outbox worker looks for due
// Keycloak provisioning jobs.
const provisioningInterval = 5 * time.Second

// newProvisioner returns the Keycloak adapter: the real Admin API when
// KEYCLOAK_ADMIN_URL is set, else the dev mock (config refuses the mock
// outside dev).
func newProvisioner(cfg config.Config, log *slog.Logger) (tenant.Provisioner, error) {
	if cfg.KeycloakAdminURL == "" {
		log.Info("Keycloak: using the mock adapter (KEYCLOAK_ADMIN_URL is empty)")
		return keycloak.Mock{}, nil
	}
	a, err := keycloak.NewHTTPAdapter(keycloak.Config{
		BaseURL:         cfg.KeycloakAdminURL,
		Realm:           cfg.KeycloakRealm,
		ClientID:        cfg.KeycloakClientID,
		ClientSecret:    cfg.KeycloakClientSecret,
		InviteURL:       cfg.KeycloakInviteURL,
		OrgDomainSuffix: cfg.KeycloakOrgDomain,
	})
	if err != nil {
		return nil, fmt.Errorf("KEYCLOAK_ADMIN_URL: %w", err)
	}
	return a, nil
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	// Every record logged with a request's context carries its request_id
	// and trace_id/span_id.
	return slog.New(telemetry.LogHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})))
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

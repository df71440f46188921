// Package app wires the whole of tenant-registry from its configuration:
// the domain services over one store, the HTTP handler and the background
// workers. cmd/server, the server tests and the browser test all build the
// service with New, so the tests run main's wiring.
package app

import (
	"context"
	"fmt"
	"github.com/platform/tenant-registry/internal/deps"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/auth"
	"github.com/platform/tenant-registry/internal/catalog"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/config"
	"github.com/platform/tenant-registry/internal/cursor"
	"github.com/platform/tenant-registry/internal/entitlement"
	"github.com/platform/tenant-registry/internal/evidence"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/project"
	"github.com/platform/tenant-registry/internal/secret"
	"github.com/platform/tenant-registry/internal/server"
	"github.com/platform/tenant-registry/internal/sso"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/telemetry"
	"github.com/platform/tenant-registry/internal/tenant"
	"github.com/platform/tenant-registry/internal/webhook"
	"github.com/platform/tenant-registry/internal/worker"
)

// Deps are what New needs. Config, Store, Logger and Clock are required.
type Deps struct {
	Config config.Config
	Store  *store.Store
	Logger *slog.Logger
	Clock  clock.Clock
	// Provisioner replaces the Keycloak adapter Config names (tests that
	// need a Keycloak that misbehaves); nil means Config's.
	Provisioner tenant.Provisioner
	// IdentityProviders and Inviter replace the Keycloak adapter Config
	// names for single sign-on and invitations; nil means Config's.
	IdentityProviders keycloak.IdentityProviders
	Inviter           keycloak.Inviter
	// TracerProvider and MeterProvider record spans and metrics; nil
	// means the otel globals (no-ops unless set).
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
}

// App is the wired service.
type App struct {
	// Handler serves the whole HTTP surface (internal/server).
	Handler http.Handler
	// Drain takes the replica out of rotation when a graceful shutdown
	// begins: Handler's readiness answers 503 from then on, while it goes
	// on serving (cmd/server begins it on SIGTERM).
	Drain        *server.Drain
	Tenants      *tenant.Service
	Entitlements *entitlement.Service
	Audit        *audit.Service
	APIKeys      *apikey.Service
	Catalog      *catalog.Catalog
	Projects     *project.Service
	// SSO serves SsoService and TenantService.InviteUser.
	SSO      *sso.Service
	Webhooks *webhook.Service

	cfg   config.Config
	store *store.Store
	log   *slog.Logger
}

// New wires the service. In APP_ENV=dev it also makes sure the dev tenant
// acme exists.
func New(ctx context.Context, o Deps) (*App, error) {
	if err := deps.Require("app",
		deps.Of("a store", o.Store != nil),
		deps.Of("a logger", o.Logger != nil),
		deps.Of("a clock", o.Clock != nil),
	); err != nil {
		return nil, err
	}
	cfg, st, log, clock := o.Config, o.Store, o.Logger, o.Clock
	if o.TracerProvider == nil {
		o.TracerProvider = otel.GetTracerProvider()
	}
	if o.MeterProvider == nil {
		o.MeterProvider = otel.GetMeterProvider()
	}
	products := catalog.Default()
	if cfg.CatalogFile != "" {
		var err error
		if products, err = catalog.Load(cfg.CatalogFile); err != nil {
			return nil, fmt.Errorf("CATALOG_FILE: %w", err)
		}
	}
	kc, err := newKeycloak(cfg, log)
	if err != nil {
		return nil, err
	}
	provisioner, idps, inviter := o.Provisioner, o.IdentityProviders, o.Inviter
	if provisioner == nil {
		provisioner = kc
	}
	if idps == nil {
		idps = kc
	}
	if inviter == nil {
		inviter = kc
	}
	box, err := secret.NewBox(cfg.IDPSecretKey)
	if err != nil {
		return nil, fmt.Errorf("IDP_SECRET_KEY: %w", err)
	}
	// A wrong key is a start-up error, not garbage handed to Keycloak later.
	if err := sso.CheckKey(ctx, st.Client, box); err != nil {
		return nil, err
	}
	if err := webhook.CheckKey(ctx, st.Client, box); err != nil {
		return nil, err
	}
	// The organisation rename and delete go to the same Keycloak; a
	// replacement Provisioner that does neither (a test's) gets the one
	// Config names.
	organizations, ok := provisioner.(keycloak.Organizations)
	if !ok {
		organizations = kc
	}
	pager, err := cursor.NewPager([]byte(cfg.APIKeySecret))
	if err != nil {
		return nil, fmt.Errorf("API_KEY_SECRET: %w", err)
	}
	// Every change the recorder records is also enqueued as webhook
	// messages, in the change's transaction.
	outbox, err := webhook.NewOutbox(webhook.OutboxDeps{Clock: clock, Resources: server.Resources{Clock: clock}})
	if err != nil {
		return nil, err
	}
	recorder, err := audit.NewRecorder(audit.RecorderDeps{Clock: clock, Postgres: st.Postgres(), Events: outbox})
	if err != nil {
		return nil, err
	}
	a := &App{Catalog: products, Drain: &server.Drain{}, cfg: cfg, store: st, log: log}
	if a.APIKeys, err = apikey.NewService(apikey.Deps{
		Client: st.Client, Recorder: recorder, Clock: clock, Pager: pager, Secret: []byte(cfg.APIKeySecret),
		Postgres: st.Postgres(), Logger: log,
	}); err != nil {
		return nil, err
	}
	// The tenant read cache follows the verify cache's invalidations and is
	// used while its listener delivers (PostgreSQL only).
	var tenantCacheFresh func() bool
	if st.Postgres() {
		tenantCacheFresh = a.APIKeys.Listening
	}
	if a.Tenants, err = tenant.NewService(tenant.Deps{
		Client: st.Client, Recorder: recorder, Clock: clock, Pager: pager, Provisioner: provisioner,
		HideInviteURLs: cfg.Env == config.Prod, Logger: log, CacheFresh: tenantCacheFresh,
		Organizations: organizations, IdentityProviders: sso.Purger{IdentityProviders: idps}, DeletionGrace: cfg.DeletionGrace,
	}); err != nil {
		return nil, err
	}
	a.APIKeys.Follow(a.Tenants)
	if a.SSO, err = sso.NewService(sso.Deps{
		Client: st.Client, Recorder: recorder, Clock: clock, Box: box, IdentityProviders: idps, Inviter: inviter,
		AllowHTTP: cfg.Env == config.Dev, HideInviteURLs: cfg.Env == config.Prod, Logger: log,
	}); err != nil {
		return nil, err
	}
	if a.Entitlements, err = entitlement.NewService(entitlement.Deps{
		Client: st.Client, Recorder: recorder, Catalog: products, Clock: clock, Logger: log,
	}); err != nil {
		return nil, err
	}
	if a.Projects, err = project.NewService(project.Deps{Client: st.Client, Recorder: recorder, Clock: clock, Pager: pager}); err != nil {
		return nil, err
	}
	signer, err := signingKey(cfg, log)
	if err != nil {
		return nil, err
	}
	if a.Audit, err = audit.NewService(audit.Deps{
		Client: st.Client, Recorder: recorder, Clock: clock, Pager: pager, RetentionDays: cfg.RetentionDays, Logger: log,
		Signer: signer,
	}); err != nil {
		return nil, err
	}
	if err := a.Audit.RegisterSigningKey(ctx); err != nil {
		return nil, fmt.Errorf("AUDIT_SIGNING_KEY_FILE: %w", err)
	}
	if a.Webhooks, err = webhook.NewService(webhook.Deps{
		Client: st.Client, Recorder: recorder, Clock: clock, Pager: pager, Box: box,
		RetryBase: cfg.WebhookRetryBase, AllowPrivate: cfg.WebhookAllowPrivate, Postgres: st.Postgres(), Logger: log,
		TracerProvider: o.TracerProvider, MeterProvider: o.MeterProvider,
	}); err != nil {
		return nil, err
	}
	if err := telemetry.RegisterGauges(o.MeterProvider, telemetry.Gauges{
		OutboxBacklog: a.Tenants.ProvisioningBacklog,
		BacklogEvery:  outboxBacklogEvery,
		VerifyCache:   a.APIKeys.CacheStats,
		TenantCache:   a.Tenants.CacheStats,
		Logger:        log,
	}); err != nil {
		return nil, err
	}
	if cfg.Env == config.Dev {
		if err := a.Tenants.SeedDev(ctx); err != nil {
			return nil, fmt.Errorf("dev seed: %w", err)
		}
	}
	// Retraced viewer tokens: signed under a key derived from
	// API_KEY_SECRET, which every replica shares.
	viewers := auth.NewViewerTokens([]byte(cfg.APIKeySecret), clock)
	a.Handler, err = server.NewServer(server.Deps{
		Logger: log, Store: st, Tenants: a.Tenants, Entitlements: a.Entitlements, Catalog: products,
		Audit: a.Audit, APIKeys: a.APIKeys, Projects: a.Projects, SSO: a.SSO, Webhooks: a.Webhooks,
		Auth:               newAuthenticator(cfg, clock, log).WithViewerTokens(viewers),
		ViewerTokens:       viewers,
		CORSAllowedOrigins: cfg.CORSAllowedOrigins,
		TracerProvider:     o.TracerProvider, MeterProvider: o.MeterProvider, RPCTimeout: cfg.RPCTimeout,
		Drain: a.Drain,
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Run runs the background jobs — Keycloak provisioning (and organisation
// renames), webhook delivery, the trial sweeper, the purge of tenants whose
// deletion is due, the verify cache's listener and the last_used_at
// flusher, the audit digests, audit_log's partitions (PostgreSQL), and audit
// retention when RETENTION_DAYS is set — until ctx is done, and returns once
// they all stopped. A provisioning job in Keycloak when ctx ends is
// abandoned and its lease released, so another replica takes it over at
// once (tenant.Service.ProcessDue); the last usage flush runs after ctx.
func (a *App) Run(ctx context.Context) {
	listenURL := a.cfg.DatabaseListenURL // a direct connection when the pool goes through PgBouncer
	if listenURL == "" {
		listenURL = a.store.URL
	}
	jobs := []worker.Job{
		{Name: "keycloak provisioning", Every: provisioningInterval, Run: func(ctx context.Context) error {
			_, err := a.Tenants.ProcessDue(ctx)
			return err
		}},
		{Name: "keycloak sso and invitations", Every: provisioningInterval, Run: func(ctx context.Context) error {
			_, err := a.SSO.ProcessDue(ctx)
			return err
		}},
		// Returns once nothing is due; runs again every interval.
		{Name: "webhook delivery", Every: webhookInterval, Run: func(ctx context.Context) error {
			_, err := a.Webhooks.ProcessDue(ctx)
			return err
		}},
		{Name: "trial expiry sweep", Every: a.cfg.SweepInterval, Run: a.Entitlements.ExpireTrials},
		// Tenants whose deletion is due: one replica purges each (a lease).
		{Name: "tenant purge sweep", Every: a.cfg.SweepInterval, Run: func(ctx context.Context) error {
			_, err := a.Tenants.PurgeDue(ctx)
			return err
		}},
		// Until it delivers, every verify reads the database.
		{Name: "api key cache listener", Run: func(ctx context.Context) error { return a.APIKeys.Listen(ctx, listenURL) }},
		{Name: "api key last_used_at flush", Every: a.APIKeys.UsageFlushEvery(),
			Run:   func(ctx context.Context) error { return a.APIKeys.FlushUsage(ctx, false) },
			Final: func(ctx context.Context) error { return a.APIKeys.FlushUsage(ctx, true) }},
	}
	// audit_log's month partitions, created ahead (PostgreSQL): at start
	// and hourly, by every replica (the database serialises them). It does
	// not hold up appends (audit.EnsurePartitions).
	if a.store.Postgres() {
		jobs = append(jobs, worker.Job{Name: "audit partitions", Every: auditPartitionsInterval, Run: a.Audit.EnsurePartitionsJob})
	}
	// Every replica digests; they write one digest per head between them.
	jobs = append(jobs, worker.Job{Name: "audit digests", Every: a.cfg.AuditDigestInterval, Run: a.Audit.DigestAll})
	if a.cfg.RetentionDays > 0 {
		jobs = append(jobs, worker.Job{Name: "audit retention", Every: auditRetentionInterval, Run: a.Audit.EnforceRetention})
	}
	worker.Run(ctx, a.log, jobs...)
}

const (
	// provisioningInterval is how often the outbox worker looks for due
	// Keycloak provisioning jobs.
	provisioningInterval = 5 * time.Second
	// webhookInterval is how often the webhook worker looks for due
	// messages when it found none (it delivers all that are due each time).
	webhookInterval = 500 * time.Millisecond
	// auditRetentionInterval is how often the audit retention sweeper
	// runs (when RETENTION_DAYS > 0).
	auditRetentionInterval = time.Hour
	// auditPartitionsInterval is how often audit_log's partitions ahead are
	// checked (PostgreSQL).
	auditPartitionsInterval = time.Hour
	// outboxBacklogEvery is the least time between two outbox backlog
	// counts.
	outboxBacklogEvery = 30 * time.Second
)

// signingKey is the audit digests' signing key: AUDIT_SIGNING_KEY_FILE's
// (config requires it outside dev), or in dev without one a key generated
// now, which the log says.
func signingKey(cfg config.Config, log *slog.Logger) (*evidence.SigningKey, error) {
	if cfg.AuditSigningKeyFile == "" {
		if cfg.Env != config.Dev {
			return nil, fmt.Errorf("AUDIT_SIGNING_KEY_FILE: required when APP_ENV=%s", cfg.Env)
		}
		k, err := evidence.GenerateSigningKey()
		if err != nil {
			return nil, fmt.Errorf("AUDIT_SIGNING_KEY_FILE: %w", err)
		}
		log.Warn("APP_ENV=dev: AUDIT_SIGNING_KEY_FILE is not set; audit digests are signed with a key generated at start", "key_id", k.ID())
		return k, nil
	}
	k, err := evidence.LoadSigningKeyFile(cfg.AuditSigningKeyFile)
	if err != nil {
		return nil, fmt.Errorf("AUDIT_SIGNING_KEY_FILE: %w", err)
	}
	return k, nil
}

// newAuthenticator verifies bearer tokens from KEYCLOAK_ISSUER (discovery is
// lazy, so the service starts while Keycloak is still booting); in dev a
// call without a token is served as a platform admin.
func newAuthenticator(cfg config.Config, clock clock.Clock, log *slog.Logger) *auth.Authenticator {
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

// keycloakAdmin is everything the service does in Keycloak.
type keycloakAdmin interface {
	tenant.Provisioner
	keycloak.Organizations
	keycloak.IdentityProviders
	keycloak.Inviter
}

// newKeycloak returns the Keycloak adapter: the real Admin API when
// KEYCLOAK_ADMIN_URL is set, else the dev mock (config refuses the mock
// outside dev).
func newKeycloak(cfg config.Config, log *slog.Logger) (keycloakAdmin, error) {
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

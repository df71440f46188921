// Command bench is `make bench`: it runs tenant-registry as a separate
// process on PostgreSQL with production settings (APP_ENV=stage: bearer
// tokens verified against an OIDC issuer, the Keycloak Admin API adapter,
// metrics exported over OTLP) and drives its hot paths over real HTTP
// (loopback, many keep-alive connections), next to a bare net/http handler
// measured the same way in the same run (the same request, token header
// included, a constant answer), and prints one table: requests/s, p50, p99,
// the server process's peak RSS, the ratio to the baseline's requests/s and,
// for the cached paths, the cache hit ratio read from the metrics the server
// exported.
//
//	go run ./cmd/bench [-server bin/tenant-registry] [-conns 64] [-duration 5s]
//	                   [-rate 5000] [-events 1000000] [-list-tenants 1000000]
//	                   [-webhooks-only | -audit-only]
//
// PostgreSQL: BENCH_DATABASE_URL when set (it is migrated and filled), else
// a throwaway cluster (internal/pgcluster) removed at the end. The OIDC
// issuer (internal/auth/oidctest), the Keycloak Admin API
// (internal/keycloak/keycloaktest) and the OTLP metrics receiver run in this
// process; the tokens are RS256 JWTs the server verifies (and caches) as it
// would Keycloak's.
//
// Fixtures: a tenant with a hot API key (created through the API); a fleet
// of -fleet-tenants tenants holding -fleet-keys keys in all, written by SQL
// in the service's stored form; 8 tenants for appends; a tenant with
// -events audit events inserted by SQL; later -list-tenants tenants for the
// list rows.
//
// Rows, each -duration after -warmup, closed loop over -conns connections:
// the baseline; verify (Connect protobuf and REST JSON, service token, the
// hot key); verify over the first 10,000 fleet keys chosen at random, then
// the same while other fleet tenants' entitlements change ~20 times a second
// through the API (churn); verify with the cache cold (each request a fleet
// key never verified before: every one a miss); GetTenantBySlug with a
// tenant user's token; ResolveClaims with a service token; CreateTenant;
// AppendEvent (8 tenants' chains); AppendEvent into one tenant (group
// commit), followed by pgbench's bare INSERT of a row of the same size on
// the same database and a verification of the chain; ListEvents page 1 and
// page 1000; verify
// over all fleet keys after one pass put them all in the cache (peak RSS
// with them cached). Then a fixed-rate run of the baseline and of verify at
// -rate requests/s, whose p99 counts from each request's scheduled start (no
// coordinated omission); ListEvents page 1 vs page 1000 from one
// connection; and ListTenants at -list-tenants tenants from one connection:
// page 1 and each documented filter, p50.
//
// Peak RSS is VmHWM of the serving process, reset (clear_refs) before each
// row.
package main

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	"google.golang.org/protobuf/proto"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	"github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/auth/oidctest"
	"github.com/platform/tenant-registry/internal/devdb"
	"github.com/platform/tenant-registry/internal/keycloak/keycloaktest"
	"github.com/platform/tenant-registry/internal/migrate"
	"github.com/platform/tenant-registry/internal/pgcluster"
	"github.com/platform/tenant-registry/internal/principal"
)

// baselineBody is what the bare handler answers: a verdict-shaped constant.
var baselineBody = []byte(`{"valid":true,"tenantId":"00000000-0000-0000-0000-000000000001","slug":"acme","keyId":"00000000-0000-0000-0000-000000000002","scopes":["read"],"products":["certifai","compliance"]}`)

// Names of the server's cache counters (internal/telemetry).
const (
	verifyCacheMetric = "tenant_registry.apikey.verify.cache"
	tenantCacheMetric = "tenant_registry.tenant.cache"
)

const (
	audience       = "tenant-registry" // KEYCLOAK_AUDIENCE's default
	keycloakRealm  = "platform"
	keycloakClient = "tenant-registry"
	randomKeys     = 10_000 // the "10,000 random keys" rows
	// fixedRateDuration is the least measured time of each arm of the
	// fixed-rate row (fixedRateSpan).
	fixedRateDuration = 20 * time.Second
)

type options struct {
	server       string
	conns        int
	duration     time.Duration
	warmup       time.Duration
	rate         int
	events       int64
	eventMonths  int
	chainEvents  int
	pageSize     int
	deepPage     int
	fleetTenants int
	fleetKeys    int
	listTenants  int
	churnRate    int
	serverEnv    string
	deliveries   int
	webhooksOnly bool
	auditOnly    bool
	tailOnly     bool
	tailRuns     int
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "-serve-baseline" {
		serveBaseline(os.Args[2])
		return
	}
	var o options
	flag.StringVar(&o.server, "server", "", "the tenant-registry binary (default: go build ./cmd/server into a temp dir)")
	flag.IntVar(&o.conns, "conns", 64, "keep-alive connections of the load generator")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured time per row")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up per row")
	flag.IntVar(&o.rate, "rate", 5000, "requests/s of the fixed-rate runs")
	flag.Int64Var(&o.events, "events", 10_000_000, "audit events of the ListEvents tenant")
	flag.IntVar(&o.eventMonths, "event-months", 4, "whole months (partitions) before the current one that the ListEvents tenant's events span")
	flag.IntVar(&o.chainEvents, "retention-events", 200_000, "events of the month that the retention row drops (one tenant's valid chain)")
	flag.IntVar(&o.pageSize, "page-size", 500, "ListEvents page size")
	flag.IntVar(&o.deepPage, "deep-page", 1000, "the deep ListEvents page")
	flag.IntVar(&o.fleetTenants, "fleet-tenants", 1000, "tenants holding the fleet's keys")
	flag.IntVar(&o.fleetKeys, "fleet-keys", 100_000, "API keys of the fleet (at least 40,000)")
	flag.IntVar(&o.listTenants, "list-tenants", 1_000_000, "tenants in the database for the ListTenants rows")
	flag.IntVar(&o.churnRate, "churn", 20, "entitlement changes per second of other tenants in the churn row")
	flag.IntVar(&o.deliveries, "deliveries", 20_000, "webhook messages of the delivery rate row")
	flag.BoolVar(&o.webhooksOnly, "webhooks-only", false, "run only the baseline, CreateTenant with and without a webhook subscriber and the delivery rate")
	flag.BoolVar(&o.auditOnly, "audit-only", false, "run only the baseline and the audit volume rows: appends into one tenant vs pgbench's bare INSERT")
	flag.BoolVar(&o.tailOnly, "tail-only", false, "run only the fixed-rate row (hot-key verify and the bare handler at -rate), -tail-runs times")
	flag.IntVar(&o.tailRuns, "tail-runs", 3, "runs of the fixed-rate row with -tail-only")
	flag.StringVar(&o.serverEnv, "server-env", "", "more of the server's environment, comma-separated K=V (e.g. GOGC=200,GOMEMLIMIT=80MiB)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// serveBaseline is the bare net/http server, run as its own process like
// the service so that both are measured the same way.
func serveBaseline(addr string) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(baselineBody)
	})
	if err := http.ListenAndServe(addr, h); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...) }

func run(ctx context.Context, o options) error {
	if o.fleetKeys < 4*randomKeys || o.fleetTenants < 10 || o.fleetKeys%o.fleetTenants != 0 {
		return fmt.Errorf("-fleet-keys must be at least %d and a multiple of -fleet-tenants (at least 10)", 4*randomKeys)
	}
	machine := machineLine()
	logf("%s", machine)
	runID := strconv.FormatInt(time.Now().Unix(), 36)

	// The database.
	dbURL, dbNote := os.Getenv("BENCH_DATABASE_URL"), "BENCH_DATABASE_URL"
	if dbURL == "" {
		logf("starting a throwaway PostgreSQL cluster")
		c, err := pgcluster.Start(ctx, "")
		if err != nil {
			return err
		}
		defer c.Stop()
		admin, err := sql.Open("pgx", c.URL())
		if err != nil {
			return err
		}
		name, err := devdb.CreateDatabase(ctx, admin, "bench")
		admin.Close()
		if err != nil {
			return err
		}
		dbURL, dbNote = c.DatabaseURL(name), "throwaway pgcluster"
	}
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := migrate.Up(ctx, db); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var pgVersion string
	if err := db.QueryRowContext(ctx, "SHOW server_version").Scan(&pgVersion); err != nil {
		return err
	}

	// What the server talks to: the OIDC issuer, Keycloak's Admin API, an
	// OTLP metrics receiver.
	issuer := oidctest.New()
	defer issuer.Close()
	var kcSecretRaw [24]byte
	_, _ = crand.Read(kcSecretRaw[:])
	kcSecret := base64.RawURLEncoding.EncodeToString(kcSecretRaw[:])
	kc := keycloaktest.New(nil, keycloakRealm, keycloakClient, kcSecret)
	defer kc.Close()
	sink, err := startMetricSink()
	if err != nil {
		return err
	}
	defer sink.close()
	var secretRaw [48]byte
	_, _ = crand.Read(secretRaw[:])
	apiKeySecret := base64.StdEncoding.EncodeToString(secretRaw[:])
	idpSecretKey := base64.StdEncoding.EncodeToString(secretRaw[:32])

	// The processes: the service and the baseline.
	tmp, err := os.MkdirTemp("", "tenant-registry-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	signingKeyFile, err := writeSigningKey(tmp)
	if err != nil {
		return err
	}
	if o.server == "" {
		o.server = filepath.Join(tmp, "tenant-registry")
		logf("building ./cmd/server")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", o.server, "./cmd/server").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/server: %v\n%s", err, out)
		}
	}
	srvAddr, err := freeAddr()
	if err != nil {
		return err
	}
	serverEnv := []string{
		"APP_ENV=stage", "ADDR=" + srvAddr, "DATABASE_URL=" + dbURL, "LOG_LEVEL=warn", "SHUTDOWN_DELAY=0",
		"API_KEY_SECRET=" + apiKeySecret, "IDP_SECRET_KEY=" + idpSecretKey,
		"AUDIT_SIGNING_KEY_FILE=" + signingKeyFile,
		"KEYCLOAK_ISSUER=" + issuer.URL(), "KEYCLOAK_AUDIENCE=" + audience,
		"KEYCLOAK_ADMIN_URL=" + kc.URL(), "KEYCLOAK_REALM=" + keycloakRealm,
		"KEYCLOAK_CLIENT_ID=" + keycloakClient, "KEYCLOAK_CLIENT_SECRET=" + kcSecret,
		"OTEL_METRICS_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=http/protobuf",
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=" + sink.url, "OTEL_METRIC_EXPORT_INTERVAL=500",
		"OTEL_TRACES_EXPORTER=none",
		// The webhook receiver is the bench's, on loopback.
		"WEBHOOK_ALLOW_PRIVATE=true",
	}
	if o.serverEnv != "" {
		serverEnv = append(serverEnv, strings.Split(o.serverEnv, ",")...)
	}
	srv, err := startProcess(ctx, o.server, nil, serverEnv, filepath.Join(tmp, "server.log"))
	if err != nil {
		return err
	}
	defer srv.stop()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	baseAddr, err := freeAddr()
	if err != nil {
		return err
	}
	bl, err := startProcess(ctx, self, []string{"-serve-baseline", baseAddr}, nil, filepath.Join(tmp, "baseline.log"))
	if err != nil {
		return err
	}
	defer bl.stop()
	svc, baseline := "http://"+srvAddr, "http://"+baseAddr
	if err := srv.waitHealthy(ctx, svc+"/readyz"); err != nil {
		return err
	}
	if err := bl.waitHealthy(ctx, baseline+"/healthz"); err != nil {
		return err
	}

	// Tokens: as Keycloak issues them, verified by the server.
	adminToken := issuer.Token(oidctest.Claims{Subject: "bench-admin", Name: "Bench Admin", Audience: []string{audience}, Roles: []string{principal.RolePlatformAdmin}})
	serviceToken := issuer.Token(oidctest.Claims{Subject: "service-account-bench", Audience: []string{audience}, Roles: []string{principal.RoleInternal}})
	admin := newAPIClient(adminToken)

	// Fixtures.
	var created struct{ Tenant struct{ ID, Slug string } }
	if err := admin.call("POST", svc+"/v1/tenants", fmt.Sprintf(`{"slug":"bench-%s","name":"Bench"}`, runID), &created); err != nil {
		return fmt.Errorf("create tenant: %w", err)
	}
	benchID, benchSlug := created.Tenant.ID, created.Tenant.Slug
	if err := admin.call("POST", svc+"/v1/tenants/"+benchID+"/activate", "{}", nil); err != nil {
		return fmt.Errorf("activate: %w", err)
	}
	for _, p := range []string{"certifai", "compliance"} {
		if err := admin.call("POST", svc+"/v1/entitlements/grant", fmt.Sprintf(`{"tenant_id":%q,"product":%q}`, benchID, p), nil); err != nil {
			return fmt.Errorf("grant: %w", err)
		}
	}
	userToken := issuer.Token(oidctest.Claims{Subject: "bench-user", Name: "Bench User", Audience: []string{audience}, TenantID: benchID})
	var keyRes struct{ Key string }
	if err := admin.call("POST", svc+"/v1/api-keys", fmt.Sprintf(`{"tenant_id":%q,"name":"bench","scopes":["read"]}`, benchID), &keyRes); err != nil {
		return fmt.Errorf("create API key: %w", err)
	}
	if o.tailOnly {
		return tailRuns(ctx, o, machine, srv, bl, svc, baseline, serviceToken, keyRes.Key, benchSlug, sink)
	}
	fl := &fleet{}
	if !o.auditOnly {
		logf("seeding %d API keys of %d tenants by SQL", o.fleetKeys, o.fleetTenants)
		if fl, err = seedFleet(ctx, db, []byte(apiKeySecret), runID, o.fleetTenants, o.fleetKeys/o.fleetTenants); err != nil {
			return err
		}
	}
	var appendTenants []string
	for i := range 8 {
		var res struct{ Tenant struct{ ID string } }
		if err := admin.call("POST", svc+"/v1/tenants", fmt.Sprintf(`{"slug":"bench-%s-append-%d","name":"Append %d"}`, runID, i, i), &res); err != nil {
			return fmt.Errorf("create tenant: %w", err)
		}
		appendTenants = append(appendTenants, res.Tenant.ID)
	}
	// The tenant of the one-tenant append row (group commit).
	var oneTenant struct{ Tenant struct{ ID string } }
	if err := admin.call("POST", svc+"/v1/tenants", fmt.Sprintf(`{"slug":"bench-%s-append-one","name":"Append one"}`, runID), &oneTenant); err != nil {
		return fmt.Errorf("create tenant: %w", err)
	}
	var listTenant struct{ Tenant struct{ ID string } }
	if err := admin.call("POST", svc+"/v1/tenants", fmt.Sprintf(`{"slug":"bench-%s-audit","name":"Audit"}`, runID), &listTenant); err != nil {
		return fmt.Errorf("create tenant: %w", err)
	}
	// The retention row's month, then the ListEvents tenant's months.
	months := monthsBefore(time.Now(), o.eventMonths+1)
	logf("inserting %d audit events by SQL over %d months (%s to %s), a partition each", o.events, o.eventMonths,
		months[1].Format("2006-01"), months[len(months)-1].Format("2006-01"))
	start := time.Now()
	if err := seedEventsMonths(ctx, db, listTenant.Tenant.ID, o.events, months[1:]); err != nil {
		return err
	}
	logf("inserted in %v", time.Since(start).Round(time.Millisecond))
	logf("inserting %d events of one tenant's valid chain into %s (hashed here, COPY)", o.chainEvents, months[0].Format("2006-01"))
	start = time.Now()
	chainTenant, err := seedChainMonth(ctx, db, runID, months[0], o.chainEvents)
	if err != nil {
		return err
	}
	logf("inserted in %v", time.Since(start).Round(time.Millisecond))
	listURL := fmt.Sprintf("%s/v1/audit?tenant_id=%s&page_size=%d", svc, listTenant.Tenant.ID, o.pageSize)
	deepCursor, err := deepPageCursor(ctx, db, admin, listURL, listTenant.Tenant.ID, []byte(apiKeySecret), o.pageSize, o.deepPage)
	if err != nil {
		return err
	}
	deepURL := listURL + "&cursor=" + url.QueryEscape(deepCursor)
	if err := settle(ctx, db); err != nil {
		return err
	}

	// Requests.
	verifyProto := func(key string) []byte {
		b, _ := proto.Marshal(&v1.VerifyApiKeyRequest{Key: key})
		return b
	}
	hotProto := verifyProto(keyRes.Key)
	fleetProto := make([][]byte, len(fl.keys))
	for i, k := range fl.keys {
		fleetProto[i] = verifyProto(k)
	}
	verifyURL := svc + tenantregistryv1connect.InternalServiceVerifyApiKeyProcedure
	connectReq := protoRequest
	jsonReq := func(method, u, token, body string) (*http.Request, error) {
		req, err := http.NewRequest(method, u, strings.NewReader(body))
		if err == nil {
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return req, err
	}
	hooks, err := startHookReceiver()
	if err != nil {
		return err
	}
	defer hooks.close()
	var hookEndpoint string
	var coldNext atomic.Int64
	coldNext.Store(randomKeys - 1)
	var seq atomic.Int64
	appendBody := `{"tenant_id":%q,"action":"document.viewed","crud":"r","actor":{"id":"user-1","name":"User One","type":"user"},` +
		`"target":{"id":"doc-1","name":"Doc","type":"document"},"description":"bench event","fields":{"n":"1"},"source_ip":"203.0.113.7"}`
	randomKey := func(int, int) (*http.Request, error) {
		return connectReq(verifyURL, serviceToken, fleetProto[rand.IntN(randomKeys)])
	}
	churn := &churner{api: admin, svc: svc, tenants: fl.tenants[len(fl.tenants)/2:], rate: o.churnRate}
	sweepKeys := func(n int) func(context.Context, *loadGen) error {
		return func(ctx context.Context, lg *loadGen) error {
			logf("one pass over %d fleet keys first", n)
			return lg.sweep(ctx, n, func(i int) (*http.Request, error) { return connectReq(verifyURL, serviceToken, fleetProto[i]) })
		}
	}
	var (
		bare = &row{name: "bare net/http baseline", proc: bl, want: `"valid":true`, req: func(int, int) (*http.Request, error) {
			return connectReq(baseline+tenantregistryv1connect.InternalServiceVerifyApiKeyProcedure, serviceToken, hotProto)
		}}
		hot = &row{name: "verify, one hot key (Connect protobuf)", proc: srv, want: benchSlug, hit: verifyCacheMetric, req: func(int, int) (*http.Request, error) {
			return connectReq(verifyURL, serviceToken, hotProto)
		}}
		hotREST = &row{name: "verify, one hot key (REST JSON)", proc: srv, want: `"valid":true`, hit: verifyCacheMetric, req: func(int, int) (*http.Request, error) {
			return jsonReq("POST", svc+"/v1/internal/api-keys/verify", serviceToken, fmt.Sprintf(`{"key":%q}`, keyRes.Key))
		}}
		hotFixed    = &row{name: fmt.Sprintf("verify, hot key @ %d/s", o.rate), proc: srv, req: hot.req, rate: o.rate}
		random      = &row{name: "verify, 10,000 random keys", proc: srv, want: "fleet-", hit: verifyCacheMetric, req: randomKey, before: sweepKeys(randomKeys)}
		randomChurn = &row{name: fmt.Sprintf("verify, 10,000 random keys + churn %d/s", o.churnRate), proc: srv, want: "fleet-", hit: verifyCacheMetric, req: randomKey, during: churn}
		cold        = &row{name: "verify, cold (every call a miss)", proc: srv, want: "fleet-", hit: verifyCacheMetric, req: func(int, int) (*http.Request, error) {
			i := coldNext.Add(1)
			if i >= int64(len(fleetProto)) {
				return nil, errors.New("cold keys exhausted: raise -fleet-keys")
			}
			return connectReq(verifyURL, serviceToken, fleetProto[i])
		}}
		allKeys = &row{name: fmt.Sprintf("verify, all %d fleet keys cached", len(fl.keys)), proc: srv, want: "fleet-", hit: verifyCacheMetric,
			before: sweepKeys(len(fl.keys)), req: func(int, int) (*http.Request, error) {
				return connectReq(verifyURL, serviceToken, fleetProto[rand.IntN(len(fleetProto))])
			}}
		bySlug = &row{name: "GetTenantBySlug, tenant user's token", proc: srv, want: `"slug":"` + benchSlug + `"`, hit: tenantCacheMetric, req: func(int, int) (*http.Request, error) {
			return jsonReq("GET", svc+"/v1/tenants/by-slug/"+benchSlug, userToken, "")
		}}
		claims = &row{name: "ResolveClaims, service token", proc: srv, want: `"products":["certifai","compliance"]`, hit: tenantCacheMetric, req: func(int, int) (*http.Request, error) {
			return jsonReq("POST", svc+"/v1/internal/keycloak/claims", serviceToken, fmt.Sprintf(`{"slug":%q}`, benchSlug))
		}}
		create = &row{name: "CreateTenant", proc: srv, want: `"status":"trial"`, req: func(w, i int) (*http.Request, error) {
			return jsonReq("POST", svc+"/v1/tenants", adminToken, fmt.Sprintf(`{"slug":"b%s-%d","name":"Bench"}`, runID, seq.Add(1)))
		}}
		// The same with one endpoint subscribed to every event: each create
		// also enqueues its messages in its transaction, and the worker
		// delivers them meanwhile.
		createHooked = &row{name: "CreateTenant, 1 webhook subscriber", proc: srv, want: `"status":"trial"`, req: create.req,
			before: func(context.Context, *loadGen) error {
				var err error
				hookEndpoint, err = subscribe(admin, svc, hooks.url)
				return err
			}}
		appendEvent = &row{name: "AppendEvent, 8 tenants", proc: srv, want: `"action":"document.viewed"`, req: func(w, i int) (*http.Request, error) {
			return jsonReq("POST", svc+"/v1/audit", serviceToken, fmt.Sprintf(appendBody, appendTenants[w%len(appendTenants)]))
		}}
		// 64 connections into one tenant's chain: the group commit.
		appendOne = &row{name: fmt.Sprintf("AppendEvent, one tenant, %d conns", o.conns), proc: srv, want: `"action":"document.viewed"`, req: func(w, i int) (*http.Request, error) {
			return jsonReq("POST", svc+"/v1/audit", serviceToken, fmt.Sprintf(appendBody, oneTenant.Tenant.ID))
		}}
		page1 = &row{name: fmt.Sprintf("ListEvents page 1 (%d/page)", o.pageSize), proc: srv, want: `"next_cursor"`, req: func(int, int) (*http.Request, error) {
			return jsonReq("GET", listURL, adminToken, "")
		}}
		pageDeep = &row{name: fmt.Sprintf("ListEvents page %d (%d/page)", o.deepPage, o.pageSize), proc: srv, want: `"next_cursor"`, req: func(int, int) (*http.Request, error) {
			return jsonReq("GET", deepURL, adminToken, "")
		}}
	)
	// The rows of the hot paths are each measured paired with their own
	// baseline in alternating slices (measurePaired): the bare handler,
	// sent the same request, or for the churn row the same row without
	// churn.
	bareArm := func() *row {
		return &row{name: "bare net/http baseline (paired slices)", proc: bl, want: `"valid":true`, req: bare.req}
	}
	for _, r := range []*row{hot, hotREST, bySlug, claims, random, cold, allKeys} {
		r.pair = bareArm()
	}
	hotFixed.pair = &row{name: fmt.Sprintf("bare net/http @ %d/s (paired slices)", o.rate), proc: bl, req: bare.req, rate: o.rate}
	randomChurn.pair = &row{name: "verify, 10,000 random keys, no churn (paired slices)", proc: srv, want: "fleet-", req: randomKey}
	// In this order: the fixed-rate runs and the tenant reads before the
	// fleet's keys are used (the flush of 100,000 keys' last_used_at is not
	// part of their latency), and all keys cached before the rows with big
	// answers (whose heap would count in that row's peak RSS).
	bareAgain := &row{name: "bare net/http baseline, again", proc: bl, want: `"valid":true`, req: bare.req}
	rows := []*row{bare, hot, hotREST, hotFixed, bySlug, claims, random, randomChurn, cold, allKeys, create, createHooked, appendEvent, appendOne, page1, pageDeep, bareAgain}
	switch {
	case o.webhooksOnly:
		rows = []*row{bare, create, createHooked, bareAgain}
	case o.auditOnly:
		rows = []*row{bare, appendOne, bareAgain}
	}
	lg := newLoadGen(o.conns)
	var vol volume
	for _, r := range rows {
		d := o.duration
		if r == hotFixed {
			d = fixedRateSpan(d)
		}
		if err := lg.measure(ctx, r, d, o.warmup, sink); err != nil {
			return err
		}
		if r == appendOne {
			// The baseline of the row, right after it on the same
			// database: pgbench's bare INSERT of a row of the same size
			// from as many connections; then the chain must verify.
			logf("pgbench: a bare INSERT of the same row from %d connections for %v", o.conns, o.duration)
			if vol.bareTPS, err = bareInsertRate(ctx, db, dbURL, tmp, o.conns, o.duration); err != nil {
				return err
			}
			logf("verifying the one-tenant chain")
			if vol.verified, err = verifyChain(admin, svc, oneTenant.Tenant.ID); err != nil {
				return err
			}
		}
		if r == createHooked {
			// The rows after it run without a webhook backlog.
			logf("waiting for the webhook backlog to drain")
			if err := waitDrained(ctx, db, 5*time.Minute); err != nil {
				return err
			}
		}
	}
	// ListEvents from one connection: page 1, the deep page and the two
	// rare filters in turn, so that none profits from running later
	// (caches, a quieter machine).
	serial := newLoadGen(1)
	var filters []func(int, int) (*http.Request, error)
	for _, f := range []struct{ param, value, want string }{
		{"actor_id", rareActor, `"actor":{"id":"` + rareActor + `"`},
		{"target_id", rareTarget, `"target":{"id":"` + rareTarget + `"`},
	} {
		u := listURL + "&" + f.param + "=" + f.value
		check := &row{name: "ListEvents ?" + f.param + "=" + f.value, want: f.want,
			req: func(int, int) (*http.Request, error) { return jsonReq("GET", u, adminToken, "") }}
		if err := serial.check(check); err != nil {
			return fmt.Errorf("%s: %w", check.name, err)
		}
		filters = append(filters, check.req)
	}
	logf("ListEvents page 1, page %d and two rare filters, one connection, alternating", o.deepPage)
	events := serial.alternate(ctx, o.duration, page1.req, pageDeep.req, filters[0], filters[1])
	ret, err := retentionRow(ctx, db, admin, svc, dbURL, []byte(apiKeySecret), chainTenant, months[0], o.chainEvents)
	if err != nil {
		return err
	}
	if o.auditOnly {
		base := (bare.res.rps() + bareAgain.res.rps()) / 2
		fmt.Printf("tenant-registry make bench (audit only) — %s\n", machine)
		fmt.Printf("PostgreSQL %s (%s); baseline %.0f req/s\n", pgVersion, dbNote, base)
		fmt.Printf("%s: %.0f events/s, p50 %s, p99 %s, %d errors\n", appendOne.name, appendOne.res.rps(), ms(appendOne.res.pct(0.5)), ms(appendOne.res.pct(0.99)), appendOne.res.errors)
		fmt.Println(vol.line(appendOne, o.conns))
		fmt.Println(listLine(o, events))
		fmt.Println(ret)
		if err := rowErrors(rows); err != nil {
			return err
		}
		return serialErrors(events)
	}
	// Webhook deliveries: messages of 1,000 tenants' queues to the local
	// receiver, by the server's worker alone.
	logf("webhook deliveries: %d messages to a local receiver", o.deliveries)
	deliveriesPerSec, err := deliveryRate(ctx, db, hooks, hookEndpoint, o.deliveries, 1000)
	if err != nil {
		return err
	}
	if o.webhooksOnly {
		base := (bare.res.rps() + bareAgain.res.rps()) / 2
		fmt.Printf("tenant-registry make bench (webhooks only) — %s\n", machine)
		fmt.Printf("baseline %.0f req/s; CreateTenant %.0f req/s (%.2f), with 1 webhook subscriber %.0f req/s (%.2f)\n",
			base, create.res.rps(), create.res.rps()/base, createHooked.res.rps(), createHooked.res.rps()/base)
		fmt.Printf("CreateTenant with 1 webhook subscriber: %.2f of CreateTenant without (target ≥ 0.85); webhook deliveries: %.0f/s to a local receiver (%d messages, 1000 tenants, one replica)\n",
			createHooked.res.rps()/create.res.rps(), deliveriesPerSec, o.deliveries)
		var failed []string
		for _, r := range rows {
			if r.res.errors > 0 {
				failed = append(failed, fmt.Sprintf("%s: %d errors (first: %s)", r.name, r.res.errors, r.res.firstErr))
			}
		}
		if len(failed) > 0 {
			return errors.New(strings.Join(failed, "; "))
		}
		return nil
	}

	// ListTenants at o.listTenants tenants.
	var have int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM tenants").Scan(&have); err != nil {
		return err
	}
	if more := o.listTenants - have; more > 0 {
		logf("inserting %d tenants by SQL", more)
		start := time.Now()
		if err := seedListTenants(ctx, db, runID, more); err != nil {
			return err
		}
		logf("inserted in %v", time.Since(start).Round(time.Millisecond))
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM tenants").Scan(&have); err != nil {
		return err
	}
	// The prefixes: a tenant's slug and name from a third of the way in,
	// without their last character (a handful of matches).
	var slug, tname string
	if err := db.QueryRowContext(ctx, "SELECT slug, name FROM tenants ORDER BY created_at, id OFFSET $1 LIMIT 1", have/3).Scan(&slug, &tname); err != nil {
		return err
	}
	slugPrefix, namePrefix := slug[:len(slug)-1], tname[:len(tname)-1]
	lists := []struct{ name, query string }{
		{"ListTenants page 1", ""},
		{"  ?query=<slug prefix> (" + slugPrefix + ")", "query=" + url.QueryEscape(slugPrefix)},
		{"  ?query=<name prefix> (" + namePrefix + ")", "query=" + url.QueryEscape(namePrefix)},
		{"  ?status=frozen", "status=frozen"},
		{"  ?plan=enterprise", "plan=enterprise"},
		{"  ?status=trial&plan=starter", "status=trial&plan=starter"},
	}
	var listReqs []func(int, int) (*http.Request, error)
	for _, l := range lists {
		u := svc + "/v1/tenants?page_size=50"
		if l.query != "" {
			u += "&" + l.query
		}
		check := &row{name: l.name, want: `"tenants":[{`, req: func(int, int) (*http.Request, error) { return jsonReq("GET", u, adminToken, "") }}
		if err := serial.check(check); err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
		listReqs = append(listReqs, check.req)
	}
	if err := settle(ctx, db); err != nil {
		return err
	}
	logf("ListTenants on %d tenants: page 1 and %d filters, one connection, in turn", have, len(lists)-1)
	listRes := serial.alternate(ctx, 2*o.duration, listReqs...)

	// The table.
	// The baseline is measured first and last; rows are compared with the
	// mean of the two, and the drift between them is printed.
	base := (bare.res.rps() + bareAgain.res.rps()) / 2
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Printf("tenant-registry make bench — %s\n", machine)
	fmt.Printf("PostgreSQL %s (%s); server: its own process, APP_ENV=stage, bearer tokens verified (RS256, in-process OIDC issuer), metrics exported over OTLP every 500ms, tracing off%s;\n", pgVersion, dbNote, strings.TrimSuffix(", "+o.serverEnv, ", "))
	fmt.Printf("load: %d keep-alive connections, %v per row after %v warm-up, loopback; fleet: %d keys of %d tenants\n", o.conns, o.duration, o.warmup, len(fl.keys), o.fleetTenants)
	fmt.Printf("baseline: %.0f req/s first, %.0f last (%+.0f%%); \"vs baseline\" is against their mean, %.0f\n\n",
		bare.res.rps(), bareAgain.res.rps(), 100*(bareAgain.res.rps()/bare.res.rps()-1), base)
	width := 0
	for _, r := range rows {
		width = max(width, len([]rune(r.name))+len(" (fixed rate)"))
		if r.pair != nil {
			width = max(width, len([]rune("  ↳ "+r.pair.name)))
		}
	}
	name := func(s string) string { return s + strings.Repeat(" ", width-len([]rune(s))) } // left-aligned
	fmt.Fprintf(w, "%s\treq/s\tp50\tp99\tpeak RSS\tvs baseline\tcache hits\terrors\t\n", name("row"))
	for _, r := range rows {
		hits, vs, label := "", fmt.Sprintf("%.2f", r.res.rps()/base), r.name
		if r.hit != "" {
			hits = fmt.Sprintf("%.3f", r.lookups.ratio())
		}
		if r.pair != nil {
			vs = fmt.Sprintf("%.2f (paired)", r.res.rps()/r.pair.res.rps())
		}
		if r.rate > 0 {
			vs, label = "", r.name+" (fixed rate)"
		}
		fmt.Fprintf(w, "%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%d\t\n", name(label), r.res.rps(), ms(r.res.pct(0.50)), ms(r.res.pct(0.99)), mib(r.rss), vs, hits, r.res.errors)
		if p := r.pair; p != nil {
			fmt.Fprintf(w, "%s\t%.0f\t%s\t%s\t\t\t\t%d\t\n", name("  ↳ "+p.name), p.res.rps(), ms(p.res.pct(0.50)), ms(p.res.pct(0.99)), p.res.errors)
		}
	}
	w.Flush()
	fmt.Println("(paired): against the arm below it, measured in alternating 1 s slices during the row; the other rows against the mean of the first and last baseline")

	fmt.Printf("\nListTenants on %d tenants, one connection, p50 (page 1 = 1.00):\n", have)
	w = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	lw := 0
	for _, l := range lists {
		lw = max(lw, len(l.name))
	}
	for i, l := range lists {
		fmt.Fprintf(w, "%s\t%s\t%.2f\t\n", l.name+strings.Repeat(" ", lw-len(l.name)), ms(listRes[i].pct(0.5)), float64(listRes[i].pct(0.5))/float64(listRes[0].pct(0.5)))
	}
	w.Flush()

	// ratio is a row's req/s against its paired baseline; mean against
	// the mean of the first and last baseline (for comparison with runs
	// before the pairing).
	ratio := func(r *row) float64 { return r.res.rps() / r.pair.res.rps() }
	mean := func(r *row) float64 { return r.res.rps() / base }
	fmt.Println()
	fmt.Printf("verify, hot key: %.2f of the baseline (target ≥ 0.70); 10,000 random keys: %.2f (≥ 0.60); with churn: %.2f of the same row without (≥ 0.80), hit ratio %.3f (≥ 0.95)\n",
		ratio(hot), ratio(random), ratio(randomChurn), randomChurn.lookups.ratio())
	fmt.Printf("GetTenantBySlug: %.2f (≥ 0.50); ResolveClaims: %.2f (≥ 0.50); cold verify: %.2f (≥ 0.15)\n", ratio(bySlug), ratio(claims), ratio(cold))
	fmt.Printf("  (against the mean baseline instead: hot %.2f, random %.2f, churn/no-churn sequential %.2f, by-slug %.2f, claims %.2f, cold %.2f)\n",
		mean(hot), mean(random), randomChurn.res.rps()/random.res.rps(), mean(bySlug), mean(claims), mean(cold))
	saturated := ""
	if hotFixed.res.rps() < 0.95*float64(o.rate) {
		saturated = fmt.Sprintf(" — saturated: only %.0f req/s served", hotFixed.res.rps())
	}
	bareFixed := hotFixed.pair
	fmt.Printf("p99 at %d req/s: verify %s, baseline %s (paired slices): %.2f× (target ≤ 1.2×)%s\n", o.rate,
		ms(hotFixed.res.pct(0.99)), ms(bareFixed.res.pct(0.99)), float64(hotFixed.res.pct(0.99))/float64(bareFixed.res.pct(0.99)), saturated)
	fmt.Printf("peak RSS with all %d fleet keys cached: %s (target ≤ 96 MiB with 100,000)\n", len(fl.keys), mib(allKeys.rss))
	fmt.Printf("ListEvents on %d events: page %d / page 1 p50 = %.2f at %d connections; %.2f from one connection (%s vs %s) (target ≤ 1.3)\n",
		o.events, o.deepPage, float64(pageDeep.res.pct(0.5))/float64(page1.res.pct(0.5)), o.conns,
		float64(events[1].pct(0.5))/float64(events[0].pct(0.5)), ms(events[1].pct(0.5)), ms(events[0].pct(0.5)))
	fmt.Println(listLine(o, events))
	fmt.Println(ret)
	fmt.Printf("AppendEvent: %.0f events/s into 8 tenants' hash chains\n", appendEvent.res.rps())
	fmt.Println(vol.line(appendOne, o.conns))
	fmt.Printf("CreateTenant with 1 webhook subscriber: %.2f of CreateTenant without (target ≥ 0.85); webhook deliveries: %.0f/s to a local receiver (%d messages, 1000 tenants, one replica)\n",
		createHooked.res.rps()/create.res.rps(), deliveriesPerSec, o.deliveries)
	var failed []string
	for _, r := range rows {
		for _, r := range []*row{r, r.pair} {
			if r != nil && r.res.errors > 0 {
				failed = append(failed, fmt.Sprintf("%s: %d errors (first: %s)", r.name, r.res.errors, r.res.firstErr))
			}
		}
	}
	for i, res := range append(events[:], listRes...) {
		if res.errors > 0 {
			failed = append(failed, fmt.Sprintf("serial run %d: %d errors (first: %s)", i, res.errors, res.firstErr))
		}
	}
	if churn.failures.Load() > 0 {
		failed = append(failed, fmt.Sprintf("churn: %d failed changes (first: %v)", churn.failures.Load(), churn.firstErr.Load()))
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

// churner changes other tenants' entitlements through the API at rate per
// second while a row runs, each change in its own goroutine so that a slow
// answer does not lower the rate: a grant of "privacy" to each tenant in
// turn, then (on the next pass) its revoke.
type churner struct {
	api     *apiClient
	svc     string
	tenants []string
	rate    int

	failures atomic.Int64
	firstErr atomic.Value
	notes    []string // what each run did (its stop's summary)
}

func (c *churner) start(ctx context.Context) (stop func() string) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	done := make(chan int)
	go func() {
		n := 0
		tick := time.NewTicker(time.Second / time.Duration(c.rate))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				done <- n
				return
			case <-tick.C:
			}
			tenant, verb := c.tenants[n%len(c.tenants)], "grant"
			if (n/len(c.tenants))%2 == 1 {
				verb = "revoke"
			}
			wg.Go(func() {
				err := c.api.call("POST", c.svc+"/v1/entitlements/"+verb, fmt.Sprintf(`{"tenant_id":%q,"product":"privacy"}`, tenant), nil)
				if err != nil && ctx.Err() == nil && c.failures.Add(1) == 1 {
					c.firstErr.Store(err.Error())
				}
			})
			n++
		}
	}()
	start := time.Now()
	return func() string {
		cancel()
		n := <-done
		elapsed := time.Since(start)
		wg.Wait()
		return fmt.Sprintf("%d entitlement changes of other tenants (%.1f/s)", n, float64(n)/elapsed.Seconds())
	}
}

// settle waits for PostgreSQL to be done with the fixtures: a VACUUM
// (ANALYZE) of the filled tables and a CHECKPOINT now, instead of
// autovacuum and the checkpointer taking the cores during the rows, then
// until no autovacuum worker runs (at most a minute).
func settle(ctx context.Context, db *sql.DB) error {
	logf("settling PostgreSQL: VACUUM (ANALYZE), CHECKPOINT")
	start := time.Now()
	for _, q := range []string{"VACUUM (ANALYZE) audit_log, api_keys, tenants, tenant_products", "CHECKPOINT"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'").Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	logf("settled in %v", time.Since(start).Round(time.Millisecond))
	return nil
}

// writeSigningKey writes a fresh Ed25519 audit signing key (PKCS#8 PEM) into
// dir for the server's AUDIT_SIGNING_KEY_FILE and returns its path.
func writeSigningKey(dir string) (string, error) {
	_, priv, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "audit-signing.key")
	return path, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// volume is what the audit volume rows measured besides the table.
type volume struct {
	bareTPS  float64 // pgbench's bare INSERT, transactions/s
	verified int64   // events of the one-tenant chain verified after the row
}

// line is the summary of the one-tenant append row.
func (v volume) line(appendOne *row, conns int) string {
	return fmt.Sprintf("AppendEvent into one tenant from %d connections: %.0f events/s = %.2f of a bare INSERT of the same row by pgbench on the same database (%.0f tps, %d clients) (target ≥ 0.30); the chain verified afterwards (%d events)",
		conns, appendOne.res.rps(), appendOne.res.rps()/v.bareTPS, v.bareTPS, conns, v.verified)
}

// rowErrors is an error naming the rows that had errors, or nil.
func rowErrors(rows []*row) error {
	var failed []string
	for _, r := range rows {
		if r.res.errors > 0 {
			failed = append(failed, fmt.Sprintf("%s: %d errors (first: %s)", r.name, r.res.errors, r.res.firstErr))
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

// The rare filters' values: seedEvents writes rareEvents events of this
// actor and of this target among the tenant's events.
const (
	rareActor  = "rare-actor"
	rareTarget = "rare-target"
)

// listLine is the summary of the serial ListEvents run: page 1, the deep
// page, the rare actor and the rare target, p50 each.
func listLine(o options, events []result) string {
	p := func(i int) float64 { return float64(events[i].pct(0.5)) }
	return fmt.Sprintf("ListEvents on %d events of one tenant over %d months (a partition each), one connection, p50: page 1 %s, page %d %s (%.2f × page 1, target ≤ 1.3); actor_id of %d events %s (%.2f ×), target_id of %d events %s (%.2f ×) (target ≤ 1.3 × page 1)",
		o.events, o.eventMonths, ms(events[0].pct(0.5)), o.deepPage, ms(events[1].pct(0.5)), p(1)/p(0),
		rareEvents, ms(events[2].pct(0.5)), p(2)/p(0), rareEvents, ms(events[3].pct(0.5)), p(3)/p(0))
}

// serialErrors is an error naming the serial runs that had errors, or nil.
func serialErrors(res []result) error {
	var failed []string
	for i, r := range res {
		if r.errors > 0 {
			failed = append(failed, fmt.Sprintf("serial run %d: %d errors (first: %s)", i, r.errors, r.firstErr))
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

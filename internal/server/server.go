// Package server is tenant-registry's HTTP surface: one http.Handler serving
// Connect, gRPC, gRPC-Web, the REST shim and the health probes.
package server

import (
	"context"
	"encoding/json"
	"github.com/platform/tenant-registry/internal/deps"
	"log/slog"
	"net/http"
	"time"

	"connectrpc.com/connect"
	connectcors "connectrpc.com/cors"
	"github.com/rs/cors"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/auth"
	"github.com/platform/tenant-registry/internal/catalog"
	"github.com/platform/tenant-registry/internal/entitlement"
	"github.com/platform/tenant-registry/internal/project"
	"github.com/platform/tenant-registry/internal/sso"
	"github.com/platform/tenant-registry/internal/tenant"
	"github.com/platform/tenant-registry/internal/webhook"
)

// Pinger is what readiness needs of the store.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Deps are the server's dependencies.
type Deps struct {
	Logger *slog.Logger
	Store  Pinger
	// Tenants serves TenantService and InternalService's claims.
	Tenants *tenant.Service
	// Entitlements serves EntitlementService and CatalogService's requests
	// and trials.
	Entitlements *entitlement.Service
	// Catalog is the product catalog CatalogService lists.
	Catalog *catalog.Catalog
	// Projects serves ProjectService.
	Projects *project.Service
	// Audit serves AuditService and the NDJSON export.
	Audit *audit.Service
	// APIKeys serves ApiKeyService and InternalService.VerifyApiKey.
	APIKeys *apikey.Service
	// SSO serves SsoService and TenantService.InviteUser.
	SSO *sso.Service
	// Webhooks serves WebhookService.
	Webhooks *webhook.Service
	// Auth authenticates callers (required: there is no default caller).
	Auth *auth.Authenticator
	// ViewerTokens issues the Retraced publisher API's viewer tokens (Auth
	// must accept them: auth.Authenticator.WithViewerTokens). The
	// publisher API is served when it, APIKeys and Audit are set.
	ViewerTokens *auth.ViewerTokens
	// CORSAllowedOrigins are the browser origins allowed to call the API.
	CORSAllowedOrigins []string
	// TracerProvider and MeterProvider record the requests' spans and
	// metrics; nil means the otel globals (no-ops unless set).
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// RPCTimeout is the default deadline of a unary RPC (RPC_TIMEOUT); a
	// client may ask for less. Zero means DefaultRPCTimeout.
	RPCTimeout time.Duration
	// Drain, once begun, turns readiness (/readyz, gRPC health) off and
	// closes connections after their responses; nil means a replica that
	// never drains (tests).
	Drain *Drain
}

// DefaultRPCTimeout is a unary RPC's deadline when Deps.RPCTimeout is zero.
const DefaultRPCTimeout = 10 * time.Second

// NewServer returns the service's http.Handler.
func NewServer(d Deps) (http.Handler, error) {
	if err := deps.Require("server",
		deps.Of("an authenticator (auth.NewAuthenticator)", d.Auth != nil),
		deps.Of("a logger", d.Logger != nil),
		deps.Of("a store (readiness pings it)", d.Store != nil),
	); err != nil {
		return nil, err
	}
	if d.RPCTimeout == 0 {
		d.RPCTimeout = DefaultRPCTimeout
	}
	if d.Drain == nil {
		d.Drain = &Drain{}
	}
	opts := []connect.HandlerOption{
		connect.WithCodec(jsonCodec{}),
		// observeInterceptor (observe.go) only notes the final code. The
		// deadline is set outside errorInterceptor, which translates
		// errors, so that the server's own deadline is told apart from a
		// database timeout. textInterceptor checks the request's strings
		// once the caller is known.
		connect.WithInterceptors(observeInterceptor{}, deadlineInterceptor{d: d.RPCTimeout},
			errorInterceptor{log: d.Logger}, authInterceptor{authn: d.Auth}, textInterceptor{}),
		connect.WithReadMaxBytes(maxBodyBytes),
		// Most answers are a few hundred bytes: gzip costs more than it saves.
		connect.WithCompressMinBytes(4 << 10),
		connect.WithRecover(recoverRPC(d.Logger)),
	}
	mux := http.NewServeMux()
	if err := addRoutes(mux, d, opts...); err != nil {
		return nil, err
	}
	// The observer (request id, span, metrics, access log, recover) is
	// outermost, so CORS preflights are seen too.
	return newObserver(d.Drain.closeWhileDraining(withCORS(normalizeContentType(mux), d.CORSAllowedOrigins)), d.Logger, d.TracerProvider, d.MeterProvider)
}

// withCORS lets the browser portal's origins call the API (Connect-Web and
// the REST paths) with a bearer token. Without configured origins there are
// no CORS headers at all: browsers then refuse every cross-origin call.
func withCORS(h http.Handler, origins []string) http.Handler {
	if len(origins) == 0 {
		return h
	}
	return cors.New(cors.Options{
		AllowedOrigins: origins, // never "*": config refuses it
		AllowedMethods: append(connectcors.AllowedMethods(), http.MethodDelete),
		AllowedHeaders: append(connectcors.AllowedHeaders(), "Authorization"),
		ExposedHeaders: connectcors.ExposedHeaders(),
		MaxAge:         7200,
	}).Handler(h)
}

func handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReadyz answers 200 while the database answers a ping, 503 while it
// does not, and 503 at once (without a ping) once the replica drains.
func handleReadyz(store Pinger, drain *Drain, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if drain.Draining() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": "draining"})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := store.Ping(ctx); err != nil {
			log.WarnContext(ctx, "not ready: database unreachable", "error", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": "database unreachable"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

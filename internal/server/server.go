// Package server is tenant-registry's HTTP surface: one http.Handler serving
// Connect, gRPC, gRPC-Web, the REST shim and the health probes.
package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"connectrpc.com/connect"

	"github.com/platform/tenant-registry/internal/catalog"
	"github.com/platform/tenant-registry/internal/entitlement"
	"github.com/platform/tenant-registry/internal/tenant"
)

// Pinger is what readiness needs of the store.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Deps are the server's dependencies.
type Deps struct {
	Logger  *slog.Logger
	Store   Pinger
	Tenants *tenant.Service
	// Entitlements serves EntitlementService, CatalogService's requests
	// and trials, and InternalService's claims.
	Entitlements *entitlement.Service
	// Catalog is the product catalog CatalogService lists.
	Catalog *catalog.Catalog
}

// NewServer returns the service's http.Handler.
func NewServer(d Deps) (http.Handler, error) {
	opts := []connect.HandlerOption{
		connect.WithCodec(jsonCodec{}),
		connect.WithInterceptors(errorInterceptor{log: d.Logger}, callerInterceptor{}),
		connect.WithReadMaxBytes(1 << 20),
	}
	mux := http.NewServeMux()
	if err := addRoutes(mux, d, opts...); err != nil {
		return nil, err
	}
	return mux, nil
}

func handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func handleReadyz(store Pinger, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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

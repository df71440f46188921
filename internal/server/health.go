package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// healthChecker answers gRPC health as /readyz does: SERVING while the
// database answers a ping, NOT_SERVING while it does not or once the
// replica drains (drain; nil never does) — for the server
// ("") and for each of its services alike, since every one needs the
// database. An unknown service is NOT_FOUND, as the protocol says.
type healthChecker struct {
	store    Pinger
	drain    *Drain
	log      *slog.Logger
	services []string
}

var _ grpchealth.Checker = (*healthChecker)(nil)

// Check implements grpchealth.Checker.
func (h *healthChecker) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	if req.Service != "" && !slices.Contains(h.services, req.Service) {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("unknown service"))
	}
	return &grpchealth.CheckResponse{Status: h.status(ctx)}, nil
}

func (h *healthChecker) status(ctx context.Context) grpchealth.Status {
	if h.drain != nil && h.drain.Draining() {
		return grpchealth.StatusNotServing
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := h.store.Ping(ctx); err != nil {
		h.log.WarnContext(ctx, "gRPC health: not serving, database unreachable", "error", err)
		return grpchealth.StatusNotServing
	}
	return grpchealth.StatusServing
}

// healthListProcedure is grpc.health.v1.Health/List, which gRPC reflection
// advertises (the descriptor is grpc-go's) and grpchealth does not serve.
const healthListProcedure = "/" + grpchealth.HealthV1ServiceName + "/List"

// list answers every service's status (and the server's, as "").
func (h *healthChecker) list(ctx context.Context, _ *connect.Request[healthpb.HealthListRequest]) (*connect.Response[healthpb.HealthListResponse], error) {
	st := healthpb.HealthCheckResponse_ServingStatus(h.status(ctx))
	out := &healthpb.HealthListResponse{Statuses: map[string]*healthpb.HealthCheckResponse{"": {Status: st}}}
	for _, s := range h.services {
		out.Statuses[s] = &healthpb.HealthCheckResponse{Status: st}
	}
	return connect.NewResponse(out), nil
}

// healthHandlers mounts Check and Watch (grpchealth) and List on mux.
func healthHandlers(mux *http.ServeMux, h *healthChecker) {
	mux.Handle(grpchealth.NewHandler(h))
	mux.Handle(healthListProcedure, connect.NewUnaryHandler(healthListProcedure, h.list))
}

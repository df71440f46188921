package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

type switchPinger struct{ down atomic.Bool }

func (p *switchPinger) Ping(context.Context) error {
	if p.down.Load() {
		return errors.New("connection refused")
	}
	return nil
}

// TestGRPCHealthFollowsDatabase: gRPC health (Check and List, over gRPC)
// says NOT_SERVING while the database is unreachable and SERVING when it
// is back, like /readyz.
func TestGRPCHealthFollowsDatabase(t *testing.T) {
	db := &switchPinger{}
	mux := http.NewServeMux()
	healthHandlers(mux, &healthChecker{store: db, log: slog.New(slog.DiscardHandler), services: []string{"tenantregistry.v1.TenantService"}})
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	defer srv.Close()
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: tr}
	check := connect.NewClient[healthpb.HealthCheckRequest, healthpb.HealthCheckResponse](client, srv.URL+"/grpc.health.v1.Health/Check", connect.WithGRPC())
	list := connect.NewClient[healthpb.HealthListRequest, healthpb.HealthListResponse](client, srv.URL+"/grpc.health.v1.Health/List", connect.WithGRPC())
	ctx := context.Background()

	for _, tc := range []struct {
		name string
		down bool
		want healthpb.HealthCheckResponse_ServingStatus
	}{
		{"up", false, healthpb.HealthCheckResponse_SERVING},
		{"database down", true, healthpb.HealthCheckResponse_NOT_SERVING},
		{"database back", false, healthpb.HealthCheckResponse_SERVING},
	} {
		db.down.Store(tc.down)
		for _, svc := range []string{"", "tenantregistry.v1.TenantService"} {
			res, err := check.CallUnary(ctx, connect.NewRequest(&healthpb.HealthCheckRequest{Service: svc}))
			if err != nil || res.Msg.Status != tc.want {
				t.Errorf("%s: Check(%q) = %v %v, want %v", tc.name, svc, res, err, tc.want)
			}
		}
		res, err := list.CallUnary(ctx, connect.NewRequest(&healthpb.HealthListRequest{}))
		if err != nil {
			t.Fatalf("%s: List: %v", tc.name, err)
		}
		if got := res.Msg.Statuses["tenantregistry.v1.TenantService"].GetStatus(); got != tc.want || len(res.Msg.Statuses) != 2 {
			t.Errorf("%s: List = %v, want both at %v", tc.name, res.Msg.Statuses, tc.want)
		}
	}
	_, err := check.CallUnary(ctx, connect.NewRequest(&healthpb.HealthCheckRequest{Service: "no.such.Service"}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("Check of an unknown service: %v, want not_found", err)
	}
}

package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/grpchealth"
)

// TestReadinessFollowsDrain: /readyz and gRPC health are ready only while
// the database answers and the replica is not draining; draining does not
// touch the other answers, which ask the client to close the connection.
func TestReadinessFollowsDrain(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name        string
		dbDown      bool
		draining    bool
		wantReady   int
		wantHealth  grpchealth.Status
		wantConnHdr string
	}{
		{"serving", false, false, http.StatusOK, grpchealth.StatusServing, ""},
		{"database down", true, false, http.StatusServiceUnavailable, grpchealth.StatusNotServing, ""},
		{"draining", false, true, http.StatusServiceUnavailable, grpchealth.StatusNotServing, "close"},
		{"draining, database down", true, true, http.StatusServiceUnavailable, grpchealth.StatusNotServing, "close"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := &switchPinger{}
			db.down.Store(tc.dbDown)
			drain := &Drain{}
			if tc.draining {
				if !drain.Begin() {
					t.Fatal("the first Begin says draining had begun already")
				}
				if drain.Begin() {
					t.Error("a second Begin says it began draining")
				}
			}
			mux := http.NewServeMux()
			mux.Handle("GET /readyz", handleReadyz(db, drain, log))
			mux.HandleFunc("GET /other", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
			h := drain.closeWhileDraining(mux)

			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			if got, want := rec.Code, tc.wantReady; got != want {
				t.Errorf("/readyz = %d, want %d", got, want)
			}
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/other", nil))
			if got, want := rec.Code, http.StatusOK; got != want {
				t.Errorf("another request = %d, want %d", got, want)
			}
			if got, want := rec.Header().Get("Connection"), tc.wantConnHdr; got != want {
				t.Errorf("Connection header = %q, want %q", got, want)
			}
			hc := &healthChecker{store: db, drain: drain, log: log}
			res, err := hc.Check(context.Background(), &grpchealth.CheckRequest{})
			if err != nil || res.Status != tc.wantHealth {
				t.Errorf("gRPC health = %v %v, want %v", res, err, tc.wantHealth)
			}
		})
	}
}

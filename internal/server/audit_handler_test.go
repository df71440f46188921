package server_test

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	"github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

// newAuditServer is the stack on an injected clock.
func newAuditServer(t *testing.T, st *store.Store) (*httptest.Server, *audit.Service, *storetest.Clock) {
	t.Helper()
	clock := storetest.NewClock(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	s := newStack(t, st, withClock(clock.Now))
	return s.srv, s.audit, clock
}

func TestAuditREST(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		srv, _, _ := newAuditServer(t, st)
		var appended struct {
			Event struct {
				ID     string            `json:"id"`
				Action string            `json:"action"`
				Group  map[string]string `json:"group"`
				Actor  map[string]string `json:"actor"`
				Fields map[string]string `json:"fields"`
				Hash   string            `json:"hash"`
			} `json:"event"`
		}
		body := `{"tenant_id":"` + acmeID + `","action":"document.signed","crud":"u","actor":{"id":"u-1","name":"Ada"},"fields":{"v":"1"},"idempotency_key":"k1"}`
		if code := call(t, srv, http.MethodPost, "/v1/audit", body, &appended); code != http.StatusOK {
			t.Fatalf("POST /v1/audit: %d %+v", code, appended)
		}
		e := appended.Event
		if e.Action != "document.signed" || e.Group["id"] != acmeID || e.Actor["type"] != "user" || e.Fields["v"] != "1" || len(e.Hash) != 64 {
			t.Errorf("appended %+v", e)
		}
		var apiErr apiError
		if code := call(t, srv, http.MethodPost, "/v1/audit", `{"tenant_id":"`+acmeID+`","action":"Bad","crud":"u","actor":{"id":"u"}}`, &apiErr); code != http.StatusBadRequest ||
			apiErr.Code != "invalid_argument" || !strings.HasPrefix(apiErr.Message, "action:") {
			t.Errorf("bad action: %d %+v, want 400 invalid_argument naming action", code, apiErr)
		}

		var list struct {
			Events []struct {
				ID     string `json:"id"`
				Action string `json:"action"`
			} `json:"events"`
			NextCursor string `json:"next_cursor"`
		}
		q := url.Values{"tenant_id": {acmeID}, "action": {"document.*"}, "page_size": {"1"}}
		if code := call(t, srv, http.MethodGet, "/v1/audit?"+q.Encode(), "", &list); code != http.StatusOK || len(list.Events) != 1 || list.Events[0].ID != e.ID {
			t.Fatalf("GET /v1/audit: %d %+v", code, list)
		}
		q.Set("cursor", list.NextCursor+"x")
		if code := call(t, srv, http.MethodGet, "/v1/audit?"+q.Encode(), "", &apiErr); code != http.StatusBadRequest || !strings.HasPrefix(apiErr.Message, "cursor:") {
			t.Errorf("tampered cursor: %d %+v, want 400 naming cursor", code, apiErr)
		}

		var verify struct {
			OK            bool   `json:"ok"`
			EventsChecked string `json:"events_checked"` // int64: a JSON string
		}
		if code := call(t, srv, http.MethodPost, "/v1/audit/verify", `{"tenant_id":"`+acmeID+`"}`, &verify); code != http.StatusOK || !verify.OK || verify.EventsChecked != "2" {
			t.Errorf("POST /v1/audit/verify: %d %+v, want ok with 2 events (tenant.created by the seed, and ours)", code, verify)
		}
	})
}

func TestAuditExportStreams(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		srv, svc, clock := newAuditServer(t, st)
		ctx := principal.With(storetest.SystemContext(), principal.Dev)
		start := clock.Now()
		n := 2*audit.ExportBatch + 11
		for i := range n {
			if _, err := svc.Append(ctx, audit.AppendInput{TenantID: acmeID, Action: "document.viewed", CRUD: "r", Actor: audit.Actor{ID: "u"}}); err != nil {
				t.Fatal(err)
			}
			if i%3 == 0 {
				clock.Advance(time.Second)
			}
		}
		// Every event of acme, oldest first, from the store itself.
		var all []string
		if err := svc.Export(ctx, audit.ExportInput{TenantID: acmeID}, func(r *audit.Event) error {
			all = append(all, r.ID.String())
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(all) != n+1 { // and the seed's tenant.created
			t.Fatalf("store export: %d events, want %d", len(all), n+1)
		}
		from, to := start.Add(10*time.Second), start.Add(300*time.Second)

		client := tenantregistryv1connect.NewAuditServiceClient(srv.Client(), srv.URL)
		tests := []struct {
			name     string
			from, to time.Time
		}{
			{"everything", time.Time{}, time.Time{}},
			{"range", from, to},
		}
		for _, tc := range tests {
			// The expected ids, via the list API's own filters.
			var want []string
			if err := svc.Export(ctx, audit.ExportInput{TenantID: acmeID, CreatedAfter: tc.from, CreatedBefore: tc.to}, func(r *audit.Event) error {
				want = append(want, r.ID.String())
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if tc.name == "range" && (len(want) == 0 || len(want) == len(all)) {
				t.Fatalf("range holds %d of %d events: pick another", len(want), len(all))
			}

			// Connect server streaming.
			req := &v1.ExportEventsRequest{TenantId: acmeID}
			if !tc.from.IsZero() {
				req.CreatedAfter, req.CreatedBefore = timestamppb.New(tc.from), timestamppb.New(tc.to)
			}
			stream, err := client.ExportEvents(storetest.SystemContext(), connect.NewRequest(req))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for stream.Receive() {
				got = append(got, stream.Msg().GetEvent().GetId())
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("%s: stream: %v", tc.name, err)
			}
			stream.Close()
			if !slices.Equal(got, want) {
				t.Errorf("%s: Connect stream gave %d events, want %d oldest first", tc.name, len(got), len(want))
			}

			// NDJSON.
			q := url.Values{"tenant_id": {acmeID}}
			if !tc.from.IsZero() {
				q.Set("created_after", tc.from.Format(time.RFC3339Nano))
				q.Set("created_before", tc.to.Format(time.RFC3339Nano))
			}
			res, err := srv.Client().Get(srv.URL + "/v1/audit/export?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/x-ndjson" {
				t.Fatalf("%s: NDJSON: %d %s", tc.name, res.StatusCode, res.Header.Get("Content-Type"))
			}
			got = got[:0]
			sc := bufio.NewScanner(res.Body)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var ev v1.AuditEvent
				if err := protojson.Unmarshal(sc.Bytes(), &ev); err != nil {
					t.Fatalf("%s: line %q: %v", tc.name, sc.Text(), err)
				}
				if !strings.Contains(sc.Text(), `"created_at":`) || !strings.Contains(sc.Text(), `"source_ip":`) {
					t.Fatalf("%s: line %s: want the API's JSON with proto field names", tc.name, sc.Text())
				}
				got = append(got, ev.Id)
			}
			res.Body.Close()
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: NDJSON gave %d events, want %d oldest first", tc.name, len(got), len(want))
			}
		}

		// Errors before the stream starts are the usual JSON errors.
		for _, tc := range []struct{ query, wantCode string }{
			{"", "invalid_argument"},
			{"tenant_id=nope", "invalid_argument"},
			{"tenant_id=" + acmeID + "&created_after=yesterday", "invalid_argument"},
		} {
			var apiErr apiError
			if code := call(t, srv, http.MethodGet, "/v1/audit/export?"+tc.query, "", &apiErr); code != http.StatusBadRequest || apiErr.Code != tc.wantCode {
				t.Errorf("export?%s: %d %+v, want 400 %s", tc.query, code, apiErr, tc.wantCode)
			}
		}
	})
}

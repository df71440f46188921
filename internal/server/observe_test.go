package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/platform/tenant-registry/internal/auth"
	"github.com/platform/tenant-registry/internal/auth/oidctest"
	"github.com/platform/tenant-registry/internal/catalog"
	"github.com/platform/tenant-registry/internal/config"
	"github.com/platform/tenant-registry/internal/logtest"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/server"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/internal/telemetry"
)

// observed is a server with a span recorder, a manual metric reader and
// captured JSON logs (through telemetry.LogHandler, as in production).
type observed struct {
	srv     *httptest.Server
	spans   *tracetest.SpanRecorder
	metrics *sdkmetric.ManualReader
	logs    *logtest.Buffer
	issuer  *oidctest.Issuer
}

func newObserved(t *testing.T) *observed {
	t.Helper()
	o := &observed{spans: tracetest.NewSpanRecorder(), metrics: sdkmetric.NewManualReader(), logs: &logtest.Buffer{}, issuer: oidctest.New()}
	t.Cleanup(o.issuer.Close)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.metrics))
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(o.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))

	st, err := store.OpenSQLite(context.Background(), "", store.Options{Driver: func(d *entsql.Driver) dialect.Driver { return telemetry.TraceDriver(d, tp) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// Tokens are verified; a request without one is the dev admin.
	o.srv = newStack(t, st, withLogger(log), withTelemetry(tp, mp),
		withConfig(func(c *config.Config) { c.KeycloakIssuer = o.issuer.URL() })).srv
	return o
}

func (o *observed) do(t *testing.T, method, path, body string, header map[string]string) response {
	t.Helper()
	return do(t, o.srv, method, path, body, header)
}

// dumpSpans renders every recorded span with all it holds.
func (o *observed) dumpSpans() string {
	var b strings.Builder
	for _, s := range o.spans.Ended() {
		fmt.Fprintf(&b, "%s %v %v %v %v %v\n", s.Name(), s.Attributes(), s.Events(), s.Status(), s.Links(), s.Resource())
	}
	return b.String()
}

func TestNoSecretsInLogsOrSpans(t *testing.T) {
	o := newObserved(t)
	token := o.issuer.Token(oidctest.Claims{Subject: "admin-1", Audience: []string{"tenant-registry"}, Roles: []string{principal.RolePlatformAdmin}})
	bearer := map[string]string{"Authorization": "Bearer " + token, "X-Request-Id": "req-create-1"}

	// Create a key with a real bearer token, then verify it.
	res := o.do(t, http.MethodPost, "/v1/api-keys", `{"tenant_id":"`+acmeID+`","name":"ci","scopes":["certifai:read"]}`, bearer)
	if res.status != http.StatusOK {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	if got := res.header.Get("X-Request-Id"); got != "req-create-1" {
		t.Errorf("X-Request-Id echoed %q, want req-create-1", got)
	}
	var created struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal([]byte(res.body), &created); err != nil || !strings.HasPrefix(created.Key, "trk_") {
		t.Fatalf("create: %s (%v)", res.body, err)
	}
	res = o.do(t, http.MethodPost, "/v1/internal/api-keys/verify", `{"key":"`+created.Key+`"}`, bearer)
	if res.status != http.StatusOK || !strings.Contains(res.body, `"valid":true`) {
		t.Fatalf("verify: %d %s", res.status, res.body)
	}
	// The same over Connect JSON, and a key that is almost right.
	res = o.do(t, http.MethodPost, "/tenantregistry.v1.InternalService/VerifyApiKey", `{"key":"`+created.Key+`"}`, bearer)
	if res.status != http.StatusOK {
		t.Fatalf("connect verify: %d %s", res.status, res.body)
	}
	wrongKey := created.Key[:len(created.Key)-4] + "AAAA"
	o.do(t, http.MethodPost, "/v1/internal/api-keys/verify", `{"key":"`+wrongKey+`"}`, nil)
	// A token that fails verification, and one with a bad scheme.
	badToken := "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2VuLXBheWxvYWQ.c2lnbmF0dXJl"
	res = o.do(t, http.MethodGet, "/v1/tenants/"+acmeID, "", map[string]string{"Authorization": "Bearer " + badToken})
	if res.status != http.StatusUnauthorized {
		t.Errorf("bad token: %d %s", res.status, res.body)
	}
	o.do(t, http.MethodGet, "/v1/audit/export?tenant_id="+acmeID, "", map[string]string{"Authorization": "Basic " + badToken})

	logs, spans := o.logs.String(), o.dumpSpans()
	for name, secret := range map[string]string{"api key": created.Key, "wrong api key": wrongKey, "bearer token": token, "bad token": badToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs hold the %s", name)
		}
		if strings.Contains(spans, secret) {
			t.Errorf("the spans hold the %s", name)
		}
		// Nor any recognisable piece of it (the key's secret part, the
		// token's signature).
		tail := secret[len(secret)-16:]
		if strings.Contains(logs, tail) || strings.Contains(spans, tail) {
			t.Errorf("logs or spans hold the end of the %s", name)
		}
	}

	// One access line per request, with the request id and the trace id.
	var sawCreate bool
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if rec["msg"] != "request" {
			continue
		}
		if rec["request_id"] == nil || rec["code"] == nil || rec["duration_ms"] == nil {
			t.Errorf("access line without request_id/code/duration: %s", line)
		}
		if rec["request_id"] == "req-create-1" && rec["procedure"] == "/tenantregistry.v1.ApiKeyService/CreateApiKey" {
			sawCreate = true
			if rec["code"] != "ok" || rec["path"] != "/v1/api-keys" || rec["method"] != "POST" || rec["trace_id"] == nil || rec["span_id"] == nil {
				t.Errorf("create's access line: %s", line)
			}
		}
	}
	if !sawCreate {
		t.Errorf("no access line for CreateApiKey in:\n%s", logs)
	}

	// Spans: one server span per RPC with rpc.* and the code; client spans
	// for the database with db.system and the statement.
	var rpcSpan, dbSpan bool
	for _, s := range o.spans.Ended() {
		attrs := attribute.NewSet(s.Attributes()...)
		if s.Name() == "tenantregistry.v1.ApiKeyService/CreateApiKey" {
			rpcSpan = true
			for k, want := range map[attribute.Key]string{"rpc.system": "connect_rpc", "rpc.service": "tenantregistry.v1.ApiKeyService", "rpc.method": "CreateApiKey", "rpc.response.status_code": "ok"} {
				if v, _ := attrs.Value(k); v.AsString() != want {
					t.Errorf("CreateApiKey span %s = %q, want %q", k, v.AsString(), want)
				}
			}
		}
		if v, ok := attrs.Value("db.system"); ok && v.AsString() == "sqlite" {
			if q, _ := attrs.Value("db.query.text"); strings.Contains(q.AsString(), "api_keys") {
				dbSpan = true
			}
		}
	}
	if !rpcSpan || !dbSpan {
		t.Errorf("want a CreateApiKey server span (%v) and an api_keys db span (%v); got:\n%s", rpcSpan, dbSpan, spans)
	}

	// Metrics: the request counter by procedure and code.
	var rm metricdata.ResourceMetrics
	if err := o.metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	if !hasRequestCount(rm, "/tenantregistry.v1.InternalService/VerifyApiKey", "ok", 3) {
		t.Errorf("no tenant_registry.requests{procedure=VerifyApiKey,code=ok} = 3 in %+v", rm)
	}
	if !hasRequestCount(rm, "/tenantregistry.v1.TenantService/GetTenant", "unauthenticated", 1) {
		t.Errorf("no tenant_registry.requests{procedure=GetTenant,code=unauthenticated} = 1")
	}
}

func hasRequestCount(rm metricdata.ResourceMetrics, procedure, code string, want int64) bool {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != "tenant_registry.requests" || !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				p, _ := dp.Attributes.Value("procedure")
				c, _ := dp.Attributes.Value("code")
				if p.AsString() == procedure && c.AsString() == code && dp.Value == want {
					return true
				}
			}
		}
	}
	return false
}

func TestRequestID(t *testing.T) {
	o := newObserved(t)
	if got := o.do(t, http.MethodGet, "/healthz", "", map[string]string{"X-Request-Id": "abc-123"}).header.Get("X-Request-Id"); got != "abc-123" {
		t.Errorf("sane id: echoed %q", got)
	}
	for _, bad := range []string{strings.Repeat("x", 129), "has space", "tab\there"} {
		got := o.do(t, http.MethodGet, "/healthz", "", map[string]string{"X-Request-Id": bad}).header.Get("X-Request-Id")
		if got == "" || got == bad {
			t.Errorf("insane id %q: echoed %q, want a fresh one", bad, got)
		}
	}
	a := o.do(t, http.MethodGet, "/healthz", "", nil).header.Get("X-Request-Id")
	b := o.do(t, http.MethodGet, "/healthz", "", nil).header.Get("X-Request-Id")
	if a == "" || a == b {
		t.Errorf("generated ids %q, %q: want two distinct ones", a, b)
	}
}

func TestBodyLimits(t *testing.T) {
	o := newObserved(t)
	big := `{"slug":"big","name":"` + strings.Repeat("x", 2<<20) + `"}`

	// REST with a Content-Length over the limit.
	res := o.do(t, http.MethodPost, "/v1/tenants", big, nil)
	var e apiError
	_ = json.Unmarshal([]byte(res.body), &e)
	if res.status != http.StatusRequestEntityTooLarge || e.Code != "resource_exhausted" || !strings.Contains(e.Message, "too large") {
		t.Errorf("REST, Content-Length: %d %s; want 413 resource_exhausted", res.status, res.body)
	}

	// REST, chunked (no Content-Length): the limit trips while reading.
	req, _ := http.NewRequest(http.MethodPost, o.srv.URL+"/v1/tenants", io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1
	r2, err := o.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	e = apiError{}
	_ = json.Unmarshal(b, &e)
	if r2.StatusCode != http.StatusRequestEntityTooLarge || e.Code != "resource_exhausted" {
		t.Errorf("REST, chunked: %d %s; want 413 resource_exhausted", r2.StatusCode, b)
	}

	// Connect: resource_exhausted from connect.WithReadMaxBytes.
	res = o.do(t, http.MethodPost, "/tenantregistry.v1.TenantService/CreateTenant", big, nil)
	e = apiError{}
	_ = json.Unmarshal([]byte(res.body), &e)
	if e.Code != "resource_exhausted" {
		t.Errorf("Connect: %d %s; want resource_exhausted", res.status, res.body)
	}

	// A body under the limit still works.
	if res := o.do(t, http.MethodPost, "/v1/tenants", `{"slug":"small-co","name":"Small","plan":"starter"}`, nil); res.status != http.StatusOK {
		t.Errorf("small body: %d %s", res.status, res.body)
	}
}

func TestPanicsRecovered(t *testing.T) {
	// Mis-wired on purpose, outside app.New: without their services these
	// handlers dereference nil, a panic.
	o := &observed{logs: &logtest.Buffer{}}
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(o.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	h, err := server.NewServer(server.Deps{
		Logger: log, Store: storetest.SQLite(t), Catalog: catalog.Default(), Auth: auth.NewAuthenticator(nil, true),
	})
	if err != nil {
		t.Fatal(err)
	}
	o.srv = httptest.NewServer(h)
	t.Cleanup(o.srv.Close)

	res := o.do(t, http.MethodPost, "/tenantregistry.v1.TenantService/GetTenant", `{"id":"`+acmeID+`"}`, nil)
	if res.status != http.StatusInternalServerError || !strings.Contains(res.body, `"code":"internal"`) {
		t.Errorf("Connect: %d %s; want 500 internal", res.status, res.body)
	}
	res = o.do(t, http.MethodGet, "/v1/tenants/"+acmeID, "", nil)
	if res.status != http.StatusInternalServerError || !strings.Contains(res.body, `"code":"internal"`) {
		t.Errorf("REST: %d %s; want 500 internal", res.status, res.body)
	}
	res = o.do(t, http.MethodGet, "/v1/audit/export?tenant_id="+acmeID, "", nil)
	if res.status != http.StatusInternalServerError || !strings.Contains(res.body, `"code":"internal"`) {
		t.Errorf("plain handler: %d %s; want 500 internal", res.status, res.body)
	}
	if res := o.do(t, http.MethodGet, "/healthz", "", nil); res.status != http.StatusOK {
		t.Errorf("after the panics /healthz answers %d", res.status)
	}
	if res := o.do(t, http.MethodGet, "/v1/catalog", "", nil); res.status != http.StatusOK {
		t.Errorf("after the panics /v1/catalog answers %d", res.status)
	}
	logs := o.logs.String()
	if n := strings.Count(logs, `"msg":"panic recovered"`); n != 3 {
		t.Errorf("%d panic log lines, want 3 (one per panic):\n%s", n, logs)
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"msg":"panic recovered"`) && (!strings.Contains(line, `"level":"ERROR"`) || !strings.Contains(line, `"request_id"`)) {
			t.Errorf("panic line without level ERROR or request_id: %s", line)
		}
	}
}

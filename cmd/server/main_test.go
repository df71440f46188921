package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	"github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/logtest"
	"github.com/platform/tenant-registry/internal/pgcluster"
	"github.com/platform/tenant-registry/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// startServer calls run with env on a free port, waits for /healthz, and
// returns the base URL. The server is stopped (as by SIGTERM) at cleanup,
// and run must then return nil; its log is shown when the test failed.
// Unless env sets SHUTDOWN_DELAY, it is 0: nothing balances these servers.
func startServer(t *testing.T, env map[string]string) string {
	t.Helper()
	base, _ := startReplica(t, env)
	return base
}

// startReplica is startServer that also answers the server's log.
func startReplica(t *testing.T, env map[string]string) (string, *logtest.Buffer) {
	t.Helper()
	addr := freeAddr(t)
	env["ADDR"] = addr
	if _, ok := env["SHUTDOWN_DELAY"]; !ok {
		env["SHUTDOWN_DELAY"] = "0"
	}
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	logs := &logtest.Buffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, getenv, logs) }()
	base := "http://" + addr
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run returned %v after shutdown", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("run did not return after shutdown")
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", base, logs.String())
		}
	})
	waitHealthy(t, base, done)
	return base, logs
}

// requirePostgresServer skips a test that starts its own PostgreSQL when
// the server binaries are missing, except under CI, where it fails.
func requirePostgresServer(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("fault test: starts PostgreSQL")
	}
	pgtest.RequireBinary(t, filepath.Join(pgcluster.DefaultBinDir, "pg_ctl"), "PG_BIN_DIR", "the PostgreSQL server binaries")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHealthy(t *testing.T, base string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v", err)
		default:
		}
		res, err := http.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server at %s not healthy in time", base)
}

// h2c is a client speaking HTTP/2 without TLS, as gRPC clients do.
func h2c() *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr}
}

var acmeJSON = map[string]any{
	"id": "00000000-0000-0000-0000-000000000001", "slug": "acme", "name": "Acme Inc.",
	"status": "active", "plan": "professional", "products": []any{"certifai", "compliance"},
}

func TestServe(t *testing.T) {
	stores := []struct {
		name string
		env  func(t *testing.T) map[string]string
	}{
		{"sqlite", func(t *testing.T) map[string]string { return map[string]string{} }},
		{"postgres", func(t *testing.T) map[string]string {
			return map[string]string{"DATABASE_URL": pgtest.MigratedURL(t)}
		}},
	}
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			base := startServer(t, s.env(t))
			t.Run("rest", func(t *testing.T) { testREST(t, base) })
			t.Run("connect json post", func(t *testing.T) { testConnectJSON(t, base) })
			t.Run("protocols", func(t *testing.T) { testProtocols(t, base) })
			t.Run("grpc health", func(t *testing.T) {
				client := connect.NewClient[healthpb.HealthCheckRequest, healthpb.HealthCheckResponse](
					h2c(), base+"/grpc.health.v1.Health/Check", connect.WithGRPC())
				for _, svc := range []string{"", "tenantregistry.v1.InternalService"} {
					res, err := client.CallUnary(context.Background(), connect.NewRequest(&healthpb.HealthCheckRequest{Service: svc}))
					if err != nil || res.Msg.Status != healthpb.HealthCheckResponse_SERVING {
						t.Errorf("health of %q: %v %v, want SERVING", svc, res, err)
					}
				}
			})
			t.Run("probes", func(t *testing.T) {
				for _, path := range []string{"/healthz", "/readyz"} {
					res, err := http.Get(base + path)
					if err != nil {
						t.Fatal(err)
					}
					res.Body.Close()
					if res.StatusCode != http.StatusOK {
						t.Errorf("%s: %d", path, res.StatusCode)
					}
				}
			})
		})
	}
}

func getJSON(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: %d, not JSON: %q", method, url, res.StatusCode, raw)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: Content-Type %q", method, url, ct)
	}
	return res.StatusCode, m
}

func assertFields(t *testing.T, got map[string]any, want map[string]any) {
	t.Helper()
	for k, w := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(w) {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
}

func testREST(t *testing.T, base string) {
	status, acme := getJSON(t, "GET", base+"/v1/tenants/by-slug/acme", "")
	if status != http.StatusOK {
		t.Fatalf("by-slug: %d %v", status, acme)
	}
	assertFields(t, acme, acmeJSON)
	if _, ok := acme["created_at"]; !ok {
		t.Errorf("created_at missing: %v", acme)
	}
	status, byID := getJSON(t, "GET", base+"/v1/tenants/00000000-0000-0000-0000-000000000001", "")
	if status != http.StatusOK {
		t.Fatalf("by id: %d", status)
	}
	assertFields(t, byID, acmeJSON)

	errCases := []struct {
		name, method, path, body string
		wantStatus               int
		wantCode                 string
	}{
		{"unknown slug", "GET", "/v1/tenants/by-slug/nobody-here", "", 404, "not_found"},
		{"bad slug", "GET", "/v1/tenants/by-slug/Bad_Slug", "", 400, "invalid_argument"},
		{"unknown id", "GET", "/v1/tenants/00000000-0000-0000-0000-0000000000ff", "", 404, "not_found"},
		{"bad id", "GET", "/v1/tenants/xyz", "", 400, "invalid_argument"},
		{"taken slug", "POST", "/v1/tenants", `{"slug":"acme","name":"Again"}`, 409, "already_exists"},
		{"bad json", "POST", "/v1/tenants", `{"slug":`, 400, "invalid_argument"},
		{"activate active", "POST", "/v1/tenants/00000000-0000-0000-0000-000000000001/activate", `{}`, 409, "failed_precondition"},
		{"unknown path", "GET", "/v1/nothing-here", "", 404, "not_found"},
	}
	for _, c := range errCases {
		status, body := getJSON(t, c.method, base+c.path, c.body)
		if status != c.wantStatus || body["code"] != c.wantCode || body["message"] == "" {
			t.Errorf("%s: %d %v, want %d with code %q and a message", c.name, status, body, c.wantStatus, c.wantCode)
		}
	}

	status, created := getJSON(t, "POST", base+"/v1/tenants", `{"slug":"rest-co","name":"Rest Co","plan":"starter"}`)
	if status != http.StatusOK {
		t.Fatalf("create: %d %v", status, created)
	}
	tn, _ := created["tenant"].(map[string]any)
	assertFields(t, tn, map[string]any{"slug": "rest-co", "status": "trial", "plan": "starter"})
	id, _ := tn["id"].(string)
	for _, step := range []struct{ op, want string }{{"activate", "active"}, {"cancel", "frozen"}} {
		status, res := getJSON(t, "POST", base+"/v1/tenants/"+id+"/"+step.op, "")
		got, _ := res["tenant"].(map[string]any)
		if status != http.StatusOK || got["status"] != step.want {
			t.Errorf("%s: %d %v, want status %s", step.op, status, res, step.want)
		}
	}
	status, list := getJSON(t, "GET", base+"/v1/tenants?page_size=1&status=frozen", "")
	tenants, _ := list["tenants"].([]any)
	if status != http.StatusOK || len(tenants) != 1 {
		t.Errorf("list: %d %v", status, list)
	}
}

func testConnectJSON(t *testing.T, base string) {
	// A plain curl-style POST without Connect-Protocol-Version.
	status, res := getJSON(t, "POST", base+"/tenantregistry.v1.TenantService/GetTenantBySlug", `{"slug":"acme"}`)
	if status != http.StatusOK {
		t.Fatalf("connect json: %d %v", status, res)
	}
	tn, _ := res["tenant"].(map[string]any)
	assertFields(t, tn, acmeJSON)
	status, res = getJSON(t, "POST", base+"/tenantregistry.v1.TenantService/GetTenantBySlug", `{"slug":"nobody-here"}`)
	if status != http.StatusNotFound || res["code"] != "not_found" {
		t.Errorf("connect json unknown: %d %v", status, res)
	}
	status, res = getJSON(t, "POST", base+"/tenantregistry.v1.EntitlementService/GrantEntitlement", `{}`)
	if status == http.StatusOK {
		t.Errorf("an RPC without implementation answered 200: %v", res)
	}
}

func testProtocols(t *testing.T, base string) {
	clients := []struct {
		name string
		c    tenantregistryv1connect.TenantServiceClient
	}{
		{"connect proto", tenantregistryv1connect.NewTenantServiceClient(http.DefaultClient, base)},
		{"connect json", tenantregistryv1connect.NewTenantServiceClient(http.DefaultClient, base, connect.WithProtoJSON())},
		{"grpc over h2c", tenantregistryv1connect.NewTenantServiceClient(h2c(), base, connect.WithGRPC())},
		{"grpc-web", tenantregistryv1connect.NewTenantServiceClient(http.DefaultClient, base, connect.WithGRPCWeb())},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			res, err := c.c.GetTenantBySlug(ctx, connect.NewRequest(&v1.GetTenantBySlugRequest{Slug: "acme"}))
			if err != nil {
				t.Fatal(err)
			}
			got := res.Msg.Tenant
			if got.Id != "00000000-0000-0000-0000-000000000001" || got.Status != "active" || got.Plan != "professional" ||
				strings.Join(got.Products, ",") != "certifai,compliance" {
				t.Errorf("acme = %v", got)
			}
			_, err = c.c.GetTenant(ctx, connect.NewRequest(&v1.GetTenantRequest{Id: "00000000-0000-0000-0000-0000000000aa"}))
			if got, want := connect.CodeOf(err), connect.CodeNotFound; got != want {
				t.Errorf("unknown id: code %v (%v), want %v", got, err, want)
			}
		})
	}
}

func TestRefusesUnmigratedDatabase(t *testing.T) {
	env := map[string]string{"DATABASE_URL": pgtest.URL(t), "ADDR": freeAddr(t)}
	err := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "make migrate-up") {
		t.Fatalf("run on an unmigrated database = %v, want an error saying to run make migrate-up", err)
	}
}

func TestBadConfigNamesVariable(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"APP_ENV": "production"}, "APP_ENV"},
		{map[string]string{"ADDR": "nonsense"}, "ADDR"},
		{map[string]string{"DATABASE_URL": "mysql://x"}, "DATABASE_URL"},
		{map[string]string{"APP_ENV": "prod"}, "APP_ENV=prod"},
		{map[string]string{"APP_ENV": "prod", "API_KEY_SECRET": strings.Repeat("k", 32)}, "KEYCLOAK_ISSUER"},
		{map[string]string{"APP_ENV": "stage", "API_KEY_SECRET": strings.Repeat("k", 32), "KEYCLOAK_ISSUER": "https://kc.example/realms/x"}, "DATABASE_URL"},
		{map[string]string{"DB_MAX_CONNS": "0"}, "DB_MAX_CONNS"},
		{map[string]string{"CORS_ALLOWED_ORIGINS": "*"}, "CORS_ALLOWED_ORIGINS"},
		{map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
	}
	for _, c := range cases {
		err := run(context.Background(), nil, func(k string) string { return c.env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("env %v: err = %v, want one naming %s", c.env, err, c.want)
		}
	}
}

func TestGracefulShutdown(t *testing.T) {
	addr := freeAddr(t)
	env := map[string]string{"ADDR": addr, "SHUTDOWN_DELAY": "0"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard) }()
	waitHealthy(t, "http://"+addr, done)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run = %v, want nil after shutdown", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return")
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("server still answers after shutdown: %v", err)
	}
}

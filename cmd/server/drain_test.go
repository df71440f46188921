package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/platform/tenant-registry/internal/keycloak/keycloaktest"
	"github.com/platform/tenant-registry/internal/logtest"
)

// TestDrainOnShutdown runs run (embedded store, a slow fake Keycloak) and
// cancels its context as SIGTERM does while a CreateTenant waits in
// Keycloak: /readyz answers 503 and gRPC health NOT_SERVING at once, while
// for SHUTDOWN_DELAY every other request is still answered 200 — with
// Connection: close, on new connections and kept-alive ones alike; then new
// connections are refused while the slow request, still in flight, drains
// and is answered 200; run returns nil, having logged each phase once.
func TestDrainOnShutdown(t *testing.T) {
	const (
		delay         = 1500 * time.Millisecond
		keycloakDelay = delay + time.Second // in flight when the listener closes
	)
	fake := keycloaktest.New(t, "platform", "tenant-registry", "drain-secret")
	inKeycloak := make(chan struct{})
	var once sync.Once
	fake.SetHook(func(r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/organizations") {
			return
		}
		once.Do(func() { close(inKeycloak) })
		select {
		case <-time.After(keycloakDelay):
		case <-r.Context().Done():
		}
	})
	addr := freeAddr(t)
	base := "http://" + addr
	env := map[string]string{
		"APP_ENV": "dev", "ADDR": addr, "LOG_LEVEL": "info",
		"SHUTDOWN_DELAY": delay.String(), "SHUTDOWN_TIMEOUT": "10s",
		"KEYCLOAK_ADMIN_URL": fake.URL(), "KEYCLOAK_REALM": "platform",
		"KEYCLOAK_CLIENT_ID": "tenant-registry", "KEYCLOAK_CLIENT_SECRET": "drain-secret",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &logtest.Buffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, logs) }()
	defer func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	}()
	waitHealthy(t, base, done)

	fresh := func() *http.Client {
		return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	}
	kept := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}, Timeout: 5 * time.Second}
	get := func(c *http.Client, path string) (int, bool, error) {
		res, err := c.Get(base + path)
		if err != nil {
			return 0, false, err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode, res.Close, nil
	}
	health := connect.NewClient[healthpb.HealthCheckRequest, healthpb.HealthCheckResponse](
		h2c(), base+"/grpc.health.v1.Health/Check", connect.WithGRPC())
	healthStatus := func() (healthpb.HealthCheckResponse_ServingStatus, error) {
		res, err := health.CallUnary(context.Background(), connect.NewRequest(&healthpb.HealthCheckRequest{}))
		if err != nil {
			return 0, err
		}
		return res.Msg.Status, nil
	}
	for _, p := range []string{"/readyz", "/v1/tenants/by-slug/acme"} {
		if got, closes, err := get(kept, p); err != nil || got != http.StatusOK || closes {
			t.Fatalf("before shutdown: GET %s = %d (Connection: close %v) %v, want 200 on a kept-alive connection", p, got, closes, err)
		}
	}
	if got, err := healthStatus(); err != nil || got != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("before shutdown: gRPC health %v %v, want SERVING", got, err)
	}

	type result struct {
		status int
		body   map[string]any
		err    error
		at     time.Time
	}
	slow := make(chan result, 1)
	go func() {
		status, body, err := postJSON(&http.Client{Timeout: 20 * time.Second}, "POST", base+"/v1/tenants",
			`{"slug":"drain-slow","name":"Drain Slow","admin_email":"it@drain.example"}`)
		slow <- result{status, body, err, time.Now()}
	}()
	select {
	case <-inKeycloak:
	case <-time.After(20 * time.Second):
		t.Fatal("the slow CreateTenant did not reach Keycloak")
	}

	cancel() // SIGTERM
	signalled := time.Now()
	var flippedAfter time.Duration
	for {
		got, _, err := get(fresh(), "/readyz")
		if err != nil {
			t.Fatalf("/readyz right after shutdown began: %v", err)
		}
		if got == http.StatusServiceUnavailable {
			flippedAfter = time.Since(signalled)
			break
		}
		if time.Since(signalled) > 500*time.Millisecond {
			t.Fatalf("/readyz still %d %v after shutdown began, want 503 at once", got, time.Since(signalled))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got, err := healthStatus(); err != nil || got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("draining: gRPC health %v %v, want NOT_SERVING", got, err)
	}

	// Until the delay is nearly over, everything else is served as before.
	served := 0
	for time.Since(signalled) < delay-300*time.Millisecond {
		for _, c := range []struct {
			name   string
			client *http.Client
		}{{"new connection", fresh()}, {"kept-alive connection", kept}} {
			got, closes, err := get(c.client, "/v1/tenants/by-slug/acme")
			if err != nil || got != http.StatusOK {
				t.Fatalf("draining, %v after SIGTERM, %s: GET by-slug = %d %v, want 200", time.Since(signalled), c.name, got, err)
			}
			if !closes {
				t.Errorf("draining, %s: the answer does not say Connection: close", c.name)
			}
			served++
		}
		if got, _, err := get(fresh(), "/readyz"); err != nil || got != http.StatusServiceUnavailable {
			t.Fatalf("draining: /readyz = %d %v, want 503 throughout", got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case r := <-slow:
		t.Fatalf("the slow request was answered during the delay (%d %v): it was not in flight at the shutdown", r.status, r.err)
	case err := <-done:
		t.Fatalf("run returned %v during the delay", err)
	default:
	}

	// After the delay: new connections are refused while the slow one drains.
	time.Sleep(time.Until(signalled.Add(delay + 100*time.Millisecond)))
	refusedAfter, lastErr := dialUntilRefused(addr, signalled, keycloakDelay-100*time.Millisecond)
	if refusedAfter == 0 {
		t.Errorf("new connections still accepted %v after SIGTERM (SHUTDOWN_DELAY %v) with a request in flight (last dial: %v)", keycloakDelay-100*time.Millisecond, delay, lastErr)
	}
	r := <-slow
	if r.err != nil || r.status != http.StatusOK {
		t.Errorf("the slow CreateTenant in flight at the shutdown: %d %v %v, want 200", r.status, r.body, r.err)
	}
	if r.at.Sub(signalled) < delay {
		t.Errorf("the slow CreateTenant was answered %v after SIGTERM, before the delay ended", r.at.Sub(signalled))
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run = %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return")
	}
	exited := time.Since(signalled)

	log := logs.String()
	for _, phase := range []string{
		`"msg":"draining: readiness answers 503, still serving"`,
		`"msg":"shutting down: no new connections, in-flight requests drain"`,
		`"msg":"background jobs stopped"`,
		`"msg":"stopped"`,
	} {
		if got, want := strings.Count(log, phase), 1; got != want {
			t.Errorf("log has %s %d times, want %d", phase, got, want)
		}
	}
	t.Logf("readiness 503 %v after SIGTERM; %d requests served 200 during the %v delay; new connections refused %v after; the in-flight request answered %v after; run returned %v after",
		flippedAfter.Round(time.Millisecond), served, delay, refusedAfter.Round(time.Millisecond),
		r.at.Sub(signalled).Round(time.Millisecond), exited.Round(time.Millisecond))
}

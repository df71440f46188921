package main

// Fault tests: the service under SIGTERM, a PostgreSQL outage and a
// Keycloak outage. Loopback only, bounded in time, skipped under -short.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/platform/tenant-registry/ent/tenant"
	"github.com/platform/tenant-registry/internal/keycloak/keycloaktest"
	"github.com/platform/tenant-registry/internal/logtest"
	"github.com/platform/tenant-registry/internal/pgcluster"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/store"
)

var serverBinary struct {
	once sync.Once
	path string
	err  error
}

// buildServer builds ./cmd/server (the production binary, nothing
// test-only in it) once per test process.
func buildServer(t *testing.T) string {
	t.Helper()
	serverBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "tenant-registry-fault-")
		if err != nil {
			serverBinary.err = err
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		serverBinary.path = filepath.Join(dir, "tenant-registry")
		out, err := exec.Command(goTool, "build", "-o", serverBinary.path, ".").CombinedOutput()
		if err != nil {
			serverBinary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if serverBinary.err != nil {
		t.Fatal(serverBinary.err)
	}
	return serverBinary.path
}

// postJSON sends a JSON request with client and decodes a JSON answer.
func postJSON(client *http.Client, method, url, body string) (int, map[string]any, error) {
	return apiCall(client, "", method, url, body)
}

// apiCall is one JSON request, with a bearer token unless token is empty;
// it answers the status and the decoded JSON body.
func apiCall(client *http.Client, token, method, url, body string) (int, map[string]any, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return res.StatusCode, nil, fmt.Errorf("status %d, not JSON: %q", res.StatusCode, raw)
	}
	return res.StatusCode, m, nil
}

// dialUntilRefused dials addr every 10 ms until a connection is refused or
// until has passed since since, and answers when (after since) it was
// refused — 0 if never — and the last other dial result. A dial may still
// land in the accept queue just before the listener closes, or time out on
// a busy machine: only a refusal counts.
func dialUntilRefused(addr string, since time.Time, until time.Duration) (refusedAfter time.Duration, lastErr error) {
	for time.Since(since) < until {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return time.Since(since), nil
		}
		if err == nil {
			c.Close()
		}
		lastErr = err
		time.Sleep(10 * time.Millisecond)
	}
	return 0, lastErr
}

// TestFaultSIGTERMInFlight runs the built server binary (SQLite file),
// holds a burst of CreateTenant calls in flight on keep-alive connections —
// each waits on a slow Keycloak, a real slow path — and sends SIGTERM
// while all of them are being served. Every one of them must complete with
// 200 and be stored, new connections must be refused while they drain, and
// the process must exit 0 within SHUTDOWN_TIMEOUT. (SHUTDOWN_DELAY=0: the
// drain before it is TestDrainOnShutdown's and TestRollingRestart's.)
func TestFaultSIGTERMInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: builds and runs the server binary")
	}
	const (
		inFlight        = 32
		keycloakDelay   = 1500 * time.Millisecond
		shutdownTimeout = 10 * time.Second
	)
	bin := buildServer(t)
	dbPath := filepath.Join(t.TempDir(), "registry.db")

	// Keycloak answers organisation creates slowly; once all the burst's
	// creates are inside Keycloak, every request is accepted and in flight.
	fake := keycloaktest.New(t, "platform", "tenant-registry", "fault-secret")
	var inKeycloak atomic.Int32
	allIn := make(chan struct{})
	fake.SetHook(func(r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/organizations") {
			return
		}
		if inKeycloak.Add(1) == inFlight {
			close(allIn)
		}
		select {
		case <-time.After(keycloakDelay):
		case <-r.Context().Done():
		}
	})

	addr := freeAddr(t)
	base := "http://" + addr
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"APP_ENV=dev", "ADDR="+addr, "SQLITE_PATH="+dbPath, "DATABASE_URL=",
		"SHUTDOWN_TIMEOUT="+shutdownTimeout.String(), "SHUTDOWN_DELAY=0", "LOG_LEVEL=warn",
		"KEYCLOAK_ADMIN_URL="+fake.URL(), "KEYCLOAK_REALM=platform",
		"KEYCLOAK_CLIENT_ID=tenant-registry", "KEYCLOAK_CLIENT_SECRET=fault-secret")
	logs := &logtest.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	var exitedAt time.Time
	go func() { waitErr = cmd.Wait(); exitedAt = time.Now(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if res, err := http.Get(base + "/healthz"); err == nil {
			res.Body.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("server exited early: %v", waitErr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("server not healthy in time")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// One keep-alive connection per client, opened before the burst.
	clients := make([]*http.Client, inFlight)
	for i := range clients {
		clients[i] = &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}, Timeout: 30 * time.Second}
		res, err := clients[i].Get(base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	type result struct {
		slug   string
		status int
		body   map[string]any
		err    error
		at     time.Time
	}
	results := make([]result, inFlight)
	var wg sync.WaitGroup
	for i := range inFlight {
		wg.Go(func() {
			slug := fmt.Sprintf("sigterm-%02d", i)
			status, body, err := postJSON(clients[i], "POST", base+"/v1/tenants",
				fmt.Sprintf(`{"slug":%q,"name":"SIGTERM %d"}`, slug, i))
			results[i] = result{slug, status, body, err, time.Now()}
		})
	}
	select {
	case <-allIn:
	case <-time.After(20 * time.Second):
		t.Fatalf("only %d of %d creates reached Keycloak", inKeycloak.Load(), inFlight)
	}
	signalled := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// New connections are refused while the accepted requests drain.
	// (A dial may still land in the accept queue just before the listener
	// closes, or time out on a busy machine: keep dialling until refused.)
	refusedAfter, lastErr := dialUntilRefused(addr, signalled, keycloakDelay*3/4)
	select {
	case <-exited:
		t.Errorf("the process exited %v after SIGTERM, before its in-flight requests could drain", exitedAt.Sub(signalled))
	default:
	}
	if refusedAfter == 0 {
		t.Errorf("new connections were still accepted %v after SIGTERM while requests were in flight (last dial: %v)", keycloakDelay*3/4, lastErr)
	}
	if _, err := (&http.Client{Timeout: 2 * time.Second}).Get(base + "/healthz"); err == nil {
		t.Errorf("a new request after SIGTERM was served")
	}

	wg.Wait()
	for _, r := range results {
		if r.err != nil || r.status != http.StatusOK {
			t.Errorf("%s (in flight at SIGTERM): %d %v %v, want 200", r.slug, r.status, r.body, r.err)
			continue
		}
		if r.at.Before(signalled) {
			t.Errorf("%s answered before SIGTERM: the burst was not in flight", r.slug)
		}
	}
	select {
	case <-exited:
	case <-time.After(shutdownTimeout + 5*time.Second):
		t.Fatalf("the process did not exit within SHUTDOWN_TIMEOUT (%v)", shutdownTimeout)
	}
	if waitErr != nil {
		t.Fatalf("exit: %v, want status 0", waitErr)
	}
	if took := exitedAt.Sub(signalled); took > shutdownTimeout {
		t.Errorf("exit %v after SIGTERM, want within SHUTDOWN_TIMEOUT %v", took, shutdownTimeout)
	}
	t.Logf("%d requests drained; new connections refused %v and exit 0 %v after SIGTERM",
		inFlight, refusedAfter.Round(time.Millisecond), exitedAt.Sub(signalled).Round(time.Millisecond))

	// Every acknowledged create is stored.
	st, err := store.OpenSQLite(context.Background(), dbPath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n, err := st.Client.Tenant.Query().Where(tenant.SlugHasPrefix("sigterm-")).Count(context.Background())
	if err != nil || n != inFlight {
		t.Errorf("stored tenants = %d (%v), want %d", n, err, inFlight)
	}
}

// TestFaultPostgresOutage stops PostgreSQL for about three seconds under a
// steady CreateTenant load (~20/s over REST for ~8s): /readyz is 503 while
// it is down and 200 after, writes fail fast with unavailable (503) and none
// hits its client deadline, the service recovers by itself, and every
// acknowledged write is in the database with its tenant.created event.
//
// The rate is one the server sustains with room to spare as this suite
// runs it: built with -race, next to another package's tests on two cores.
// A create is some fifteen database round trips (its transaction, the
// inline Keycloak attempt, the read-back); at 50/s such a server fell
// behind before the outage began, and writes queued for the pool past the
// client deadline (CI, 2026-12-02) — overload, which is not what this test
// is about.
func TestFaultPostgresOutage(t *testing.T) {
	const (
		rate        = 20
		loadFor     = 8 * time.Second
		downAt      = 2 * time.Second
		downFor     = 3 * time.Second
		reqDeadline = 3 * time.Second
	)
	ctx := context.Background()
	// A cluster of its own: stopping the shared test cluster would break
	// the other tests.
	cluster, dbURL, base := serverOnOwnCluster(t, ctx, pgcluster.Options{}, "fault")
	client := &http.Client{Timeout: reqDeadline, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	type write struct {
		slug    string
		status  int
		code    any
		err     error
		took    time.Duration
		started time.Duration
	}
	var (
		mu     sync.Mutex
		writes []write
	)
	type probe struct {
		at     time.Duration
		status int
		grpc   healthpb.HealthCheckResponse_ServingStatus // gRPC health at the same moment
	}
	health := connect.NewClient[healthpb.HealthCheckRequest, healthpb.HealthCheckResponse](
		h2c(), base+"/grpc.health.v1.Health/Check", connect.WithGRPC())
	var probes []probe
	start := time.Now()
	stopProbes := make(chan struct{})
	probesDone := make(chan struct{})
	go func() {
		defer close(probesDone)
		for {
			select {
			case <-stopProbes:
				return
			case <-time.After(100 * time.Millisecond):
			}
			status := 0
			if res, err := client.Get(base + "/readyz"); err == nil {
				status = res.StatusCode
				res.Body.Close()
			}
			var grpcStatus healthpb.HealthCheckResponse_ServingStatus
			hctx, cancel := context.WithTimeout(ctx, reqDeadline)
			if res, err := health.CallUnary(hctx, connect.NewRequest(&healthpb.HealthCheckRequest{})); err == nil {
				grpcStatus = res.Msg.Status
			}
			cancel()
			mu.Lock()
			probes = append(probes, probe{time.Since(start), status, grpcStatus})
			mu.Unlock()
		}
	}()
	out := startOutage(ctx, cluster, cluster.Pause, start, downAt, downFor)
	steadyLoad(start, time.Second/rate, loadFor, func(i int) {
		slug := fmt.Sprintf("outage-%04d", i)
		began := time.Now()
		status, body, err := postJSON(client, "POST", base+"/v1/tenants", fmt.Sprintf(`{"slug":%q,"name":"Outage %d"}`, slug, i))
		w := write{slug: slug, status: status, code: body["code"], err: err, took: time.Since(began), started: began.Sub(start)}
		mu.Lock()
		writes = append(writes, w)
		mu.Unlock()
	})
	if err := <-out.done; err != nil {
		t.Fatalf("pause/resume PostgreSQL: %v", err)
	}
	// PostgreSQL is surely down from pausedAt (pg_ctl stop returned) to
	// resuming (pg_ctl start called), and back by resumedAt.
	pausedAt, resuming, resumedAt := time.Duration(out.down.Load()), time.Duration(out.resuming.Load()), time.Duration(out.back.Load())
	// Recovery by itself: ready again, and writes succeed, without any
	// intervention.
	recovered := readyWithin(client, base, 15*time.Second)
	close(stopProbes)
	<-probesDone
	if !recovered {
		t.Fatal("/readyz did not answer 200 within 15s of PostgreSQL's return")
	}
	for i := range 5 {
		slug := fmt.Sprintf("after-%d", i)
		status, body, err := postJSON(client, "POST", base+"/v1/tenants", fmt.Sprintf(`{"slug":%q,"name":"After %d"}`, slug, i))
		if err != nil || status != http.StatusOK {
			t.Fatalf("create after recovery: %d %v %v", status, body, err)
		}
		writes = append(writes, write{slug: slug, status: status})
	}

	var acked []string
	var ok, unavailable, before, after int
	for _, w := range writes {
		switch {
		case w.err != nil:
			t.Errorf("%s: %v after %v (a client deadline of %v was hit, or the connection failed)", w.slug, w.err, w.took, reqDeadline)
		case w.status == http.StatusOK:
			acked = append(acked, w.slug)
			ok++
			if w.started < pausedAt {
				before++
			} else if w.started > resumedAt {
				after++
			}
		case w.status == http.StatusServiceUnavailable && w.code == "unavailable":
			unavailable++
		default:
			t.Errorf("%s: %d code %v, want 200 or 503 unavailable", w.slug, w.status, w.code)
		}
	}
	if unavailable == 0 || before == 0 || after == 0 {
		t.Errorf("ok %d (before the outage %d, after it %d), unavailable %d: want some of each", ok, before, after, unavailable)
	}
	var down, upAfter, grpcDown, grpcUpAfter bool
	for _, p := range probes {
		if p.at > pausedAt && p.at < resuming && p.status == http.StatusServiceUnavailable {
			down = true
		}
		if p.at > resumedAt && p.status == http.StatusOK {
			upAfter = true
		}
		if p.at > pausedAt && p.at < resuming && p.grpc == healthpb.HealthCheckResponse_NOT_SERVING {
			grpcDown = true
		}
		if p.at > resumedAt && p.grpc == healthpb.HealthCheckResponse_SERVING {
			grpcUpAfter = true
		}
		if p.at > pausedAt+500*time.Millisecond && p.at < resuming && p.grpc == healthpb.HealthCheckResponse_SERVING {
			t.Errorf("gRPC health answered SERVING at %v while PostgreSQL was down (%v–%v)", p.at, pausedAt, resuming)
		}
		if p.at > pausedAt+500*time.Millisecond && p.at < resuming && p.status == http.StatusOK {
			t.Errorf("/readyz answered 200 at %v while PostgreSQL was down (%v–%v)", p.at, pausedAt, resuming)
		}
	}
	if !down || !upAfter {
		t.Errorf("/readyz: 503 while down = %v, 200 after = %v; probes %v", down, upAfter, probes)
	}
	if !grpcDown || !grpcUpAfter {
		t.Errorf("gRPC health: NOT_SERVING while down = %v, SERVING after = %v; probes %v", grpcDown, grpcUpAfter, probes)
	}
	var slowest time.Duration
	for _, w := range writes {
		slowest = max(slowest, w.took)
	}
	t.Logf("PostgreSQL down %v–%v: %d writes, %d acknowledged (%d before, %d after), %d unavailable; slowest %v",
		pausedAt.Round(time.Millisecond), resumedAt.Round(time.Millisecond), len(writes), ok, before, after, unavailable, slowest.Round(time.Millisecond))

	// Every acknowledged write is stored, with its audit event.
	stored := storedSet(t, ctx, pgtest.Open(t, dbURL), `SELECT t.slug FROM tenants t JOIN audit_log a
		ON a.tenant_id = t.id AND a.action = 'tenant.created' WHERE t.slug LIKE 'outage-%' OR t.slug LIKE 'after-%'`)
	for _, s := range acked {
		if !stored[s] {
			t.Errorf("%s was acknowledged but is not in the database with its tenant.created event", s)
		}
	}
}

// TestFaultKeycloakDown creates tenants while the Keycloak Admin API is
// down: they are created (provisioning failed, to be retried), and once it
// is back, provisioning completes — by RetryProvisioning for some, by the
// background worker for the others — with exactly one keycloak.provisioned
// event and one organisation per tenant.
func TestFaultKeycloakDown(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: PostgreSQL")
	}
	fake := keycloaktest.New(t, "platform", "tenant-registry", "fault-secret")
	fake.SetDown(true)
	base := startServer(t, map[string]string{
		"DATABASE_URL": pgtest.MigratedURL(t), "LOG_LEVEL": "error",
		"KEYCLOAK_ADMIN_URL": fake.URL(), "KEYCLOAK_REALM": "platform",
		"KEYCLOAK_CLIENT_ID": "tenant-registry", "KEYCLOAK_CLIENT_SECRET": "fault-secret",
	})
	client := &http.Client{Timeout: 15 * time.Second}
	const n = 6
	ids := make([]string, n)
	for i := range n {
		body := fmt.Sprintf(`{"slug":"kc-down-%d","name":"KC Down %d"}`, i, i)
		if i%2 == 0 {
			body = fmt.Sprintf(`{"slug":"kc-down-%d","name":"KC Down %d","admin_email":"admin%d@kc-down.example","admin_name":"Admin %d"}`, i, i, i, i)
		}
		status, res, err := postJSON(client, "POST", base+"/v1/tenants", body)
		if err != nil || status != http.StatusOK {
			t.Fatalf("create with Keycloak down: %d %v %v", status, res, err)
		}
		tn, _ := res["tenant"].(map[string]any)
		ids[i], _ = tn["id"].(string)
		if st := tn["provisioning_state"]; st != "failed" && st != "pending" {
			t.Errorf("kc-down-%d: provisioning_state %v, want failed or pending", i, st)
		}
	}
	if len(fake.Orgs()) != 0 {
		t.Fatalf("organisations created while Keycloak was down: %v", fake.Orgs())
	}
	countEvents := func(id, action string) int {
		status, res, err := postJSON(client, "GET", base+"/v1/audit?tenant_id="+id+"&action="+action, "")
		if err != nil || status != http.StatusOK {
			t.Fatalf("list events: %d %v %v", status, res, err)
		}
		events, _ := res["events"].([]any)
		return len(events)
	}
	for i, id := range ids {
		if got := countEvents(id, "keycloak.provision_failed"); got < 1 {
			t.Errorf("kc-down-%d: %d keycloak.provision_failed events, want ≥ 1", i, got)
		}
	}

	fake.SetDown(false)
	start := time.Now()
	// Half by an operator's RetryProvisioning, half by the worker.
	for _, id := range ids[:n/2] {
		status, res, err := postJSON(client, "POST", base+"/tenantregistry.v1.TenantService/RetryProvisioning", fmt.Sprintf(`{"id":%q}`, id))
		tn, _ := res["tenant"].(map[string]any)
		if err != nil || status != http.StatusOK || tn["provisioning_state"] != "provisioned" {
			t.Errorf("RetryProvisioning %s: %d %v %v", id, status, res, err)
		}
	}
	const bound = 40 * time.Second // backoff 5s + worker interval 5s, with room
	for _, id := range ids[n/2:] {
		for {
			status, tn, err := postJSON(client, "GET", base+"/v1/tenants/"+id, "")
			if err == nil && status == http.StatusOK && tn["provisioning_state"] == "provisioned" {
				break
			}
			if time.Since(start) > bound {
				t.Fatalf("tenant %s not provisioned by the worker %v after Keycloak returned: %d %v %v", id, bound, status, tn, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	t.Logf("all %d tenants provisioned %v after Keycloak returned", n, time.Since(start).Round(time.Millisecond))
	// A retry of a provisioned tenant changes nothing.
	if status, res, err := postJSON(client, "POST", base+"/tenantregistry.v1.TenantService/RetryProvisioning", fmt.Sprintf(`{"id":%q}`, ids[0])); err != nil || status != http.StatusOK {
		t.Errorf("RetryProvisioning of a provisioned tenant: %d %v %v", status, res, err)
	}
	for i, id := range ids {
		if got := countEvents(id, "keycloak.provisioned"); got != 1 {
			t.Errorf("kc-down-%d: %d keycloak.provisioned events, want exactly 1", i, got)
		}
		if got := countEvents(id, "tenant.created"); got != 1 {
			t.Errorf("kc-down-%d: %d tenant.created events, want 1", i, got)
		}
	}
	orgs := map[string]int{}
	for _, o := range fake.Orgs() {
		orgs[o.Alias]++
	}
	for i := range n {
		if c := orgs[fmt.Sprintf("kc-down-%d", i)]; c != 1 {
			t.Errorf("kc-down-%d: %d Keycloak organisations, want 1", i, c)
		}
	}
}

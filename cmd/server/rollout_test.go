package main

// The rolling restart: three server processes behind HAProxy without
// retries, each SIGTERMed and started again in turn under steady load.

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/auth/oidctest"
	"github.com/platform/tenant-registry/internal/keycloak/keycloaktest"
	"github.com/platform/tenant-registry/internal/logtest"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/storetest"
)

// defaultHAProxy is Debian's haproxy (`apt-get install haproxy`, 2.6).
const defaultHAProxy = "/usr/sbin/haproxy"

// Timings of the roll: HAProxy checks /readyz every checkInter and takes a
// replica out after one failed check, so the drain's delay (during which
// the replica still serves everything) must outlast a check interval by a
// margin that covers a check's own time on a busy machine.
const (
	checkInter    = 500 * time.Millisecond
	shutdownDelay = 2 * time.Second
)

// serverProcess is one replica: the built binary on a fixed address.
type serverProcess struct {
	t      *testing.T
	bin    string
	addr   string
	env    []string
	cmd    *exec.Cmd
	logs   *logtest.Buffer
	exited chan struct{}
	err    error // cmd.Wait's, once exited is closed
	all    strings.Builder
}

func (p *serverProcess) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin)
	p.cmd.Env = append(append(os.Environ(), p.env...), "ADDR="+p.addr)
	p.logs = &logtest.Buffer{}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	if !readyWithin(http.DefaultClient, "http://"+p.addr, 30*time.Second) {
		p.t.Fatalf("replica %s not ready within 30s:\n%s", p.addr, p.logs.String())
	}
}

// stop sends SIGTERM and waits for the exit, which must be status 0.
func (p *serverProcess) stop(within time.Duration) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(within):
		_ = p.cmd.Process.Kill()
		<-p.exited
		p.t.Fatalf("replica %s did not exit within %v of SIGTERM", p.addr, within)
	}
	p.all.WriteString(p.logs.String())
	if p.err != nil {
		p.t.Errorf("replica %s: exit %v after SIGTERM, want status 0:\n%s", p.addr, p.err, p.logs.String())
	}
}

func (p *serverProcess) kill() {
	if p.cmd == nil {
		return
	}
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill()
		<-p.exited
		p.all.WriteString(p.logs.String())
	}
}

// haproxy is HAProxy in the foreground (-db) in front of backends.
type haproxy struct {
	addr, stats string
	cmd         *exec.Cmd
	logs        *logtest.Buffer
	exited      chan struct{}
}

// startHAProxy balances backends round-robin with an HTTP check of
// /readyz every checkInter (fall 1, rise 1), no retries and no redispatch:
// a request sent to a replica that cannot serve it fails.
func startHAProxy(t *testing.T, bin string, backends []string) *haproxy {
	t.Helper()
	h := &haproxy{addr: freeAddr(t), stats: freeAddr(t), logs: &logtest.Buffer{}, exited: make(chan struct{})}
	var servers strings.Builder
	for i, b := range backends {
		fmt.Fprintf(&servers, "    server r%d %s check\n", i, b)
	}
	cfg := fmt.Sprintf(`global
    maxconn 2000

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s
    retries 0
    no option redispatch

frontend stats
    bind %s
    stats enable
    stats uri /stats

frontend fe
    bind %s
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    http-reuse safe
    default-server inter %dms fastinter %dms downinter %dms fall 1 rise 1
%s`, h.stats, h.addr, checkInter.Milliseconds(), checkInter.Milliseconds(), checkInter.Milliseconds(), servers.String())
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, cfg)
	}
	h.cmd = exec.Command(bin, "-f", path, "-db")
	h.cmd.Stdout, h.cmd.Stderr = h.logs, h.logs
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = h.cmd.Wait(); close(h.exited) }()
	t.Cleanup(func() {
		_ = h.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.exited:
		case <-time.After(5 * time.Second):
			_ = h.cmd.Process.Kill()
			<-h.exited
		}
		if t.Failed() {
			t.Logf("haproxy log:\n%s", h.logs.String())
		}
	})
	return h
}

// status is each server's state on HAProxy's stats page ("UP", "DOWN", …).
func (h *haproxy) status() (map[string]string, error) {
	res, err := http.Get("http://" + h.stats + "/stats;csv")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	r := csv.NewReader(res.Body)
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, fmt.Errorf("stats csv: %v (%d rows)", err, len(rows))
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[strings.TrimPrefix(strings.TrimSpace(name), "# ")] = i
	}
	out := map[string]string{}
	for _, row := range rows[1:] {
		if row[col["pxname"]] == "replicas" && row[col["svname"]] != "BACKEND" {
			out[row[col["svname"]]] = row[col["status"]]
		}
	}
	return out, nil
}

// waitStatus waits until server name (r0, r1, …) is in state want.
func (h *haproxy) waitStatus(t *testing.T, name, want string, within time.Duration) {
	t.Helper()
	var last map[string]string
	var err error
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if last, err = h.status(); err == nil && strings.HasPrefix(last[name], want) {
			return
		}
	}
	t.Fatalf("haproxy: %s not %s within %v: %v %v", name, want, within, last, err)
}

// TestRollingRestart runs three replicas of the built binary (APP_ENV=stage:
// bearer tokens from an in-process OIDC issuer, the real Keycloak adapter
// against the fake Admin API, PostgreSQL migrated by internal/migrate)
// behind HAProxy with /readyz checks and no retries, drives reads
// (GetTenantBySlug, VerifyApiKey) and writes (CreateTenant, AppendEvent)
// through it from several goroutines, and restarts each replica in turn:
// SIGTERM, exit 0, start again on its port, back in rotation. No request
// may fail, every acknowledged write must be stored, and an API key
// revoked while one replica is down must read as revoked on all three.
func TestRollingRestart(t *testing.T) {
	requirePostgresServer(t)
	pgtest.RequireBinary(t, defaultHAProxy, "", "apt-get install haproxy")
	bin := buildServer(t)
	dbURL := pgtest.MigratedURL(t)
	db := pgtest.Open(t, dbURL)

	issuer := oidctest.New()
	t.Cleanup(issuer.Close)
	kc := keycloaktest.New(t, "platform", "tenant-registry", "rollout-secret")
	t.Cleanup(kc.Close)
	admin := issuer.Token(oidctest.Claims{Subject: "rollout-admin", Audience: []string{"tenant-registry"}, Roles: []string{"platform-admin"}})
	service := issuer.Token(oidctest.Claims{Subject: "rollout-service", Audience: []string{"tenant-registry"}, Roles: []string{"tenant-registry-internal"}})
	env := []string{
		"APP_ENV=stage", "DATABASE_URL=" + dbURL, "DB_MAX_CONNS=6", "LOG_LEVEL=info",
		"KEYCLOAK_ISSUER=" + issuer.URL(), "KEYCLOAK_AUDIENCE=tenant-registry",
		"KEYCLOAK_ADMIN_URL=" + kc.URL(), "KEYCLOAK_REALM=platform",
		"KEYCLOAK_CLIENT_ID=tenant-registry", "KEYCLOAK_CLIENT_SECRET=rollout-secret",
		"API_KEY_SECRET=rollout-test-secret-0123456789abcdef",
		"IDP_SECRET_KEY=cm9sbG91dC10ZXN0LWlkcC1rZXktMzItYnl0ZXMhISE=",
		"AUDIT_SIGNING_KEY_FILE=" + signingKeyFile(t),
		"SHUTDOWN_DELAY=" + shutdownDelay.String(), "SHUTDOWN_TIMEOUT=10s",
		"OTEL_SDK_DISABLED=true",
	}
	replicas := make([]*serverProcess, 3)
	var backends []string
	for i := range replicas {
		replicas[i] = &serverProcess{t: t, bin: bin, addr: freeAddr(t), env: env}
		backends = append(backends, replicas[i].addr)
	}
	t.Cleanup(func() {
		for i, r := range replicas {
			r.kill()
			if t.Failed() {
				t.Logf("replica %d (%s) log:\n%s", i, r.addr, lastLines(r.all.String(), 60))
			}
		}
	})
	var wg sync.WaitGroup
	for _, r := range replicas {
		wg.Go(r.start)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	lb := startHAProxy(t, defaultHAProxy, backends)
	for i := range replicas {
		lb.waitStatus(t, fmt.Sprintf("r%d", i), "UP", 10*time.Second)
	}
	base := "http://" + lb.addr

	// The fixtures, through the balancer: a tenant, the key the load
	// verifies, and the key revoked during the roll (verified valid on
	// every replica first, so each has it cached).
	client := &http.Client{Timeout: 15 * time.Second}
	mustCall := func(token, method, url, body string) map[string]any {
		t.Helper()
		status, res, err := apiCall(client, token, method, url, body)
		if err != nil || status != http.StatusOK {
			t.Fatalf("%s %s: %d %v %v", method, url, status, res, err)
		}
		return res
	}
	tn, _ := mustCall(admin, "POST", base+"/v1/tenants", `{"slug":"rollout","name":"Rollout"}`)["tenant"].(map[string]any)
	tenantID, _ := tn["id"].(string)
	newKey := func(name string) (key, id string) {
		res := mustCall(admin, "POST", base+"/v1/api-keys", fmt.Sprintf(`{"tenant_id":%q,"name":%q}`, tenantID, name))
		meta, _ := res["api_key"].(map[string]any)
		key, _ = res["key"].(string)
		id, _ = meta["id"].(string)
		if key == "" || id == "" {
			t.Fatalf("create key: %v", res)
		}
		return key, id
	}
	loadKey, _ := newKey("load")
	revokedKey, revokedID := newKey("revoked during the roll")
	verdict := func(base, key string) (string, error) {
		status, res, err := apiCall(client, service, "POST", base+"/v1/internal/api-keys/verify", fmt.Sprintf(`{"key":%q}`, key))
		if err != nil || status != http.StatusOK {
			return "", fmt.Errorf("verify through %s: %d %v %v", base, status, res, err)
		}
		if v, _ := res["valid"].(bool); v {
			return "valid", nil
		}
		r, _ := res["reason"].(string)
		return r, nil
	}
	for _, r := range replicas {
		if got, err := verdict("http://"+r.addr, revokedKey); err != nil || got != "valid" {
			t.Fatalf("before the roll, replica %s: %s %v, want valid", r.addr, got, err)
		}
	}

	// The load: every answer must be a 2xx with the expected content.
	var (
		reads, writes atomic.Int64
		failMu        sync.Mutex
		failures      []string
		failCount     int
		createdMu     sync.Mutex
		tenantIDs     []string
		eventIDs      []string
	)
	fail := func(format string, args ...any) {
		failMu.Lock()
		defer failMu.Unlock()
		failCount++
		if len(failures) < 10 {
			failures = append(failures, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
		}
	}
	// One keep-alive connection pool for the load, as a product's client
	// would hold to the balancer.
	loadClient := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	type worker struct {
		name  string
		write bool
		do    func(n int) error
	}
	workers := []worker{
		{"GetTenantBySlug", false, func(int) error {
			status, res, err := apiCall(loadClient, service, "GET", base+"/v1/tenants/by-slug/rollout", "")
			if err == nil && (status != http.StatusOK || res["id"] != tenantID) {
				err = fmt.Errorf("%d %v", status, res)
			}
			return err
		}},
		{"VerifyApiKey", false, func(int) error {
			status, res, err := apiCall(loadClient, service, "POST", base+"/v1/internal/api-keys/verify", fmt.Sprintf(`{"key":%q}`, loadKey))
			if err == nil && (status != http.StatusOK || res["valid"] != true) {
				err = fmt.Errorf("%d %v", status, res)
			}
			return err
		}},
		{"CreateTenant", true, func(n int) error {
			status, res, err := apiCall(loadClient, admin, "POST", base+"/v1/tenants", fmt.Sprintf(`{"slug":"roll-%05d","name":"Roll %d"}`, n, n))
			if err != nil {
				return err
			}
			got, _ := res["tenant"].(map[string]any)
			id, _ := got["id"].(string)
			if status != http.StatusOK || id == "" {
				return fmt.Errorf("%d %v", status, res)
			}
			createdMu.Lock()
			tenantIDs = append(tenantIDs, id)
			createdMu.Unlock()
			return nil
		}},
		{"AppendEvent", true, func(n int) error {
			status, res, err := apiCall(loadClient, service, "POST", base+"/v1/audit", fmt.Sprintf(
				`{"tenant_id":%q,"action":"rollout.tick","crud":"c","actor":{"id":"load","name":"Load","type":"service"},"idempotency_key":"tick-%d"}`, tenantID, n))
			if err != nil {
				return err
			}
			ev, _ := res["event"].(map[string]any)
			id, _ := ev["id"].(string)
			if status != http.StatusOK || id == "" {
				return fmt.Errorf("%d %v", status, res)
			}
			createdMu.Lock()
			eventIDs = append(eventIDs, id)
			createdMu.Unlock()
			return nil
		}},
	}
	var seq atomic.Int64
	var load sync.WaitGroup
	const perKind = 2 // goroutines per worker kind
	for _, w := range workers {
		for range perKind {
			load.Go(func() {
				for ctx.Err() == nil {
					n := int(seq.Add(1))
					if err := w.do(n); err != nil {
						fail("%s #%d: %v", w.name, n, err)
					}
					if w.write {
						writes.Add(1)
					} else {
						reads.Add(1)
					}
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
	}

	time.Sleep(time.Second) // the load runs on all three first
	rollStart := time.Now()
	for i, r := range replicas {
		name := fmt.Sprintf("r%d", i)
		stopAt := time.Now()
		r.stop(shutdownDelay + 15*time.Second)
		stoppedIn := time.Since(stopAt)
		if i == 1 {
			// Mid-roll, with this replica down: revoke through the balancer.
			mustCall(admin, "DELETE", base+"/v1/api-keys/"+revokedID, "")
			for _, other := range []*serverProcess{replicas[0], replicas[2]} {
				waitVerdict(t, verdict, "http://"+other.addr, revokedKey, "revoked", 10*time.Second)
			}
		}
		r.start()
		if i == 0 { // before the revoke: the restarted replica caches the key too
			if got, err := verdict("http://"+r.addr, revokedKey); err != nil || got != "valid" {
				t.Fatalf("replica %s after its restart, before the revoke: %s %v, want valid", r.addr, got, err)
			}
		}
		lb.waitStatus(t, name, "UP", 10*time.Second)
		t.Logf("replica %d (%s): exit 0 %v after SIGTERM, back in rotation %v after", i, r.addr,
			stoppedIn.Round(time.Millisecond), time.Since(stopAt).Round(time.Millisecond))
	}
	rollTook := time.Since(rollStart)
	time.Sleep(time.Second) // the load runs on the restarted three
	stopLoad()
	load.Wait()

	for _, r := range replicas {
		waitVerdict(t, verdict, "http://"+r.addr, revokedKey, "revoked", 10*time.Second)
		if got, err := verdict("http://"+r.addr, loadKey); err != nil || got != "valid" {
			t.Errorf("after the roll, replica %s: the load's key %s %v, want valid", r.addr, got, err)
		}
	}
	if failCount > 0 {
		t.Errorf("%d of %d requests failed during the roll; the first ones:\n%s", failCount, reads.Load()+writes.Load(), strings.Join(failures, "\n"))
	}

	// No acknowledged write is lost.
	sctx := storetest.SystemContext()
	stored := func(q string) map[string]bool { return storedSet(t, sctx, db, q) }
	tenantsStored := stored(`SELECT CAST(id AS TEXT) FROM tenants`)
	eventsStored := stored(`SELECT CAST(id AS TEXT) FROM audit_log WHERE action = 'rollout.tick'`)
	lost := 0
	for _, c := range []struct {
		what   string
		ids    []string
		stored map[string]bool
	}{{"tenant", tenantIDs, tenantsStored}, {"event", eventIDs, eventsStored}} {
		for _, id := range c.ids {
			if !c.stored[id] {
				lost++
				if lost <= 5 {
					t.Errorf("acknowledged %s %s is not stored", c.what, id)
				}
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d acknowledged writes lost", lost)
	}
	if len(tenantIDs) == 0 || len(eventIDs) == 0 {
		t.Errorf("the load made %d tenants and %d events: no write load", len(tenantIDs), len(eventIDs))
	}
	for i, r := range replicas {
		logs := r.all.String()
		for _, phase := range []string{"draining: readiness answers 503", "shutting down: no new connections", "background jobs stopped", `"msg":"stopped"`} {
			if !strings.Contains(logs, phase) {
				t.Errorf("replica %d's log lacks %q", i, phase)
			}
		}
	}
	summary := fmt.Sprintf("rolling restart of 3 replicas behind HAProxy: %d requests (%d reads, %d writes: %d tenants, %d events), %d failed, %d acknowledged writes lost; the roll took %v",
		reads.Load()+writes.Load(), reads.Load(), writes.Load(), len(tenantIDs), len(eventIDs), failCount, lost, rollTook.Round(time.Millisecond))
	t.Log(summary)
	fmt.Println(summary)
}

// waitVerdict waits until verify of key through base answers want.
func waitVerdict(t *testing.T, verdict func(base, key string) (string, error), base, key, want string, within time.Duration) {
	t.Helper()
	var got string
	var err error
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got, err = verdict(base, key); err == nil && got == want {
			return
		}
	}
	t.Errorf("verify through %s: %s %v %v after the revoke, want %s", base, got, err, within, want)
}

// lastLines is the last n lines of s that are not access-log lines.
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if !strings.Contains(l, `"msg":"request"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

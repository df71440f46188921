// Command bench is `make bench`: it runs tenant-registry as a separate
// process on PostgreSQL and drives its hot paths over real HTTP (loopback,
// many keep-alive connections), next to a bare net/http handler returning a
// constant JSON body measured the same way in the same run, and prints one
// table: requests/s, p50, p99, the server process's peak RSS and the ratio
// to the baseline's requests/s.
//
//	go run ./cmd/bench [-server bin/tenant-registry] [-conns 64] [-duration 5s]
//	                   [-rate 5000] [-events 1000000] [-page-size 500]
//
// PostgreSQL: BENCH_DATABASE_URL when set (it is migrated and filled: about
// -events audit events, tenants and keys), else a throwaway cluster
// (internal/pgcluster) removed at the end.
//
// Rows: the baseline; verify (POST /v1/internal/api-keys/verify, one hot
// key); GetTenantBySlug; ResolveClaims; CreateTenant (unique slugs, the dev
// mock Keycloak); AppendEvent (8 tenants' chains); ListEvents page 1 and
// page 1000 of one tenant holding -events events inserted by SQL (the page
// 1000 cursor is the keyset position of page 999's last row). Then a
// fixed-rate run of the baseline and verify at -rate requests/s, whose p99
// counts from each request's scheduled start (no coordinated omission), and
// the single-connection latency of page 1 vs page 1000.
//
// Peak RSS is VmHWM of the serving process, reset (clear_refs) before each
// row.
package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	"google.golang.org/protobuf/proto"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	"github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/config"
	"github.com/platform/tenant-registry/internal/cursor"
	"github.com/platform/tenant-registry/internal/devdb"
	"github.com/platform/tenant-registry/internal/migrate"
	"github.com/platform/tenant-registry/internal/pgcluster"
)

const acmeID = "00000000-0000-0000-0000-000000000001"

// baselineBody is what the bare handler answers: a claims-shaped constant.
var baselineBody = []byte(`{"tenant_id":"00000000-0000-0000-0000-000000000001","slug":"acme","products":["certifai","compliance"],"plan":"professional","status":"active"}`)

type options struct {
	server   string
	conns    int
	duration time.Duration
	warmup   time.Duration
	rate     int
	events   int64
	pageSize int
	deepPage int
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "-serve-baseline" {
		serveBaseline(os.Args[2])
		return
	}
	var o options
	flag.StringVar(&o.server, "server", "", "the tenant-registry binary (default: go build ./cmd/server into a temp dir)")
	flag.IntVar(&o.conns, "conns", 64, "keep-alive connections of the load generator")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured time per row")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up per row")
	flag.IntVar(&o.rate, "rate", 5000, "requests/s of the fixed-rate verify run")
	flag.Int64Var(&o.events, "events", 1_000_000, "audit events of the ListEvents tenant")
	flag.IntVar(&o.pageSize, "page-size", 500, "ListEvents page size")
	flag.IntVar(&o.deepPage, "deep-page", 1000, "the deep ListEvents page")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// serveBaseline is the bare net/http server, run as its own process like
// the service so that both are measured the same way.
func serveBaseline(addr string) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(baselineBody)
	})
	if err := http.ListenAndServe(addr, h); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	}
	machine := machineLine()
	logf("%s", machine)

	// The database.
	dbURL, dbNote := os.Getenv("BENCH_DATABASE_URL"), "BENCH_DATABASE_URL"
	if dbURL == "" {
		logf("starting a throwaway PostgreSQL cluster")
		c, err := pgcluster.Start(ctx, "")
		if err != nil {
			return err
		}
		defer c.Stop()
		admin, err := sql.Open("pgx", c.URL())
		if err != nil {
			return err
		}
		name, err := devdb.CreateDatabase(ctx, admin, "bench")
		admin.Close()
		if err != nil {
			return err
		}
		dbURL, dbNote = c.DatabaseURL(name), "throwaway pgcluster"
	}
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := migrate.Up(ctx, db); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var pgVersion string
	if err := db.QueryRowContext(ctx, "SHOW server_version").Scan(&pgVersion); err != nil {
		return err
	}

	// The processes: the service and the baseline.
	tmp, err := os.MkdirTemp("", "tenant-registry-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.server == "" {
		o.server = filepath.Join(tmp, "tenant-registry")
		logf("building ./cmd/server")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", o.server, "./cmd/server").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/server: %v\n%s", err, out)
		}
	}
	srvAddr, err := freeAddr()
	if err != nil {
		return err
	}
	srv, err := startProcess(ctx, o.server, nil, []string{
		"APP_ENV=dev", "ADDR=" + srvAddr, "DATABASE_URL=" + dbURL, "LOG_LEVEL=warn", "SHUTDOWN_DELAY=0",
	}, filepath.Join(tmp, "server.log"))
	if err != nil {
		return err
	}
	defer srv.stop()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	baseAddr, err := freeAddr()
	if err != nil {
		return err
	}
	bl, err := startProcess(ctx, self, []string{"-serve-baseline", baseAddr}, nil, filepath.Join(tmp, "baseline.log"))
	if err != nil {
		return err
	}
	defer bl.stop()
	svc, baseline := "http://"+srvAddr, "http://"+baseAddr
	if err := srv.waitHealthy(ctx, svc+"/healthz"); err != nil {
		return err
	}
	if err := bl.waitHealthy(ctx, baseline+"/healthz"); err != nil {
		return err
	}

	// Fixtures: a hot API key of acme, tenants for appends, and a tenant
	// with o.events audit events.
	client := &http.Client{Timeout: 30 * time.Second}
	var keyRes struct{ Key string }
	if err := call(client, "POST", svc+"/v1/api-keys", fmt.Sprintf(`{"tenant_id":%q,"name":"bench","scopes":["read"]}`, acmeID), &keyRes); err != nil {
		return fmt.Errorf("create API key: %w", err)
	}
	runID := strconv.FormatInt(time.Now().Unix(), 36)
	newTenant := func(slug string) (string, error) {
		var res struct{ Tenant struct{ ID string } }
		err := call(client, "POST", svc+"/v1/tenants", fmt.Sprintf(`{"slug":%q,"name":"Bench %s"}`, slug, slug), &res)
		return res.Tenant.ID, err
	}
	var appendTenants []string
	for i := range 8 {
		id, err := newTenant(fmt.Sprintf("bench-%s-append-%d", runID, i))
		if err != nil {
			return fmt.Errorf("create tenant: %w", err)
		}
		appendTenants = append(appendTenants, id)
	}
	listTenant, err := newTenant("bench-" + runID + "-audit")
	if err != nil {
		return fmt.Errorf("create tenant: %w", err)
	}
	logf("inserting %d audit events by SQL", o.events)
	start := time.Now()
	if err := seedEvents(ctx, db, listTenant, o.events); err != nil {
		return err
	}
	logf("inserted in %v", time.Since(start).Round(time.Millisecond))
	listURL := fmt.Sprintf("%s/v1/audit?tenant_id=%s&page_size=%d", svc, listTenant, o.pageSize)
	deepCursor, err := deepPageCursor(ctx, db, client, listURL, listTenant, o.pageSize, o.deepPage)
	if err != nil {
		return err
	}
	deepURL := listURL + "&cursor=" + url.QueryEscape(deepCursor)

	// The rows.
	post := func(base, path, body string) func(w, i int) (*http.Request, error) {
		return func(int, int) (*http.Request, error) {
			req, err := http.NewRequest("POST", base+path, strings.NewReader(body))
			if err == nil {
				req.Header.Set("Content-Type", "application/json")
			}
			return req, err
		}
	}
	get := func(u string) func(w, i int) (*http.Request, error) {
		return func(int, int) (*http.Request, error) { return http.NewRequest("GET", u, nil) }
	}
	// Headless products verify through the generated Connect clients
	// (protobuf); the REST JSON path is measured too.
	verifyProto, err := proto.Marshal(&v1.VerifyApiKeyRequest{Key: keyRes.Key})
	if err != nil {
		return err
	}
	verifyReq := func(int, int) (*http.Request, error) {
		req, err := http.NewRequest("POST", svc+tenantregistryv1connect.InternalServiceVerifyApiKeyProcedure, bytes.NewReader(verifyProto))
		if err == nil {
			req.Header.Set("Content-Type", "application/proto")
		}
		return req, err
	}
	verifyREST := post(svc, "/v1/internal/api-keys/verify", fmt.Sprintf(`{"key":%q}`, keyRes.Key))
	appendBody := `{"tenant_id":%q,"action":"document.viewed","crud":"r","actor":{"id":"user-1","name":"User One","type":"user"},` +
		`"target":{"id":"doc-1","name":"Doc","type":"document"},"description":"bench event","fields":{"n":"1"},"source_ip":"203.0.113.7"}`
	var seq atomic.Int64
	rows := []row{
		{name: "bare net/http baseline", proc: bl, req: post(baseline, "/v1/internal/keycloak/claims", `{"slug":"acme"}`), want: `"slug":"acme"`},
		{name: "verify (Connect, protobuf)", proc: srv, req: verifyReq, want: "acme"},
		{name: "verify (REST, JSON)", proc: srv, req: verifyREST, want: `"valid":true`},
		{name: "GetTenantBySlug", proc: srv, req: get(svc + "/v1/tenants/by-slug/acme"), want: `"slug":"acme"`},
		{name: "ResolveClaims", proc: srv, req: post(svc, "/v1/internal/keycloak/claims", `{"slug":"acme"}`), want: `"products":["certifai","compliance"]`},
		{name: "CreateTenant", proc: srv, req: func(w, i int) (*http.Request, error) {
			slug := fmt.Sprintf("b%s-%d", runID, seq.Add(1))
			return post(svc, "/v1/tenants", fmt.Sprintf(`{"slug":%q,"name":"Bench"}`, slug))(w, i)
		}, want: `"status":"trial"`},
		{name: "AppendEvent", proc: srv, req: func(w, i int) (*http.Request, error) {
			return post(svc, "/v1/audit", fmt.Sprintf(appendBody, appendTenants[w%len(appendTenants)]))(w, i)
		}, want: `"action":"document.viewed"`},
		{name: fmt.Sprintf("ListEvents page 1 (%d/page)", o.pageSize), proc: srv, req: get(listURL), want: `"next_cursor"`},
		{name: fmt.Sprintf("ListEvents page %d (%d/page)", o.deepPage, o.pageSize), proc: srv, req: get(deepURL), want: `"next_cursor"`},
	}
	lg := newLoadGen(o.conns)
	for i := range rows {
		r := &rows[i]
		if err := lg.check(r); err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		logf("%s: %v closed loop, %d connections", r.name, o.duration, o.conns)
		lg.closedLoop(ctx, r, o.warmup) // warm-up, discarded
		r.proc.resetPeak()
		r.res = lg.closedLoop(ctx, r, o.duration)
		r.rss = r.proc.peak()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	fixed := []row{
		{name: fmt.Sprintf("bare net/http @ %d/s", o.rate), proc: bl, req: rows[0].req},
		{name: fmt.Sprintf("verify @ %d/s", o.rate), proc: srv, req: verifyReq},
	}
	for i := range fixed {
		r := &fixed[i]
		logf("%s: %v fixed rate", r.name, o.duration)
		lg.fixedRate(ctx, r, o.rate, o.warmup)
		r.proc.resetPeak()
		r.res = lg.fixedRate(ctx, r, o.rate, o.duration)
		r.rss = r.proc.peak()
	}
	// Page 1 vs page 1000 from one connection: latency without queueing.
	// Requests alternate between the two pages, so that neither profits
	// from running later (caches, a quieter machine).
	logf("ListEvents page 1 vs page %d, one connection, alternating", o.deepPage)
	p1, pd := rows[7], rows[8]
	serial := newLoadGen(1)
	serial.closedLoop(ctx, &p1, o.warmup)
	var toggle int
	alt := row{req: func(w, i int) (*http.Request, error) {
		if toggle++; toggle%2 == 1 {
			return p1.req(w, i)
		}
		return pd.req(w, i)
	}}
	both := serial.alternate(ctx, &alt, o.duration)
	p1.res, pd.res = both[0], both[1]

	// The table.
	base := rows[0].res.rps()
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Printf("tenant-registry make bench — %s\n", machine)
	fmt.Printf("PostgreSQL %s (%s); server: APP_ENV=dev, its own process; load: %d keep-alive connections, %v per row after %v warm-up, loopback\n\n",
		pgVersion, dbNote, o.conns, o.duration, o.warmup)
	width := 0
	for _, r := range append(rows, fixed...) {
		width = max(width, len(r.name)+len(" (fixed rate)"))
	}
	name := func(s string) string { return s + strings.Repeat(" ", width-len(s)) } // left-aligned
	fmt.Fprintf(w, "%s\treq/s\tp50\tp99\tpeak RSS\tvs baseline\terrors\t\n", name("row"))
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%.0f\t%s\t%s\t%s\t%.2f\t%d\t\n", name(r.name), r.res.rps(), ms(r.res.pct(0.50)), ms(r.res.pct(0.99)), mib(r.rss), r.res.rps()/base, r.res.errors)
	}
	for _, r := range fixed {
		fmt.Fprintf(w, "%s\t%.0f\t%s\t%s\t%s\t\t%d\t\n", name(r.name+" (fixed rate)"), r.res.rps(), ms(r.res.pct(0.50)), ms(r.res.pct(0.99)), mib(r.rss), r.res.errors)
	}
	w.Flush()
	verify := rows[1].res
	fmt.Println()
	saturated := ""
	if fixed[1].res.rps() < 0.95*float64(o.rate) {
		saturated = fmt.Sprintf(" — saturated: only %.0f req/s served", fixed[1].res.rps())
	}
	fmt.Printf("verify (Connect): %.0f%% of the baseline's req/s (target ≥ 50%%; REST JSON: %.0f%%); p99 at %d req/s: %s (target ≤ 2ms; baseline %s)%s\n",
		100*verify.rps()/base, 100*rows[2].res.rps()/base, o.rate, ms(fixed[1].res.pct(0.99)), ms(fixed[0].res.pct(0.99)), saturated)
	fmt.Printf("ListEvents on %d events: page %d / page 1 p50 = %.2f at %d connections; %.2f from one connection (%s vs %s) (target ≤ 1.3)\n",
		o.events, o.deepPage, float64(rows[8].res.pct(0.5))/float64(rows[7].res.pct(0.5)), o.conns,
		float64(pd.res.pct(0.5))/float64(p1.res.pct(0.5)), ms(pd.res.pct(0.5)), ms(p1.res.pct(0.5)))
	fmt.Printf("AppendEvent: %.0f events/s into 8 tenants' hash chains\n", rows[6].res.rps())
	var failed []string
	for _, r := range append(append(rows, fixed...), p1, pd) {
		if r.res.errors > 0 {
			failed = append(failed, fmt.Sprintf("%s: %d errors (first: %s)", r.name, r.res.errors, r.res.firstErr))
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

// seedEvents inserts n events of tenantID in one INSERT … SELECT
// generate_series: two per millisecond, going back from now. Their hashes
// are not a valid chain: they are for list latency only.
func seedEvents(ctx context.Context, db *sql.DB, tenantID string, n int64) error {
	_, err := db.ExecContext(ctx, `
INSERT INTO audit_log (id, created_at, tenant_id, group_id, group_name, action, crud, actor_id, actor_name, actor_type,
  target_id, target_name, target_type, source_ip, description, is_failure, is_anonymous, fields, chain_seq, prev_hash, hash)
SELECT gen_random_uuid(), now() - interval '1 day' + (i / 2) * interval '1 millisecond', $1::uuid, $1::text, 'Bench',
  'document.viewed', 'r', 'user-' || (i % 100), 'User', 'user', 'doc-' || (i % 1000), 'Doc', 'document',
  '203.0.113.7', 'bench event', false, false, '{"n":"1"}'::jsonb, 1000 + i, '', md5(i::text) || md5(i::text)
FROM generate_series(1, $2::bigint) AS i`, tenantID, n)
	if err != nil {
		return fmt.Errorf("seed audit events: %w", err)
	}
	_, err = db.ExecContext(ctx, "ANALYZE audit_log")
	return err
}

// deepPageCursor returns the cursor of page `page`: the keyset position of
// the last row of page-1, found by SQL and encoded with internal/cursor the
// way audit.List does. If the service rejects it (its cursor scope changed),
// it walks the pages over HTTP instead.
func deepPageCursor(ctx context.Context, db *sql.DB, client *http.Client, listURL, tenantID string, pageSize, page int) (string, error) {
	var pos cursor.Position
	err := db.QueryRowContext(ctx, `SELECT created_at, id FROM audit_log WHERE group_id = $1
		ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1`, tenantID, (page-1)*pageSize-1).Scan(&pos.Time, &pos.ID)
	if err != nil {
		return "", fmt.Errorf("page %d position: %w", page, err)
	}
	// The server runs in APP_ENV=dev, whose API_KEY_SECRET (and so cursor
	// key) is the documented dev value.
	pager, err := cursor.NewPager([]byte(config.DevAPIKeySecret))
	if err != nil {
		return "", err
	}
	c := pager.Encode("audit_events", []string{tenantID, "", "", "", "", "", "", ""}, pos)
	if err := call(client, "GET", listURL+"&cursor="+url.QueryEscape(c), "", nil); err == nil {
		return c, nil
	}
	fmt.Fprintf(os.Stderr, "bench: the service refused the computed cursor; walking %d pages\n", page-1)
	c = ""
	for range page - 1 {
		var res struct {
			NextCursor string `json:"next_cursor"`
		}
		u := listURL
		if c != "" {
			u += "&cursor=" + url.QueryEscape(c)
		}
		if err := call(client, "GET", u, "", &res); err != nil {
			return "", err
		}
		if c = res.NextCursor; c == "" {
			return "", fmt.Errorf("fewer than %d pages", page)
		}
	}
	return c, nil
}

// call sends a JSON request and decodes a 200 answer into out (if non-nil).
func call(client *http.Client, method, u, body string, out any) error {
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, u, res.StatusCode, raw)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// ---- processes ----

type process struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startProcess(ctx context.Context, bin string, args, env []string, logPath string) (*process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &process{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

func (p *process) waitHealthy(ctx context.Context, u string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-p.done:
			log, _ := os.ReadFile(p.log)
			return fmt.Errorf("%s exited:\n%s", p.cmd.Path, log)
		default:
		}
		if res, err := http.Get(u); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not healthy at %s", p.cmd.Path, u)
}

func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// resetPeak resets the process's peak RSS (VmHWM) to its current RSS.
func (p *process) resetPeak() {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0)
}

// peak is the process's peak RSS in bytes since the last resetPeak.
func (p *process) peak() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// ---- load generation ----

type row struct {
	name string
	proc *process
	req  func(worker, i int) (*http.Request, error)
	want string // in the warm-up answer's body
	res  result
	rss  int64
}

type result struct {
	n         int
	errors    int
	firstErr  string
	elapsed   time.Duration
	latencies []time.Duration // sorted
}

// note records one request of a worker: its error, or its latency.
func (r *result) note(errMsg string, latency time.Duration) {
	if errMsg == "" {
		r.latencies = append(r.latencies, latency)
		return
	}
	r.errors++
	if r.firstErr == "" {
		r.firstErr = errMsg
	}
}

// merge adds a worker's tally to r.
func (r *result) merge(w result) {
	r.latencies = append(r.latencies, w.latencies...)
	r.errors += w.errors
	if r.firstErr == "" {
		r.firstErr = w.firstErr
	}
}

// finish closes r after elapsed: the count and the sorted latencies.
func (r *result) finish(elapsed time.Duration) {
	r.elapsed = elapsed
	r.n = len(r.latencies)
	slices.Sort(r.latencies)
}

func (r result) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.n) / r.elapsed.Seconds()
}

func (r result) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[int(p*float64(len(r.latencies)-1))]
}

type loadGen struct {
	conns  int
	client *http.Client
}

func newLoadGen(conns int) *loadGen {
	tr := &http.Transport{
		MaxConnsPerHost:     conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     time.Minute,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	return &loadGen{conns: conns, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// check sends one request and checks the answer.
func (lg *loadGen) check(r *row) error {
	req, err := r.req(0, 0)
	if err != nil {
		return err
	}
	res, err := lg.client.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	// protojson varies its whitespace between builds on purpose: compare
	// compacted JSON.
	var compact bytes.Buffer
	if json.Compact(&compact, body) == nil {
		body = compact.Bytes()
	}
	if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(r.want)) {
		return fmt.Errorf("check: %d %.300s (want %s)", res.StatusCode, body, r.want)
	}
	return nil
}

// do sends one request and reads the answer; "" means 200.
func (lg *loadGen) do(r *row, worker, i int) string {
	req, err := r.req(worker, i)
	if err != nil {
		return err.Error()
	}
	res, err := lg.client.Do(req)
	if err != nil {
		return err.Error()
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Sprintf("%d %.200s", res.StatusCode, body)
	}
	return ""
}

// closedLoop runs lg.conns workers, each sending its next request as soon
// as the previous one is answered, for d.
func (lg *loadGen) closedLoop(ctx context.Context, r *row, d time.Duration) result {
	var (
		mu  sync.Mutex
		out result
		wg  sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(d)
	for w := range lg.conns {
		wg.Go(func() {
			tally := result{latencies: make([]time.Duration, 0, 4096)}
			for i := 0; ctx.Err() == nil; i++ {
				t := time.Now()
				if !t.Before(end) {
					break
				}
				e := lg.do(r, w, i)
				tally.note(e, time.Since(t))
			}
			mu.Lock()
			out.merge(tally)
			mu.Unlock()
		})
	}
	wg.Wait()
	out.finish(time.Since(start))
	return out
}

// alternate runs r from one worker for d, its requests alternately
// counted in the first and second result (r.req must alternate to match).
func (lg *loadGen) alternate(ctx context.Context, r *row, d time.Duration) [2]result {
	var out [2]result
	start := time.Now()
	for i := 0; time.Since(start) < d && ctx.Err() == nil; i++ {
		t := time.Now()
		e := lg.do(r, 0, i)
		out[i%2].note(e, time.Since(t))
	}
	for i := range out {
		out[i].finish(time.Since(start))
	}
	return out
}

// fixedRate schedules rate requests/s for d, served by lg.conns workers
// (one keep-alive connection each); each latency counts from the request's
// scheduled start, so a server falling behind shows in the p99.
func (lg *loadGen) fixedRate(ctx context.Context, r *row, rate int, d time.Duration) result {
	interval := time.Second / time.Duration(rate)
	total := int(d / interval)
	jobs := make(chan int, total)
	var (
		mu  sync.Mutex
		out result
		wg  sync.WaitGroup
	)
	start := time.Now()
	for w := range lg.conns {
		wg.Go(func() {
			tally := result{latencies: make([]time.Duration, 0, total/lg.conns+16)}
			for i := range jobs {
				e := lg.do(r, w, i)
				tally.note(e, time.Since(start.Add(time.Duration(i)*interval)))
			}
			mu.Lock()
			out.merge(tally)
			mu.Unlock()
		})
	}
	for sent := 0; sent < total && ctx.Err() == nil; {
		due := min(total, int(time.Since(start)/interval)+1)
		for ; sent < due; sent++ {
			jobs <- sent
		}
		time.Sleep(interval / 2)
	}
	close(jobs)
	wg.Wait()
	out.finish(time.Since(start))
	return out
}

// ---- formatting ----

func machineLine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs (nproc), %s, %s %s/%s", runtime.NumCPU(), model, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func mib(b int64) string {
	if b == 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

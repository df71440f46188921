package main

// Crash tests: the server process SIGKILLed under write load, and
// PostgreSQL crashed (pg_ctl -m immediate) under write load. Loopback only,
// bounded in time, skipped under -short.

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/devdb"
	"github.com/platform/tenant-registry/internal/logtest"
	"github.com/platform/tenant-registry/internal/migrate"
	"github.com/platform/tenant-registry/internal/pgcluster"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

// serverOnOwnCluster starts a PostgreSQL cluster of the test's own (with
// opts; stopped at cleanup; see requirePostgresServer), creates a database
// on it named after prefix, migrated with the real migrations, and starts
// the server on it (LOG_LEVEL=error); it returns the cluster, the
// database's URL and the server's base URL.
func serverOnOwnCluster(t *testing.T, ctx context.Context, opts pgcluster.Options, prefix string) (*pgcluster.Cluster, string, string) {
	t.Helper()
	requirePostgresServer(t)
	cluster, err := pgcluster.StartWith(ctx, "", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop() })
	admin, err := sql.Open("pgx", cluster.URL())
	if err != nil {
		t.Fatal(err)
	}
	name, err := devdb.CreateDatabase(ctx, admin, prefix)
	admin.Close()
	if err != nil {
		t.Fatal(err)
	}
	dbURL := cluster.DatabaseURL(name)
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := migrate.Up(ctx, db); err != nil {
		t.Fatal(err)
	}
	return cluster, dbURL, startServer(t, map[string]string{"DATABASE_URL": dbURL, "LOG_LEVEL": "error"})
}

// readyWithin polls base's /readyz with client until it answers 200
// (true) or within has passed (false).
func readyWithin(client *http.Client, base string, within time.Duration) bool {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if res, err := client.Get(base + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return true
			}
		}
	}
	return false
}

// steadyLoad calls fn(0), fn(1), … each in a goroutine of its own, one
// every interval, until loadFor has passed since start; it returns when all
// of them have.
func steadyLoad(start time.Time, interval, loadFor time.Duration, fn func(i int)) {
	var wg sync.WaitGroup
	tick := time.NewTicker(interval)
	for i := 0; time.Since(start) < loadFor; i++ {
		<-tick.C
		wg.Go(func() { fn(i) })
	}
	tick.Stop()
	wg.Wait()
}

// outage is a PostgreSQL outage under way (startOutage): when, since the
// load's start in ns, it went down, its restart was called and it was
// back (0 until then); done receives the error of taking it down or
// bringing it back, or nil, at the end.
type outage struct {
	down, resuming, back atomic.Int64
	done                 chan error
}

// startOutage takes cluster down with stop downAt after start and brings it
// back with Resume downFor later, in the background.
func startOutage(ctx context.Context, cluster *pgcluster.Cluster, stop func(context.Context) error, start time.Time, downAt, downFor time.Duration) *outage {
	o := &outage{done: make(chan error, 1)}
	go func() {
		time.Sleep(downAt)
		if err := stop(ctx); err != nil {
			o.done <- err
			return
		}
		o.down.Store(int64(time.Since(start)))
		time.Sleep(downFor)
		o.resuming.Store(int64(time.Since(start)))
		err := cluster.Resume(ctx)
		o.back.Store(int64(time.Since(start)))
		o.done <- err
	}()
	return o
}

// storedSet returns the values of q's single text column on db, as a set.
func storedSet(t *testing.T, ctx context.Context, db *sql.DB, q string) map[string]bool {
	t.Helper()
	set := map[string]bool{}
	for _, s := range storetest.Strings(t, ctx, db, q) {
		set[s] = true
	}
	return set
}

// checkIntegrity checks what a crash must never leave behind, on either
// store: a tenant without its tenant.created event or its provisioning job
// (they are written in one transaction), an event without its tenant, or a
// chain that does not verify.
func checkIntegrity(t *testing.T, st *store.Store) {
	t.Helper()
	ctx := storetest.SystemContext()
	for _, c := range []struct{ what, q string }{
		{"tenants without their tenant.created event", `SELECT t.slug FROM tenants t WHERE NOT EXISTS
			(SELECT 1 FROM audit_log a WHERE a.group_id = CAST(t.id AS TEXT) AND a.action = 'tenant.created')`},
		{"tenants without their provisioning job", `SELECT t.slug FROM tenants t WHERE NOT EXISTS
			(SELECT 1 FROM outbox o WHERE o.tenant_id = t.id)`},
		{"events without their tenant", `SELECT CAST(a.id AS TEXT) FROM audit_log a WHERE a.tenant_id IS NULL OR NOT EXISTS
			(SELECT 1 FROM tenants t WHERE CAST(t.id AS TEXT) = a.group_id)`},
	} {
		if got := storetest.Strings(t, storetest.SystemContext(), st.DB, c.q); len(got) > 0 {
			t.Errorf("%s: %v", c.what, got)
		}
	}
	clock := clock.Clock(clock.System)
	svc := storetest.Must(audit.NewService(audit.Deps{Client: st.Client, Recorder: storetest.Recorder(clock, st.Postgres()), Clock: clock, Pager: storetest.Pager(t)}))
	ids := storetest.Strings(t, storetest.SystemContext(), st.DB, `SELECT CAST(id AS TEXT) FROM tenants`)
	for _, id := range ids {
		res, err := svc.VerifyChain(ctx, id) // ctx is the system principal's
		if err != nil || !res.OK || res.EventsChecked == 0 {
			t.Errorf("tenant %s: VerifyChain = %+v, %v; want ok with its events", id, res, err)
		}
	}
	t.Logf("%d tenants, each with its tenant.created event and a verifying chain", len(ids))
}

// TestFaultSIGKILLUnderCreateLoad runs the built server binary, drives
// CreateTenant from 16 connections and SIGKILLs the process in the middle
// of it: every acknowledged tenant is stored, no tenant is left without its
// tenant.created event (nor an event without its tenant), every chain
// verifies, and the server starts again on the same database. On both
// stores (SQLite file, PostgreSQL migrated with the real migrations).
func TestFaultSIGKILLUnderCreateLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: builds and runs the server binary")
	}
	bin := buildServer(t)
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			env := []string{"APP_ENV=dev", "LOG_LEVEL=error"}
			var open func() (*store.Store, error)
			if kind == "sqlite" {
				path := filepath.Join(t.TempDir(), "registry.db")
				env = append(env, "SQLITE_PATH="+path, "DATABASE_URL=")
				open = func() (*store.Store, error) {
					return store.OpenSQLite(storetest.SystemContext(), path, store.Options{})
				}
			} else {
				url := pgtest.MigratedURL(t)
				env = append(env, "DATABASE_URL="+url)
				open = func() (*store.Store, error) {
					return store.Open(storetest.SystemContext(), url, store.Options{MaxConns: 4})
				}
			}
			start := func() (*exec.Cmd, string, <-chan struct{}) {
				addr := freeAddr(t)
				cmd := exec.Command(bin)
				cmd.Env = append(append(os.Environ(), env...), "ADDR="+addr)
				logs := &logtest.Buffer{}
				cmd.Stdout, cmd.Stderr = logs, logs
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				exited := make(chan struct{})
				go func() { _ = cmd.Wait(); close(exited) }()
				t.Cleanup(func() {
					_ = cmd.Process.Kill()
					<-exited
					if t.Failed() {
						t.Logf("server log:\n%s", logs.String())
					}
				})
				base := "http://" + addr
				for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
					if res, err := http.Get(base + "/readyz"); err == nil {
						res.Body.Close()
						if res.StatusCode == http.StatusOK {
							break
						}
					}
					select {
					case <-exited:
						t.Fatal("server exited before it was ready")
					default:
					}
					if time.Now().After(deadline) {
						t.Fatal("server not ready in time")
					}
				}
				return cmd, base, exited
			}
			cmd, base, exited := start()

			const workers = 16
			var (
				mu    sync.Mutex
				acked []string
				n     atomic.Int64
				stop  atomic.Bool
				wg    sync.WaitGroup
			)
			for w := range workers {
				client := &http.Client{Timeout: 10 * time.Second}
				wg.Go(func() {
					for i := 0; !stop.Load(); i++ {
						slug := fmt.Sprintf("kill-%02d-%04d", w, i)
						status, _, err := postJSON(client, "POST", base+"/v1/tenants", fmt.Sprintf(`{"slug":%q,"name":"Kill %d %d"}`, slug, w, i))
						if err == nil && status == http.StatusOK {
							mu.Lock()
							acked = append(acked, slug)
							mu.Unlock()
							n.Add(1)
						}
					}
				})
			}
			// Kill once the load is well under way.
			for deadline := time.Now().Add(20 * time.Second); n.Load() < 100 && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
			}
			if err := cmd.Process.Signal(os.Kill); err != nil {
				t.Fatal(err)
			}
			<-exited
			stop.Store(true)
			wg.Wait()
			if len(acked) < 100 {
				t.Fatalf("only %d creates acknowledged before the kill; the load did not get going", len(acked))
			}

			st, err := open()
			if err != nil {
				t.Fatalf("open the store after SIGKILL: %v", err)
			}
			defer st.Close()
			stored := storedSet(t, storetest.SystemContext(), st.DB, `SELECT slug FROM tenants`)
			for _, s := range acked {
				if !stored[s] {
					t.Errorf("%s was acknowledged but is not stored", s)
				}
			}
			t.Logf("SIGKILL after %d acknowledged creates; %d tenants stored (acknowledged or not)", len(acked), len(stored))
			checkIntegrity(t, st)

			// And the service comes back on that database.
			_, base, _ = start()
			if status, body, err := postJSON(http.DefaultClient, "POST", base+"/v1/tenants", `{"slug":"after-kill","name":"After"}`); err != nil || status != http.StatusOK {
				t.Errorf("create after restart: %d %v %v", status, body, err)
			}
		})
	}
}

// TestFaultPostgresCrash crashes PostgreSQL (pg_ctl -m immediate: no
// shutdown checkpoint, every backend gone at once) under a steady mixed
// write load — AppendEvent and CreateTenant over REST, ~60/s for ~8s —
// and brings it back through crash recovery two seconds later: every
// request that was answered 2xx is in the database afterwards (tenants with
// their tenant.created event, appended events by id), every chain
// verifies, and the service recovers by itself. The cluster is its own,
// with synchronous_commit on (see pgcluster.Options.Durable); the shared
// test cluster's synchronous_commit=off would be allowed to lose the last
// acknowledged commits.
func TestFaultPostgresCrash(t *testing.T) {
	const (
		rate    = 60
		loadFor = 8 * time.Second
		downAt  = 2 * time.Second
		downFor = 2 * time.Second
	)
	ctx := storetest.SystemContext()
	cluster, dbURL, base := serverOnOwnCluster(t, ctx, pgcluster.Options{Durable: true}, "crash")
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	// Tenants to append to (acme is the dev seed).
	tenants := []string{"00000000-0000-0000-0000-000000000001"}
	for i := range 3 {
		status, body, err := postJSON(client, "POST", base+"/v1/tenants", fmt.Sprintf(`{"slug":"crash-base-%d","name":"Base %d"}`, i, i))
		if err != nil || status != http.StatusOK {
			t.Fatalf("create: %d %v %v", status, body, err)
		}
		tn, _ := body["tenant"].(map[string]any)
		id, _ := tn["id"].(string)
		tenants = append(tenants, id)
	}

	var (
		mu                   sync.Mutex
		ackedSlugs, ackedIDs []string
		failed               int
		ackedBefore, after   int
	)
	start := time.Now()
	out := startOutage(ctx, cluster, cluster.Crash, start, downAt, downFor)
	steadyLoad(start, time.Second/rate, loadFor, func(i int) {
		began := time.Since(start)
		var (
			status int
			body   map[string]any
			err    error
			slug   string
		)
		if i%2 == 0 {
			slug = fmt.Sprintf("crash-%04d", i)
			status, body, err = postJSON(client, "POST", base+"/v1/tenants", fmt.Sprintf(`{"slug":%q,"name":"Crash %d"}`, slug, i))
		} else {
			status, body, err = postJSON(client, "POST", base+"/v1/audit", fmt.Sprintf(
				`{"tenant_id":%q,"action":"document.signed","crud":"u","actor":{"id":"u-%d"},"idempotency_key":"crash-%d"}`,
				tenants[i%len(tenants)], i, i))
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil || status < 200 || status > 299 {
			failed++
			return
		}
		if c := out.down.Load(); c == 0 || int64(began) < c {
			ackedBefore++
		} else if r := out.back.Load(); r != 0 && int64(began) > r {
			after++
		}
		if slug != "" {
			ackedSlugs = append(ackedSlugs, slug)
			return
		}
		ev, _ := body["event"].(map[string]any)
		id, _ := ev["id"].(string)
		ackedIDs = append(ackedIDs, id)
	})
	if err := <-out.done; err != nil {
		t.Fatalf("crash/resume PostgreSQL: %v", err)
	}
	if !readyWithin(client, base, 15*time.Second) {
		t.Fatal("/readyz did not answer 200 within 15s of PostgreSQL's return")
	}
	if status, body, err := postJSON(client, "POST", base+"/v1/tenants", `{"slug":"after-crash","name":"After"}`); err != nil || status != http.StatusOK {
		t.Fatalf("create after recovery: %d %v %v", status, body, err)
	}
	ackedSlugs = append(ackedSlugs, "after-crash")
	if ackedBefore == 0 || failed == 0 {
		t.Errorf("acknowledged before the crash %d, failed %d: want some of each (was the crash under load?)", ackedBefore, failed)
	}
	t.Logf("PostgreSQL crashed at %v, back at %v: %d creates and %d appends acknowledged (%d before the crash, %d after the return), %d not",
		time.Duration(out.down.Load()).Round(time.Millisecond), time.Duration(out.back.Load()).Round(time.Millisecond),
		len(ackedSlugs), len(ackedIDs), ackedBefore, after, failed)

	st, err := store.Open(ctx, dbURL, store.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	slugs := storedSet(t, ctx, st.DB, `SELECT slug FROM tenants`)
	for _, s := range ackedSlugs {
		if !slugs[s] {
			t.Errorf("tenant %s was acknowledged but is lost", s)
		}
	}
	events := storedSet(t, ctx, st.DB, `SELECT id::text FROM audit_log WHERE action = 'document.signed'`)
	for _, id := range ackedIDs {
		if !events[id] {
			t.Errorf("event %q was acknowledged but is lost", id)
		}
	}
	checkIntegrity(t, st)
}

package app_test

import (
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/app"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/config"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/logtest"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/internal/tenant"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// hangingKeycloak answers no provisioning call: each waits for its
// context's end. entered is closed at the first call.
type hangingKeycloak struct {
	once    sync.Once
	entered chan struct{}
}

func (k *hangingKeycloak) Provision(ctx context.Context, _ keycloak.ProvisionRequest) (keycloak.ProvisionResult, error) {
	k.once.Do(func() { close(k.entered) })
	<-ctx.Done()
	return keycloak.ProvisionResult{}, ctx.Err()
}

// countingKeycloak is the dev mock, counting its calls.
type countingKeycloak struct {
	mu    sync.Mutex
	slugs []string
}

func (k *countingKeycloak) Provision(ctx context.Context, req keycloak.ProvisionRequest) (keycloak.ProvisionResult, error) {
	k.mu.Lock()
	k.slugs = append(k.slugs, req.Slug)
	k.mu.Unlock()
	return keycloak.Mock{}.Provision(ctx, req)
}

// replica is one stack as cmd/server builds it (app.New over a store of
// its own), its background jobs running until stop.
type replica struct {
	app  *app.App
	stop func() // cancels Run and waits for it to return
	done chan struct{}
}

func startReplica(t *testing.T, url string, p tenant.Provisioner, log *slog.Logger) *replica {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, url, store.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg, err := config.Load(func(k string) string {
		if k == "DATABASE_URL" {
			return url
		}
		return "" // APP_ENV=dev: acme and its provisioning job are seeded
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(ctx, app.Deps{Config: cfg, Store: st, Logger: log, Clock: clock.System, Provisioner: p})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	r := &replica{app: a, done: make(chan struct{})}
	go func() { a.Run(runCtx); close(r.done) }()
	r.stop = sync.OnceFunc(func() { cancel(); <-r.done })
	t.Cleanup(r.stop)
	return r
}

// TestStopReleasesProvisioningLease: replica A's worker holds the lease of
// a provisioning job (5 minutes) while Keycloak does not answer, and A is
// stopped. A's Run returns promptly, the lease is released in the
// database, and replica B provisions the job at once — long before the
// lease would have run out.
func TestStopReleasesProvisioningLease(t *testing.T) {
	url := pgtest.MigratedURL(t)
	db := pgtest.Open(t, url)
	ctx := context.Background()
	logsA := &logtest.Buffer{}
	hanging := &hangingKeycloak{entered: make(chan struct{})}
	a := startReplica(t, url, hanging, slog.New(slog.NewJSONHandler(logsA, nil)))
	select {
	case <-hanging.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("A's provisioning worker did not take acme's job")
	}
	type lease struct {
		held     bool // lease_token set and locked_until in the future
		ttlLeft  time.Duration
		attempts int
		done     bool
	}
	read := func() lease {
		t.Helper()
		var l lease
		var left sql.NullFloat64
		err := db.QueryRowContext(ctx, `SELECT lease_token IS NOT NULL AND locked_until > now(),
			EXTRACT(EPOCH FROM locked_until - now()), attempts, done_at IS NOT NULL
			FROM outbox WHERE tenant_id = $1`, tenant.AcmeID).Scan(&l.held, &left, &l.attempts, &l.done)
		if err != nil {
			t.Fatal(err)
		}
		l.ttlLeft = time.Duration(left.Float64 * float64(time.Second))
		return l
	}
	held := read()
	if !held.held || held.ttlLeft < 4*time.Minute || held.attempts != 1 {
		t.Fatalf("while A is in Keycloak: %+v, want A's lease held for about 5 minutes, attempt 1", held)
	}

	stopped := make(chan struct{})
	go func() { a.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("A's Run did not return 10s after its stop, with a provisioning call in Keycloak")
	}
	if got := read(); got.held || got.done || got.attempts != 0 {
		t.Errorf("after A stopped: %+v, want the lease released, the job not done and its cut-short attempt not counted", got)
	}
	if !strings.Contains(logsA.String(), "lease released") {
		t.Errorf("A's log does not say it released the lease:\n%s", logsA.String())
	}

	started := time.Now()
	keycloakB := &countingKeycloak{}
	b := startReplica(t, url, keycloakB, slog.New(slog.DiscardHandler))
	for !read().done {
		if time.Since(started) > 15*time.Second {
			t.Fatalf("B did not provision acme within 15s of starting (A's lease had %v left)", held.ttlLeft)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(started)
	keycloakB.mu.Lock()
	slugs := keycloakB.slugs
	keycloakB.mu.Unlock()
	if len(slugs) != 1 || slugs[0] != "acme" {
		t.Errorf("B's Keycloak calls: %v, want one for acme", slugs)
	}
	acme, err := b.app.Tenants.Get(storetest.SystemContext(), tenant.AcmeID.String())
	if err != nil || acme.ProvisioningState != tenant.ProvisioningProvisioned {
		t.Errorf("acme after B: %+v %v, want provisioned", acme, err)
	}
	if got := read(); got.attempts != 1 {
		t.Errorf("attempts after B: %d, want 1 (B's)", got.attempts)
	}
	t.Logf("A held the lease for another %v when stopped; B provisioned the job %v after it started", held.ttlLeft.Round(time.Second), took.Round(time.Millisecond))
}

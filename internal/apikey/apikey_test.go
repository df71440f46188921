package apikey_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent/auditlog"
	"github.com/platform/tenant-registry/ent/tenantproduct"
	keys "github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/logtest"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/internal/tenant"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var secret = []byte("test-secret-0123456789abcdef-0123456789")

type fixture struct {
	st      *store.Store
	clock   *storetest.Clock
	keys    *keys.Service
	tenants *tenant.Service
	tenant  *tenant.Tenant
	logs    *logtest.Buffer
}

// setup returns a Service over st for an active tenant "globex" with the
// product certifai. listen starts the cache listener on PostgreSQL and
// waits until it is connected.
func setup(t *testing.T, st *store.Store, listen bool) *fixture {
	t.Helper()
	ctx := storetest.SystemContext()
	clock := storetest.NewClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	rec := storetest.Recorder(clock.Now, st.Postgres())
	logs := &logtest.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc, err := keys.NewService(keys.Deps{Pager: storetest.Pager(t), Client: st.Client, Recorder: rec, Clock: clock.Now, Secret: secret, Postgres: st.Postgres(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	tenants := storetest.Must(tenant.NewService(tenant.Deps{Client: st.Client, Recorder: rec, Clock: clock.Now, Pager: storetest.Pager(t), Provisioner: keycloak.Mock{}}))
	tn, err := tenants.Create(ctx, tenant.CreateInput{Slug: "globex", Name: "Globex", Plan: "enterprise"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tenants.Activate(ctx, tn.ID.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Client.TenantProduct.Create().SetID(uuid.New()).SetTenantID(tn.ID).SetProduct("certifai").
		SetStatus(tenantproduct.StatusActive).SetCreatedAt(clock.Now()).SetUpdatedAt(clock.Now()).Save(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, clock: clock, keys: svc, tenants: tenants, tenant: tn, logs: logs}
	if listen && st.Postgres() {
		startListener(t, svc, st.URL)
	}
	return f
}

func startListener(t *testing.T, svc *keys.Service, url string) {
	t.Helper()
	ctx, cancel := context.WithCancel(storetest.SystemContext())
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Listen(ctx, url) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "listener connected", svc.Listening)
}

// waitFor polls cond (every millisecond, at most 10 s): for events whose
// latency is the notification's, never a fixed sleep.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// settle waits, on PostgreSQL with a listener, until the listener has
// processed a notification after before (a change by another writer).
func (f *fixture) settle(t *testing.T, before uint64) {
	t.Helper()
	if f.keys.Listening() {
		waitFor(t, "invalidation", func() bool { return f.keys.Invalidations() > before })
	}
}

func (f *fixture) create(t *testing.T, name string, scopes []string, expires *time.Time) *keys.Created {
	t.Helper()
	c, err := f.keys.Create(storetest.SystemContext(), keys.CreateInput{TenantID: f.tenant.ID.String(), Name: name, Scopes: scopes, ExpiresAt: expires})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return c
}

func (f *fixture) verify(t *testing.T, key string) keys.Verdict {
	t.Helper()
	v, err := f.keys.Verify(storetest.SystemContext(), key)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return v
}

func wantReason(t *testing.T, step string, got keys.Verdict, reason string) {
	t.Helper()
	if reason == "" {
		if !got.Valid || got.Reason != "" {
			t.Fatalf("%s: verdict = %+v, want valid", step, got)
		}
		return
	}
	if got.Valid || got.Reason != reason || got.KeyID != "" || got.TenantID != "" {
		t.Fatalf("%s: verdict = %+v, want invalid with reason %q and nothing else", step, got, reason)
	}
}

func TestCreateVerifyRevoke(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		f := setup(t, st, true)
		c := f.create(t, "  CI deploys ", []string{"certifai:write", "certifai:read", "certifai:read"}, nil)
		if !strings.HasPrefix(c.Plaintext, "trk_") || len(c.Plaintext) != 47 {
			t.Fatalf("plaintext %q: want trk_ and 43 characters", c.Plaintext)
		}
		if got, want := c.Key.Prefix, c.Plaintext[:12]; got != want {
			t.Errorf("prefix = %q, want %q", got, want)
		}
		if got, want := c.Key.Name, "CI deploys"; got != want {
			t.Errorf("name = %q, want %q", got, want)
		}
		if got, want := c.Key.CreatedBy, principal.System.Subject; got != want {
			t.Errorf("created_by = %q, want %q", got, want)
		}
		want := keys.Verdict{Valid: true, TenantID: f.tenant.ID.String(), Slug: "globex", KeyID: c.Key.ID.String(),
			Scopes: []string{"certifai:read", "certifai:write"}, Products: []string{"certifai"}}
		for i := range 3 { // the first from the database, then (PostgreSQL) from the cache
			if got := f.verify(t, c.Plaintext); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("verify %d = %+v, want %+v", i, got, want)
			}
		}
		if st.Postgres() {
			if got := f.keys.CacheLen(); got != 1 {
				t.Errorf("cache holds %d verdicts, want 1", got)
			}
			// A hit costs no database round trip: a dead context does not matter.
			dead, cancel := context.WithCancel(ctx)
			cancel()
			if got, err := f.keys.Verify(dead, c.Plaintext); err != nil || !got.Valid {
				t.Errorf("cached verify with a dead context = %+v, %v; want valid from the cache", got, err)
			}
		}
		// A new product shows up at once (tenant_products trigger).
		before := f.keys.Invalidations()
		if _, err := st.Client.TenantProduct.Create().SetID(uuid.New()).SetTenantID(f.tenant.ID).SetProduct("compliance").
			SetStatus(tenantproduct.StatusActive).SetCreatedAt(f.clock.Now()).SetUpdatedAt(f.clock.Now()).Save(ctx); err != nil {
			t.Fatal(err)
		}
		f.settle(t, before)
		if got := f.verify(t, c.Plaintext).Products; !slices.Equal(got, []string{"certifai", "compliance"}) {
			t.Errorf("products after a new entitlement = %v", got)
		}

		for i := range 2 { // idempotent
			k, err := f.keys.Revoke(ctx, c.Key.ID.String())
			if err != nil {
				t.Fatalf("Revoke %d: %v", i, err)
			}
			if k.RevokedAt == nil || !k.RevokedAt.Equal(f.clock.Now()) {
				t.Errorf("Revoke %d: revoked_at = %v, want %v", i, k.RevokedAt, f.clock.Now())
			}
			// No wait: this replica's own revoke is effective when Revoke returns.
			wantReason(t, "after revoke", f.verify(t, c.Plaintext), keys.ReasonRevoked)
		}
		events, err := st.Client.AuditLog.Query().Where(auditlog.TargetID(c.Key.ID.String())).All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, e := range events {
			actions = append(actions, e.Action)
		}
		slices.Sort(actions)
		if want := []string{"api_key.created", "api_key.revoked"}; !slices.Equal(actions, want) {
			t.Errorf("audit actions = %v, want %v", actions, want)
		}
		if _, err := f.keys.Revoke(ctx, uuid.NewString()); errs.CodeOf(err) != errs.NotFound {
			t.Errorf("Revoke(unknown) = %v, want not found", err)
		}
	})
}

func TestCreateValidation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := setup(t, st, false)
		past := f.clock.Now()
		tid := f.tenant.ID.String()
		many := make([]string, 33)
		for i := range many {
			many[i] = fmt.Sprintf("s%d", i)
		}
		cases := []struct {
			name string
			in   keys.CreateInput
			want errs.Code
		}{
			{"no tenant", keys.CreateInput{Name: "x"}, errs.Invalid},
			{"bad tenant id", keys.CreateInput{TenantID: "globex", Name: "x"}, errs.Invalid},
			{"unknown tenant", keys.CreateInput{TenantID: uuid.NewString(), Name: "x"}, errs.NotFound},
			{"empty name", keys.CreateInput{TenantID: tid, Name: "  "}, errs.Invalid},
			{"long name", keys.CreateInput{TenantID: tid, Name: strings.Repeat("n", 201)}, errs.Invalid},
			{"bad scope", keys.CreateInput{TenantID: tid, Name: "x", Scopes: []string{"Read"}}, errs.Invalid},
			{"long scope", keys.CreateInput{TenantID: tid, Name: "x", Scopes: []string{"a" + strings.Repeat("b", 64)}}, errs.Invalid},
			{"too many scopes", keys.CreateInput{TenantID: tid, Name: "x", Scopes: many}, errs.Invalid},
			{"expiry now", keys.CreateInput{TenantID: tid, Name: "x", ExpiresAt: &past}, errs.Invalid},
			{"ok", keys.CreateInput{TenantID: tid, Name: strings.Repeat("n", 200), Scopes: many[:32]}, ""},
		}
		for _, c := range cases {
			_, err := f.keys.Create(storetest.SystemContext(), c.in)
			if got := errs.CodeOf(err); got != c.want {
				t.Errorf("%s: code = %q (%v), want %q", c.name, got, err, c.want)
			}
		}
	})
}

func TestExpiry(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := setup(t, st, true)
		exp := f.clock.Now().Add(time.Hour)
		c := f.create(t, "expiring", nil, &exp)
		wantReason(t, "fresh", f.verify(t, c.Plaintext), "")
		wantReason(t, "fresh (cached)", f.verify(t, c.Plaintext), "")
		f.clock.Advance(time.Hour - time.Microsecond)
		wantReason(t, "a microsecond before", f.verify(t, c.Plaintext), "")
		f.clock.Advance(time.Microsecond)
		wantReason(t, "at the expiry", f.verify(t, c.Plaintext), keys.ReasonExpired)
	})
}

func TestTrialEndDropsProductAtOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		f := setup(t, st, true)
		end := f.clock.Now().Add(time.Hour)
		before := f.keys.Invalidations()
		if _, err := st.Client.TenantProduct.Create().SetID(uuid.New()).SetTenantID(f.tenant.ID).SetProduct("compliance").
			SetStatus(tenantproduct.StatusTrial).SetTrialStartedAt(f.clock.Now()).SetTrialEndsAt(end).
			SetCreatedAt(f.clock.Now()).SetUpdatedAt(f.clock.Now()).Save(ctx); err != nil {
			t.Fatal(err)
		}
		f.settle(t, before)
		c := f.create(t, "trial", nil, nil)
		for range 2 {
			if got := f.verify(t, c.Plaintext).Products; !slices.Equal(got, []string{"certifai", "compliance"}) {
				t.Fatalf("products during the trial = %v", got)
			}
		}
		f.clock.Advance(time.Hour)
		if got := f.verify(t, c.Plaintext).Products; !slices.Equal(got, []string{"certifai"}) {
			t.Fatalf("products at the trial's end = %v, want [certifai]", got)
		}
	})
}

func TestFreezeAndReactivate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		f := setup(t, st, true)
		c := f.create(t, "k", nil, nil)
		wantReason(t, "active", f.verify(t, c.Plaintext), "")
		wantReason(t, "active (cached)", f.verify(t, c.Plaintext), "")

		before := f.keys.Invalidations()
		if _, err := f.tenants.Cancel(ctx, f.tenant.ID.String()); err != nil {
			t.Fatal(err)
		}
		f.settle(t, before)
		wantReason(t, "frozen", f.verify(t, c.Plaintext), keys.ReasonTenantFrozen)
		if _, err := f.keys.Create(ctx, keys.CreateInput{TenantID: f.tenant.ID.String(), Name: "new"}); errs.CodeOf(err) != errs.Precondition {
			t.Errorf("Create for a frozen tenant = %v, want precondition", err)
		}

		before = f.keys.Invalidations()
		if _, err := f.tenants.Activate(ctx, f.tenant.ID.String()); err != nil {
			t.Fatal(err)
		}
		f.settle(t, before)
		wantReason(t, "reactivated", f.verify(t, c.Plaintext), "")
	})
}

func TestGarbage(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := setup(t, st, false)
		good := f.create(t, "k", nil, nil).Plaintext
		body := good[4:]
		cases := []struct{ name, key string }{
			{"empty", ""},
			{"prefix only", "trk_"},
			{"huge", "trk_" + strings.Repeat("A", 1<<20)},
			{"just over the limit", strings.Repeat("a", keys.MaxKeyLen+1)},
			{"wrong prefix", "sk_" + body + "x"},
			{"upper-case prefix", "TRK_" + body},
			{"non-UTF-8", "trk_" + body[:42] + "\xff"},
			{"bad alphabet", "trk_" + body[:42] + "+"},
			{"padding", "trk_" + body + "="},
			{"too short", good[:len(good)-1]},
			{"too long", good + "A"},
			{"whitespace", " " + good},
			{"NUL", good[:46] + "\x00"},
			{"non-canonical last character", "trk_" + strings.Repeat("A", 42) + "B"},
			{"unknown well-formed", "trk_" + base64.RawURLEncoding.EncodeToString(make([]byte, 32))},
		}
		for _, c := range cases {
			got, err := f.keys.Verify(storetest.SystemContext(), c.key)
			if err != nil {
				t.Errorf("%s: error %v, want a normal answer", c.name, err)
				continue
			}
			if got.Valid || got.Reason != keys.ReasonUnknown {
				t.Errorf("%s: verdict %+v, want invalid/unknown", c.name, got)
			}
		}
		wantReason(t, "the good key still", f.verify(t, good), "")
	})
}

func TestList(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		f := setup(t, st, false)
		var created []*keys.Created
		for i := range 5 {
			created = append(created, f.create(t, fmt.Sprintf("k%d", i), []string{"read"}, nil))
			f.clock.Advance(time.Second)
		}
		if _, err := f.keys.Revoke(ctx, created[1].Key.ID.String()); err != nil {
			t.Fatal(err)
		}
		var got []string
		cursor := ""
		for page := 0; ; page++ {
			ks, next, err := f.keys.List(ctx, keys.ListInput{TenantID: f.tenant.ID.String(), PageSize: 2, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range ks {
				got = append(got, k.Name)
				if k.Name == "k1" && k.RevokedAt == nil {
					t.Errorf("k1 listed without revoked_at")
				}
				if s := fmt.Sprintf("%+v", *k); strings.Contains(s, "trk_") && !strings.Contains(s, k.Prefix) {
					t.Errorf("listed key shows more than its prefix: %s", s)
				}
				for _, c := range created {
					if strings.Contains(fmt.Sprintf("%#v", *k), c.Plaintext[12:]) {
						t.Errorf("a listed key holds a secret")
					}
				}
			}
			if next == "" {
				break
			}
			if page > 5 {
				t.Fatal("pagination does not end")
			}
			cursor = next
		}
		if want := []string{"k4", "k3", "k2", "k1", "k0"}; !slices.Equal(got, want) {
			t.Errorf("listed %v, want %v (newest first)", got, want)
		}
		if _, _, err := f.keys.List(ctx, keys.ListInput{TenantID: f.tenant.ID.String(), Cursor: "tampered"}); errs.CodeOf(err) != errs.Invalid {
			t.Errorf("tampered cursor = %v, want invalid", err)
		}
	})
}

func TestRotate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		f := setup(t, st, true)
		old := f.create(t, "deploy", []string{"certifai:read"}, nil)
		wantReason(t, "old before", f.verify(t, old.Plaintext), "")

		r, err := f.keys.Rotate(ctx, old.Key.ID.String(), time.Hour)
		if err != nil {
			t.Fatalf("Rotate: %v", err)
		}
		if r.New.Name != "deploy" || !slices.Equal(r.New.Scopes, []string{"certifai:read"}) || r.Plaintext == old.Plaintext {
			t.Errorf("new key = %+v", r.New)
		}
		if want := f.clock.Now().Add(time.Hour); r.Previous.ExpiresAt == nil || !r.Previous.ExpiresAt.Equal(want) {
			t.Errorf("old key expires_at = %v, want %v", r.Previous.ExpiresAt, want)
		}
		wantReason(t, "old during overlap", f.verify(t, old.Plaintext), "")
		wantReason(t, "new", f.verify(t, r.Plaintext), "")
		f.clock.Advance(time.Hour)
		wantReason(t, "old after overlap", f.verify(t, old.Plaintext), keys.ReasonExpired)
		wantReason(t, "new after overlap", f.verify(t, r.Plaintext), "")
		if _, err := f.keys.Rotate(ctx, old.Key.ID.String(), time.Hour); errs.CodeOf(err) != errs.Precondition {
			t.Errorf("rotating an expired key = %v, want precondition", err)
		}

		// Overlap 0 revokes at once.
		r2, err := f.keys.Rotate(ctx, r.New.ID.String(), 0)
		if err != nil {
			t.Fatal(err)
		}
		wantReason(t, "rotated with no overlap", f.verify(t, r.Plaintext), keys.ReasonRevoked)
		wantReason(t, "its successor", f.verify(t, r2.Plaintext), "")
		if _, err := f.keys.Rotate(ctx, r2.New.ID.String(), -time.Second); errs.CodeOf(err) != errs.Invalid {
			t.Errorf("negative overlap = %v, want invalid", err)
		}
		n, err := st.Client.AuditLog.Query().Where(auditlog.Action("api_key.rotated")).Count(ctx)
		if err != nil || n != 2 {
			t.Errorf("api_key.rotated events = %d (%v), want 2", n, err)
		}
	})
}

func TestUsageFlush(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		f := setup(t, st, true)
		c := f.create(t, "k", nil, nil)
		lastUsed := func() *time.Time {
			k, err := st.Client.APIKey.Get(ctx, c.Key.ID)
			if err != nil {
				t.Fatal(err)
			}
			return k.LastUsedAt
		}
		f.verify(t, c.Plaintext)
		if got := lastUsed(); got != nil {
			t.Fatalf("last_used_at written on the request path: %v", got)
		}
		first := f.clock.Now()
		if err := f.keys.FlushUsage(ctx, false); err != nil {
			t.Fatal(err)
		}
		if got := lastUsed(); got == nil || !got.Equal(first) {
			t.Fatalf("last_used_at = %v, want %v", got, first)
		}
		inv := f.keys.Invalidations()
		f.clock.Advance(30 * time.Second)
		f.verify(t, c.Plaintext)
		if err := f.keys.FlushUsage(ctx, false); err != nil {
			t.Fatal(err)
		}
		if got := lastUsed(); !got.Equal(first) {
			t.Errorf("last_used_at rewritten within a minute: %v", got)
		}
		f.clock.Advance(30 * time.Second)
		if err := f.keys.FlushUsage(ctx, false); err != nil {
			t.Fatal(err)
		}
		if got, want := lastUsed(), first.Add(30*time.Second); got == nil || !got.Equal(want) {
			t.Errorf("last_used_at after a minute = %v, want %v", got, want)
		}
		if st.Postgres() {
			// Usage writes do not notify (they would clear every replica's cache).
			if _, err := st.DB.ExecContext(ctx, "SELECT 1"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
			if got := f.keys.Invalidations(); got != inv {
				t.Errorf("last_used_at writes caused %d invalidations", got-inv)
			}
		}
	})
}

// TestPlaintextNowhere greps every text, bytea and json column of every
// table, the audit events and the log for the plaintext keys.
func TestPlaintextNowhere(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		f := setup(t, st, true)
		a := f.create(t, "a", []string{"read"}, nil)
		b, err := f.keys.Rotate(ctx, a.Key.ID.String(), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{a.Plaintext, b.Plaintext} {
			f.verify(t, k)
		}
		if _, err := f.keys.Revoke(ctx, b.New.ID.String()); err != nil {
			t.Fatal(err)
		}
		if err := f.keys.FlushUsage(ctx, true); err != nil {
			t.Fatal(err)
		}
		dump := dumpAll(t, st)
		if !strings.Contains(dump, a.Key.Prefix) {
			t.Fatalf("the dump misses the display prefix %q: is it complete?", a.Key.Prefix)
		}
		for _, plain := range []string{a.Plaintext, b.Plaintext} {
			raw, _ := base64.RawURLEncoding.DecodeString(plain[4:])
			for what, hay := range map[string]string{"a table": dump, "the log": f.logs.String()} {
				for _, needle := range []string{plain, plain[12:], plain[4:], fmt.Sprintf("%x", raw)} {
					if strings.Contains(hay, needle) {
						t.Errorf("%s holds a plaintext key (or its secret part)", what)
					}
				}
			}
			events, err := st.Client.AuditLog.Query().All(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range events {
				if s := fmt.Sprintf("%+v %v", e, e.Fields); strings.Contains(s, plain[12:]) {
					t.Errorf("audit event %s holds a plaintext key", e.Action)
				}
			}
		}
	})
}

// dumpAll renders every text-like and bytea column of every table.
func dumpAll(t *testing.T, st *store.Store) string {
	t.Helper()
	ctx := storetest.SystemContext()
	var tablesQ string
	if st.Postgres() {
		tablesQ = `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`
	} else {
		tablesQ = `SELECT name FROM sqlite_master WHERE type = 'table'`
	}
	tables := storetest.Strings(t, context.Background(), st.DB, tablesQ)
	if len(tables) < 6 {
		t.Fatalf("found tables %v", tables)
	}
	var out strings.Builder
	for _, tbl := range tables {
		rows, err := st.DB.QueryContext(ctx, `SELECT * FROM "`+tbl+`"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				switch v := v.(type) {
				case []byte:
					fmt.Fprintf(&out, "%s.%s=%s|%x|%s\n", tbl, cols[i], v, v, base64.RawURLEncoding.EncodeToString(v))
				default:
					fmt.Fprintf(&out, "%s.%s=%v\n", tbl, cols[i], v)
				}
			}
		}
		rows.Close()
	}
	return out.String()
}

// TestFailClosed: without a connected listener the cache is never used,
// so a change that sends no notification at all is still seen at once; and
// a lost listener connection reconnects and starts from an empty cache.
func TestFailClosed(t *testing.T) {
	ctx := storetest.SystemContext()
	st := storetest.Postgres(t)

	t.Run("no listener", func(t *testing.T) {
		f := setup(t, st, false)
		c := f.create(t, "k", nil, nil)
		for range 3 {
			wantReason(t, "valid", f.verify(t, c.Plaintext), "")
		}
		if n := f.keys.CacheLen(); n != 0 || f.keys.Listening() {
			t.Fatalf("cache holds %d verdicts without a listener", n)
		}
		// A write that fires no trigger (replication role): nothing notifies.
		revokeSilently(t, st, c.Key.ID)
		wantReason(t, "after a silent revoke", f.verify(t, c.Plaintext), keys.ReasonRevoked)
	})

	t.Run("connection lost", func(t *testing.T) {
		if _, err := st.DB.ExecContext(ctx, `DELETE FROM tenants`); err != nil {
			t.Fatal(err)
		}
		f := setup(t, st, true)
		c := f.create(t, "k", nil, nil)
		f.verify(t, c.Plaintext)
		f.verify(t, c.Plaintext)
		if n := f.keys.CacheLen(); n != 1 {
			t.Fatalf("cache holds %d verdicts, want 1", n)
		}
		connects := f.keys.ListenerConnects()
		if _, err := st.DB.ExecContext(ctx, `SELECT pg_terminate_backend($1)`, int64(f.keys.ListenerPID())); err != nil {
			t.Fatal(err)
		}
		// The loss is noticed, the cache emptied; meanwhile verifies read
		// the database.
		waitFor(t, "reconnect", func() bool { return f.keys.ListenerConnects() > connects && f.keys.Listening() })
		if n := f.keys.CacheLen(); n != 0 {
			t.Errorf("cache holds %d verdicts after a reconnect, want 0", n)
		}
		revokeSilently(t, st, c.Key.ID)
		wantReason(t, "after reconnect and a silent revoke", f.verify(t, c.Plaintext), keys.ReasonRevoked)
		if !strings.Contains(f.logs.String(), "listener disconnected") {
			t.Errorf("the disconnect was not logged")
		}
	})
}

func revokeSilently(t *testing.T, st *store.Store, id uuid.UUID) {
	t.Helper()
	ctx := storetest.SystemContext()
	conn, err := st.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{
		`SET session_replication_role = replica`,
		`UPDATE api_keys SET revoked_at = now() WHERE id = '` + id.String() + `'`,
		`SET session_replication_role = DEFAULT`,
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRevokeRace: a verify whose database read raced a revoke never puts
// the stale verdict into the cache.
func TestRevokeRace(t *testing.T) {
	f := setup(t, storetest.Postgres(t), true)
	ctx := storetest.SystemContext()
	for i := range 20 {
		c := f.create(t, fmt.Sprintf("k%d", i), nil, nil)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
						_, _ = f.keys.Verify(ctx, c.Plaintext)
					}
				}
			})
		}
		time.Sleep(2 * time.Millisecond)
		if _, err := f.keys.Revoke(ctx, c.Key.ID.String()); err != nil {
			t.Fatal(err)
		}
		wantReason(t, "right after revoke", f.verify(t, c.Plaintext), keys.ReasonRevoked)
		close(stop)
		wg.Wait()
		wantReason(t, "after the racers", f.verify(t, c.Plaintext), keys.ReasonRevoked)
	}
}

// countingDriver counts the statements the store runs.
type countingDriver struct {
	dialect.Driver
	n *atomic.Int64
}

func (d countingDriver) Query(ctx context.Context, query string, args, v any) error {
	d.n.Add(1)
	return d.Driver.Query(ctx, query, args, v)
}

func (d countingDriver) Exec(ctx context.Context, query string, args, v any) error {
	d.n.Add(1)
	return d.Driver.Exec(ctx, query, args, v)
}

// TestVerifyMissIsOneStatement: a verify the cache does not answer (the
// embedded store has no cache: every verify) reads key, tenant and
// products in one SQL statement, for a valid, an unknown and a revoked key.
func TestVerifyMissIsOneStatement(t *testing.T) {
	var n atomic.Int64
	st, err := store.OpenSQLite(context.Background(), "", store.Options{Driver: func(d *entsql.Driver) dialect.Driver { return countingDriver{d, &n} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := setup(t, st, false)
	good := f.create(t, "k", nil, nil).Plaintext
	revoked := f.create(t, "r", nil, nil)
	if _, err := f.keys.Revoke(storetest.SystemContext(), revoked.Key.ID.String()); err != nil {
		t.Fatal(err)
	}
	unknown := "trk_" + strings.Repeat("A", 43)
	for _, c := range []struct{ key, want string }{{good, ""}, {unknown, keys.ReasonUnknown}, {revoked.Plaintext, keys.ReasonRevoked}} {
		before := n.Load()
		v, err := f.keys.Verify(context.Background(), c.key)
		if err != nil || v.Reason != c.want {
			t.Fatalf("verify: %+v %v, want reason %q", v, err, c.want)
		}
		if got := n.Load() - before; got != 1 {
			t.Errorf("verify (want reason %q) ran %d statements, want 1", c.want, got)
		}
	}
}

// TestUnknownKeysRemembered: on PostgreSQL with the listener delivering, an
// unknown key asked for again within the short negative TTL is answered
// from the cache, and asked for after it by the database again; valid keys
// stay valid next to it.
func TestUnknownKeysRemembered(t *testing.T) {
	f := setup(t, storetest.Postgres(t), true)
	good := f.create(t, "k", nil, nil).Plaintext
	unknown := "trk_" + strings.Repeat("C", 42) + "A" // well formed, no such key
	stats := func() (uint64, uint64) { return f.keys.CacheStats() }
	if v := f.verify(t, unknown); v.Valid || v.Reason != keys.ReasonUnknown {
		t.Fatalf("unknown key: %+v", v)
	}
	h0, m0 := stats()
	if v := f.verify(t, unknown); v.Valid || v.Reason != keys.ReasonUnknown {
		t.Fatalf("unknown key again: %+v", v)
	}
	if h, m := stats(); h != h0+1 || m != m0 {
		t.Errorf("second ask: hits %d→%d, misses %d→%d; want a hit", h0, h, m0, m)
	}
	f.clock.Advance(3 * time.Second) // past the negative TTL
	if v := f.verify(t, unknown); v.Valid || v.Reason != keys.ReasonUnknown {
		t.Fatalf("unknown key after the TTL: %+v", v)
	}
	if h, m := stats(); h != h0+1 || m != m0+1 {
		t.Errorf("after the TTL: hits %d→%d, misses %d→%d; want a miss", h0, h, m0, m)
	}
	if v := f.verify(t, good); !v.Valid {
		t.Errorf("valid key next to unknown ones: %+v", v)
	}
}

// gatedDriver holds the first raw query (QueryContext, the verify's read)
// run after armed is set until release is closed, and counts raw queries.
type gatedDriver struct {
	dialect.Driver
	armed   *atomic.Bool
	held    chan struct{} // closed when a statement is held
	release chan struct{}
	n       *atomic.Int64
}

func (d *gatedDriver) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	d.n.Add(1)
	if d.armed.CompareAndSwap(true, false) {
		close(d.held)
		<-d.release
	}
	return d.Driver.(*entsql.Driver).QueryContext(ctx, query, args...)
}

func (d *gatedDriver) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return d.Driver.(*entsql.Driver).ExecContext(ctx, query, args...)
}

// TestConcurrentMissesShareOneRead: on PostgreSQL with the cache on, the
// verifies that miss one key at once (its entry just expired) are one
// database read, whose verdict they all get; and a verify that begins
// after this replica revoked the key never shares a read that began
// before the revoke.
func TestConcurrentMissesShareOneRead(t *testing.T) {
	var (
		armed atomic.Bool
		n     atomic.Int64
	)
	gate := gatedDriver{armed: &armed, n: &n}
	st, err := store.Open(context.Background(), pgtest.MigratedURL(t), store.Options{MaxConns: 40, Driver: func(d *entsql.Driver) dialect.Driver {
		gate.Driver = d
		return &gate
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := setup(t, st, true)
	ctx := storetest.SystemContext()
	c := f.create(t, "hot", nil, nil)
	wantReason(t, "first verify", f.verify(t, c.Plaintext), "")

	// The entry expires; 32 callers miss it while the first read is held.
	f.clock.Advance(3 * time.Minute)
	gate.held, gate.release = make(chan struct{}), make(chan struct{})
	armed.Store(true)
	before := n.Load()
	const callers = 32
	verdicts := make(chan keys.Verdict, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			v, err := f.keys.Verify(ctx, c.Plaintext)
			if err != nil {
				t.Errorf("verify: %v", err)
			}
			verdicts <- v
		})
	}
	<-gate.held
	time.Sleep(200 * time.Millisecond) // the others reach the shared read (or, unshared, their own)
	if got := n.Load() - before; got != 1 {
		t.Errorf("%d callers missing the cache at once ran %d statements, want 1", callers, got)
	}
	close(gate.release)
	wg.Wait()
	close(verdicts)
	for v := range verdicts {
		wantReason(t, "a caller of the shared read", v, "")
	}

	// A read held from before a revoke is not shared after it.
	f.clock.Advance(3 * time.Minute)
	gate.held, gate.release = make(chan struct{}), make(chan struct{})
	armed.Store(true)
	early := make(chan keys.Verdict, 1)
	go func() {
		v, _ := f.keys.Verify(ctx, c.Plaintext)
		early <- v
	}()
	<-gate.held
	if _, err := f.keys.Revoke(ctx, c.Key.ID.String()); err != nil {
		t.Fatal(err)
	}
	// Sharing the held read would wait for it: give up after 5 s instead.
	after, cancel := context.WithTimeout(ctx, 5*time.Second)
	v, err := f.keys.Verify(after, c.Plaintext)
	cancel()
	if err != nil {
		t.Errorf("verify after the revoke, while a read from before it is held: %v (did it wait for that read?)", err)
	} else {
		wantReason(t, "verify after the revoke, while a read from before it is held", v, keys.ReasonRevoked)
	}
	close(gate.release)
	<-early // began before the revoke: either answer is right
	wantReason(t, "after the held read", f.verify(t, c.Plaintext), keys.ReasonRevoked)
}

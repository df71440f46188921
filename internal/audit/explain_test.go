package audit_test

import (
	"context"
	"database/sql"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

// bulkInsert writes n events of tenantID straight into audit_log with one
// INSERT … SELECT generate_series (PostgreSQL only): two events per
// millisecond from start, chain_seq from seq0+1. Their hashes are not a
// valid chain: this is for plans and latency, not for VerifyChain.
func bulkInsert(tb testing.TB, db *sql.DB, tenantID string, n, seq0 int64, start time.Time) {
	tb.Helper()
	_, err := db.ExecContext(storetest.SystemContext(), `
INSERT INTO audit_log (id, created_at, tenant_id, group_id, group_name, action, crud, actor_id, actor_name, actor_type,
  target_id, target_name, target_type, source_ip, description, is_failure, is_anonymous, fields, chain_seq, prev_hash, hash)
SELECT gen_random_uuid(), $2::timestamptz + (i / 2) * interval '1 millisecond', $1::uuid, $1::text, 'Bench',
  'document.viewed', 'r', 'user-' || (i % 100), 'User', 'user', 'doc-' || (i % 1000), 'Doc', 'document',
  '203.0.113.7', 'bench event', false, false, '{"n":"1"}'::jsonb, $3::bigint + i, '', md5(i::text) || md5(i::text)
FROM generate_series(1, $4::bigint) AS i`, tenantID, start, seq0, n)
	if err != nil {
		tb.Fatalf("bulk insert: %v", err)
	}
	analyzePartitions(tb, db)
}

// analyzePartitions analyzes the partitions of audit_log that hold events,
// as autovacuum does once they changed: it never analyzes the partitioned
// table itself, nor a partition created ahead and still empty (which the
// planner then takes for a table of a few pages, not for an empty one that
// a sequential scan and a sort read for free: see the README's audit
// section).
func analyzePartitions(tb testing.TB, db *sql.DB) {
	tb.Helper()
	for _, p := range storetest.Strings(tb, storetest.SystemContext(), db, "SELECT DISTINCT tableoid::regclass::text FROM audit_log") {
		if _, err := db.ExecContext(storetest.SystemContext(), "ANALYZE "+p); err != nil {
			tb.Fatal(err)
		}
	}
}

// sorts reports whether the plan has a Sort node (not a Merge Append's
// "Sort Key").
func sorts(plan string) bool { return sortNode.MatchString(plan) }

var sortNode = regexp.MustCompile(`(?m)^\s*(->\s+)?(Incremental )?Sort\s+\(`)

// captureDriver remembers the last query run through it.
type captureDriver struct {
	dialect.Driver
	query string
	args  []any
}

func (d *captureDriver) Query(ctx context.Context, query string, args, v any) error {
	d.query, d.args = query, args.([]any)
	return d.Driver.Query(ctx, query, args, v)
}

// explainList returns PostgreSQL's plan of the query List runs for in.
func explainList(tb testing.TB, st *store.Store, in audit.ListInput) string {
	tb.Helper()
	drv := &captureDriver{Driver: entsql.OpenDB(dialect.Postgres, st.DB)}
	clock := clock.Clock(clock.System)
	svc := storetest.Must(audit.NewService(audit.Deps{Client: ent.NewClient(ent.Driver(drv)), Recorder: storetest.Recorder(clock, true), Clock: clock, Pager: storetest.Pager(tb)}))
	if _, _, err := svc.List(admin, in); err != nil {
		tb.Fatal(err)
	}
	plan := storetest.Strings(tb, storetest.SystemContext(), st.DB, "EXPLAIN "+drv.query, drv.args...)
	return drv.query + "\n" + strings.Join(withoutEmptyPartitions(tb, st.DB, plan), "\n")
}

// withoutEmptyPartitions drops from plan the scans (and their conditions)
// of audit_log's partitions that hold no event — the months created ahead:
// how the planner reads an empty table says nothing about the seeks of the
// others — and notes which it dropped.
func withoutEmptyPartitions(tb testing.TB, db *sql.DB, plan []string) []string {
	tb.Helper()
	empty := storetest.Strings(tb, storetest.SystemContext(), db, `
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'audit_log'::regclass
  AND c.relname NOT IN (SELECT DISTINCT tableoid::regclass::text FROM audit_log) ORDER BY 1`)
	var out []string
	skip := -1 // the indentation of a dropped scan, while in its details
	for _, line := range plan {
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if skip >= 0 && indent > skip && !strings.HasPrefix(strings.TrimLeft(line, " "), "->") {
			continue
		}
		skip = -1
		if slices.ContainsFunc(empty, func(p string) bool { return strings.Contains(line, " on "+p+" ") }) {
			skip = indent
			continue
		}
		out = append(out, line)
	}
	if len(empty) > 0 {
		out = append(out, "(scans of the empty partitions "+strings.Join(empty, ", ")+" left out)")
	}
	return out
}

// TestListPlanIsKeyset checks on PostgreSQL that a deep page is an index
// seek: the tenant's (group_id, created_at, id) index (or (created_at, id)
// without a tenant), the cursor's position an index condition, no sort.
func TestListPlanIsKeyset(t *testing.T) {
	st := storetest.Postgres(t)
	f := newFixture(t, st, 0)
	a, b := f.tenant(t, "acme"), f.tenant(t, "globex")
	// Skewed, as in the 1M benchmark: a tenant with most of the events is
	// where the planner is tempted by (created_at, id) plus a filter.
	bulkInsert(t, st.DB, a, 60000, 0, t0)
	bulkInsert(t, st.DB, b, 5000, 0, t0)
	// A cursor deep into the tenant's events.
	in := audit.ListInput{TenantID: a, PageSize: 500}
	for range 30 {
		_, next, err := f.svc.List(admin, in)
		if err != nil {
			t.Fatal(err)
		}
		in.Cursor = next
	}
	small := audit.ListInput{TenantID: b, PageSize: 100}
	for range 10 {
		_, next, err := f.svc.List(admin, small)
		if err != nil {
			t.Fatal(err)
		}
		small.Cursor = next
	}
	// For a tenant holding most of the events, (created_at, id) with a
	// tenant filter is as good a seek as the tenant's own index, and the
	// planner may pick either: both are accepted there. A tenant with a
	// small share must get its own index.
	const tenantIndex, globalIndex = "auditlog_group_id_created_at_id", "auditlog_created_at_id"
	tests := []struct {
		name        string
		in          audit.ListInput
		wantIndexes []string
	}{
		{"big tenant, deep page", in, []string{tenantIndex, globalIndex}},
		{"big tenant, first page", audit.ListInput{TenantID: a}, []string{tenantIndex, globalIndex}},
		{"small tenant, deep page", small, []string{tenantIndex}},
		{"small tenant, first page", audit.ListInput{TenantID: b}, []string{tenantIndex}},
		{"all tenants", audit.ListInput{}, []string{globalIndex}},
	}
	for _, tc := range tests {
		plan := explainList(t, st, tc.in)
		used := ""
		for _, idx := range tc.wantIndexes {
			if scans(plan, "Index Scan Backward", idx) {
				used = idx
			}
		}
		if used == "" || sorts(plan) {
			t.Errorf("%s: want a backward scan of one of %v without a sort:\n%s", tc.name, tc.wantIndexes, plan)
			continue
		}
		if tc.in.Cursor != "" && !strings.Contains(plan, "ROW(created_at, id) < ROW(") {
			t.Errorf("%s: want the cursor's position in the index condition:\n%s", tc.name, plan)
		}
		if tc.in.TenantID != "" && used == tenantIndex && !strings.Contains(plan, "Index Cond: ((group_id)::text = ") && !strings.Contains(plan, "Index Cond: (((group_id)::text = ") {
			t.Errorf("%s: want the tenant in the index condition:\n%s", tc.name, plan)
		}
	}
}

// insertRare writes n events of tenantID of their own actor, target,
// target type, action and crud (PostgreSQL only), spread over the bulk
// events' time span (one a minute from start): the rare values a filter of
// a large tenant looks for.
func insertRare(tb testing.TB, db *sql.DB, tenantID string, n, seq0 int64, start time.Time) {
	tb.Helper()
	_, err := db.ExecContext(storetest.SystemContext(), `
INSERT INTO audit_log (id, created_at, tenant_id, group_id, group_name, action, crud, actor_id, actor_name, actor_type,
  target_id, target_name, target_type, source_ip, description, is_failure, is_anonymous, fields, chain_seq, prev_hash, hash)
SELECT gen_random_uuid(), $2::timestamptz + i * interval '1 second', $1::uuid, $1::text, 'Bench',
  'folder.shared', 'd', 'rare-actor', 'Rare', 'user', 'rare-target', 'Rare', 'folder',
  '203.0.113.7', 'rare event', false, false, NULL, $3::bigint + i, '', md5(i::text) || md5(i::text)
FROM generate_series(1, $4::bigint) AS i`, tenantID, start, seq0, n)
	if err != nil {
		tb.Fatalf("insert rare events: %v", err)
	}
	analyzePartitions(tb, db)
}

// TestListFilterPlansAreSeeks checks on PostgreSQL that every documented
// ListEvents filter of a large tenant (actor, target, target type, action
// and action prefix, crud, time range) is answered by a seek of the index
// made for it, the filter and the tenant in its index condition: no
// sequential scan, and no walk of the tenant's own index filtering rows.
func TestListFilterPlansAreSeeks(t *testing.T) {
	st := storetest.Postgres(t)
	f := newFixture(t, st, 0)
	a, b := f.tenant(t, "acme"), f.tenant(t, "globex")
	bulkInsert(t, st.DB, a, 60000, 0, t0)
	bulkInsert(t, st.DB, b, 5000, 0, t0)
	insertRare(t, st.DB, a, 20, 60000, t0)

	// deep answers in with the cursor of its second page (page size 5).
	deep := func(in audit.ListInput) audit.ListInput {
		in.PageSize = 5
		_, next, err := f.svc.List(admin, in)
		if err != nil {
			t.Fatal(err)
		}
		if next == "" {
			t.Fatalf("%+v: no second page", in)
		}
		in.Cursor = next
		return in
	}
	const (
		actorIndex   = "auditlog_group_id_actor_id_created_at_id"
		targetIndex  = "auditlog_group_id_target_id_created_at_id"
		typeIndex    = "auditlog_group_id_target_type_created_at_id"
		actionIndex  = "auditlog_group_id_action_created_at_id"
		crudIndex    = "auditlog_group_id_crud_created_at_id"
		tenantIndex  = "auditlog_group_id_created_at_id"
		mid          = 15 * time.Second // into the bulk events' 30 s
		rareActor    = "rare-actor"
		commonActor  = "user-7"
		rareTarget   = "rare-target"
		commonTarget = "doc-42"
	)
	tests := []struct {
		name string
		in   audit.ListInput
		// wantIndex is the index to seek ("a|b": either).
		wantIndex string
		// wantCond must appear in the index condition.
		wantCond string
		// sorted: the plan may sort (an action prefix spans actions).
		sorted bool
	}{
		{"rare actor", audit.ListInput{TenantID: a, ActorID: rareActor}, actorIndex, "actor_id)::text = ", false},
		{"rare actor, deep page", deep(audit.ListInput{TenantID: a, ActorID: rareActor}), actorIndex, "actor_id)::text = ", false},
		{"common actor", audit.ListInput{TenantID: a, ActorID: commonActor}, actorIndex, "actor_id)::text = ", false},
		{"common actor, deep page", deep(audit.ListInput{TenantID: a, ActorID: commonActor}), actorIndex, "actor_id)::text = ", false},
		{"rare target", audit.ListInput{TenantID: a, TargetID: rareTarget}, targetIndex, "target_id)::text = ", false},
		{"common target, deep page", deep(audit.ListInput{TenantID: a, TargetID: commonTarget}), targetIndex, "target_id)::text = ", false},
		// Both rare: either index is a seek.
		{"target and its type", audit.ListInput{TenantID: a, TargetID: rareTarget, TargetType: "folder"}, targetIndex + "|" + typeIndex, "target_", false},
		{"rare target type", audit.ListInput{TenantID: a, TargetType: "folder"}, typeIndex, "target_type)::text = ", false},
		{"rare target type, deep page", deep(audit.ListInput{TenantID: a, TargetType: "folder"}), typeIndex, "target_type)::text = ", false},
		{"rare action", audit.ListInput{TenantID: a, Action: "folder.shared"}, actionIndex, "action)::text = ", false},
		{"rare action, deep page", deep(audit.ListInput{TenantID: a, Action: "folder.shared"}), actionIndex, "action)::text = ", false},
		{"rare action prefix", audit.ListInput{TenantID: a, Action: "folder.*"}, actionIndex, "action)::text ~>=~ ", true},
		{"rare crud", audit.ListInput{TenantID: a, CRUD: "d"}, crudIndex, "crud)::text = ", false},
		{"rare crud, deep page", deep(audit.ListInput{TenantID: a, CRUD: "d"}), crudIndex, "crud)::text = ", false},
		{"time range", audit.ListInput{TenantID: a, CreatedAfter: t0.Add(mid), CreatedBefore: t0.Add(mid + time.Second)}, tenantIndex, "created_at >= ", false},
		{"time range, deep page", deep(audit.ListInput{TenantID: a, CreatedAfter: t0.Add(mid), CreatedBefore: t0.Add(mid + time.Second)}), tenantIndex, "created_at < ", false},
		{"rare actor, small tenant", audit.ListInput{TenantID: b, ActorID: commonActor}, actorIndex, "actor_id)::text = ", false},
	}
	for _, tc := range tests {
		plan := explainList(t, st, tc.in)
		used := ""
		for idx := range strings.SplitSeq(tc.wantIndex, "|") {
			if scans(plan, "Index Scan Backward", idx) || (tc.sorted && scans(plan, "Index Scan", idx)) {
				used = idx
			}
		}
		if used == "" {
			t.Errorf("%s: want a scan of %s:\n%s", tc.name, tc.wantIndex, plan)
			continue
		}
		if strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "Bitmap") {
			t.Errorf("%s: want no sequential or bitmap scan:\n%s", tc.name, plan)
		}
		if !tc.sorted && sorts(plan) {
			t.Errorf("%s: want no sort:\n%s", tc.name, plan)
		}
		cond := indexCond(plan)
		if !strings.Contains(cond, "group_id)::text = ") || !strings.Contains(cond, tc.wantCond) {
			t.Errorf("%s: want the tenant and %q in the index condition, got %q:\n%s", tc.name, tc.wantCond, cond, plan)
		}
		if tc.in.Cursor != "" && !strings.Contains(cond, "ROW(created_at, id) < ROW(") {
			t.Errorf("%s: want the cursor's position in the index condition, got %q:\n%s", tc.name, cond, plan)
		}
		if used != tenantIndex && scans(plan, "", tenantIndex) {
			t.Errorf("%s: want no walk of the tenant's index:\n%s", tc.name, plan)
		}
	}
}

// scans reports whether the plan has a scan (of kind, e.g. "Index Scan
// Backward", or any) of the index idx of audit_log, that is of its own
// index in one of audit_log's partitions (idx_2026_12, idx_default).
func scans(plan, kind, idx string) bool {
	return regexp.MustCompile(regexp.QuoteMeta(kind) + ` using ` + regexp.QuoteMeta(idx) + `(_[0-9]{4}_[0-9]{2}|_default)? on `).MatchString(plan)
}

// indexCond returns the plan's "Index Cond:" line.
func indexCond(plan string) string {
	for line := range strings.SplitSeq(plan, "\n") {
		if _, cond, ok := strings.Cut(line, "Index Cond: "); ok {
			return cond
		}
	}
	return ""
}

package audit_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	atlasmigrate "ariga.io/atlas/sql/migrate"
	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/devdb"
	"github.com/platform/tenant-registry/internal/evidence"
	"github.com/platform/tenant-registry/internal/migrate"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

// partitionOf answers the partition each event is stored in, by id.
func partitionOf(t testing.TB, db *sql.DB, events []*audit.Event) []string {
	t.Helper()
	out := make([]string, len(events))
	for i, e := range events {
		if err := db.QueryRowContext(storetest.SystemContext(), "SELECT tableoid::regclass::text FROM audit_log WHERE id = $1", e.ID).Scan(&out[i]); err != nil {
			t.Fatalf("partition of %s: %v", e.ID, err)
		}
	}
	return out
}

func partitions(t testing.TB, db *sql.DB) []string {
	t.Helper()
	return storetest.Strings(t, storetest.SystemContext(), db,
		"SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_log'::regclass ORDER BY 1")
}

func repeatStr(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// TestEnsurePartitions: EnsurePartitions creates the current month's
// partition and two ahead (of the service's clock), moves events the
// default partition holds for those months or earlier ones into their new
// partitions, does nothing the second time, and two replicas running it at
// once create each partition once between them.
func TestEnsurePartitions(t *testing.T) {
	st := storetest.Postgres(t)
	f := newFixture(t, st, 0)
	ctx := storetest.SystemContext()
	a := f.tenant(t, "acme")
	march := f.appendN(t, a, 3) // no partition for March 2026: the default one
	f.clock.Advance(40 * 24 * time.Hour)
	april := f.appendN(t, a, 2)
	if got, want := partitionOf(t, st.DB, slices.Concat(march, april)), repeatStr("audit_log_default", 5); !slices.Equal(got, want) {
		t.Fatalf("before: partitions %v, want %v", got, want)
	}
	n, err := f.svc.EnsurePartitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 { // March (its events), April (now), May, June
		t.Errorf("EnsurePartitions created %d, want 4", n)
	}
	got := partitionOf(t, st.DB, slices.Concat(march, april))
	want := slices.Concat(repeatStr("audit_log_2026_03", 3), repeatStr("audit_log_2026_04", 2))
	if !slices.Equal(got, want) {
		t.Errorf("after: partitions %v, want %v", got, want)
	}
	for _, p := range []string{"audit_log_2026_03", "audit_log_2026_04", "audit_log_2026_05", "audit_log_2026_06"} {
		if !slices.Contains(partitions(t, st.DB), p) {
			t.Errorf("no partition %s: %v", p, partitions(t, st.DB))
		}
	}
	if res, err := f.svc.VerifyChain(admin, a); err != nil || !res.OK || res.EventsChecked != 5 {
		t.Errorf("VerifyChain after the move = %+v, %v; want 5 events OK", res, err)
	}
	// The moved events keep the append-only triggers of their partition.
	if _, err := st.DB.ExecContext(ctx, "UPDATE audit_log_2026_03 SET description = 'x'"); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("UPDATE of a new partition: %v, want refused", err)
	}
	if _, err := st.DB.ExecContext(ctx, "TRUNCATE audit_log_2026_03"); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("TRUNCATE of a new partition: %v, want refused", err)
	}
	if n, err := f.svc.EnsurePartitions(ctx); err != nil || n != 0 {
		t.Errorf("second EnsurePartitions = %d, %v; want 0", n, err)
	}

	// Two replicas at once, three months on: July, August and September
	// are created once.
	f.clock.Advance(91 * 24 * time.Hour)
	other := newFixture(t, st, 0)
	other.clock.Advance(f.clock.Now().Sub(t0))
	var wg sync.WaitGroup
	counts := make([]int, 2)
	errs := make([]error, 2)
	for i, svc := range []*audit.Service{f.svc, other.svc} {
		wg.Go(func() { counts[i], errs[i] = svc.EnsurePartitions(ctx) })
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || counts[0]+counts[1] != 3 {
		t.Errorf("concurrent EnsurePartitions = %v, %v; want 3 created between them", counts, errs)
	}
	if got := len(partitions(t, st.DB)); got < 8 { // 03..09 and default
		t.Errorf("partitions %v, want 2026_03 to 2026_09 and the default", partitions(t, st.DB))
	}
	july := f.appendN(t, a, 1)
	if got := partitionOf(t, st.DB, july); got[0] != "audit_log_2026_07" {
		t.Errorf("a July event is in %s, want audit_log_2026_07", got[0])
	}
}

// TestPartitionedUniqueness: a unique index of the partitioned audit_log
// cannot hold (group_id, chain_seq) nor the appender's idempotency key; the
// trigger refuses a duplicate of either, in the same or another partition,
// as a unique violation that Ent reports as a constraint error.
func TestPartitionedUniqueness(t *testing.T) {
	st := storetest.Postgres(t)
	f := newFixture(t, st, 0)
	ctx := storetest.SystemContext()
	a := f.tenant(t, "acme")
	in := validInput(a)
	in.IdempotencyKey = "key-1"
	first := f.append(t, admin, in)
	f.appendN(t, a, 1)
	// One connection, so that the temporary table is seen.
	conn, err := st.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// copies inserts, in one statement, one copy of the first event per
	// set, each with a new id and its set applied.
	copies := func(sets ...string) error {
		if _, err := conn.ExecContext(ctx, "CREATE TEMP TABLE dup AS SELECT * FROM audit_log WHERE false"); err != nil {
			return err
		}
		defer conn.ExecContext(ctx, "DROP TABLE IF EXISTS dup") //nolint:errcheck
		for _, set := range sets {
			if _, err := conn.ExecContext(ctx, "CREATE TEMP TABLE one AS SELECT * FROM audit_log WHERE id = $1", first.ID); err != nil {
				return err
			}
			_, err := conn.ExecContext(ctx, "UPDATE one SET id = gen_random_uuid(), "+set)
			if err == nil {
				_, err = conn.ExecContext(ctx, "INSERT INTO dup SELECT * FROM one")
			}
			if _, derr := conn.ExecContext(ctx, "DROP TABLE one"); err == nil {
				err = derr
			}
			if err != nil {
				return err
			}
		}
		_, err := conn.ExecContext(ctx, "INSERT INTO audit_log SELECT * FROM dup")
		return err
	}
	const dupSeq, dupKey = `violates unique constraint "auditlog_group_id_chain_seq"`, `violates unique constraint "auditlog_group_id_appender_idempotency_key"`
	tests := []struct {
		name    string
		sets    []string
		wantErr string
	}{
		{"same chain_seq", []string{"idempotency_key = NULL"}, dupSeq},
		{"same chain_seq, another partition", []string{"idempotency_key = NULL, created_at = now()"}, dupSeq},
		{"same idempotency key", []string{"chain_seq = 100"}, dupKey},
		{"same idempotency key, another partition", []string{"chain_seq = 100, created_at = now()"}, dupKey},
		{"same key, another appender", []string{"chain_seq = 100, appended_by_id = 'someone-else'"}, ""},
		{"a new chain_seq without a key", []string{"chain_seq = 101, idempotency_key = NULL"}, ""},
		// Statements of many rows, as a group commit writes them.
		{"a batch of new chain_seqs", []string{"chain_seq = 200, idempotency_key = NULL", "chain_seq = 201, idempotency_key = NULL", "chain_seq = 202, idempotency_key = NULL"}, ""},
		{"a batch with one taken chain_seq", []string{"chain_seq = 300, idempotency_key = NULL", "idempotency_key = NULL", "chain_seq = 301, idempotency_key = NULL"}, dupSeq},
		{"a batch repeating its own chain_seq", []string{"chain_seq = 400, idempotency_key = NULL", "chain_seq = 400, idempotency_key = NULL"}, dupSeq},
		{"a batch around taken chain_seqs it does not repeat", []string{"chain_seq = 99, idempotency_key = NULL", "chain_seq = 102, idempotency_key = NULL"}, ""},
		{"a batch repeating its own key", []string{"chain_seq = 500, idempotency_key = 'key-5'", "chain_seq = 501, idempotency_key = 'key-5'"}, dupKey},
	}
	for _, tc := range tests {
		err := copies(tc.sets...)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v, want accepted", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: %v, want %s", tc.name, err, tc.wantErr)
		}
	}
	// Through Ent, a duplicate is a constraint error (what the group
	// commit's idempotency fallback looks for).
	err = st.Client.AuditLog.Create().
		SetID(uuid.New()).SetCreatedAt(f.clock.Now()).SetGroupID(a).SetAction("x.y").SetCrud("c").
		SetActorID("admin").SetActorType("user").SetChainSeq(first.ChainSeq).SetPrevHash("").
		SetHash(strings.Repeat("a", 64)).Exec(ctx)
	if !ent.IsConstraintError(err) {
		t.Errorf("duplicate chain_seq through Ent: %v, want a constraint error", err)
	}
}

// signedFixture is a fixture whose service signs digests.
func signedFixture(t *testing.T, st *store.Store, retentionDays int) *fixture {
	t.Helper()
	f := newFixture(t, st, retentionDays)
	key, err := evidence.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	f.svc = storetest.Must(audit.NewService(audit.Deps{
		Client: st.Client, Recorder: storetest.Recorder(f.clock.Now, st.Postgres()), Clock: f.clock.Now,
		Pager: storetest.Pager(t), RetentionDays: retentionDays, Signer: key,
	}))
	if err := f.svc.RegisterSigningKey(storetest.SystemContext()); err != nil {
		t.Fatal(err)
	}
	return f
}

type checkpoint struct {
	Group         string
	Seq, Deleted  int64
	Hash, Through string
}

func checkpoints(t *testing.T, db *sql.DB) []checkpoint {
	t.Helper()
	rows, err := db.QueryContext(storetest.SystemContext(), "SELECT group_id, chain_seq, events_deleted, hash, deleted_through FROM audit_checkpoints ORDER BY group_id, chain_seq")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []checkpoint
	for rows.Next() {
		var c checkpoint
		var through time.Time
		if err := rows.Scan(&c.Group, &c.Seq, &c.Deleted, &c.Hash, &through); err != nil {
			t.Fatal(err)
		}
		c.Through = through.UTC().Format(time.RFC3339Nano)
		out = append(out, c)
	}
	return out
}

// TestRetentionDropsPartitions: on PostgreSQL retention drops a month
// partition past the cutoff once a digest covers every group's events in
// it and they verify, writing each group's checkpoint; a group whose events
// there are not digested yet, or do not verify, keeps the partition.
func TestRetentionDropsPartitions(t *testing.T) {
	st := storetest.Postgres(t)
	f := signedFixture(t, st, 30)
	ctx := storetest.SystemContext()
	if _, err := f.svc.EnsurePartitions(ctx); err != nil { // March to May 2026
		t.Fatal(err)
	}
	a, b, c := f.tenant(t, "acme"), f.tenant(t, "globex"), f.tenant(t, "initech")
	marchA, marchB, marchC := f.appendN(t, a, 3), f.appendN(t, b, 2), f.appendN(t, c, 2)
	if err := f.svc.DigestAll(ctx); err != nil {
		t.Fatal(err)
	}
	marchC = append(marchC, f.appendN(t, c, 1)...) // not digested
	f.clock.Advance(35 * 24 * time.Hour)           // April 5
	aprilA, aprilB := f.appendN(t, a, 2), f.appendN(t, b, 1)
	if got := partitionOf(t, st.DB, slices.Concat(marchA, aprilA)); !slices.Equal(got, []string{"audit_log_2026_03", "audit_log_2026_03", "audit_log_2026_03", "audit_log_2026_04", "audit_log_2026_04"}) {
		t.Fatalf("partitions of the events: %v", got)
	}
	f.clock.Advance(40 * 24 * time.Hour) // May 15: the cutoff is April 15

	res, err := f.svc.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantKept := []audit.PartitionKept{{Partition: "audit_log_2026_03", GroupID: c, Reason: audit.KeptNotDigested}}
	if !slices.Equal(res.Kept, wantKept) || len(res.Dropped) != 0 || res.Deleted != 0 {
		t.Errorf("sweep with c's last March event undigested = %+v, want March kept for %s", res, c)
	}
	if !slices.Contains(partitions(t, st.DB), "audit_log_2026_03") {
		t.Fatal("March's partition was dropped")
	}
	if got := checkpoints(t, st.DB); len(got) != 0 {
		t.Errorf("checkpoints after a kept partition: %v, want none", got)
	}

	if err := f.svc.DigestAll(ctx); err != nil {
		t.Fatal(err)
	}
	res, err = f.svc.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Dropped, []string{"audit_log_2026_03"}) || len(res.Kept) != 0 || res.Deleted != 8 || len(res.Broken) != 0 {
		t.Errorf("sweep with March digested = %+v, want March's 8 events dropped", res)
	}
	if slices.Contains(partitions(t, st.DB), "audit_log_2026_03") {
		t.Errorf("March's partition is still there: %v", partitions(t, st.DB))
	}
	through := func(e *audit.Event) string { return e.CreatedAt.UTC().Format(time.RFC3339Nano) }
	wantCP := []checkpoint{
		{a, 3, 3, marchA[2].Hash, through(marchA[2])},
		{b, 2, 2, marchB[1].Hash, through(marchB[1])},
		{c, 3, 3, marchC[2].Hash, through(marchC[2])},
	}
	slices.SortFunc(wantCP, func(x, y checkpoint) int { return strings.Compare(x.Group, y.Group) })
	if got := checkpoints(t, st.DB); !slices.Equal(got, wantCP) {
		t.Errorf("checkpoints = %+v, want %+v", got, wantCP)
	}
	for _, tc := range []struct {
		group string
		want  audit.VerifyResult
	}{
		{a, audit.VerifyResult{TenantID: a, OK: true, EventsChecked: 2, CheckpointSeq: 3}},
		{b, audit.VerifyResult{TenantID: b, OK: true, EventsChecked: 1, CheckpointSeq: 2}},
		{c, audit.VerifyResult{TenantID: c, OK: true, Empty: true, CheckpointSeq: 3}},
	} {
		if got, err := f.svc.VerifyChain(admin, tc.group); err != nil || got != tc.want {
			t.Errorf("VerifyChain(%s) = %+v, %v; want %+v", tc.group, got, err, tc.want)
		}
	}
	if row := f.append(t, admin, validInput(c)); row.ChainSeq != 4 || row.PrevHash != marchC[2].Hash {
		t.Errorf("append after the drop: seq %d, want 4 chained to the checkpoint", row.ChainSeq)
	}

	// April, digested, then one of b's events there rewritten: kept, and b
	// reported broken.
	if err := f.svc.DigestAll(ctx); err != nil {
		t.Fatal(err)
	}
	f.rewrite(t, aprilB[0].ID, "description = 'x'")
	f.clock.Advance(31 * 24 * time.Hour) // June 15: the cutoff is May 16
	res, err = f.svc.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Dropped) != 0 || !slices.Contains(res.Broken, b) || len(res.Kept) != 1 || res.Kept[0].Partition != "audit_log_2026_04" || res.Kept[0].GroupID != b {
		t.Errorf("sweep with a tampered April event = %+v, want April kept, %s broken", res, b)
	}
	if got := partitionOf(t, st.DB, aprilA); got[0] != "audit_log_2026_04" {
		t.Errorf("April's events are in %v", got)
	}
}

// ListEvents filters that TestPartitionMigration compares.
func partitionListInputs(a string) []audit.ListInput {
	return []audit.ListInput{
		{TenantID: a, PageSize: 7},
		{TenantID: a, PageSize: 5, ActorID: "user-1"},
		{TenantID: a, PageSize: 5, TargetID: "obj-2"},
		{TenantID: a, PageSize: 5, TargetType: "api_key"},
		{TenantID: a, PageSize: 5, Action: "tenant.*"},
		{TenantID: a, PageSize: 5, Action: "api_key.revoked"},
		{TenantID: a, PageSize: 5, CRUD: "d"},
		{TenantID: a, PageSize: 5, CreatedAfter: time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC), CreatedBefore: time.Date(2026, 10, 15, 0, 0, 0, 0, time.UTC)},
		{PageSize: 11},
	}
}

// TestPartitionMigration: 20261202070000_audit_log_partitions.sql on a
// populated database (events of several months and tenants): every event
// kept, each in its month's partition; the chains verify; ListEvents
// answers the same pages for every documented filter, by index seeks of
// the partitions; the chain goes on.
func TestPartitionMigration(t *testing.T) {
	ctx := context.Background()
	url := pgtest.MigratedURL(t)
	db := pgtest.Open(t, url)
	dir, err := migrate.EmbeddedDir()
	if err != nil {
		t.Fatal(err)
	}
	files, err := dir.Files()
	if err != nil {
		t.Fatal(err)
	}
	at := slices.IndexFunc(files, func(f atlasmigrate.File) bool { return f.Version() == "20261202070000" })
	if at < 0 {
		t.Fatal("no migration 20261202070000")
	}
	if err := devdb.Down(ctx, db, len(files)-at); err != nil {
		t.Fatalf("down to before the partitions: %v", err)
	}
	if got := partitions(t, db); len(got) != 0 {
		t.Fatalf("partitions before the migration: %v", got)
	}
	// The store as it was before (store.Open refuses a database behind).
	st := &store.Store{Client: ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db))), DB: db, Dialect: dialect.Postgres}
	f := newFixture(t, st, 0)
	f.clock.Advance(time.Date(2026, 8, 20, 9, 0, 0, 0, time.UTC).Sub(t0))
	tenants := []string{f.tenant(t, "acme"), f.tenant(t, "globex"), f.tenant(t, "initech")}
	var events []*audit.Event
	for round := range 8 { // August to November
		for i, tn := range tenants {
			for _, e := range seedEvents(i + round) {
				e.TenantID = tn
				events = append(events, f.append(t, admin, e))
			}
		}
		f.clock.Advance(12 * 24 * time.Hour)
	}
	type snapshot struct {
		count  int
		verify []audit.VerifyResult
		lists  [][]string
	}
	take := func() snapshot {
		var s snapshot
		s.count = f.count(t)
		for _, tn := range tenants {
			res, err := f.svc.VerifyChain(admin, tn)
			if err != nil {
				t.Fatal(err)
			}
			s.verify = append(s.verify, res)
			for _, in := range partitionListInputs(tn) {
				s.lists = append(s.lists, walk(t, f, admin, in))
			}
		}
		return s
	}
	before := take()
	if _, err := migrate.Up(ctx, db); err != nil {
		t.Fatalf("migrate up: %v", err)
	}
	after := take()
	if after.count != before.count || after.count != len(events) {
		t.Errorf("events after the migration: %d, want %d (before: %d)", after.count, len(events), before.count)
	}
	for i, v := range after.verify {
		if !v.OK || v != before.verify[i] {
			t.Errorf("VerifyChain(%s) after = %+v, before %+v", tenants[i], v, before.verify[i])
		}
	}
	for i := range after.lists {
		if !slices.Equal(after.lists[i], before.lists[i]) {
			t.Errorf("list %d after the migration: %v, before %v", i, after.lists[i], before.lists[i])
		}
	}
	for i, p := range partitionOf(t, db, events) {
		if want := events[i].CreatedAt.UTC().Format("audit_log_2006_01"); p != want {
			t.Errorf("event %s of %s is in %s, want %s", events[i].ID, events[i].CreatedAt, p, want)
			break
		}
	}
	wantParts := []string{"audit_log_2026_08", "audit_log_2026_09", "audit_log_2026_10", "audit_log_2026_11"}
	if got := partitions(t, db); !containsAll(got, append(wantParts, "audit_log_default")) {
		t.Errorf("partitions %v, want at least %v and the default", got, wantParts)
	}
	// The chain goes on, in the current partition.
	f.append(t, admin, validInput(tenants[0]))
	if res, err := f.svc.VerifyChain(admin, tenants[0]); err != nil || !res.OK || res.EventsChecked != before.verify[0].EventsChecked+1 {
		t.Errorf("VerifyChain after a new append = %+v, %v", res, err)
	}

	// Each filter seeks its index in each partition it touches, with a
	// large tenant's events in every month (as in TestListFilterPlansAreSeeks).
	for k, p := range wantParts {
		start, err := time.Parse("audit_log_2006_01", p)
		if err != nil {
			t.Fatal(err)
		}
		bulkInsert(t, db, tenants[0], 15000, int64(k+1)*1_000_000, start.Add(24*time.Hour))
	}
	for _, in := range partitionListInputs(tenants[0]) {
		plan := explainList(t, st, in)
		if strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "Bitmap") {
			t.Errorf("%+v: want index scans only:\n%s", in, plan)
		}
		for _, p := range wantParts {
			if in.CreatedAfter.IsZero() && !strings.Contains(plan, "_"+strings.TrimPrefix(p, "audit_log_")+" on "+p+" ") {
				t.Errorf("%+v: want a scan of %s's own index:\n%s", in, p, plan)
			}
		}
	}
}

func containsAll(got, want []string) bool {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

// seedEvents are a few events of varied actors, targets, actions and
// cruds (n picks the mix).
func seedEvents(n int) []audit.AppendInput {
	actions := []string{"tenant.created", "tenant.activated", "api_key.created", "api_key.revoked", "document.signed"}
	cruds := []string{"c", "u", "c", "d", "r"}
	var out []audit.AppendInput
	for i := range 4 {
		k := n*4 + i
		in := validInput(uuid.Nil.String())
		in.Action, in.CRUD = actions[k%len(actions)], cruds[k%len(cruds)]
		in.Actor.ID = fmt.Sprintf("user-%d", k%3)
		in.Target = audit.Target{ID: fmt.Sprintf("obj-%d", k%4), Type: []string{"tenant", "api_key"}[k%2]}
		if k%3 == 0 {
			in.IdempotencyKey = fmt.Sprintf("key-%d", k)
		}
		out = append(out, in)
	}
	return out
}

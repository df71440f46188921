package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	atlasmigrate "ariga.io/atlas/sql/migrate"
	"github.com/google/uuid"

	"github.com/platform/tenant-registry/internal/devdb"
	"github.com/platform/tenant-registry/internal/migrate"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var (
	ourTables = []string{"api_keys", "audit_digests", "audit_log", "audit_signing_keys", "tenant_idp_config", "tenant_products", "tenant_projects", "tenants"}
	ourTypes  = []string{"entitlement_status", "idp_protocol", "tenant_plan", "tenant_status"}
)

func versions(t *testing.T) []string {
	t.Helper()
	dir, err := migrate.EmbeddedDir()
	if err != nil {
		t.Fatal(err)
	}
	files, err := dir.Files()
	if err != nil {
		t.Fatal(err)
	}
	var vs []string
	for _, f := range files {
		vs = append(vs, f.Version())
	}
	return vs
}

func list(t *testing.T, db *sql.DB, query string) []string {
	t.Helper()
	return storetest.Strings(t, context.Background(), db, query)
}

func tables(t *testing.T, db *sql.DB) []string {
	return list(t, db, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`)
}

func enumTypes(t *testing.T, db *sql.DB) []string {
	return list(t, db, `SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = 'public' AND t.typtype = 'e' ORDER BY 1`)
}

func functions(t *testing.T, db *sql.DB) []string {
	return list(t, db, `SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' ORDER BY 1`)
}

func triggers(t *testing.T, db *sql.DB) []string {
	return list(t, db, `SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1`)
}

func applied(t *testing.T, db *sql.DB) []string {
	return list(t, db, `SELECT version FROM atlas_schema_revisions.atlas_schema_revisions ORDER BY 1`)
}

func TestUpDownRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t, pgtest.URL(t))
	all := versions(t)

	for round := 1; round <= 2; round++ {
		got, err := migrate.Up(ctx, db)
		if err != nil {
			t.Fatalf("round %d: Up: %v", round, err)
		}
		if !slices.Equal(got, all) {
			t.Errorf("round %d: Up applied %v, want %v", round, got, all)
		}
		if got := tables(t, db); !containsAll(got, ourTables) {
			t.Errorf("round %d: tables after up = %v, want all of %v", round, got, ourTables)
		}
		if got := enumTypes(t, db); !slices.Equal(got, ourTypes) {
			t.Errorf("round %d: enum types after up = %v, want %v", round, got, ourTypes)
		}
		if got, want := functions(t, db), []string{"api_key_verdict", "audit_digests_refuse_change", "audit_log_add_partition", "audit_log_chain_unique", "audit_log_create_partition", "audit_log_ensure_partitions", "audit_log_refuse_update", "audit_signing_keys_refuse_change", "notify_invalidate", "set_updated_at"}; !slices.Equal(got, want) {
			t.Errorf("round %d: functions after up = %v, want %v", round, got, want)
		}
		if got, _ := migrate.Up(ctx, db); len(got) != 0 {
			t.Errorf("round %d: second Up applied %v, want nothing", round, got)
		}

		if err := devdb.DownAll(ctx, db); err != nil {
			t.Fatalf("round %d: DownAll: %v", round, err)
		}
		for name, got := range map[string][]string{
			"tables": tables(t, db), "enum types": enumTypes(t, db),
			"functions": functions(t, db), "triggers": triggers(t, db), "revisions": applied(t, db),
		} {
			if len(got) != 0 {
				t.Errorf("round %d: %s after down-all = %v, want none", round, name, got)
			}
		}
	}
}

func TestDownOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t, pgtest.MigratedURL(t))
	all := versions(t)
	n := len(all)

	if err := devdb.Down(ctx, db, 1); err != nil {
		t.Fatalf("Down(1): %v", err)
	}
	if got, want := applied(t, db), all[:n-1]; !slices.Equal(got, want) {
		t.Errorf("revisions after Down(1) = %v, want %v", got, want)
	}
	if got := tables(t, db); !containsAll(got, ourTables) {
		t.Errorf("tables after Down(1) = %v, want all of %v", got, ourTables)
	}
	st, err := migrate.GetStatus(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.Pending, all[n-1:]; !slices.Equal(got, want) {
		t.Errorf("pending after Down(1) = %v, want %v", got, want)
	}
	// Down to the first version, which only creates the enum types: the
	// tables, the updated_at function and its triggers all go.
	if err := devdb.Down(ctx, db, n-2); err != nil {
		t.Fatalf("Down(%d): %v", n-2, err)
	}
	if got, want := applied(t, db), all[:1]; !slices.Equal(got, want) {
		t.Errorf("revisions after Down(%d) = %v, want %v", n-2, got, want)
	}
	for name, got := range map[string][]string{"tables": tables(t, db), "functions": functions(t, db), "triggers": triggers(t, db)} {
		if len(got) != 0 {
			t.Errorf("%s at the first version = %v, want none", name, got)
		}
	}
	if got := enumTypes(t, db); !slices.Equal(got, ourTypes) {
		t.Errorf("enum types at the first version = %v, want %v", got, ourTypes)
	}
	// And back up again.
	got, err := migrate.Up(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if want := all[1:]; !slices.Equal(got, want) {
		t.Errorf("Up after downs applied %v, want %v", got, want)
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

func TestUpdatedAtTrigger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t, pgtest.MigratedURL(t))
	past := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := db.ExecContext(ctx, `INSERT INTO tenants (id, slug, name, created_at, updated_at)
VALUES ('00000000-0000-0000-0000-000000000001', 'acme', 'Acme', $1, $1)`, past); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE tenants SET name = 'Acme Inc.' WHERE slug = 'acme'`); err != nil {
		t.Fatal(err)
	}
	var got time.Time
	if err := db.QueryRowContext(ctx, `SELECT updated_at FROM tenants WHERE slug = 'acme'`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if time.Since(got) > time.Minute {
		t.Errorf("updated_at after a raw UPDATE = %v, want about now", got)
	}
	// An UPDATE that sets updated_at itself (the service, with its clock) keeps its value.
	set := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := db.ExecContext(ctx, `UPDATE tenants SET name = 'Acme', updated_at = $1 WHERE slug = 'acme'`, set); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT updated_at FROM tenants WHERE slug = 'acme'`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if !got.Equal(set) {
		t.Errorf("updated_at after an UPDATE setting it = %v, want %v", got, set)
	}
}

func TestDeleteTenantCascades(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t, pgtest.MigratedURL(t))
	const tenant = "00000000-0000-0000-0000-000000000001"
	for _, q := range []string{
		`INSERT INTO tenants (id, slug, name, status, plan, created_at, updated_at)
		 VALUES ('` + tenant + `', 'acme', 'Acme', 'active', 'professional', now(), now())`,
		`INSERT INTO tenant_projects (id, tenant_id, slug, name, created_at, updated_at)
		 VALUES ('00000000-0000-0000-0000-0000000000aa', '` + tenant + `', 'default', 'Default', now(), now())`,
		`INSERT INTO tenant_products (id, tenant_id, product, status, created_at, updated_at)
		 VALUES (gen_random_uuid(), '` + tenant + `', 'certifai', 'active', now(), now())`,
		`INSERT INTO tenant_idp_config (id, tenant_id, protocol, issuer_url, created_at, updated_at)
		 VALUES (gen_random_uuid(), '` + tenant + `', 'oidc', 'https://idp.example', now(), now())`,
		`INSERT INTO api_keys (id, tenant_id, project_id, name, prefix, hash, scopes, created_at, updated_at)
		 VALUES (gen_random_uuid(), '` + tenant + `', '00000000-0000-0000-0000-0000000000aa', 'ci', 'tr_abc', '\x01', '["read"]', now(), now())`,
		`INSERT INTO audit_log (id, tenant_id, group_id, action, crud, actor_id, actor_type, created_at, chain_seq, prev_hash, hash)
		 VALUES (gen_random_uuid(), '` + tenant + `', '` + tenant + `', 'tenant.created', 'c', 'admin', 'user', now(), 1, '', repeat('a', 64))`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := db.ExecContext(ctx, `DELETE FROM tenants WHERE id = $1`, tenant); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"tenant_projects", "tenant_products", "tenant_idp_config", "api_keys"} {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s rows after deleting the tenant = %d, want 0 (ON DELETE CASCADE)", table, n)
		}
	}
	var (
		n        int
		tenantID sql.NullString
	)
	if err := db.QueryRowContext(ctx, `SELECT count(*), max(tenant_id::text) FROM audit_log`).Scan(&n, &tenantID); err != nil {
		t.Fatal(err)
	}
	if n != 1 || tenantID.Valid {
		t.Errorf("audit_log after deleting the tenant: %d rows, tenant_id %v; want 1 row with NULL (ON DELETE SET NULL)", n, tenantID)
	}
}

func TestSlugCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t, pgtest.MigratedURL(t))
	for _, tc := range []struct {
		name, slug string
		ok         bool
		refusedBy  string // "": the tenants_slug_format CHECK
	}{
		{"too short", "ab", false, ""},
		// The column's own limit (varchar(63)) refuses it before the CHECK.
		{"too long", strings.Repeat("a", 64), false, "character varying(63)"},
		{"leading dash", "-acme", false, ""},
		{"trailing dash", "acme-", false, ""},
		{"upper case", "Acme", false, ""},
		{"underscore", "ac_me", false, ""},
		{"space", "ac me", false, ""},
		{"plain", "acme", true, ""},
		{"digit and dash", "a-1", true, ""},
		{"63 chars", strings.Repeat("b", 63), true, ""},
		{"inner dashes", "a--b", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.ExecContext(ctx, `INSERT INTO tenants (id, slug, name, created_at, updated_at)
VALUES (gen_random_uuid(), $1, 'x', now(), now())`, tc.slug)
			if got := err == nil; got != tc.ok {
				t.Errorf("insert slug %q: err = %v, want ok = %v", tc.slug, err, tc.ok)
			}
			want := tc.refusedBy
			if want == "" {
				want = "tenants_slug_format"
			}
			if err != nil && !strings.Contains(err.Error(), want) {
				t.Errorf("insert slug %q: err = %v, want it refused by %s", tc.slug, err, want)
			}
		})
	}
}

// copyDir writes the embedded directory to a temp dir.
func copyDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := migrations.FS.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := migrations.FS.ReadFile(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestNoDrift fails when the Ent schemas changed without a migration.
func TestNoDrift(t *testing.T) {
	t.Parallel()
	dir := copyDir(t)
	file, err := devdb.Diff(context.Background(), pgtest.URL(t), dir, "drift")
	if err != nil {
		t.Fatal(err)
	}
	if file != "" {
		b, _ := os.ReadFile(file)
		t.Errorf("the Ent schemas and migrations/ differ; run `make migrate-create NAME=…`. Missing migration:\n%s", b)
	}
}

// TestDiffClockBehind: when the newest migration is named after a time
// ahead of the clock, the planned migration is still the one written, under
// the next version (it once copied the newest file instead).
func TestDiffClockBehind(t *testing.T) {
	t.Parallel()
	dir := copyDir(t)
	// The last migration the Ent schemas need is missing (with the one
	// after it, which rebuilds audit_log with every index it had), and a
	// newer one (a no-op) is there.
	for _, f := range []string{"20261202060000_audit_list_filter_indexes.sql", "20261202070000_audit_log_partitions.sql"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "29991231000000_future.sql"), []byte("SELECT 1;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := devdb.Hash(dir); err != nil {
		t.Fatal(err)
	}
	file, err := devdb.Diff(context.Background(), pgtest.URL(t), dir, "filters")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := filepath.Base(file), "29991231000001_filters.sql"; got != want {
		t.Errorf("new migration %q, want %q", got, want)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if want := `CREATE INDEX "auditlog_group_id_actor_id_created_at_id"`; !strings.Contains(string(b), want) {
		t.Errorf("new migration lacks %s:\n%s", want, b)
	}
}

func TestChecksumTamper(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := copyDir(t)
	const name = "20261123000002_init.sql"
	p := filepath.Join(dir, name)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	local, err := atlasmigrate.NewLocalDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	db := pgtest.Open(t, pgtest.URL(t))
	got, err := migrate.UpDir(ctx, db, local)
	t.Logf("Up on the tampered directory: %v", err)
	if !errors.Is(err, atlasmigrate.ErrChecksumMismatch) || !strings.Contains(err.Error(), name) {
		t.Errorf("Up on a tampered directory: err = %v, want a checksum mismatch naming %s", err, name)
	}
	if len(got) != 0 {
		t.Errorf("Up on a tampered directory applied %v, want nothing", got)
	}
	if got := tables(t, db); len(got) != 0 {
		t.Errorf("tables after a refused Up = %v, want none", got)
	}
	if got := enumTypes(t, db); len(got) != 0 {
		t.Errorf("types after a refused Up = %v, want none", got)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		url     func(testing.TB) string
		prepare string
		want    error
	}{
		{"empty database", pgtest.URL, "", migrate.ErrNotMigrated},
		{"migrated", pgtest.MigratedURL, "", nil},
		{"one version behind", pgtest.MigratedURL,
			`DELETE FROM atlas_schema_revisions.atlas_schema_revisions
			 WHERE version = (SELECT max(version) FROM atlas_schema_revisions.atlas_schema_revisions)`,
			migrate.ErrNotMigrated},
		{"migrated, with the Atlas CLI's identifier row", pgtest.MigratedURL,
			`INSERT INTO atlas_schema_revisions.atlas_schema_revisions
			 (version, description, type, applied, total, executed_at, execution_time, hash, operator_version)
			 VALUES ('.atlas_cloud_identifiers', 'a0b1c2', 0, 0, 0, now(), 0, '', 'Atlas CLI v0.38.0')`,
			nil},
		// Expand/contract: a later release's migration is additive, so this
		// binary keeps serving (rolling deploys, rollbacks).
		{"newer than the binary", pgtest.MigratedURL,
			`INSERT INTO atlas_schema_revisions.atlas_schema_revisions
			 (version, description, type, applied, total, executed_at, execution_time, hash, operator_version)
			 VALUES ('29991231000000', 'future', 2, 1, 1, now(), 0, 'x', 'test')`,
			nil},
		{"an unknown version among the binary's", pgtest.MigratedURL,
			`INSERT INTO atlas_schema_revisions.atlas_schema_revisions
			 (version, description, type, applied, total, executed_at, execution_time, hash, operator_version)
			 VALUES ('20261123000001a', 'other branch', 2, 1, 1, now(), 0, 'x', 'test')`,
			migrate.ErrUnknownVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := pgtest.Open(t, tc.url(t))
			if tc.prepare != "" {
				if _, err := db.ExecContext(ctx, tc.prepare); err != nil {
					t.Fatal(err)
				}
			}
			err := migrate.Check(ctx, db)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
			if errors.Is(err, migrate.ErrNotMigrated) && !strings.Contains(err.Error(), "make migrate-up") {
				t.Errorf("Check = %v, want it to say `make migrate-up`", err)
			}
			if errors.Is(err, migrate.ErrUnknownVersion) && !strings.Contains(err.Error(), "another branch") {
				t.Errorf("Check = %v, want it to say the database was migrated by another branch's build", err)
			}
		})
	}
}

func TestConcurrentUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		appliedBy []string
		results   = make([]error, 2)
	)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Separate pools, as two init containers would have.
			got, err := migrate.Up(ctx, pgtest.Open(t, url))
			results[i] = err
			mu.Lock()
			appliedBy = append(appliedBy, got...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	for i, err := range results {
		if err != nil {
			t.Errorf("Up #%d: %v", i, err)
		}
	}
	slices.Sort(appliedBy)
	if want := versions(t); !slices.Equal(appliedBy, want) {
		t.Errorf("versions applied by both Up calls = %v, want each of %v once", appliedBy, want)
	}
	db := pgtest.Open(t, url)
	if got, want := applied(t, db), versions(t); !slices.Equal(got, want) {
		t.Errorf("revisions = %v, want %v", got, want)
	}
	if err := migrate.Check(ctx, db); err != nil {
		t.Errorf("Check after concurrent Up: %v", err)
	}
}

// TestRevisionsTableShape pins the Atlas CLI's revisions table columns.
func TestRevisionsTableShape(t *testing.T) {
	t.Parallel()
	db := pgtest.Open(t, pgtest.MigratedURL(t))
	got := list(t, db, `SELECT column_name || ' ' || data_type || ' ' || is_nullable
FROM information_schema.columns
WHERE table_schema = 'atlas_schema_revisions' AND table_name = 'atlas_schema_revisions' ORDER BY ordinal_position`)
	want := []string{
		"version character varying NO", "description character varying NO", "type bigint NO",
		"applied bigint NO", "total bigint NO", "executed_at timestamp with time zone NO",
		"execution_time bigint NO", "error text YES", "error_stmt text YES", "hash character varying NO",
		"partial_hashes jsonb YES", "operator_version character varying NO",
	}
	if !slices.Equal(got, want) {
		t.Errorf("revisions columns = %v, want %v", got, want)
	}
}

// TestAuditChainPrecheck: the migration making every audit_log row part of
// its chain refuses, with a message saying what to do, a database holding
// rows beside the chain (a hash cannot be invented for them), and migrates
// one whose rows are all chained, keeping them as hash_version 1.
func TestAuditChainPrecheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t, pgtest.MigratedURL(t))
	all := versions(t)
	at := slices.Index(all, "20261201000001")
	if at < 0 {
		t.Fatal("no migration 20261201000001 (audit chain precheck)")
	}
	if err := devdb.Down(ctx, db, len(all)-at); err != nil {
		t.Fatalf("Down to before the precheck: %v", err)
	}
	const group = "00000000-0000-0000-0000-00000000000a"
	insert := func(chainSeq, groupID string) {
		t.Helper()
		if _, err := db.ExecContext(ctx, `INSERT INTO audit_log (id, group_id, action, crud, actor_id, actor_type, created_at, chain_seq, prev_hash, hash)
VALUES (gen_random_uuid(), `+groupID+`, 'tenant.created', 'c', 'admin', 'user', now(), `+chainSeq+`, '', repeat('a', 64))`); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, chainSeq, groupID, wantErr string
	}{
		{"unchained row", "NULL", "'" + group + "'", "outside the hash chain"},
		{"upper-case group", "1", "'" + strings.ToUpper(group) + "'", "not a lower-case tenant id"},
	} {
		insert(tc.chainSeq, tc.groupID)
		_, err := migrate.Up(ctx, db)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: Up = %v, want an error saying %q", tc.name, err, tc.wantErr)
		}
		if got := applied(t, db); !slices.Equal(got, all[:at]) {
			t.Errorf("%s: revisions after the refused Up = %v, want %v", tc.name, got, all[:at])
		}
		if _, err := db.ExecContext(ctx, `DELETE FROM audit_log`); err != nil {
			t.Fatal(err)
		}
	}
	insert("1", "'"+group+"'")
	if _, err := migrate.Up(ctx, db); err != nil {
		t.Fatalf("Up with a chained row: %v", err)
	}
	var version int
	var appender string
	if err := db.QueryRowContext(ctx, `SELECT hash_version, appended_by_id FROM audit_log`).Scan(&version, &appender); err != nil {
		t.Fatal(err)
	}
	if version != 1 || appender != "" {
		t.Errorf("the existing event after the migration: hash_version %d appended_by %q, want 1 and none", version, appender)
	}
	for _, q := range []string{`UPDATE audit_log SET description = 'x'`, `TRUNCATE audit_log`} {
		if _, err := db.ExecContext(ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s after the migration: %v, want refused as append-only", q, err)
		}
	}
}

// TestServesOneMigrationAhead: after the next release's migrate up (an
// additive migration this binary does not have), this binary's Check and
// store still accept the database and its queries still work — the rolling
// deploy and the rollback of the expand/contract rule.
func TestServesOneMigrationAhead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	db := pgtest.Open(t, url)

	next, err := migrate.DirFromFS(migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	const file = "29990101000000_next_release.sql"
	if err := next.(*atlasmigrate.MemDir).WriteFile(file, []byte(
		"ALTER TABLE \"tenants\" ADD COLUMN \"next_release_note\" text NULL;\n"+
			"CREATE TABLE \"next_release_things\" (\"id\" uuid PRIMARY KEY, \"tenant_id\" uuid NOT NULL REFERENCES \"tenants\" (\"id\") ON DELETE CASCADE);\n")); err != nil {
		t.Fatal(err)
	}
	sum, err := next.Checksum()
	if err != nil {
		t.Fatal(err)
	}
	if err := atlasmigrate.WriteSumFile(next, sum); err != nil {
		t.Fatal(err)
	}
	applied, err := migrate.UpDir(ctx, db, next)
	if err != nil {
		t.Fatal(err)
	}
	if got := applied[len(applied)-1]; got != "29990101000000" {
		t.Fatalf("last applied %s, want the next release's migration", got)
	}

	if err := migrate.Check(ctx, db); err != nil {
		t.Fatalf("Check on a database one migration ahead: %v, want nil", err)
	}
	st, err := store.Open(ctx, url, store.Options{MaxConns: 2})
	if err != nil {
		t.Fatalf("store.Open on a database one migration ahead: %v", err)
	}
	defer st.Close()
	tn, err := st.Client.Tenant.Create().SetID(uuid.New()).SetSlug("ahead").SetName("Ahead").
		SetCreatedAt(time.Now()).SetUpdatedAt(time.Now()).Save(ctx)
	if err != nil {
		t.Fatalf("write on a database one migration ahead: %v", err)
	}
	if got, err := st.Client.Tenant.Get(ctx, tn.ID); err != nil || got.Slug != "ahead" {
		t.Fatalf("read on a database one migration ahead: %v %v", got, err)
	}

	// The same binary still refuses an older database.
	if _, err := db.ExecContext(ctx, `DELETE FROM atlas_schema_revisions.atlas_schema_revisions
		WHERE version = (SELECT max(version) FROM atlas_schema_revisions.atlas_schema_revisions WHERE version < '29990101000000')`); err != nil {
		t.Fatal(err)
	}
	if err := migrate.Check(ctx, db); !errors.Is(err, migrate.ErrNotMigrated) {
		t.Fatalf("Check with this binary's last version missing: %v, want ErrNotMigrated", err)
	}
}

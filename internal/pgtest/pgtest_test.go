package pgtest_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/platform/tenant-registry/internal/migrate"
	"github.com/platform/tenant-registry/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestDatabases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		url      func(testing.TB) string
		migrated bool
	}{
		{"URL", pgtest.URL, false},
		{"MigratedURL", pgtest.MigratedURL, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := tc.url(t), tc.url(t)
			if a == b {
				t.Fatalf("two calls gave the same database %s", a)
			}
			db := pgtest.Open(t, a)
			var n int
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if got := n > 0; got != tc.migrated {
				t.Errorf("%s: %d tables, want migrated = %v", tc.name, n, tc.migrated)
			}
			err := migrate.Check(ctx, db)
			if got := err == nil; got != tc.migrated {
				t.Errorf("%s: Check = %v, want migrated = %v", tc.name, err, tc.migrated)
			}
		})
	}
}

// TestNoPostgres runs itself in a child process without any PostgreSQL: it
// must skip on a laptop and fail loudly in CI.
func TestNoPostgres(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") == "1" {
		pgtest.URL(t)
		return
	}
	if testing.Short() {
		t.Skip("spawns the test binary")
	}
	for _, tc := range []struct {
		ci       string
		wantFail bool
		wantOut  string
	}{
		{"", false, "--- SKIP: TestNoPostgres"},
		{"true", true, "never skip in CI"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestNoPostgres$", "-test.v")
		env := []string{"PGTEST_CHILD=1", "PG_BIN_DIR=/nonexistent", "CI=" + tc.ci}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "TEST_DATABASE_URL=") && !strings.HasPrefix(kv, "CI=") {
				env = append(env, kv)
			}
		}
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if got := err != nil; got != tc.wantFail || !strings.Contains(string(out), tc.wantOut) {
			t.Errorf("CI=%q: err = %v, output:\n%s\nwant failure = %v and %q", tc.ci, err, out, tc.wantFail, tc.wantOut)
		}
	}
}

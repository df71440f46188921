// Package pgtest gives tests real PostgreSQL databases: a fresh empty one
// (URL) or a fresh migrated one (MigratedURL), each dropped at cleanup.
//
// The server is TEST_DATABASE_URL's when set (databases are created and
// dropped there), else a throwaway cluster started once per test binary
// (internal/pgcluster) and stopped by Main. Without PostgreSQL, tests skip,
// except when CI is set: then they fail loudly. -short skips them too.
package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"

	"github.com/platform/tenant-registry/internal/devdb"
	"github.com/platform/tenant-registry/internal/migrate"
	"github.com/platform/tenant-registry/internal/pgcluster"
)

var (
	serverOnce sync.Once
	cluster    *pgcluster.Cluster
	baseURL    string
	admin      *sql.DB // on baseURL's database; creates and drops the others
	serverErr  error

	templateOnce sync.Once
	template     string
	templateErr  error
)

// Main runs the tests, then stops the cluster (and drops the template
// database) if this process made them. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if admin != nil {
		if template != "" {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = devdb.DropDatabase(ctx, admin, template)
			cancel()
		}
		admin.Close()
	}
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: stop cluster:", err)
		}
	}
	os.Exit(code)
}

func server(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("pgtest: PostgreSQL tests skipped in -short mode")
	}
	serverOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		baseURL = os.Getenv("TEST_DATABASE_URL")
		if baseURL == "" {
			if cluster, serverErr = pgcluster.Start(ctx, ""); serverErr != nil {
				return
			}
			baseURL = cluster.URL()
		}
		admin = openURL(baseURL)
		serverErr = admin.PingContext(ctx)
	})
	if serverErr != nil {
		msg := fmt.Sprintf("pgtest: no PostgreSQL (set TEST_DATABASE_URL or install the server binaries): %v", serverErr)
		if os.Getenv("CI") != "" {
			t.Fatal("!!! " + msg + " — PostgreSQL tests never skip in CI")
		}
		t.Skip(msg)
	}
}

// URL creates a fresh, empty database and returns its URL. The database is
// dropped when the test ends.
func URL(t testing.TB) string {
	t.Helper()
	server(t)
	return create(t, "")
}

// MigratedURL is URL with migrate.Up applied: a clone of a template database
// migrated once per process.
func MigratedURL(t testing.TB) string {
	t.Helper()
	server(t)
	templateOnce.Do(func() {
		ctx := context.Background()
		name, err := devdb.CreateDatabase(ctx, admin, "pgtest_template")
		if err != nil {
			templateErr = err
			return
		}
		template = name
		db := openURL(dbURL(name))
		_, templateErr = migrate.Up(ctx, db)
		// CREATE DATABASE … TEMPLATE needs the template without sessions.
		db.Close()
	})
	if templateErr != nil {
		t.Fatalf("pgtest: migrate template database: %v", templateErr)
	}
	return create(t, template)
}

func create(t testing.TB, from string) string {
	t.Helper()
	ctx := context.Background()
	stmt := ""
	if from != "" {
		stmt = " TEMPLATE " + quote(from)
	}
	name := dbName(t)
	var err error
	// Cloning fails while another session touches the template; none of
	// ours does after MigratedURL's Once, but be forgiving of a slow close.
	for i := 0; i < 50; i++ {
		_, err = admin.ExecContext(ctx, "CREATE DATABASE "+quote(name)+stmt)
		if err == nil || !strings.Contains(err.Error(), "being accessed by other users") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		if err := devdb.DropDatabase(context.Background(), admin, name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return dbURL(name)
}

var seq struct {
	sync.Mutex
	n int
}

// dbName is unique per process and test, and readable in pg_stat_activity.
func dbName(t testing.TB) string {
	seq.Lock()
	seq.n++
	n := seq.n
	seq.Unlock()
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteRune('_')
		}
	}
	name := b.String()
	if len(name) > 40 {
		name = name[:40]
	}
	return fmt.Sprintf("t_%s_%d_%d", name, os.Getpid(), n)
}

func dbURL(name string) string {
	u, err := url.Parse(baseURL)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + name
	return u.String()
}

func quote(ident string) string { return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"` }

// Open opens url with pgx's database/sql driver; closed at cleanup.
func Open(t testing.TB, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatalf("pgtest: open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openURL(u string) *sql.DB {
	db, err := sql.Open("pgx", u)
	if err != nil {
		panic(err) // pgx's Open only fails on an unknown driver name
	}
	return db
}

// PgBouncer starts a PgBouncer in front of upstream with opts; it is
// stopped at cleanup, after its log is shown if the test failed.
func PgBouncer(t testing.TB, upstream string, opts pgcluster.PgBouncerOptions) *pgcluster.PgBouncer {
	t.Helper()
	b, err := pgcluster.StartPgBouncer(context.Background(), upstream, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pgbouncer log:\n%s", b.Log())
		}
		_ = b.Stop()
	})
	return b
}

// RequireBinary skips the test when the executable path is missing and
// env (when not "") is not set either, except under CI, where that fails
// it; hint says how to install it.
func RequireBinary(t testing.TB, path, env, hint string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil || env != "" && os.Getenv(env) != "" {
		return
	}
	Unavailable(t, fmt.Sprintf("no %s (%s)", path, hint))
}

// RequireNodeModule is for a test (named what) that runs node against an
// npm package of web/package.json from a package two levels below the
// repository root (internal/<pkg>): -short skips it; a missing node or
// web/node_modules/<module> is Unavailable. It returns the repository root.
func RequireNodeModule(t testing.TB, what, module string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no node")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		Unavailable(t, what+" needs node")
	}
	if _, err := os.Stat(filepath.Join(root, "web", "node_modules", module)); err != nil {
		Unavailable(t, what+" needs web/node_modules (run `npm ci --prefix web`)")
	}
	return root
}

// Unavailable skips a test whose real part (a binary, a browser, node) is
// missing here, except under CI, where every test must run and a missing
// part fails it.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s: never skipped in CI", why)
	}
	t.Skip(why)
}

// Package storetest runs the same tests against both stores: the embedded
// SQLite store and PostgreSQL migrated with the versioned migrations (never
// Ent's auto-migration). Packages using it call pgtest.Main from TestMain.
package storetest

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/cursor"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/store"
)

// Each runs fn as a subtest per store: "sqlite" and "postgres".
func Each(t *testing.T, fn func(t *testing.T, st *store.Store)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}

// SQLite returns a fresh in-memory embedded store.
func SQLite(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), "", store.Options{})
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Postgres returns a store on a fresh PostgreSQL database migrated the way
// production migrates it. It skips only outside CI (see pgtest).
func Postgres(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), pgtest.MigratedURL(t), store.Options{MaxConns: 30})
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Clock is a settable clock for tests.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock standing at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start.UTC().Truncate(time.Microsecond)} }

// Now returns the clock's time; pass c.Now where a clock.Clock is wanted.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Secret is the server secret of test services (API keys, cursors).
const Secret = "storetest-secret-0123456789abcdef0123"

// Pager returns the cursor pager of test services, keyed by Secret.
func Pager(t testing.TB) *cursor.Pager {
	t.Helper()
	p, err := cursor.NewPager([]byte(Secret))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Recorder returns an audit recorder on clock.
func Recorder(clock clock.Clock, postgres bool) *audit.Recorder {
	return Must(audit.NewRecorder(audit.RecorderDeps{Clock: clock, Postgres: postgres}))
}

// Must returns v and panics on err: test fixtures wrap the services'
// constructors in it, Must(tenant.NewService(…)), where an error is a broken
// fixture.
func Must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// SystemContext is a context whose caller is the system principal, as the
// background workers and commands have: what domain tests act as when they
// are not testing a caller's rights (a context without a caller is refused).
func SystemContext() context.Context {
	return principal.With(context.Background(), principal.System)
}

// Strings runs q on db and returns its single text column, row by row;
// any error fails the test.
func Strings(tb testing.TB, ctx context.Context, db *sql.DB, q string, args ...any) []string {
	tb.Helper()
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			tb.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

package pgcluster_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/platform/tenant-registry/internal/pgcluster"
	"github.com/platform/tenant-registry/internal/pgtest"
)

// TestPgBouncerTransactionMode pins what the pooler of production does and
// the service must live with: pgx's default statement cache breaks on it,
// a mode that never names statements works, and LISTEN through it hears
// nothing.
func TestPgBouncerTransactionMode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and PgBouncer")
	}
	pgtest.RequireBinary(t, filepath.Join(pgcluster.DefaultBinDir, "postgres"), "", "the PostgreSQL server package")
	pgtest.RequireBinary(t, pgcluster.DefaultPgBouncer, "", "apt-get install pgbouncer")
	ctx := context.Background()
	c, err := pgcluster.Start(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	b := pgtest.PgBouncer(t, c.URL(), pgcluster.PgBouncerOptions{PoolSize: 2})

	// Many client connections over two server connections, in parallel.
	query := func(url string) error {
		db, err := sql.Open("pgx", url)
		if err != nil {
			return err
		}
		defer db.Close()
		db.SetMaxOpenConns(8)
		var wg sync.WaitGroup
		errs := make(chan error, 8*20)
		for range 8 {
			wg.Go(func() {
				for i := range 20 {
					var n int
					if err := db.QueryRowContext(ctx, `SELECT $1::int + length($2::text)`, i, "abc").Scan(&n); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		return errors.Join(<-errs)
	}
	url := b.DatabaseURL("postgres")
	if err := query(url); err == nil || !strings.Contains(err.Error(), "prepared statement") {
		t.Errorf("pgx's default statement cache through transaction pooling: %v, want a prepared-statement error", err)
	}
	if err := query(url + "&default_query_exec_mode=exec"); err != nil {
		t.Errorf("exec mode through transaction pooling: %v", err)
	}

	// LISTEN through the pooler: the notification never arrives.
	conn, err := pgx.Connect(ctx, url+"&default_query_exec_mode=exec")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "LISTEN pgbouncer_test"); err != nil {
		t.Fatal(err)
	}
	direct, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(ctx)
	if _, err := direct.Exec(ctx, "NOTIFY pgbouncer_test, 'hello'"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if n, err := conn.WaitForNotification(wctx); err == nil {
		t.Errorf("a notification arrived through transaction pooling: %+v (the pooler is not in transaction mode?)", n)
	}
}

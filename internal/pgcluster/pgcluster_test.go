package pgcluster_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/platform/tenant-registry/internal/pgcluster"
)

func TestStartStop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	if _, err := os.Stat(filepath.Join(pgcluster.DefaultBinDir, "postgres")); err != nil && os.Getenv("CI") == "" {
		t.Skip("no PostgreSQL server binaries")
	}
	ctx := context.Background()
	c, err := pgcluster.Start(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", c.URL())
	if err != nil {
		t.Fatal(err)
	}
	var fsync string
	if err := db.QueryRowContext(ctx, `SHOW fsync`).Scan(&fsync); err != nil {
		t.Fatal(err)
	}
	if fsync != "off" {
		t.Errorf("fsync = %q, want off", fsync)
	}
	db.Close()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Dir()); !os.IsNotExist(err) {
		t.Errorf("cluster directory %s still there after Stop (err %v)", c.Dir(), err)
	}
}

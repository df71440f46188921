package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/store"
)

// TestPoolWaitRespectsContext: the pool is bounded (SQLite: one
// connection), and a caller waiting for a connection gives up when its
// context does, instead of queueing forever.
func TestPoolWaitRespectsContext(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, "", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := st.DB.Stats().MaxOpenConnections; got != 1 {
		t.Fatalf("SQLite pool bound %d, want 1", got)
	}
	tx, err := st.DB.BeginTx(ctx, nil) // holds the only connection
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = st.DB.ExecContext(wctx, "SELECT 1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for a connection: %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("gave up after %v", d)
	}
}

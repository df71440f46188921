// Package store opens the database behind tenant-registry: PostgreSQL through
// pgx when a URL is given, otherwise an embedded SQLite database (pure Go,
// no cgo). Both are used through the same Ent client.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/auditlog"
	"github.com/platform/tenant-registry/internal/migrate"
)

// memSeq names in-memory databases so that each OpenSQLite("") is its own.
var memSeq atomic.Int64

// Store is an open database.
type Store struct {
	Client  *ent.Client
	DB      *sql.DB
	Dialect string // dialect.Postgres or dialect.SQLite
	URL     string // the PostgreSQL URL the pool uses (with the exec mode added); empty on SQLite
}

// Options tune Open.
type Options struct {
	// MaxConns bounds the PostgreSQL pool (default 20).
	MaxConns int
	// Driver wraps the Ent client's driver (e.g. telemetry.TraceDriver,
	// tracing every statement); nil means the plain driver.
	Driver func(*entsql.Driver) dialect.Driver
}

// client is the Ent client over db, through opts.Driver when set.
func (opts Options) client(name string, db *sql.DB) *ent.Client {
	drv := entsql.OpenDB(name, db)
	if opts.Driver != nil {
		return ent.NewClient(ent.Driver(opts.Driver(drv)))
	}
	return ent.NewClient(ent.Driver(drv))
}

// QueryExecMode is pgx's default_query_exec_mode of the pool unless
// DATABASE_URL sets one. "exec" sends every statement with the extended
// protocol as one Parse/Bind/Execute/Sync of the unnamed statement, its
// parameters in text format with types left to the server: one round trip,
// nothing named, nothing cached per connection — safe behind PgBouncer in
// transaction mode (and after a migration changed a column's type).
const QueryExecMode = "exec"

// Open connects to databaseURL (postgres:// or postgresql://). PostgreSQL
// must already be migrated to this binary's latest version or a later one
// (migrate.Check's expand/contract rule): Open refuses an older database
// instead of serving it.
func Open(ctx context.Context, databaseURL string, opts Options) (*Store, error) {
	databaseURL, err := PoolURL(databaseURL)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("pgx", databaseURL)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 20
	}
	db.SetMaxOpenConns(opts.MaxConns)
	db.SetMaxIdleConns(opts.MaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := migrate.Check(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return &Store{
		Client:  opts.client(dialect.Postgres, db),
		DB:      db,
		Dialect: dialect.Postgres,
		URL:     databaseURL,
	}, nil
}

// PoolURL is databaseURL as the pool uses it: connect_timeout=5 and
// default_query_exec_mode=QueryExecMode added unless it sets them.
func PoolURL(databaseURL string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("DATABASE_URL: want a postgres:// URL")
	}
	q := u.Query()
	if !q.Has("connect_timeout") {
		// Fail a connection attempt to an unreachable server in seconds,
		// not after the operating system's TCP timeout.
		q.Set("connect_timeout", "5")
	}
	if !q.Has("default_query_exec_mode") {
		// Never name a prepared statement: behind PgBouncer in transaction
		// mode a session's statements do not follow it from one server
		// connection to the next (see QueryExecMode).
		q.Set("default_query_exec_mode", QueryExecMode)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// OpenSQLite opens the embedded store: in memory when path is empty (a fresh
// database per call), else the file at path. Its schema comes from Ent's own
// migration (SQLite is never production; PostgreSQL is migrated with the
// versioned migrations only).
func OpenSQLite(ctx context.Context, path string, opts Options) (*Store, error) {
	dsn := "file:" + path + "?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
	if path == "" {
		dsn = fmt.Sprintf("file:mem%d?mode=memory&cache=shared&_pragma=foreign_keys(1)", memSeq.Add(1))
	} else if strings.ContainsAny(path, "?#") {
		return nil, errors.New("SQLITE_PATH: must be a plain file path")
	} else if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("SQLITE_PATH: %w", err)
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	// One connection: SQLite serialises writers anyway, and a single
	// connection keeps transactions free of SQLITE_BUSY/LOCKED errors.
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	// The schema comes from Ent directly, through the plain driver.
	if err := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.SQLite, db))).Schema.Create(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("create sqlite schema: %w", err)
	}
	if err := createSQLiteTriggers(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return &Store{Client: opts.client(dialect.SQLite, db), DB: db, Dialect: dialect.SQLite}, nil
}

// createSQLiteTriggers gives the embedded store what the hand-written
// PostgreSQL migrations give PostgreSQL and Ent's auto-migration cannot:
// audit_log refuses every UPDATE but the tenant purge's ON DELETE SET NULL
// of tenant_id (see migrations/*_audit_log_immutable.sql). The trigger is
// rebuilt on every open, so it always names the current columns.
func createSQLiteTriggers(ctx context.Context, db *sql.DB) error {
	same := make([]string, 0, len(auditlog.Columns))
	for _, c := range auditlog.Columns {
		if c != auditlog.FieldTenantID {
			same = append(same, fmt.Sprintf("NEW.%[1]q IS OLD.%[1]q", c))
		}
	}
	stmts := []string{
		`DROP TRIGGER IF EXISTS "audit_log_refuse_update"`,
		`CREATE TRIGGER "audit_log_refuse_update" BEFORE UPDATE ON "audit_log" FOR EACH ROW
  WHEN NOT (OLD."tenant_id" IS NOT NULL AND NEW."tenant_id" IS NULL
    AND NOT EXISTS (SELECT 1 FROM "tenants" WHERE "id" = OLD."tenant_id")
    AND ` + strings.Join(same, " AND ") + `)
BEGIN
  SELECT RAISE(ABORT, 'audit_log is append-only: events cannot be changed');
END`,
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create sqlite triggers: %w", err)
	}
	defer tx.Rollback()
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create sqlite triggers: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create sqlite triggers: %w", err)
	}
	return nil
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.DB.PingContext(ctx) }

// Close closes the database.
func (s *Store) Close() error { return s.Client.Close() }

// Postgres reports whether the store is PostgreSQL.
func (s *Store) Postgres() bool { return s.Dialect == dialect.Postgres }

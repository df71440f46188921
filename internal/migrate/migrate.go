// Package migrate applies, reverts and inspects the embedded Atlas migration
// directory (package migrations) on PostgreSQL, keeping the Atlas CLI's
// revisions table so that `atlas migrate apply` can take over any database
// this package migrated. It also generates new migration files from the Ent
// schemas (Diff). SQLite does not use it: the server auto-migrates there.
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"

	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/postgres"

	"github.com/platform/tenant-registry/migrations"
)

var (
	// ErrNotMigrated: the database lacks versions of the embedded directory.
	ErrNotMigrated = errors.New("database schema is not migrated")
	// ErrUnknownVersion: the database has a version this binary does not know.
	ErrUnknownVersion = errors.New("database schema version is unknown to this binary")
)

// lockKey is the pg_advisory_lock key held around Up and Down, so that
// concurrent migrators (e.g. two init containers) run one after the other.
const lockKey int64 = 0x74656e616e74 // "tenant"

// operatorVersion goes into the revisions' operator_version column.
const operatorVersion = "tenant-registry cmd/migrate (atlas v0.38.0)"

// EmbeddedDir is the embedded migration directory as an Atlas Dir.
var EmbeddedDir = sync.OnceValues(func() (migrate.Dir, error) { return DirFromFS(migrations.FS) })

// DirFromFS copies the *.sql files and atlas.sum at the root of fsys into an
// in-memory Atlas directory.
func DirFromFS(fsys fs.FS) (migrate.Dir, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	dir := &migrate.MemDir{}
	for _, e := range entries {
		if e.IsDir() || !(strings.HasSuffix(e.Name(), ".sql") || e.Name() == migrate.HashFileName) {
			continue
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, err
		}
		if err := dir.WriteFile(e.Name(), b); err != nil {
			return nil, err
		}
	}
	return dir, nil
}

// Up applies all pending versions of the embedded directory, in order, and
// returns the versions it applied.
func Up(ctx context.Context, db *sql.DB) (applied []string, err error) {
	dir, err := EmbeddedDir()
	if err != nil {
		return nil, err
	}
	return UpDir(ctx, db, dir)
}

// UpDir is Up with the given directory.
func UpDir(ctx context.Context, db *sql.DB, dir migrate.Dir) (applied []string, err error) {
	err = WithLock(ctx, db, func(conn *sql.Conn) error {
		if err := ensureRevisionsTable(ctx, conn); err != nil {
			return err
		}
		ex, err := executor(conn, dir)
		if err != nil {
			return err
		}
		pending, err := ex.Pending(ctx)
		switch {
		case errors.Is(err, migrate.ErrNoPendingFiles):
			return nil
		case err != nil:
			return Describe(err)
		}
		// One transaction per file (the CLI's default --tx-mode file): a
		// failing file leaves no trace, neither schema nor revision.
		for _, f := range pending {
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			txEx, err := executor(tx, dir)
			if err == nil {
				err = txEx.Execute(ctx, f)
			}
			if err == nil {
				err = tx.Commit()
			}
			if err != nil {
				_ = tx.Rollback()
				return fmt.Errorf("migrate: apply %s: %w", f.Name(), Describe(err))
			}
			applied = append(applied, f.Version())
		}
		return nil
	})
	return applied, err
}

func executor(q Querier, dir migrate.Dir) (*migrate.Executor, error) {
	drv, err := postgres.Open(q)
	if err != nil {
		return nil, err
	}
	return migrate.NewExecutor(drv, dir, &revisions{q}, migrate.WithOperatorVersion(operatorVersion))
}

// Describe spells out Atlas's terse checksum error.
func Describe(err error) error {
	var ce *migrate.ChecksumError
	switch {
	case errors.As(err, &ce):
		return fmt.Errorf("migrate: checksum mismatch: %s was %s since atlas.sum was written "+
			"(a migration file must not change once written; if the change is intended, rehash with `migrate hash`): %w",
			ce.File, ce.Reason, err)
	case errors.Is(err, migrate.ErrChecksumMismatch):
		return fmt.Errorf("migrate: checksum mismatch between the migration files and atlas.sum: %w", err)
	case errors.Is(err, migrate.ErrChecksumNotFound):
		return fmt.Errorf("migrate: the migration directory has no atlas.sum: %w", err)
	}
	return err
}

// WithLock runs fn on a dedicated connection holding the advisory lock.
func WithLock(ctx context.Context, db *sql.DB, fn func(*sql.Conn) error) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, lockKey); err != nil {
		return fmt.Errorf("migrate: take advisory lock: %w", err)
	}
	defer func() {
		// Unlock even when ctx is done; closing the session would release it too.
		if _, uerr := conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockKey); uerr != nil {
			err = errors.Join(err, uerr)
		}
	}()
	return fn(conn)
}

// Status is where a database stands against the embedded directory. All
// entries are versions (the file names' timestamp prefixes).
type Status struct {
	Current string   // last applied version, "" for none
	Latest  string   // last version in the directory
	Pending []string // versions not applied yet
	Applied []string // versions applied
}

// GetStatus reads the revisions; it never writes.
func GetStatus(ctx context.Context, db *sql.DB) (Status, error) {
	dir, err := EmbeddedDir()
	if err != nil {
		return Status{}, err
	}
	return GetStatusDir(ctx, db, dir)
}

// GetStatusDir is GetStatus with the given directory.
func GetStatusDir(ctx context.Context, db *sql.DB, dir migrate.Dir) (Status, error) {
	var st Status
	revs, err := (&revisions{db}).ReadRevisions(ctx)
	if err != nil {
		return st, fmt.Errorf("migrate: read revisions: %w", err)
	}
	files, err := dir.Files()
	if err != nil {
		return st, err
	}
	if len(files) > 0 {
		st.Latest = files[len(files)-1].Version()
	}
	var baseline string
	done := map[string]bool{}
	for _, r := range revs {
		if r.Type.Has(migrate.RevisionTypeBaseline) {
			baseline = r.Version
		}
		if r.Applied == r.Total { // partially applied versions stay pending
			st.Applied = append(st.Applied, r.Version)
			done[r.Version] = true
			st.Current = r.Version
		}
	}
	for _, f := range files {
		if v := f.Version(); !done[v] && v > baseline {
			st.Pending = append(st.Pending, v)
		}
	}
	return st, nil
}

// Check returns nil when the database has every embedded version applied —
// at this binary's version or newer — and an error wrapping ErrNotMigrated
// (versions of this binary missing) or ErrUnknownVersion (a version this
// binary does not know that is not newer than its latest) otherwise.
//
// The rule behind "or newer" (expand/contract): a migration is additive for
// one release — new tables, new nullable or defaulted columns, new indexes,
// replaced trigger functions that the previous release's code still works
// with — and what it makes obsolete is dropped one release later. So during
// a rolling deploy, after `migrate up` to N+1, replicas of version N keep
// starting and serving, and rolling back the binary to N is possible
// without migrating down.
func Check(ctx context.Context, db *sql.DB) error {
	dir, err := EmbeddedDir()
	if err != nil {
		return err
	}
	return CheckDir(ctx, db, dir)
}

// CheckDir is Check with the given directory.
func CheckDir(ctx context.Context, db *sql.DB, dir migrate.Dir) error {
	st, err := GetStatusDir(ctx, db, dir)
	if err != nil {
		return err
	}
	files, err := dir.Files()
	if err != nil {
		return err
	}
	known := func(v string) bool {
		return slices.ContainsFunc(files, func(f migrate.File) bool { return f.Version() == v })
	}
	for _, v := range st.Applied {
		if !known(v) && v <= st.Latest {
			// Not a later release's migration: one this build never had
			// (another branch's), interleaved with ours.
			return fmt.Errorf("%w: the database has version %s, which this binary (versions up to %s) does not have: "+
				"the database was migrated by a build from another branch", ErrUnknownVersion, v, st.Latest)
		}
	}
	if len(st.Pending) > 0 {
		cur := st.Current
		if cur == "" {
			cur = "none"
		}
		return fmt.Errorf("%w: database at version %s, %d pending up to %s (%s): run `make migrate-up`",
			ErrNotMigrated, cur, len(st.Pending), st.Latest, strings.Join(st.Pending, ", "))
	}
	return nil
}

// Package devdb is the development side of the migrations, which neither
// the server nor production's `migrate up` links: throwaway databases
// (CreateDatabase), the next migration diffed from the Ent schemas (Diff),
// atlas.sum's rehash (Hash), and the way down (Down, DownAll), which
// production never takes.
package devdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	migrator "github.com/platform/tenant-registry/internal/migrate"
	"slices"
	"strings"

	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/postgres"
	"ariga.io/atlas/sql/schema"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Atlas-format directories have no down files. Down computes the way back
// the way `atlas migrate down` does: replay the directory up to the target
// version into a scratch database on the same server, diff the live public
// schema against the replayed one, and apply that plan. Atlas OSS does not
// inspect functions and triggers, so those are compared by hand (pg_proc,
// pg_trigger) and the extra ones dropped. Everything runs in one
// transaction together with the deletion of the reverted revisions.
//
// The revisions table itself stays (empty after DownAll): it is Atlas's
// bookkeeping, in its own schema, and keeping it lets the CLI and this
// package agree on a database that was migrated to "nothing".

// Down reverts the last n applied versions (n >= 1).
func Down(ctx context.Context, db *sql.DB, n int) error {
	dir, err := migrator.EmbeddedDir()
	if err != nil {
		return err
	}
	return DownDir(ctx, db, dir, n)
}

// DownAll reverts every applied version: none of the migrations' objects
// remain.
func DownAll(ctx context.Context, db *sql.DB) error {
	dir, err := migrator.EmbeddedDir()
	if err != nil {
		return err
	}
	return DownDir(ctx, db, dir, -1)
}

// DownDir is Down with the given directory; n < 0 reverts everything.
func DownDir(ctx context.Context, db *sql.DB, dir migrate.Dir, n int) error {
	if n == 0 {
		return errors.New("migrate: down needs a number of versions >= 1")
	}
	if err := migrate.Validate(dir); err != nil {
		return migrator.Describe(err)
	}
	return migrator.WithLock(ctx, db, func(conn *sql.Conn) error {
		revs, err := migrator.ReadRevisions(ctx, conn)
		if err != nil {
			return err
		}
		if len(revs) == 0 {
			return nil
		}
		target := "" // nothing
		if n > 0 && n < len(revs) {
			target = revs[len(revs)-1-n].Version
		}
		return downTo(ctx, conn, dir, target)
	})
}

// state is what a down compares: the public schema as Atlas sees it, and the
// functions and triggers it does not see.
type state struct {
	schema   *schema.Schema
	funcs    []string // "public"."name"(args)
	triggers []string // "name" ON "public"."table"
	// triggerDefs are the triggers' CREATE TRIGGER statements, by name.
	triggerDefs map[string]string
}

func downTo(ctx context.Context, conn *sql.Conn, dir migrate.Dir, target string) error {
	var want *state
	err := withScratch(ctx, conn, func(scratch *sql.DB) error {
		drv, err := postgres.Open(scratch)
		if err != nil {
			return err
		}
		read := migrate.StateReaderFunc(func(ctx context.Context) (*schema.Realm, error) {
			if want, err = readState(ctx, drv, scratch); err != nil {
				return nil, err
			}
			return schema.NewRealm(want.schema), nil
		})
		if target == "" {
			_, err = read(ctx)
			return err
		}
		ex, err := migrate.NewExecutor(drv, dir, migrate.NopRevisionReadWriter{})
		if err != nil {
			return err
		}
		_, err = ex.Replay(ctx, read, migrate.ReplayToVersion(target))
		return err
	})
	if err != nil {
		return fmt.Errorf("migrate: replay to version %q: %w", target, err)
	}

	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	drv, err := postgres.Open(tx)
	if err != nil {
		return err
	}
	have, err := readState(ctx, drv, tx)
	if err != nil {
		return err
	}
	// Atlas refuses to diff a partitioned table against a plain one: make
	// it plain first, rows kept, and diff what that leaves.
	if n, err := unpartition(ctx, tx, have.schema, want.schema); err != nil {
		return fmt.Errorf("migrate: down to %q: %w", target, err)
	} else if n > 0 {
		if have, err = readState(ctx, drv, tx); err != nil {
			return err
		}
	}
	changes, err := drv.SchemaDiff(have.schema, want.schema)
	if err != nil {
		return err
	}
	// Drop tables and the rest before the types they use.
	slices.SortStableFunc(changes, func(a, b schema.Change) int { return dropLast(a) - dropLast(b) })
	plan, err := drv.PlanChanges(ctx, "down", changes)
	if err != nil {
		return err
	}
	// Every trigger goes before the plan and the target's come back after
	// it, as the target defines them: PostgreSQL refuses to change the
	// type of a column a trigger's WHEN names, and the way down may.
	var stmts []string
	for _, t := range have.triggers {
		stmts = append(stmts, "DROP TRIGGER IF EXISTS "+t)
	}
	for _, c := range plan.Changes {
		stmts = append(stmts, c.Cmd)
	}
	for _, t := range want.triggers {
		stmts = append(stmts, want.triggerDefs[t])
	}
	for _, f := range have.funcs {
		if !slices.Contains(want.funcs, f) {
			stmts = append(stmts, "DROP FUNCTION IF EXISTS "+f)
		}
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("migrate: down to %q: %s: %w", target, s, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+migrator.RevisionsTable+` WHERE version > $1 AND version NOT LIKE '.%'`, target); err != nil {
		return err
	}
	return tx.Commit()
}

// unpartition replaces each partitioned table of have that want has as a
// plain table (audit_log below 20261202070000_audit_log_partitions.sql) by
// a plain table of the same columns, defaults and CHECK constraints,
// holding its rows; the diff then gives it want's keys, indexes and foreign
// keys. It answers how many tables it replaced.
func unpartition(ctx context.Context, tx *sql.Tx, have, want *schema.Schema) (int, error) {
	n := 0
	for _, t := range have.Tables {
		w, ok := want.Table(t.Name)
		if !ok || !hasPartition(t.Attrs) || hasPartition(w.Attrs) {
			continue
		}
		name, tmp := pgx.Identifier{t.Name}.Sanitize(), pgx.Identifier{t.Name + "_unpartitioned"}.Sanitize()
		for _, s := range []string{
			"CREATE TABLE " + tmp + " (LIKE " + name + " INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
			"INSERT INTO " + tmp + " SELECT * FROM " + name,
			"DROP TABLE " + name,
			"ALTER TABLE " + tmp + " RENAME TO " + name,
		} {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return n, fmt.Errorf("%s: %w", s, err)
			}
		}
		n++
	}
	return n, nil
}

func hasPartition(attrs []schema.Attr) bool {
	return slices.ContainsFunc(attrs, func(a schema.Attr) bool {
		_, ok := a.(*postgres.Partition)
		return ok
	})
}

func dropLast(c schema.Change) int {
	if _, ok := c.(*schema.DropObject); ok {
		return 1
	}
	return 0
}

func readState(ctx context.Context, drv migrate.Driver, q migrator.Querier) (*state, error) {
	s, err := drv.InspectSchema(ctx, "public", nil)
	if err != nil {
		return nil, err
	}
	st := &state{schema: s}
	// Functions that belong to an extension go with the extension.
	if st.funcs, err = queryStrings(ctx, q, `
SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND p.prokind IN ('f', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
ORDER BY 1`); err != nil {
		return nil, err
	}
	defs, err := queryStrings(ctx, q, `
SELECT format('%I ON %I.%I', t.tgname, n.nspname, c.relname) || E'\n' || pg_get_triggerdef(t.oid)
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND NOT t.tgisinternal
  -- a partition's triggers go and come with it (and a clone of its
  -- parent's with the parent's)
  AND NOT c.relispartition AND t.tgparentid = 0
ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	st.triggerDefs = map[string]string{}
	for _, d := range defs {
		name, def, _ := strings.Cut(d, "\n")
		st.triggers = append(st.triggers, name)
		st.triggerDefs[name] = def
	}
	return st, nil
}

func queryStrings(ctx context.Context, q migrator.Querier, query string) ([]string, error) {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// withScratch creates an empty database next to conn's, runs fn on it and
// drops it again.
func withScratch(ctx context.Context, conn *sql.Conn, fn func(*sql.DB) error) (err error) {
	var cfg *pgx.ConnConfig
	if err := conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("migrate: down needs a pgx stdlib connection, got %T", dc)
		}
		cfg = c.Conn().Config().Copy()
		return nil
	}); err != nil {
		return err
	}
	name, err := CreateDatabase(ctx, conn, "migrate_scratch")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, DropDatabase(context.WithoutCancel(ctx), conn, name)) }()
	cfg.Database = name
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	return fn(db)
}

// CreateDatabase creates an empty database named prefix_<random> on q's
// server and returns its name.
func CreateDatabase(ctx context.Context, q migrator.Querier, prefix string) (string, error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := prefix + "_" + hex.EncodeToString(b)
	if _, err := q.ExecContext(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return name, nil
}

// DropDatabase drops the database, closing its remaining sessions.
func DropDatabase(ctx context.Context, q migrator.Querier, name string) error {
	if _, err := q.ExecContext(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

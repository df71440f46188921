package migrate

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"ariga.io/atlas/sql/migrate"
)

// The revisions table is the Atlas CLI's: same schema, name and columns as
// `atlas migrate apply` keeps on a URL without search_path (the CLI's default
// revisions schema), so the CLI can take over a database migrated by this
// package and vice versa. atlas.hcl pins revisions_schema to the same name.
const (
	revSchema = "atlas_schema_revisions"
	revTable  = "atlas_schema_revisions"
	revIdent  = `"atlas_schema_revisions"."atlas_schema_revisions"`
	// RevisionsTable is the revisions table's qualified name.
	RevisionsTable = revIdent
)

// revisionsDDL mirrors the table the Atlas CLI creates.
var revisionsDDL = []string{
	`CREATE SCHEMA IF NOT EXISTS "atlas_schema_revisions"`,
	`CREATE TABLE IF NOT EXISTS ` + revIdent + ` (
  "version" character varying NOT NULL,
  "description" character varying NOT NULL,
  "type" bigint NOT NULL DEFAULT 2,
  "applied" bigint NOT NULL DEFAULT 0,
  "total" bigint NOT NULL DEFAULT 0,
  "executed_at" timestamptz NOT NULL,
  "execution_time" bigint NOT NULL,
  "error" text NULL,
  "error_stmt" text NULL,
  "hash" character varying NOT NULL,
  "partial_hashes" jsonb NULL,
  "operator_version" character varying NOT NULL,
  PRIMARY KEY ("version")
)`,
}

// revisions implements migrate.RevisionReadWriter on a connection or a
// transaction.
type revisions struct{ q Querier }

// Querier is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var _ migrate.RevisionReadWriter = (*revisions)(nil)

func ensureRevisionsTable(ctx context.Context, q Querier) error {
	for _, s := range revisionsDDL {
		if _, err := q.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("migrate: create revisions table: %w", err)
		}
	}
	return nil
}

func (*revisions) Ident() *migrate.TableIdent {
	return &migrate.TableIdent{Schema: revSchema, Name: revTable}
}

func (r *revisions) exists(ctx context.Context) (bool, error) {
	var ok bool
	err := r.q.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, revIdent).Scan(&ok)
	return ok, err
}

const revColumns = `version, description, type, applied, total, executed_at, execution_time,
  error, error_stmt, hash, partial_hashes, operator_version`

// ReadRevisions returns the revisions ordered by version; none (and no
// error) when the table does not exist yet.
func (r *revisions) ReadRevisions(ctx context.Context) ([]*migrate.Revision, error) {
	if ok, err := r.exists(ctx); err != nil || !ok {
		return nil, err
	}
	// The CLI keeps an identifier row (".atlas_cloud_identifiers") in the
	// table; like the CLI, skip it: it is no migration version.
	rows, err := r.q.QueryContext(ctx, `SELECT `+revColumns+` FROM `+revIdent+
		` WHERE version NOT LIKE '.%' ORDER BY version`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var revs []*migrate.Revision
	for rows.Next() {
		rev, err := scanRevision(rows)
		if err != nil {
			return nil, err
		}
		revs = append(revs, rev)
	}
	return revs, rows.Err()
}

func (r *revisions) ReadRevision(ctx context.Context, version string) (*migrate.Revision, error) {
	if ok, err := r.exists(ctx); err != nil {
		return nil, err
	} else if !ok {
		return nil, migrate.ErrRevisionNotExist
	}
	rows, err := r.q.QueryContext(ctx, `SELECT `+revColumns+` FROM `+revIdent+` WHERE version = $1`, version)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, migrate.ErrRevisionNotExist
	}
	return scanRevision(rows)
}

func scanRevision(rows *sql.Rows) (*migrate.Revision, error) {
	var (
		rev            migrate.Revision
		typ            int64
		execTime       int64
		errMsg, errSQL sql.NullString
		partial        []byte
	)
	if err := rows.Scan(&rev.Version, &rev.Description, &typ, &rev.Applied, &rev.Total, &rev.ExecutedAt,
		&execTime, &errMsg, &errSQL, &rev.Hash, &partial, &rev.OperatorVersion); err != nil {
		return nil, err
	}
	rev.Type = migrate.RevisionType(typ)
	rev.ExecutionTime = time.Duration(execTime) // nanoseconds, as the CLI stores it
	rev.Error, rev.ErrorStmt = errMsg.String, errSQL.String
	if len(partial) > 0 {
		if err := json.Unmarshal(partial, &rev.PartialHashes); err != nil {
			return nil, fmt.Errorf("migrate: revision %s: partial_hashes: %w", rev.Version, err)
		}
	}
	return &rev, nil
}

func (r *revisions) WriteRevision(ctx context.Context, rev *migrate.Revision) error {
	var partial []byte
	if len(rev.PartialHashes) > 0 {
		var err error
		if partial, err = json.Marshal(rev.PartialHashes); err != nil {
			return err
		}
	}
	_, err := r.q.ExecContext(ctx, `INSERT INTO `+revIdent+` (`+revColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (version) DO UPDATE SET
  description = excluded.description, type = excluded.type, applied = excluded.applied,
  total = excluded.total, executed_at = excluded.executed_at, execution_time = excluded.execution_time,
  error = excluded.error, error_stmt = excluded.error_stmt, hash = excluded.hash,
  partial_hashes = excluded.partial_hashes, operator_version = excluded.operator_version`,
		rev.Version, rev.Description, int64(rev.Type), rev.Applied, rev.Total, rev.ExecutedAt,
		int64(rev.ExecutionTime), rev.Error, rev.ErrorStmt, rev.Hash, nullJSON(partial), rev.OperatorVersion)
	return err
}

func nullJSON(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

func (r *revisions) DeleteRevision(ctx context.Context, version string) error {
	_, err := r.q.ExecContext(ctx, `DELETE FROM `+revIdent+` WHERE version = $1`, version)
	return err
}

// ReadRevisions reads the applied revisions, oldest first.
func ReadRevisions(ctx context.Context, q Querier) ([]*migrate.Revision, error) {
	return (&revisions{q}).ReadRevisions(ctx)
}

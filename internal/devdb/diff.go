package devdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/postgres"
	atlasschema "ariga.io/atlas/sql/schema"
	"entgo.io/ent/dialect"
	entschema "entgo.io/ent/dialect/sql/schema"
	"github.com/jackc/pgx/v5/stdlib"

	entmigrate "github.com/platform/tenant-registry/ent/migrate"
)

var registerOnce sync.Once

// registerPostgres makes pgx answer sql.Open("postgres", …), which is how
// Atlas opens a dev database URL. Skipped when another package already
// registered that name.
func registerPostgres() {
	registerOnce.Do(func() {
		if !slices.Contains(sql.Drivers(), "postgres") {
			sql.Register("postgres", stdlib.GetDefaultDriver())
		}
	})
}

// Diff writes the next migration file into the directory at path dir: the
// difference between the Ent schemas and the directory replayed into a fresh
// database created for the purpose on devURL's server (and dropped after).
// It returns the new file's path, or "" when there is no change. atlas.sum is
// rewritten along with the new file.
func Diff(ctx context.Context, devURL, dir, name string) (file string, err error) {
	registerPostgres()
	local, err := migrate.NewLocalDir(dir)
	if err != nil {
		return "", err
	}
	// Plan into a copy so a failure leaves the real directory untouched.
	mem := &migrate.MemDir{}
	files, err := local.Files()
	if err != nil {
		return "", err
	}
	for _, f := range files {
		if err := mem.WriteFile(f.Name(), f.Bytes()); err != nil {
			return "", err
		}
	}
	if sum, err := os.ReadFile(filepath.Join(dir, migrate.HashFileName)); err == nil {
		if err := mem.WriteFile(migrate.HashFileName, sum); err != nil {
			return "", err
		}
	}

	admin, err := sql.Open("postgres", devURL)
	if err != nil {
		return "", fmt.Errorf("dev database: %w", err)
	}
	defer admin.Close()
	dev, err := CreateDatabase(ctx, admin, "migrate_dev")
	if err != nil {
		return "", fmt.Errorf("dev database: %w", err)
	}
	defer func() { err = errors.Join(err, DropDatabase(context.WithoutCancel(ctx), admin, dev)) }()
	u, err := url.Parse(devURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + dev
	q := u.Query()
	q.Set("search_path", "public") // bind to the schema: unqualified DDL
	u.RawQuery = q.Encode()

	err = entschema.Diff(ctx, u.String(), name, entmigrate.Tables,
		entschema.WithDir(mem),
		entschema.WithMigrationMode(entschema.ModeReplay),
		entschema.WithDialect(dialect.Postgres),
		entschema.WithFormatter(migrate.DefaultFormatter),
		entschema.WithDropColumn(true),
		entschema.WithDropIndex(true),
		entschema.WithDiffHook(keepExpressionIndexes, keepPartitioning),
	)
	if err != nil {
		return "", fmt.Errorf("migrate: diff: %w", err)
	}
	after, err := mem.Files()
	if err != nil {
		return "", err
	}
	if len(after) == len(files) {
		return "", nil
	}
	// The planned file is the one that was not there before: named after
	// the clock, it sorts before the newest file when the clock is behind.
	old := make(map[string]bool, len(files))
	for _, f := range files {
		old[f.Name()] = true
	}
	var f migrate.File
	for _, a := range after {
		if !old[a.Name()] {
			f = a
		}
	}
	if f == nil {
		return "", fmt.Errorf("migrate: diff: %d files planned, none of them new", len(after))
	}
	// The planner names files after the clock; keep versions increasing
	// even when the clock is behind the newest file.
	version := f.Version()
	if n := len(files); n > 0 && version <= files[n-1].Version() {
		v, err := strconv.ParseUint(files[n-1].Version(), 10, 64)
		if err != nil {
			version = time.Now().UTC().Format("20060102150405")
		} else {
			version = strconv.FormatUint(v+1, 10)
		}
	}
	base := version + "_" + f.Desc() + ".sql"
	if err := local.WriteFile(base, f.Bytes()); err != nil {
		return "", err
	}
	return filepath.Join(dir, base), Hash(dir)
}

// Hash rewrites atlas.sum of the directory at path dir.
func Hash(dir string) error {
	local, err := migrate.NewLocalDir(dir)
	if err != nil {
		return err
	}
	sum, err := local.Checksum()
	if err != nil {
		return err
	}
	return migrate.WriteSumFile(local, sum)
}

// keepExpressionIndexes drops from a plan the DROP INDEX of an index with an
// expression part (such as tenant_name_prefix on lower(name)): Ent cannot
// declare one, so each is written by hand in migrations/ and is not drift.
func keepExpressionIndexes(next entschema.Differ) entschema.Differ {
	return entschema.DiffFunc(func(current, desired *atlasschema.Schema) ([]atlasschema.Change, error) {
		changes, err := next.Diff(current, desired)
		if err != nil {
			return nil, err
		}
		out := changes[:0]
		for _, c := range changes {
			if m, ok := c.(*atlasschema.ModifyTable); ok {
				m.Changes = slices.DeleteFunc(m.Changes, func(c atlasschema.Change) bool {
					d, ok := c.(*atlasschema.DropIndex)
					return ok && slices.ContainsFunc(d.I.Parts, func(p *atlasschema.IndexPart) bool { return p.X != nil })
				})
				if len(m.Changes) == 0 {
					continue
				}
			}
			out = append(out, c)
		}
		return out, nil
	})
}

// keepPartitioning makes the Ent schema of a table that migrations/ made a
// partitioned table (audit_log, 20261202070000_audit_log_partitions.sql)
// what partitioning requires, before diffing: the same partition key, the
// current primary key (it includes the partition key), and not unique the
// unique indexes that the database has, under the same name, as plain
// indexes (a unique index of a partitioned table must include the
// partition key; a trigger enforces those instead). Ent cannot declare any
// of this, and none of it is drift.
func keepPartitioning(next entschema.Differ) entschema.Differ {
	return entschema.DiffFunc(func(current, desired *atlasschema.Schema) ([]atlasschema.Change, error) {
		for _, cur := range current.Tables {
			var p postgres.Partition
			if !hasAttr(cur.Attrs, &p) {
				continue
			}
			want, ok := desired.Table(cur.Name)
			if !ok {
				continue
			}
			want.Attrs = append(slices.DeleteFunc(want.Attrs, func(a atlasschema.Attr) bool {
				_, ok := a.(*postgres.Partition)
				return ok
			}), &p)
			if cur.PrimaryKey != nil && want.PrimaryKey != nil {
				pk := *want.PrimaryKey
				pk.Parts = nil
				for _, part := range cur.PrimaryKey.Parts {
					if part.C == nil {
						return nil, fmt.Errorf("migrate: diff: primary key of %s: an expression", cur.Name)
					}
					c, ok := want.Column(part.C.Name)
					if !ok {
						return nil, fmt.Errorf("migrate: diff: primary key of %s: no column %s in the Ent schema", cur.Name, part.C.Name)
					}
					pk.Parts = append(pk.Parts, &atlasschema.IndexPart{SeqNo: part.SeqNo, C: c, Desc: part.Desc})
				}
				want.PrimaryKey = &pk
			}
			for _, idx := range want.Indexes {
				if have, ok := cur.Index(idx.Name); ok && idx.Unique && !have.Unique {
					idx.Unique = false
				}
			}
		}
		return next.Diff(current, desired)
	})
}

func hasAttr(attrs []atlasschema.Attr, p *postgres.Partition) bool {
	for _, a := range attrs {
		if v, ok := a.(*postgres.Partition); ok {
			*p = *v
			return true
		}
	}
	return false
}

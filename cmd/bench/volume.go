package main

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/cursor"
	"github.com/platform/tenant-registry/internal/store"
)

// The audit volume fixtures: events spread over whole months, each month's
// partition filled before its indexes are built, and a month of one
// tenant's valid chain for the retention row.

// monthsBefore returns the n whole months (UTC) before now's, oldest first.
func monthsBefore(now time.Time, n int) []time.Time {
	cur := time.Date(now.UTC().Year(), now.UTC().Month(), 1, 0, 0, 0, 0, time.UTC)
	out := make([]time.Time, n)
	for i := range n {
		out[i] = cur.AddDate(0, i-n, 0)
	}
	return out
}

// partitioned reports whether audit_log is a partitioned table.
func partitioned(ctx context.Context, db *sql.DB) (bool, error) {
	var ok bool
	err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass('audit_log'))`).Scan(&ok)
	return ok, err
}

// fillMonth runs insert (an INSERT INTO {table} …, the placeholder
// replaced by the table's name) for the month that starts at month: into a new partition
// audit_log_YYYY_MM, filled before its indexes are built and then attached
// (audit_log_add_partition, as the service creates partitions), when
// audit_log is partitioned and the month has none yet; else into audit_log.
func fillMonth(ctx context.Context, db *sql.DB, month time.Time, insert string) error {
	isPart, err := partitioned(ctx, db)
	if err != nil {
		return err
	}
	part := "audit_log_" + month.Format("2006_01")
	var exists bool
	if err := db.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL", part).Scan(&exists); err != nil {
		return err
	}
	if !isPart || exists {
		_, err := db.ExecContext(ctx, strings.ReplaceAll(insert, "{table}", "audit_log"))
		return err
	}
	lo, hi := month.Format(time.RFC3339), month.AddDate(0, 1, 0).Format(time.RFC3339)
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Index builds of a whole month: give them memory.
	if _, err := conn.ExecContext(ctx, "SET maintenance_work_mem = '512MB'"); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, `SELECT audit_log_add_partition($1, $2, $3, $4, $5)`,
		part, month.Format("2006_01"),
		fmt.Sprintf("FOR VALUES FROM ('%s') TO ('%s')", lo, hi),
		fmt.Sprintf(`"created_at" >= '%s' AND "created_at" < '%s'`, lo, hi),
		strings.ReplaceAll(insert, "{table}", `"`+part+`"`))
	return err
}

// seedEventsMonths inserts n events of tenantID spread evenly over months
// (whole months, oldest first), month by month, and rareEvents events of
// rareActor and of rareTarget among them. Their hashes are not a valid
// chain: they are for list latency only.
func seedEventsMonths(ctx context.Context, db *sql.DB, tenantID string, n int64, months []time.Time) error {
	if _, err := uuid.Parse(tenantID); err != nil {
		return err
	}
	start := months[0]
	end := months[len(months)-1].AddDate(0, 1, 0)
	stepUs := end.Sub(start).Microseconds() / n
	if stepUs < 1 {
		return fmt.Errorf("%d events do not fit in %d months a microsecond apart", n, len(months))
	}
	ceilDiv := func(a, b int64) int64 { return (a + b - 1) / b }
	// Two months at a time: an INSERT … SELECT and an index build each
	// take one core.
	var (
		wg    sync.WaitGroup
		sem   = make(chan struct{}, 2)
		errMu sync.Mutex
		first error
	)
	for _, m := range months {
		lo := ceilDiv(m.Sub(start).Microseconds(), stepUs)
		hi := min(n, ceilDiv(m.AddDate(0, 1, 0).Sub(start).Microseconds(), stepUs))
		if lo >= hi {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := seedEventsMonth(ctx, db, tenantID, start, stepUs, m, lo, hi); err != nil {
				errMu.Lock()
				first = cmp.Or(first, err)
				errMu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	// rareEvents of one actor (rareActor) and as many of one target
	// (rareTarget), spread evenly over the others' time span.
	_, err := db.ExecContext(ctx, `
INSERT INTO audit_log (id, created_at, tenant_id, group_id, group_name, action, crud, actor_id, actor_name, actor_type,
  target_id, target_name, target_type, source_ip, description, is_failure, is_anonymous, fields, chain_seq, prev_hash, hash)
SELECT gen_random_uuid(), $6::timestamptz + (i * $2::bigint / (2 * $3::bigint + 1)) * $7::bigint * interval '1 microsecond', $1::uuid, $1::text, 'Bench',
  'document.viewed', 'r', CASE WHEN i % 2 = 1 THEN $4 ELSE 'user-1' END, 'User', 'user',
  CASE WHEN i % 2 = 0 THEN $5 ELSE 'doc-1' END, 'Doc', 'document',
  '203.0.113.7', 'bench event', false, false, '{"n":"1"}'::jsonb, 1000 + $2::bigint + i, '', md5(i::text) || md5(i::text)
FROM generate_series(1, 2 * $3::bigint) AS i`, tenantID, n, rareEvents, rareActor, rareTarget, start, stepUs)
	if err != nil {
		return fmt.Errorf("seed rare audit events: %w", err)
	}
	_, err = db.ExecContext(ctx, "ANALYZE audit_log")
	return err
}

// chainColumns are the columns seedChainMonth writes.
var chainColumns = []string{"id", "created_at", "tenant_id", "group_id", "group_name", "action", "crud",
	"actor_id", "actor_name", "actor_type", "target_id", "target_name", "target_type", "source_ip", "description",
	"is_failure", "is_anonymous", "fields", "chain_seq", "prev_hash", "hash", "hash_version",
	"appended_by_id", "appended_by_type", "appended_by_tenant"}

// seedChainMonth creates an active tenant by SQL and n events of its own
// valid hash chain (audit.Canonical, as the service hashes them) spread
// over the month that starts at month, copied (COPY) into a table of
// audit_log's shape and moved into that month's partition (fillMonth). It
// returns the tenant's id.
func seedChainMonth(ctx context.Context, db *sql.DB, runID string, month time.Time, n int) (string, error) {
	tenantID := uuid.NewString()
	if _, err := db.ExecContext(ctx, `INSERT INTO tenants (id, created_at, updated_at, slug, name, status, plan, provisioning_state)
VALUES ($1, $2, $2, $3, 'Retention', 'active', 'starter', 'provisioned')`, tenantID, month, "bench-"+runID+"-retention"); err != nil {
		return "", fmt.Errorf("seed retention tenant: %w", err)
	}
	stepUs := month.AddDate(0, 1, 0).Sub(month).Microseconds() / int64(n)
	fields, _ := json.Marshal(map[string]string{"n": "1"})
	prev, i := "", 0
	// next hashes the chain's next event, one at a time as COPY asks.
	next := func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		c := audit.Canonical{
			Version: audit.CanonicalVersion, ID: uuid.NewString(),
			CreatedAt: month.Add(time.Duration(int64(i)*stepUs) * time.Microsecond),
			Action:    "document.viewed", CRUD: "r", GroupID: tenantID, GroupName: "Retention",
			ActorID: fmt.Sprintf("user-%d", i%100), ActorName: "User", ActorType: "user",
			TargetID: fmt.Sprintf("doc-%d", i%1000), TargetName: "Doc", TargetType: "document",
			SourceIP: "203.0.113.7", Description: "bench event", Fields: map[string]string{"n": "1"},
			ChainSeq: int64(i + 1), AppendedByID: "service-account-bench", AppendedByType: "service",
		}
		h := c.Hash(prev)
		row := []any{c.ID, c.CreatedAt, tenantID, tenantID, c.GroupName, c.Action, c.CRUD,
			c.ActorID, c.ActorName, c.ActorType, c.TargetID, c.TargetName, c.TargetType, c.SourceIP, c.Description,
			false, false, string(fields), c.ChainSeq, prev, h, c.Version,
			c.AppendedByID, c.AppendedByType, c.AppendedByTenant}
		prev = h
		i++
		return row, nil
	}
	const staging = "bench_chain_staging"
	if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+staging+"; CREATE TABLE "+staging+" (LIKE audit_log INCLUDING DEFAULTS)"); err != nil {
		return "", err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return "", err
	}
	err = conn.Raw(func(dc any) error {
		_, err := dc.(*stdlib.Conn).Conn().CopyFrom(ctx, pgx.Identifier{staging}, chainColumns, pgx.CopyFromFunc(next))
		return err
	})
	conn.Close()
	if err != nil {
		return "", fmt.Errorf("copy the retention chain: %w", err)
	}
	cols := strings.Join(chainColumns, ", ")
	if err := fillMonth(ctx, db, month, "INSERT INTO {table} ("+cols+") SELECT "+cols+" FROM "+staging); err != nil {
		return "", fmt.Errorf("move the retention chain into its month: %w", err)
	}
	if _, err := db.ExecContext(ctx, "DROP TABLE "+staging+"; ANALYZE audit_log"); err != nil {
		return "", err
	}
	return tenantID, nil
}

// retentionService is the audit service as the server builds it, on the
// bench's database, with a clock after month's end and a retention of one
// day: its Sweep is the retention job's pass that drops month.
func retentionService(ctx context.Context, dbURL string, secret []byte, month time.Time) (*audit.Service, func(), error) {
	st, err := store.Open(ctx, dbURL, store.Options{MaxConns: 4})
	if err != nil {
		return nil, nil, err
	}
	pager, err := cursor.NewPager(secret)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	at := month.AddDate(0, 1, 1) // cutoff: the first of the next month
	clk := clock.Clock(func() time.Time { return at })
	rec, err := audit.NewRecorder(audit.RecorderDeps{Clock: clk, Postgres: st.Postgres()})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	svc, err := audit.NewService(audit.Deps{Client: st.Client, Recorder: rec, Clock: clk, Pager: pager, RetentionDays: 1})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return svc, func() { st.Close() }, nil
}

// retentionRow is the retention of a month: a digest of tenantID's chain
// (through the API, so that a digest covers the month), then one pass of
// the retention job (audit.Service.Sweep, a clock after the month's end),
// timed, and the chain verified (the API) from the checkpoint it left.
func retentionRow(ctx context.Context, db *sql.DB, api *apiClient, svc, dbURL string, secret []byte, tenantID string, month time.Time, n int) (string, error) {
	if err := api.call("POST", svc+"/v1/audit/digests", fmt.Sprintf(`{"tenant_id":%q}`, tenantID), nil); err != nil {
		return "", fmt.Errorf("digest of the retention chain: %w", err)
	}
	as, done, err := retentionService(ctx, dbURL, secret, month)
	if err != nil {
		return "", err
	}
	defer done()
	part := "audit_log_" + month.Format("2006_01")
	isPart, err := partitioned(ctx, db)
	if err != nil {
		return "", err
	}
	logf("retention of %s: one Sweep", month.Format("2006-01"))
	start := time.Now()
	res, err := as.Sweep(ctx)
	took := time.Since(start)
	if err != nil {
		return "", fmt.Errorf("retention sweep: %w", err)
	}
	var left int64
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM audit_log WHERE group_id = $1", tenantID).Scan(&left); err != nil {
		return "", err
	}
	var partLeft bool
	if err := db.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL", part).Scan(&partLeft); err != nil {
		return "", err
	}
	if left != 0 {
		return "", fmt.Errorf("retention sweep left %d of the month's %d events (result %+v)", left, n, res)
	}
	verified, err := verifyChain(api, svc, tenantID)
	if err != nil {
		return "", fmt.Errorf("after retention: %w", err)
	}
	how := "partition " + part + " dropped"
	switch {
	case !isPart:
		how = "rows deleted: audit_log is not partitioned"
	case partLeft:
		how = "rows deleted, partition " + part + " kept"
	}
	return fmt.Sprintf("Retention of a month (%d events of one tenant's chain, covered by a digest): %v for one pass (%s; the sweep answered partitions dropped %v, %d events gone); the chain verifies afterwards from its checkpoint (%d events checked)",
		n, took.Round(time.Millisecond), how, res.Dropped, res.Deleted, verified), nil
}

// seedEventsMonth inserts events lo … hi-1 of seedEventsMonths' series,
// those of month m (fillMonth).
func seedEventsMonth(ctx context.Context, db *sql.DB, tenantID string, start time.Time, stepUs int64, m time.Time, lo, hi int64) error {
	t := time.Now()
	insert := `INSERT INTO {table} (id, created_at, tenant_id, group_id, group_name, action, crud, actor_id, actor_name, actor_type,
  target_id, target_name, target_type, source_ip, description, is_failure, is_anonymous, fields, chain_seq, prev_hash, hash)
SELECT gen_random_uuid(), '` + start.Format(time.RFC3339) + `'::timestamptz + i * interval '` + fmt.Sprint(stepUs) + ` microseconds',
  '` + tenantID + `'::uuid, '` + tenantID + `', 'Bench',
  'document.viewed', 'r', 'user-' || (i % 100), 'User', 'user', 'doc-' || (i % 1000), 'Doc', 'document',
  '203.0.113.7', 'bench event', false, false, '{"n":"1"}'::jsonb, 1000 + i, '', md5(i::text) || md5(i::text)
FROM generate_series(` + fmt.Sprint(lo) + `, ` + fmt.Sprint(hi-1) + `) AS i`
	if err := fillMonth(ctx, db, m, insert); err != nil {
		return fmt.Errorf("seed audit events of %s: %w", m.Format("2006-01"), err)
	}
	logf("  %s: %d events in %v", m.Format("2006-01"), hi-lo, time.Since(t).Round(time.Millisecond))
	return nil
}

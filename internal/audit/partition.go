package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/auditdigest"
	"github.com/platform/tenant-registry/ent/auditlog"
	"github.com/platform/tenant-registry/internal/store"
)

// On PostgreSQL audit_log is partitioned by month of created_at (UTC):
// audit_log_YYYY_MM holds [the first of the month, the first of the next),
// audit_log_default whatever no month's partition holds
// (migrations/20261202070000_audit_log_partitions.sql). The service creates
// the partitions ahead (EnsurePartitions) and retention drops whole months
// (dropPartitions).

// PartitionsAhead is how many months after the current one
// EnsurePartitions keeps a partition for.
const PartitionsAhead = 2

// partitionLockTimeout bounds how long partition DDL waits for a lock, so
// that it never queues in front of appends for long (it is retried on the
// next run).
const partitionLockTimeout = "2s"

// EnsurePartitions creates, on PostgreSQL, the audit_log partitions of the
// current month and the PartitionsAhead following ones that do not exist
// yet, and the partitions of earlier months whose events sit in the default
// partition (moving them). It answers how many it created. When all exist
// (the usual case) it takes no lock an append could wait for: it reads the
// catalog and the (empty) default partition. A partition is created LIKE
// audit_log and then attached, which does not block appends to the other
// partitions (see the migration's note). Replicas running it at once are
// serialised in the database; the second creates nothing.
func (s *Service) EnsurePartitions(ctx context.Context) (int, error) {
	if !s.postgres() {
		return 0, nil
	}
	n := 0
	err := store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		if _, err := tx.ExecContext(ctx, "SET LOCAL lock_timeout = '"+partitionLockTimeout+"'"); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, "SELECT audit_log_ensure_partitions($1, $2)", PartitionsAhead, s.clock().UTC())
		if err != nil {
			return err
		}
		return scanOne(rows, &n)
	})
	if err != nil {
		return 0, fmt.Errorf("create audit_log partitions: %w", err)
	}
	return n, nil
}

// EnsurePartitionsJob is EnsurePartitions as a worker job: at start and
// hourly, what it created logged.
func (s *Service) EnsurePartitionsJob(ctx context.Context) error {
	n, err := s.EnsurePartitions(ctx)
	if n > 0 {
		s.opts.Logger.InfoContext(ctx, "audit_log partitions created", "partitions", n)
	}
	return err
}

func scanOne(rows *sql.Rows, dst any) error {
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dst); err != nil {
		return err
	}
	return rows.Close()
}

var monthPartition = regexp.MustCompile(`^audit_log_([0-9]{4})_([0-9]{2})$`)

// expiredPartitions answers the month partitions whose whole range is
// before cutoff, oldest first.
func (s *Service) expiredPartitions(ctx context.Context, cutoff time.Time) ([]string, error) {
	rows, err := s.client.QueryContext(ctx, `
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'audit_log'::regclass ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list audit_log partitions: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		m := monthPartition.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		start, err := time.Parse("2006-01", m[1]+"-"+m[2])
		if err != nil {
			continue
		}
		if !start.AddDate(0, 1, 0).After(cutoff) {
			out = append(out, name)
		}
	}
	return out, rows.Err()
}

// PartitionKept is a month partition past the cutoff that retention kept,
// and why (the first group found that holds it back).
type PartitionKept struct {
	Partition, GroupID, Reason string
}

// Reasons a partition is kept.
const (
	KeptStraddles   = "the group's chain segment in it does not start at its checkpoint or has events outside it"
	KeptNotDigested = "no digest covers the group's last event in it"
)

type partitionGroup struct {
	GroupID       string `json:"group_id"`
	Count         int64  `json:"count"`
	First, Last   int64
	lastHash      string
	lastCreatedAt time.Time
}

// dropPartitions drops, oldest first, each month partition whose range is
// before cutoff when, for every group with events in it, those events are
// the next segment of the group's chain (from its latest checkpoint, none
// of the group's events outside the partition), verify, and are covered by
// a digest (one whose last_seq is at least the group's last chain_seq in
// the partition). In one transaction per partition it writes each group's
// checkpoint and detaches and drops the partition. A partition some group
// holds back is kept (res.Kept); a group whose segment does not verify is
// reported in res.Broken too.
func (s *Service) dropPartitions(ctx context.Context, cutoff time.Time, res *SweepResult) error {
	parts, err := s.expiredPartitions(ctx, cutoff)
	if err != nil {
		return err
	}
	for _, p := range parts {
		kept, n, err := s.dropPartition(ctx, p)
		var broken brokenChainError
		switch {
		case errors.Is(err, errSweepBusy):
			res.Busy = true
			return nil
		case errors.As(err, &broken):
			res.Broken = append(res.Broken, kept.GroupID)
			res.Kept = append(res.Kept, kept)
		case err != nil:
			return err
		case kept.Reason != "":
			res.Kept = append(res.Kept, kept)
		default:
			res.Dropped = append(res.Dropped, p)
			res.Deleted += n
		}
	}
	return nil
}

// dropPartition is dropPartitions for one partition: what holds it back,
// or how many events went with it.
func (s *Service) dropPartition(ctx context.Context, part string) (kept PartitionKept, deleted int64, err error) {
	kept.Partition = part
	ident := pgx.Identifier{part}.Sanitize()
	err = store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		if err := retentionLock(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "SET LOCAL lock_timeout = '"+partitionLockTimeout+"'"); err != nil {
			return err
		}
		groups, err := partitionGroups(ctx, tx, ident)
		if err != nil {
			return err
		}
		client := tx.Client()
		for _, g := range groups {
			reason, err := s.partitionSegment(ctx, client, g)
			if err != nil {
				var broken brokenChainError
				if errors.As(err, &broken) {
					kept.GroupID, kept.Reason = g.GroupID, broken.Error()
				}
				return err
			}
			if reason != "" {
				kept.GroupID, kept.Reason = g.GroupID, reason
				return nil
			}
		}
		now := s.clock().UTC()
		creates := make([]*ent.AuditCheckpointCreate, len(groups))
		for i, g := range groups {
			creates[i] = tx.AuditCheckpoint.Create().
				SetGroupID(g.GroupID).
				SetChainSeq(g.Last).
				SetHash(g.lastHash).
				SetDeletedThrough(g.lastCreatedAt).
				SetEventsDeleted(g.Count).
				SetCreatedAt(now)
		}
		if len(creates) > 0 {
			if err := tx.AuditCheckpoint.CreateBulk(creates...).Exec(ctx); err != nil {
				return fmt.Errorf("write audit checkpoints: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, "ALTER TABLE audit_log DETACH PARTITION "+ident); err != nil {
			return fmt.Errorf("detach %s: %w", part, err)
		}
		// Detached and locked: what it holds now is what was checked.
		again, err := partitionGroups(ctx, tx, ident)
		if err != nil {
			return err
		}
		if len(again) != len(groups) {
			return fmt.Errorf("drop %s: %d groups in it after the check, %d before", part, len(again), len(groups))
		}
		for i := range again {
			if a, g := again[i], groups[i]; a.GroupID != g.GroupID || a.Count != g.Count || a.First != g.First || a.Last != g.Last {
				return fmt.Errorf("drop %s: group %s changed during the check", part, g.GroupID)
			}
			deleted += groups[i].Count
		}
		if _, err := tx.ExecContext(ctx, "DROP TABLE "+ident); err != nil {
			return fmt.Errorf("drop %s: %w", part, err)
		}
		return nil
	})
	if err != nil || kept.Reason != "" {
		deleted = 0
	}
	if err != nil && kept.Reason == "" {
		var broken brokenChainError
		if errors.As(err, &broken) {
			kept.Reason = broken.Error()
		}
	}
	return kept, deleted, err
}

// partitionGroups answers, by group, how many events the partition (a
// quoted identifier) holds and their first and last chain_seq.
func partitionGroups(ctx context.Context, tx *ent.Tx, ident string) ([]*partitionGroup, error) {
	rows, err := tx.QueryContext(ctx, "SELECT group_id, count(*), min(chain_seq), max(chain_seq) FROM "+ident+" GROUP BY group_id ORDER BY group_id")
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ident, err)
	}
	defer rows.Close()
	var out []*partitionGroup
	for rows.Next() {
		g := &partitionGroup{}
		if err := rows.Scan(&g.GroupID, &g.Count, &g.First, &g.Last); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// partitionSegment checks one group of a partition to drop: its events
// there are the whole next segment of its chain (from the latest
// checkpoint), verify, and a digest covers them. It answers why not, or
// sets g's last hash and time.
func (s *Service) partitionSegment(ctx context.Context, client *ent.Client, g *partitionGroup) (string, error) {
	cpSeq, cpHash, err := latestCheckpoint(ctx, client, g.GroupID)
	if err != nil {
		return "", err
	}
	// Every event of the group up to the partition's last is in it, and
	// they follow the checkpoint without a gap.
	total, err := client.AuditLog.Query().
		Where(auditlog.GroupID(g.GroupID), auditlog.ChainSeqLTE(g.Last)).
		Count(ctx)
	if err != nil {
		return "", fmt.Errorf("read audit chain: %w", err)
	}
	if g.First != cpSeq+1 || g.Last-g.First+1 != g.Count || int64(total) != g.Count {
		return KeptStraddles, nil
	}
	digest, err := client.AuditDigest.Query().
		Where(auditdigest.GroupID(g.GroupID)).
		Order(ent.Desc(auditdigest.FieldLastSeq)).
		Select(auditdigest.FieldLastSeq).
		First(ctx)
	switch {
	case ent.IsNotFound(err):
		return KeptNotDigested, nil
	case err != nil:
		return "", fmt.Errorf("read audit digests: %w", err)
	case digest.LastSeq < g.Last:
		return KeptNotDigested, nil
	}
	link := chainLink{next: cpSeq + 1, prevHash: cpHash}
	for link.next <= g.Last {
		rows, err := chainPage(ctx, client, g.GroupID, link.next-1, min(VerifyBatch, int(g.Last-link.next+1)))
		if err != nil {
			return "", err
		}
		if len(rows) == 0 {
			return KeptStraddles, nil
		}
		for _, r := range rows {
			if reason := link.check(r); reason != "" {
				return "", brokenChainError{id: r.ID.String(), reason: reason}
			}
			g.lastHash, g.lastCreatedAt = r.Hash, r.CreatedAt
		}
	}
	return "", nil
}

// retentionLock takes the retention sweep's try-lock (one replica sweeps
// at a time) or answers errSweepBusy.
func retentionLock(ctx context.Context, tx *ent.Tx) error {
	var got bool
	rows, err := tx.QueryContext(ctx, "SELECT pg_try_advisory_xact_lock(hashtextextended('audit:retention', 7351))")
	if err != nil {
		return fmt.Errorf("retention lock: %w", err)
	}
	if err := scanOne(rows, &got); err != nil {
		return fmt.Errorf("retention lock: %w", err)
	}
	if !got {
		return errSweepBusy
	}
	return nil
}

package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/auditlog"
	"github.com/platform/tenant-registry/internal/store"
)

// SweepBatch is how many events the retention sweeper deletes per
// transaction, so it never holds a chain's lock (or SQLite's single
// writer) for long.
const SweepBatch = 1000

// SweepResult is what one retention pass did.
type SweepResult struct {
	Cutoff  time.Time
	Groups  int   // groups whose old events were looked at
	Deleted int64 // events deleted
	// Broken lists groups left alone because their old segment does not
	// verify: retention never launders a tampered chain into a checkpoint.
	Broken []string
	// Busy is true when another replica was sweeping, so this pass did
	// nothing.
	Busy bool
	// Dropped are the month partitions of audit_log dropped (PostgreSQL),
	// Kept those past the cutoff kept, and why.
	Dropped []string
	Kept    []PartitionKept
}

var errSweepBusy = errors.New("another replica is sweeping")

// EnforceRetention is the retention job (see internal/worker): Sweep, with
// what it deleted, and the chains that do not verify (whose old events are
// kept), logged.
func (s *Service) EnforceRetention(ctx context.Context) error {
	res, err := s.Sweep(ctx)
	log := s.opts.Logger
	if len(res.Broken) > 0 {
		log.ErrorContext(ctx, "audit retention: chains do not verify, their old events are kept", "groups", res.Broken)
	}
	for _, k := range res.Kept {
		log.WarnContext(ctx, "audit retention: partition past the cutoff kept", "partition", k.Partition, "group", k.GroupID, "reason", k.Reason)
	}
	if res.Deleted > 0 {
		log.InfoContext(ctx, "audit retention sweep", "deleted", res.Deleted, "groups", res.Groups, "partitions_dropped", res.Dropped, "cutoff", res.Cutoff)
	}
	return err
}

// Sweep deletes, per group, the oldest whole segment of the chain whose
// events are all older than the retention cutoff (now − RetentionDays), in
// chain order, and records a checkpoint (the last deleted event's
// chain_seq and hash) in the same transaction, so VerifyChain stays able
// to check what is left and new events keep chaining on. Each segment is
// verified before it is deleted. On PostgreSQL only one replica sweeps at a
// time (a try-lock: the others skip their pass) and each group's chain lock
// is held, so appends and deletions of one chain never interleave.
//
// On PostgreSQL, where audit_log is partitioned by month, retention drops
// whole month partitions instead (dropPartitions: a month goes once its
// last day is past the cutoff, a digest covers it and it verifies), and the
// row sweep is left to the groups with expired events in the default
// partition (events no month's partition held when they were written).
func (s *Service) Sweep(ctx context.Context) (SweepResult, error) {
	if s.opts.RetentionDays <= 0 {
		return SweepResult{}, nil
	}
	res := SweepResult{Cutoff: s.clock().UTC().Add(-time.Duration(s.opts.RetentionDays) * 24 * time.Hour)}
	var groups []string
	var err error
	if s.postgres() {
		if err := s.dropPartitions(ctx, res.Cutoff, &res); err != nil || res.Busy {
			return res, err
		}
		groups, err = s.defaultPartitionGroups(ctx, res.Cutoff)
	} else {
		groups, err = s.client.AuditLog.Query().
			Where(auditlog.CreatedAtLT(res.Cutoff)).
			Unique(true).
			Select(auditlog.FieldGroupID).
			Strings(ctx)
	}
	if err != nil {
		return res, fmt.Errorf("find groups with expired audit events: %w", err)
	}
	for _, g := range groups {
		res.Groups++
		for {
			n, err := s.sweepSegment(ctx, g, res.Cutoff)
			res.Deleted += int64(n)
			var broken brokenChainError
			switch {
			case errors.Is(err, errSweepBusy):
				res.Busy = true
				return res, nil
			case errors.As(err, &broken):
				res.Broken = append(res.Broken, g)
			case err != nil:
				return res, err
			}
			if err != nil || n < SweepBatch {
				break
			}
		}
	}
	return res, nil
}

type brokenChainError struct{ id, reason string }

func (e brokenChainError) Error() string { return "audit chain broken at " + e.id + ": " + e.reason }

// sweepSegment deletes up to SweepBatch expired events at the start of a
// group's chain and returns how many it deleted.
func (s *Service) sweepSegment(ctx context.Context, groupID string, cutoff time.Time) (int, error) {
	deleted := 0
	err := store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		if s.postgres() {
			if err := retentionLock(ctx, tx); err != nil {
				return err
			}
			if err := lockChain(ctx, tx, groupID); err != nil {
				return err
			}
		}
		client := tx.Client()
		cpSeq, cpHash, err := latestCheckpoint(ctx, client, groupID)
		if err != nil {
			return err
		}
		rows, err := chainPage(ctx, client, groupID, cpSeq, SweepBatch)
		if err != nil {
			return err
		}
		link := chainLink{next: cpSeq + 1, prevHash: cpHash}
		var last *ent.AuditLog
		n := 0
		for _, r := range rows {
			if !r.CreatedAt.Before(cutoff) {
				break
			}
			if reason := link.check(r); reason != "" {
				return brokenChainError{id: r.ID.String(), reason: reason}
			}
			last = r
			n++
		}
		if last == nil {
			return nil
		}
		got, err := tx.AuditLog.Delete().
			Where(auditlog.GroupID(groupID), auditlog.ChainSeqLTE(last.ChainSeq)).
			Exec(ctx)
		if err != nil {
			return fmt.Errorf("delete expired audit events: %w", err)
		}
		if got != n {
			// Rows below the checkpoint, or ones we did not verify: refuse.
			return fmt.Errorf("delete expired audit events of group %q: deleted %d, want %d", groupID, got, n)
		}
		if err := tx.AuditCheckpoint.Create().
			SetGroupID(groupID).
			SetChainSeq(last.ChainSeq).
			SetHash(last.Hash).
			SetDeletedThrough(last.CreatedAt).
			SetEventsDeleted(int64(n)).
			SetCreatedAt(s.clock().UTC()).
			Exec(ctx); err != nil {
			return fmt.Errorf("write audit checkpoint: %w", err)
		}
		deleted = n
		return nil
	})
	return deleted, err
}

// defaultPartitionGroups answers the groups with events before cutoff in
// audit_log_default (PostgreSQL).
func (s *Service) defaultPartitionGroups(ctx context.Context, cutoff time.Time) ([]string, error) {
	rows, err := s.client.QueryContext(ctx, "SELECT DISTINCT group_id FROM audit_log_default WHERE created_at < $1 ORDER BY 1", cutoff)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

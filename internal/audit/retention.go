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
	if res.Deleted > 0 {
		log.InfoContext(ctx, "audit retention sweep", "deleted", res.Deleted, "groups", res.Groups, "cutoff", res.Cutoff)
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
func (s *Service) Sweep(ctx context.Context) (SweepResult, error) {
	if s.opts.RetentionDays <= 0 {
		return SweepResult{}, nil
	}
	res := SweepResult{Cutoff: s.clock().UTC().Add(-time.Duration(s.opts.RetentionDays) * 24 * time.Hour)}
	groups, err := s.client.AuditLog.Query().
		Where(auditlog.CreatedAtLT(res.Cutoff)).
		Unique(true).
		Select(auditlog.FieldGroupID).
		Strings(ctx)
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
			var got bool
			rows, err := tx.QueryContext(ctx, "SELECT pg_try_advisory_xact_lock(hashtextextended('audit:retention', 7351))")
			if err != nil {
				return fmt.Errorf("retention lock: %w", err)
			}
			if rows.Next() {
				err = rows.Scan(&got)
			}
			if cerr := rows.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("retention lock: %w", err)
			}
			if !got {
				return errSweepBusy
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

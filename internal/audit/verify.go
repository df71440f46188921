package audit

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/auditcheckpoint"
	"github.com/platform/tenant-registry/ent/auditlog"
	"github.com/platform/tenant-registry/ent/tenant"
	"github.com/platform/tenant-registry/internal/errs"
)

// VerifyBatch is how many events VerifyChain reads per query.
const VerifyBatch = 1000

// VerifyResult is the outcome of walking a tenant's chain.
type VerifyResult struct {
	// TenantID is the tenant (group) verified, in canonical form.
	TenantID      string
	OK            bool
	EventsChecked int64
	// Empty is true when the chain holds no events at all (OK, 0 checked):
	// nothing was there to verify. A chain with events never answers OK
	// with 0 checked.
	Empty bool
	// FirstBrokenEventID and Reason name the first broken link when !OK.
	FirstBrokenEventID string
	Reason             string
	// CheckpointSeq is the chain_seq of the retention checkpoint the walk
	// started after; 0 when it started at the chain's beginning.
	CheckpointSeq int64
}

// Reasons VerifyChain reports.
const (
	ReasonGap          = "events are missing before this one (deleted)"
	ReasonPrevHash     = "prev_hash does not match the previous event's hash (an event before this one was deleted, replaced or inserted)"
	ReasonHashMismatch = "hash does not match the event's content (the event was changed after it was written)"
	ReasonCheckpoint   = "event at or below the retention checkpoint (inserted into the deleted segment after retention)"
	ReasonMoved        = "tenant_id is not the event's group (the event was moved to another tenant)"
)

// VerifyChain walks a tenant's hash chain in chain_seq order, in batches,
// starting after the latest retention checkpoint (whose hash stands in for
// the deleted segment), and recomputes every hash from CanonicalOf(row) and
// the previous event's hash. Every row of the group is looked at: the
// chain columns are NOT NULL and list, export and verify all read group_id,
// so nothing is listed or exported that verify does not check. It reports
// the first broken link:
//
//   - an event changed in place (the database refuses UPDATE; a copy
//     deleted and inserted again changed) is reported itself, with
//     ReasonHashMismatch;
//   - a deleted event is reported as the event right AFTER the gap — the
//     first event whose predecessor is missing — with ReasonGap (its
//     chain_seq skips) or ReasonPrevHash (its prev_hash names an event that
//     is not there);
//   - an event inserted beside the chain is reported with ReasonGap,
//     ReasonPrevHash or ReasonHashMismatch, or ReasonCheckpoint when it
//     sits in the segment retention deleted;
//   - an event whose tenant_id is another tenant's, ReasonMoved (the
//     database refuses that too).
//
// A chain cannot tell that its newest events were deleted (nothing follows
// them); every other deletion, edit or insertion is detected. The tenant
// need not exist any more: events outlive their tenant. tenantID may be
// any spelling of the tenant's id.
func (s *Service) VerifyChain(ctx context.Context, tenantID string) (VerifyResult, error) {
	groupID, err := scope(ctx, tenantID, false)
	if err != nil {
		return VerifyResult{}, err
	}
	cpSeq, cpHash, err := latestCheckpoint(ctx, s.client, groupID)
	if err != nil {
		return VerifyResult{}, err
	}
	res := VerifyResult{TenantID: groupID, OK: true, CheckpointSeq: cpSeq}
	if cpSeq > 0 {
		// Nothing may remain of the segment retention deleted.
		stray, err := s.client.AuditLog.Query().
			Where(auditlog.GroupID(groupID), auditlog.ChainSeqLTE(cpSeq)).
			Order(ent.Asc(auditlog.FieldChainSeq)).
			First(ctx)
		switch {
		case err == nil:
			res.OK, res.FirstBrokenEventID, res.Reason = false, stray.ID.String(), ReasonCheckpoint
			return res, nil
		case !ent.IsNotFound(err):
			return VerifyResult{}, fmt.Errorf("read audit chain: %w", err)
		}
	}
	link := chainLink{next: cpSeq + 1, prevHash: cpHash}
	for {
		rows, err := chainPage(ctx, s.client, groupID, link.next-1, VerifyBatch)
		if err != nil {
			return VerifyResult{}, err
		}
		for _, r := range rows {
			if reason := link.check(r); reason != "" {
				res.OK, res.FirstBrokenEventID, res.Reason = false, r.ID.String(), reason
				return res, nil
			}
			res.EventsChecked++
		}
		if len(rows) < VerifyBatch {
			break
		}
	}
	if res.EventsChecked > 0 {
		return res, nil
	}
	// An empty chain: a tenant without events yet (or whose events
	// retention deleted). A deleted tenant's chain is still verifiable:
	// its events keep their group; with none, the id names nothing.
	res.Empty = true
	if cpSeq == 0 {
		exists, err := s.client.Tenant.Query().Where(tenant.ID(uuid.MustParse(groupID))).Exist(ctx)
		if err != nil {
			return VerifyResult{}, fmt.Errorf("read tenant: %w", err)
		}
		if !exists {
			return VerifyResult{}, errs.Errorf(errs.NotFound, "tenant not found")
		}
	}
	return res, nil
}

// chainLink is the position of a chain walk: the chain_seq the next event
// must have and the hash it must chain to.
type chainLink struct {
	next     int64
	prevHash string
}

// check returns why row does not continue the chain at l ("" when it does)
// and, when it does, advances l past it.
func (l *chainLink) check(row *ent.AuditLog) string {
	seq := row.ChainSeq
	if seq != l.next {
		return fmt.Sprintf("%s: chain_seq %d, want %d", ReasonGap, seq, l.next)
	}
	if row.PrevHash != l.prevHash {
		return ReasonPrevHash
	}
	if row.TenantID != nil && row.TenantID.String() != row.GroupID {
		return ReasonMoved
	}
	if CanonicalOf(row).Hash(l.prevHash) != row.Hash {
		return ReasonHashMismatch
	}
	l.next, l.prevHash = seq+1, row.Hash
	return ""
}

// chainPage reads up to n events of a group after chain_seq after, in chain
// order (the (group_id, chain_seq) index).
func chainPage(ctx context.Context, client *ent.Client, groupID string, after int64, n int) ([]*ent.AuditLog, error) {
	rows, err := client.AuditLog.Query().
		Where(auditlog.GroupID(groupID), auditlog.ChainSeqGT(after)).
		Order(ent.Asc(auditlog.FieldChainSeq)).
		Limit(n).
		All(ctx)
	if err != nil {
		return nil, fmt.Errorf("read audit chain: %w", err)
	}
	return rows, nil
}

// latestCheckpoint returns the chain_seq and hash of the last event the
// retention sweeper deleted from a group; 0 and "" when it deleted none.
func latestCheckpoint(ctx context.Context, client *ent.Client, groupID string) (int64, string, error) {
	cp, err := client.AuditCheckpoint.Query().
		Where(auditcheckpoint.GroupID(groupID)).
		Order(ent.Desc(auditcheckpoint.FieldChainSeq)).
		First(ctx)
	if ent.IsNotFound(err) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("read audit checkpoint: %w", err)
	}
	return cp.ChainSeq, cp.Hash, nil
}

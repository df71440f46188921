package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/auditlog"
)

// ExportBatch is how many events Export reads per query: what sits in
// memory at once, however long the range.
const ExportBatch = 500

// ExportInput selects a tenant's events in a time range.
type ExportInput struct {
	TenantID string
	// CreatedAfter is inclusive, CreatedBefore exclusive; zero: unbounded.
	CreatedAfter, CreatedBefore time.Time
}

// Export calls emit with each of a tenant's events in the range exactly
// once, in chain order (chain_seq, oldest first), reading keyset pages of
// ExportBatch on chain_seq — no transaction is held open between pages, so
// an export of a year neither sits in memory nor pins the database. A
// chain's events commit in chain_seq order (appends of one chain are
// serialised), so an event committed while an export runs lands after its
// cursor, never behind it: no committed event is skipped. It stops at the
// first error of emit and returns it.
func (s *Service) Export(ctx context.Context, in ExportInput, emit func(*Event) error) error {
	tenantID, err := scope(ctx, in.TenantID, false)
	if err != nil {
		return err
	}
	in.TenantID = tenantID
	where, err := listFilters(ListInput{TenantID: in.TenantID, CreatedAfter: in.CreatedAfter, CreatedBefore: in.CreatedBefore})
	if err != nil {
		return err
	}
	// With a time range, the chain segment to walk is bounded first, from
	// the (group_id, created_at, id) index: the lowest chain_seq in the
	// range (and the highest, when the range ends), so a narrow range of a
	// long chain does not walk the chain from its start. created_at is not
	// strictly monotonic along the chain (replicas' clocks), hence min and
	// max rather than the first and last by time; rows between them outside
	// the range are filtered out.
	after, through := int64(0), int64(0)
	if !in.CreatedAfter.IsZero() || !in.CreatedBefore.IsZero() {
		var bounds []struct {
			Min *int64 `json:"min"`
			Max *int64 `json:"max"`
		}
		if err := s.client.AuditLog.Query().Where(where...).
			Aggregate(ent.As(ent.Min(auditlog.FieldChainSeq), "min"), ent.As(ent.Max(auditlog.FieldChainSeq), "max")).
			Scan(ctx, &bounds); err != nil {
			return fmt.Errorf("export audit events: %w", err)
		}
		if len(bounds) == 0 || bounds[0].Min == nil {
			return nil // nothing in the range
		}
		after = *bounds[0].Min - 1
		if !in.CreatedBefore.IsZero() {
			through = *bounds[0].Max
		}
	}
	for {
		q := s.client.AuditLog.Query().
			Where(where...).
			Where(auditlog.ChainSeqGT(after))
		if through > 0 {
			q.Where(auditlog.ChainSeqLTE(through))
		}
		rows, err := q.
			Order(ent.Asc(auditlog.FieldChainSeq)).
			Limit(ExportBatch).
			All(ctx)
		if err != nil {
			return fmt.Errorf("export audit events: %w", err)
		}
		for _, r := range rows {
			if err := emit(eventOf(r)); err != nil {
				return err
			}
		}
		if len(rows) < ExportBatch {
			return nil
		}
		after = rows[len(rows)-1].ChainSeq
	}
}

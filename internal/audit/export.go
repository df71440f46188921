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
func (s *Service) Export(ctx context.Context, in ExportInput, emit func(*ent.AuditLog) error) error {
	tenantID, err := scope(ctx, in.TenantID, false)
	if err != nil {
		return err
	}
	in.TenantID = tenantID
	where, err := listFilters(ListInput{TenantID: in.TenantID, CreatedAfter: in.CreatedAfter, CreatedBefore: in.CreatedBefore})
	if err != nil {
		return err
	}
	after := int64(0)
	for {
		rows, err := s.client.AuditLog.Query().
			Where(where...).
			Where(auditlog.ChainSeqGT(after)).
			Order(ent.Asc(auditlog.FieldChainSeq)).
			Limit(ExportBatch).
			All(ctx)
		if err != nil {
			return fmt.Errorf("export audit events: %w", err)
		}
		for _, r := range rows {
			if err := emit(r); err != nil {
				return err
			}
		}
		if len(rows) < ExportBatch {
			return nil
		}
		after = rows[len(rows)-1].ChainSeq
	}
}

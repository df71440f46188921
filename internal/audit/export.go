package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

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

// Export calls emit with each of a tenant's events in the range, oldest
// first, exactly once, reading keyset pages of ExportBatch on (created_at,
// id) — no transaction is held open between pages, so an export of a year
// neither sits in memory nor pins the database. It stops at the first
// error of emit and returns it.
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
	var (
		after  bool
		lastT  time.Time
		lastID uuid.UUID
	)
	for {
		q := s.client.AuditLog.Query().Where(where...)
		if after {
			q.Where(keyset(">", lastT, lastID))
		}
		rows, err := q.Order(ent.Asc(auditlog.FieldCreatedAt), ent.Asc(auditlog.FieldID)).
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
		last := rows[len(rows)-1]
		after, lastT, lastID = true, last.CreatedAt, last.ID
	}
}

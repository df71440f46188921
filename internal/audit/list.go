package audit

import (
	"context"
	"fmt"
	"strings"
	"time"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/auditlog"
	"github.com/platform/tenant-registry/ent/predicate"
	"github.com/platform/tenant-registry/internal/cursor"
	"github.com/platform/tenant-registry/internal/registry"
)

// ListInput filters and pages ListEvents. Empty fields do not filter.
type ListInput struct {
	TenantID string
	// Action is an exact action, or a prefix ending in "*" ("tenant.*").
	Action     string
	ActorID    string
	TargetID   string
	TargetType string
	CRUD       string
	// CreatedAfter is inclusive, CreatedBefore exclusive; zero: unbounded.
	CreatedAfter, CreatedBefore time.Time
	PageSize                    int32
	Cursor                      string
}

const listKind = "audit_events"

// List pages through events newest first. It is keyset pagination on
// (created_at DESC, id DESC): each page seeks to the cursor's position with
// a row comparison, (created_at, id) < (t, id), which PostgreSQL answers
// from the (group_id, created_at, id) index (or (created_at, id) without a
// tenant filter), so a deep page costs what the first one costs. The
// tenant filter is on group_id, the column export and verify read.
//
// A tenant caller sees its own tenant's events only (see scope).
func (s *Service) List(ctx context.Context, in ListInput) (events []*ent.AuditLog, next string, err error) {
	size, err := cursor.PageSize(in.PageSize)
	if err != nil {
		return nil, "", err
	}
	tenantID, err := scope(ctx, in.TenantID, true)
	if err != nil {
		return nil, "", err
	}
	in.TenantID = tenantID
	where, err := listFilters(in)
	if err != nil {
		return nil, "", err
	}
	scope := strings.Join([]string{in.TenantID, in.Action, in.ActorID, in.TargetID, in.TargetType, in.CRUD,
		timeKey(in.CreatedAfter), timeKey(in.CreatedBefore)}, "\x00")
	if in.Cursor != "" {
		pos, id, err := decodeCursor(scope, in.Cursor)
		if err != nil {
			return nil, "", err
		}
		where = append(where, keyset("<", pos.Time, id))
	}
	rows, err := s.client.AuditLog.Query().
		Where(where...).
		Order(ent.Desc(auditlog.FieldCreatedAt), ent.Desc(auditlog.FieldID)).
		Limit(size + 1).
		All(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("list audit events: %w", err)
	}
	if len(rows) > size {
		rows = rows[:size]
		last := rows[size-1]
		next = cursor.Encode(listKind, scope, cursor.Position{Time: last.CreatedAt, ID: last.ID.String()})
	}
	return rows, next, nil
}

func decodeCursor(scope, c string) (cursor.Position, uuid.UUID, error) {
	pos, err := cursor.Decode(listKind, scope, c)
	if err != nil {
		return pos, uuid.Nil, err
	}
	id, err := uuid.Parse(pos.ID)
	if err != nil {
		return pos, uuid.Nil, registry.Errorf(registry.Invalid, "cursor: not a cursor of this list")
	}
	return pos, id, nil
}

func timeKey(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// listFilters turns the filters into predicates, validating each.
func listFilters(in ListInput) ([]predicate.AuditLog, error) {
	var where []predicate.AuditLog
	if in.TenantID != "" {
		// The group, as export and verify read it: a purged tenant's
		// events (tenant_id NULL) are still its own.
		id, err := registry.ParseTenantID("tenant_id", in.TenantID)
		if err != nil {
			return nil, err
		}
		where = append(where, auditlog.GroupID(id.String()))
	}
	if a := in.Action; a != "" {
		if prefix, ok := strings.CutSuffix(a, "*"); ok {
			if prefix == "" || len(prefix) > MaxActionLen || strings.TrimLeft(prefix, "abcdefghijklmnopqrstuvwxyz0123456789_-.") != "" {
				return nil, registry.Errorf(registry.Invalid, "action: a prefix filter is lower-case a-z 0-9 _ - . followed by one * (e.g. tenant.*)")
			}
			where = append(where, auditlog.ActionHasPrefix(prefix))
		} else {
			if err := ValidateAction(a); err != nil {
				return nil, err
			}
			where = append(where, auditlog.Action(a))
		}
	}
	for _, f := range []struct {
		name, value string
		max         int
		pred        func(string) predicate.AuditLog
	}{
		{"actor_id", in.ActorID, MaxIDLen, auditlog.ActorID},
		{"target_id", in.TargetID, MaxIDLen, auditlog.TargetID},
		{"target_type", in.TargetType, MaxTypeLen, auditlog.TargetType},
	} {
		if f.value == "" {
			continue
		}
		if err := checkText(f.name, f.value, f.max, false); err != nil {
			return nil, err
		}
		where = append(where, f.pred(f.value))
	}
	switch in.CRUD {
	case "":
	case "c", "r", "u", "d":
		where = append(where, auditlog.Crud(in.CRUD))
	default:
		return nil, registry.Errorf(registry.Invalid, "crud: must be c, r, u or d")
	}
	if !in.CreatedAfter.IsZero() {
		where = append(where, auditlog.CreatedAtGTE(in.CreatedAfter.UTC()))
	}
	if !in.CreatedBefore.IsZero() {
		if !in.CreatedAfter.IsZero() && !in.CreatedBefore.After(in.CreatedAfter) {
			return nil, registry.Errorf(registry.Invalid, "created_before: must be later than created_after")
		}
		where = append(where, auditlog.CreatedAtLT(in.CreatedBefore.UTC()))
	}
	return where, nil
}

// keyset is the row comparison (created_at, id) op (t, id): "<" seeks past
// a position newest first, ">" oldest first. Unlike the equivalent OR of
// two comparisons, PostgreSQL uses a row comparison as an index condition:
// with group_id = X it seeks (group_id, created_at, id) straight to the
// position. (Comparing (group_id, created_at, id) instead was measured
// worse: PostgreSQL then bounds the scan by the equality alone and walks
// the tenant's newer events, so the cost grows with the page's depth.)
func keyset(op string, t time.Time, id uuid.UUID) predicate.AuditLog {
	return func(s *entsql.Selector) {
		s.Where(entsql.P(func(b *entsql.Builder) {
			b.WriteString("(").WriteString(s.C(auditlog.FieldCreatedAt)).WriteString(", ").WriteString(s.C(auditlog.FieldID)).
				WriteString(") " + op + " (")
			b.Arg(t.UTC())
			b.Comma()
			b.Arg(id)
			b.WriteString(")")
		}))
	}
}

package audit

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/auditlog"
	"github.com/platform/tenant-registry/ent/predicate"
	"github.com/platform/tenant-registry/internal/cursor"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/ids"
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
func (s *Service) List(ctx context.Context, in ListInput) (events []*Event, next string, err error) {
	tenantID, err := scope(ctx, in.TenantID, true)
	if err != nil {
		return nil, "", err
	}
	in.TenantID = tenantID
	where, err := listFilters(in)
	if err != nil {
		return nil, "", err
	}
	page := cursor.Request{Kind: listKind, Cursor: in.Cursor, PageSize: in.PageSize, Scope: []string{
		in.TenantID, in.Action, in.ActorID, in.TargetID, in.TargetType, in.CRUD, timeKey(in.CreatedAfter), timeKey(in.CreatedBefore),
	}}
	size, after, err := s.pager.Start(page)
	if err != nil {
		return nil, "", err
	}
	if after != nil {
		where = append(where, cursor.Before(auditlog.FieldCreatedAt, auditlog.FieldID, *after))
	}
	rows, err := s.client.AuditLog.Query().
		Where(where...).
		Order(ent.Desc(auditlog.FieldCreatedAt), ent.Desc(auditlog.FieldID)).
		Limit(size + 1).
		All(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("list audit events: %w", err)
	}
	events, next = cursor.Next(s.pager, page, rows, size, func(e *ent.AuditLog) cursor.Position {
		return cursor.Position{Time: e.CreatedAt, ID: e.ID}
	}, eventOf)
	return events, next, nil
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
		id, err := ids.ParseTenant("tenant_id", in.TenantID)
		if err != nil {
			return nil, err
		}
		where = append(where, auditlog.GroupID(id.String()))
	}
	if a := in.Action; a != "" {
		if prefix, ok := strings.CutSuffix(a, "*"); ok {
			if prefix == "" || len(prefix) > MaxActionLen || strings.TrimLeft(prefix, "abcdefghijklmnopqrstuvwxyz0123456789_-.") != "" {
				return nil, errs.Errorf(errs.Invalid, "action: a prefix filter is lower-case a-z 0-9 _ - . followed by one * (e.g. tenant.*)")
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
		return nil, errs.Errorf(errs.Invalid, "crud: must be c, r, u or d")
	}
	if !in.CreatedAfter.IsZero() {
		where = append(where, auditlog.CreatedAtGTE(in.CreatedAfter.UTC()))
	}
	if !in.CreatedBefore.IsZero() {
		if !in.CreatedAfter.IsZero() && !in.CreatedBefore.After(in.CreatedAfter) {
			return nil, errs.Errorf(errs.Invalid, "created_before: must be later than created_after")
		}
		where = append(where, auditlog.CreatedAtLT(in.CreatedBefore.UTC()))
	}
	return where, nil
}

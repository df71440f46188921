package tenant

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/predicate"
	enttenant "github.com/platform/tenant-registry/ent/tenant"
	"github.com/platform/tenant-registry/internal/cursor"
	"github.com/platform/tenant-registry/internal/entitlement"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/principal"
)

// ListInput filters and pages ListTenants.
type ListInput struct {
	PageSize int32
	Cursor   string
	Status   string
	Plan     string
	Query    string // prefix of the slug or the name
}

// List pages through tenants newest first, keyset on (created_at, id).
func (s *Service) List(ctx context.Context, in ListInput) (tenants []*Tenant, next string, err error) {
	// Every tenant: for callers who see every tenant only.
	if p, err := principal.Require(ctx); err != nil {
		return nil, "", err
	} else if p.TenantScoped() {
		return nil, "", errs.Errorf(errs.Forbidden, "permission denied")
	}
	page := cursor.Request{Kind: "tenants", Scope: []string{in.Status, in.Plan, in.Query}, Cursor: in.Cursor, PageSize: in.PageSize}
	size, after, err := s.pager.Start(page)
	if err != nil {
		return nil, "", err
	}
	var where []predicate.Tenant
	if in.Status != "" {
		st := enttenant.Status(in.Status)
		if enttenant.StatusValidator(st) != nil {
			return nil, "", errs.Errorf(errs.Invalid, "status: must be one of trial, active, frozen")
		}
		where = append(where, enttenant.StatusEQ(st))
	}
	if in.Plan != "" {
		p, err := parsePlan(in.Plan)
		if err != nil {
			return nil, "", err
		}
		where = append(where, enttenant.PlanEQ(p))
	}
	if q := strings.TrimSpace(in.Query); q != "" {
		if utf8.RuneCountInString(q) > 200 {
			return nil, "", errs.Errorf(errs.Invalid, "query: must be at most 200 characters")
		}
		where = append(where, queryPrefix(q))
	}
	if after != nil {
		where = append(where, cursor.Before(enttenant.FieldCreatedAt, enttenant.FieldID, *after))
	}
	now := s.clock()
	rows, err := s.client.Tenant.Query().
		Where(where...).
		Order(ent.Desc(enttenant.FieldCreatedAt), ent.Desc(enttenant.FieldID)).
		Limit(size + 1).
		WithProducts(func(q *ent.TenantProductQuery) { q.Where(entitlement.Current(now)) }).
		All(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("list tenants: %w", err)
	}
	tenants, next = cursor.Next(s.pager, page, rows, size, func(t *ent.Tenant) cursor.Position {
		return cursor.Position{Time: t.CreatedAt, ID: t.ID}
	}, view)
	return tenants, next, nil
}

// likeEscaper makes a LIKE pattern match its text literally (ESCAPE '\').
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// queryPrefix is ListTenants' query filter: the lower-cased q is a prefix of
// the slug, or q is a case-insensitive prefix of the name; % and _ in q are
// literal. On PostgreSQL both sides are a range on an index whatever the
// collation: slug LIKE on tenant_slug_prefix (varchar_pattern_ops) and
// lower(name) LIKE on tenant_name_prefix (lower(name) text_pattern_ops),
// combined by a BitmapOr (the patterns are bound per call, QueryExecMode
// "exec", so the planner sees their fixed prefix). SQLite's LIKE is already
// case-insensitive (ASCII) and the embedded store has no such indexes.
func queryPrefix(q string) predicate.Tenant {
	slug := likeEscaper.Replace(strings.ToLower(q)) + "%"
	name := likeEscaper.Replace(q) + "%"
	return func(s *entsql.Selector) {
		s.Where(entsql.P(func(b *entsql.Builder) {
			b.WriteString("(").WriteString(s.C(enttenant.FieldSlug)).WriteString(" LIKE ")
			b.Arg(slug)
			b.WriteString(` ESCAPE '\' OR `)
			if s.Dialect() == dialect.Postgres {
				b.WriteString("lower(").WriteString(s.C(enttenant.FieldName)).WriteString(") LIKE lower(")
				b.Arg(name)
				b.WriteString(")")
			} else {
				b.WriteString(s.C(enttenant.FieldName)).WriteString(" LIKE ")
				b.Arg(name)
			}
			b.WriteString(` ESCAPE '\')`)
		}))
	}
}

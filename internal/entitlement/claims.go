package entitlement

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent/predicate"
	enttenant "github.com/platform/tenant-registry/ent/tenant"
	"github.com/platform/tenant-registry/ent/tenantproduct"
	"github.com/platform/tenant-registry/internal/registry"
	"github.com/platform/tenant-registry/internal/tenant"
)

// Claims is what Keycloak puts into a tenant's tokens.
type Claims struct {
	TenantID string
	Slug     string
	Plan     string
	Status   string
	// Products the tenant may use now (active entitlements and unexpired
	// trials), sorted; never nil. A frozen tenant keeps its products here:
	// Status says it is frozen.
	Products []string
}

// Claims answers the claims of the tenant with tenantID or slug (exactly
// one of them). It is one SQL statement on indexed columns: tenants by
// primary key or unique slug, LEFT JOIN its current products on the unique
// (tenant_id, product) index.
func (s *Service) Claims(ctx context.Context, tenantID, slug string) (*Claims, error) {
	var where predicate.Tenant
	switch {
	case tenantID != "" && slug != "":
		return nil, registry.Errorf(registry.Invalid, "tenant_id: give tenant_id or slug, not both")
	case tenantID != "":
		tid, err := registry.ParseTenantID("tenant_id", tenantID)
		if err != nil {
			return nil, err
		}
		where = enttenant.ID(tid)
	case slug != "":
		if err := tenant.ValidateSlug(slug); err != nil {
			return nil, err
		}
		where = enttenant.Slug(slug)
	default:
		return nil, registry.Errorf(registry.Invalid, "tenant_id: give tenant_id or slug")
	}
	now := s.clock()
	var rows []struct {
		ID      uuid.UUID      `json:"id"`
		Slug    string         `json:"slug"`
		Plan    string         `json:"plan"`
		Status  string         `json:"status"`
		Product sql.NullString `json:"product"`
	}
	err := s.client.Tenant.Query().Where(where).Modify(func(sel *entsql.Selector) {
		p := entsql.Table(tenantproduct.Table).As("tp")
		// tenant.CurrentProducts, rendered against the joined table's alias.
		current := entsql.Dialect(sel.Dialect()).Select().From(p)
		tenant.CurrentProducts(now)(current)
		sel.LeftJoin(p).OnP(entsql.And(
			entsql.ColumnsEQ(sel.C(enttenant.FieldID), p.C(tenantproduct.FieldTenantID)),
			current.P(),
		))
		sel.Select(
			sel.C(enttenant.FieldID), sel.C(enttenant.FieldSlug), sel.C(enttenant.FieldPlan), sel.C(enttenant.FieldStatus),
			entsql.As(p.C(tenantproduct.FieldProduct), "product"),
		)
		sel.OrderBy(p.C(tenantproduct.FieldProduct))
	}).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("resolve claims: %w", err)
	}
	if len(rows) == 0 {
		return nil, registry.Errorf(registry.NotFound, "tenant not found")
	}
	c := &Claims{TenantID: rows[0].ID.String(), Slug: rows[0].Slug, Plan: rows[0].Plan, Status: rows[0].Status, Products: make([]string, 0, len(rows))}
	for _, r := range rows {
		if r.Product.Valid {
			c.Products = append(c.Products, r.Product.String)
		}
	}
	slices.Sort(c.Products) // ORDER BY already does; collations differ between stores
	return c, nil
}

package tenant

import (
	"context"

	"github.com/platform/tenant-registry/ent/predicate"
	enttenant "github.com/platform/tenant-registry/ent/tenant"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/ids"
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
// one of them): one SQL statement on indexed columns (see lookup).
func (s *Service) Claims(ctx context.Context, tenantID, slug string) (*Claims, error) {
	var where predicate.Tenant
	switch {
	case tenantID != "" && slug != "":
		return nil, errs.Errorf(errs.Invalid, "tenant_id: give tenant_id or slug, not both")
	case tenantID != "":
		tid, err := ids.ParseTenant("tenant_id", tenantID)
		if err != nil {
			return nil, err
		}
		where = enttenant.ID(tid)
	case slug != "":
		if err := ValidateSlug(slug); err != nil {
			return nil, err
		}
		where = enttenant.Slug(slug)
	default:
		return nil, errs.Errorf(errs.Invalid, "tenant_id: give tenant_id or slug")
	}
	t, err := lookup(ctx, s.client, where, s.clock())
	if err != nil {
		return nil, err
	}
	return &Claims{TenantID: t.ID.String(), Slug: t.Slug, Plan: string(t.Plan), Status: string(t.Status), Products: t.Products}, nil
}

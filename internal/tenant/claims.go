package tenant

import (
	"context"

	"github.com/google/uuid"

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
// one of them): the read cache, else one SQL statement on indexed
// columns (see lookup).
func (s *Service) Claims(ctx context.Context, tenantID, slug string) (*Claims, error) {
	var (
		id  uuid.UUID
		err error
	)
	switch {
	case tenantID != "" && slug != "":
		return nil, errs.Errorf(errs.Invalid, "tenant_id: give tenant_id or slug, not both")
	case tenantID != "":
		if id, err = ids.ParseTenant("tenant_id", tenantID); err != nil {
			return nil, err
		}
	case slug != "":
		if err := ValidateSlug(slug); err != nil {
			return nil, err
		}
	default:
		return nil, errs.Errorf(errs.Invalid, "tenant_id: give tenant_id or slug")
	}
	t, err := s.read(ctx, id, slug)
	if err != nil {
		return nil, err
	}
	return &Claims{TenantID: t.ID.String(), Slug: t.Slug, Plan: string(t.Plan), Status: string(t.Status), Products: t.Products}, nil
}

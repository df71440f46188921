package tenant

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	enttenant "github.com/platform/tenant-registry/ent/tenant"
	"github.com/platform/tenant-registry/ent/tenantproduct"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/store"
)

// AcmeID is the dev seed tenant's id.
var AcmeID = uuid.MustParse("00000000-0000-0000-0000-000000000001")

// SeedDev makes sure the dev tenant "acme" exists (active, professional,
// with certifai and compliance), on whichever store the service runs. It is
// idempotent, also when several replicas start at once. Only APP_ENV=dev
// calls it.
func (s *Service) SeedDev(ctx context.Context) error {
	ctx = principal.With(ctx, principal.System)
	err := store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		exists, err := tx.Tenant.Query().Where(enttenant.ID(AcmeID)).Exist(ctx)
		if err != nil || exists {
			return err
		}
		now := s.clock()
		t, err := tx.Tenant.Create().
			SetID(AcmeID).SetSlug("acme").SetName("Acme Inc.").
			SetStatus(enttenant.StatusActive).SetPlan(enttenant.PlanProfessional).
			SetCreatedAt(now).SetUpdatedAt(now).
			Save(ctx)
		if err != nil {
			return fmt.Errorf("seed acme: %w", err)
		}
		for _, p := range []string{"certifai", "compliance"} {
			if err := tx.TenantProduct.Create().
				SetTenantID(AcmeID).SetProduct(p).SetStatus(tenantproduct.StatusActive).
				SetCreatedAt(now).SetUpdatedAt(now).
				Exec(ctx); err != nil {
				return fmt.Errorf("seed acme product %s: %w", p, err)
			}
		}
		if err := enqueueProvisioning(ctx, tx, t.ID, now, "", ""); err != nil {
			return err
		}
		err = s.audit.Record(ctx, tx, audit.Entry{
			Action: "tenant.created", CRUD: "c", TenantID: t.ID, TenantName: t.Name,
			Target: target(t), Description: "dev seed tenant acme created",
			Fields: map[string]string{"slug": t.Slug, "plan": string(t.Plan), "status": string(t.Status), "seed": "dev"},
		})
		return err
	})
	if ent.IsConstraintError(err) {
		return nil // another replica seeded it first
	}
	return err
}

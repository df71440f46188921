package tenant

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/outbox"
	enttenant "github.com/platform/tenant-registry/ent/tenant"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/ids"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/text"
)

// UpdateInput is what UpdateTenant takes: a nil field keeps its value.
type UpdateInput struct {
	ID         string
	Name, Plan *string
}

// Update changes a tenant's name and/or plan; only the fields given change,
// and giving neither is Invalid. The event tenant.updated holds each changed
// field's old and new value (fields old_name/new_name, old_plan/new_plan);
// a request that changes nothing writes nothing. A new name is queued for
// the Keycloak organisation in the same transaction (outbox kind
// keycloak.rename_org) and tried once at once.
func (s *Service) Update(ctx context.Context, in UpdateInput) (*Tenant, error) {
	uid, err := ids.ParseTenant("id", in.ID)
	if err != nil {
		return nil, err
	}
	if in.Name == nil && in.Plan == nil {
		return nil, errs.Errorf(errs.Invalid, "update: send at least one of name, plan")
	}
	var name string
	if in.Name != nil {
		if name, err = text.DisplayName("name", *in.Name, MaxNameLen); err != nil {
			return nil, err
		}
	}
	var plan enttenant.Plan
	if in.Plan != nil {
		if *in.Plan == "" {
			return nil, errs.Errorf(errs.Invalid, "plan: must be one of starter, professional, enterprise")
		}
		if plan, err = parsePlan(*in.Plan); err != nil {
			return nil, err
		}
	}
	renamed := false
	var out *Tenant
	err = store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		cur, err := readForChange(ctx, tx, uid)
		if err != nil {
			return err
		}
		now := s.clock()
		upd := tx.Tenant.UpdateOneID(uid).SetUpdatedAt(now)
		fields := map[string]string{}
		if in.Name != nil && name != cur.Name {
			upd.SetName(name)
			fields["old_name"], fields["new_name"] = cur.Name, name
			renamed = true
		}
		if in.Plan != nil && plan != cur.Plan {
			upd.SetPlan(plan)
			fields["old_plan"], fields["new_plan"] = string(cur.Plan), string(plan)
		}
		if len(fields) > 0 {
			if err := upd.Exec(ctx); err != nil {
				return fmt.Errorf("update tenant: %w", err)
			}
			if renamed {
				if err := enqueueJob(ctx, tx, uid, kindRenameOrg, now, now); err != nil {
					return err
				}
			}
			if err := s.audit.Record(ctx, tx, audit.Entry{
				Action: "tenant.updated", CRUD: "u",
				TenantID: uid, TenantName: cur.Name,
				Target:      target(cur),
				Description: fmt.Sprintf("tenant %s updated", cur.Slug),
				Fields:      fields,
			}); err != nil {
				return err
			}
		}
		out, err = s.get(ctx, tx.Client(), enttenant.ID(uid))
		return err
	})
	if err != nil {
		return nil, err
	}
	if renamed {
		s.orgJobNow(ctx, uid, kindRenameOrg)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), committedReadTimeout)
		defer cancel()
		if t, err := s.get(rctx, s.client, enttenant.ID(uid)); err == nil {
			out = t
		}
	}
	return out, nil
}

// Delete schedules the purge of a frozen tenant DELETION_GRACE from now
// (any other status is a Precondition naming it): deletion_scheduled_at is
// set, the purge job is queued in the outbox (kind tenant.purge, due then)
// and tenant.deletion_scheduled recorded, in one transaction. Deleting a
// tenant already scheduled answers it as it is.
func (s *Service) Delete(ctx context.Context, id string) (*Tenant, error) {
	uid, err := ids.ParseTenant("id", id)
	if err != nil {
		return nil, err
	}
	var out *Tenant
	err = store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		cur, err := readForChange(ctx, tx, uid)
		if err != nil {
			return err
		}
		if cur.DeletionScheduledAt == nil {
			if cur.Status != enttenant.StatusFrozen {
				return errs.Errorf(errs.Precondition, "cannot delete a tenant whose status is %s (cancel it first: only a frozen tenant can be deleted)", cur.Status)
			}
			now := s.clock()
			at := now.Add(s.deletionGrace)
			n, err := tx.Tenant.Update().
				Where(enttenant.ID(uid), enttenant.StatusEQ(enttenant.StatusFrozen), enttenant.DeletionScheduledAtIsNil()).
				SetDeletionScheduledAt(at).SetUpdatedAt(now).
				Save(ctx)
			if err != nil {
				return fmt.Errorf("schedule deletion: %w", err)
			}
			if n == 0 {
				latest, err := tx.Tenant.Get(ctx, uid)
				if err != nil {
					return fmt.Errorf("read tenant: %w", err)
				}
				if latest.DeletionScheduledAt == nil {
					return errs.Errorf(errs.Precondition, "cannot delete a tenant whose status is %s", latest.Status)
				}
			} else {
				if err := enqueueJob(ctx, tx, uid, kindPurge, now, at); err != nil {
					return err
				}
				if err := s.audit.Record(ctx, tx, audit.Entry{
					Action: "tenant.deletion_scheduled", CRUD: "d",
					TenantID: uid, TenantName: cur.Name,
					Target:      target(cur),
					Description: fmt.Sprintf("tenant %s scheduled for deletion at %s", cur.Slug, at.UTC().Format(time.RFC3339)),
					Fields:      map[string]string{"deletion_scheduled_at": at.UTC().Format(time.RFC3339Nano), "grace": s.deletionGrace.String()},
				}); err != nil {
					return err
				}
			}
		}
		out, err = s.get(ctx, tx.Client(), enttenant.ID(uid))
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Restore cancels a scheduled deletion within the grace period: a tenant
// not scheduled, or whose grace period is over (the purge is due), is a
// Precondition. The tenant stays frozen; tenant.restored is recorded.
func (s *Service) Restore(ctx context.Context, id string) (*Tenant, error) {
	uid, err := ids.ParseTenant("id", id)
	if err != nil {
		return nil, err
	}
	var out *Tenant
	err = store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		cur, err := readForChange(ctx, tx, uid)
		if err != nil {
			return err
		}
		if cur.DeletionScheduledAt == nil {
			return errs.Errorf(errs.Precondition, "tenant is not scheduled for deletion")
		}
		at := *cur.DeletionScheduledAt
		now := s.clock()
		if !now.Before(at) {
			return errs.Errorf(errs.Precondition, "the grace period ended at %s: the tenant is being purged", at.UTC().Format(time.RFC3339))
		}
		n, err := tx.Tenant.Update().
			Where(enttenant.ID(uid), enttenant.DeletionScheduledAtEQ(at)).
			ClearDeletionScheduledAt().SetUpdatedAt(now).
			Save(ctx)
		if err != nil {
			return fmt.Errorf("restore tenant: %w", err)
		}
		if n == 0 {
			return errs.Errorf(errs.Precondition, "tenant is not scheduled for deletion")
		}
		if _, err := tx.Outbox.Delete().Where(outbox.TenantID(uid), outbox.Kind(kindPurge)).Exec(ctx); err != nil {
			return fmt.Errorf("cancel purge: %w", err)
		}
		if err := s.audit.Record(ctx, tx, audit.Entry{
			Action: "tenant.restored", CRUD: "u",
			TenantID: uid, TenantName: cur.Name,
			Target:      target(cur),
			Description: fmt.Sprintf("tenant %s restored; its deletion (due %s) is cancelled", cur.Slug, at.UTC().Format(time.RFC3339)),
			Fields:      map[string]string{"deletion_scheduled_at": at.UTC().Format(time.RFC3339Nano)},
		}); err != nil {
			return err
		}
		out, err = s.get(ctx, tx.Client(), enttenant.ID(uid))
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// enqueueJob queues the tenant's job of kind, due at: a new job, or the
// existing one (one per tenant and kind) due again and not done. A worker
// that holds the job's lease meanwhile keeps it; what it did is checked
// against the tenant when it records its outcome (see prepareOrgJob).
func enqueueJob(ctx context.Context, tx *ent.Tx, tenantID uuid.UUID, kind string, now, at time.Time) error {
	n, err := tx.Outbox.Update().Where(outbox.TenantID(tenantID), outbox.Kind(kind)).
		ClearDoneAt().SetAttempts(0).SetNextAttemptAt(at).SetLastError("").SetUpdatedAt(now).
		Save(ctx)
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", kind, err)
	}
	if n > 0 {
		return nil
	}
	err = tx.Outbox.Create().
		SetID(uuid.New()).SetTenantID(tenantID).SetKind(kind).
		SetNextAttemptAt(at).SetCreatedAt(now).SetUpdatedAt(now).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", kind, err)
	}
	return nil
}

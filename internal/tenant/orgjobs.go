package tenant

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/outbox"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/text"
)

// Outbox kinds of the jobs that follow a tenant's life in Keycloak after
// its provisioning (kindProvision): each is claimed with the same fenced
// lease and retried with the same backoff until it succeeds, and only the
// transaction that marks it done records its success event.
const (
	// kindRenameOrg pushes the tenant's current name onto its
	// organisation (queued by Update). Events: keycloak.org_renamed once
	// it lands, keycloak.org_rename_failed for each failed attempt.
	kindRenameOrg = "keycloak.rename_org"
	// kindPurge is the offboarding purge (queued by Delete, due at
	// deletion_scheduled_at, removed by Restore): the tenant's identity
	// provider and organisation are deleted in Keycloak, then the tenant's
	// rows, with tenant.deleted as the last event of its chain. A failed
	// attempt records keycloak.org_delete_failed and leaves the tenant as it
	// is until a later attempt gets the organisation deleted.
	kindPurge = "tenant.purge"
)

// IdentityProviderPurger removes a tenant's own identity provider from
// Keycloak when the tenant is purged (single sign-on). It must be
// idempotent (none, or already gone, is success).
type IdentityProviderPurger interface {
	PurgeIdentityProvider(ctx context.Context, tenantID uuid.UUID, slug string) error
}

// errNotProvisioned: a rename found the organisation not created yet (the
// provisioning job will create it under the current name, or a later
// attempt renames it).
var errNotProvisioned = errors.New("the tenant's Keycloak organisation is not provisioned yet")

// processJobs runs the due jobs of kind, as ProcessDue does provisioning's.
func (s *Service) processJobs(ctx context.Context, kind string) (int, error) {
	now := s.clock()
	jobs, err := s.client.Outbox.Query().
		Where(outbox.Kind(kind), outbox.DoneAtIsNil(), outbox.NextAttemptAtLTE(now), leaseFree(now)).
		Order(ent.Asc(outbox.FieldNextAttemptAt)).
		Limit(batchSize).
		IDs(ctx)
	if err != nil {
		return 0, fmt.Errorf("scan outbox: %w", err)
	}
	n := 0
	for _, id := range jobs {
		if ctx.Err() != nil {
			return n, nil
		}
		attempted, err := s.runOrgJob(ctx, id, attemptTimeout, true)
		if err != nil {
			return n, err
		}
		if attempted {
			n++
		}
	}
	return n, nil
}

// PurgeDue purges the tenants whose deletion is due (the sweeper, every
// SWEEP_INTERVAL on every replica): each purge job is claimed with a lease,
// so one replica purges a tenant and the others skip it. It returns how
// many purges it attempted.
func (s *Service) PurgeDue(ctx context.Context) (int, error) {
	return s.processJobs(ctx, kindPurge)
}

// orgJobNow makes the first attempt of the tenant's job of kind right after
// the change that queued it, within the RPC's budget; the worker retries
// what it leaves undone.
func (s *Service) orgJobNow(ctx context.Context, tenantID uuid.UUID, kind string) {
	b := budget(ctx, inlineTimeout)
	if b < minBudget {
		return
	}
	job, err := s.client.Outbox.Query().Where(outbox.TenantID(tenantID), outbox.Kind(kind)).OnlyID(ctx)
	if err != nil {
		s.log.ErrorContext(ctx, "read outbox job", "kind", kind, "error", err)
		return
	}
	if _, err := s.runOrgJob(ctx, job, b, false); err != nil {
		s.log.ErrorContext(ctx, "outbox job attempt", "kind", kind, "error", err)
	}
}

// runOrgJob claims job id and runs it once, as attempt does a provisioning
// job (the same lease, fencing token, detachment and hand-back).
func (s *Service) runOrgJob(ctx context.Context, id uuid.UUID, timeout time.Duration, handBack bool) (attempted bool, err error) {
	token := uuid.New()
	now := s.clock()
	claimed, err := s.client.Outbox.Update().
		Where(outbox.ID(id), outbox.DoneAtIsNil(), outbox.NextAttemptAtLTE(now), leaseFree(now)).
		SetLeaseToken(token).AddAttempts(1).SetUpdatedAt(now).
		Modify(setLease(now)).
		Save(ctx)
	if err != nil || claimed == 0 {
		return false, err
	}
	dctx := context.WithoutCancel(ctx)
	readCtx, cancel := context.WithTimeout(dctx, recordTimeout)
	job, err := s.client.Outbox.Query().Where(outbox.ID(id)).WithTenant().Only(readCtx)
	cancel()
	if err != nil {
		return true, fmt.Errorf("read outbox job: %w", err)
	}
	t := job.Edges.Tenant
	req := keycloak.OrgRequest{Slug: t.Slug, Name: t.Name}
	if t.KeycloakOrgID != nil {
		req.OrgID = *t.KeycloakOrgID
	}
	callParent := dctx
	if handBack {
		callParent = ctx
	}
	callCtx, cancel := context.WithTimeout(callParent, timeout)
	var perr error
	switch job.Kind {
	case kindRenameOrg:
		if req.OrgID == "" {
			perr = errNotProvisioned
		} else {
			perr = s.orgs.RenameOrganization(callCtx, req)
		}
	case kindPurge:
		perr = s.purgeInKeycloak(callCtx, t, req)
	default:
		perr = fmt.Errorf("unknown outbox kind %q", job.Kind)
	}
	cancel()
	if handBack && perr != nil && ctx.Err() != nil {
		return true, s.handBack(dctx, id, token, t.Slug)
	}

	rctx, cancel := context.WithTimeout(dctx, recordTimeout)
	defer cancel()
	mine := outbox.And(outbox.ID(id), outbox.LeaseToken(token), outbox.DoneAtIsNil())
	sys := principal.System
	ev := audit.Entry{TenantID: t.ID, TenantName: t.Name, Target: target(t), Actor: &sys, CRUD: "u"}
	purged := false
	err = store.WithTx(rctx, s.client, func(tx *ent.Tx) error {
		now := s.clock()
		if perr != nil {
			n, err := tx.Outbox.Update().Where(mine).
				SetLastError(text.Truncate(perr.Error(), 2000)).
				SetNextAttemptAt(now.Add(backoff(job.Attempts))).
				ClearLockedUntil().ClearLeaseToken().SetUpdatedAt(now).
				Save(rctx)
			if err != nil {
				return err
			}
			if n == 0 {
				return errLeaseLost
			}
			ev.IsFailure = true
			ev.Fields = map[string]string{"error": text.Truncate(perr.Error(), 1000), "attempt": fmt.Sprint(job.Attempts)}
			if job.Kind == kindPurge {
				ev.Action, ev.CRUD = "keycloak.org_delete_failed", "d"
				ev.Description = fmt.Sprintf("purge of %s: deleting its Keycloak identity provider or organisation failed (attempt %d); the tenant stays until it succeeds, retrying in %s", t.Slug, job.Attempts, backoff(job.Attempts))
			} else {
				ev.Action = "keycloak.org_rename_failed"
				ev.Description = fmt.Sprintf("renaming the Keycloak organisation of %s failed (attempt %d); retrying in %s", t.Slug, job.Attempts, backoff(job.Attempts))
			}
			return s.audit.Record(rctx, tx, ev)
		}
		cur, err := tx.Tenant.Get(rctx, t.ID)
		if err != nil {
			return fmt.Errorf("read tenant: %w", err)
		}
		if job.Kind == kindRenameOrg && cur.Name != req.Name {
			// Renamed again meanwhile: run again with the newer name, no
			// event for the one overtaken.
			n, err := tx.Outbox.Update().Where(mine).
				ClearLockedUntil().ClearLeaseToken().SetNextAttemptAt(now).SetUpdatedAt(now).
				Save(rctx)
			if err == nil && n == 0 {
				err = errLeaseLost
			}
			return err
		}
		if job.Kind == kindPurge && (cur.DeletionScheduledAt == nil || now.Before(*cur.DeletionScheduledAt)) {
			// Restored (its job would be gone) or rescheduled: not due.
			return errLeaseLost
		}
		n, err := tx.Outbox.Update().Where(mine).
			SetDoneAt(now).ClearLockedUntil().ClearLeaseToken().SetLastError("").SetUpdatedAt(now).
			Save(rctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return errLeaseLost
		}
		if job.Kind == kindRenameOrg {
			ev.Action = "keycloak.org_renamed"
			ev.Description = fmt.Sprintf("Keycloak organisation of %s renamed to %q", t.Slug, req.Name)
			ev.Fields = map[string]string{"org_id": req.OrgID, "name": req.Name, "attempt": fmt.Sprint(job.Attempts)}
			return s.audit.Record(rctx, tx, ev)
		}
		purged = true
		return s.purgeRows(rctx, tx, cur, job.Attempts)
	})
	if errors.Is(err, errLeaseLost) {
		s.log.WarnContext(ctx, "outbox job: lease lost or job overtaken before the outcome was recorded; another worker's outcome stands",
			"kind", job.Kind, "tenant", t.Slug, "attempt", job.Attempts, "keycloak_error", perr)
		return true, nil
	}
	if err != nil {
		return true, fmt.Errorf("record %s outcome: %w", job.Kind, err)
	}
	switch {
	case perr != nil:
		s.log.WarnContext(ctx, "outbox job failed; will retry", "kind", job.Kind, "tenant", t.Slug, "attempt", job.Attempts, "error", perr)
	case purged:
		s.log.InfoContext(ctx, "tenant purged", "tenant", t.Slug, "tenant_id", t.ID)
	}
	return true, nil
}

// purgeInKeycloak is the purge's Keycloak part: the identity provider,
// then the organisation. Each step treats "already gone" as done.
func (s *Service) purgeInKeycloak(ctx context.Context, t *ent.Tenant, req keycloak.OrgRequest) error {
	if err := s.purgeIdentityProvider(ctx, t); err != nil {
		return err
	}
	return s.orgs.DeleteOrganization(ctx, req)
}

// purgeIdentityProvider is the purge's step "delete the tenant's Keycloak
// identity provider, if it has one": Deps.IdentityProviders (single
// sign-on) does it; without one there is nothing to delete.
func (s *Service) purgeIdentityProvider(ctx context.Context, t *ent.Tenant) error {
	if s.idps == nil {
		return nil
	}
	if err := s.idps.PurgeIdentityProvider(ctx, t.ID, t.Slug); err != nil {
		return fmt.Errorf("delete identity provider: %w", err)
	}
	return nil
}

// purgeRows writes tenant.deleted, the last event of the tenant's chain,
// and deletes the tenant row: its keys, entitlements, projects, IdP
// configuration and outbox jobs go with it (ON DELETE CASCADE), its audit
// events stay with tenant_id NULL (ON DELETE SET NULL) and group_id kept.
func (s *Service) purgeRows(ctx context.Context, tx *ent.Tx, t *ent.Tenant, attempt int) error {
	sys := principal.System
	fields := map[string]string{"slug": t.Slug, "attempt": fmt.Sprint(attempt)}
	if t.DeletionScheduledAt != nil {
		fields["deletion_scheduled_at"] = t.DeletionScheduledAt.UTC().Format(time.RFC3339Nano)
	}
	if t.KeycloakOrgID != nil {
		fields["org_id"] = *t.KeycloakOrgID
	}
	if err := s.audit.Record(ctx, tx, audit.Entry{
		Action: "tenant.deleted", CRUD: "d", Actor: &sys,
		TenantID: t.ID, TenantName: t.Name, Target: target(t),
		Description: fmt.Sprintf("tenant %s purged: its Keycloak organisation and every row but its audit history are deleted", t.Slug),
		Fields:      fields,
	}); err != nil {
		return err
	}
	if err := tx.Tenant.DeleteOneID(t.ID).Exec(ctx); err != nil {
		return fmt.Errorf("delete tenant: %w", err)
	}
	return nil
}

// scheduledForDeletion refuses a change that would bring a tenant whose
// deletion is scheduled back into use.
func scheduledForDeletion(t *ent.Tenant, verb string) error {
	if t.DeletionScheduledAt == nil {
		return nil
	}
	return errs.Errorf(errs.Precondition, "cannot %s a tenant scheduled for deletion (at %s): restore it first", verb, t.DeletionScheduledAt.UTC().Format(time.RFC3339))
}

package tenant

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	entoutbox "github.com/platform/tenant-registry/ent/outbox"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/outbox"
	"github.com/platform/tenant-registry/internal/principal"
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

// PurgeDue purges the tenants whose deletion is due (the sweeper, every
// SWEEP_INTERVAL on every replica): each purge job is claimed with a lease,
// so one replica purges a tenant and the others skip it. It returns how
// many purges it attempted.
func (s *Service) PurgeDue(ctx context.Context) (int, error) {
	return s.orgJobs.RunDue(ctx, entoutbox.Kind(kindPurge))
}

// orgJobNow makes the first attempt of the tenant's job of kind right after
// the change that queued it, within the RPC's budget; the worker retries
// what it leaves undone.
func (s *Service) orgJobNow(ctx context.Context, tenantID uuid.UUID, kind string) {
	s.orgJobs.RunNow(ctx, tenantID, kind)
}

// newOrgJobs is the runner of the renames and purges. A claim requires the
// job to be due: a purge is queued for the end of its grace period.
func (s *Service) newOrgJobs() *outbox.Runner[struct{}] {
	return &outbox.Runner[struct{}]{Client: s.client, Clock: s.clock, Log: s.log, DueOnly: true, Prepare: s.prepareOrgJob}
}

// prepareOrgJob is a rename's or a purge's attempt (the same lease,
// fencing token, detachment and hand-back as provisioning's).
func (s *Service) prepareOrgJob(_ context.Context, job *ent.Outbox) (*outbox.Attempt[struct{}], error) {
	t := job.Edges.Tenant
	req := keycloak.OrgRequest{Slug: t.Slug, Name: t.Name}
	if t.KeycloakOrgID != nil {
		req.OrgID = *t.KeycloakOrgID
	}
	call := func(ctx context.Context) error {
		switch job.Kind {
		case kindRenameOrg:
			if req.OrgID == "" {
				return errNotProvisioned
			}
			return s.orgs.RenameOrganization(ctx, req)
		case kindPurge:
			return s.purgeInKeycloak(ctx, t, req)
		}
		return fmt.Errorf("unknown outbox kind %q", job.Kind)
	}
	var cur *ent.Tenant // the tenant in the outcome's transaction (a success)
	return &outbox.Attempt[struct{}]{
		Tenant: t.Slug,
		Call:   func(ctx context.Context) (struct{}, error) { return struct{}{}, call(ctx) },
		Check: func(ctx context.Context, tx *ent.Tx, perr error) (outbox.Verdict, error) {
			if perr != nil {
				return outbox.Record, nil
			}
			now := s.clock()
			var err error
			if cur, err = tx.Tenant.Get(ctx, t.ID); err != nil {
				return outbox.Record, fmt.Errorf("read tenant: %w", err)
			}
			switch {
			case job.Kind == kindRenameOrg && cur.Name != req.Name:
				// Renamed again meanwhile: run again with the newer name, no
				// event for the one overtaken.
				return outbox.Again, nil
			case job.Kind == kindPurge && (cur.DeletionScheduledAt == nil || now.Before(*cur.DeletionScheduledAt)):
				// Restored (its job would be gone) or rescheduled: not due.
				return outbox.Drop, nil
			}
			return outbox.Record, nil
		},
		Record: func(ctx context.Context, tx *ent.Tx, _ time.Time, attempt int, _ struct{}, perr error) error {
			sys := principal.System
			ev := audit.Entry{TenantID: t.ID, TenantName: t.Name, Target: target(t), Actor: &sys, CRUD: "u"}
			if perr != nil {
				ev.IsFailure = true
				ev.Fields = map[string]string{"error": text.Truncate(perr.Error(), 1000), "attempt": fmt.Sprint(attempt)}
				if job.Kind == kindPurge {
					ev.Action, ev.CRUD = "keycloak.org_delete_failed", "d"
					ev.Description = fmt.Sprintf("purge of %s: deleting its Keycloak identity provider or organisation failed (attempt %d); the tenant stays until it succeeds, retrying in %s", t.Slug, attempt, outbox.Backoff(attempt))
				} else {
					ev.Action = "keycloak.org_rename_failed"
					ev.Description = fmt.Sprintf("renaming the Keycloak organisation of %s failed (attempt %d); retrying in %s", t.Slug, attempt, outbox.Backoff(attempt))
				}
				return s.audit.Record(ctx, tx, ev)
			}
			if job.Kind == kindRenameOrg {
				ev.Action = "keycloak.org_renamed"
				ev.Description = fmt.Sprintf("Keycloak organisation of %s renamed to %q", t.Slug, req.Name)
				ev.Fields = map[string]string{"org_id": req.OrgID, "name": req.Name, "attempt": fmt.Sprint(attempt)}
				return s.audit.Record(ctx, tx, ev)
			}
			return s.purgeRows(ctx, tx, cur, attempt)
		},
		Done: func(ctx context.Context) {
			if job.Kind == kindPurge {
				s.log.InfoContext(ctx, "tenant purged", "tenant", t.Slug, "tenant_id", t.ID)
			}
		},
	}, nil
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

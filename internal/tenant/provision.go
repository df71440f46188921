package tenant

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	entoutbox "github.com/platform/tenant-registry/ent/outbox"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/ids"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/outbox"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/text"
)

// Provisioner creates a tenant's organisation (and invited admin) in
// Keycloak. It must be idempotent: a job is retried until it succeeds.
type Provisioner interface {
	Provision(ctx context.Context, req keycloak.ProvisionRequest) (keycloak.ProvisionResult, error)
}

// Provisioning states of a tenant.
const (
	ProvisioningPending     = "pending"
	ProvisioningProvisioned = "provisioned"
	ProvisioningFailed      = "failed"
)

// kindProvision is the outbox kind of a Keycloak provisioning job.
const kindProvision = "keycloak.provision"

// enqueueProvisioning writes the tenant's provisioning job in tx: durable
// pending work that lands or not with the tenant itself.
func enqueueProvisioning(ctx context.Context, tx *ent.Tx, tenantID uuid.UUID, now time.Time, adminEmail, adminName string) error {
	payload := map[string]string{}
	if adminEmail != "" {
		payload["admin_email"] = adminEmail
		payload["admin_name"] = adminName
	}
	err := tx.Outbox.Create().
		SetID(uuid.New()).
		SetTenantID(tenantID).
		SetKind(kindProvision).
		SetPayload(payload).
		SetNextAttemptAt(now).
		SetCreatedAt(now).
		SetUpdatedAt(now).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("enqueue provisioning: %w", err)
	}
	return nil
}

// ProcessDue runs the provisioning jobs that are due now, then the due
// organisation renames (kindRenameOrg), each claimed with
// a lease so that concurrent workers (goroutines or replicas) never run the
// same job at once (internal/outbox). It returns how many jobs it attempted.
//
// ctx is the worker's: when it ends (the replica stops), ProcessDue claims
// nothing more, and a job whose Keycloak call it cuts short is handed back
// — its lease released, due at once, the attempt not counted — so that
// another replica takes it over now rather than when the lease runs out.
// A call that completed is recorded as usual.
func (s *Service) ProcessDue(ctx context.Context) (int, error) {
	n, err := s.provisioning.RunDue(ctx, entoutbox.Kind(kindProvision))
	if err != nil || ctx.Err() != nil {
		return n, err
	}
	// Then the organisation renames (kindRenameOrg): a rename waits for
	// the organisation, so it comes after provisioning.
	m, err := s.orgJobs.RunDue(ctx, entoutbox.Kind(kindRenameOrg))
	return n + m, err
}

// RetryProvisioning runs a tenant's provisioning now, whatever its backoff.
// A tenant already provisioned is returned as it is.
func (s *Service) RetryProvisioning(ctx context.Context, id string) (*Tenant, error) {
	uid, err := ids.ParseTenant("id", id)
	if err != nil {
		return nil, err
	}
	job, err := s.client.Outbox.Query().Where(entoutbox.TenantID(uid), entoutbox.Kind(kindProvision)).Only(ctx)
	switch {
	case ent.IsNotFound(err):
		if _, err := s.Get(ctx, id); err != nil {
			return nil, err
		}
		return nil, errs.Errorf(errs.Precondition, "tenant has no provisioning job")
	case err != nil:
		return nil, fmt.Errorf("read provisioning job: %w", err)
	}
	if job.DoneAt == nil {
		b := outbox.Budget(ctx, outbox.InlineTimeout)
		if b < outbox.MinBudget {
			return nil, errs.Errorf(errs.Invalid, "deadline: too short for a provisioning attempt (want at least %s)", outbox.MinBudget)
		}
		attempted, _, err := s.provisioning.Run(ctx, job.ID, b)
		if err != nil {
			return nil, err
		}
		if !attempted {
			return nil, errs.Errorf(errs.Precondition, "provisioning is already running on another worker; try again shortly")
		}
	}
	return s.Get(ctx, id)
}

// newProvisioning is the runner of provisioning jobs (kindProvision).
func (s *Service) newProvisioning() *outbox.Runner[keycloak.ProvisionResult] {
	return &outbox.Runner[keycloak.ProvisionResult]{Client: s.client, Clock: s.clock, Log: s.log, Subject: "keycloak provisioning", Prepare: s.prepareProvision}
}

// prepareProvision is a provisioning job's attempt: the tenant's
// organisation (and invited admin) in Keycloak, then its provisioning
// state and keycloak.provisioned or keycloak.provision_failed.
func (s *Service) prepareProvision(_ context.Context, job *ent.Outbox) (*outbox.Attempt[keycloak.ProvisionResult], error) {
	t := job.Edges.Tenant
	req := keycloak.ProvisionRequest{
		Slug: t.Slug, Name: t.Name,
		AdminEmail: job.Payload["admin_email"], AdminName: job.Payload["admin_name"],
	}
	if t.KeycloakOrgID != nil {
		req.OrgID = *t.KeycloakOrgID
	}
	sys := principal.System
	ev := audit.Entry{TenantID: t.ID, TenantName: t.Name, Target: target(t), Actor: &sys, CRUD: "u"}
	return &outbox.Attempt[keycloak.ProvisionResult]{
		Tenant: t.Slug,
		Call: func(ctx context.Context) (keycloak.ProvisionResult, error) {
			return s.provisioner.Provision(ctx, req)
		},
		Record: func(ctx context.Context, tx *ent.Tx, now time.Time, attempt int, res keycloak.ProvisionResult, perr error) error {
			if perr != nil {
				upd := tx.Tenant.UpdateOneID(t.ID).SetProvisioningState(ProvisioningFailed).SetUpdatedAt(now)
				if res.OrgID != "" {
					upd.SetKeycloakOrgID(res.OrgID) // keep partial progress for the next attempt
				}
				if err := upd.Exec(ctx); err != nil {
					return err
				}
				ev.Action, ev.IsFailure = "keycloak.provision_failed", true
				ev.Description = fmt.Sprintf("Keycloak provisioning of %s failed (attempt %d); retrying in %s", t.Slug, attempt, outbox.Backoff(attempt))
				ev.Fields = map[string]string{"error": text.Truncate(perr.Error(), 1000), "attempt": fmt.Sprint(attempt)}
				return s.audit.Record(ctx, tx, ev)
			}
			// Only the transaction that marks the job done records
			// keycloak.provisioned; the admin's email and name are not
			// kept once they served.
			if err := tx.Tenant.UpdateOneID(t.ID).
				SetKeycloakOrgID(res.OrgID).SetProvisioningState(ProvisioningProvisioned).SetUpdatedAt(now).
				Exec(ctx); err != nil {
				return err
			}
			ev.Action = "keycloak.provisioned"
			ev.Description = fmt.Sprintf("Keycloak organisation of %s provisioned", t.Slug)
			ev.Fields = map[string]string{"org_id": res.OrgID, "attempt": fmt.Sprint(attempt)}
			if res.AdminUserID != "" {
				ev.Fields["admin_user_id"] = res.AdminUserID
			}
			return s.audit.Record(ctx, tx, ev)
		},
	}, nil
}

// provisionNow makes the first attempt right after the tenant was created,
// so a healthy Keycloak answers with the invite URL in the create response.
func (s *Service) provisionNow(ctx context.Context, tenantID uuid.UUID) (inviteURL string) {
	res, _ := s.provisioning.RunNow(ctx, tenantID, kindProvision)
	if s.hideInviteURL {
		return ""
	}
	return res.InviteURL
}

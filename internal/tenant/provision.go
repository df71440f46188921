package tenant

import (
	"context"
	"errors"
	"fmt"
	"time"

	"entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/outbox"
	"github.com/platform/tenant-registry/ent/predicate"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/ids"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/lease"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/store"
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

// Retry policy of provisioning jobs.
const (
	// leaseFor is how long a claimed job is reserved for the worker that
	// claimed it; it outlives attemptTimeout so that a job is never run by
	// two workers at once, and a crashed worker's job is retried after it.
	leaseFor       = 5 * time.Minute
	attemptTimeout = 2 * time.Minute
	// inlineTimeout bounds the Keycloak call of the first attempt made
	// inside CreateTenant (and of RetryProvisioning), so a hanging Keycloak
	// slows the RPC by at most this much; inside an RPC it gets at most
	// rpcShare of what is left of the RPC's deadline, so that the outcome
	// is recorded and the answer sent before the deadline.
	inlineTimeout = 6 * time.Second
	rpcShare      = 0.6
	// minBudget: with less time left the RPC does not attempt at all (the
	// worker will).
	minBudget = 500 * time.Millisecond
	// recordTimeout bounds the writes of an attempt's outcome, which run
	// detached from the request: the outcome is recorded whatever happens
	// to the request.
	recordTimeout = 15 * time.Second
	backoffMin    = 5 * time.Second
	backoffMax    = 15 * time.Minute
	batchSize     = 20
)

// backoff is the wait after the n-th failed attempt (n ≥ 1): 5s, 10s, 20s,
// … capped at 15 minutes.
func backoff(n int) time.Duration { return lease.Backoff(n, backoffMin, backoffMax) }

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
// same job at once. It returns how many jobs it attempted.
//
// ctx is the worker's: when it ends (the replica stops), ProcessDue claims
// nothing more, and a job whose Keycloak call it cuts short is handed back
// — its lease released, due at once, the attempt not counted — so that
// another replica takes it over now rather than when the lease runs out.
// A call that completed is recorded as usual.
func (s *Service) ProcessDue(ctx context.Context) (int, error) {
	n, err := s.processProvisioning(ctx)
	if err != nil || ctx.Err() != nil {
		return n, err
	}
	// Then the organisation renames (kindRenameOrg): a rename waits for
	// the organisation, so it comes after provisioning.
	m, err := s.processJobs(ctx, kindRenameOrg)
	return n + m, err
}

func (s *Service) processProvisioning(ctx context.Context) (int, error) {
	now := s.clock()
	jobs, err := s.client.Outbox.Query().
		Where(outbox.Kind(kindProvision), outbox.DoneAtIsNil(), outbox.NextAttemptAtLTE(now), leaseFree(now)).
		Order(ent.Asc(outbox.FieldNextAttemptAt)).
		Limit(batchSize).
		IDs(ctx)
	if err != nil {
		return 0, fmt.Errorf("scan outbox: %w", err)
	}
	n := 0
	for _, id := range jobs {
		if ctx.Err() != nil {
			return n, nil // stopping: the rest stays due for another worker
		}
		attempted, _, err := s.attempt(ctx, id, attemptTimeout, true)
		if err != nil {
			return n, err
		}
		if attempted {
			n++
		}
	}
	return n, nil
}

// RetryProvisioning runs a tenant's provisioning now, whatever its backoff.
// A tenant already provisioned is returned as it is.
func (s *Service) RetryProvisioning(ctx context.Context, id string) (*Tenant, error) {
	uid, err := ids.ParseTenant("id", id)
	if err != nil {
		return nil, err
	}
	job, err := s.client.Outbox.Query().Where(outbox.TenantID(uid), outbox.Kind(kindProvision)).Only(ctx)
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
		b := budget(ctx, inlineTimeout)
		if b < minBudget {
			return nil, errs.Errorf(errs.Invalid, "deadline: too short for a provisioning attempt (want at least %s)", minBudget)
		}
		attempted, _, err := s.attempt(ctx, job.ID, b, false)
		if err != nil {
			return nil, err
		}
		if !attempted {
			return nil, errs.Errorf(errs.Precondition, "provisioning is already running on another worker; try again shortly")
		}
	}
	return s.Get(ctx, id)
}

// attempt claims job id and runs it once, spending at most timeout in
// Keycloak. attempted is false when another worker holds it or it is done;
// the error is only for failures to read or write the database — a
// Keycloak failure is recorded, not returned.
//
// The claim takes a lease (locked_until, by the database's clock) with a
// new fencing token, and every write of the outcome requires the token: a
// worker that outlived its lease, whose job another worker took over, has
// its outcome refused (errLeaseLost) rather than overwriting the newer
// holder's. Everything after the claim runs detached from ctx (each step
// with its own timeout), so a request that ends mid-attempt leaves the
// outcome recorded, not a lease to wait out — except, with handBack (the
// worker's attempts), the Keycloak call: ctx's end cuts it short, and a
// call cut short hands the job back (handBack) instead of recording a
// failure.
func (s *Service) attempt(ctx context.Context, id uuid.UUID, timeout time.Duration, handBack bool) (attempted bool, res keycloak.ProvisionResult, err error) {
	token := uuid.New()
	now := s.clock()
	claimed, err := s.client.Outbox.Update().
		Where(outbox.ID(id), outbox.DoneAtIsNil(), leaseFree(now)).
		SetLeaseToken(token).
		AddAttempts(1).
		SetUpdatedAt(now).
		Modify(setLease(now)).
		Save(ctx)
	if err != nil || claimed == 0 {
		return false, res, err
	}
	dctx := context.WithoutCancel(ctx)
	readCtx, cancel := context.WithTimeout(dctx, recordTimeout)
	job, err := s.client.Outbox.Query().Where(outbox.ID(id)).WithTenant().Only(readCtx)
	cancel()
	if err != nil {
		return true, res, fmt.Errorf("read provisioning job: %w", err)
	}
	t := job.Edges.Tenant
	req := keycloak.ProvisionRequest{
		Slug: t.Slug, Name: t.Name,
		AdminEmail: job.Payload["admin_email"], AdminName: job.Payload["admin_name"],
	}
	if t.KeycloakOrgID != nil {
		req.OrgID = *t.KeycloakOrgID
	}
	callParent := dctx
	if handBack {
		callParent = ctx
	}
	callCtx, cancel := context.WithTimeout(callParent, timeout)
	res, perr := s.provisioner.Provision(callCtx, req)
	cancel()
	if handBack && perr != nil && ctx.Err() != nil {
		return true, keycloak.ProvisionResult{}, s.handBack(dctx, id, token, t.Slug)
	}

	sys := principal.System
	ev := audit.Entry{TenantID: t.ID, TenantName: t.Name, Target: target(t), Actor: &sys, CRUD: "u"}
	rctx, cancel := context.WithTimeout(dctx, recordTimeout)
	defer cancel()
	mine := outbox.And(outbox.ID(id), outbox.LeaseToken(token), outbox.DoneAtIsNil())
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
			upd := tx.Tenant.UpdateOneID(t.ID).SetProvisioningState(ProvisioningFailed).SetUpdatedAt(now)
			if res.OrgID != "" {
				upd.SetKeycloakOrgID(res.OrgID) // keep partial progress for the next attempt
			}
			if err := upd.Exec(rctx); err != nil {
				return err
			}
			ev.Action, ev.IsFailure = "keycloak.provision_failed", true
			ev.Description = fmt.Sprintf("Keycloak provisioning of %s failed (attempt %d); retrying in %s", t.Slug, job.Attempts, backoff(job.Attempts))
			ev.Fields = map[string]string{"error": text.Truncate(perr.Error(), 1000), "attempt": fmt.Sprint(job.Attempts)}
			err = s.audit.Record(rctx, tx, ev)
			return err
		}
		// Done exactly once, by the lease holder: only the transaction that
		// flips done_at records keycloak.provisioned. The admin's email and
		// name are not kept once they served.
		n, err := tx.Outbox.Update().Where(mine).
			SetDoneAt(now).ClearLockedUntil().ClearLeaseToken().SetLastError("").ClearPayload().SetUpdatedAt(now).
			Save(rctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return errLeaseLost
		}
		if err := tx.Tenant.UpdateOneID(t.ID).
			SetKeycloakOrgID(res.OrgID).SetProvisioningState(ProvisioningProvisioned).SetUpdatedAt(now).
			Exec(rctx); err != nil {
			return err
		}
		ev.Action = "keycloak.provisioned"
		ev.Description = fmt.Sprintf("Keycloak organisation of %s provisioned", t.Slug)
		ev.Fields = map[string]string{"org_id": res.OrgID, "attempt": fmt.Sprint(job.Attempts)}
		if res.AdminUserID != "" {
			ev.Fields["admin_user_id"] = res.AdminUserID
		}
		err = s.audit.Record(rctx, tx, ev)
		return err
	})
	if errors.Is(err, errLeaseLost) {
		// Another worker took the job over (this one outlived its lease):
		// its outcome stands, this one is dropped.
		s.log.WarnContext(ctx, "keycloak provisioning: lease lost before the outcome was recorded; another worker's outcome stands",
			"tenant", t.Slug, "attempt", job.Attempts, "keycloak_error", perr)
		return true, keycloak.ProvisionResult{}, nil
	}
	if err != nil {
		return true, res, fmt.Errorf("record provisioning result: %w", err)
	}
	if perr != nil {
		s.log.WarnContext(ctx, "keycloak provisioning failed; will retry", "tenant", t.Slug, "attempt", job.Attempts, "error", perr)
		return true, keycloak.ProvisionResult{}, nil
	}
	return true, res, nil
}

// handBack releases the lease token holds on job id without an outcome:
// the job is due at once and the cut-short attempt is not counted, so the
// next worker (on another replica) runs it as this one would have.
func (s *Service) handBack(ctx context.Context, id, token uuid.UUID, slug string) error {
	ctx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	now := s.clock()
	n, err := s.client.Outbox.Update().
		Where(outbox.ID(id), outbox.LeaseToken(token), outbox.DoneAtIsNil()).
		ClearLockedUntil().ClearLeaseToken().AddAttempts(-1).SetNextAttemptAt(now).SetUpdatedAt(now).
		Save(ctx)
	if err != nil {
		// The worker is stopping and logs nothing more: say it here.
		s.log.WarnContext(ctx, "keycloak provisioning: stopping; could not release the lease (another worker takes the job over when it runs out)",
			"tenant", slug, "error", err)
		return fmt.Errorf("release provisioning lease: %w", err)
	}
	if n == 0 {
		// The lease ran out and another worker holds the job: nothing to hand back.
		return nil
	}
	s.log.InfoContext(ctx, "keycloak provisioning: stopping; job handed back, lease released for another worker", "tenant", slug)
	return nil
}

// errLeaseLost: the outcome's write found another lease holder's token.
var errLeaseLost = errors.New("provisioning lease lost")

// leaseFree: the job's lease is free or ran out, by the database's clock
// on PostgreSQL (replicas' clocks differ; the database has one), by the
// service clock on the embedded store (one process).
func leaseFree(now time.Time) predicate.Outbox {
	return lease.Free(outbox.FieldLockedUntil, now)
}

// setLease sets locked_until to leaseFor from now, by the same clock as
// leaseFree.
func setLease(now time.Time) func(*sql.UpdateBuilder) {
	return lease.Set(outbox.FieldLockedUntil, now, leaseFor)
}

// budget is how long an attempt made inside an RPC may spend in Keycloak:
// at most limit, and at most rpcShare of what is left of ctx's deadline.
func budget(ctx context.Context, limit time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return min(limit, time.Duration(float64(time.Until(dl))*rpcShare))
	}
	return limit
}

// provisionNow makes the first attempt right after the tenant was created,
// so a healthy Keycloak answers with the invite URL in the create response.
func (s *Service) provisionNow(ctx context.Context, tenantID uuid.UUID) (inviteURL string) {
	job, err := s.client.Outbox.Query().Where(outbox.TenantID(tenantID), outbox.Kind(kindProvision)).OnlyID(ctx)
	if err != nil {
		s.log.ErrorContext(ctx, "read provisioning job", "error", err)
		return ""
	}
	b := budget(ctx, inlineTimeout)
	if b < minBudget {
		return "" // too little time left in the RPC: the worker will do it
	}
	_, res, err := s.attempt(ctx, job, b, false)
	if err != nil {
		// The job stays in the outbox; the worker retries it.
		s.log.ErrorContext(ctx, "provisioning attempt", "error", err)
		return ""
	}
	if s.hideInviteURL {
		return ""
	}
	return res.InviteURL
}

package sso

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/outbox"
	"github.com/platform/tenant-registry/ent/predicate"
	"github.com/platform/tenant-registry/ent/tenantidpconfig"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/lease"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/text"
)

// Outbox kinds of this package (one job of a kind per tenant, the
// outbox's unique index):
//
//   - kindIdP: make Keycloak's identity provider of the tenant match its
//     configuration now — created or updated, linked and routed when there
//     is one, unlinked and removed when there is none. Each change re-arms
//     it.
//   - kindInvitePrefix + hash of the email: invite that person (one job per
//     tenant and address; inviting again re-arms it and re-sends).
const (
	kindIdP          = "keycloak.idp"
	kindInvitePrefix = "keycloak.invite:"
)

// inviteKind is the outbox kind of the invitation of email (lower case):
// its SHA-256, so the kind stays short and holds no address.
func inviteKind(email string) string {
	sum := sha256.Sum256([]byte(email))
	return kindInvitePrefix + hex.EncodeToString(sum[:16])
}

// Retry policy, as tenant provisioning's (internal/tenant/provision.go).
const (
	leaseFor       = 5 * time.Minute
	attemptTimeout = 2 * time.Minute
	inlineTimeout  = 6 * time.Second
	rpcShare       = 0.6
	minBudget      = 500 * time.Millisecond
	recordTimeout  = 15 * time.Second
	backoffMin     = 5 * time.Second
	backoffMax     = 15 * time.Minute
	batchSize      = 20
)

func backoff(n int) time.Duration { return lease.Backoff(n, backoffMin, backoffMax) }

// armJob writes (or re-arms) the tenant's job of kind in tx: due now, its
// attempts and error reset, done_at cleared. A lease another worker holds
// stays: that worker's outcome is refused when the job changed meanwhile
// (the identity provider's generation, an invitation's payload), and the
// job runs again.
func armJob(ctx context.Context, tx *ent.Tx, tenantID uuid.UUID, kind string, payload map[string]string, now time.Time) error {
	// Read, then write: the caller holds the tenant's row lock (lockTenant),
	// so no other change of this tenant's jobs runs in between.
	cur, err := tx.Outbox.Query().Where(outbox.TenantID(tenantID), outbox.Kind(kind)).Only(ctx)
	switch {
	case ent.IsNotFound(err):
		err = tx.Outbox.Create().
			SetID(uuid.New()).SetTenantID(tenantID).SetKind(kind).SetPayload(payload).
			SetNextAttemptAt(now).SetCreatedAt(now).SetUpdatedAt(now).
			Exec(ctx)
	case err == nil:
		u := tx.Outbox.UpdateOneID(cur.ID).SetAttempts(0).SetNextAttemptAt(now).SetLastError("").ClearDoneAt().SetUpdatedAt(now)
		if payload != nil {
			u.SetPayload(payload)
		} else {
			u.ClearPayload()
		}
		err = u.Exec(ctx)
	}
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", kindName(kind), err)
	}
	return nil
}

// ProcessDue runs this package's outbox jobs that are due now, each claimed
// with a lease so that concurrent workers (goroutines or replicas) never
// run one at once. It returns how many it attempted. When ctx ends, a job
// whose Keycloak call it cuts short is handed back (due at once, the
// attempt not counted).
func (s *Service) ProcessDue(ctx context.Context) (int, error) {
	now := s.clock()
	jobs, err := s.client.Outbox.Query().
		Where(ourKinds(), outbox.DoneAtIsNil(), outbox.NextAttemptAtLTE(now), leaseFree(now)).
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

func ourKinds() predicate.Outbox {
	return outbox.Or(outbox.Kind(kindIdP), outbox.KindHasPrefix(kindInvitePrefix))
}

// runNow makes a first attempt of the tenant's job of kind right after
// the change that armed it, within the request's time; the result of an
// invitation is answered (its invite URL).
func (s *Service) runNow(ctx context.Context, tid uuid.UUID, kind string) (keycloak.InviteResult, bool) {
	id, err := s.client.Outbox.Query().Where(outbox.TenantID(tid), outbox.Kind(kind)).OnlyID(ctx)
	if err != nil {
		s.log.ErrorContext(ctx, "read outbox job", "kind", kind, "error", err)
		return keycloak.InviteResult{}, false
	}
	b := inlineTimeout
	if dl, ok := ctx.Deadline(); ok {
		b = min(b, time.Duration(float64(time.Until(dl))*rpcShare))
	}
	if b < minBudget {
		return keycloak.InviteResult{}, false // the worker will
	}
	_, res, err := s.attempt(ctx, id, b, false)
	if err != nil {
		s.log.ErrorContext(ctx, "outbox attempt", "kind", kind, "error", err)
		return keycloak.InviteResult{}, false
	}
	return res.invite, res.ok
}

// result is a successful attempt's.
type result struct {
	ok     bool
	invite keycloak.InviteResult
}

// work is one job's attempt: the Keycloak call, and what its outcome
// writes.
type work struct {
	slug string
	// call talks to Keycloak.
	call func(ctx context.Context) (result, error)
	// stale tells, inside the outcome's transaction, whether the job's
	// subject changed since the attempt read it: then nothing is recorded
	// and the job runs again.
	stale func(ctx context.Context, tx *ent.Tx) (bool, error)
	// record writes the outcome's state and audit event (perr nil: success).
	record func(ctx context.Context, tx *ent.Tx, now time.Time, attempt int, res result, perr error) error
	// scrub takes what must never be recorded (a client secret) out of
	// Keycloak's error text.
	scrub func(string) string
}

// attempt claims job id and runs it once, spending at most timeout in
// Keycloak (the pattern of internal/tenant's provisioning: a fenced lease
// taken by the database's clock, everything after the claim detached
// from ctx except — with handBack — the Keycloak call).
func (s *Service) attempt(ctx context.Context, id uuid.UUID, timeout time.Duration, handBack bool) (bool, result, error) {
	token := uuid.New()
	now := s.clock()
	claimed, err := s.client.Outbox.Update().
		Where(outbox.ID(id), outbox.DoneAtIsNil(), leaseFree(now)).
		SetLeaseToken(token).AddAttempts(1).SetUpdatedAt(now).
		Modify(setLease(now)).
		Save(ctx)
	if err != nil || claimed == 0 {
		return false, result{}, err
	}
	dctx := context.WithoutCancel(ctx)
	readCtx, cancel := context.WithTimeout(dctx, recordTimeout)
	job, err := s.client.Outbox.Query().Where(outbox.ID(id)).WithTenant().Only(readCtx)
	var w *work
	if err == nil {
		w, err = s.prepare(readCtx, job)
	}
	cancel()
	if err != nil {
		return true, result{}, errors.Join(fmt.Errorf("read outbox job: %w", err), s.release(dctx, id, token, false))
	}
	callParent := dctx
	if handBack {
		callParent = ctx
	}
	callCtx, cancel := context.WithTimeout(callParent, timeout)
	res, perr := w.call(callCtx)
	cancel()
	if handBack && perr != nil && ctx.Err() != nil {
		return true, result{}, s.release(dctx, id, token, true)
	}
	if perr != nil {
		perr = errors.New(w.scrub(perr.Error()))
	}
	rctx, cancel := context.WithTimeout(dctx, recordTimeout)
	defer cancel()
	mine := outbox.And(outbox.ID(id), outbox.LeaseToken(token), outbox.DoneAtIsNil())
	stale := false
	err = store.WithTx(rctx, s.client, func(tx *ent.Tx) error {
		if _, err := lockTenant(rctx, tx, job.TenantID); err != nil {
			return err
		}
		if stale, err = w.stale(rctx, tx); err != nil || stale {
			return err
		}
		now := s.clock()
		upd := tx.Outbox.Update().Where(mine).ClearLockedUntil().ClearLeaseToken().SetUpdatedAt(now)
		if perr != nil {
			upd.SetLastError(text.Truncate(perr.Error(), 2000)).SetNextAttemptAt(now.Add(backoff(job.Attempts)))
		} else {
			// The invitee's address is not kept once it served.
			upd.SetDoneAt(now).SetLastError("").ClearPayload()
		}
		n, err := upd.Save(rctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return errLeaseLost
		}
		return w.record(rctx, tx, now, job.Attempts, res, perr)
	})
	switch {
	case errors.Is(err, errLeaseLost):
		s.log.WarnContext(ctx, "keycloak job: lease lost before the outcome was recorded; another worker's outcome stands",
			"kind", kindName(job.Kind), "tenant", w.slug, "attempt", job.Attempts)
		return true, result{}, nil
	case err != nil:
		return true, result{}, fmt.Errorf("record %s result: %w", kindName(job.Kind), err)
	case stale:
		// Changed while Keycloak was called: run it again, at once.
		return true, result{}, s.release(dctx, id, token, false)
	case perr != nil:
		s.log.WarnContext(ctx, "keycloak job failed; will retry", "kind", kindName(job.Kind), "tenant", w.slug, "attempt", job.Attempts, "error", perr)
		return true, result{}, nil
	}
	return true, res, nil
}

// kindName is a job's kind for logs (an invitation's without its hash).
func kindName(kind string) string {
	if strings.HasPrefix(kind, kindInvitePrefix) {
		return strings.TrimSuffix(kindInvitePrefix, ":")
	}
	return kind
}

// release gives job id back without an outcome: due at once; uncount
// takes the attempt back (a cut-short call).
func (s *Service) release(ctx context.Context, id, token uuid.UUID, uncount bool) error {
	ctx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	now := s.clock()
	u := s.client.Outbox.Update().
		Where(outbox.ID(id), outbox.LeaseToken(token), outbox.DoneAtIsNil()).
		ClearLockedUntil().ClearLeaseToken().SetNextAttemptAt(now).SetUpdatedAt(now)
	if uncount {
		u.AddAttempts(-1)
	}
	if _, err := u.Save(ctx); err != nil {
		return fmt.Errorf("release outbox lease: %w", err)
	}
	return nil
}

var errLeaseLost = errors.New("outbox lease lost")

// errNoOrg: the tenant's own provisioning has not made its organisation yet.
var errNoOrg = errors.New("the tenant's Keycloak organisation is not provisioned yet")

// prepare reads what job needs and returns its work.
func (s *Service) prepare(ctx context.Context, job *ent.Outbox) (*work, error) {
	t := job.Edges.Tenant
	orgID := ""
	if t.KeycloakOrgID != nil {
		orgID = *t.KeycloakOrgID
	}
	sys := principal.System
	event := func(action, desc string, failure bool, fields map[string]string) audit.Entry {
		return audit.Entry{Action: action, CRUD: "u", TenantID: t.ID, TenantName: t.Name,
			Target: tenantTarget(t), Actor: &sys, Description: desc, IsFailure: failure, Fields: fields}
	}
	switch {
	case job.Kind == kindIdP:
		return s.prepareIdP(ctx, t, orgID, event)
	case strings.HasPrefix(job.Kind, kindInvitePrefix):
		return s.prepareInvite(job, t, orgID, event), nil
	}
	return nil, fmt.Errorf("unknown outbox kind %q", job.Kind)
}

type eventFunc func(action, desc string, failure bool, fields map[string]string) audit.Entry

func (s *Service) prepareIdP(ctx context.Context, t *ent.Tenant, orgID string, event eventFunc) (*work, error) {
	alias := Alias(t.Slug)
	c, err := s.client.TenantIdpConfig.Query().Where(tenantidpconfig.TenantID(t.ID)).WithDomains().Only(ctx)
	if err != nil && !ent.IsNotFound(err) {
		return nil, err
	}
	var gen int64 // 0: no configuration (remove it)
	w := &work{slug: t.Slug, scrub: func(s string) string { return s }}
	if c != nil {
		gen = c.Generation
		idp := keycloak.IdentityProvider{
			OrgID: orgID, Alias: alias, DisplayName: t.Name + " SSO", Protocol: string(c.Protocol),
			EntityID: c.SamlEntityID, SSOURL: c.SamlSSOURL, SigningCertificate: c.SamlSigningCertificate,
		}
		if c.Protocol == tenantidpconfig.ProtocolOidc {
			idp.Issuer, idp.ClientID = c.IssuerURL, c.ClientID
		} else {
			idp.MetadataURL = c.IssuerURL
		}
		for _, d := range c.Edges.Domains {
			idp.Domains = append(idp.Domains, d.Domain)
		}
		sealed := c.ClientSecretSealed
		w.call = func(ctx context.Context) (result, error) {
			if orgID == "" {
				return result{}, errNoOrg
			}
			if sealed != nil && len(*sealed) > 0 {
				plain, err := s.box.Open(*sealed, secretAAD(t.ID))
				if err != nil {
					return result{}, fmt.Errorf("open the client secret (IDP_SECRET_KEY): %w", err)
				}
				idp.ClientSecret = string(plain)
				w.scrub = func(m string) string { return strings.ReplaceAll(m, idp.ClientSecret, "[redacted]") }
			}
			return result{ok: true}, s.idps.EnsureIdentityProvider(ctx, idp)
		}
	} else {
		w.call = func(ctx context.Context) (result, error) {
			return result{ok: true}, s.idps.RemoveIdentityProvider(ctx, orgID, alias)
		}
	}
	w.stale = func(ctx context.Context, tx *ent.Tx) (bool, error) {
		cur, err := tx.TenantIdpConfig.Query().Where(tenantidpconfig.TenantID(t.ID)).Only(ctx)
		switch {
		case ent.IsNotFound(err):
			return gen != 0, nil
		case err != nil:
			return false, err
		}
		return cur.Generation != gen, nil
	}
	w.record = func(ctx context.Context, tx *ent.Tx, now time.Time, attempt int, _ result, perr error) error {
		fields := map[string]string{"alias": alias, "attempt": fmt.Sprint(attempt)}
		if orgID != "" {
			fields["org_id"] = orgID
		}
		var ev audit.Entry
		state := StateProvisioned
		switch {
		case perr != nil && gen != 0:
			state = StateFailed
			fields["error"] = text.Truncate(perr.Error(), 1000)
			ev = event("keycloak.idp_provision_failed", fmt.Sprintf("Keycloak identity provider %s of %s: provisioning failed (attempt %d); retrying in %s",
				alias, t.Slug, attempt, backoff(attempt)), true, fields)
		case perr != nil:
			fields["error"] = text.Truncate(perr.Error(), 1000)
			ev = event("keycloak.idp_remove_failed", fmt.Sprintf("Keycloak identity provider %s of %s: removal failed (attempt %d); retrying in %s",
				alias, t.Slug, attempt, backoff(attempt)), true, fields)
		case gen != 0:
			ev = event("keycloak.idp_provisioned", fmt.Sprintf("Keycloak identity provider %s of %s provisioned and linked", alias, t.Slug), false, fields)
		default:
			ev = event("keycloak.idp_removed", fmt.Sprintf("Keycloak identity provider %s of %s unlinked and removed", alias, t.Slug), false, fields)
		}
		if gen != 0 {
			if err := tx.TenantIdpConfig.Update().Where(tenantidpconfig.TenantID(t.ID)).
				SetIdpState(state).SetUpdatedAt(now).Exec(ctx); err != nil {
				return err
			}
		}
		return s.audit.Record(ctx, tx, ev)
	}
	return w, nil
}

// leaseFree: the job's lease is free or ran out, by the database's clock
// on PostgreSQL, by the service clock on the embedded store.
func leaseFree(now time.Time) predicate.Outbox {
	return lease.Free(outbox.FieldLockedUntil, now)
}

// setLease sets locked_until to leaseFor from now, by leaseFree's clock.
func setLease(now time.Time) func(*sql.UpdateBuilder) {
	return lease.Set(outbox.FieldLockedUntil, now, leaseFor)
}

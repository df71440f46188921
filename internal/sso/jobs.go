package sso

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	entoutbox "github.com/platform/tenant-registry/ent/outbox"
	"github.com/platform/tenant-registry/ent/tenantidpconfig"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/outbox"
	"github.com/platform/tenant-registry/internal/principal"
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

// armJob writes (or re-arms) the tenant's job of kind in tx: due now, its
// attempts and error reset, done_at cleared. A lease another worker holds
// stays: that worker's outcome is refused when the job changed meanwhile
// (the identity provider's generation, an invitation's payload), and the
// job runs again.
func armJob(ctx context.Context, tx *ent.Tx, tenantID uuid.UUID, kind string, payload map[string]string, now time.Time) error {
	// Read, then write: the caller holds the tenant's row lock (lockTenant),
	// so no other change of this tenant's jobs runs in between.
	cur, err := tx.Outbox.Query().Where(entoutbox.TenantID(tenantID), entoutbox.Kind(kind)).Only(ctx)
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
// run one at once (internal/outbox). It returns how many it attempted.
// When ctx ends, a job whose Keycloak call it cuts short is handed back
// (due at once, the attempt not counted).
func (s *Service) ProcessDue(ctx context.Context) (int, error) {
	return s.jobs.RunDue(ctx, entoutbox.Or(entoutbox.Kind(kindIdP), entoutbox.KindHasPrefix(kindInvitePrefix)))
}

// runNow makes a first attempt of the tenant's job of kind right after
// the change that armed it, within the request's time; the result of an
// invitation is answered (its invite URL).
func (s *Service) runNow(ctx context.Context, tid uuid.UUID, kind string) (keycloak.InviteResult, bool) {
	res, ok := s.jobs.RunNow(ctx, tid, kind)
	return res.invite, ok
}

// newRunner is the Service's outbox runner: its attempts are prepare's.
func (s *Service) newRunner() *outbox.Runner[result] {
	return &outbox.Runner[result]{Client: s.client, Clock: s.clock, Log: s.log, Subject: "keycloak job", Name: kindName, Prepare: s.prepare}
}

// result is a successful attempt's.
type result struct {
	ok     bool
	invite keycloak.InviteResult
}

// work is one job's attempt: the Keycloak call, and what its outcome
// writes.
type work = outbox.Attempt[result]

// unlessStale is an attempt's Check: under the tenant's row lock, stale
// tells whether the job's subject changed since the attempt read it; then
// nothing is recorded and the job runs again.
func unlessStale(tenantID uuid.UUID, stale func(ctx context.Context, tx *ent.Tx) (bool, error)) func(context.Context, *ent.Tx, error) (outbox.Verdict, error) {
	return func(ctx context.Context, tx *ent.Tx, _ error) (outbox.Verdict, error) {
		if _, err := lockTenant(ctx, tx, tenantID); err != nil {
			return outbox.Record, err
		}
		if stale, err := stale(ctx, tx); err != nil || !stale {
			return outbox.Record, err
		}
		return outbox.Again, nil
	}
}

// kindName is a job's kind for logs (an invitation's without its hash).
func kindName(kind string) string {
	if strings.HasPrefix(kind, kindInvitePrefix) {
		return strings.TrimSuffix(kindInvitePrefix, ":")
	}
	return kind
}

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
	w := &work{Tenant: t.Slug}
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
		w.Call = func(ctx context.Context) (result, error) {
			if orgID == "" {
				return result{}, errNoOrg
			}
			if sealed != nil && len(*sealed) > 0 {
				plain, err := s.box.Open(*sealed, secretAAD(t.ID))
				if err != nil {
					return result{}, fmt.Errorf("open the client secret (IDP_SECRET_KEY): %w", err)
				}
				idp.ClientSecret = string(plain)
				w.Scrub = func(m string) string { return strings.ReplaceAll(m, idp.ClientSecret, "[redacted]") }
			}
			return result{ok: true}, s.idps.EnsureIdentityProvider(ctx, idp)
		}
	} else {
		w.Call = func(ctx context.Context) (result, error) {
			return result{ok: true}, s.idps.RemoveIdentityProvider(ctx, orgID, alias)
		}
	}
	w.Check = unlessStale(t.ID, func(ctx context.Context, tx *ent.Tx) (bool, error) {
		cur, err := tx.TenantIdpConfig.Query().Where(tenantidpconfig.TenantID(t.ID)).Only(ctx)
		switch {
		case ent.IsNotFound(err):
			return gen != 0, nil
		case err != nil:
			return false, err
		}
		return cur.Generation != gen, nil
	})
	w.Record = func(ctx context.Context, tx *ent.Tx, now time.Time, attempt int, _ result, perr error) error {
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
				alias, t.Slug, attempt, outbox.Backoff(attempt)), true, fields)
		case perr != nil:
			fields["error"] = text.Truncate(perr.Error(), 1000)
			ev = event("keycloak.idp_remove_failed", fmt.Sprintf("Keycloak identity provider %s of %s: removal failed (attempt %d); retrying in %s",
				alias, t.Slug, attempt, outbox.Backoff(attempt)), true, fields)
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

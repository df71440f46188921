package sso

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/platform/tenant-registry/ent"
	entoutbox "github.com/platform/tenant-registry/ent/outbox"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/ids"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/outbox"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/text"
)

// Roles an invitee may get.
const (
	RoleMember  = "member"
	RoleITAdmin = keycloak.AdminRole
)

// Invitation states.
const (
	InvitationSent    = "sent"
	InvitationPending = "pending"
)

// InviteInput is what InviteUser takes.
type InviteInput struct {
	TenantID, Email, Name, Role string
}

// Invitation is InviteUser's answer.
type Invitation struct {
	Email, Role, State string
	// InviteURL is set once Keycloak took the invitation (never in prod).
	InviteURL string
}

// Invite invites a person to the tenant: the invitation is queued in the
// outbox in the same transaction as its user.invited event and tried once
// at once; Keycloak down leaves it pending, and the worker retries it
// until it lands. Inviting the same address again re-sends it.
func (s *Service) Invite(ctx context.Context, in InviteInput) (*Invitation, error) {
	tid, err := ids.ParseTenant("tenant_id", in.TenantID)
	if err != nil {
		return nil, err
	}
	if err := principal.CheckTenant(ctx, tid.String()); err != nil {
		return nil, err
	}
	email, err := checkEmail(in.Email)
	if err != nil {
		return nil, err
	}
	name, err := text.DisplayName("name", in.Name, maxNameLen)
	if err != nil && strings.TrimSpace(in.Name) != "" {
		return nil, err
	}
	role := in.Role
	switch role {
	case "", RoleMember:
		role = RoleMember
	case RoleITAdmin:
	default:
		return nil, errs.Errorf(errs.Invalid, "role: must be %s or %s", RoleMember, RoleITAdmin)
	}
	kind := inviteKind(email)
	err = store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		t, err := lockTenant(ctx, tx, tid)
		if err != nil {
			return err
		}
		if err := armJob(ctx, tx, tid, kind, map[string]string{"email": email, "name": name, "role": role}, s.clock()); err != nil {
			return err
		}
		return s.audit.Record(ctx, tx, audit.Entry{
			Action: "user.invited", CRUD: "c", TenantID: tid, TenantName: t.Name,
			Target:      audit.Target{ID: email, Name: email, Type: "user"},
			Description: fmt.Sprintf("%s invited to %s as %s", email, t.Slug, role),
			Fields:      map[string]string{"email": email, "role": role},
		})
	})
	if err != nil {
		return nil, err
	}
	out := &Invitation{Email: email, Role: role, State: InvitationPending}
	if res, ok := s.runNow(ctx, tid, kind); ok {
		out.State = InvitationSent
		if !s.hideInviteURLs {
			out.InviteURL = res.InviteURL
		}
	}
	return out, nil
}

func (s *Service) prepareInvite(job *ent.Outbox, t *ent.Tenant, orgID string, event eventFunc) *work {
	p := job.Payload
	req := keycloak.InviteRequest{OrgID: orgID, Slug: t.Slug, Email: p["email"], Name: p["name"], Admin: p["role"] == RoleITAdmin}
	attempts := job.Attempts
	return &work{
		Tenant: t.Slug,
		Call: func(ctx context.Context) (result, error) {
			if orgID == "" {
				return result{}, errNoOrg
			}
			res, err := s.inviter.Invite(ctx, req)
			return result{ok: err == nil, invite: res}, err
		},
		// Invited again meanwhile (the job re-armed: its attempts reset):
		// the newer invitation runs instead.
		Check: unlessStale(t.ID, func(ctx context.Context, tx *ent.Tx) (bool, error) {
			cur, err := tx.Outbox.Query().Where(entoutbox.ID(job.ID)).Only(ctx)
			if err != nil {
				return false, err
			}
			return cur.Attempts != attempts, nil
		}),
		Record: func(ctx context.Context, tx *ent.Tx, _ time.Time, attempt int, res result, perr error) error {
			fields := map[string]string{"email": req.Email, "role": p["role"], "attempt": fmt.Sprint(attempt)}
			if perr != nil {
				fields["error"] = text.Truncate(perr.Error(), 1000)
				return s.audit.Record(ctx, tx, event("keycloak.invitation_failed",
					fmt.Sprintf("Keycloak invitation of %s to %s failed (attempt %d); retrying in %s", req.Email, t.Slug, attempt, outbox.Backoff(attempt)),
					true, fields))
			}
			fields["user_id"] = res.invite.UserID
			return s.audit.Record(ctx, tx, event("keycloak.invitation_sent",
				fmt.Sprintf("Keycloak invitation of %s to %s sent", req.Email, t.Slug), false, fields))
		},
	}
}

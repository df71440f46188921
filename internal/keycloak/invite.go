package keycloak

import (
	"context"
	"errors"
	"net/url"
	"strings"
)

// Inviter invites a person into a tenant's organisation. Invite must be
// idempotent: the service retries it (from the durable outbox) until it
// succeeds; a retry re-sends the email.
type Inviter interface {
	Invite(ctx context.Context, req InviteRequest) (InviteResult, error)
}

// InviteRequest says whom to invite where.
type InviteRequest struct {
	OrgID string // the tenant's organisation
	Slug  string // the tenant's slug (the Mock's dev link names it)
	Email string
	Name  string // optional display name
	// Admin grants the realm role IT_ADMIN too.
	Admin bool
}

// InviteResult is what Invite did.
type InviteResult struct {
	UserID string
	// InviteURL is where the invited person sets up their account (see
	// HTTPAdapter: Keycloak never returns the emailed link).
	InviteURL string
}

var _ Inviter = (*HTTPAdapter)(nil)

// Invite implements Inviter, each step idempotent: find the user by exact
// email or create them (username = email, required actions VERIFY_EMAIL and
// UPDATE_PASSWORD; a 409 looks them up again), add them as a member (409:
// already one, fine), assign IT_ADMIN when asked (unless assigned), and send
// the execute-actions email (a 500 "Failed to send execute actions email"
// fails the attempt; the retry sends it again). InviteURL is the same as
// Provision's: Config.InviteURL or the realm's account console.
func (a *HTTPAdapter) Invite(ctx context.Context, req InviteRequest) (InviteResult, error) {
	var res InviteResult
	if req.OrgID == "" || strings.TrimSpace(req.Email) == "" {
		return res, errors.New("keycloak: invite: organisation id and email are required")
	}
	userID, err := a.ensureUser(ctx, req.Email, req.Name)
	if err != nil {
		return res, err
	}
	res.UserID = userID
	if err := a.ensureMember(ctx, req.OrgID, userID); err != nil {
		return res, err
	}
	if req.Admin {
		if err := a.ensureRole(ctx, userID, AdminRole); err != nil {
			return res, err
		}
	}
	if err := a.sendActionsEmail(ctx, userID); err != nil {
		return res, err
	}
	res.InviteURL = a.cfg.InviteURL
	return res, nil
}

var (
	_ IdentityProviders = Mock{}
	_ Inviter           = Mock{}
)

// EnsureIdentityProvider implements IdentityProviders: the Mock keeps
// nothing.
func (m Mock) EnsureIdentityProvider(ctx context.Context, idp IdentityProvider) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if idp.OrgID == "" || idp.Alias == "" {
		return errors.New("keycloak: identity provider: organisation id and alias are required")
	}
	return nil
}

// RemoveIdentityProvider implements IdentityProviders.
func (m Mock) RemoveIdentityProvider(ctx context.Context, _, alias string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if alias == "" {
		return errors.New("keycloak: identity provider: alias is required")
	}
	return nil
}

// Invite implements Inviter: UserID "mock-user-<email>", InviteURL
// "<BaseURL>/dev-invite/<slug>?email=<email>" (as Provision's).
func (m Mock) Invite(ctx context.Context, req InviteRequest) (InviteResult, error) {
	if err := ctx.Err(); err != nil {
		return InviteResult{}, err
	}
	if req.OrgID == "" || req.Email == "" {
		return InviteResult{}, errors.New("keycloak: invite: organisation id and email are required")
	}
	base := m.BaseURL
	if base == "" {
		base = "http://localhost:8080"
	}
	return InviteResult{
		UserID:    "mock-user-" + req.Email,
		InviteURL: base + "/dev-invite/" + url.PathEscape(req.Slug) + "?" + url.Values{"email": {req.Email}}.Encode(),
	}, nil
}

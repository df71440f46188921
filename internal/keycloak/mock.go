package keycloak

import (
	"context"
	"errors"
	"net/url"
)

// Mock is the dev Adapter, used when KEYCLOAK_ADMIN_URL is empty. It makes no
// network calls, keeps no state and is safe for concurrent use. Its results
// are deterministic:
//
//	OrgID:       "mock-org-<slug>"
//	AdminUserID: "mock-user-<email>" (empty when no AdminEmail)
//	InviteURL:   "http://localhost:8080/dev-invite/<slug>?email=<email>"
//	             (empty when no AdminEmail; BaseURL replaces the default
//	             "http://localhost:8080" when set)
//
// The dev-invite URL leads nowhere real: it only marks that an invite would
// have been sent. Stage and prod refuse to start with the Mock.
type Mock struct {
	// BaseURL of the dev invite link; default "http://localhost:8080".
	BaseURL string
}

var _ Adapter = Mock{}

// Provision implements Adapter.
func (m Mock) Provision(ctx context.Context, req ProvisionRequest) (ProvisionResult, error) {
	if err := ctx.Err(); err != nil {
		return ProvisionResult{}, err
	}
	if req.Slug == "" || req.Name == "" {
		return ProvisionResult{}, errors.New("keycloak: provision: slug and name are required")
	}
	res := ProvisionResult{OrgID: "mock-org-" + req.Slug}
	if req.AdminEmail == "" {
		return res, nil
	}
	base := m.BaseURL
	if base == "" {
		base = "http://localhost:8080"
	}
	res.AdminUserID = "mock-user-" + req.AdminEmail
	res.InviteURL = base + "/dev-invite/" + url.PathEscape(req.Slug) + "?" + url.Values{"email": {req.AdminEmail}}.Encode()
	return res, nil
}

package keycloak

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Organizations changes and removes tenants' organisations after they were
// provisioned: the rename that follows UpdateTenant and the delete of the
// offboarding purge. Both are retried from the durable outbox until they
// succeed, so both must be idempotent.
type Organizations interface {
	// RenameOrganization sets the organisation's display name (the alias,
	// which is the tenant's slug, never changes).
	RenameOrganization(ctx context.Context, req OrgRequest) error
	// DeleteOrganization deletes the organisation; one that is not there
	// (404) counts as deleted.
	DeleteOrganization(ctx context.Context, req OrgRequest) error
}

// OrgRequest names a tenant's organisation: by OrgID when known, else (or
// when that id is stale) by its alias, the tenant's slug.
type OrgRequest struct {
	OrgID, Slug string
	// Name is the display name RenameOrganization sets.
	Name string
}

var (
	_ Organizations = (*HTTPAdapter)(nil)
	_ Organizations = Mock{}
)

// ErrOrgNotFound: RenameOrganization found no organisation by id or alias.
var ErrOrgNotFound = errors.New("keycloak: organisation not found")

// RenameOrganization implements Organizations: GET the organisation, then
// PUT it back whole with the new name (Keycloak's update takes the whole
// representation: 204; 409 when another organisation has that name).
func (a *HTTPAdapter) RenameOrganization(ctx context.Context, req OrgRequest) error {
	if req.Name == "" {
		return errors.New("keycloak: rename organisation: name is required")
	}
	id, rep, err := a.orgByIDOrAlias(ctx, req)
	if err != nil {
		return err
	}
	if id == "" {
		return fmt.Errorf("keycloak: rename organisation %q: %w", req.Slug, ErrOrgNotFound)
	}
	var name string
	if err := json.Unmarshal(rep["name"], &name); err == nil && name == req.Name {
		return nil // already done (an earlier attempt whose outcome was lost)
	}
	b, err := json.Marshal(req.Name)
	if err != nil {
		return fmt.Errorf("keycloak: rename organisation: %w", err)
	}
	rep["name"] = b
	_, err = a.call(ctx, "rename organisation", http.MethodPut, a.orgsPath(id), rep, nil, http.StatusNoContent, http.StatusOK)
	return err
}

// DeleteOrganization implements Organizations: DELETE by id (204, or 404
// when it is gone already), then by alias, so that an organisation whose
// id was never recorded (a create whose answer was lost) goes too.
func (a *HTTPAdapter) DeleteOrganization(ctx context.Context, req OrgRequest) error {
	if req.OrgID != "" {
		if _, err := a.call(ctx, "delete organisation", http.MethodDelete, a.orgsPath(req.OrgID), nil, nil,
			http.StatusNoContent, http.StatusNotFound); err != nil {
			return err
		}
	}
	if req.Slug == "" {
		return nil
	}
	id, err := a.findOrgByAlias(ctx, req.Slug)
	if err != nil || id == "" {
		return err
	}
	_, err = a.call(ctx, "delete organisation", http.MethodDelete, a.orgsPath(id), nil, nil,
		http.StatusNoContent, http.StatusNotFound)
	return err
}

// orgByIDOrAlias reads the organisation's whole representation (every
// field kept as Keycloak sent it, for a PUT back), by req.OrgID if it
// still has alias req.Slug, else by alias. id is "" when there is none.
func (a *HTTPAdapter) orgByIDOrAlias(ctx context.Context, req OrgRequest) (id string, rep map[string]json.RawMessage, err error) {
	get := func(id string) (map[string]json.RawMessage, error) {
		var rep map[string]json.RawMessage
		status, err := a.call(ctx, "get organisation", http.MethodGet, a.orgsPath(id), nil, &rep, http.StatusOK, http.StatusNotFound)
		if err != nil || status == http.StatusNotFound {
			return nil, err
		}
		var alias string
		_ = json.Unmarshal(rep["alias"], &alias)
		if req.Slug != "" && alias != req.Slug {
			return nil, nil // a stale id: somebody else's organisation
		}
		return rep, nil
	}
	if req.OrgID != "" {
		if rep, err = get(req.OrgID); err != nil || rep != nil {
			return req.OrgID, rep, err
		}
	}
	if req.Slug == "" {
		return "", nil, nil
	}
	if id, err = a.findOrgByAlias(ctx, req.Slug); err != nil || id == "" {
		return "", nil, err
	}
	if rep, err = get(id); err != nil || rep == nil {
		return "", nil, err
	}
	return id, rep, nil
}

// RenameOrganization implements Organizations (nothing to do in dev).
func (Mock) RenameOrganization(ctx context.Context, _ OrgRequest) error { return ctx.Err() }

// DeleteOrganization implements Organizations (nothing to do in dev).
func (Mock) DeleteOrganization(ctx context.Context, _ OrgRequest) error { return ctx.Err() }

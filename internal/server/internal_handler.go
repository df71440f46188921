package server

import (
	"context"

	"connectrpc.com/connect"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	"github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/entitlement"
	"github.com/platform/tenant-registry/internal/registry"
)

// internalHandler serves InternalService (service role only). VerifyApiKey
// is still the embedded Unimplemented one.
type internalHandler struct {
	tenantregistryv1connect.UnimplementedInternalServiceHandler
	entitlements *entitlement.Service
}

var _ tenantregistryv1connect.InternalServiceHandler = (*internalHandler)(nil)

// ResolveClaims answers a tenant's claims at Keycloak token issuance: one
// indexed query per call.
func (h *internalHandler) ResolveClaims(ctx context.Context, req *connect.Request[v1.ResolveClaimsRequest]) (*connect.Response[v1.ResolveClaimsResponse], error) {
	if err := callerHasRole(ctx, registry.RoleInternal); err != nil {
		return nil, err
	}
	c, err := h.entitlements.Claims(ctx, req.Msg.TenantId, req.Msg.Slug)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.ResolveClaimsResponse{
		TenantId: c.TenantID,
		Slug:     c.Slug,
		Products: c.Products,
		Plan:     c.Plan,
		Status:   c.Status,
	}), nil
}

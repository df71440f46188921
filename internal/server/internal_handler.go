package server

import (
	"context"

	"connectrpc.com/connect"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	"github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/tenant"
)

// internalHandler serves InternalService (service role only).
type internalHandler struct {
	tenantregistryv1connect.UnimplementedInternalServiceHandler
	tenants *tenant.Service
	apiKeys *apikey.Service
}

var _ tenantregistryv1connect.InternalServiceHandler = (*internalHandler)(nil)

// ResolveClaims answers a tenant's claims at Keycloak token issuance: one
// indexed query per call.
func (h *internalHandler) ResolveClaims(ctx context.Context, req *connect.Request[v1.ResolveClaimsRequest]) (*connect.Response[v1.ResolveClaimsResponse], error) {
	c, err := h.tenants.Claims(ctx, req.Msg.TenantId, req.Msg.Slug)
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

// VerifyApiKey answers whether a key is good: valid, or not valid with a
// reason (unknown, revoked, expired, tenant_frozen). Any key string gets a
// normal answer — input that cannot be a key is "unknown" — so only a
// database failure (503) or a missing role is an error.
func (h *internalHandler) VerifyApiKey(ctx context.Context, req *connect.Request[v1.VerifyApiKeyRequest]) (*connect.Response[v1.VerifyApiKeyResponse], error) {
	v, err := h.apiKeys.Verify(ctx, req.Msg.Key)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.VerifyApiKeyResponse{
		Valid:     v.Valid,
		Reason:    v.Reason,
		TenantId:  v.TenantID,
		Slug:      v.Slug,
		KeyId:     v.KeyID,
		Scopes:    v.Scopes,
		Products:  v.Products,
		ProjectId: v.ProjectID,
	}), nil
}

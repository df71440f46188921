package server

import (
	"context"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	"github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/entitlement"
)

// entitlementHandler serves EntitlementService.
type entitlementHandler struct {
	entitlements *entitlement.Service
}

var _ tenantregistryv1connect.EntitlementServiceHandler = (*entitlementHandler)(nil)

func (h *entitlementHandler) ListEntitlements(ctx context.Context, req *connect.Request[v1.ListEntitlementsRequest]) (*connect.Response[v1.ListEntitlementsResponse], error) {
	tenantID := req.Msg.TenantId // a tenant caller's own (auth.Rules' tenant scope)
	list, err := h.entitlements.List(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	out := &v1.ListEntitlementsResponse{Entitlements: make([]*v1.Entitlement, len(list))}
	for i, p := range list {
		out.Entitlements[i] = entitlementPB(p)
	}
	return connect.NewResponse(out), nil
}

func (h *entitlementHandler) GrantEntitlement(ctx context.Context, req *connect.Request[v1.GrantEntitlementRequest]) (*connect.Response[v1.GrantEntitlementResponse], error) {
	p, err := h.entitlements.Grant(ctx, req.Msg.TenantId, req.Msg.Product)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.GrantEntitlementResponse{Entitlement: entitlementPB(p)}), nil
}

func (h *entitlementHandler) RevokeEntitlement(ctx context.Context, req *connect.Request[v1.RevokeEntitlementRequest]) (*connect.Response[v1.RevokeEntitlementResponse], error) {
	if err := h.entitlements.Revoke(ctx, req.Msg.TenantId, req.Msg.Product); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.RevokeEntitlementResponse{}), nil
}

// entitlementPB is an entitlement on the wire.
func entitlementPB(p *entitlement.Entitlement) *v1.Entitlement {
	out := &v1.Entitlement{
		TenantId:  p.TenantID.String(),
		Product:   p.Product,
		Status:    string(p.Status),
		Note:      p.Note,
		CreatedAt: timestamppb.New(p.CreatedAt),
		UpdatedAt: timestamppb.New(p.UpdatedAt),
	}
	if p.TrialEndsAt != nil {
		out.TrialEndsAt = timestamppb.New(*p.TrialEndsAt)
	}
	return out
}

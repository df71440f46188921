package server

import (
	"context"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	"github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/tenant"
)

// tenantHandler serves TenantService.
type tenantHandler struct {
	tenantregistryv1connect.UnimplementedTenantServiceHandler
	tenants *tenant.Service
	// export serves ExportTenant (tenant_export.go).
	export *tenantExporter
}

var _ tenantregistryv1connect.TenantServiceHandler = (*tenantHandler)(nil)

func (h *tenantHandler) CreateTenant(ctx context.Context, req *connect.Request[v1.CreateTenantRequest]) (*connect.Response[v1.CreateTenantResponse], error) {
	m := req.Msg
	t, err := h.tenants.Create(ctx, tenant.CreateInput{
		Slug: m.Slug, Name: m.Name, Plan: m.Plan, AdminEmail: m.AdminEmail, AdminName: m.AdminName,
	})
	if err != nil {
		return nil, err
	}
	res := &v1.CreateTenantResponse{Tenant: tenantPB(t)}
	if t.InviteURL != "" {
		res.InviteUrl = &t.InviteURL
	}
	return connect.NewResponse(res), nil
}

func (h *tenantHandler) GetTenant(ctx context.Context, req *connect.Request[v1.GetTenantRequest]) (*connect.Response[v1.GetTenantResponse], error) {
	t, err := h.tenants.Get(ctx, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.GetTenantResponse{Tenant: tenantPB(t)}), nil
}

func (h *tenantHandler) GetTenantBySlug(ctx context.Context, req *connect.Request[v1.GetTenantBySlugRequest]) (*connect.Response[v1.GetTenantBySlugResponse], error) {
	t, err := h.tenants.GetBySlug(ctx, req.Msg.Slug)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.GetTenantBySlugResponse{Tenant: tenantPB(t)}), nil
}

func (h *tenantHandler) ActivateTenant(ctx context.Context, req *connect.Request[v1.ActivateTenantRequest]) (*connect.Response[v1.ActivateTenantResponse], error) {
	t, err := h.tenants.Activate(ctx, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.ActivateTenantResponse{Tenant: tenantPB(t)}), nil
}

func (h *tenantHandler) CancelTenant(ctx context.Context, req *connect.Request[v1.CancelTenantRequest]) (*connect.Response[v1.CancelTenantResponse], error) {
	t, err := h.tenants.Cancel(ctx, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.CancelTenantResponse{Tenant: tenantPB(t)}), nil
}

func (h *tenantHandler) UpdateTenant(ctx context.Context, req *connect.Request[v1.UpdateTenantRequest]) (*connect.Response[v1.UpdateTenantResponse], error) {
	m := req.Msg
	t, err := h.tenants.Update(ctx, tenant.UpdateInput{ID: m.Id, Name: m.Name, Plan: m.Plan})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.UpdateTenantResponse{Tenant: tenantPB(t)}), nil
}

func (h *tenantHandler) DeleteTenant(ctx context.Context, req *connect.Request[v1.DeleteTenantRequest]) (*connect.Response[v1.DeleteTenantResponse], error) {
	t, err := h.tenants.Delete(ctx, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.DeleteTenantResponse{Tenant: tenantPB(t)}), nil
}

func (h *tenantHandler) RestoreTenant(ctx context.Context, req *connect.Request[v1.RestoreTenantRequest]) (*connect.Response[v1.RestoreTenantResponse], error) {
	t, err := h.tenants.Restore(ctx, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.RestoreTenantResponse{Tenant: tenantPB(t)}), nil
}

func tenantPB(t *tenant.Tenant) *v1.Tenant {
	out := &v1.Tenant{
		Id:                t.ID.String(),
		Slug:              t.Slug,
		Name:              t.Name,
		Status:            string(t.Status),
		Plan:              string(t.Plan),
		Products:          t.Products,
		ProvisioningState: t.ProvisioningState,
		CreatedAt:         timestamppb.New(t.CreatedAt),
		UpdatedAt:         timestamppb.New(t.UpdatedAt),
	}
	if t.KeycloakOrgID != nil {
		out.KeycloakOrgId = *t.KeycloakOrgID
	}
	if t.DeletionScheduledAt != nil {
		out.DeletionScheduledAt = timestamppb.New(*t.DeletionScheduledAt)
	}
	if out.Products == nil {
		out.Products = []string{}
	}
	return out
}

func (h *tenantHandler) ListTenants(ctx context.Context, req *connect.Request[v1.ListTenantsRequest]) (*connect.Response[v1.ListTenantsResponse], error) {
	m := req.Msg
	ts, next, err := h.tenants.List(ctx, tenant.ListInput{
		PageSize: m.PageSize, Cursor: m.Cursor, Status: m.Status, Plan: m.Plan, Query: m.Query,
	})
	if err != nil {
		return nil, err
	}
	out := &v1.ListTenantsResponse{Tenants: make([]*v1.Tenant, len(ts)), NextCursor: next}
	for i, t := range ts {
		out.Tenants[i] = tenantPB(t)
	}
	return connect.NewResponse(out), nil
}

func (h *tenantHandler) RetryProvisioning(ctx context.Context, req *connect.Request[v1.RetryProvisioningRequest]) (*connect.Response[v1.RetryProvisioningResponse], error) {
	t, err := h.tenants.RetryProvisioning(ctx, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.RetryProvisioningResponse{Tenant: tenantPB(t)}), nil
}

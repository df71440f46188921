package server

import (
	"context"

	"connectrpc.com/connect"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	"github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/catalog"
	"github.com/platform/tenant-registry/internal/entitlement"
)

// catalogHandler serves CatalogService.
type catalogHandler struct {
	catalog      *catalog.Catalog
	entitlements *entitlement.Service
}

var _ tenantregistryv1connect.CatalogServiceHandler = (*catalogHandler)(nil)

// ListProducts lists the catalog; for a tenant (tenant_id, or a tenant
// caller's own), each product carries the tenant's entitlement status.
func (h *catalogHandler) ListProducts(ctx context.Context, req *connect.Request[v1.ListProductsRequest]) (*connect.Response[v1.ListProductsResponse], error) {
	tenantID := req.Msg.TenantId // a tenant caller's own (auth.Rules' tenant scope)
	status := map[string]string{}
	if tenantID != "" {
		list, err := h.entitlements.List(ctx, tenantID)
		if err != nil {
			return nil, err
		}
		for _, p := range list {
			status[p.Product] = string(p.Status)
		}
	}
	products := h.catalog.Products()
	out := &v1.ListProductsResponse{Products: make([]*v1.Product, len(products))}
	for i, p := range products {
		out.Products[i] = &v1.Product{
			Key:               p.Key,
			DisplayName:       p.DisplayName,
			Description:       p.Description,
			TrialAvailable:    p.TrialAvailable,
			TrialDays:         int32(p.TrialDays),
			EntitlementStatus: status[p.Key],
		}
	}
	return connect.NewResponse(out), nil
}

func (h *catalogHandler) RequestProduct(ctx context.Context, req *connect.Request[v1.RequestProductRequest]) (*connect.Response[v1.RequestProductResponse], error) {
	tenantID := req.Msg.TenantId // a tenant caller's own (auth.Rules' tenant scope)
	p, err := h.entitlements.Request(ctx, tenantID, req.Msg.Product, req.Msg.Note)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.RequestProductResponse{Entitlement: entitlementPB(p)}), nil
}

func (h *catalogHandler) StartTrial(ctx context.Context, req *connect.Request[v1.StartTrialRequest]) (*connect.Response[v1.StartTrialResponse], error) {
	tenantID := req.Msg.TenantId // a tenant caller's own (auth.Rules' tenant scope)
	p, err := h.entitlements.StartTrial(ctx, tenantID, req.Msg.Product)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.StartTrialResponse{Entitlement: entitlementPB(p)}), nil
}

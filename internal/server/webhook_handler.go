package server

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	"github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/webhook"
)

// webhookHandler serves WebhookService. An endpoint's secret appears in
// the answers of CreateEndpoint and RotateEndpointSecret only.
type webhookHandler struct {
	tenantregistryv1connect.UnimplementedWebhookServiceHandler
	webhooks *webhook.Service
}

var _ tenantregistryv1connect.WebhookServiceHandler = (*webhookHandler)(nil)

func (h *webhookHandler) CreateEndpoint(ctx context.Context, req *connect.Request[v1.CreateEndpointRequest]) (*connect.Response[v1.CreateEndpointResponse], error) {
	m := req.Msg
	c, err := h.webhooks.Create(ctx, webhook.CreateInput{URL: m.Url, EventTypes: m.EventTypes, TenantID: m.TenantId, Description: m.Description})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.CreateEndpointResponse{Endpoint: endpointPB(c.Endpoint), Secret: c.Secret}), nil
}

func (h *webhookHandler) ListEndpoints(ctx context.Context, req *connect.Request[v1.ListEndpointsRequest]) (*connect.Response[v1.ListEndpointsResponse], error) {
	eps, next, err := h.webhooks.List(ctx, webhook.ListInput{PageSize: req.Msg.PageSize, Cursor: req.Msg.Cursor})
	if err != nil {
		return nil, err
	}
	out := &v1.ListEndpointsResponse{Endpoints: make([]*v1.WebhookEndpoint, len(eps)), NextCursor: next}
	for i, e := range eps {
		out.Endpoints[i] = endpointPB(e)
	}
	return connect.NewResponse(out), nil
}

func (h *webhookHandler) GetEndpoint(ctx context.Context, req *connect.Request[v1.GetEndpointRequest]) (*connect.Response[v1.GetEndpointResponse], error) {
	e, err := h.webhooks.Get(ctx, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.GetEndpointResponse{Endpoint: endpointPB(e)}), nil
}

func (h *webhookHandler) DeleteEndpoint(ctx context.Context, req *connect.Request[v1.DeleteEndpointRequest]) (*connect.Response[v1.DeleteEndpointResponse], error) {
	e, err := h.webhooks.Delete(ctx, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.DeleteEndpointResponse{Endpoint: endpointPB(e)}), nil
}

func (h *webhookHandler) RotateEndpointSecret(ctx context.Context, req *connect.Request[v1.RotateEndpointSecretRequest]) (*connect.Response[v1.RotateEndpointSecretResponse], error) {
	c, err := h.webhooks.RotateSecret(ctx, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.RotateEndpointSecretResponse{Endpoint: endpointPB(c.Endpoint), Secret: c.Secret}), nil
}

func (h *webhookHandler) ListDeliveries(ctx context.Context, req *connect.Request[v1.ListDeliveriesRequest]) (*connect.Response[v1.ListDeliveriesResponse], error) {
	m := req.Msg
	ds, next, err := h.webhooks.Deliveries(ctx, webhook.DeliveriesInput{EndpointID: m.Id, PageSize: m.PageSize, Cursor: m.Cursor})
	if err != nil {
		return nil, err
	}
	out := &v1.ListDeliveriesResponse{Deliveries: make([]*v1.WebhookDelivery, len(ds)), NextCursor: next}
	for i, d := range ds {
		out.Deliveries[i] = deliveryPB(d)
	}
	return connect.NewResponse(out), nil
}

func (h *webhookHandler) RetryDelivery(ctx context.Context, req *connect.Request[v1.RetryDeliveryRequest]) (*connect.Response[v1.RetryDeliveryResponse], error) {
	d, err := h.webhooks.Retry(ctx, req.Msg.Id, req.Msg.DeliveryId)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.RetryDeliveryResponse{Delivery: deliveryPB(d)}), nil
}

// endpointPB describes an endpoint: never its secret.
func endpointPB(e *webhook.Endpoint) *v1.WebhookEndpoint {
	out := &v1.WebhookEndpoint{
		Id: e.ID.String(), Url: e.URL, Description: e.Description, EventTypes: e.EventTypes,
		CreatedBy: e.CreatedBy, CreatedAt: timestamppb.New(e.CreatedAt), UpdatedAt: timestamppb.New(e.UpdatedAt),
		PreviousSecretExpiresAt: optionalTime(e.PreviousSecretUntil),
		FailingSince:            optionalTime(e.FailingSince),
		DisabledAt:              optionalTime(e.DisabledAt),
		Disabled:                e.DisabledAt != nil,
	}
	if e.TenantID != nil {
		out.TenantId = e.TenantID.String()
	}
	return out
}

func deliveryPB(d *webhook.Delivery) *v1.WebhookDelivery {
	out := &v1.WebhookDelivery{
		Id: d.ID.String(), WebhookId: d.WebhookID, EndpointId: d.EndpointID.String(),
		EventId: d.EventID.String(), EventType: d.EventType, Status: d.Status,
		Attempts: int32(d.Attempts), LastHttpStatus: int32(d.LastStatus), LastError: d.LastError,
		NextAttemptAt: optionalTime(d.NextAttemptAt), DeliveredAt: optionalTime(d.DeliveredAt),
		CreatedAt: timestamppb.New(d.CreatedAt),
	}
	if d.TenantID != nil {
		out.TenantId = *d.TenantID
	}
	return out
}

func optionalTime(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

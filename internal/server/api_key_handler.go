package server

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	"github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/errs"
)

// apiKeyHandler serves ApiKeyService. The plaintext key appears in the
// answers of CreateApiKey and RotateApiKey only.
type apiKeyHandler struct {
	tenantregistryv1connect.UnimplementedApiKeyServiceHandler
	keys *apikey.Service
}

var _ tenantregistryv1connect.ApiKeyServiceHandler = (*apiKeyHandler)(nil)

func (h *apiKeyHandler) CreateApiKey(ctx context.Context, req *connect.Request[v1.CreateApiKeyRequest]) (*connect.Response[v1.CreateApiKeyResponse], error) {
	m := req.Msg
	in := apikey.CreateInput{TenantID: m.TenantId, Name: m.Name, Scopes: m.Scopes, ProjectID: m.ProjectId}
	if m.ExpiresAt != nil {
		if err := m.ExpiresAt.CheckValid(); err != nil {
			return nil, errs.Errorf(errs.Invalid, "expires_at: not a valid timestamp")
		}
		t := m.ExpiresAt.AsTime().UTC().Truncate(time.Microsecond)
		in.ExpiresAt = &t
	}
	c, err := h.keys.Create(ctx, in)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.CreateApiKeyResponse{ApiKey: apiKeyPB(c.Key), Key: c.Plaintext}), nil
}

func (h *apiKeyHandler) ListApiKeys(ctx context.Context, req *connect.Request[v1.ListApiKeysRequest]) (*connect.Response[v1.ListApiKeysResponse], error) {
	m := req.Msg
	keys, next, err := h.keys.List(ctx, apikey.ListInput{TenantID: m.TenantId, PageSize: m.PageSize, Cursor: m.Cursor})
	if err != nil {
		return nil, err
	}
	out := &v1.ListApiKeysResponse{ApiKeys: make([]*v1.ApiKey, len(keys)), NextCursor: next}
	for i, k := range keys {
		out.ApiKeys[i] = apiKeyPB(k)
	}
	return connect.NewResponse(out), nil
}

func (h *apiKeyHandler) RevokeApiKey(ctx context.Context, req *connect.Request[v1.RevokeApiKeyRequest]) (*connect.Response[v1.RevokeApiKeyResponse], error) {
	k, err := h.keys.Revoke(ctx, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.RevokeApiKeyResponse{ApiKey: apiKeyPB(k)}), nil
}

func (h *apiKeyHandler) RotateApiKey(ctx context.Context, req *connect.Request[v1.RotateApiKeyRequest]) (*connect.Response[v1.RotateApiKeyResponse], error) {
	secs := int64(req.Msg.OverlapSeconds)
	if secs < 0 || secs > int64(apikey.MaxOverlap/time.Second) {
		return nil, errs.Errorf(errs.Invalid, "overlap_seconds: must be from 0 to %d", int64(apikey.MaxOverlap/time.Second))
	}
	r, err := h.keys.Rotate(ctx, req.Msg.Id, time.Duration(secs)*time.Second)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.RotateApiKeyResponse{
		ApiKey: apiKeyPB(r.New), Key: r.Plaintext, PreviousApiKey: apiKeyPB(r.Previous),
	}), nil
}

// apiKeyPB describes a key: never its secret or hash.
func apiKeyPB(k *apikey.Key) *v1.ApiKey {
	out := &v1.ApiKey{
		Id:        k.ID.String(),
		TenantId:  k.TenantID.String(),
		Name:      k.Name,
		Prefix:    k.Prefix,
		Scopes:    k.Scopes,
		CreatedBy: k.CreatedBy,
		CreatedAt: timestamppb.New(k.CreatedAt),
		Revoked:   k.RevokedAt != nil,
	}
	if k.ExpiresAt != nil {
		out.ExpiresAt = timestamppb.New(*k.ExpiresAt)
	}
	if k.LastUsedAt != nil {
		out.LastUsedAt = timestamppb.New(*k.LastUsedAt)
	}
	if k.RevokedAt != nil {
		out.RevokedAt = timestamppb.New(*k.RevokedAt)
	}
	if k.ProjectID != nil {
		out.ProjectId = k.ProjectID.String()
	}
	return out
}

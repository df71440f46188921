package server

import (
	"context"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	"github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/sso"
)

// ssoHandler serves SsoService.
type ssoHandler struct {
	tenantregistryv1connect.UnimplementedSsoServiceHandler
	sso *sso.Service
}

var _ tenantregistryv1connect.SsoServiceHandler = (*ssoHandler)(nil)

func (h *ssoHandler) SetIdpConfig(ctx context.Context, req *connect.Request[v1.SetIdpConfigRequest]) (*connect.Response[v1.SetIdpConfigResponse], error) {
	m := req.Msg
	in := sso.SetInput{TenantID: m.TenantId, Protocol: m.Protocol, Domains: m.Domains}
	if o := m.Oidc; o != nil {
		in.OIDC = &sso.OIDCInput{Issuer: o.Issuer, ClientID: o.ClientId, ClientSecret: o.ClientSecret}
	}
	if s := m.Saml; s != nil {
		in.SAML = &sso.SAMLInput{MetadataURL: s.MetadataUrl, EntityID: s.EntityId, SSOURL: s.SsoUrl, SigningCertificate: s.SigningCertificate}
	}
	c, err := h.sso.Set(ctx, in)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.SetIdpConfigResponse{IdpConfig: idpConfigPB(c)}), nil
}

func (h *ssoHandler) GetIdpConfig(ctx context.Context, req *connect.Request[v1.GetIdpConfigRequest]) (*connect.Response[v1.GetIdpConfigResponse], error) {
	c, err := h.sso.Get(ctx, req.Msg.TenantId)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.GetIdpConfigResponse{IdpConfig: idpConfigPB(c)}), nil
}

func (h *ssoHandler) DeleteIdpConfig(ctx context.Context, req *connect.Request[v1.DeleteIdpConfigRequest]) (*connect.Response[v1.DeleteIdpConfigResponse], error) {
	if err := h.sso.Delete(ctx, req.Msg.TenantId); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.DeleteIdpConfigResponse{}), nil
}

// idpConfigPB never carries the client secret: sso.Config has none.
func idpConfigPB(c *sso.Config) *v1.IdpConfig {
	out := &v1.IdpConfig{
		TenantId: c.TenantID.String(), Protocol: c.Protocol, Domains: c.Domains,
		HasClientSecret: c.HasClientSecret, IdpState: c.State, Alias: c.Alias,
		CreatedAt: timestamppb.New(c.CreatedAt), UpdatedAt: timestamppb.New(c.UpdatedAt),
	}
	switch c.Protocol {
	case sso.OIDC:
		out.Oidc = &v1.OidcConfig{Issuer: c.Issuer, ClientId: c.ClientID}
	case sso.SAML:
		out.Saml = &v1.SamlConfig{MetadataUrl: c.MetadataURL, EntityId: c.EntityID, SsoUrl: c.SSOURL, SigningCertificate: c.SigningCertificate}
	}
	if out.Domains == nil {
		out.Domains = []string{}
	}
	return out
}

func (h *tenantHandler) InviteUser(ctx context.Context, req *connect.Request[v1.InviteUserRequest]) (*connect.Response[v1.InviteUserResponse], error) {
	m := req.Msg
	inv, err := h.sso.Invite(ctx, sso.InviteInput{TenantID: m.TenantId, Email: m.Email, Name: m.Name, Role: m.Role})
	if err != nil {
		return nil, err
	}
	res := &v1.InviteUserResponse{Email: inv.Email, Role: inv.Role, State: inv.State}
	if inv.InviteURL != "" {
		res.InviteUrl = &inv.InviteURL
	}
	return connect.NewResponse(res), nil
}

package tenant

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/tenantidpconfig"
)

// IdpConfigExport answers the tenant's identity provider configuration
// for the tenant export (nil when it has none): the columns named here and
// no other, so that a secret column (the sealed client secret) can never
// be exported by accident — a new non-secret column is added here.
func (s *Service) IdpConfigExport(ctx context.Context, tenantID uuid.UUID) (map[string]any, error) {
	c, err := s.client.TenantIdpConfig.Query().Where(tenantidpconfig.TenantID(tenantID)).WithDomains().Only(ctx)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read idp config: %w", err)
	}
	// structpb-friendly values only (the export's proto is a Struct).
	domains := make([]any, 0, len(c.Edges.Domains))
	for _, d := range c.Edges.Domains {
		domains = append(domains, d.Domain)
	}
	return map[string]any{
		"id":                       c.ID.String(),
		"tenant_id":                c.TenantID.String(),
		"protocol":                 string(c.Protocol),
		"issuer_url":               c.IssuerURL,
		"client_id":                c.ClientID,
		"enabled":                  c.Enabled,
		"has_client_secret":        c.ClientSecretSealed != nil,
		"saml_entity_id":           c.SamlEntityID,
		"saml_sso_url":             c.SamlSSOURL,
		"saml_signing_certificate": c.SamlSigningCertificate,
		"idp_state":                c.IdpState,
		"domains":                  domains,
		"created_at":               c.CreatedAt.UTC().Format(time.RFC3339Nano),
		"updated_at":               c.UpdatedAt.UTC().Format(time.RFC3339Nano),
	}, nil
}

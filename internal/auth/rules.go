package auth

import (
	c "github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/principal"
)

// Access is a set of callers, besides platform admins (realm role
// platform-admin), who may call everything.
type Access uint8

const (
	// AdminOnly: platform admins only.
	AdminOnly Access = 0
	// TenantUser: any user of a tenant (a token with a tenant_id claim),
	// for their own tenant.
	TenantUser Access = 1 << iota
	// TenantAdmin: a tenant's IT_ADMIN, for their own tenant.
	TenantAdmin
	// Service: other services (client-credentials token with the role
	// tenant-registry-internal), for any tenant.
	Service
)

// Rule is who may call one RPC. TenantField names the request field that
// holds the tenant the call is about: a tenant caller may only name their
// own tenant there (another tenant's id answers not_found), and an empty
// field defaults to their own. RPCs that address an object by its own id
// (an API key, a slug) check the object's tenant in the service instead.
// On an AdminOnly rule the field only shapes the refusal: a tenant caller
// naming another tenant gets not_found, their own permission_denied.
type Rule struct {
	Access      Access
	TenantField string
}

// Rules is who may do what (the "who" column of the README's API table),
// one line per RPC. An RPC missing here is refused to everyone (Authorize
// fails closed), and a test fails when a generated procedure has no line.
var Rules = map[string]Rule{
	// Tenants.
	c.TenantServiceCreateTenantProcedure:      {AdminOnly, ""},
	c.TenantServiceGetTenantProcedure:         {TenantUser | TenantAdmin, "id"},
	c.TenantServiceGetTenantBySlugProcedure:   {TenantUser | TenantAdmin | Service, ""}, // tenant checked in the service
	c.TenantServiceListTenantsProcedure:       {AdminOnly, ""},
	c.TenantServiceActivateTenantProcedure:    {AdminOnly, "id"},
	c.TenantServiceCancelTenantProcedure:      {AdminOnly, "id"},
	c.TenantServiceRetryProvisioningProcedure: {AdminOnly, "id"},
	c.TenantServiceUpdateTenantProcedure:      {AdminOnly, "id"},
	c.TenantServiceDeleteTenantProcedure:      {AdminOnly, "id"},
	c.TenantServiceRestoreTenantProcedure:     {AdminOnly, "id"},
	c.TenantServiceExportTenantProcedure:      {TenantAdmin, "id"},
	// Projects.
	c.ProjectServiceCreateProjectProcedure: {TenantAdmin, "tenant_id"},
	c.ProjectServiceListProjectsProcedure:  {TenantUser | TenantAdmin, "tenant_id"},
	c.ProjectServiceGetProjectProcedure:    {TenantUser | TenantAdmin, "tenant_id"},
	c.ProjectServiceUpdateProjectProcedure: {TenantAdmin, "tenant_id"},
	c.ProjectServiceDeleteProjectProcedure: {TenantAdmin, "tenant_id"},
	c.TenantServiceInviteUserProcedure:     {TenantAdmin, "tenant_id"},
	// Single sign-on: the tenant's IT_ADMIN.
	c.SsoServiceSetIdpConfigProcedure:    {TenantAdmin, "tenant_id"},
	c.SsoServiceGetIdpConfigProcedure:    {TenantAdmin, "tenant_id"},
	c.SsoServiceDeleteIdpConfigProcedure: {TenantAdmin, "tenant_id"},
	// Entitlements and the catalog.
	c.EntitlementServiceListEntitlementsProcedure:  {TenantUser | TenantAdmin, "tenant_id"},
	c.EntitlementServiceGrantEntitlementProcedure:  {AdminOnly, ""},
	c.EntitlementServiceRevokeEntitlementProcedure: {AdminOnly, ""},
	c.CatalogServiceListProductsProcedure:          {TenantUser | TenantAdmin, "tenant_id"},
	c.CatalogServiceRequestProductProcedure:        {TenantAdmin, "tenant_id"},
	c.CatalogServiceStartTrialProcedure:            {TenantAdmin, "tenant_id"},
	// API keys.
	c.ApiKeyServiceCreateApiKeyProcedure: {TenantAdmin, "tenant_id"},
	c.ApiKeyServiceListApiKeysProcedure:  {TenantAdmin, "tenant_id"},
	c.ApiKeyServiceRevokeApiKeyProcedure: {TenantAdmin, ""}, // key's tenant checked in the service
	c.ApiKeyServiceRotateApiKeyProcedure: {TenantAdmin, ""}, // key's tenant checked in the service
	// Internal: other services only.
	c.InternalServiceVerifyApiKeyProcedure:  {Service, ""},
	c.InternalServiceResolveClaimsProcedure: {Service, ""},
	// Audit.
	c.AuditServiceAppendEventProcedure:      {Service | TenantAdmin, "tenant_id"},
	c.AuditServiceListEventsProcedure:       {TenantAdmin, "tenant_id"},
	c.AuditServiceExportEventsProcedure:     {TenantAdmin, "tenant_id"},
	c.AuditServiceVerifyAuditChainProcedure: {TenantAdmin, "tenant_id"},
	c.AuditServiceCreateDigestProcedure:     {TenantAdmin, "tenant_id"},
	c.AuditServiceListDigestsProcedure:      {TenantAdmin, "tenant_id"},
	c.AuditServiceListPublicKeysProcedure:   {TenantAdmin, ""}, // public keys: no tenant's
	// Webhooks: platform admins only.
	c.WebhookServiceCreateEndpointProcedure:       {AdminOnly, ""},
	c.WebhookServiceListEndpointsProcedure:        {AdminOnly, ""},
	c.WebhookServiceGetEndpointProcedure:          {AdminOnly, ""},
	c.WebhookServiceDeleteEndpointProcedure:       {AdminOnly, ""},
	c.WebhookServiceRotateEndpointSecretProcedure: {AdminOnly, ""},
	c.WebhookServiceListDeliveriesProcedure:       {AdminOnly, ""},
	c.WebhookServiceRetryDeliveryProcedure:        {AdminOnly, ""},
}

// viewerProcedures are the RPCs a Retraced viewer token may call, for its
// group (tenant) only: TenantField scopes them like any tenant caller's.
var viewerProcedures = map[string]bool{
	c.AuditServiceListEventsProcedure:   true,
	c.AuditServiceExportEventsProcedure: true,
}

// Authorize decides whether p may call procedure. Denials are
// permission_denied; a procedure without a rule is denied to everyone,
// platform admins included, so a new RPC cannot ship without its rule.
func Authorize(p principal.Principal, procedure string) (Rule, error) {
	rule, ok := Rules[procedure]
	if !ok {
		return Rule{}, errs.Errorf(errs.Forbidden, "no access rule for %s", procedure)
	}
	// A tenant's token is a tenant caller whatever other roles it holds:
	// platform-admin and tenant-registry-internal count only on tokens
	// without a tenant_id claim, so one wrong role mapping cannot open
	// every tenant.
	if p.Viewer != nil {
		// A Retraced viewer token reads its group's log, nothing else.
		if viewerProcedures[procedure] {
			return rule, nil
		}
		return rule, errs.Errorf(errs.Forbidden, "permission denied: a viewer token reads the audit log only (ListEvents, ExportEvents)")
	}
	tenantless := p.TenantID == ""
	switch {
	case tenantless && p.HasRole(principal.RolePlatformAdmin):
		return rule, nil
	case tenantless && rule.Access&Service != 0 && p.HasRole(principal.RoleInternal):
		return rule, nil
	case rule.Access&TenantAdmin != 0 && !tenantless && p.HasRole(principal.RoleITAdmin):
		return rule, nil
	case rule.Access&TenantUser != 0 && !tenantless:
		return rule, nil
	}
	return rule, errs.Errorf(errs.Forbidden, "permission denied")
}

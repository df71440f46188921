package keycloak

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// IdentityProviders provisions a tenant's own identity provider (single
// sign-on) in Keycloak: an identity provider linked to the tenant's
// organisation, with email-domain routing. Both methods are idempotent:
// the service retries them (from the durable outbox) until they succeed.
type IdentityProviders interface {
	// EnsureIdentityProvider creates or updates the identity provider,
	// links it to the organisation and routes its domains to it.
	EnsureIdentityProvider(ctx context.Context, idp IdentityProvider) error
	// RemoveIdentityProvider unlinks the identity provider alias from the
	// organisation (orgID may be empty: no organisation to unlink from),
	// deletes it, and takes its domains off the organisation. What is
	// already gone (404) counts as removed.
	RemoveIdentityProvider(ctx context.Context, orgID, alias string) error
}

// IdentityProvider is a tenant's identity provider as Keycloak gets it.
type IdentityProvider struct {
	OrgID       string // the tenant's organisation
	Alias       string // the identity provider's alias (no spaces)
	DisplayName string
	Protocol    string // "oidc" or "saml"
	// OIDC: the issuer (its discovery document fills in the endpoints),
	// client id and secret.
	Issuer, ClientID, ClientSecret string
	// SAML: a metadata URL, or entity id + SSO URL + signing certificate.
	MetadataURL, EntityID, SSOURL, SigningCertificate string
	// Domains are the email domains routed to the provider; they become
	// the organisation's domains.
	Domains []string
}

// Organisation config keys and attributes the identity provider uses.
const (
	// cfgOrgDomain is the identity provider's routed domain (KC ≤ 26.7).
	cfgOrgDomain = "kc.org.domain"
	// cfgOrgRedirect sends a user whose email matches the domain straight
	// to the provider.
	cfgOrgRedirect = "kc.org.broker.redirect.mode.email-matches"
	// attrSSODomains is the organisation attribute listing the domains
	// this service put on the organisation for single sign-on, so that
	// changing or removing them leaves other domains alone.
	attrSSODomains = "sso_domains"
)

var _ IdentityProviders = (*HTTPAdapter)(nil)

type idpRep struct {
	Alias       string            `json:"alias"`
	DisplayName string            `json:"displayName,omitempty"`
	ProviderID  string            `json:"providerId"`
	Enabled     bool              `json:"enabled"`
	HideOnLogin bool              `json:"hideOnLogin"`
	Config      map[string]string `json:"config"`
}

func (a *HTTPAdapter) idpPath(elem ...string) string {
	return a.adminPath(append([]string{"identity-provider"}, elem...)...)
}

// EnsureIdentityProvider implements IdentityProviders, in the order that
// Keycloak (up to 26.7) accepts: the organisation's domains first, then the
// identity provider, the link, and last the provider's domain routing
// (checked against the organisation's domains once it is linked).
func (a *HTTPAdapter) EnsureIdentityProvider(ctx context.Context, idp IdentityProvider) error {
	if idp.OrgID == "" || idp.Alias == "" {
		return errors.New("keycloak: identity provider: organisation id and alias are required")
	}
	if err := a.setOrgSSODomains(ctx, idp.OrgID, idp.Domains); err != nil {
		return err
	}
	cfg, err := a.idpConfig(ctx, idp)
	if err != nil {
		return err
	}
	rep := idpRep{Alias: idp.Alias, DisplayName: idp.DisplayName, ProviderID: idp.Protocol, Enabled: true, Config: cfg}
	var cur idpRep
	status, err := a.call(ctx, "get identity provider", http.MethodGet, a.idpPath("instances", idp.Alias), nil, &cur, http.StatusOK, http.StatusNotFound)
	if err != nil {
		return err
	}
	if status == http.StatusOK && cur.ProviderID != idp.Protocol {
		// Another protocol: a provider's type is fixed at creation, so the
		// old one goes (unlinked first) and a new one is made.
		if err := a.deleteIdentityProvider(ctx, idp.OrgID, idp.Alias); err != nil {
			return err
		}
		status = http.StatusNotFound
	}
	if status == http.StatusNotFound {
		// Created without the routing keys: they are checked once linked.
		if _, err := a.call(ctx, "create identity provider", http.MethodPost, a.idpPath("instances"), rep, nil,
			http.StatusCreated, http.StatusConflict); err != nil {
			return err
		}
	}
	// The raw alias, not a JSON string (quotes are stripped only from ~26.0.6).
	if _, err := a.call(ctx, "link identity provider", http.MethodPost, a.orgsPath(idp.OrgID, "identity-providers"), rawBody(idp.Alias), nil,
		http.StatusNoContent, http.StatusCreated, http.StatusOK, http.StatusConflict); err != nil {
		return err
	}
	if len(idp.Domains) > 0 {
		rep.Config[cfgOrgDomain] = idp.Domains[0]
		rep.Config[cfgOrgRedirect] = "true"
	}
	_, err = a.call(ctx, "update identity provider", http.MethodPut, a.idpPath("instances", idp.Alias), rep, nil, http.StatusNoContent, http.StatusOK)
	return err
}

// idpConfig is the provider's Keycloak config: for OIDC the discovered
// endpoints plus the client, for SAML the metadata URL or the explicit
// entity id, SSO URL and certificate.
func (a *HTTPAdapter) idpConfig(ctx context.Context, idp IdentityProvider) (map[string]string, error) {
	cfg := map[string]string{"syncMode": "IMPORT"}
	switch idp.Protocol {
	case "oidc":
		discovered := map[string]string{}
		body := map[string]string{"providerId": "oidc", "fromUrl": strings.TrimRight(idp.Issuer, "/") + "/.well-known/openid-configuration"}
		if _, err := a.call(ctx, "import identity provider config", http.MethodPost, a.idpPath("import-config"), body, &discovered, http.StatusOK); err != nil {
			return nil, err
		}
		for _, k := range []string{"issuer", "authorizationUrl", "tokenUrl", "userInfoUrl", "jwksUrl", "logoutUrl"} {
			if v := discovered[k]; v != "" {
				cfg[k] = v
			}
		}
		if cfg["issuer"] == "" {
			cfg["issuer"] = idp.Issuer
		}
		maps.Copy(cfg, map[string]string{
			"clientId": idp.ClientID, "clientSecret": idp.ClientSecret, "clientAuthMethod": "client_secret_post",
			"useJwksUrl": "true", "validateSignature": "true", "defaultScope": "openid email profile",
		})
	case "saml":
		if idp.MetadataURL != "" {
			cfg["metadataDescriptorUrl"] = idp.MetadataURL
			cfg["useMetadataDescriptorUrl"] = "true"
			break
		}
		maps.Copy(cfg, map[string]string{
			"idpEntityId": idp.EntityID, "singleSignOnServiceUrl": idp.SSOURL,
			"signingCertificate": idp.SigningCertificate, "validateSignature": "true",
			"postBindingResponse": "true", "nameIDPolicyFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
		})
	default:
		return nil, fmt.Errorf("keycloak: identity provider: unknown protocol %q", idp.Protocol)
	}
	return cfg, nil
}

// RemoveIdentityProvider implements IdentityProviders.
func (a *HTTPAdapter) RemoveIdentityProvider(ctx context.Context, orgID, alias string) error {
	if alias == "" {
		return errors.New("keycloak: identity provider: alias is required")
	}
	if err := a.deleteIdentityProvider(ctx, orgID, alias); err != nil {
		return err
	}
	if orgID == "" {
		return nil
	}
	return a.setOrgSSODomains(ctx, orgID, nil)
}

// deleteIdentityProvider unlinks alias from orgID (when given) and deletes
// it; 404s are success.
func (a *HTTPAdapter) deleteIdentityProvider(ctx context.Context, orgID, alias string) error {
	if orgID != "" {
		if _, err := a.call(ctx, "unlink identity provider", http.MethodDelete, a.orgsPath(orgID, "identity-providers", alias), nil, nil,
			http.StatusNoContent, http.StatusOK, http.StatusNotFound); err != nil {
			return err
		}
	}
	if _, err := a.call(ctx, "delete identity provider", http.MethodDelete, a.idpPath("instances", alias), nil, nil,
		http.StatusNoContent, http.StatusOK, http.StatusNotFound); err != nil {
		return err
	}
	return nil
}

// setOrgSSODomains makes domains the organisation's single sign-on domains:
// the ones this service put there before (attribute sso_domains) are
// replaced, any other domain stays. Nothing is written when nothing
// changes. An organisation that is gone has no domains to set: with none
// wanted that is success, else an error.
func (a *HTTPAdapter) setOrgSSODomains(ctx context.Context, orgID string, domains []string) error {
	// The whole representation goes back with PUT: read it as it is, so
	// that fields this adapter does not know survive.
	var raw map[string]json.RawMessage
	status, err := a.call(ctx, "get organisation", http.MethodGet, a.orgsPath(orgID), nil, &raw, http.StatusOK, http.StatusNotFound)
	if err != nil {
		return err
	}
	if status == http.StatusNotFound {
		if len(domains) == 0 {
			return nil
		}
		return fmt.Errorf("keycloak: set organisation domains: %w", &APIError{StatusCode: http.StatusNotFound, Message: "Organization not found."})
	}
	var (
		have  []domainRep
		attrs map[string][]string
	)
	if err := unmarshalField(raw, "domains", &have); err != nil {
		return err
	}
	if err := unmarshalField(raw, "attributes", &attrs); err != nil {
		return err
	}
	old := attrs[attrSSODomains]
	next := []domainRep{}
	for _, d := range have {
		if !slices.Contains(old, d.Name) && !slices.Contains(domains, d.Name) {
			next = append(next, d)
		}
	}
	for _, d := range domains {
		next = append(next, domainRep{Name: d})
	}
	if attrs == nil {
		attrs = map[string][]string{}
	}
	prev := slices.Clone(old)
	if len(domains) > 0 {
		attrs[attrSSODomains] = slices.Clone(domains)
	} else {
		delete(attrs, attrSSODomains)
	}
	if sameDomains(have, next) && slices.Equal(prev, attrs[attrSSODomains]) {
		return nil
	}
	for k, v := range map[string]any{"domains": next, "attributes": attrs} {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("keycloak: set organisation domains: %w", err)
		}
		raw[k] = b
	}
	_, err = a.call(ctx, "set organisation domains", http.MethodPut, a.orgsPath(orgID), raw, nil, http.StatusNoContent, http.StatusOK)
	return err
}

// unmarshalField decodes raw[key] into v when present and not null.
func unmarshalField(raw map[string]json.RawMessage, key string, v any) error {
	b, ok := raw[key]
	if !ok || string(b) == "null" {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("keycloak: get organisation: decode %s: %w", key, err)
	}
	return nil
}

func sameDomains(a, b []domainRep) bool {
	names := func(ds []domainRep) []string {
		out := make([]string, len(ds))
		for i, d := range ds {
			out[i] = d.Name
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(names(a), names(b))
}

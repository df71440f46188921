package keycloak_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/platform/tenant-registry/internal/auth/oidctest"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/keycloak/keycloaktest"
)

const idpSecret = "idp-client-secret-RECOGNISABLE-91c3"

func orgByID(t *testing.T, f *keycloaktest.Fake, id string) keycloaktest.Org {
	t.Helper()
	for _, o := range f.Orgs() {
		if o.ID == id {
			return o
		}
	}
	t.Fatalf("no organisation %s", id)
	return keycloaktest.Org{}
}

func idpByAlias(f *keycloaktest.Fake, alias string) (keycloaktest.IdP, bool) {
	for _, p := range f.IdPs() {
		if p.Alias == alias {
			return p, true
		}
	}
	return keycloaktest.IdP{}, false
}

func domainNames(o keycloaktest.Org) []string {
	var out []string
	for _, d := range o.Domains {
		out = append(out, d.Name)
	}
	slices.Sort(out)
	return out
}

// TestIdentityProviderLifecycle: create, link and route; update (new
// domains, the secret kept by Keycloak's own rules); unlink and remove —
// each against the fake's Keycloak paths and checks (a kc.org.domain the
// organisation lacks would be refused).
func TestIdentityProviderLifecycle(t *testing.T) {
	f := newFake(t)
	a := newAdapter(t, f, nil)
	is := oidctest.New()
	defer is.Close()
	ctx := context.Background()
	orgID := f.AddOrg("acme", "Acme Inc.")
	// A domain the organisation had before SSO stays through it all.
	if err := putDomains(f, orgID, "acme.tenants.example"); err != nil {
		t.Fatal(err)
	}
	idp := keycloak.IdentityProvider{
		OrgID: orgID, Alias: "acme-sso", DisplayName: "Acme SSO", Protocol: "oidc",
		Issuer: is.URL(), ClientID: "acme-client", ClientSecret: idpSecret,
		Domains: []string{"acme.example", "acme.test"},
	}
	if err := a.EnsureIdentityProvider(ctx, idp); err != nil {
		t.Fatalf("EnsureIdentityProvider: %v", err)
	}
	p, ok := idpByAlias(f, "acme-sso")
	if !ok {
		t.Fatal("no identity provider acme-sso")
	}
	for k, want := range map[string]string{
		"clientId": "acme-client", "clientSecret": idpSecret, "issuer": is.URL(),
		"jwksUrl": is.URL() + "/jwks", "kc.org": orgID, "kc.org.domain": "acme.example",
		"kc.org.broker.redirect.mode.email-matches": "true",
	} {
		if got := p.Config[k]; got != want {
			t.Errorf("config[%s] = %q, want %q", k, got, want)
		}
	}
	if p.ProviderID != "oidc" || !p.Enabled {
		t.Errorf("provider = %q enabled %v, want oidc enabled", p.ProviderID, p.Enabled)
	}
	if got, want := domainNames(orgByID(t, f, orgID)), []string{"acme.example", "acme.tenants.example", "acme.test"}; !slices.Equal(got, want) {
		t.Errorf("org domains = %v, want %v", got, want)
	}
	if got, want := f.OrgIdPs(orgID), []string{"acme-sso"}; !slices.Equal(got, want) {
		t.Errorf("linked = %v, want %v", got, want)
	}

	// Again (a retry): nothing duplicated, nothing refused.
	if err := a.EnsureIdentityProvider(ctx, idp); err != nil {
		t.Fatalf("EnsureIdentityProvider again: %v", err)
	}
	if got := len(f.IdPs()); got != 1 {
		t.Errorf("identity providers = %d, want 1", got)
	}

	// Update: SAML now, other domains; the old SSO domains leave the organisation.
	idp2 := keycloak.IdentityProvider{
		OrgID: orgID, Alias: "acme-sso", Protocol: "saml",
		EntityID: "https://idp.acme.example/entity", SSOURL: "https://idp.acme.example/sso", SigningCertificate: "MIIB",
		Domains: []string{"corp.acme.example"},
	}
	if err := a.EnsureIdentityProvider(ctx, idp2); err != nil {
		t.Fatalf("EnsureIdentityProvider (update): %v", err)
	}
	p, _ = idpByAlias(f, "acme-sso")
	if p.ProviderID != "saml" || p.Config["singleSignOnServiceUrl"] != "https://idp.acme.example/sso" || p.Config["kc.org.domain"] != "corp.acme.example" {
		t.Errorf("updated provider = %+v", p)
	}
	if got, want := domainNames(orgByID(t, f, orgID)), []string{"acme.tenants.example", "corp.acme.example"}; !slices.Equal(got, want) {
		t.Errorf("org domains after update = %v, want %v", got, want)
	}

	// Remove: unlinked, deleted, its domains gone; twice is fine (404s).
	for i := range 2 {
		if err := a.RemoveIdentityProvider(ctx, orgID, "acme-sso"); err != nil {
			t.Fatalf("RemoveIdentityProvider #%d: %v", i+1, err)
		}
	}
	if _, ok := idpByAlias(f, "acme-sso"); ok {
		t.Error("identity provider still there after remove")
	}
	if got := f.OrgIdPs(orgID); len(got) != 0 {
		t.Errorf("linked after remove = %v", got)
	}
	if got, want := domainNames(orgByID(t, f, orgID)), []string{"acme.tenants.example"}; !slices.Equal(got, want) {
		t.Errorf("org domains after remove = %v, want %v", got, want)
	}
	// An organisation that is gone: nothing to unlink, success.
	if err := a.RemoveIdentityProvider(ctx, "no-such-org", "acme-sso"); err != nil {
		t.Errorf("remove with a deleted organisation: %v", err)
	}
}

// putDomains sets an organisation's domains through the fake's own
// representation (as the admin console would).
func putDomains(f *keycloaktest.Fake, orgID string, domains ...string) error {
	return f.SetOrgDomains(orgID, domains...)
}

func TestIdentityProviderErrors(t *testing.T) {
	f := newFake(t)
	a := newAdapter(t, f, nil)
	ctx := context.Background()
	acmeOrg := f.AddOrg("acme", "Acme Inc.")
	globexOrg := f.AddOrg("globex", "Globex")
	if err := f.SetOrgDomains(globexOrg, "globex.example"); err != nil {
		t.Fatal(err)
	}
	saml := keycloak.IdentityProvider{OrgID: acmeOrg, Alias: "acme-sso", Protocol: "saml", MetadataURL: "https://idp.acme.example/metadata"}
	cases := []struct {
		name string
		idp  keycloak.IdentityProvider
		want string
	}{
		{"unknown organisation", func() keycloak.IdentityProvider {
			p := saml
			p.OrgID = "nope"
			p.Domains = []string{"a.example"}
			return p
		}(), "404"},
		{"domain of another organisation", func() keycloak.IdentityProvider { p := saml; p.Domains = []string{"globex.example"}; return p }(), "already linked to another organization"},
		{"issuer without discovery", keycloak.IdentityProvider{OrgID: acmeOrg, Alias: "acme-oidc", Protocol: "oidc", Issuer: "http://127.0.0.1:1", ClientID: "c"}, "import identity provider config"},
	}
	for _, tc := range cases {
		err := a.EnsureIdentityProvider(ctx, tc.idp)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	// Linked to another organisation already: refused.
	other := saml
	other.OrgID = globexOrg
	if err := a.EnsureIdentityProvider(ctx, other); err != nil {
		t.Fatal(err)
	}
	err := a.EnsureIdentityProvider(ctx, saml)
	var apiErr *keycloak.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "different organization") {
		t.Errorf("link to a second organisation: %v, want 400 already associated with a different organization", err)
	}
	// Keycloak down.
	f.SetDown(true)
	if err := a.EnsureIdentityProvider(ctx, saml); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("down: %v, want 503", err)
	}
	if err := a.RemoveIdentityProvider(ctx, acmeOrg, "acme-sso"); err == nil {
		t.Error("remove while down: nil error")
	}
}

func TestInvite(t *testing.T) {
	f := newFake(t)
	a := newAdapter(t, f, func(c *keycloak.Config) { c.InviteURL = "https://portal.example.com/join" })
	ctx := context.Background()
	orgID := f.AddOrg("acme", "Acme Inc.")
	existing := f.AddUser("bob@acme.example")
	cases := []struct {
		req       keycloak.InviteRequest
		wantRoles []string
	}{
		{keycloak.InviteRequest{OrgID: orgID, Email: "carol@acme.example", Name: "Carol Shaw", Admin: true}, []string{"IT_ADMIN"}},
		{keycloak.InviteRequest{OrgID: orgID, Email: "bob@acme.example"}, nil},
	}
	for _, tc := range cases {
		res, err := a.Invite(ctx, tc.req)
		if err != nil {
			t.Fatalf("Invite %s: %v", tc.req.Email, err)
		}
		if res.InviteURL != "https://portal.example.com/join" {
			t.Errorf("invite url = %q", res.InviteURL)
		}
		if !slices.Contains(f.Members(orgID), res.UserID) {
			t.Errorf("%s is no member", tc.req.Email)
		}
		if got := f.RoleMappings(res.UserID); !slices.Equal(got, tc.wantRoles) {
			t.Errorf("%s roles = %v, want %v", tc.req.Email, got, tc.wantRoles)
		}
		if got := f.EmailsSent(res.UserID); got != 1 {
			t.Errorf("%s emails = %d, want 1", tc.req.Email, got)
		}
		if tc.req.Email == "bob@acme.example" && res.UserID != existing {
			t.Errorf("existing user not reused: %s, want %s", res.UserID, existing)
		}
	}
	// No SMTP: the attempt fails (the outbox retries it); then it lands.
	f.FailEmail(true)
	req := keycloak.InviteRequest{OrgID: orgID, Email: "dan@acme.example"}
	if _, err := a.Invite(ctx, req); err == nil || !strings.Contains(err.Error(), "Failed to send execute actions email") {
		t.Errorf("no SMTP: %v", err)
	}
	f.FailEmail(false)
	res, err := a.Invite(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.EmailsSent(res.UserID); got != 1 {
		t.Errorf("emails after retry = %d, want 1", got)
	}
	if got := len(f.Members(orgID)); got != 3 {
		t.Errorf("members = %d, want 3", got)
	}
	// Mock: the dev link.
	m, err := keycloak.Mock{}.Invite(ctx, keycloak.InviteRequest{OrgID: "mock-org-acme", Slug: "acme", Email: "e@x.example"})
	if err != nil || m.InviteURL != "http://localhost:8080/dev-invite/acme?email=e%40x.example" {
		t.Errorf("mock invite = %+v, %v", m, err)
	}
}

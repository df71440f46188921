package keycloaktest

import (
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// IdP is an identity provider held by the Fake.
type IdP struct {
	Alias       string            `json:"alias"`
	DisplayName string            `json:"displayName,omitempty"`
	ProviderID  string            `json:"providerId"`
	Enabled     bool              `json:"enabled"`
	HideOnLogin bool              `json:"hideOnLogin"`
	Config      map[string]string `json:"config"`
}

func (p *IdP) clone() IdP {
	c := *p
	c.Config = maps.Clone(p.Config)
	if c.Config == nil {
		c.Config = map[string]string{}
	}
	return c
}

// Invitation records one successful members/invite-user or
// invite-existing-user call.
type Invitation struct {
	OrgID, Email, FirstName, LastName, UserID string
}

// Config keys Keycloak keeps on an identity provider linked to an organisation.
const (
	cfgOrg      = "kc.org"
	cfgOrgDom   = "kc.org.domain"
	secretsMask = "**********"
)

var providerIDs = []string{"oidc", "saml", "keycloak-oidc", "google", "github", "microsoft"}

// domainRE is what Keycloak accepts as an organisation domain.
var domainRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)

// addIdPRoutes adds the identity-provider, organisation update and
// invitation endpoints.
func (f *Fake) addIdPRoutes(admin func(string, http.HandlerFunc)) {
	admin("PUT /organizations/{id}", f.updateOrg)
	admin("POST /organizations/{id}/members/invite-user", f.inviteUser)
	admin("POST /organizations/{id}/members/invite-existing-user", f.inviteExistingUser)
	admin("GET /organizations/{id}/identity-providers", f.listOrgIdPs)
	admin("POST /organizations/{id}/identity-providers", f.linkIdP)
	admin("GET /organizations/{id}/identity-providers/{alias}", f.getOrgIdP)
	admin("DELETE /organizations/{id}/identity-providers/{alias}", f.unlinkIdP)
	admin("POST /identity-provider/instances", f.createIdP)
	admin("GET /identity-provider/instances/{alias}", f.getIdP)
	admin("PUT /identity-provider/instances/{alias}", f.updateIdP)
	admin("DELETE /identity-provider/instances/{alias}", f.deleteIdP)
	admin("POST /identity-provider/import-config", f.importConfig)
}

// ---- inspectors ----

// IdPs returns copies of all identity providers (secrets unmasked), sorted by alias.
func (f *Fake) IdPs() []IdP {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]IdP, 0, len(f.idps))
	for _, p := range f.idps {
		out = append(out, p.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Alias < out[j].Alias })
	return out
}

// OrgIdPs returns the aliases of the identity providers linked to orgID, sorted.
func (f *Fake) OrgIdPs(orgID string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range f.idps {
		if p.Config[cfgOrg] == orgID {
			out = append(out, p.Alias)
		}
	}
	slices.Sort(out)
	return out
}

// Invitations returns the successful invite-user / invite-existing-user calls.
func (f *Fake) Invitations() []Invitation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.invitations)
}

// ---- organisations ----

func (f *Fake) updateOrg(w http.ResponseWriter, r *http.Request) {
	var in Org
	if !readJSON(w, r, &in) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.orgs[r.PathValue("id")]
	if !ok {
		writeError(w, http.StatusNotFound, "Organization not found.")
		return
	}
	if strings.TrimSpace(in.Name) == "" {
		writeError(w, http.StatusBadRequest, "Name can not be null")
		return
	}
	if in.Alias != "" && in.Alias != o.Alias {
		writeError(w, http.StatusBadRequest, "Cannot change the alias")
		return
	}
	for _, other := range f.orgs {
		if other.ID != o.ID && other.Name == in.Name {
			writeError(w, http.StatusConflict, "A organization with the same name already exists.")
			return
		}
	}
	for _, d := range in.Domains {
		if !domainRE.MatchString(d.Name) {
			writeError(w, http.StatusBadRequest, "The specified domain is invalid: "+d.Name)
			return
		}
		for _, other := range f.orgs {
			if other.ID != o.ID && slices.ContainsFunc(other.Domains, func(x Domain) bool { return x.Name == d.Name }) {
				writeError(w, http.StatusBadRequest, "Domain "+d.Name+" is already linked to another organization in realm "+f.realm)
				return
			}
		}
	}
	// Removing a domain clears it from a linked identity provider.
	for _, p := range f.idps {
		if p.Config[cfgOrg] != o.ID || p.Config[cfgOrgDom] == "" {
			continue
		}
		if !slices.ContainsFunc(in.Domains, func(x Domain) bool { return x.Name == p.Config[cfgOrgDom] }) {
			delete(p.Config, cfgOrgDom)
		}
	}
	o.Name, o.Enabled, o.Domains = in.Name, in.Enabled, slices.Clone(in.Domains)
	o.Attributes = nil
	if len(in.Attributes) > 0 {
		o.Attributes = map[string][]string{}
		for k, v := range in.Attributes {
			o.Attributes[k] = slices.Clone(v)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// ---- invitations ----

func (f *Fake) inviteUser(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		writeError(w, http.StatusUnsupportedMediaType, "Unsupported media type")
		return
	}
	email := strings.ToLower(strings.TrimSpace(r.PostForm.Get("email")))
	f.mu.Lock()
	defer f.mu.Unlock()
	orgID := r.PathValue("id")
	if _, ok := f.orgs[orgID]; !ok {
		writeError(w, http.StatusNotFound, "Organization not found.")
		return
	}
	if !strings.Contains(email, "@") {
		writeError(w, http.StatusBadRequest, "Invalid email format")
		return
	}
	var userID string
	for _, u := range f.users {
		if u.Email == email {
			userID = u.ID
		}
	}
	if userID != "" && slices.Contains(f.members[orgID], userID) {
		writeError(w, http.StatusConflict, "User already a member of the organization")
		return
	}
	if f.failEmail {
		writeError(w, http.StatusInternalServerError, "Failed to send invite email")
		return
	}
	f.invitations = append(f.invitations, Invitation{OrgID: orgID, Email: email,
		FirstName: r.PostForm.Get("firstName"), LastName: r.PostForm.Get("lastName"), UserID: userID})
	w.WriteHeader(http.StatusNoContent)
}

func (f *Fake) inviteExistingUser(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		writeError(w, http.StatusUnsupportedMediaType, "Unsupported media type")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	orgID := r.PathValue("id")
	if _, ok := f.orgs[orgID]; !ok {
		writeError(w, http.StatusNotFound, "Organization not found.")
		return
	}
	u, ok := f.users[r.PostForm.Get("id")]
	if !ok {
		writeError(w, http.StatusBadRequest, "User does not exist")
		return
	}
	if slices.Contains(f.members[orgID], u.ID) {
		writeError(w, http.StatusConflict, "User already a member of the organization")
		return
	}
	if f.failEmail {
		writeError(w, http.StatusInternalServerError, "Failed to send invite email")
		return
	}
	f.invitations = append(f.invitations, Invitation{OrgID: orgID, Email: u.Email, UserID: u.ID})
	w.WriteHeader(http.StatusNoContent)
}

// ---- identity providers ----

// rawAlias reads a link request's body: the raw alias (JSON quotes are
// stripped, as from ~26.0.6).
func rawAlias(w http.ResponseWriter, r *http.Request) (string, bool) {
	if !isJSON(r) {
		writeError(w, http.StatusUnsupportedMediaType, "Unsupported media type")
		return "", false
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad body")
		return "", false
	}
	return strings.Trim(strings.TrimSpace(string(b)), `"`), true
}

func (f *Fake) listOrgIdPs(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.PathValue("id")
	if _, ok := f.orgs[id]; !ok {
		writeError(w, http.StatusNotFound, "Organization not found.")
		return
	}
	out := []IdP{}
	for _, p := range f.idps {
		if p.Config[cfgOrg] == id {
			out = append(out, masked(p))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Alias < out[j].Alias })
	writeJSON(w, http.StatusOK, out)
}

func (f *Fake) linkIdP(w http.ResponseWriter, r *http.Request) {
	alias, ok := rawAlias(w, r)
	if !ok {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.PathValue("id")
	if _, ok := f.orgs[id]; !ok {
		writeError(w, http.StatusNotFound, "Organization not found.")
		return
	}
	p, ok := f.idps[alias]
	switch {
	case !ok:
		writeError(w, http.StatusBadRequest, "Identity provider not found with the given alias")
		return
	case p.Config[cfgOrg] == id:
		writeError(w, http.StatusConflict, "Identity provider already associated to the organization")
		return
	case p.Config[cfgOrg] != "":
		writeError(w, http.StatusBadRequest, "Identity provider already associated with a different organization")
		return
	}
	p.Config[cfgOrg] = id
	w.WriteHeader(http.StatusNoContent)
}

func (f *Fake) getOrgIdP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.PathValue("id")
	if _, ok := f.orgs[id]; !ok {
		writeError(w, http.StatusNotFound, "Organization not found.")
		return
	}
	p, ok := f.idps[r.PathValue("alias")]
	if !ok || p.Config[cfgOrg] != id {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "HTTP 404 Not Found"})
		return
	}
	writeJSON(w, http.StatusOK, masked(p))
}

func (f *Fake) unlinkIdP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.PathValue("id")
	if _, ok := f.orgs[id]; !ok {
		writeError(w, http.StatusNotFound, "Organization not found.")
		return
	}
	p, ok := f.idps[r.PathValue("alias")]
	if !ok || p.Config[cfgOrg] != id {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "HTTP 404 Not Found"})
		return
	}
	// The provider stays in the realm; its link and domain are cleared.
	delete(p.Config, cfgOrg)
	delete(p.Config, cfgOrgDom)
	w.WriteHeader(http.StatusNoContent)
}

// checkIdP validates a representation as Keycloak does on create and
// update; it answers and returns false when it is refused.
func (f *Fake) checkIdP(w http.ResponseWriter, in *IdP, orgID string) bool {
	if !slices.Contains(providerIDs, in.ProviderID) {
		writeError(w, http.StatusBadRequest, "Invalid identity provider id ["+in.ProviderID+"]")
		return false
	}
	for _, k := range []string{"authorizationUrl", "tokenUrl", "userInfoUrl", "jwksUrl", "logoutUrl", "issuer",
		"singleSignOnServiceUrl", "singleLogoutServiceUrl", "metadataDescriptorUrl"} {
		v, ok := in.Config[k]
		if !ok || v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || u.Scheme == "" || u.Host == "" {
			name := map[string]string{"authorizationUrl": "authorization_url", "tokenUrl": "token_url", "userInfoUrl": "userinfo_url",
				"jwksUrl": "jwks_url", "logoutUrl": "logout_url", "issuer": "issuer", "singleSignOnServiceUrl": "single_sign_on_service_url",
				"singleLogoutServiceUrl": "single_logout_service_url", "metadataDescriptorUrl": "metadata_descriptor_url"}[k]
			writeError(w, http.StatusBadRequest, "The url ["+name+"] is malformed")
			return false
		}
	}
	if in.Config["useMetadataDescriptorUrl"] == "true" && in.Config["metadataDescriptorUrl"] == "" {
		writeError(w, http.StatusBadRequest, "The url [metadata_descriptor_url] is required when useMetadataDescriptorUrl is set")
		return false
	}
	if d := in.Config[cfgOrgDom]; d != "" && orgID != "" {
		o := f.orgs[orgID]
		if o == nil || !slices.ContainsFunc(o.Domains, func(x Domain) bool { return x.Name == d }) {
			writeError(w, http.StatusBadRequest, "Domain does not match any domain from the organization")
			return false
		}
	}
	return true
}

func (f *Fake) createIdP(w http.ResponseWriter, r *http.Request) {
	var in IdP
	if !readJSON(w, r, &in) {
		return
	}
	if in.Alias == "" || strings.ContainsAny(in.Alias, " \t") {
		writeError(w, http.StatusBadRequest, "Invalid alias")
		return
	}
	if in.Config == nil {
		in.Config = map[string]string{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.idps[in.Alias]; ok {
		writeError(w, http.StatusConflict, "Identity Provider "+in.Alias+" already exists")
		return
	}
	// A new provider belongs to no organisation, whatever its config says.
	delete(in.Config, cfgOrg)
	if !f.checkIdP(w, &in, "") {
		return
	}
	p := in.clone()
	f.idps[in.Alias] = &p
	f.created(w, r, in.Alias)
}

func masked(p *IdP) IdP {
	c := p.clone()
	if _, ok := c.Config["clientSecret"]; ok {
		c.Config["clientSecret"] = secretsMask
	}
	return c
}

func (f *Fake) getIdP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.idps[r.PathValue("alias")]
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "HTTP 404 Not Found"})
		return
	}
	writeJSON(w, http.StatusOK, masked(p))
}

func (f *Fake) updateIdP(w http.ResponseWriter, r *http.Request) {
	var in IdP
	if !readJSON(w, r, &in) {
		return
	}
	if in.Config == nil {
		in.Config = map[string]string{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.idps[r.PathValue("alias")]
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "HTTP 404 Not Found"})
		return
	}
	// The link is the organisation's to change, not the update's.
	if org := p.Config[cfgOrg]; org != "" {
		in.Config[cfgOrg] = org
	} else {
		delete(in.Config, cfgOrg)
	}
	if in.Config["clientSecret"] == secretsMask {
		in.Config["clientSecret"] = p.Config["clientSecret"]
	}
	if !f.checkIdP(w, &in, in.Config[cfgOrg]) {
		return
	}
	in.Alias = p.Alias
	c := in.clone()
	f.idps[p.Alias] = &c
	w.WriteHeader(http.StatusNoContent)
}

func (f *Fake) deleteIdP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	alias := r.PathValue("alias")
	if _, ok := f.idps[alias]; !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "HTTP 404 Not Found"})
		return
	}
	delete(f.idps, alias)
	w.WriteHeader(http.StatusNoContent)
}

// importConfig fetches an OIDC discovery document as Keycloak does and
// answers its endpoints under Keycloak's config keys.
func (f *Fake) importConfig(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ProviderID string `json:"providerId"`
		FromURL    string `json:"fromUrl"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	if in.ProviderID != "oidc" && in.ProviderID != "keycloak-oidc" {
		writeError(w, http.StatusBadRequest, "Invalid identity provider id ["+in.ProviderID+"]")
		return
	}
	client := &http.Client{Timeout: 5 * time.Second}
	res, err := client.Get(in.FromURL)
	if err != nil {
		writeError(w, http.StatusBadRequest, "Could not import config: "+err.Error())
		return
	}
	defer res.Body.Close()
	var doc map[string]any
	if res.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&doc) != nil {
		writeError(w, http.StatusBadRequest, "Could not import config")
		return
	}
	out := map[string]string{"validateSignature": "true", "useJwksUrl": "true"}
	for from, to := range map[string]string{"issuer": "issuer", "authorization_endpoint": "authorizationUrl", "token_endpoint": "tokenUrl",
		"userinfo_endpoint": "userInfoUrl", "jwks_uri": "jwksUrl", "end_session_endpoint": "logoutUrl"} {
		if s, ok := doc[from].(string); ok && s != "" {
			out[to] = s
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// SetOrgDomains replaces an organisation's domains (as the admin console
// would), unverified.
func (f *Fake) SetOrgDomains(orgID string, domains ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.orgs[orgID]
	if !ok {
		return errNoOrg
	}
	o.Domains = nil
	for _, d := range domains {
		o.Domains = append(o.Domains, Domain{Name: d})
	}
	return nil
}

var errNoOrg = errors.New("keycloaktest: no such organisation")

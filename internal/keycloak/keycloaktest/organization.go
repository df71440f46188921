package keycloaktest

import (
	"net/http"
	"slices"
	"strings"
)

// organizationRoutes are the organisation update and delete of the Admin
// API (KEYCLOAK.md "Organisations"), with Keycloak's status codes and
// bodies.
func (f *Fake) organizationRoutes(admin func(pattern string, h http.HandlerFunc)) {
	admin("PUT /organizations/{id}", f.updateOrg)
	admin("DELETE /organizations/{id}", f.deleteOrg)
}

// updateOrg: PUT with the whole representation → 204; unknown id → 404
// "Organization not found."; a changed alias → 400 "Cannot change the
// alias"; another organisation's name → 409.
func (f *Fake) updateOrg(w http.ResponseWriter, r *http.Request) {
	var in Org
	if !readJSON(w, r, &in) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.orgs[r.PathValue("id")]
	switch {
	case !ok:
		writeError(w, http.StatusNotFound, "Organization not found.")
		return
	case strings.TrimSpace(in.Name) == "":
		writeError(w, http.StatusBadRequest, "Name can not be null")
		return
	case in.Alias != "" && in.Alias != o.Alias:
		writeError(w, http.StatusBadRequest, "Cannot change the alias")
		return
	}
	for _, other := range f.orgs {
		if other.ID != o.ID && other.Name == in.Name {
			writeError(w, http.StatusConflict, "A organization with the same name already exists.")
			return
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

// deleteOrg: DELETE → 204; unknown id → 404 "Organization not found.". Its
// members leave with it.
func (f *Fake) deleteOrg(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.orgs[id]; !ok {
		writeError(w, http.StatusNotFound, "Organization not found.")
		return
	}
	delete(f.orgs, id)
	delete(f.members, id)
	w.WriteHeader(http.StatusNoContent)
}

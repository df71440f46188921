package keycloaktest

import (
	"net/http"
)

// organizationRoutes add the organisation delete of the Admin API
// (KEYCLOAK.md "Organisations"), with Keycloak's status codes and bodies;
// the organisation update (PUT, used by rename and by single sign-on's
// domains) is in idp.go.
func (f *Fake) organizationRoutes(admin func(pattern string, h http.HandlerFunc)) {
	admin("DELETE /organizations/{id}", f.deleteOrg)
}

// deleteOrg: DELETE → 204; unknown id → 404 "Organization not found.". Its
// members leave with it and its identity providers are unlinked.
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
	// Its identity providers stay in the realm, unlinked.
	for _, p := range f.idps {
		if p.Config[cfgOrg] == id {
			delete(p.Config, cfgOrg)
			delete(p.Config, cfgOrgDom)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/platform/tenant-registry/internal/storetest"
)

// TestSsoREST: the SSO and invitation REST paths answer the documented
// shapes — the bare configuration with has_client_secret and idp_state,
// never the secret — and bad input is a 400 with the REST error body, on
// REST and on Connect alike.
func TestSsoREST(t *testing.T) {
	s := newStack(t, storetest.SQLite(t))
	const secret = "rest-idp-secret-ZZ81"
	json200 := func(method, path, body string) map[string]any {
		t.Helper()
		res := do(t, s.srv, method, path, body, map[string]string{"Content-Type": "application/json"})
		if res.status != http.StatusOK {
			t.Fatalf("%s %s: %d %s", method, path, res.status, res.body)
		}
		if strings.Contains(res.body, secret) {
			t.Errorf("%s %s answers the secret: %s", method, path, res.body)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(res.body), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	path := "/v1/tenants/" + acmeID + "/idp"
	put := json200("PUT", path, `{"protocol":"oidc","oidc":{"issuer":"https://login.acme.example","client_id":"registry","client_secret":"`+secret+`"},"domains":["Acme.Example"]}`)
	if put["has_client_secret"] != true || put["protocol"] != "oidc" || put["alias"] != "acme-sso" {
		t.Errorf("PUT = %v", put)
	}
	if oidc, _ := put["oidc"].(map[string]any); oidc["issuer"] != "https://login.acme.example" || oidc["client_secret"] != nil {
		t.Errorf("PUT oidc = %v", put["oidc"])
	}
	if d, _ := put["domains"].([]any); len(d) != 1 || d[0] != "acme.example" {
		t.Errorf("PUT domains = %v", put["domains"])
	}
	get := json200("GET", path, "")
	if get["has_client_secret"] != true || get["idp_state"] == "" {
		t.Errorf("GET = %v", get)
	}
	for _, tc := range []struct{ method, path, body, code string }{
		{"PUT", path, `{"protocol":"ldap","domains":["acme.example"]}`, "invalid_argument"},
		{"PUT", path, `{"protocol":"oidc","oidc":{"issuer":"ftp://x.example","client_id":"c"},"domains":["acme.example"]}`, "invalid_argument"},
		{"POST", "/tenantregistry.v1.SsoService/SetIdpConfig", `{"tenant_id":"` + acmeID + `","protocol":"saml","saml":{}}`, "invalid_argument"},
		{"POST", "/v1/tenants/" + acmeID + "/invitations", `{"email":"x","role":"member"}`, "invalid_argument"},
		{"POST", "/tenantregistry.v1.TenantService/InviteUser", `{"tenant_id":"` + acmeID + `","email":"a@acme.example","role":"owner"}`, "invalid_argument"},
	} {
		res := do(t, s.srv, tc.method, tc.path, tc.body, map[string]string{"Content-Type": "application/json"})
		if res.status != http.StatusBadRequest || !strings.Contains(res.body, tc.code) {
			t.Errorf("%s %s %s: %d %s, want 400 %s", tc.method, tc.path, tc.body, res.status, res.body, tc.code)
		}
	}
	inv := json200("POST", "/v1/tenants/"+acmeID+"/invitations", `{"email":"New@Acme.example","name":"New Person","role":"IT_ADMIN"}`)
	if inv["email"] != "new@acme.example" || inv["role"] != "IT_ADMIN" {
		t.Errorf("invite = %v", inv)
	}
	json200("DELETE", path, "")
	if res := do(t, s.srv, "GET", path, "", nil); res.status != http.StatusNotFound {
		t.Errorf("GET after DELETE: %d %s", res.status, res.body)
	}
}

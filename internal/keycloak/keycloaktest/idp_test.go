package keycloaktest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/platform/tenant-registry/internal/keycloak/keycloaktest"
)

// client calls the fake's Admin API as Keycloak's clients do.
type client struct {
	t     *testing.T
	f     *keycloaktest.Fake
	token string
}

func newClient(t *testing.T) *client {
	f := keycloaktest.New(t, "r", "c", "s")
	res, err := f.Client().PostForm(f.URL()+"/realms/r/protocol/openid-connect/token",
		url.Values{"grant_type": {"client_credentials"}, "client_id": {"c"}, "client_secret": {"s"}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil {
		t.Fatal(err)
	}
	return &client{t: t, f: f, token: tok.AccessToken}
}

// call sends body with contentType and returns the status and the
// errorMessage / error of the answer (or the body).
func (c *client) call(method, path, contentType, body string) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.f.URL()+"/admin/realms/r"+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := c.f.Client().Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var e struct{ ErrorMessage, Error string }
	if json.Unmarshal(b, &e) == nil && (e.ErrorMessage != "" || e.Error != "") {
		return res.StatusCode, e.ErrorMessage + e.Error
	}
	return res.StatusCode, string(b)
}

const (
	js   = "application/json"
	form = "application/x-www-form-urlencoded"
)

// TestIdPEndpoints: the statuses and messages KEYCLOAK.md gives for
// identity providers and their organisation link.
func TestIdPEndpoints(t *testing.T) {
	c := newClient(t)
	org := c.f.AddOrg("acme", "Acme")
	other := c.f.AddOrg("globex", "Globex")
	idp := `{"alias":"acme-sso","providerId":"oidc","enabled":true,"config":{"clientId":"x","clientSecret":"top","tokenUrl":"https://t.example/token"}}`
	steps := []struct {
		method, path, ctype, body string
		status                    int
		msg                       string
	}{
		{"POST", "/identity-provider/instances", js, `{"alias":"a b","providerId":"oidc"}`, 400, ""},
		{"POST", "/identity-provider/instances", js, `{"alias":"x","providerId":"ldap"}`, 400, "Invalid identity provider id [ldap]"},
		{"POST", "/identity-provider/instances", js, `{"alias":"x","providerId":"oidc","config":{"tokenUrl":"not a url"}}`, 400, "The url [token_url] is malformed"},
		{"POST", "/identity-provider/instances", js, idp, 201, ""},
		{"POST", "/identity-provider/instances", js, idp, 409, "Identity Provider acme-sso already exists"},
		{"GET", "/identity-provider/instances/acme-sso", "", "", 200, `"clientSecret":"**********"`},
		{"GET", "/identity-provider/instances/nope", "", "", 404, "HTTP 404 Not Found"},
		{"POST", "/organizations/" + org + "/identity-providers", js, "nope", 400, "Identity provider not found with the given alias"},
		{"POST", "/organizations/" + org + "/identity-providers", js, "acme-sso", 204, ""},
		{"POST", "/organizations/" + org + "/identity-providers", js, `"acme-sso"`, 409, "Identity provider already associated to the organization"},
		{"POST", "/organizations/" + other + "/identity-providers", js, "acme-sso", 400, "Identity provider already associated with a different organization"},
		{"GET", "/organizations/" + other + "/identity-providers/acme-sso", "", "", 404, ""},
		// Routing to a domain the organisation lacks is refused once linked.
		{"PUT", "/identity-provider/instances/acme-sso", js, `{"alias":"acme-sso","providerId":"oidc","config":{"clientSecret":"**********","kc.org.domain":"acme.example"}}`, 400, "Domain does not match any domain from the organization"},
		{"PUT", "/organizations/" + org, js, `{"name":"Acme","alias":"acme","domains":[{"name":"acme.example"}]}`, 204, ""},
		{"PUT", "/organizations/" + org, js, `{"name":"Acme","alias":"renamed"}`, 400, "Cannot change the alias"},
		{"PUT", "/organizations/" + other, js, `{"name":"Globex","alias":"globex","domains":[{"name":"acme.example"}]}`, 400, "Domain acme.example is already linked to another organization in realm r"},
		{"PUT", "/organizations/" + other, js, `{"name":"Acme","alias":"globex"}`, 409, "A organization with the same name already exists."},
		{"PUT", "/organizations/" + other, js, `{"name":"Globex","alias":"globex","domains":[{"name":"bad domain"}]}`, 400, "The specified domain is invalid: bad domain"},
		{"PUT", "/identity-provider/instances/acme-sso", js, `{"alias":"acme-sso","providerId":"oidc","config":{"clientSecret":"**********","kc.org.domain":"acme.example"}}`, 204, ""},
		{"DELETE", "/organizations/" + org + "/identity-providers/acme-sso", "", "", 204, ""},
		{"DELETE", "/organizations/" + org + "/identity-providers/acme-sso", "", "", 404, ""},
		{"DELETE", "/identity-provider/instances/acme-sso", "", "", 204, ""},
		{"DELETE", "/identity-provider/instances/acme-sso", "", "", 404, ""},
	}
	for _, s := range steps {
		status, msg := c.call(s.method, s.path, s.ctype, s.body)
		if status != s.status || !strings.Contains(msg, s.msg) {
			t.Errorf("%s %s %s: %d %q, want %d %q", s.method, s.path, s.body, status, msg, s.status, s.msg)
		}
		if s.method == "PUT" && strings.Contains(s.path, "instances") && status == 204 {
			// ********** kept the stored secret.
			for _, p := range c.f.IdPs() {
				if p.Config["clientSecret"] != "top" {
					t.Errorf("secret after a masked PUT = %q, want kept", p.Config["clientSecret"])
				}
			}
		}
	}
}

// TestInviteEndpoints: members/invite-user and invite-existing-user.
func TestInviteEndpoints(t *testing.T) {
	c := newClient(t)
	org := c.f.AddOrg("acme", "Acme")
	member := c.f.AddUser("m@acme.example")
	if status, msg := c.call("POST", "/organizations/"+org+"/members", js, member); status != 201 {
		t.Fatalf("add member: %d %s", status, msg)
	}
	base := "/organizations/" + org + "/members/"
	steps := []struct {
		path, body string
		failEmail  bool
		status     int
		msg        string
	}{
		{"invite-user", "email=new%40acme.example&firstName=N", false, 204, ""},
		{"invite-user", "email=nope", false, 400, "Invalid email format"},
		{"invite-user", "email=m%40acme.example", false, 409, "User already a member of the organization"},
		{"invite-user", "email=x%40acme.example", true, 500, "Failed to send invite email"},
		{"invite-existing-user", "id=unknown", false, 400, "User does not exist"},
		{"invite-existing-user", "id=" + member, false, 409, ""},
	}
	for _, s := range steps {
		c.f.FailEmail(s.failEmail)
		status, msg := c.call("POST", base+s.path, form, s.body)
		if status != s.status || !strings.Contains(msg, s.msg) {
			t.Errorf("%s %s: %d %q, want %d %q", s.path, s.body, status, msg, s.status, s.msg)
		}
	}
	if got := c.f.Invitations(); len(got) != 1 || got[0].Email != "new@acme.example" {
		t.Errorf("invitations = %+v", got)
	}
}

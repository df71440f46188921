package keycloak_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/platform/tenant-registry/internal/keycloak"
)

func TestRenameOrganization(t *testing.T) {
	f := newFake(t)
	a := newAdapter(t, f, nil)
	ctx := t.Context()
	res, err := a.Provision(ctx, keycloak.ProvisionRequest{Slug: "acme", Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	f.AddOrg("globex", "Globex")

	if err := a.RenameOrganization(ctx, keycloak.OrgRequest{OrgID: res.OrgID, Slug: "acme", Name: "Acme Inc."}); err != nil {
		t.Fatalf("rename: %v", err)
	}
	byAlias := func(alias string) (keycloak.OrgRequest, bool) {
		for _, o := range f.Orgs() {
			if o.Alias == alias {
				return keycloak.OrgRequest{OrgID: o.ID, Slug: o.Alias, Name: o.Name}, true
			}
		}
		return keycloak.OrgRequest{}, false
	}
	got, _ := byAlias("acme")
	if got.Name != "Acme Inc." || got.OrgID != res.OrgID {
		t.Errorf("after rename: %+v, want Acme Inc. with id %s", got, res.OrgID)
	}
	// The PUT sends the whole representation back: the attribute the
	// adapter finds organisations by survives.
	for _, o := range f.Orgs() {
		if o.Alias == "acme" && (len(o.Attributes["alias"]) != 1 || !o.Enabled) {
			t.Errorf("rename lost fields of the organisation: %+v", o)
		}
	}

	// A stale id falls back to the alias.
	if err := a.RenameOrganization(ctx, keycloak.OrgRequest{OrgID: "gone", Slug: "acme", Name: "Acme 2"}); err != nil {
		t.Fatalf("rename by alias: %v", err)
	}
	if got, _ := byAlias("acme"); got.Name != "Acme 2" {
		t.Errorf("after rename by alias: %q, want Acme 2", got.Name)
	}
	// Again with the same name: nothing to do, no PUT.
	before := len(f.Requests())
	if err := a.RenameOrganization(ctx, keycloak.OrgRequest{OrgID: res.OrgID, Slug: "acme", Name: "Acme 2"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Requests()[before:] {
		if strings.HasPrefix(r, "PUT ") {
			t.Errorf("a rename to the current name sent %s", r)
		}
	}

	// Another organisation's name: Keycloak's 409.
	err = a.RenameOrganization(ctx, keycloak.OrgRequest{OrgID: res.OrgID, Slug: "acme", Name: "Globex"})
	var apiErr *keycloak.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusConflict || !strings.Contains(apiErr.Message, "same name") {
		t.Errorf("rename onto another's name = %v, want 409 same name", err)
	}
	// No organisation at all.
	if err := a.RenameOrganization(ctx, keycloak.OrgRequest{Slug: "nobody", Name: "X"}); !errors.Is(err, keycloak.ErrOrgNotFound) {
		t.Errorf("rename of a missing organisation = %v, want ErrOrgNotFound", err)
	}
	// Keycloak down: an error, nothing changed.
	f.SetDown(true)
	err = a.RenameOrganization(ctx, keycloak.OrgRequest{OrgID: res.OrgID, Slug: "acme", Name: "Down"})
	f.SetDown(false)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("rename while down = %v, want 503", err)
	}
	if got, _ := byAlias("acme"); got.Name != "Acme 2" {
		t.Errorf("after a failed rename: %q, want Acme 2", got.Name)
	}
}

func TestDeleteOrganization(t *testing.T) {
	f := newFake(t)
	a := newAdapter(t, f, nil)
	ctx := t.Context()
	res, err := a.Provision(ctx, keycloak.ProvisionRequest{Slug: "acme", Name: "Acme", AdminEmail: "it@acme.example"})
	if err != nil {
		t.Fatal(err)
	}
	f.AddOrg("globex", "Globex")

	// Down: an error, the organisation stays.
	f.SetDown(true)
	err = a.DeleteOrganization(ctx, keycloak.OrgRequest{OrgID: res.OrgID, Slug: "acme"})
	f.SetDown(false)
	var apiErr *keycloak.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("delete while down = %v, want 503", err)
	}
	if len(f.Orgs()) != 2 {
		t.Fatalf("organisations after a failed delete = %d, want 2", len(f.Orgs()))
	}

	if err := a.DeleteOrganization(ctx, keycloak.OrgRequest{OrgID: res.OrgID, Slug: "acme"}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if orgs := f.Orgs(); len(orgs) != 1 || orgs[0].Alias != "globex" {
		t.Errorf("organisations after delete = %+v, want globex only", orgs)
	}
	if len(f.Members(res.OrgID)) != 0 {
		t.Errorf("members of the deleted organisation = %v, want none", f.Members(res.OrgID))
	}
	// Already gone (404): success, also by alias only.
	if err := a.DeleteOrganization(ctx, keycloak.OrgRequest{OrgID: res.OrgID, Slug: "acme"}); err != nil {
		t.Errorf("delete again = %v, want nil (404 is success)", err)
	}
	if err := a.DeleteOrganization(ctx, keycloak.OrgRequest{Slug: "acme"}); err != nil {
		t.Errorf("delete by alias of none = %v, want nil", err)
	}
	// By alias alone (the id was never recorded).
	if err := a.DeleteOrganization(ctx, keycloak.OrgRequest{Slug: "globex"}); err != nil {
		t.Fatalf("delete by alias: %v", err)
	}
	if len(f.Orgs()) != 0 {
		t.Errorf("organisations after delete by alias = %+v, want none", f.Orgs())
	}
}

// TestFakeOrganizationStatuses: the fake's update and delete answer with
// Keycloak's statuses and bodies (KEYCLOAK.md "Organisations").
func TestFakeOrganizationStatuses(t *testing.T) {
	f := newFake(t)
	id := f.AddOrg("acme", "Acme")
	f.AddOrg("globex", "Globex")
	tok := fakeToken(t, f)
	cases := []struct {
		method, path, body string
		status             int
		message            string
	}{
		{"PUT", "/organizations/" + id, `{"name":"Acme","alias":"other"}`, 400, "Cannot change the alias"},
		{"PUT", "/organizations/" + id, `{"name":"Globex","alias":"acme"}`, 409, "A organization with the same name already exists."},
		{"PUT", "/organizations/nope", `{"name":"X","alias":"x"}`, 404, "Organization not found."},
		{"PUT", "/organizations/" + id, `{"name":"Acme Two","alias":"acme","enabled":true}`, 204, ""},
		{"DELETE", "/organizations/nope", "", 404, "Organization not found."},
		{"DELETE", "/organizations/" + id, "", 204, ""},
		{"GET", "/organizations/" + id, "", 404, "Organization not found."},
	}
	for _, tc := range cases {
		status, msg := fakeCall(t, f, tok, tc.method, tc.path, tc.body)
		if status != tc.status || msg != tc.message {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, status, msg, tc.status, tc.message)
		}
	}
}

// fakeToken is a client-credentials token of the fake.
func fakeToken(t *testing.T, f interface {
	URL() string
	Client() *http.Client
}) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}}
	res, err := f.Client().PostForm(f.URL()+"/realms/"+realm+"/protocol/openid-connect/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token: %d %v", res.StatusCode, err)
	}
	return tok.AccessToken
}

// fakeCall sends one Admin API request and returns the status and the
// errorMessage of the body ("" when there is none).
func fakeCall(t *testing.T, f interface {
	URL() string
	Client() *http.Client
}, token, method, path, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.URL()+"/admin/realms/"+realm+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := f.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	var e struct {
		ErrorMessage string `json:"errorMessage"`
	}
	_ = json.Unmarshal(data, &e)
	return res.StatusCode, e.ErrorMessage
}

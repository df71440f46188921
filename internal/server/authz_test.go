package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/platform/tenant-registry/gen/tenantregistry/v1"
	c "github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/auth"
	"github.com/platform/tenant-registry/internal/auth/oidctest"
	"github.com/platform/tenant-registry/internal/config"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/project"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/internal/tenant"
)

// authStack is the whole service with real token authentication against an
// in-process OIDC issuer, acme (the dev seed) and a second tenant, globex,
// each with an API key and audit events.
type authStack struct {
	srv               *httptest.Server
	issuer            *oidctest.Issuer
	globexID, globex  string // id and slug
	acmeKey, globeKey string // API key ids
	acmeProject       string // project ids
	globexProject     string
	viewer            string // a Retraced viewer token for acme's group
}

func newAuthStack(t *testing.T) *authStack {
	t.Helper()
	is := oidctest.New()
	t.Cleanup(is.Close)
	st := storetest.SQLite(t)
	s := newStack(t, st, withConfig(func(c *config.Config) {
		// Tokens are verified, and a request without one is refused:
		// the stage environment (the rest of stage's configuration is
		// not needed here).
		c.Env, c.KeycloakIssuer = config.Stage, is.URL()
	}))
	ctx := storetest.SystemContext() // the system principal: setup sees everything
	globex, err := s.tenants.Create(ctx, tenant.CreateInput{Slug: "globex", Name: "Globex"})
	if err != nil {
		t.Fatal(err)
	}
	acmeKey, err := s.keys.Create(ctx, apikey.CreateInput{TenantID: acmeID, Name: "acme key"})
	if err != nil {
		t.Fatal(err)
	}
	globexKey, err := s.keys.Create(ctx, apikey.CreateInput{TenantID: globex.ID.String(), Name: "globex key"})
	if err != nil {
		t.Fatal(err)
	}
	acmeProject, err := s.projects.Create(ctx, project.CreateInput{TenantID: acmeID, Slug: "web", Name: "Web"})
	if err != nil {
		t.Fatal(err)
	}
	globexProject, err := s.projects.Create(ctx, project.CreateInput{TenantID: globex.ID.String(), Slug: "web", Name: "Web"})
	if err != nil {
		t.Fatal(err)
	}
	publisher, err := s.keys.Create(ctx, apikey.CreateInput{TenantID: acmeID, Name: "publisher", Scopes: []string{"audit:publish"}})
	if err != nil {
		t.Fatal(err)
	}
	res := do(t, s.srv, http.MethodGet, "/publisher/v1/project/"+acmeID+"/viewertoken?group_id="+acmeID+"&actor_id=viewer-1", "",
		map[string]string{"Authorization": "Token token=" + publisher.Plaintext})
	var viewer struct{ Token string }
	if err := json.Unmarshal([]byte(res.body), &viewer); err != nil || res.status != http.StatusCreated {
		t.Fatalf("viewer token: %d %s", res.status, res.body)
	}
	return &authStack{srv: s.srv, issuer: is, globexID: globex.ID.String(), globex: "globex",
		acmeKey: acmeKey.Key.ID.String(), globeKey: globexKey.Key.ID.String(),
		acmeProject: acmeProject.ID.String(), globexProject: globexProject.ID.String(), viewer: viewer.Token}
}

// The callers of the "who" column of the README's API table.
var callers = map[string]oidctest.Claims{
	"platform_admin": {Subject: "admin-1", Roles: []string{principal.RolePlatformAdmin}},
	"tenant_user":    {Subject: "user-1", TenantID: acmeID},
	"it_admin":       {Subject: "itadmin-1", Name: "Ida Admin", TenantID: acmeID, Roles: []string{principal.RoleITAdmin}},
	"service":        {Subject: "svc-1", Roles: []string{principal.RoleInternal}},
	"no_role":        {Subject: "nobody-1"},
	// Tenant tokens that also carry tenant-less roles (a wrong role
	// mapping in Keycloak): still confined to their tenant.
	"tenant_user_as_admin":   {Subject: "user-2", TenantID: acmeID, Roles: []string{principal.RolePlatformAdmin}},
	"it_admin_as_service":    {Subject: "itadmin-2", TenantID: acmeID, Roles: []string{principal.RoleITAdmin, principal.RoleInternal}},
	"it_admin_as_everything": {Subject: "itadmin-3", TenantID: acmeID, Roles: []string{principal.RoleITAdmin, principal.RoleInternal, principal.RolePlatformAdmin}},
	// Not a JWT: a Retraced viewer token for acme's group (authStack.token).
	"retraced_viewer": {},
}

// Who may call what, written from the README's API table ("who" column),
// independently of auth.Rules: the callers allowed besides platform admins.
var (
	tenantUsers  = []string{"tenant_user", "it_admin", "tenant_user_as_admin", "it_admin_as_service", "it_admin_as_everything"}
	tenantAdmins = []string{"it_admin", "it_admin_as_service", "it_admin_as_everything"}
	services     = []string{"service"}
	adminsOnly   = []string{}
	// A Retraced viewer token reads its group's audit log, nothing else.
	viewers = []string{"retraced_viewer"}
)

var allowed = map[string][]string{
	c.TenantServiceCreateTenantProcedure:           adminsOnly,
	c.TenantServiceGetTenantProcedure:              tenantUsers,
	c.TenantServiceGetTenantBySlugProcedure:        append(append([]string{}, tenantUsers...), services...),
	c.TenantServiceListTenantsProcedure:            adminsOnly,
	c.TenantServiceActivateTenantProcedure:         adminsOnly,
	c.TenantServiceCancelTenantProcedure:           adminsOnly,
	c.TenantServiceRetryProvisioningProcedure:      adminsOnly,
	c.TenantServiceUpdateTenantProcedure:           adminsOnly,
	c.TenantServiceDeleteTenantProcedure:           adminsOnly,
	c.TenantServiceRestoreTenantProcedure:          adminsOnly,
	c.TenantServiceExportTenantProcedure:           tenantAdmins,
	c.ProjectServiceCreateProjectProcedure:         tenantAdmins,
	c.ProjectServiceListProjectsProcedure:          tenantUsers,
	c.ProjectServiceGetProjectProcedure:            tenantUsers,
	c.ProjectServiceUpdateProjectProcedure:         tenantAdmins,
	c.ProjectServiceDeleteProjectProcedure:         tenantAdmins,
	c.TenantServiceInviteUserProcedure:             tenantAdmins,
	c.SsoServiceSetIdpConfigProcedure:              tenantAdmins,
	c.SsoServiceGetIdpConfigProcedure:              tenantAdmins,
	c.SsoServiceDeleteIdpConfigProcedure:           tenantAdmins,
	c.EntitlementServiceListEntitlementsProcedure:  tenantUsers,
	c.EntitlementServiceGrantEntitlementProcedure:  adminsOnly,
	c.EntitlementServiceRevokeEntitlementProcedure: adminsOnly,
	c.CatalogServiceListProductsProcedure:          tenantUsers,
	c.CatalogServiceRequestProductProcedure:        tenantAdmins,
	c.CatalogServiceStartTrialProcedure:            tenantAdmins,
	c.ApiKeyServiceCreateApiKeyProcedure:           tenantAdmins,
	c.ApiKeyServiceListApiKeysProcedure:            tenantAdmins,
	c.ApiKeyServiceRevokeApiKeyProcedure:           tenantAdmins,
	c.ApiKeyServiceRotateApiKeyProcedure:           tenantAdmins,
	c.InternalServiceVerifyApiKeyProcedure:         services,
	c.InternalServiceResolveClaimsProcedure:        services,
	c.AuditServiceAppendEventProcedure:             append(append([]string{}, tenantAdmins...), services...),
	c.AuditServiceListEventsProcedure:              append(append([]string{}, tenantAdmins...), viewers...),
	c.AuditServiceExportEventsProcedure:            append(append([]string{}, tenantAdmins...), viewers...),
	c.AuditServiceVerifyAuditChainProcedure:        tenantAdmins,
	c.AuditServiceCreateDigestProcedure:            tenantAdmins,
	c.AuditServiceListDigestsProcedure:             tenantAdmins,
	c.AuditServiceListPublicKeysProcedure:          tenantAdmins,
	c.WebhookServiceCreateEndpointProcedure:        adminsOnly,
	c.WebhookServiceListEndpointsProcedure:         adminsOnly,
	c.WebhookServiceGetEndpointProcedure:           adminsOnly,
	c.WebhookServiceDeleteEndpointProcedure:        adminsOnly,
	c.WebhookServiceRotateEndpointSecretProcedure:  adminsOnly,
	c.WebhookServiceListDeliveriesProcedure:        adminsOnly,
	c.WebhookServiceRetryDeliveryProcedure:         adminsOnly,
}

// mayCall is the expectation: platform admins call everything.
func mayCall(who, procedure string) bool {
	return who == "platform_admin" || slices.Contains(allowed[procedure], who)
}

func (s *authStack) token(who string) string {
	if who == "retraced_viewer" {
		return s.viewer
	}
	cl := callers[who]
	cl.Audience = []string{"tenant-registry"}
	return s.issuer.Token(cl)
}

// post sends a Connect JSON POST and returns the HTTP status and the
// Connect error code ("" on success).
func (s *authStack) post(t *testing.T, token, procedure, body string) (int, string) {
	t.Helper()
	header := map[string]string{}
	if token != "" {
		header["Authorization"] = "Bearer " + token
	}
	res := do(t, s.srv, http.MethodPost, procedure, body, header)
	if res.status == http.StatusOK {
		return res.status, ""
	}
	var e struct{ Code string }
	if err := json.Unmarshal([]byte(res.body), &e); err != nil {
		t.Fatalf("%s: %d %s", procedure, res.status, res.body)
	}
	return res.status, e.Code
}

// TestEveryRoleEveryRPC calls every RPC as every kind of caller and checks
// the answer against the expectation table above: refused callers get
// permission_denied, allowed ones never do (their empty requests may well be
// invalid). Every procedure the server has must have a row.
func TestEveryRoleEveryRPC(t *testing.T) {
	s := newAuthStack(t)
	for proc := range auth.Rules {
		if _, ok := allowed[proc]; !ok {
			t.Errorf("%s has no row in the test's expectation table", proc)
		}
	}
	for who := range callers {
		tok := s.token(who)
		for proc := range allowed {
			if proc == c.AuditServiceExportEventsProcedure || proc == c.TenantServiceExportTenantProcedure {
				continue // server-streaming: below
			}
			want := mayCall(who, proc)
			status, code := s.post(t, tok, proc, "{}")
			denied := code == connect.CodePermissionDenied.String()
			if !want && (!denied || status != http.StatusForbidden) {
				t.Errorf("%s calling %s: %d %q, want 403 permission_denied", who, proc, status, code)
			}
			if want && (denied || code == connect.CodeUnauthenticated.String()) {
				t.Errorf("%s calling %s: %d %q, want it let through", who, proc, status, code)
			}
		}
		// ExportEvents through a real streaming client.
		client := c.NewAuditServiceClient(s.srv.Client(), s.srv.URL)
		req := connect.NewRequest(&v1.ExportEventsRequest{TenantId: acmeID})
		req.Header().Set("Authorization", "Bearer "+tok)
		stream, err := client.ExportEvents(storetest.SystemContext(), req)
		if err == nil {
			for stream.Receive() {
			}
			err = stream.Err()
		}
		want := mayCall(who, c.AuditServiceExportEventsProcedure)
		if got := connect.CodeOf(err) == connect.CodePermissionDenied; got == want {
			t.Errorf("%s calling ExportEvents: %v, want allowed %v", who, err, want)
		}
		// ExportTenant likewise.
		tclient := c.NewTenantServiceClient(s.srv.Client(), s.srv.URL)
		treq := connect.NewRequest(&v1.ExportTenantRequest{Id: acmeID})
		treq.Header().Set("Authorization", "Bearer "+tok)
		tstream, err := tclient.ExportTenant(storetest.SystemContext(), treq)
		if err == nil {
			for tstream.Receive() {
			}
			err = tstream.Err()
		}
		want = mayCall(who, c.TenantServiceExportTenantProcedure)
		if got := connect.CodeOf(err) == connect.CodePermissionDenied; got == want {
			t.Errorf("%s calling ExportTenant: %v, want allowed %v", who, err, want)
		}
	}
}

func TestUnauthenticated(t *testing.T) {
	s := newAuthStack(t)
	expired := callers["platform_admin"]
	expired.Audience = []string{"tenant-registry"}
	expired.Expiry = time.Now().Add(-time.Hour)
	cases := []struct{ name, token string }{
		{"no token", ""},
		{"expired", s.issuer.Token(expired)},
		{"garbage", "abc.def.ghi"},
	}
	for _, tc := range cases {
		status, code := s.post(t, tc.token, c.TenantServiceGetTenantBySlugProcedure, `{"slug":"acme"}`)
		if status != http.StatusUnauthorized || code != "unauthenticated" {
			t.Errorf("%s: %d %q, want 401 unauthenticated", tc.name, status, code)
		}
	}
	// The REST shim and the NDJSON export go through the same checks.
	for _, path := range []string{"/v1/tenants/by-slug/acme", "/v1/audit/export?tenant_id=" + acmeID} {
		res, err := http.Get(s.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", path, res.StatusCode)
		}
	}
	// Probes stay open.
	for _, path := range []string{"/healthz", "/readyz"} {
		res, err := http.Get(s.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s without a token: %d, want 200", path, res.StatusCode)
		}
	}
}

// TestTenantIsolation: acme's IT_ADMIN reaching globex's tenant,
// entitlements, catalog view, keys and audit log gets not_found — the same
// answer as for something that does not exist — on every tenant-scoped RPC,
// while the same calls for acme succeed.
func TestTenantIsolation(t *testing.T) {
	for _, who := range tenantAdmins {
		t.Run(who, func(t *testing.T) {
			s := newAuthStack(t)
			testTenantIsolation(t, s, s.token(who))
		})
	}
}

func testTenantIsolation(t *testing.T, s *authStack, tok string) {
	upperAcme := strings.ToUpper(acmeID)
	cases := []struct {
		proc             string
		ownBody, foreign string
	}{
		{c.TenantServiceGetTenantProcedure, `{"id":"` + acmeID + `"}`, `{"id":"` + s.globexID + `"}`},
		{c.TenantServiceGetTenantBySlugProcedure, `{"slug":"acme"}`, `{"slug":"globex"}`},
		{c.EntitlementServiceListEntitlementsProcedure, `{"tenant_id":"` + acmeID + `"}`, `{"tenant_id":"` + s.globexID + `"}`},
		{c.CatalogServiceListProductsProcedure, `{"tenant_id":"` + acmeID + `"}`, `{"tenant_id":"` + s.globexID + `"}`},
		{c.CatalogServiceRequestProductProcedure, `{"tenant_id":"` + acmeID + `","product":"privacy"}`, `{"tenant_id":"` + s.globexID + `","product":"privacy"}`},
		{c.CatalogServiceStartTrialProcedure, `{"tenant_id":"` + acmeID + `","product":"risk"}`, `{"tenant_id":"` + s.globexID + `","product":"risk"}`},
		{c.ApiKeyServiceListApiKeysProcedure, `{"tenant_id":"` + acmeID + `"}`, `{"tenant_id":"` + s.globexID + `"}`},
		{c.ApiKeyServiceCreateApiKeyProcedure, `{"tenant_id":"` + acmeID + `","name":"k"}`, `{"tenant_id":"` + s.globexID + `","name":"k"}`},
		{c.ApiKeyServiceRotateApiKeyProcedure, `{"id":"` + s.acmeKey + `","overlap_seconds":60}`, `{"id":"` + s.globeKey + `","overlap_seconds":60}`},
		{c.ApiKeyServiceRevokeApiKeyProcedure, `{"id":"` + s.acmeKey + `"}`, `{"id":"` + s.globeKey + `"}`},
		{c.AuditServiceListEventsProcedure, `{"tenant_id":"` + acmeID + `"}`, `{"tenant_id":"` + s.globexID + `"}`},
		{c.AuditServiceVerifyAuditChainProcedure, `{"tenant_id":"` + acmeID + `"}`, `{"tenant_id":"` + s.globexID + `"}`},
		{c.AuditServiceCreateDigestProcedure, `{"tenant_id":"` + acmeID + `"}`, `{"tenant_id":"` + s.globexID + `"}`},
		{c.AuditServiceListDigestsProcedure, `{"tenant_id":"` + acmeID + `"}`, `{"tenant_id":"` + s.globexID + `"}`},
		{c.AuditServiceAppendEventProcedure, `{"tenant_id":"` + acmeID + `","action":"doc.viewed","crud":"r","actor":{"id":"u"}}`,
			`{"tenant_id":"` + s.globexID + `","action":"doc.viewed","crud":"r","actor":{"id":"u"}}`},
		// Projects: another tenant's, named by its tenant or through one's own.
		{c.ProjectServiceListProjectsProcedure, `{"tenant_id":"` + acmeID + `"}`, `{"tenant_id":"` + s.globexID + `"}`},
		{c.ProjectServiceGetProjectProcedure, `{"tenant_id":"` + acmeID + `","id":"` + s.acmeProject + `"}`, `{"tenant_id":"` + s.globexID + `","id":"` + s.globexProject + `"}`},
		{c.ProjectServiceGetProjectProcedure, `{"tenant_id":"` + acmeID + `","id":"` + s.acmeProject + `"}`, `{"tenant_id":"` + acmeID + `","id":"` + s.globexProject + `"}`},
		{c.ProjectServiceUpdateProjectProcedure, `{"tenant_id":"` + acmeID + `","id":"` + s.acmeProject + `","name":"Mine"}`, `{"tenant_id":"` + s.globexID + `","id":"` + s.globexProject + `","name":"Mine"}`},
		{c.ProjectServiceUpdateProjectProcedure, `{"tenant_id":"` + acmeID + `","id":"` + s.acmeProject + `","name":"Mine"}`, `{"tenant_id":"` + acmeID + `","id":"` + s.globexProject + `","name":"Mine"}`},
		{c.ProjectServiceCreateProjectProcedure, `{"tenant_id":"` + acmeID + `","slug":"api","name":"API"}`, `{"tenant_id":"` + s.globexID + `","slug":"api","name":"API"}`},
		{c.ApiKeyServiceCreateApiKeyProcedure, `{"tenant_id":"` + acmeID + `","name":"p","project_id":"` + s.acmeProject + `"}`, `{"tenant_id":"` + acmeID + `","name":"p","project_id":"` + s.globexProject + `"}`},
		// Last: deleting acme's project for real.
		{c.ProjectServiceDeleteProjectProcedure, `{"tenant_id":"` + acmeID + `","id":"` + s.acmeProject + `"}`, `{"tenant_id":"` + acmeID + `","id":"` + s.globexProject + `"}`},
		// Single sign-on and invitations (in this order: set, read, delete).
		{c.SsoServiceSetIdpConfigProcedure, idpBody(acmeID, "acme.example"), idpBody(s.globexID, "globex.example")},
		{c.SsoServiceGetIdpConfigProcedure, `{"tenant_id":"` + acmeID + `"}`, `{"tenant_id":"` + s.globexID + `"}`},
		{c.SsoServiceDeleteIdpConfigProcedure, `{"tenant_id":"` + acmeID + `"}`, `{"tenant_id":"` + s.globexID + `"}`},
		{c.TenantServiceInviteUserProcedure, `{"tenant_id":"` + acmeID + `","email":"new@acme.example","role":"member"}`,
			`{"tenant_id":"` + s.globexID + `","email":"new@globex.example","role":"IT_ADMIN"}`},
	}
	for _, tc := range cases {
		if status, code := s.post(t, tok, tc.proc, tc.foreign); status != http.StatusNotFound || code != "not_found" {
			t.Errorf("%s on globex: %d %q, want 404 not_found", tc.proc, status, code)
		}
		if status, code := s.post(t, tok, tc.proc, tc.ownBody); status != http.StatusOK {
			t.Errorf("%s on acme: %d %q, want 200", tc.proc, status, code)
		}
	}
	// Any spelling of the caller's own tenant id is their tenant.
	for _, proc := range []string{c.TenantServiceGetTenantProcedure, c.ApiKeyServiceListApiKeysProcedure, c.AuditServiceListEventsProcedure} {
		field := "tenant_id"
		if proc == c.TenantServiceGetTenantProcedure {
			field = "id"
		}
		if status, code := s.post(t, tok, proc, `{"`+field+`":"`+upperAcme+`"}`); status != http.StatusOK {
			t.Errorf("%s with the caller's tenant id in upper case: %d %q, want 200", proc, status, code)
		}
	}
	// Omitting tenant_id means the caller's own tenant.
	if status, code := s.post(t, tok, c.EntitlementServiceListEntitlementsProcedure, `{}`); status != http.StatusOK {
		t.Errorf("ListEntitlements without tenant_id: %d %q, want the caller's own", status, code)
	}
	// ExportEvents (server-streaming) is scoped the same way…
	client := c.NewAuditServiceClient(s.srv.Client(), s.srv.URL)
	for _, tc := range []struct {
		tenant string
		want   connect.Code
	}{{s.globexID, connect.CodeNotFound}, {acmeID, 0}} {
		req := connect.NewRequest(&v1.ExportEventsRequest{TenantId: tc.tenant})
		req.Header().Set("Authorization", "Bearer "+tok)
		stream, err := client.ExportEvents(storetest.SystemContext(), req)
		n := 0
		if err == nil {
			for stream.Receive() {
				n++
			}
			err = stream.Err()
		}
		if got := connect.CodeOf(err); err != nil && got != tc.want || err == nil && tc.want != 0 {
			t.Errorf("ExportEvents of %s: %v, want code %v", tc.tenant, err, tc.want)
		}
		if tc.want == 0 && n == 0 {
			t.Errorf("ExportEvents of acme streamed no events")
		}
	}
	// …and so is its NDJSON form, and the tenant export's.
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/v1/audit/export?tenant_id=" + s.globexID, http.StatusNotFound}, {"/v1/audit/export?tenant_id=" + acmeID, http.StatusOK},
		{"/v1/tenants/" + s.globexID + "/export", http.StatusNotFound}, {"/v1/tenants/" + acmeID + "/export", http.StatusOK},
		// A query parameter cannot redirect the export to another tenant.
		{"/v1/tenants/" + s.globexID + "/export?id=" + acmeID, http.StatusNotFound},
	} {
		req, _ := http.NewRequest("GET", s.srv.URL+tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := s.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Errorf("GET %s: %d, want %d", tc.path, res.StatusCode, tc.want)
		}
	}
	tclient := c.NewTenantServiceClient(s.srv.Client(), s.srv.URL)
	for _, tc := range []struct {
		tenant string
		want   connect.Code
	}{{s.globexID, connect.CodeNotFound}, {acmeID, 0}} {
		req := connect.NewRequest(&v1.ExportTenantRequest{Id: tc.tenant})
		req.Header().Set("Authorization", "Bearer "+tok)
		stream, err := tclient.ExportTenant(storetest.SystemContext(), req)
		n := 0
		if err == nil {
			for stream.Receive() {
				n++
			}
			err = stream.Err()
		}
		if got := connect.CodeOf(err); err != nil && got != tc.want || err == nil && tc.want != 0 {
			t.Errorf("ExportTenant of %s: %v, want code %v", tc.tenant, err, tc.want)
		}
		if tc.want == 0 && n == 0 {
			t.Errorf("ExportTenant of acme streamed nothing")
		}
	}
	// The platform-admin-only lifecycle RPCs: an IT_ADMIN naming another
	// tenant learns only that it does not exist (as for every other RPC);
	// naming their own, that they may not.
	for _, proc := range []string{
		c.TenantServiceActivateTenantProcedure, c.TenantServiceCancelTenantProcedure, c.TenantServiceRetryProvisioningProcedure,
		c.TenantServiceUpdateTenantProcedure, c.TenantServiceDeleteTenantProcedure, c.TenantServiceRestoreTenantProcedure,
	} {
		for _, tc := range []struct {
			id, wantCode string
			wantStatus   int
		}{
			{acmeID, "permission_denied", http.StatusForbidden},
			{s.globexID, "not_found", http.StatusNotFound},
			{strings.ToUpper(s.globexID), "not_found", http.StatusNotFound},
		} {
			if status, code := s.post(t, tok, proc, `{"id":"`+tc.id+`","name":"Renamed"}`); status != tc.wantStatus || code != tc.wantCode {
				t.Errorf("%s of %s: %d %q, want %d %s", proc, tc.id, status, code, tc.wantStatus, tc.wantCode)
			}
		}
	}
}

// TestAuditActorIsTheCaller: the audit event of a change names the token's
// subject as its actor.
func TestAuditActorIsTheCaller(t *testing.T) {
	s := newAuthStack(t)
	if status, code := s.post(t, s.token("it_admin"), c.ApiKeyServiceCreateApiKeyProcedure, `{"name":"mine"}`); status != http.StatusOK {
		t.Fatalf("create key: %d %q", status, code)
	}
	client := c.NewAuditServiceClient(s.srv.Client(), s.srv.URL)
	req := connect.NewRequest(&v1.ListEventsRequest{TenantId: acmeID, Action: "api_key.created", PageSize: 500})
	req.Header().Set("Authorization", "Bearer "+s.token("platform_admin"))
	res, err := client.ListEvents(storetest.SystemContext(), req)
	if err != nil {
		t.Fatal(err)
	}
	var actors []string
	for _, e := range res.Msg.Events {
		actors = append(actors, fmt.Sprintf("%s/%s/%s/anonymous=%v", e.Actor.GetId(), e.Actor.GetName(), e.Actor.GetType(), e.IsAnonymous))
	}
	want := "itadmin-1/Ida Admin/user/anonymous=false"
	if len(actors) == 0 || actors[0] != want {
		t.Errorf("api_key.created actors (newest first) = %v, want %s first", actors, want)
	}
}

// idpBody is a SetIdpConfig request for tenantID routing domain.
func idpBody(tenantID, domain string) string {
	return `{"tenant_id":"` + tenantID + `","protocol":"oidc","oidc":{"issuer":"https://login.` + domain +
		`","client_id":"registry","client_secret":"s3cret"},"domains":["` + domain + `"]}`
}

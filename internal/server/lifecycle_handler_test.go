package server_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/config"
	"github.com/platform/tenant-registry/internal/storetest"
)

// TestTenantLifecycleREST: UpdateTenant, DeleteTenant, RestoreTenant and
// the projects on their documented REST paths, with the documented errors.
func TestTenantLifecycleREST(t *testing.T) {
	s := newStack(t, storetest.SQLite(t))
	type tenantJSON struct {
		Tenant struct {
			Name, Plan, Status  string
			DeletionScheduledAt *time.Time `json:"deletion_scheduled_at"`
		} `json:"tenant"`
	}
	type errJSON struct{ Code, Message string }
	var e errJSON
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code, says               string
	}{
		{"empty body", http.MethodPatch, "/v1/tenants/" + acmeID, `{}`, 400, "invalid_argument", "at least one"},
		{"bad plan", http.MethodPatch, "/v1/tenants/" + acmeID, `{"plan":"platinum"}`, 400, "invalid_argument", "plan"},
		{"unknown tenant", http.MethodPatch, "/v1/tenants/00000000-0000-0000-0000-0000000000ff", `{"name":"X"}`, 404, "not_found", "tenant"},
		{"delete an active tenant", http.MethodDelete, "/v1/tenants/" + acmeID, ``, 409, "failed_precondition", "active"},
		{"restore a tenant not scheduled", http.MethodPost, "/v1/tenants/" + acmeID + "/restore", `{}`, 409, "failed_precondition", "not scheduled"},
	} {
		e = errJSON{}
		if status := call(t, s.srv, tc.method, tc.path, tc.body, &e); status != tc.status || e.Code != tc.code || !strings.Contains(e.Message, tc.says) {
			t.Errorf("%s: %d %+v, want %d %s mentioning %q", tc.name, status, e, tc.status, tc.code, tc.says)
		}
	}
	var got tenantJSON
	if status := call(t, s.srv, http.MethodPatch, "/v1/tenants/"+acmeID, `{"plan":"enterprise"}`, &got); status != 200 || got.Tenant.Plan != "enterprise" || got.Tenant.Name != "Acme Inc." {
		t.Errorf("PATCH plan: %d %+v, want enterprise with the name kept", status, got)
	}
	var ignored map[string]any
	if status := call(t, s.srv, http.MethodPost, "/v1/tenants/"+acmeID+"/cancel", `{}`, &ignored); status != 200 {
		t.Fatalf("cancel: %d", status)
	}
	got = tenantJSON{}
	if status := call(t, s.srv, http.MethodDelete, "/v1/tenants/"+acmeID, ``, &got); status != 200 || got.Tenant.DeletionScheduledAt == nil ||
		got.Tenant.DeletionScheduledAt.Before(time.Now().Add(29*24*time.Hour)) {
		t.Errorf("DELETE: %d %+v, want deletion_scheduled_at DELETION_GRACE (720h) ahead", status, got)
	}
	got = tenantJSON{}
	if status := call(t, s.srv, http.MethodPost, "/v1/tenants/"+acmeID+"/restore", `{}`, &got); status != 200 || got.Tenant.DeletionScheduledAt != nil || got.Tenant.Status != "frozen" {
		t.Errorf("restore: %d %+v, want frozen with no deletion scheduled", status, got)
	}

	// Projects.
	type projectJSON struct {
		Project struct{ ID, Slug, Name string } `json:"project"`
	}
	var p projectJSON
	base := "/v1/tenants/" + acmeID + "/projects"
	if status := call(t, s.srv, http.MethodPost, base, `{"slug":"web","name":"Web"}`, &p); status != 200 || p.Project.Slug != "web" {
		t.Fatalf("create project: %d %+v", status, p)
	}
	e = errJSON{}
	if status := call(t, s.srv, http.MethodPost, base, `{"slug":"web","name":"Again"}`, &e); status != 409 || e.Code != "already_exists" {
		t.Errorf("duplicate project slug: %d %+v, want 409 already_exists", status, e)
	}
	e = errJSON{}
	if status := call(t, s.srv, http.MethodPost, base, `{"slug":"Web!","name":"Bad"}`, &e); status != 400 || e.Code != "invalid_argument" {
		t.Errorf("bad project slug: %d %+v, want 400 invalid_argument", status, e)
	}
	var list struct {
		Projects []struct{ Slug string } `json:"projects"`
	}
	if status := call(t, s.srv, http.MethodGet, base+"?page_size=10", ``, &list); status != 200 || len(list.Projects) != 1 {
		t.Errorf("list projects: %d %+v", status, list)
	}
	if status := call(t, s.srv, http.MethodPatch, base+"/"+p.Project.ID, `{"name":"Website"}`, &p); status != 200 || p.Project.Name != "Website" || p.Project.Slug != "web" {
		t.Errorf("update project: %d %+v", status, p)
	}
	var key struct {
		APIKey struct {
			ID        string `json:"id"`
			ProjectID string `json:"project_id"`
		} `json:"api_key"`
		Key string `json:"key"`
	}
	if status := call(t, s.srv, http.MethodPost, "/v1/api-keys", `{"tenant_id":"`+acmeID+`","name":"k","project_id":"`+p.Project.ID+`"}`, &key); status != 409 {
		// acme is frozen: keys are refused (the project check is in the store tests).
		t.Errorf("create key for a frozen tenant: %d, want 409", status)
	}
	var del struct {
		Project struct{ ID string } `json:"project"`
		Revoked []string            `json:"revoked_api_key_ids"`
	}
	if status := call(t, s.srv, http.MethodDelete, base+"/"+p.Project.ID, ``, &del); status != 200 || del.Project.ID != p.Project.ID {
		t.Errorf("delete project: %d %+v", status, del)
	}
	e = errJSON{}
	if status := call(t, s.srv, http.MethodGet, base+"/"+p.Project.ID, ``, &e); status != 404 || e.Code != "not_found" {
		t.Errorf("get deleted project: %d %+v, want 404", status, e)
	}
}

// TestTenantExportNDJSON: GET /v1/tenants/{id}/export streams one JSON
// object per line with its type, the kinds in order, API keys without any
// hash, and the tenant's audit events.
func TestTenantExportNDJSON(t *testing.T) {
	s := newKeyStack(t, storetest.SQLite(t))
	_, plain := s.create(t, "exported")
	var ignored map[string]any
	if status := call(t, s.srv, http.MethodPost, "/v1/tenants/"+acmeID+"/projects", `{"slug":"web","name":"Web"}`, &ignored); status != 200 {
		t.Fatalf("create project: %d", status)
	}
	const clientSecret = "export-test-client-secret-5b1f"
	if status := call(t, s.srv, http.MethodPut, "/v1/tenants/"+acmeID+"/idp",
		`{"protocol":"oidc","oidc":{"issuer":"https://login.acme.example","client_id":"portal","client_secret":"`+clientSecret+`"},"domains":["acme.example","Eu.Acme.Example"]}`, &ignored); status != 200 {
		t.Fatalf("set idp: %d %v", status, ignored)
	}
	res := do(t, s.srv, http.MethodGet, "/v1/tenants/"+acmeID+"/export", "", nil)
	if res.status != 200 || res.header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("export: %d %q %s", res.status, res.header.Get("Content-Type"), res.body)
	}
	order := map[string]int{"tenant": 0, "entitlement": 1, "project": 2, "api_key": 3, "idp_config": 4, "audit_event": 5}
	counts := map[string]int{}
	last := -1
	sc := bufio.NewScanner(strings.NewReader(res.body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		var typ string
		_ = json.Unmarshal(rec["type"], &typ)
		pos, ok := order[typ]
		if !ok || rec[typ] == nil {
			t.Fatalf("line %s: unknown type %q or no %q field", sc.Text(), typ, typ)
		}
		if pos < last {
			t.Errorf("%s line after a later kind", typ)
		}
		last = pos
		counts[typ]++
		if typ == "idp_config" {
			var c struct {
				Protocol        string   `json:"protocol"`
				ClientID        string   `json:"client_id"`
				Domains         []string `json:"domains"`
				HasClientSecret bool     `json:"has_client_secret"`
			}
			if err := json.Unmarshal(rec[typ], &c); err != nil {
				t.Fatalf("idp_config line %s: %v", rec[typ], err)
			}
			slices.Sort(c.Domains)
			if c.Protocol != "oidc" || c.ClientID != "portal" || !c.HasClientSecret || !slices.Equal(c.Domains, []string{"acme.example", "eu.acme.example"}) {
				t.Errorf("idp_config = %+v, want oidc, client portal, a secret held, domains acme.example and eu.acme.example", c)
			}
		}
		if typ == "api_key" {
			var k map[string]any
			_ = json.Unmarshal(rec[typ], &k)
			if _, ok := k["hash"]; ok {
				t.Errorf("an exported API key has a hash: %s", rec[typ])
			}
		}
	}
	if counts["tenant"] != 1 || counts["project"] != 1 || counts["api_key"] != 1 || counts["entitlement"] == 0 || counts["idp_config"] != 1 || counts["audit_event"] < 4 {
		t.Errorf("export kinds = %v, want 1 tenant, entitlements, 1 project, 1 api_key, 1 idp_config and the audit events", counts)
	}
	if strings.Contains(res.body, clientSecret) {
		t.Errorf("the export holds the IdP client secret")
	}
	if strings.Contains(res.body, plain) {
		t.Errorf("the export holds an API key's plaintext")
	}
	// Unknown tenant: the usual JSON error.
	res = do(t, s.srv, http.MethodGet, "/v1/tenants/00000000-0000-0000-0000-0000000000ff/export", "", nil)
	if res.status != 404 || !strings.Contains(res.body, "not_found") {
		t.Errorf("export of an unknown tenant: %d %s", res.status, res.body)
	}
	// The by-slug path stays GetTenantBySlug.
	res = do(t, s.srv, http.MethodGet, "/v1/tenants/by-slug/export", "", nil)
	if res.status != 404 || !strings.Contains(res.body, "tenant not found") {
		t.Errorf("GET /v1/tenants/by-slug/export: %d %s, want GetTenantBySlug's 404", res.status, res.body)
	}
	// Another method on the export path: 405.
	res = do(t, s.srv, http.MethodPost, "/v1/tenants/"+acmeID+"/export", "{}", nil)
	if res.status != 405 {
		t.Errorf("POST on the export path: %d, want 405", res.status)
	}
}

// TestPurgedTenantHistoryREST: after the purge (DELETION_GRACE=0: due at
// once), the tenant is gone from the API, and a platform admin still lists,
// exports and verifies its audit history by its id, tenant.deleted last.
func TestPurgedTenantHistoryREST(t *testing.T) {
	s := newStack(t, storetest.SQLite(t), withConfig(func(c *config.Config) { c.DeletionGrace = 0 }))
	var created struct {
		Tenant struct{ ID string } `json:"tenant"`
	}
	if status := call(t, s.srv, http.MethodPost, "/v1/tenants", `{"slug":"hooli","name":"Hooli"}`, &created); status != 200 {
		t.Fatalf("create: %d", status)
	}
	id := created.Tenant.ID
	var ignored map[string]any
	for _, step := range []struct{ method, path string }{
		{http.MethodPost, "/v1/tenants/" + id + "/cancel"}, {http.MethodDelete, "/v1/tenants/" + id},
	} {
		if status := call(t, s.srv, step.method, step.path, `{}`, &ignored); status != 200 {
			t.Fatalf("%s %s: %d", step.method, step.path, status)
		}
	}
	if n, err := s.tenants.PurgeDue(storetest.SystemContext()); err != nil || n != 1 {
		t.Fatalf("PurgeDue = %d, %v", n, err)
	}
	if status := call(t, s.srv, http.MethodGet, "/v1/tenants/"+id, "", &ignored); status != 404 {
		t.Errorf("GET the purged tenant: %d, want 404", status)
	}
	var events struct {
		Events []struct{ Action string } `json:"events"`
	}
	if status := call(t, s.srv, http.MethodGet, "/v1/audit?tenant_id="+id, "", &events); status != 200 || len(events.Events) < 4 || events.Events[0].Action != "tenant.deleted" {
		t.Errorf("ListEvents of the purged tenant: %d %+v, want its history, tenant.deleted newest", status, events)
	}
	var verify struct {
		OK            bool   `json:"ok"`
		EventsChecked string `json:"events_checked"`
	}
	if status := call(t, s.srv, http.MethodPost, "/v1/audit/verify", `{"tenant_id":"`+id+`"}`, &verify); status != 200 || !verify.OK || verify.EventsChecked != strconv.Itoa(len(events.Events)) {
		t.Errorf("VerifyAuditChain of the purged tenant: %d %+v, want ok over %d events", status, verify, len(events.Events))
	}
	res := do(t, s.srv, http.MethodGet, "/v1/audit/export?tenant_id="+id, "", nil)
	if lines := strings.Count(strings.TrimSpace(res.body), "\n") + 1; res.status != 200 || lines != len(events.Events) || !strings.Contains(res.body, "tenant.deleted") {
		t.Errorf("ExportEvents of the purged tenant: %d, %d lines, want %d with tenant.deleted", res.status, lines, len(events.Events))
	}
	// The tenant export is for tenants that exist.
	if res := do(t, s.srv, http.MethodGet, "/v1/tenants/"+id+"/export", "", nil); res.status != 404 {
		t.Errorf("tenant export of the purged tenant: %d, want 404", res.status)
	}
}

package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	c "github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/auth/oidctest"
	"github.com/platform/tenant-registry/internal/principal"
)

// rpc sends a Connect JSON POST as who and decodes the answer (an event, or
// a Connect error) into out.
func (s *authStack) rpc(t *testing.T, who, procedure, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest("POST", s.srv.URL+procedure, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.token(who))
	res, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: %d %s", procedure, res.StatusCode, b)
	}
	return res.StatusCode
}

type appendAnswer struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Event   struct {
		ID         string            `json:"id"`
		Actor      map[string]string `json:"actor"`
		AppendedBy map[string]string `json:"appended_by"`
		ChainSeq   string            `json:"chain_seq"`
	} `json:"event"`
}

// TestAuditAppenderOverHTTP: issue 11 end to end with real tokens — an
// IT_ADMIN cannot append a system or service actor; every event answers its
// authenticated appender; idempotency keys are each appender's own, and a
// reused key with other content is 409 already_exists; an upper-case tenant
// id with a taken key is the stored event (not a 500), and verifies the
// same chain.
func TestAuditAppenderOverHTTP(t *testing.T) {
	s := newAuthStack(t)
	const appendProc = c.AuditServiceAppendEventProcedure
	event := func(tenant, actorType, description string) string {
		return `{"tenant_id":"` + tenant + `","action":"document.signed","crud":"u","actor":{"id":"a-1","type":"` + actorType +
			`"},"description":"` + description + `","idempotency_key":"idem-1"}`
	}
	var got appendAnswer
	for _, actorType := range []string{"system", "service"} {
		if code := s.rpc(t, "it_admin", appendProc, event(acmeID, actorType, "x"), &got); code != http.StatusForbidden || got.Code != "permission_denied" {
			t.Errorf("IT_ADMIN appending a %s actor: %d %+v, want 403 permission_denied", actorType, code, got)
		}
	}

	var byAdmin, bySvc, again appendAnswer
	if code := s.rpc(t, "it_admin", appendProc, event("", "user", "signed"), &byAdmin); code != http.StatusOK {
		t.Fatalf("IT_ADMIN append: %d %+v", code, byAdmin)
	}
	if want := map[string]string{"id": "itadmin-1", "type": "user", "tenant_id": acmeID}; !equalMaps(byAdmin.Event.AppendedBy, want) {
		t.Errorf("IT_ADMIN's event appended_by %v, want %v", byAdmin.Event.AppendedBy, want)
	}
	if code := s.rpc(t, "service", appendProc, event(acmeID, "service", "invoice sent"), &bySvc); code != http.StatusOK {
		t.Fatalf("service append: %d %+v", code, bySvc)
	}
	if bySvc.Event.ID == byAdmin.Event.ID {
		t.Fatal("the service's event vanished behind the IT_ADMIN's with the same idempotency key")
	}
	if want := map[string]string{"id": "svc-1", "type": "service"}; !equalMaps(bySvc.Event.AppendedBy, want) {
		t.Errorf("service's event appended_by %v, want %v", bySvc.Event.AppendedBy, want)
	}
	if code := s.rpc(t, "service", appendProc, event(acmeID, "service", "invoice sent"), &again); code != http.StatusOK || again.Event.ID != bySvc.Event.ID {
		t.Errorf("service retry: %d %+v, want its event %s", code, again, bySvc.Event.ID)
	}
	var conflict appendAnswer
	if code := s.rpc(t, "service", appendProc, event(acmeID, "service", "another invoice"), &conflict); code != http.StatusConflict ||
		conflict.Code != "already_exists" || !strings.Contains(conflict.Message, "idempotency_key") || !strings.Contains(conflict.Message, "description differs") {
		t.Errorf("same key, other content: %d %+v, want 409 already_exists naming idempotency_key and description", code, conflict)
	}

	// Upper case: globex's id has letters.
	upper := strings.ToUpper(s.globexID)
	if upper == s.globexID {
		t.Fatal("globex's id has no letters")
	}
	var first, second appendAnswer
	if code := s.rpc(t, "service", appendProc, event(upper, "service", "x"), &first); code != http.StatusOK {
		t.Fatalf("upper-case append: %d %+v", code, first)
	}
	if code := s.rpc(t, "service", appendProc, event(upper, "service", "x"), &second); code != http.StatusOK || second.Event.ID != first.Event.ID {
		t.Errorf("upper-case append with a taken key: %d %+v, want 200 and event %s", code, second, first.Event.ID)
	}
	var verify struct {
		OK            bool   `json:"ok"`
		EventsChecked string `json:"events_checked"`
		Empty         bool   `json:"empty"`
	}
	for _, id := range []string{s.globexID, upper} {
		if code := s.rpc(t, "platform_admin", c.AuditServiceVerifyAuditChainProcedure, `{"tenant_id":"`+id+`"}`, &verify); code != http.StatusOK ||
			!verify.OK || verify.EventsChecked != "5" || verify.Empty {
			// tenant.created, keycloak.provisioned, api_key.created,
			// project.created (the stack's setup) and ours.
			t.Errorf("verify %s: %d %+v, want ok with 5 events", id, code, verify)
		}
	}
}

// TestAuditTenantCallerAnyCase: a tenant's IT_ADMIN naming their own tenant
// in upper case is their own tenant (the edge's scope check compares ids as
// UUIDs), over Connect and over the NDJSON export.
func TestAuditTenantCallerAnyCase(t *testing.T) {
	s := newAuthStack(t)
	upper := strings.ToUpper(s.globexID)
	tok := s.issuer.Token(oidctest.Claims{Subject: "globex-admin", TenantID: s.globexID,
		Roles: []string{principal.RoleITAdmin}, Audience: []string{"tenant-registry"}})
	for _, proc := range []string{c.AuditServiceVerifyAuditChainProcedure, c.AuditServiceListEventsProcedure} {
		status, code := s.post(t, tok, proc, `{"tenant_id":"`+upper+`"}`)
		if status != http.StatusOK {
			t.Errorf("%s with its own tenant in upper case: %d %s, want 200", proc, status, code)
		}
	}
	status, code := s.post(t, tok, c.AuditServiceVerifyAuditChainProcedure, `{"tenant_id":"`+strings.ToUpper(acmeID)+`"}`)
	if status != http.StatusNotFound || code != "not_found" {
		t.Errorf("verify another tenant: %d %s, want 404 not_found", status, code)
	}
	req, _ := http.NewRequest("GET", s.srv.URL+"/v1/audit/export?tenant_id="+upper, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(b), `"action":"tenant.created"`) {
		t.Errorf("export with its own tenant in upper case: %d %s, want 200 with its events", res.StatusCode, b)
	}
}

func equalMaps(got, want map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	for k, v := range got {
		if want[k] != v {
			return false
		}
	}
	return true
}

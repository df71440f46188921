package server_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent/webhookmessage"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/logtest"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

// TestWebhookEndpointsOverHTTP: endpoints over REST on both stores. The
// secret is answered by create and rotate only: never by get or list,
// never in a log line (debug included) nor in an audit event; endpoint
// changes are audited in the platform chain, or the filter's tenant's;
// bad input is a 4xx naming the field.
func TestWebhookEndpointsOverHTTP(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		logs := &logtest.Buffer{}
		s := newStack(t, st, withLogger(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
		var ignoredBody map[string]any
		var created struct {
			Endpoint map[string]any `json:"endpoint"`
			Secret   string         `json:"secret"`
		}
		if status := call(t, s.srv, http.MethodPost, "/v1/webhooks",
			`{"url":"http://127.0.0.1:9/a","event_types":["tenant.created","tenant.created"]}`, &created); status != http.StatusOK {
			t.Fatalf("create: %d", status)
		}
		id, _ := created.Endpoint["id"].(string)
		if !strings.HasPrefix(created.Secret, "whsec_") || len(created.Secret) != len("whsec_")+44 || id == "" {
			t.Fatalf("create answered %+v", created)
		}
		if got := created.Endpoint["event_types"]; mustJSON(t, got) != `["tenant.created"]` {
			t.Errorf("event_types %v, want the one type once", got)
		}
		var rotated struct {
			Endpoint map[string]any `json:"endpoint"`
			Secret   string         `json:"secret"`
		}
		if status := call(t, s.srv, http.MethodPost, "/v1/webhooks/"+id+"/rotate-secret", `{}`, &rotated); status != http.StatusOK ||
			rotated.Secret == created.Secret || !strings.HasPrefix(rotated.Secret, "whsec_") || rotated.Endpoint["previous_secret_expires_at"] == nil {
			t.Fatalf("rotate: %d %+v", status, rotated)
		}
		var tenantScoped struct {
			Endpoint map[string]any `json:"endpoint"`
			Secret   string         `json:"secret"`
		}
		if status := call(t, s.srv, http.MethodPost, "/v1/webhooks", `{"url":"http://127.0.0.1:9/b","tenant_id":"`+strings.ToUpper(acmeID)+`"}`, &tenantScoped); status != http.StatusOK ||
			tenantScoped.Endpoint["tenant_id"] != acmeID {
			t.Fatalf("create for acme: %d %+v", status, tenantScoped)
		}
		secrets := []string{created.Secret, rotated.Secret, tenantScoped.Secret}
		noSecret := func(what, body string) {
			t.Helper()
			for _, sec := range secrets {
				if strings.Contains(body, strings.TrimPrefix(sec, "whsec_")) {
					t.Errorf("%s shows a secret: %s", what, body)
				}
			}
		}
		for _, path := range []string{"/v1/webhooks", "/v1/webhooks/" + id, "/v1/webhooks/" + id + "/deliveries",
			"/v1/audit?tenant_id=" + audit.PlatformGroup, "/v1/audit?tenant_id=" + acmeID} {
			res := do(t, s.srv, http.MethodGet, path, "", nil)
			if res.status != http.StatusOK {
				t.Errorf("GET %s: %d %s", path, res.status, res.body)
			}
			noSecret("GET "+path, res.body)
		}
		// The platform chain holds the tenant-less endpoint's events, acme's
		// chain the acme endpoint's.
		res := do(t, s.srv, http.MethodGet, "/v1/audit?tenant_id="+audit.PlatformGroup, "", nil)
		for _, want := range []string{"webhook.endpoint.created", "webhook.endpoint.secret_rotated"} {
			if !strings.Contains(res.body, `"action":"`+want+`"`) {
				t.Errorf("platform chain lacks %s: %s", want, res.body)
			}
		}
		if res := do(t, s.srv, http.MethodGet, "/v1/audit?tenant_id="+acmeID+"&action=webhook.endpoint.created", "", nil); !strings.Contains(res.body, tenantScoped.Endpoint["id"].(string)) {
			t.Errorf("acme's chain lacks its endpoint's creation: %s", res.body)
		}
		if res := do(t, s.srv, http.MethodPost, "/v1/audit/verify", `{"tenant_id":"`+audit.PlatformGroup+`"}`, nil); !strings.Contains(res.body, `"ok":true`) {
			t.Errorf("platform chain does not verify: %s", res.body)
		}
		// A delivered message is not retried: 409 failed_precondition.
		if status := call(t, s.srv, http.MethodPost, "/v1/tenants", `{"slug":"hooked-retry","name":"Hooked"}`, &ignoredBody); status != http.StatusOK {
			t.Fatalf("create tenant: %d %v", status, ignoredBody)
		}
		msg, err := st.Client.WebhookMessage.Query().Where(webhookmessage.EndpointID(uuid.MustParse(id)), webhookmessage.EventType("tenant.created")).Only(storetest.SystemContext())
		if err != nil {
			t.Fatalf("the tenant.created message: %v", err)
		}
		if err := msg.Update().SetStatus("delivered").SetLastStatus(204).Exec(storetest.SystemContext()); err != nil {
			t.Fatal(err)
		}
		if res := do(t, s.srv, http.MethodPost, "/v1/webhooks/"+id+"/deliveries/"+msg.ID.String()+"/retry", `{}`, nil); res.status != http.StatusConflict ||
			!strings.Contains(res.body, `"code":"failed_precondition"`) || !strings.Contains(res.body, "already delivered") {
			t.Errorf("retry of a delivered message: %d %s, want 409 failed_precondition", res.status, res.body)
		}
		for _, tc := range []struct {
			method, path, body string
			status             int
			field              string
		}{
			{http.MethodPost, "/v1/webhooks", `{"url":"gopher://x"}`, http.StatusBadRequest, "url:"},
			{http.MethodPost, "/v1/webhooks", `{}`, http.StatusBadRequest, "url:"},
			{http.MethodPost, "/v1/webhooks", `{"url":"http://127.0.0.1/","event_types":["Not A Type"]}`, http.StatusBadRequest, "event_types:"},
			{http.MethodPost, "/v1/webhooks", `{"url":"http://127.0.0.1/","tenant_id":"nope"}`, http.StatusBadRequest, "tenant_id:"},
			{http.MethodPost, "/v1/webhooks", `{"url":"http://127.0.0.1/","tenant_id":"00000000-0000-0000-0000-0000000000ff"}`, http.StatusNotFound, "tenant not found"},
			{http.MethodPost, "/v1/webhooks", `{"url":"http://127.0.0.1/","description":"` + strings.Repeat("d", 501) + `"}`, http.StatusBadRequest, "description:"},
			{http.MethodGet, "/v1/webhooks/nope", "", http.StatusBadRequest, "id:"},
			{http.MethodGet, "/v1/webhooks?page_size=-1", "", http.StatusBadRequest, "page_size:"},
			{http.MethodPost, "/v1/webhooks/" + id + "/deliveries/nope/retry", `{}`, http.StatusBadRequest, "delivery_id:"},
		} {
			res := do(t, s.srv, tc.method, tc.path, tc.body, nil)
			if res.status != tc.status || !strings.Contains(res.body, tc.field) {
				t.Errorf("%s %s %.60s: %d %s, want %d naming %s", tc.method, tc.path, tc.body, res.status, res.body, tc.status, tc.field)
			}
		}
		if res := do(t, s.srv, http.MethodDelete, "/v1/webhooks/"+id, "", nil); res.status != http.StatusOK {
			t.Errorf("delete: %d %s", res.status, res.body)
		}
		if res := do(t, s.srv, http.MethodGet, "/v1/webhooks/"+id, "", nil); res.status != http.StatusNotFound {
			t.Errorf("get after delete: %d %s", res.status, res.body)
		}
		noSecret("the log", logs.String())
	})
}

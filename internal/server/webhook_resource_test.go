package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/platform/tenant-registry/ent/webhookmessage"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

// TestWebhookDataResource: a message's data.resource is the changed
// resource after the change, in the JSON its GET answers: a project, an API
// key (metadata only: never its secret), a tenant; a deleted project has
// none.
func TestWebhookDataResource(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		s := newStack(t, st)
		var ignored map[string]any
		if status := call(t, s.srv, http.MethodPost, "/v1/webhooks", `{"url":"http://127.0.0.1:9/hook"}`, &ignored); status != http.StatusOK {
			t.Fatalf("create endpoint: %d %v", status, ignored)
		}
		var proj map[string]any
		if status := call(t, s.srv, http.MethodPost, "/v1/tenants/"+acmeID+"/projects", `{"slug":"hooks","name":"Hooks"}`, &proj); status != http.StatusOK {
			t.Fatalf("create project: %d %v", status, proj)
		}
		projectID, _ := proj["id"].(string)
		if p, ok := proj["project"].(map[string]any); ok {
			projectID, _ = p["id"].(string)
		}
		if projectID == "" {
			t.Fatalf("create project answered %v", proj)
		}
		var key struct {
			Key    string         `json:"key"`
			APIKey map[string]any `json:"api_key"`
		}
		if status := call(t, s.srv, http.MethodPost, "/v1/api-keys", `{"tenant_id":"`+acmeID+`","name":"hooked","scopes":["certifai:read"],"project_id":"`+projectID+`"}`, &key); status != http.StatusOK || key.Key == "" {
			t.Fatalf("create key: %d %+v", status, key)
		}
		keyID, _ := key.APIKey["id"].(string)
		if status := call(t, s.srv, http.MethodPost, "/v1/catalog/request", `{"tenant_id":"`+acmeID+`","product":"vendor-risk","note":"please"}`, &ignored); status != http.StatusOK {
			t.Fatalf("request product: %d %v", status, ignored)
		}
		if status := call(t, s.srv, http.MethodPatch, "/v1/tenants/"+acmeID, `{"name":"Acme Hooked"}`, &ignored); status != http.StatusOK {
			t.Fatalf("update tenant: %d %v", status, ignored)
		}
		if status := call(t, s.srv, http.MethodDelete, "/v1/tenants/"+acmeID+"/projects/"+projectID, "", &ignored); status != http.StatusOK {
			t.Fatalf("delete project: %d %v", status, ignored)
		}

		resources := map[string]map[string]any{} // event type → data.resource
		msgs, err := st.Client.WebhookMessage.Query().Order(webhookmessage.ByChainSeq()).All(storetest.SystemContext())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			var body struct {
				Data struct {
					Resource map[string]any `json:"resource"`
				} `json:"data"`
			}
			if err := json.Unmarshal(m.Payload, &body); err != nil {
				t.Fatalf("%s payload %s: %v", m.EventType, m.Payload, err)
			}
			resources[m.EventType] = body.Data.Resource
			if bytes.Contains(m.Payload, []byte(key.Key)) {
				t.Errorf("%s carries the API key's plaintext", m.EventType)
			}
		}
		for _, tc := range []struct {
			event, field string
			want         any
		}{
			{"project.created", "id", projectID},
			{"project.created", "slug", "hooks"},
			{"api_key.created", "id", keyID},
			{"api_key.created", "project_id", projectID},
			{"api_key.created", "name", "hooked"},
			{"tenant.updated", "id", acmeID},
			{"tenant.updated", "name", "Acme Hooked"},
			{"api_key.revoked", "id", keyID},
			{"catalog.product_requested", "product", "vendor-risk"},
			{"catalog.product_requested", "status", "requested"},
		} {
			r := resources[tc.event]
			if r == nil {
				t.Errorf("%s: no data.resource", tc.event)
				continue
			}
			if got := r[tc.field]; got != tc.want {
				t.Errorf("%s: resource.%s = %v, want %v", tc.event, tc.field, got, tc.want)
			}
		}
		if r := resources["api_key.revoked"]; r != nil && r["revoked_at"] == nil {
			t.Errorf("api_key.revoked: resource %v has no revoked_at", r)
		}
		if r, ok := resources["project.deleted"]; !ok || r != nil {
			t.Errorf("project.deleted: resource %v (present %v), want a message without one", r, ok)
		}
	})
}

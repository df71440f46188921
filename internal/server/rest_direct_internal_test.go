package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRESTDirectRoutes checks which requests restDirect calls directly and
// which it leaves to the transcoder (so that TestRESTDirectAnswers'
// references are the transcoder's answers).
func TestRESTDirectRoutes(t *testing.T) {
	var got string
	handler := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = name + " " + r.Method + " " + r.URL.Path + " " + r.Header.Get("Content-Type")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"code":"not_found","message":"x"}`))
		})
	}
	d := &restDirect{tenants: handler("tenants"), internal: handler("internal"), next: handler("transcoder")}
	for _, c := range []struct {
		method, target, body, encoding, want string
	}{
		{"GET", "/v1/tenants/by-slug/acme", "", "", "tenants POST /tenantregistry.v1.TenantService/GetTenantBySlug application/proto"},
		{"GET", "/v1/tenants/by-slug/%61cme", "", "", "transcoder GET /v1/tenants/by-slug/acme "},
		{"GET", "/v1/tenants/by-slug/a%2Fb", "", "", "transcoder GET /v1/tenants/by-slug/a/b "},
		{"GET", "/v1/tenants/by-slug/acme?page=1", "", "", "transcoder GET /v1/tenants/by-slug/acme "},
		{"GET", "/v1/tenants/by-slug/", "", "", "transcoder GET /v1/tenants/by-slug/ "},
		{"GET", "/v1/tenants/acme", "", "", "transcoder GET /v1/tenants/acme "},
		{"DELETE", "/v1/tenants/by-slug/acme", "", "", "transcoder DELETE /v1/tenants/by-slug/acme "},
		{"POST", "/v1/internal/keycloak/claims", `{"slug":"acme"}`, "", "internal POST /tenantregistry.v1.InternalService/ResolveClaims application/json"},
		{"POST", "/v1/internal/keycloak/claims", `{"slug":"acme"}`, "identity", "transcoder POST /v1/internal/keycloak/claims application/json"},
		{"POST", "/v1/internal/keycloak/claims", `{"slug":`, "", "transcoder POST /v1/internal/keycloak/claims application/json"},
		{"POST", "/v1/internal/keycloak/claims", ``, "", "transcoder POST /v1/internal/keycloak/claims application/json"},
		{"POST", "/v1/internal/api-keys/verify", `{"key":"x"}`, "", "transcoder POST /v1/internal/api-keys/verify application/json"},
	} {
		got = ""
		r := httptest.NewRequest(c.method, c.target, strings.NewReader(c.body))
		r.Header.Set("Content-Type", "application/json")
		if c.method == "GET" || c.method == "DELETE" {
			r.Header.Del("Content-Type")
		}
		if c.encoding != "" {
			r.Header.Set("Content-Encoding", c.encoding)
		}
		w := httptest.NewRecorder()
		d.ServeHTTP(w, r)
		if got != c.want {
			t.Errorf("%s %s: got %q, want %q", c.method, c.target, got, c.want)
		}
		if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), `"code":"not_found"`) {
			t.Errorf("%s %s: answer %d %s, want the handler's 404", c.method, c.target, w.Code, w.Body)
		}
	}
}

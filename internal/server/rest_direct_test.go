package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestRESTDirectAnswers checks that GetTenantBySlug and ResolveClaims,
// which the REST shim calls directly (rest_direct.go), answer every caller
// exactly what the transcoder answers the same request: the reference is
// the same call in a form the direct path leaves to the transcoder (the
// slug's first letter percent-escaped; a Content-Encoding of identity).
func TestRESTDirectAnswers(t *testing.T) {
	s := newAuthStack(t)
	token := func(caller string) map[string]string {
		if caller == "" {
			return nil
		}
		return map[string]string{"Authorization": "Bearer " + s.token(caller)}
	}
	compact := func(b string) string {
		var out bytes.Buffer
		if json.Compact(&out, []byte(b)) != nil {
			return b
		}
		return out.String()
	}
	same := func(t *testing.T, name string, got, want response) {
		t.Helper()
		if got.status != want.status || got.header.Get("Content-Type") != want.header.Get("Content-Type") || compact(got.body) != compact(want.body) {
			t.Errorf("%s:\n got %d %s %s\nwant %d %s %s (the transcoder's)", name,
				got.status, got.header.Get("Content-Type"), got.body, want.status, want.header.Get("Content-Type"), want.body)
		}
	}

	for _, c := range []struct{ slug, caller string }{
		{"acme", "platform_admin"},
		{"acme", "tenant_user"},
		{"acme", "it_admin"},
		{"globex", "tenant_user"}, // another tenant's
		{"acme", "service"},
		{"acme", "no_role"},
		{"acme", "retraced_viewer"},
		{"acme", ""}, // no token
		{"nobody", "platform_admin"},
		{"Not-A-Slug", "platform_admin"},
		{"a" + strings.Repeat("b", 80), "platform_admin"},
	} {
		name := fmt.Sprintf("by-slug %s as %q", c.slug, c.caller)
		escaped := fmt.Sprintf("%%%02X%s", c.slug[0], c.slug[1:])
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			got := do(t, s.srv, method, "/v1/tenants/by-slug/"+c.slug, "", token(c.caller))
			want := do(t, s.srv, method, "/v1/tenants/by-slug/"+escaped, "", token(c.caller))
			same(t, method+" "+name, got, want)
			if method == http.MethodGet && c.caller == "platform_admin" && c.slug == "acme" &&
				(got.status != http.StatusOK || !strings.Contains(got.body, `"slug":"acme"`) || strings.Contains(got.body, `"tenant":`)) {
				t.Errorf("%s: %d %s, want 200 and the tenant itself", name, got.status, got.body)
			}
		}
	}

	for _, c := range []struct{ body, caller string }{
		{`{"slug":"acme"}`, "service"},
		{`{"tenant_id":"` + acmeID + `"}`, "service"},
		{`{"slug":"acme","unknown":1}`, "service"},
		{`{"slug":"nobody"}`, "service"},
		{`{"slug":"Not A Slug"}`, "service"},
		{`{}`, "service"},
		{`{"slug":"acme","tenant_id":"` + acmeID + `"}`, "service"},
		{`{"slug":`, "service"},
		{`[]`, "service"},
		{``, "service"},
		{`{"slug":"acme"}`, "tenant_user"},
		{`{"slug":"acme"}`, "platform_admin"},
		{`{"slug":"acme"}`, ""},
	} {
		name := fmt.Sprintf("claims %s as %q", c.body, c.caller)
		h := token(c.caller)
		got := do(t, s.srv, http.MethodPost, "/v1/internal/keycloak/claims", c.body, h)
		ref := map[string]string{"Content-Encoding": "identity"}
		for k, v := range h {
			ref[k] = v
		}
		want := do(t, s.srv, http.MethodPost, "/v1/internal/keycloak/claims", c.body, ref)
		same(t, name, got, want)
		if c.caller == "service" && c.body == `{"slug":"acme"}` && (got.status != http.StatusOK || !strings.Contains(got.body, `"tenant_id":"`+acmeID+`"`)) {
			t.Errorf("%s: %d %s, want acme's claims", name, got.status, got.body)
		}
	}
}

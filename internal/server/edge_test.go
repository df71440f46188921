package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/config"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

// errorCode decodes a {"code","message"} body; it fails the test when the
// body is not one or has no message.
func errorCode(t *testing.T, body string) string {
	t.Helper()
	var e apiError
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Code == "" || e.Message == "" {
		t.Fatalf("not an error body with code and message: %s", body)
	}
	return e.Code
}

// TestJSONContentTypeSpellings: JSON with any charset parameter or case is
// the same snake_case JSON, all scalars shown, on Connect and REST.
func TestJSONContentTypeSpellings(t *testing.T) {
	srv := newStack(t, storetest.SQLite(t)).srv
	const want = `{"valid":false,"reason":"unknown","tenant_id":"","slug":"","key_id":"","scopes":[],"products":[],"project_id":""}`
	spellings := []string{
		"application/json",
		"application/json; charset=utf-8",
		"application/json;charset=UTF-8",
		"application/json; charset=UTF-8",
		`application/json; charset="utf-8"`,
		"Application/JSON",
		"APPLICATION/JSON; CHARSET=UTF-8",
	}
	routes := []string{"/tenantregistry.v1.InternalService/VerifyApiKey", "/v1/internal/api-keys/verify"}
	for _, route := range routes {
		for _, ct := range spellings {
			status, _, body := send(t, srv, http.MethodPost, route, ct, `{"key":"trk_nope"}`)
			if status != http.StatusOK || compact(t, body) != compact(t, want) {
				t.Errorf("POST %s with %q: %d %s, want 200 %s", route, ct, status, body, want)
			}
		}
		status, _, body := send(t, srv, http.MethodPost, route, "application/json; charset=iso-8859-1", `{"key":"trk_nope"}`)
		if status != http.StatusUnsupportedMediaType || errorCode(t, body) != "invalid_argument" {
			t.Errorf("POST %s with a Latin-1 charset: %d %s, want 415 invalid_argument", route, status, body)
		}
	}
}

// compact decodes a JSON object and encodes it again with sorted keys, so
// that two answers compare by content, every key included.
func compact(t *testing.T, s string) string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestQueryStringRules: unknown query parameters are ignored; one that
// names a path variable is a 400 and changes nothing; invalid UTF-8 in the
// path or the query is a 400.
func TestQueryStringRules(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		s := newStack(t, st)
		ctx := storetest.SystemContext()
		_, _, base := send(t, s.srv, http.MethodGet, "/v1/tenants/by-slug/acme", "", "")
		for _, q := range []string{"?_=1733000000", "?lang=en", "?foo=bar&_=1"} {
			status, _, body := send(t, s.srv, http.MethodGet, "/v1/tenants/by-slug/acme"+q, "", "")
			if status != http.StatusOK || body != base {
				t.Errorf("GET by-slug%s: %d %s, want 200 and the same tenant", q, status, body)
			}
		}

		n, err := s.keys.Create(ctx, apikey.CreateInput{TenantID: acmeID, Name: "n"})
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.keys.Create(ctx, apikey.CreateInput{TenantID: acmeID, Name: "m"})
		if err != nil {
			t.Fatal(err)
		}
		status, _, body := send(t, s.srv, http.MethodDelete, "/v1/api-keys/"+n.Key.ID.String()+"?id="+m.Key.ID.String(), "", "")
		if status != http.StatusBadRequest || errorCode(t, body) != "invalid_argument" || !strings.Contains(body, `\"id\"`) {
			t.Errorf("DELETE /v1/api-keys/N?id=M: %d %s, want 400 naming id", status, body)
		}
		for _, k := range []string{n.Plaintext, m.Plaintext} {
			if v, err := s.keys.Verify(ctx, k); err != nil || !v.Valid {
				t.Errorf("after the refused DELETE a key is no longer valid: %+v %v", v, err)
			}
		}
		// A body-whole route ignores the query: the body says which tenant.
		status, _, body = send(t, s.srv, http.MethodPost, "/v1/internal/keycloak/claims?slug=nobody", "application/json", `{"slug":"acme"}`)
		if status != http.StatusOK || !strings.Contains(body, `"slug":"acme"`) {
			t.Errorf("POST claims?slug=nobody with body acme: %d %s, want acme's claims", status, body)
		}

		for _, path := range []string{"/v1/tenants/by-slug/%ff%fe", "/v1/api-keys?tenant_id=%ff", "/v1/tenants?query=%c3"} {
			status, _, body := send(t, s.srv, http.MethodGet, path, "", "")
			if status != http.StatusBadRequest || errorCode(t, body) != "invalid_argument" {
				t.Errorf("GET %s: %d %s, want 400 invalid_argument", path, status, body)
			}
		}
	})
}

// TestMethodNotAllowed: a wrong method on a REST path is 405 with Allow.
func TestMethodNotAllowed(t *testing.T) {
	srv := newStack(t, storetest.SQLite(t)).srv
	cases := []struct{ method, path, wantAllow string }{
		{http.MethodPut, "/v1/tenants/by-slug/acme", "GET"},
		{http.MethodPost, "/v1/api-keys/" + acmeID, "DELETE"},
		{http.MethodDelete, "/v1/catalog", "GET"},
	}
	for _, c := range cases {
		status, h, body := send(t, srv, c.method, c.path, "application/json", "{}")
		if status != http.StatusMethodNotAllowed || h.Get("Allow") != c.wantAllow || errorCode(t, body) != "unimplemented" {
			t.Errorf("%s %s: %d Allow %q %s, want 405 Allow %q", c.method, c.path, status, h.Get("Allow"), body, c.wantAllow)
		}
	}
}

// TestTextLimitsCountCharacters: every length limit counts characters, on
// both stores; the text the API accepts is stored as sent, and a NUL is a
// 400 on both stores that writes nothing.
func TestTextLimitsCountCharacters(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		s := newStack(t, st)
		name := strings.Repeat("株", 80) // 240 bytes, 80 characters: within 200
		var created struct {
			Tenant struct{ ID, Name string } `json:"tenant"`
		}
		status := call(t, s.srv, http.MethodPost, "/v1/tenants", `{"slug":"kabu","name":"`+name+`","admin_email":"a@example.com","admin_name":"`+strings.Repeat("名", 150)+`"}`, &created)
		if status != http.StatusOK || created.Tenant.Name != name {
			t.Fatalf("create with an 80-character CJK name: %d %+v", status, created)
		}
		var tooLong apiError
		if status := call(t, s.srv, http.MethodPost, "/v1/tenants", `{"slug":"kabu2","name":"`+strings.Repeat("株", 201)+`"}`, &tooLong); status != http.StatusBadRequest || tooLong.Code != "invalid_argument" {
			t.Errorf("create with 201 characters: %d %+v, want 400", status, tooLong)
		}
		var key struct {
			APIKey struct{ Name string } `json:"api_key"`
		}
		if status := call(t, s.srv, http.MethodPost, "/v1/api-keys", `{"tenant_id":"`+acmeID+`","name":"`+name+`"}`, &key); status != http.StatusOK || key.APIKey.Name != name {
			t.Errorf("API key with an 80-character CJK name: %d %+v", status, key)
		}
		note := strings.Repeat("注", 1000) // 3000 bytes, 1000 characters: within 2000
		var ent struct {
			Entitlement struct{ Note string } `json:"entitlement"`
		}
		if status := call(t, s.srv, http.MethodPost, "/v1/catalog/request", `{"tenant_id":"`+created.Tenant.ID+`","product":"certifai","note":"`+note+`"}`, &ent); status != http.StatusOK || ent.Entitlement.Note != note {
			t.Errorf("request with a 1000-character CJK note: %d, note stored %d characters", status, len([]rune(ent.Entitlement.Note)))
		}

		desc, value := strings.Repeat("述", 1500), strings.Repeat("値", 800) // 4500 and 2400 bytes
		var ev struct {
			Event struct {
				Description string            `json:"description"`
				Fields      map[string]string `json:"fields"`
			} `json:"event"`
		}
		if status := call(t, s.srv, http.MethodPost, "/v1/audit", `{"tenant_id":"`+acmeID+`","action":"doc.viewed","crud":"r","actor":{"id":"u-1","name":"`+name+`"},"description":"`+desc+`","fields":{"k":"`+value+`"}}`, &ev); status != http.StatusOK || ev.Event.Description != desc || ev.Event.Fields["k"] != value {
			t.Errorf("audit event with 1500-character description and an 800-character field: %d", status)
		}

		nul := []struct{ method, path, body string }{
			{http.MethodGet, "/v1/tenants?query=a%00b", ""},
			{http.MethodPost, "/v1/tenants", `{"slug":"nul-admin","name":"N","admin_email":"a@example.com","admin_name":"a\u0000b"}`},
			{http.MethodPost, "/v1/tenants", `{"slug":"nul-name","name":"a\u0000b"}`},
			{http.MethodPost, "/v1/catalog/request", `{"tenant_id":"` + acmeID + `","product":"certifai","note":"a\u0000b"}`},
			{http.MethodPost, "/tenantregistry.v1.TenantService/CreateTenant", `{"slug":"nul-connect","name":"x","admin_email":"a@example.com","admin_name":"\u0000"}`},
		}
		for _, c := range nul {
			var e apiError
			if status := call(t, s.srv, c.method, c.path, c.body, &e); status != http.StatusBadRequest || e.Code != "invalid_argument" {
				t.Errorf("%s %s with a NUL: %d %+v, want 400 invalid_argument", c.method, c.path, status, e)
			}
		}
		for _, slug := range []string{"nul-admin", "nul-name", "nul-connect"} {
			if _, err := s.tenants.GetBySlug(storetest.SystemContext(), slug); err == nil {
				t.Errorf("tenant %s exists after its create was refused", slug)
			}
		}
	})
}

// slowProvisioner is a Keycloak that answers after d, whatever the
// caller's deadline (a server that does not notice the client gave up);
// called counts its calls.
type slowProvisioner struct {
	d      time.Duration
	called *atomic.Int32
}

func (p slowProvisioner) Provision(context.Context, keycloak.ProvisionRequest) (keycloak.ProvisionResult, error) {
	p.called.Add(1)
	time.Sleep(p.d)
	return keycloak.ProvisionResult{}, errors.New("keycloak: too slow")
}

// TestServerDeadline: the server's own RPC deadline is deadline_exceeded
// (504), not unavailable; a create that committed is answered as created
// even when Keycloak holds it past the RPC's deadline.
func TestServerDeadline(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		const rpcTimeout = time.Second
		var called atomic.Int32
		s := newStack(t, st,
			withProvisioner(slowProvisioner{d: 2 * rpcTimeout, called: &called}),
			withConfig(func(c *config.Config) { c.RPCTimeout = rpcTimeout }))
		var created struct {
			Tenant struct{ ID, Slug string } `json:"tenant"`
		}
		status := call(t, s.srv, http.MethodPost, "/v1/tenants", `{"slug":"slowkc","name":"Slow","admin_email":"a@example.com"}`, &created)
		if status != http.StatusOK || created.Tenant.Slug != "slowkc" {
			t.Fatalf("create while Keycloak hangs past the deadline: %d %+v, want 200 with the tenant", status, created)
		}
		if _, err := s.tenants.GetBySlug(storetest.SystemContext(), "slowkc"); err != nil {
			t.Fatalf("the tenant answered as created is not there: %v", err)
		}
		if called.Load() != 1 {
			t.Fatalf("Keycloak was called %d times, want once (the inline attempt, past the deadline)", called.Load())
		}

		fast := newStack(t, st, withConfig(func(c *config.Config) { c.RPCTimeout = time.Nanosecond }))
		for _, path := range []string{"/v1/tenants/by-slug/acme", "/v1/tenants"} {
			var e apiError
			if status := call(t, fast.srv, http.MethodGet, path, "", &e); status != http.StatusGatewayTimeout || e.Code != "deadline_exceeded" {
				t.Errorf("GET %s past the server's deadline: %d %+v, want 504 deadline_exceeded", path, status, e)
			}
		}
	})
}

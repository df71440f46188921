package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

type claims struct {
	TenantID string   `json:"tenant_id"`
	Slug     string   `json:"slug"`
	Products []string `json:"products"`
	Plan     string   `json:"plan"`
	Status   string   `json:"status"`
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func TestResolveClaimsREST(t *testing.T) {
	srv := newStack(t, storetest.SQLite(t)).srv
	want := claims{TenantID: acmeID, Slug: "acme", Products: []string{"certifai", "compliance"}, Plan: "professional", Status: "active"}
	ok := []struct{ name, path, body string }{
		{"REST by slug", "/v1/internal/keycloak/claims", `{"slug":"acme"}`},
		{"REST by tenant_id", "/v1/internal/keycloak/claims", `{"tenant_id":"` + acmeID + `"}`},
		{"Connect JSON", "/tenantregistry.v1.InternalService/ResolveClaims", `{"slug":"acme"}`},
	}
	for _, c := range ok {
		var got claims
		status := call(t, srv, http.MethodPost, c.path, c.body, &got)
		if status != http.StatusOK {
			t.Errorf("%s: status %d, want 200", c.name, status)
		}
		if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
			t.Errorf("%s: got %s, want %s", c.name, g, w)
		}
	}
	bad := []struct {
		name, body string
		wantStatus int
		wantCode   string
	}{
		{"neither", `{}`, 400, "invalid_argument"},
		{"both", `{"slug":"acme","tenant_id":"` + acmeID + `"}`, 400, "invalid_argument"},
		{"bad slug", `{"slug":"Not A Slug"}`, 400, "invalid_argument"},
		{"bad tenant id", `{"tenant_id":"acme"}`, 400, "invalid_argument"},
		{"not JSON", `{"slug":`, 400, "invalid_argument"},
		{"unknown slug", `{"slug":"nobody"}`, 404, "not_found"},
	}
	for _, c := range bad {
		var got apiError
		status := call(t, srv, http.MethodPost, "/v1/internal/keycloak/claims", c.body, &got)
		if status != c.wantStatus || got.Code != c.wantCode || got.Message == "" {
			t.Errorf("%s: %d %+v, want %d with code %q and a message", c.name, status, got, c.wantStatus, c.wantCode)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCatalogAndEntitlementsREST walks the catalog's REST paths on both
// stores: list with statuses, trial, request, grant, revoke.
func TestCatalogAndEntitlementsREST(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		srv := newStack(t, st).srv
		type product struct {
			Key               string `json:"key"`
			TrialAvailable    bool   `json:"trial_available"`
			TrialDays         int    `json:"trial_days"`
			EntitlementStatus string `json:"entitlement_status"`
		}
		type entitlementJSON struct {
			Product     string `json:"product"`
			Status      string `json:"status"`
			Note        string `json:"note"`
			TrialEndsAt string `json:"trial_ends_at"`
		}
		statuses := func() string {
			var got struct{ Products []product }
			if s := call(t, srv, http.MethodGet, "/v1/catalog?tenant_id="+acmeID, "", &got); s != 200 {
				t.Fatalf("GET /v1/catalog: %d", s)
			}
			var parts []string
			for _, p := range got.Products {
				parts = append(parts, p.Key+"="+p.EntitlementStatus)
			}
			return strings.Join(parts, ",")
		}
		if got, want := statuses(), "certifai=active,compliance=active,risk=,privacy=,vendor-risk="; got != want {
			t.Errorf("catalog statuses %q, want %q", got, want)
		}
		steps := []struct {
			name, method, path, body string
			wantStatus               int
			wantCode                 string // for errors
		}{
			{"trial", "POST", "/v1/catalog/trial-request", `{"tenant_id":"` + acmeID + `","product":"risk"}`, 200, ""},
			{"trial again", "POST", "/v1/catalog/trial-request", `{"tenant_id":"` + acmeID + `","product":"risk"}`, 409, "failed_precondition"},
			{"request", "POST", "/v1/catalog/request", `{"tenant_id":"` + acmeID + `","product":"privacy","note":"DPO asks"}`, 200, ""},
			{"request unknown", "POST", "/v1/catalog/request", `{"tenant_id":"` + acmeID + `","product":"nope"}`, 400, "invalid_argument"},
			{"request active", "POST", "/v1/catalog/request", `{"tenant_id":"` + acmeID + `","product":"certifai"}`, 409, "failed_precondition"},
			{"grant", "POST", "/v1/entitlements/grant", `{"tenant_id":"` + acmeID + `","product":"vendor-risk"}`, 200, ""},
			{"revoke", "POST", "/v1/entitlements/revoke", `{"tenant_id":"` + acmeID + `","product":"compliance"}`, 200, ""},
			{"revoke again", "POST", "/v1/entitlements/revoke", `{"tenant_id":"` + acmeID + `","product":"compliance"}`, 404, "not_found"},
		}
		for _, s := range steps {
			var got apiError
			status := call(t, srv, s.method, s.path, s.body, &got)
			if status != s.wantStatus || got.Code != s.wantCode {
				t.Errorf("%s: %d %+v, want %d %q", s.name, status, got, s.wantStatus, s.wantCode)
			}
		}
		if got, want := statuses(), "certifai=active,compliance=,risk=trial,privacy=requested,vendor-risk=active"; got != want {
			t.Errorf("catalog statuses %q, want %q", got, want)
		}
		var list struct{ Entitlements []entitlementJSON }
		if s := call(t, srv, http.MethodGet, "/v1/entitlements?tenant_id="+acmeID, "", &list); s != 200 {
			t.Fatalf("GET /v1/entitlements: %d", s)
		}
		var got bytes.Buffer
		for _, e := range list.Entitlements {
			got.WriteString(e.Product + "=" + e.Status + "/" + e.Note + "/" + boolStr(e.TrialEndsAt != "") + " ")
		}
		if want := "certifai=active//no privacy=requested/DPO asks/no risk=trial//yes vendor-risk=active//no "; got.String() != want {
			t.Errorf("entitlements %q, want %q", got.String(), want)
		}
		var c claims
		call(t, srv, http.MethodPost, "/v1/internal/keycloak/claims", `{"slug":"acme"}`, &c)
		if got, want := strings.Join(c.Products, ","), "certifai,risk,vendor-risk"; got != want {
			t.Errorf("claims products %q, want %q", got, want)
		}
	})
}

func boolStr(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

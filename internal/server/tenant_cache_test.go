package server_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

// TestTenantCacheTwoInstances: GetTenant, GetTenantBySlug and ResolveClaims
// are served from each replica's read cache, and a freeze, a plan change
// written in SQL, an entitlement change and a trial's end are seen on the
// writing replica when its RPC returns and on the other one when the
// notification arrives (a trial's end with no write at all, at its exact
// moment on the injected clock), and UpdateTenant's name and plan. Verify's
// cached verdicts follow the same
// changes.
func TestTenantCacheTwoInstances(t *testing.T) {
	stA := storetest.Postgres(t)
	stB, err := store.Open(storetest.SystemContext(), stA.URL, store.Options{MaxConns: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stB.Close() })
	clock := storetest.NewClock(time.Now())
	a, b := newKeyStack(t, stA, withClock(clock.Now)), newKeyStack(t, stB, withClock(clock.Now))

	// REST answers the tenant itself (response_body: "tenant").
	type tenantJSON struct {
		Tenant struct {
			ID, Slug, Name, Status, Plan string
			Products                     []string
		}
	}
	bySlug := func(s *keyStack) tenantJSON {
		t.Helper()
		var got tenantJSON
		if status := call(t, s.srv, http.MethodGet, "/v1/tenants/by-slug/acme", "", &got.Tenant); status != http.StatusOK {
			t.Fatalf("by-slug: %d", status)
		}
		return got
	}
	byID := func(s *keyStack) tenantJSON {
		t.Helper()
		var got tenantJSON
		if status := call(t, s.srv, http.MethodGet, "/v1/tenants/"+acmeID, "", &got.Tenant); status != http.StatusOK {
			t.Fatalf("get: %d", status)
		}
		return got
	}
	claimsOf := func(s *keyStack) claims {
		t.Helper()
		var got claims
		if status := call(t, s.srv, http.MethodPost, "/v1/internal/keycloak/claims", `{"slug":"acme"}`, &got); status != http.StatusOK {
			t.Fatalf("claims: %d", status)
		}
		return got
	}
	// hits runs f and reports how many of its reads s's cache answered.
	hits := func(s *keyStack, f func()) uint64 {
		before, _ := s.tenants.CacheStats()
		f()
		after, _ := s.tenants.CacheStats()
		return after - before
	}
	// settle waits until b's listener processed a notification after
	// before.
	settle := func(before uint64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for b.keys.Invalidations() <= before {
			if time.Now().After(deadline) {
				t.Fatal("B's listener saw no notification within 5s")
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	var ignored map[string]any
	_, plain := a.create(t, "tenant-cache")
	warm := func() {
		t.Helper()
		for _, s := range []*keyStack{a, b} {
			bySlug(s)
			byID(s)
			claimsOf(s)
			s.verify(t, plain)
		}
		// A notification of an earlier write may still drop the entries
		// once: the reads are retried until all three hit.
		for _, s := range []*keyStack{a, b} {
			var n uint64
			for range 100 {
				if n = hits(s, func() { bySlug(s); byID(s); claimsOf(s) }); n == 3 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if n != 3 {
				t.Fatalf("warm reads answered from the cache: %d, want 3", n)
			}
		}
	}

	// A freeze through A.
	warm()
	before := b.keys.Invalidations()
	if status := call(t, a.srv, http.MethodPost, "/v1/tenants/"+acmeID+"/cancel", "", &ignored); status != http.StatusOK {
		t.Fatalf("cancel: %d", status)
	}
	if got := bySlug(a).Tenant.Status; got != "frozen" {
		t.Errorf("A's by-slug right after its own freeze: %q, want frozen", got)
	}
	if got := claimsOf(a).Status; got != "frozen" {
		t.Errorf("A's claims right after its own freeze: %q, want frozen", got)
	}
	settle(before)
	if got, want := [3]string{bySlug(b).Tenant.Status, byID(b).Tenant.Status, claimsOf(b).Status}, [3]string{"frozen", "frozen", "frozen"}; got != want {
		t.Errorf("B after the freeze: by-slug, get, claims = %v, want %v", got, want)
	}
	if got := b.verify(t, plain); got.Valid || got.Reason != "tenant_frozen" {
		t.Errorf("B's verify after the freeze: %+v, want tenant_frozen", got)
	}
	before = b.keys.Invalidations()
	if status := call(t, a.srv, http.MethodPost, "/v1/tenants/"+acmeID+"/activate", "", &ignored); status != http.StatusOK {
		t.Fatalf("activate: %d", status)
	}
	settle(before)

	// A plan change by a database-level writer (there is no service write
	// of the plan yet): both replicas hear of it.
	warm()
	beforeA, beforeB := a.keys.Invalidations(), b.keys.Invalidations()
	if _, err := stA.DB.Exec(`UPDATE tenants SET plan = 'enterprise' WHERE id = $1`, acmeID); err != nil {
		t.Fatal(err)
	}
	settle(beforeB)
	for a.keys.Invalidations() <= beforeA {
		time.Sleep(100 * time.Microsecond)
	}
	for name, s := range map[string]*keyStack{"A": a, "B": b} {
		if got := [3]string{bySlug(s).Tenant.Plan, byID(s).Tenant.Plan, claimsOf(s).Plan}; got != [3]string{"enterprise", "enterprise", "enterprise"} {
			t.Errorf("%s after the plan change: by-slug, get, claims = %v, want enterprise", name, got)
		}
	}

	// A rename and plan change through A's UpdateTenant (PATCH).
	warm()
	before = b.keys.Invalidations()
	if status := call(t, a.srv, http.MethodPatch, "/v1/tenants/"+acmeID, `{"name":"Acme Renamed","plan":"starter"}`, &ignored); status != http.StatusOK {
		t.Fatalf("update: %d", status)
	}
	if got := bySlug(a).Tenant; got.Name != "Acme Renamed" || got.Plan != "starter" || claimsOf(a).Plan != "starter" {
		t.Errorf("A right after its own update: %+v, claims plan %q; want Acme Renamed, starter", got, claimsOf(a).Plan)
	}
	settle(before)
	if got := [3]string{bySlug(b).Tenant.Name, byID(b).Tenant.Plan, claimsOf(b).Plan}; got != [3]string{"Acme Renamed", "starter", "starter"} {
		t.Errorf("B after the update: by-slug name, get plan, claims plan = %v, want Acme Renamed, starter, starter", got)
	}

	// An entitlement granted through A.
	warm()
	before = b.keys.Invalidations()
	if status := call(t, a.srv, http.MethodPost, "/v1/entitlements/grant", `{"tenant_id":"`+acmeID+`","product":"privacy"}`, &ignored); status != http.StatusOK {
		t.Fatalf("grant: %d", status)
	}
	if got := claimsOf(a).Products; !slices.Contains(got, "privacy") {
		t.Errorf("A's claims right after its own grant: %v, want privacy among them", got)
	}
	settle(before)
	if got := claimsOf(b).Products; !slices.Contains(got, "privacy") {
		t.Errorf("B's claims after the grant: %v, want privacy among them", got)
	}
	if got := bySlug(b).Tenant.Products; !slices.Contains(got, "privacy") {
		t.Errorf("B's by-slug after the grant: %v, want privacy among them", got)
	}
	if got := b.verify(t, plain).Products; !slices.Contains(got, "privacy") {
		t.Errorf("B's verify after the grant: %v, want privacy among them", got)
	}

	// A trial started through A, cached on both; its end needs no write.
	before = b.keys.Invalidations()
	var trial struct {
		Entitlement struct {
			TrialEndsAt time.Time `json:"trial_ends_at"`
		} `json:"entitlement"`
	}
	if status := call(t, a.srv, http.MethodPost, "/v1/catalog/trial-request", `{"tenant_id":"`+acmeID+`","product":"risk"}`, &trial); status != http.StatusOK {
		t.Fatalf("trial: %d", status)
	}
	settle(before)
	// Read (and cache) it a second before its end, well within the
	// cache's last-resort TTL, then step onto the end.
	clock.Advance(trial.Entitlement.TrialEndsAt.Sub(clock.Now()) - time.Second)
	warm()
	for name, s := range map[string]*keyStack{"A": a, "B": b} {
		if got := claimsOf(s).Products; !slices.Contains(got, "risk") {
			t.Fatalf("%s a second before the trial's end: %v, want risk among them", name, got)
		}
	}
	clock.Advance(time.Second)
	for name, s := range map[string]*keyStack{"A": a, "B": b} {
		if got := claimsOf(s).Products; slices.Contains(got, "risk") {
			t.Errorf("%s at the trial's end: claims %v still have risk", name, got)
		}
		if got := bySlug(s).Tenant.Products; slices.Contains(got, "risk") {
			t.Errorf("%s at the trial's end: by-slug %v still has risk", name, got)
		}
		if got := s.verify(t, plain).Products; slices.Contains(got, "risk") {
			t.Errorf("%s at the trial's end: verify %v still has risk", name, got)
		}
	}
}

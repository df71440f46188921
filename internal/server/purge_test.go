package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent/apikey"
	"github.com/platform/tenant-registry/ent/outbox"
	"github.com/platform/tenant-registry/ent/tenantidpconfig"
	"github.com/platform/tenant-registry/ent/tenantidpdomain"
	"github.com/platform/tenant-registry/ent/tenantproduct"
	"github.com/platform/tenant-registry/ent/tenantproject"
	"github.com/platform/tenant-registry/internal/auth/oidctest"
	"github.com/platform/tenant-registry/internal/config"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/keycloak/keycloaktest"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

// purgeGrace is DELETION_GRACE of the purge tests: real time, short.
const purgeGrace = 2 * time.Second

// purgeStack is the whole service with its background workers running on
// the real clock (DELETION_GRACE=2s, SWEEP_INTERVAL=200ms), its Keycloak a
// fake Admin API.
type purgeStack struct {
	*stack
	st     *store.Store
	kc     *keycloaktest.Fake
	issuer *oidctest.Issuer
}

func newPurgeStack(t *testing.T, st *store.Store) *purgeStack {
	t.Helper()
	fake := keycloaktest.New(t, "platform", "tenant-registry", "kc-secret")
	issuer := oidctest.New()
	t.Cleanup(issuer.Close)
	adapter, err := keycloak.NewHTTPAdapter(keycloak.Config{BaseURL: fake.URL(), Realm: "platform",
		ClientID: "tenant-registry", ClientSecret: "kc-secret", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, st, withKeycloak(adapter), withWorkers(), withConfig(func(c *config.Config) {
		c.DeletionGrace = purgeGrace
		c.SweepInterval = 200 * time.Millisecond
	}))
	return &purgeStack{stack: s, st: st, kc: fake, issuer: issuer}
}

// offboardee is a tenant given everything the purge must remove.
type offboardee struct {
	id    uuid.UUID
	slug  string
	orgID string
	key   string // an API key's plaintext
}

// jsonOK sends a JSON request as the (dev) platform admin, wants 200, and
// decodes the answer into out (nil: ignored).
func (p *purgeStack) jsonOK(t *testing.T, method, path, body string, out any) {
	t.Helper()
	res := do(t, p.srv, method, path, body, nil)
	if res.status != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, path, res.status, res.body)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(res.body), out); err != nil {
			t.Fatalf("%s %s: %s: %v", method, path, res.body, err)
		}
	}
}

// onboard creates tenant slug over REST with a project, an API key in it,
// an entitlement granted and an OIDC identity provider with a client
// secret and a domain, and waits until Keycloak holds its organisation and
// the identity provider is provisioned.
func (p *purgeStack) onboard(t *testing.T, slug string) offboardee {
	t.Helper()
	var created struct {
		Tenant struct {
			ID            string `json:"id"`
			KeycloakOrgID string `json:"keycloak_org_id"`
		} `json:"tenant"`
	}
	p.jsonOK(t, http.MethodPost, "/v1/tenants", `{"slug":"`+slug+`","name":"`+slug+` Inc."}`, &created)
	id := uuid.MustParse(created.Tenant.ID)
	base := "/v1/tenants/" + id.String()
	var proj struct {
		Project struct{ ID string } `json:"project"`
	}
	p.jsonOK(t, http.MethodPost, base+"/projects", `{"slug":"web","name":"Web"}`, &proj)
	var key struct {
		Key string `json:"key"`
	}
	p.jsonOK(t, http.MethodPost, "/v1/api-keys", `{"tenant_id":"`+id.String()+`","name":"ci","project_id":"`+proj.Project.ID+`"}`, &key)
	p.jsonOK(t, http.MethodPost, "/v1/entitlements/grant", `{"tenant_id":"`+id.String()+`","product":"vendor-risk"}`, nil)
	p.jsonOK(t, http.MethodPut, base+"/idp", `{"protocol":"oidc","oidc":{"issuer":"`+p.issuer.URL()+
		`","client_id":"registry","client_secret":"purge-idp-secret"},"domains":["`+slug+`.example"]}`, nil)
	o := offboardee{id: id, slug: slug, key: key.Key}
	waitFor(t, 15*time.Second, slug+": organisation created and identity provider provisioned", func() bool {
		var idp struct {
			State string `json:"idp_state"`
		}
		p.jsonOK(t, http.MethodGet, base+"/idp", "", &idp)
		if idp.State != "provisioned" {
			return false
		}
		o.orgID = p.orgID(slug)
		return o.orgID != "" && p.hasIdP(slug)
	})
	if v := p.verify(t, o.key); !v.Valid {
		t.Fatalf("%s: its new key does not verify: %+v", slug, v)
	}
	if n := p.rows(t, id); n["projects"] != 1 || n["api_keys"] != 1 || n["entitlements"] == 0 || n["idp_configs"] != 1 || n["idp_domains"] != 1 {
		t.Fatalf("%s: rows before the purge = %v, want one project, key, IdP configuration and domain, and entitlements", slug, n)
	}
	return o
}

// offboard cancels (freezes) and DELETEs o, and checks the purge is
// scheduled DELETION_GRACE ahead.
func (p *purgeStack) offboard(t *testing.T, o offboardee) time.Time {
	t.Helper()
	p.jsonOK(t, http.MethodPost, "/v1/tenants/"+o.id.String()+"/cancel", `{}`, nil)
	var del struct {
		Tenant struct {
			Status              string     `json:"status"`
			DeletionScheduledAt *time.Time `json:"deletion_scheduled_at"`
		} `json:"tenant"`
	}
	before := time.Now()
	p.jsonOK(t, http.MethodDelete, "/v1/tenants/"+o.id.String(), "", &del)
	after := time.Now()
	at := del.Tenant.DeletionScheduledAt
	if at == nil || at.Before(before.Add(purgeGrace).Add(-50*time.Millisecond)) || at.After(after.Add(purgeGrace).Add(50*time.Millisecond)) {
		t.Fatalf("DELETE %s: deletion_scheduled_at %v, want now+%s (%v…%v)", o.slug, at, purgeGrace, before.Add(purgeGrace), after.Add(purgeGrace))
	}
	return *at
}

// status is GET /v1/tenants/{id}'s status code (as the platform admin).
func (p *purgeStack) status(t *testing.T, id uuid.UUID) int {
	t.Helper()
	return do(t, p.srv, http.MethodGet, "/v1/tenants/"+id.String(), "", nil).status
}

func (p *purgeStack) verify(t *testing.T, key string) verdict {
	t.Helper()
	var v verdict
	p.jsonOK(t, http.MethodPost, "/v1/internal/api-keys/verify", `{"key":"`+key+`"}`, &v)
	return v
}

// orgID is the id of the fake Keycloak's organisation with alias slug, ""
// when it holds none.
func (p *purgeStack) orgID(slug string) string {
	for _, o := range p.kc.Orgs() {
		if o.Alias == slug {
			return o.ID
		}
	}
	return ""
}

// hasIdP says whether the fake Keycloak holds the identity provider
// <slug>-sso.
func (p *purgeStack) hasIdP(slug string) bool {
	for _, idp := range p.kc.IdPs() {
		if idp.Alias == slug+"-sso" {
			return true
		}
	}
	return false
}

// rows counts the tenant's rows that its purge deletes.
func (p *purgeStack) rows(t *testing.T, id uuid.UUID) map[string]int {
	t.Helper()
	ctx := context.Background()
	c := p.st.Client
	n := map[string]int{}
	count := func(name string, v int, err error) {
		if err != nil {
			t.Fatalf("count %s: %v", name, err)
		}
		n[name] = v
	}
	v, err := c.TenantProject.Query().Where(tenantproject.TenantID(id)).Count(ctx)
	count("projects", v, err)
	v, err = c.APIKey.Query().Where(apikey.TenantID(id)).Count(ctx)
	count("api_keys", v, err)
	v, err = c.TenantProduct.Query().Where(tenantproduct.TenantID(id)).Count(ctx)
	count("entitlements", v, err)
	v, err = c.TenantIdpConfig.Query().Where(tenantidpconfig.TenantID(id)).Count(ctx)
	count("idp_configs", v, err)
	cfgs, err := c.TenantIdpConfig.Query().Where(tenantidpconfig.TenantID(id)).IDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, err = c.TenantIdpDomain.Query().Where(tenantidpdomain.ConfigIDIn(cfgs...)).Count(ctx)
	count("idp_domains", v, err)
	v, err = c.Outbox.Query().Where(outbox.TenantID(id)).Count(ctx)
	count("outbox_jobs", v, err)
	return n
}

type auditEvent struct {
	Action    string `json:"action"`
	IsFailure bool   `json:"is_failure"`
}

// events is the tenant's audit history as a platform admin lists it,
// newest first.
func (p *purgeStack) events(t *testing.T, id uuid.UUID) []auditEvent {
	t.Helper()
	var out struct {
		Events []auditEvent `json:"events"`
	}
	p.jsonOK(t, http.MethodGet, "/v1/audit?page_size=500&tenant_id="+id.String(), "", &out)
	return out.Events
}

func hasAction(events []auditEvent, action string) bool {
	for _, e := range events {
		if e.Action == action {
			return true
		}
	}
	return false
}

// assertPurged: o is gone from the API, its key no longer verifies, its
// rows are deleted, Keycloak holds neither its organisation nor its
// identity provider, and its audit history stays, tenant.deleted newest,
// its chain intact.
func (p *purgeStack) assertPurged(t *testing.T, o offboardee) {
	t.Helper()
	if code := p.status(t, o.id); code != http.StatusNotFound {
		t.Errorf("GET the purged %s: %d, want 404", o.slug, code)
	}
	if v := p.verify(t, o.key); v.Valid || v.Reason != "unknown" {
		t.Errorf("verify the purged %s's key: %+v, want invalid (unknown)", o.slug, v)
	}
	if n := p.rows(t, o.id); n["projects"]+n["api_keys"]+n["entitlements"]+n["idp_configs"]+n["idp_domains"]+n["outbox_jobs"] != 0 {
		t.Errorf("rows of the purged %s: %v, want none", o.slug, n)
	}
	if id := p.orgID(o.slug); id != "" {
		t.Errorf("Keycloak still holds the purged %s's organisation %s", o.slug, id)
	}
	if p.hasIdP(o.slug) {
		t.Errorf("Keycloak still holds the purged %s's identity provider %s-sso", o.slug, o.slug)
	}
	if links := p.kc.OrgIdPs(o.orgID); len(links) != 0 {
		t.Errorf("Keycloak still links identity providers %v to the purged %s's organisation", links, o.slug)
	}
	events := p.events(t, o.id)
	if len(events) < 5 || events[0].Action != "tenant.deleted" || !hasAction(events, "tenant.created") || !hasAction(events, "tenant.deletion_scheduled") {
		t.Errorf("audit history of the purged %s: %+v, want it whole with tenant.deleted newest", o.slug, events)
	}
	var verify struct {
		OK            bool   `json:"ok"`
		EventsChecked string `json:"events_checked"`
	}
	p.jsonOK(t, http.MethodPost, "/v1/audit/verify", `{"tenant_id":"`+o.id.String()+`"}`, &verify)
	if !verify.OK || verify.EventsChecked != strconv.Itoa(len(events)) {
		t.Errorf("VerifyAuditChain of the purged %s: %+v, want ok over %d events", o.slug, verify, len(events))
	}
}

// waitFor polls cond every 50ms until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: not %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPurgeWithRealGrace: the offboarding purge end to end with the real
// clock and the app's own workers: a tenant with a project, an API key, an
// entitlement and a provisioned identity provider, cancelled and DELETEd,
// is purged by the sweeper once DELETION_GRACE (2s) has passed — gone from
// the API, its key unknown, its rows deleted, its Keycloak organisation and
// identity provider deleted — while its audit history stays listable and
// verifiable, tenant.deleted last. A tenant restored within the grace
// stays, with all it had.
func TestPurgeWithRealGrace(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		p := newPurgeStack(t, st)
		gone, kept := p.onboard(t, "hooli"), p.onboard(t, "pied-piper")
		at := p.offboard(t, gone)
		p.offboard(t, kept)
		var restored struct {
			Tenant struct {
				Status              string     `json:"status"`
				DeletionScheduledAt *time.Time `json:"deletion_scheduled_at"`
			} `json:"tenant"`
		}
		p.jsonOK(t, http.MethodPost, "/v1/tenants/"+kept.id.String()+"/restore", `{}`, &restored)
		if restored.Tenant.DeletionScheduledAt != nil || restored.Tenant.Status != "frozen" {
			t.Fatalf("restore: %+v, want frozen with no deletion scheduled", restored.Tenant)
		}
		// Not before the deadline (a sweep runs every 200ms meanwhile).
		if time.Until(at) > 500*time.Millisecond {
			time.Sleep(time.Until(at) - 500*time.Millisecond)
			if code := p.status(t, gone.id); code != http.StatusOK {
				t.Fatalf("GET %s shortly before its deadline: %d, want 200", gone.slug, code)
			}
		}
		waitFor(t, 15*time.Second, gone.slug+" purged (GET 404)", func() bool { return p.status(t, gone.id) == http.StatusNotFound })
		if time.Now().Before(at) {
			t.Errorf("%s purged before its deletion_scheduled_at %v", gone.slug, at)
		}
		p.assertPurged(t, gone)

		// The restored tenant outlived its would-be deadline (2s+ ago by
		// now, many sweeps) with everything it had.
		if time.Until(at) > -500*time.Millisecond {
			time.Sleep(time.Until(at) + 500*time.Millisecond)
		}
		if code := p.status(t, kept.id); code != http.StatusOK {
			t.Fatalf("GET the restored %s: %d, want 200", kept.slug, code)
		}
		if n := p.rows(t, kept.id); n["projects"] != 1 || n["api_keys"] != 1 || n["entitlements"] == 0 || n["idp_configs"] != 1 {
			t.Errorf("rows of the restored %s: %v, want them kept", kept.slug, n)
		}
		if p.orgID(kept.slug) != kept.orgID || !p.hasIdP(kept.slug) {
			t.Errorf("Keycloak lost the restored %s's organisation or identity provider", kept.slug)
		}
		if events := p.events(t, kept.id); hasAction(events, "tenant.deleted") {
			t.Errorf("the restored %s has a tenant.deleted event", kept.slug)
		}
	})
}

// TestPurgeKeycloakDown: Keycloak down when a tenant's purge is due: each
// attempt fails and is audited (keycloak.org_delete_failed) and the tenant
// stays — still readable, its rows, organisation and identity provider
// kept, no tenant.deleted — until Keycloak is back; then it is purged, its
// organisation and identity provider gone.
func TestPurgeKeycloakDown(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		p := newPurgeStack(t, st)
		o := p.onboard(t, "initech")
		at := p.offboard(t, o)
		p.kc.SetDown(true)
		// The first attempt after the deadline fails and is audited; the
		// next waits out its backoff (5s), so several sweeps pass with
		// the tenant kept.
		waitFor(t, 10*time.Second, "a keycloak.org_delete_failed event", func() bool {
			if p.status(t, o.id) == http.StatusNotFound {
				t.Fatalf("%s purged while Keycloak was down", o.slug)
			}
			for _, e := range p.events(t, o.id) {
				if e.Action == "keycloak.org_delete_failed" && e.IsFailure {
					return true
				}
			}
			return false
		})
		if time.Now().Before(at) {
			t.Errorf("a purge attempt before the deadline %v", at)
		}
		time.Sleep(time.Second) // five sweeps
		if code := p.status(t, o.id); code != http.StatusOK {
			t.Fatalf("GET %s with Keycloak down: %d, want 200 (kept until Keycloak deletes its organisation)", o.slug, code)
		}
		if n := p.rows(t, o.id); n["projects"] != 1 || n["api_keys"] != 1 || n["idp_configs"] != 1 {
			t.Errorf("rows of %s with Keycloak down: %v, want them kept", o.slug, n)
		}
		if events := p.events(t, o.id); hasAction(events, "tenant.deleted") {
			t.Errorf("tenant.deleted recorded although Keycloak was down: %+v", events)
		}
		if p.orgID(o.slug) != o.orgID || !p.hasIdP(o.slug) {
			t.Fatalf("the fake lost %s's organisation or identity provider while down", o.slug)
		}

		p.kc.SetDown(false)
		waitFor(t, 15*time.Second, o.slug+" purged once Keycloak is back", func() bool { return p.status(t, o.id) == http.StatusNotFound })
		p.assertPurged(t, o)
		if events := p.events(t, o.id); !hasAction(events, "keycloak.org_delete_failed") {
			t.Errorf("the failed attempt is not in the history: %+v", events)
		}
	})
}

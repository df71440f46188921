package sso_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/auditlog"
	"github.com/platform/tenant-registry/ent/outbox"
	"github.com/platform/tenant-registry/internal/auth/oidctest"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/keycloak/keycloaktest"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/secret"
	"github.com/platform/tenant-registry/internal/sso"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/internal/tenant"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	realm    = "platform"
	kcClient = "tenant-registry"
	kcSecret = "kc-s3cret"
	// The IdP client secret the tests set: recognisable anywhere.
	idpSecret = "IDP-CLIENT-SECRET-must-never-leak-4b9e"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// env is one store with a fake Keycloak, an OIDC issuer (the IdP's
// discovery), the tenant service (for tenants with an organisation) and
// the SSO service.
type env struct {
	st      *store.Store
	clock   *storetest.Clock
	fake    *keycloaktest.Fake
	issuer  *oidctest.Issuer
	tenants *tenant.Service
	sso     *sso.Service
}

type option func(*sso.Deps)

func newEnv(t *testing.T, st *store.Store, opts ...option) *env {
	t.Helper()
	e := &env{st: st, clock: storetest.NewClock(time.Now())}
	e.fake = keycloaktest.New(t, realm, kcClient, kcSecret)
	e.issuer = oidctest.New()
	t.Cleanup(e.issuer.Close)
	adapter := e.adapter(t)
	e.tenants = storetest.Must(tenant.NewService(tenant.Deps{
		Client: st.Client, Recorder: storetest.Recorder(e.clock.Now, st.Postgres()), Clock: e.clock.Now,
		Pager: storetest.Pager(t), Provisioner: adapter,
	}))
	e.sso = e.replica(t, opts...)
	return e
}

func (e *env) adapter(t *testing.T) *keycloak.HTTPAdapter {
	t.Helper()
	a, err := keycloak.NewHTTPAdapter(keycloak.Config{
		BaseURL: e.fake.URL(), Realm: realm, ClientID: kcClient, ClientSecret: kcSecret,
		Timeout: 2 * time.Second, Now: e.clock.Now, InviteURL: "https://sso.example.com/realms/platform/account",
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// replica is another SSO service on the same database and Keycloak (a
// second server stack).
func (e *env) replica(t *testing.T, opts ...option) *sso.Service {
	t.Helper()
	a := e.adapter(t)
	d := sso.Deps{
		Client: e.st.Client, Recorder: storetest.Recorder(e.clock.Now, e.st.Postgres()), Clock: e.clock.Now,
		Box: storetest.Must(secret.NewBox(testKey)), IdentityProviders: a, Inviter: a, AllowHTTP: true,
	}
	for _, o := range opts {
		o(&d)
	}
	return storetest.Must(sso.NewService(d))
}

func (e *env) tenant(t *testing.T, slug string) *tenant.Tenant {
	t.Helper()
	tn, err := e.tenants.Create(storetest.SystemContext(), tenant.CreateInput{Slug: slug, Name: strings.ToUpper(slug[:1]) + slug[1:] + " Inc."})
	if err != nil {
		t.Fatal(err)
	}
	if tn.KeycloakOrgID == nil {
		t.Fatalf("tenant %s has no organisation", slug)
	}
	return tn
}

func (e *env) oidc(tenantID, secret string, domains ...string) sso.SetInput {
	return sso.SetInput{TenantID: tenantID, Protocol: "oidc",
		OIDC: &sso.OIDCInput{Issuer: e.issuer.URL(), ClientID: "registry-client", ClientSecret: secret}, Domains: domains}
}

func actions(t *testing.T, st *store.Store, tenantID string) string {
	t.Helper()
	events, err := st.Client.AuditLog.Query().Where(auditlog.GroupID(tenantID)).Order(auditlog.ByChainSeq()).All(storetest.SystemContext())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range events {
		out = append(out, ev.Action)
	}
	return strings.Join(out, ",")
}

func (e *env) idp(alias string) (keycloaktest.IdP, bool) {
	for _, p := range e.fake.IdPs() {
		if p.Alias == alias {
			return p, true
		}
	}
	return keycloaktest.IdP{}, false
}

func (e *env) orgDomains(orgID string) string {
	for _, o := range e.fake.Orgs() {
		if o.ID == orgID {
			var names []string
			for _, d := range o.Domains {
				names = append(names, d.Name)
			}
			return strings.Join(names, ",")
		}
	}
	return "<no org>"
}

// certificate makes a self-signed X.509 certificate: PEM and base64 DER.
func certificate(t *testing.T) (pemText, b64 string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp.acme.example"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), base64.StdEncoding.EncodeToString(der)
}

// TestIdpLifecycle: set (OIDC) → Keycloak has the provider, linked to the
// organisation with the domain routed; set again without a secret keeps
// it; switch to SAML; delete → unlinked and gone. Each step audited once.
func TestIdpLifecycle(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		e := newEnv(t, st)
		tn := e.tenant(t, "acme")
		id := tn.ID.String()
		got, err := e.sso.Set(ctx, e.oidc(id, idpSecret, "Acme.Example", "acme.test.", "acme.example"))
		if err != nil {
			t.Fatal(err)
		}
		if got.State != sso.StateProvisioned || !got.HasClientSecret || got.Alias != "acme-sso" ||
			strings.Join(got.Domains, ",") != "acme.example,acme.test" || got.Issuer != e.issuer.URL() {
			t.Fatalf("set = %+v", got)
		}
		p, ok := e.idp("acme-sso")
		if !ok {
			t.Fatal("Keycloak has no identity provider acme-sso")
		}
		if p.Config["clientSecret"] != idpSecret || p.Config["kc.org"] != *tn.KeycloakOrgID ||
			p.Config["kc.org.domain"] != "acme.example" || p.Config["kc.org.broker.redirect.mode.email-matches"] != "true" ||
			p.Config["tokenUrl"] == "" {
			t.Errorf("Keycloak's provider = %+v", p)
		}
		if got, want := e.orgDomains(*tn.KeycloakOrgID), "acme.example,acme.test"; got != want {
			t.Errorf("org domains = %s, want %s", got, want)
		}
		// Get answers the same.
		g, err := e.sso.Get(ctx, id)
		if err != nil || g.State != sso.StateProvisioned || !g.HasClientSecret || g.ClientID != "registry-client" {
			t.Errorf("get = %+v, %v", g, err)
		}

		// Again without a secret: the stored one is kept (Keycloak still has it).
		in := e.oidc(id, "", "acme.example")
		in.OIDC.ClientID = "registry-client-2"
		if got, err = e.sso.Set(ctx, in); err != nil || !got.HasClientSecret || got.State != sso.StateProvisioned {
			t.Fatalf("set without secret = %+v, %v", got, err)
		}
		p, _ = e.idp("acme-sso")
		if p.Config["clientSecret"] != idpSecret || p.Config["clientId"] != "registry-client-2" {
			t.Errorf("after update: clientId %q, secret kept %v", p.Config["clientId"], p.Config["clientSecret"] == idpSecret)
		}
		if got, want := e.orgDomains(*tn.KeycloakOrgID), "acme.example"; got != want {
			t.Errorf("org domains after update = %s, want %s", got, want)
		}

		// SAML by entity id, SSO URL and a PEM certificate.
		pemCert, b64 := certificate(t)
		got, err = e.sso.Set(ctx, sso.SetInput{TenantID: id, Protocol: "saml", Domains: []string{"corp.acme.example"},
			SAML: &sso.SAMLInput{EntityID: "urn:acme:idp", SSOURL: "https://idp.acme.example/sso", SigningCertificate: pemCert}})
		if err != nil || got.HasClientSecret || got.Protocol != "saml" || got.SigningCertificate != b64 || got.State != sso.StateProvisioned {
			ev, _ := st.Client.AuditLog.Query().Where(auditlog.GroupID(id)).Order(auditlog.ByChainSeq()).All(ctx)
			t.Fatalf("set saml = %+v, %v (last event %+v)", got, err, ev[len(ev)-1].Fields)
		}
		p, _ = e.idp("acme-sso")
		if p.ProviderID != "saml" || p.Config["signingCertificate"] != b64 || p.Config["kc.org.domain"] != "corp.acme.example" {
			t.Errorf("Keycloak's SAML provider = %+v", p)
		}
		// Switching back to OIDC needs a secret again.
		if _, err := e.sso.Set(ctx, e.oidc(id, "", "acme.example")); errs.CodeOf(err) != errs.Invalid {
			t.Errorf("oidc without a secret after saml: %v, want invalid", err)
		}

		if err := e.sso.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, ok := e.idp("acme-sso"); ok {
			t.Error("Keycloak still has the identity provider")
		}
		if got := e.fake.OrgIdPs(*tn.KeycloakOrgID); len(got) != 0 {
			t.Errorf("still linked: %v", got)
		}
		if got := e.orgDomains(*tn.KeycloakOrgID); got != "" {
			t.Errorf("org domains after delete = %q, want none", got)
		}
		if _, err := e.sso.Get(ctx, id); errs.CodeOf(err) != errs.NotFound {
			t.Errorf("get after delete: %v, want not found", err)
		}
		if err := e.sso.Delete(ctx, id); errs.CodeOf(err) != errs.NotFound {
			t.Errorf("delete twice: %v, want not found", err)
		}
		want := "tenant.created,keycloak.provisioned," +
			"idp.configured,keycloak.idp_provisioned,idp.configured,keycloak.idp_provisioned," +
			"idp.configured,keycloak.idp_provisioned,idp.deleted,keycloak.idp_removed"
		if got := actions(t, st, id); got != want {
			t.Errorf("events = %s\nwant     %s", got, want)
		}
		// The unknown tenant.
		if _, err := e.sso.Set(ctx, e.oidc("00000000-0000-0000-0000-0000000000ee", idpSecret, "x.example")); errs.CodeOf(err) != errs.NotFound {
			t.Errorf("set for an unknown tenant: %v, want not found", err)
		}
	})
}

// TestIdpValidation: every bad input is invalid_argument and writes nothing.
func TestIdpValidation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		e := newEnv(t, st)
		strict := e.replica(t, func(d *sso.Deps) { d.AllowHTTP = false }) // stage and prod
		id := e.tenant(t, "acme").ID.String()
		pemCert, _ := certificate(t)
		ok := func() sso.SetInput {
			return sso.SetInput{TenantID: id, Protocol: "oidc", Domains: []string{"acme.example"},
				OIDC: &sso.OIDCInput{Issuer: "https://login.acme.example", ClientID: "c", ClientSecret: "s"}}
		}
		saml := func(m sso.SAMLInput) sso.SetInput {
			return sso.SetInput{TenantID: id, Protocol: "saml", Domains: []string{"acme.example"}, SAML: &m}
		}
		many := make([]string, sso.MaxDomains+1)
		for i := range many {
			many[i] = fmt.Sprintf("d%d.acme.example", i)
		}
		cases := []struct {
			name string
			in   sso.SetInput
			want string
		}{
			{"no protocol", func() sso.SetInput { in := ok(); in.Protocol = ""; return in }(), "protocol"},
			{"unknown protocol", func() sso.SetInput { in := ok(); in.Protocol = "ldap"; return in }(), "protocol"},
			{"oidc without oidc", func() sso.SetInput { in := ok(); in.OIDC = nil; return in }(), "oidc"},
			{"oidc with saml", func() sso.SetInput { in := ok(); in.SAML = &sso.SAMLInput{MetadataURL: "https://x.example"}; return in }(), "saml"},
			{"no issuer", func() sso.SetInput { in := ok(); in.OIDC.Issuer = ""; return in }(), "oidc.issuer"},
			{"relative issuer", func() sso.SetInput { in := ok(); in.OIDC.Issuer = "/login"; return in }(), "oidc.issuer"},
			{"issuer not a URL", func() sso.SetInput { in := ok(); in.OIDC.Issuer = "login.acme.example"; return in }(), "oidc.issuer"},
			{"http issuer outside dev", func() sso.SetInput { in := ok(); in.OIDC.Issuer = "http://login.acme.example"; return in }(), "https"},
			{"ftp issuer", func() sso.SetInput { in := ok(); in.OIDC.Issuer = "ftp://login.acme.example"; return in }(), "oidc.issuer"},
			{"issuer with user info", func() sso.SetInput { in := ok(); in.OIDC.Issuer = "https://u:p@login.acme.example"; return in }(), "user info"},
			{"issuer with fragment", func() sso.SetInput { in := ok(); in.OIDC.Issuer = "https://login.acme.example/#x"; return in }(), "fragment"},
			{"no client id", func() sso.SetInput { in := ok(); in.OIDC.ClientID = " "; return in }(), "oidc.client_id"},
			{"no client secret on create", func() sso.SetInput { in := ok(); in.OIDC.ClientSecret = ""; return in }(), "oidc.client_secret"},
			{"saml without saml", sso.SetInput{TenantID: id, Protocol: "saml", Domains: []string{"acme.example"}}, "saml"},
			{"saml empty", saml(sso.SAMLInput{}), "saml"},
			{"saml both", saml(sso.SAMLInput{MetadataURL: "https://idp.example/md", EntityID: "e"}), "not both"},
			{"saml http metadata", saml(sso.SAMLInput{MetadataURL: "http://idp.example/md"}), "saml.metadata_url"},
			{"saml no sso url", saml(sso.SAMLInput{EntityID: "e", SigningCertificate: pemCert}), "saml.sso_url"},
			{"saml no entity id", saml(sso.SAMLInput{SSOURL: "https://idp.example/sso", SigningCertificate: pemCert}), "saml.entity_id"},
			{"saml no certificate", saml(sso.SAMLInput{EntityID: "e", SSOURL: "https://idp.example/sso"}), "saml.signing_certificate"},
			{"saml bad certificate", saml(sso.SAMLInput{EntityID: "e", SSOURL: "https://idp.example/sso", SigningCertificate: "bm90IGEgY2VydA=="}), "X.509"},
			{"saml bad pem", saml(sso.SAMLInput{EntityID: "e", SSOURL: "https://idp.example/sso", SigningCertificate: "-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----"}), "PEM"},
			{"no domains", func() sso.SetInput { in := ok(); in.Domains = nil; return in }(), "domains"},
			{"bad domain", func() sso.SetInput { in := ok(); in.Domains = []string{"acme example"}; return in }(), "DNS name"},
			{"single label", func() sso.SetInput { in := ok(); in.Domains = []string{"localhost"}; return in }(), "DNS name"},
			{"ip address", func() sso.SetInput { in := ok(); in.Domains = []string{"10.0.0.1"}; return in }(), "DNS name"},
			{"email as domain", func() sso.SetInput { in := ok(); in.Domains = []string{"a@acme.example"}; return in }(), "DNS name"},
			{"dash label", func() sso.SetInput { in := ok(); in.Domains = []string{"-a.acme.example"}; return in }(), "DNS name"},
			{"too many domains", func() sso.SetInput { in := ok(); in.Domains = many; return in }(), "at most"},
			{"bad tenant id", func() sso.SetInput { in := ok(); in.TenantID = "nope"; return in }(), "tenant_id"},
		}
		for _, tc := range cases {
			_, err := strict.Set(ctx, tc.in)
			if errs.CodeOf(err) != errs.Invalid || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %v, want invalid naming %q", tc.name, err, tc.want)
			}
		}
		// Duplicates in one request are one domain; http is fine in dev.
		dev := ok()
		dev.OIDC.Issuer, dev.Domains = e.issuer.URL(), []string{"acme.example", "ACME.example"}
		if got, err := e.sso.Set(ctx, dev); err != nil || len(got.Domains) != 1 {
			t.Errorf("dev http issuer, duplicate domain: %+v, %v", got, err)
		}
		if _, err := strict.Set(ctx, func() sso.SetInput { in := ok(); in.OIDC.Issuer = "http://x.example"; return in }()); errs.CodeOf(err) != errs.Invalid {
			t.Errorf("http issuer over an existing config outside dev: %v", err)
		}
		// Nothing half-written: only the valid set left its events.
		if got, want := actions(t, st, id), "tenant.created,keycloak.provisioned,idp.configured,keycloak.idp_provisioned"; got != want {
			t.Errorf("events = %s, want %s", got, want)
		}
	})
}

// TestIdpDuplicateDomain: a domain routed by one tenant is already_exists
// for another — decided by the database, also for two concurrent claims —
// and free again once the first lets go of it.
func TestIdpDuplicateDomain(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		e := newEnv(t, st)
		acme, globex := e.tenant(t, "acme").ID.String(), e.tenant(t, "globex").ID.String()
		if _, err := e.sso.Set(ctx, e.oidc(acme, idpSecret, "acme.example")); err != nil {
			t.Fatal(err)
		}
		_, err := e.sso.Set(ctx, e.oidc(globex, idpSecret, "globex.example", "ACME.example"))
		if errs.CodeOf(err) != errs.Conflict || !strings.Contains(err.Error(), "acme.example") {
			t.Fatalf("globex claiming acme.example: %v, want conflict", err)
		}
		if _, err := e.sso.Get(ctx, globex); errs.CodeOf(err) != errs.NotFound {
			t.Errorf("globex has a configuration after the conflict: %v", err)
		}
		if got, want := actions(t, st, globex), "tenant.created,keycloak.provisioned"; got != want {
			t.Errorf("globex events = %s, want %s", got, want)
		}
		// Re-setting one's own domain is no conflict.
		if _, err := e.sso.Set(ctx, e.oidc(acme, "", "acme.example")); err != nil {
			t.Errorf("acme re-setting its own domain: %v", err)
		}
		if err := e.sso.Delete(ctx, acme); err != nil {
			t.Fatal(err)
		}
		if _, err := e.sso.Set(ctx, e.oidc(globex, idpSecret, "acme.example")); err != nil {
			t.Errorf("globex claiming the freed acme.example: %v", err)
		}

		// Two tenants race for one domain on two replicas: one wins.
		a, b := e.tenant(t, "initech").ID.String(), e.tenant(t, "hooli").ID.String()
		other := e.replica(t)
		var wg sync.WaitGroup
		results := make([]error, 2)
		for i, c := range []struct {
			svc *sso.Service
			id  string
		}{{e.sso, a}, {other, b}} {
			wg.Go(func() { _, results[i] = c.svc.Set(ctx, e.oidc(c.id, idpSecret, "contested.example")) })
		}
		wg.Wait()
		won, lost := 0, 0
		for _, err := range results {
			switch errs.CodeOf(err) {
			case errs.Conflict:
				lost++
			default:
				if err != nil {
					t.Errorf("race: %v", err)
				}
				won++
			}
		}
		if won != 1 || lost != 1 {
			t.Errorf("race: %d won, %d lost (%v), want 1 and 1", won, lost, results)
		}
	})
}

// TestIdpKeycloakDown: Keycloak down during set and during delete — the
// change lands, idp_state is failed with a keycloak.idp_provision_failed
// (or _remove_failed) event, the worker retries after the backoff, and once
// Keycloak is back two replicas' workers racing record exactly one success.
func TestIdpKeycloakDown(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		e := newEnv(t, st)
		tn := e.tenant(t, "acme")
		id := tn.ID.String()
		other := e.replica(t)
		race := func() {
			var wg sync.WaitGroup
			for _, w := range []*sso.Service{e.sso, other} {
				wg.Go(func() {
					if _, err := w.ProcessDue(ctx); err != nil {
						t.Errorf("ProcessDue: %v", err)
					}
				})
			}
			wg.Wait()
		}

		e.fake.SetDown(true)
		got, err := e.sso.Set(ctx, e.oidc(id, idpSecret, "acme.example"))
		if err != nil {
			t.Fatalf("set must not fail when Keycloak does: %v", err)
		}
		if got.State != sso.StateFailed {
			t.Fatalf("state %q, want failed", got.State)
		}
		e.clock.Advance(10 * time.Second)
		if n, err := e.sso.ProcessDue(ctx); err != nil || n != 1 {
			t.Fatalf("ProcessDue while down = %d, %v; want 1 attempt", n, err)
		}
		if n, _ := e.sso.ProcessDue(ctx); n != 0 {
			t.Errorf("ProcessDue before the backoff attempted %d", n)
		}
		e.fake.SetDown(false)
		e.clock.Advance(time.Hour)
		race()
		if g, _ := e.sso.Get(ctx, id); g == nil || g.State != sso.StateProvisioned {
			t.Fatalf("after recovery: %+v, want provisioned", g)
		}
		if _, ok := e.idp("acme-sso"); !ok {
			t.Fatal("Keycloak has no identity provider after recovery")
		}
		if n, _ := e.sso.ProcessDue(ctx); n != 0 {
			t.Errorf("a done job was attempted again")
		}

		e.fake.SetDown(true)
		if err := e.sso.Delete(ctx, id); err != nil {
			t.Fatalf("delete must not fail when Keycloak does: %v", err)
		}
		e.fake.SetDown(false)
		e.clock.Advance(time.Hour)
		race()
		if _, ok := e.idp("acme-sso"); ok {
			t.Error("Keycloak still has the identity provider")
		}
		want := "tenant.created,keycloak.provisioned,idp.configured,keycloak.idp_provision_failed,keycloak.idp_provision_failed,keycloak.idp_provisioned," +
			"idp.deleted,keycloak.idp_remove_failed,keycloak.idp_removed"
		if got := actions(t, st, id); got != want {
			t.Errorf("events = %s\nwant     %s", got, want)
		}
		ev, err := st.Client.AuditLog.Query().Where(auditlog.GroupID(id), auditlog.Action("keycloak.idp_provision_failed")).First(ctx)
		if err != nil || !ev.IsFailure || !strings.Contains(ev.Fields["error"], "503") {
			t.Errorf("failure event = %+v, %v", ev, err)
		}
	})
}

// TestIdpChangedDuringAttempt: a change committed while a worker is in
// Keycloak with the previous configuration is not marked done by that
// worker: the job runs again and Keycloak ends with the newer one.
func TestIdpChangedDuringAttempt(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		e := newEnv(t, st)
		id := e.tenant(t, "acme").ID.String()
		e.fake.SetDown(true)
		if _, err := e.sso.Set(ctx, e.oidc(id, idpSecret, "acme.example")); err != nil {
			t.Fatal(err)
		}
		e.fake.SetDown(false)
		e.clock.Advance(time.Hour)
		var once sync.Once
		e.fake.SetHook(func(r *http.Request) {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/identity-provider/instances") {
				once.Do(func() {
					// Another replica's request commits a new configuration
					// (its own inline attempt cannot claim the leased job).
					if _, err := e.replica(t).Set(ctx, e.oidc(id, "", "acme.example", "acme.test")); err != nil {
						t.Errorf("concurrent set: %v", err)
					}
				})
			}
		})
		if _, err := e.sso.ProcessDue(ctx); err != nil {
			t.Fatal(err)
		}
		e.fake.SetHook(nil)
		if _, err := e.sso.ProcessDue(ctx); err != nil {
			t.Fatal(err)
		}
		g, err := e.sso.Get(ctx, id)
		if err != nil || g.State != sso.StateProvisioned {
			t.Fatalf("get = %+v, %v", g, err)
		}
		tn, _ := e.tenants.Get(ctx, id)
		if got := e.orgDomains(*tn.KeycloakOrgID); got != "acme.example,acme.test" {
			t.Errorf("org domains = %s, want the newer configuration's", got)
		}
		n, err := st.Client.AuditLog.Query().Where(auditlog.GroupID(id), auditlog.Action("keycloak.idp_provisioned")).Count(ctx)
		if err != nil || n != 1 {
			t.Errorf("keycloak.idp_provisioned events = %d, %v; want 1", n, err)
		}
	})
}

// TestInvite: a member and an IT_ADMIN invited — found or created in
// Keycloak, members of the organisation, IT_ADMIN only when asked, the
// actions email sent; invite_url answered (not in prod); audited.
func TestInvite(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		e := newEnv(t, st)
		tn := e.tenant(t, "acme")
		id := tn.ID.String()
		existing := e.fake.AddUser("bob@acme.example")
		cases := []struct {
			in        sso.InviteInput
			wantRole  string
			wantRoles string
		}{
			{sso.InviteInput{TenantID: id, Email: "Carol@Acme.example", Name: "Carol Shaw", Role: "IT_ADMIN"}, "IT_ADMIN", "IT_ADMIN"},
			{sso.InviteInput{TenantID: id, Email: "bob@acme.example"}, "member", ""},
		}
		for _, tc := range cases {
			inv, err := e.sso.Invite(ctx, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			email := strings.ToLower(tc.in.Email)
			if inv.Email != email || inv.Role != tc.wantRole || inv.State != sso.InvitationSent ||
				inv.InviteURL != "https://sso.example.com/realms/platform/account" {
				t.Errorf("invite %s = %+v", email, inv)
			}
			var userID string
			for _, u := range e.fake.Users() {
				if u.Email == email {
					userID = u.ID
				}
			}
			if email == "bob@acme.example" && userID != existing {
				t.Errorf("bob: user %s, want the existing %s", userID, existing)
			}
			if !contains(e.fake.Members(*tn.KeycloakOrgID), userID) {
				t.Errorf("%s is no member", email)
			}
			if got := strings.Join(e.fake.RoleMappings(userID), ","); got != tc.wantRoles {
				t.Errorf("%s roles = %q, want %q", email, got, tc.wantRoles)
			}
			if n := e.fake.EmailsSent(userID); n != 1 {
				t.Errorf("%s emails = %d, want 1", email, n)
			}
		}
		if got, want := actions(t, st, id), "tenant.created,keycloak.provisioned,user.invited,keycloak.invitation_sent,user.invited,keycloak.invitation_sent"; got != want {
			t.Errorf("events = %s, want %s", got, want)
		}
		// The first invitation in chain order (the query's order, not the
		// plan's).
		ev, err := st.Client.AuditLog.Query().Where(auditlog.GroupID(id), auditlog.Action("user.invited")).Order(ent.Asc(auditlog.FieldChainSeq)).First(ctx)
		if err != nil || ev.Fields["email"] != "carol@acme.example" || ev.Fields["role"] != "IT_ADMIN" {
			t.Errorf("user.invited = %+v, %v", ev, err)
		}
		// Payload (the address) not kept once sent.
		jobs, err := st.Client.Outbox.Query().Where(outbox.TenantID(tn.ID), outbox.KindHasPrefix("keycloak.invite:")).All(ctx)
		if err != nil || len(jobs) != 2 {
			t.Fatalf("invite jobs = %d, %v", len(jobs), err)
		}
		for _, j := range jobs {
			if j.DoneAt == nil || len(j.Payload) != 0 || strings.Contains(j.Kind, "acme.example") {
				t.Errorf("done job = %+v", j)
			}
		}
		// Prod hides the URL.
		prod := e.replica(t, func(d *sso.Deps) { d.HideInviteURLs = true })
		if inv, err := prod.Invite(ctx, sso.InviteInput{TenantID: id, Email: "dan@acme.example"}); err != nil || inv.InviteURL != "" || inv.State != sso.InvitationSent {
			t.Errorf("prod invite = %+v, %v", inv, err)
		}
		// Bad input.
		for _, in := range []sso.InviteInput{
			{TenantID: id, Email: ""}, {TenantID: id, Email: "not-an-address"}, {TenantID: id, Email: "Eve <eve@acme.example>"},
			{TenantID: id, Email: "eve@acme.example", Role: "owner"}, {TenantID: id, Email: "eve@acme.example", Name: strings.Repeat("x", 201)},
			{TenantID: "nope", Email: "eve@acme.example"},
		} {
			if _, err := e.sso.Invite(ctx, in); errs.CodeOf(err) != errs.Invalid {
				t.Errorf("invite %+v: %v, want invalid", in, err)
			}
		}
		if _, err := e.sso.Invite(ctx, sso.InviteInput{TenantID: "00000000-0000-0000-0000-0000000000ee", Email: "eve@acme.example"}); errs.CodeOf(err) != errs.NotFound {
			t.Errorf("invite to an unknown tenant: %v, want not found", err)
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestInviteKeycloakDown: Keycloak down (and, separately, no SMTP) during
// the invitation — it is answered pending, retried by the worker until it
// lands, and exactly one keycloak.invitation_sent is recorded even with two
// replicas' workers racing.
func TestInviteKeycloakDown(t *testing.T) {
	failures := []struct {
		name        string
		break_, fix func(f *keycloaktest.Fake)
	}{
		{"keycloak down", func(f *keycloaktest.Fake) { f.SetDown(true) }, func(f *keycloaktest.Fake) { f.SetDown(false) }},
		{"no SMTP", func(f *keycloaktest.Fake) { f.FailEmail(true) }, func(f *keycloaktest.Fake) { f.FailEmail(false) }},
	}
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		for i, fc := range failures {
			t.Run(fc.name, func(t *testing.T) {
				ctx := storetest.SystemContext()
				e := newEnv(t, st)
				tn := e.tenant(t, fmt.Sprintf("flaky-%d", i))
				id := tn.ID.String()
				fc.break_(e.fake)
				inv, err := e.sso.Invite(ctx, sso.InviteInput{TenantID: id, Email: "it@flaky.example", Role: "IT_ADMIN"})
				if err != nil {
					t.Fatalf("invite must not fail when Keycloak does: %v", err)
				}
				if inv.State != sso.InvitationPending || inv.InviteURL != "" {
					t.Errorf("invite = %+v, want pending without a URL", inv)
				}
				e.clock.Advance(10 * time.Second)
				if n, err := e.sso.ProcessDue(ctx); err != nil || n != 1 {
					t.Fatalf("ProcessDue while broken = %d, %v", n, err)
				}
				fc.fix(e.fake)
				e.clock.Advance(time.Hour)
				other := e.replica(t)
				var wg sync.WaitGroup
				for _, w := range []*sso.Service{e.sso, other} {
					wg.Go(func() {
						if _, err := w.ProcessDue(ctx); err != nil {
							t.Errorf("ProcessDue: %v", err)
						}
					})
				}
				wg.Wait()
				if got, want := actions(t, st, id), "tenant.created,keycloak.provisioned,user.invited,keycloak.invitation_failed,keycloak.invitation_failed,keycloak.invitation_sent"; got != want {
					t.Errorf("events = %s\nwant     %s", got, want)
				}
				var userID string
				for _, u := range e.fake.Users() {
					if u.Email == "it@flaky.example" {
						userID = u.ID
					}
				}
				if userID == "" || e.fake.EmailsSent(userID) != 1 || !contains(e.fake.Members(*tn.KeycloakOrgID), userID) ||
					strings.Join(e.fake.RoleMappings(userID), ",") != "IT_ADMIN" {
					t.Errorf("Keycloak after recovery: user %q, emails %d", userID, e.fake.EmailsSent(userID))
				}
			})
		}
	})
}

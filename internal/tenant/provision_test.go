package tenant_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platform/tenant-registry/ent/auditlog"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/keycloak/keycloaktest"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/internal/tenant"
)

// withKeycloak returns a tenant service provisioning through the real
// HTTPAdapter against a fake Keycloak Admin API.
func withKeycloak(t *testing.T, st *store.Store, clock *storetest.Clock, hideInviteURLs bool) (*tenant.Service, *keycloaktest.Fake) {
	t.Helper()
	fake := keycloaktest.New(t, "platform", "tenant-registry", "s3cret")
	t.Cleanup(fake.Close)
	adapter, err := keycloak.NewHTTPAdapter(keycloak.Config{
		BaseURL: fake.URL(), Realm: "platform", ClientID: "tenant-registry", ClientSecret: "s3cret",
		Timeout: 2 * time.Second, Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return storetest.Must(tenant.NewService(tenant.Deps{
		Client: st.Client, Recorder: storetest.Recorder(clock.Now, st.Postgres()), Clock: clock.Now, Pager: storetest.Pager(t),
		Provisioner: adapter, HideInviteURLs: hideInviteURLs,
	})), fake
}

// wantActions checks that tenantID's events, in chain order, are the
// actions want (comma-separated).
func wantActions(t *testing.T, st *store.Store, tenantID, want string) {
	t.Helper()
	if got := actions(t, st, tenantID); got != want {
		t.Errorf("events = %s, want %s", got, want)
	}
}

func actions(t *testing.T, st *store.Store, tenantID string) string {
	t.Helper()
	events, err := st.Client.AuditLog.Query().Where(auditlog.GroupID(tenantID)).Order(auditlog.ByChainSeq()).All(storetest.SystemContext())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range events {
		out = append(out, e.Action)
	}
	return strings.Join(out, ",")
}

func TestProvisionHappyPath(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		clock := storetest.NewClock(time.Now())
		svc, fake := withKeycloak(t, st, clock, false)
		tn, err := svc.Create(ctx, tenant.CreateInput{Slug: "initech", Name: "Initech", AdminEmail: "bill@initech.example", AdminName: "Bill Lumbergh"})
		if err != nil {
			t.Fatal(err)
		}
		if tn.ProvisioningState != tenant.ProvisioningProvisioned || tn.KeycloakOrgID == nil || tn.InviteURL == "" {
			t.Fatalf("tenant = state %q org %v invite %q; want provisioned with an org and an invite URL", tn.ProvisioningState, tn.KeycloakOrgID, tn.InviteURL)
		}
		orgs := fake.Orgs()
		if len(orgs) != 1 || orgs[0].Alias != "initech" || orgs[0].ID != *tn.KeycloakOrgID {
			t.Errorf("fake orgs = %+v, want one with alias initech and id %s", orgs, *tn.KeycloakOrgID)
		}
		wantActions(t, st, tn.ID.String(), "tenant.created,keycloak.provisioned")
	})
}

func TestProvisionInviteURLHiddenInProd(t *testing.T) {
	st := storetest.SQLite(t)
	svc, _ := withKeycloak(t, st, storetest.NewClock(time.Now()), true)
	tn, err := svc.Create(storetest.SystemContext(), tenant.CreateInput{Slug: "prod-co", Name: "Prod Co", AdminEmail: "a@prod.example"})
	if err != nil {
		t.Fatal(err)
	}
	if tn.InviteURL != "" || tn.ProvisioningState != tenant.ProvisioningProvisioned {
		t.Errorf("invite %q state %q, want no invite URL and provisioned", tn.InviteURL, tn.ProvisioningState)
	}
}

// TestProvisionRecovers: Keycloak fails during create (down, or 500 on the
// email step); the tenant still lands with keycloak.provision_failed
// recorded, and the outbox worker completes the provisioning once Keycloak
// recovers — recording keycloak.provisioned exactly once, even with two
// workers racing.
func TestProvisionRecovers(t *testing.T) {
	failures := []struct {
		name   string
		break_ func(f *keycloaktest.Fake)
		heal   func(f *keycloaktest.Fake)
	}{
		{"keycloak down", func(f *keycloaktest.Fake) { f.SetDown(true) }, func(f *keycloaktest.Fake) { f.SetDown(false) }},
		{"email step 500", func(f *keycloaktest.Fake) { f.FailEmail(true) }, func(f *keycloaktest.Fake) { f.FailEmail(false) }},
	}
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		for i, fc := range failures {
			t.Run(fc.name, func(t *testing.T) {
				ctx := storetest.SystemContext()
				clock := storetest.NewClock(time.Now())
				svc, fake := withKeycloak(t, st, clock, false)
				fc.break_(fake)
				tn, err := svc.Create(ctx, tenant.CreateInput{Slug: fmt.Sprintf("flaky-%d", i), Name: "Flaky", AdminEmail: "it@flaky.example"})
				if err != nil {
					t.Fatalf("create must not fail when Keycloak does: %v", err)
				}
				if tn.ProvisioningState != tenant.ProvisioningFailed || tn.InviteURL != "" {
					t.Fatalf("state %q invite %q, want failed and no invite", tn.ProvisioningState, tn.InviteURL)
				}
				failed, err := st.Client.AuditLog.Query().Where(auditlog.GroupID(tn.ID.String()), auditlog.Action("keycloak.provision_failed")).Only(ctx)
				if err != nil {
					t.Fatalf("keycloak.provision_failed: %v", err)
				}
				if !failed.IsFailure || !strings.Contains(failed.Fields["error"], "keycloak") || strings.Contains(failed.Fields["error"], "s3cret") {
					t.Errorf("provision_failed event = %+v", failed)
				}

				// Still broken: the retry fails again, after its backoff.
				clock.Advance(10 * time.Second)
				if n, err := svc.ProcessDue(ctx); err != nil || n != 1 {
					t.Fatalf("ProcessDue while broken = %d, %v; want 1 attempt", n, err)
				}
				if n, _ := svc.ProcessDue(ctx); n != 0 {
					t.Errorf("ProcessDue before the backoff passed attempted %d jobs, want 0", n)
				}

				fc.heal(fake)
				clock.Advance(time.Hour)
				// Two workers (as on two replicas) race for the job.
				other := newServiceWith(t, st, clock, mustAdapter(t, fake, clock))
				var wg sync.WaitGroup
				for _, w := range []*tenant.Service{svc, other} {
					wg.Go(func() {
						if _, err := w.ProcessDue(ctx); err != nil {
							t.Errorf("ProcessDue: %v", err)
						}
					})
				}
				wg.Wait()
				got, err := svc.Get(ctx, tn.ID.String())
				if err != nil {
					t.Fatal(err)
				}
				if got.ProvisioningState != tenant.ProvisioningProvisioned || got.KeycloakOrgID == nil {
					t.Fatalf("after recovery: state %q org %v, want provisioned", got.ProvisioningState, got.KeycloakOrgID)
				}
				if n, _ := svc.ProcessDue(ctx); n != 0 {
					t.Errorf("a done job was attempted again")
				}
				wantActions(t, st, tn.ID.String(), "tenant.created,keycloak.provision_failed,keycloak.provision_failed,keycloak.provisioned")
				if n := len(fake.Orgs()); n != 1 {
					t.Errorf("fake has %d orgs, want 1", n)
				}
			})
		}
	})
}

func mustAdapter(t *testing.T, fake *keycloaktest.Fake, clock *storetest.Clock) *keycloak.HTTPAdapter {
	t.Helper()
	a, err := keycloak.NewHTTPAdapter(keycloak.Config{BaseURL: fake.URL(), Realm: "platform", ClientID: "tenant-registry", ClientSecret: "s3cret", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRetryProvisioning(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		clock := storetest.NewClock(time.Now())
		svc, fake := withKeycloak(t, st, clock, false)
		fake.SetDown(true)
		tn, err := svc.Create(ctx, tenant.CreateInput{Slug: "retry-me", Name: "Retry"})
		if err != nil {
			t.Fatal(err)
		}
		fake.SetDown(false)
		// No waiting for the backoff: the operator forces it now.
		got, err := svc.RetryProvisioning(ctx, tn.ID.String())
		if err != nil {
			t.Fatal(err)
		}
		if got.ProvisioningState != tenant.ProvisioningProvisioned {
			t.Errorf("state %q, want provisioned", got.ProvisioningState)
		}
		// Again: already done, nothing more happens.
		if _, err := svc.RetryProvisioning(ctx, tn.ID.String()); err != nil {
			t.Errorf("retry of a provisioned tenant: %v", err)
		}
		wantActions(t, st, tn.ID.String(), "tenant.created,keycloak.provision_failed,keycloak.provisioned")
		if _, err := svc.RetryProvisioning(ctx, "00000000-0000-0000-0000-0000000000ee"); errs.CodeOf(err) != errs.NotFound {
			t.Errorf("retry unknown tenant: %v, want not found", err)
		}
	})
}

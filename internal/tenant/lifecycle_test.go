package tenant_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/apikey"
	"github.com/platform/tenant-registry/ent/auditlog"
	"github.com/platform/tenant-registry/ent/outbox"
	enttenant "github.com/platform/tenant-registry/ent/tenant"
	"github.com/platform/tenant-registry/ent/tenantidpconfig"
	"github.com/platform/tenant-registry/ent/tenantproduct"
	"github.com/platform/tenant-registry/ent/tenantproject"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/keycloak/keycloaktest"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/internal/tenant"
)

// lifecycleService is a tenant service on st provisioning through the real
// HTTPAdapter against fake, with the deletion grace given.
func lifecycleService(t *testing.T, st *store.Store, clock *storetest.Clock, fake *keycloaktest.Fake, grace time.Duration) *tenant.Service {
	t.Helper()
	a := mustAdapter(t, fake, clock)
	return storetest.Must(tenant.NewService(tenant.Deps{
		Client: st.Client, Recorder: storetest.Recorder(clock.Now, st.Postgres()), Clock: clock.Now, Pager: storetest.Pager(t),
		Provisioner: a, DeletionGrace: grace,
	}))
}

func ptr(s string) *string { return &s }

func events(t *testing.T, st *store.Store, tenantID uuid.UUID, action string) []*ent.AuditLog {
	t.Helper()
	evs, err := st.Client.AuditLog.Query().Where(auditlog.GroupID(tenantID.String()), auditlog.Action(action)).
		Order(auditlog.ByChainSeq()).All(storetest.SystemContext())
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestUpdateTenant(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		clock := storetest.NewClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
		svc := newService(t, st, clock)
		tn, err := svc.Create(ctx, tenant.CreateInput{Slug: "umbrella", Name: "Umbrella", Plan: "starter"})
		if err != nil {
			t.Fatal(err)
		}
		id := tn.ID.String()
		clock.Advance(time.Minute)

		// Only the plan: the name stays.
		got, err := svc.Update(ctx, tenant.UpdateInput{ID: id, Plan: ptr("enterprise")})
		if err != nil {
			t.Fatalf("Update(plan): %v", err)
		}
		if got.Plan != enttenant.PlanEnterprise || got.Name != "Umbrella" {
			t.Errorf("after plan update: plan %q name %q, want enterprise, Umbrella", got.Plan, got.Name)
		}
		if !got.UpdatedAt.Equal(clock.Now()) {
			t.Errorf("updated_at = %v, want %v", got.UpdatedAt, clock.Now())
		}
		// Only the name; every reader sees it at once.
		if _, err := svc.Update(ctx, tenant.UpdateInput{ID: id, Name: ptr("  Umbrella Corp ")}); err != nil {
			t.Fatalf("Update(name): %v", err)
		}
		bySlug, err := svc.GetBySlug(ctx, "umbrella")
		if err != nil {
			t.Fatal(err)
		}
		claims, err := svc.Claims(ctx, "", "umbrella")
		if err != nil {
			t.Fatal(err)
		}
		if bySlug.Name != "Umbrella Corp" || bySlug.Plan != enttenant.PlanEnterprise || claims.Plan != "enterprise" {
			t.Errorf("after update: name %q plan %q claims plan %q; want Umbrella Corp, enterprise, enterprise", bySlug.Name, bySlug.Plan, claims.Plan)
		}

		evs := events(t, st, tn.ID, "tenant.updated")
		if len(evs) != 2 {
			t.Fatalf("tenant.updated events = %d, want 2", len(evs))
		}
		if f := evs[0].Fields; f["old_plan"] != "starter" || f["new_plan"] != "enterprise" || f["old_name"] != "" {
			t.Errorf("first tenant.updated fields = %v, want old_plan starter, new_plan enterprise and no name", f)
		}
		if f := evs[1].Fields; f["old_name"] != "Umbrella" || f["new_name"] != "Umbrella Corp" || f["new_plan"] != "" {
			t.Errorf("second tenant.updated fields = %v, want old_name Umbrella, new_name Umbrella Corp and no plan", f)
		}

		// Sending the same values changes nothing and records nothing.
		if _, err := svc.Update(ctx, tenant.UpdateInput{ID: id, Plan: ptr("enterprise")}); err != nil {
			t.Fatal(err)
		}
		if n := len(events(t, st, tn.ID, "tenant.updated")); n != 2 {
			t.Errorf("tenant.updated events after a no-op update = %d, want 2", n)
		}

		bad := []struct {
			name string
			in   tenant.UpdateInput
			want errs.Code
		}{
			{"nothing sent", tenant.UpdateInput{ID: id}, errs.Invalid},
			{"bad plan", tenant.UpdateInput{ID: id, Plan: ptr("platinum")}, errs.Invalid},
			{"empty plan", tenant.UpdateInput{ID: id, Plan: ptr("")}, errs.Invalid},
			{"empty name", tenant.UpdateInput{ID: id, Name: ptr("  ")}, errs.Invalid},
			{"bad plan with a good name", tenant.UpdateInput{ID: id, Name: ptr("Other"), Plan: ptr("gold")}, errs.Invalid},
			{"bad id", tenant.UpdateInput{ID: "nope", Name: ptr("X")}, errs.Invalid},
			{"unknown tenant", tenant.UpdateInput{ID: uuid.NewString(), Name: ptr("X")}, errs.NotFound},
		}
		for _, tc := range bad {
			if _, err := svc.Update(ctx, tc.in); codeOf(err) != tc.want {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
		after, err := svc.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if after.Name != "Umbrella Corp" || after.Plan != enttenant.PlanEnterprise || len(events(t, st, tn.ID, "tenant.updated")) != 2 {
			t.Errorf("refused updates changed the tenant: %q %q", after.Name, after.Plan)
		}
	})
}

// TestUpdateRenamesOrganization: a new name reaches the Keycloak
// organisation through the outbox; with Keycloak down the rename is
// retried until it lands, and keycloak.org_renamed is recorded once.
func TestUpdateRenamesOrganization(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		clock := storetest.NewClock(time.Now())
		fake := keycloaktest.New(t, "platform", "tenant-registry", "s3cret")
		svc := lifecycleService(t, st, clock, fake, time.Hour)
		tn, err := svc.Create(ctx, tenant.CreateInput{Slug: "hooli", Name: "Hooli"})
		if err != nil || tn.KeycloakOrgID == nil {
			t.Fatalf("create: %v %+v", err, tn)
		}
		orgName := func() string {
			for _, o := range fake.Orgs() {
				if o.ID == *tn.KeycloakOrgID {
					return o.Name
				}
			}
			return "(no organisation)"
		}

		// Healthy Keycloak: renamed within the RPC.
		if _, err := svc.Update(ctx, tenant.UpdateInput{ID: tn.ID.String(), Name: ptr("Hooli XYZ")}); err != nil {
			t.Fatal(err)
		}
		if got := orgName(); got != "Hooli XYZ" {
			t.Errorf("organisation name = %q, want Hooli XYZ", got)
		}
		if n := len(events(t, st, tn.ID, "keycloak.org_renamed")); n != 1 {
			t.Errorf("keycloak.org_renamed events = %d, want 1", n)
		}

		// Keycloak down: the update succeeds, the rename waits.
		fake.SetDown(true)
		if _, err := svc.Update(ctx, tenant.UpdateInput{ID: tn.ID.String(), Name: ptr("Hooli Nucleus")}); err != nil {
			t.Fatalf("update must not fail when Keycloak does: %v", err)
		}
		if got := orgName(); got != "Hooli XYZ" {
			t.Errorf("organisation name while down = %q, want the old Hooli XYZ", got)
		}
		failed := events(t, st, tn.ID, "keycloak.org_rename_failed")
		if len(failed) != 1 || !failed[0].IsFailure || !strings.Contains(failed[0].Fields["error"], "503") {
			t.Fatalf("keycloak.org_rename_failed = %+v, want one failure naming the 503", failed)
		}
		clock.Advance(10 * time.Second)
		if n, err := svc.ProcessDue(ctx); err != nil || n != 1 {
			t.Fatalf("ProcessDue while down = %d, %v; want 1 attempt", n, err)
		}
		fake.SetDown(false)
		clock.Advance(time.Hour)
		// Two workers (replicas) race for the job: one renames.
		other := lifecycleService(t, st, clock, fake, time.Hour)
		var wg sync.WaitGroup
		for _, s := range []*tenant.Service{svc, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.ProcessDue(ctx); err != nil {
					t.Errorf("ProcessDue: %v", err)
				}
			}()
		}
		wg.Wait()
		if got := orgName(); got != "Hooli Nucleus" {
			t.Errorf("organisation name after recovery = %q, want Hooli Nucleus", got)
		}
		if n, _ := svc.ProcessDue(ctx); n != 0 {
			t.Errorf("ProcessDue after the rename landed attempted %d jobs, want 0", n)
		}
		renamed := events(t, st, tn.ID, "keycloak.org_renamed")
		if len(renamed) != 2 || renamed[1].Fields["name"] != "Hooli Nucleus" {
			t.Errorf("keycloak.org_renamed events = %d (last %v), want 2, the last naming Hooli Nucleus", len(renamed), renamed[len(renamed)-1].Fields)
		}
		if n := len(events(t, st, tn.ID, "keycloak.org_rename_failed")); n != 2 {
			t.Errorf("keycloak.org_rename_failed events = %d, want 2", n)
		}
	})
}

func TestDeleteAndRestore(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		clock := storetest.NewClock(time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC))
		fake := keycloaktest.New(t, "platform", "tenant-registry", "s3cret")
		const grace = 48 * time.Hour
		svc := lifecycleService(t, st, clock, fake, grace)
		tn, err := svc.Create(ctx, tenant.CreateInput{Slug: "pied-piper", Name: "Pied Piper"})
		if err != nil {
			t.Fatal(err)
		}
		id := tn.ID.String()
		for _, status := range []string{"trial", "active"} {
			if status == "active" {
				if _, err := svc.Activate(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			_, err := svc.Delete(ctx, id)
			if codeOf(err) != errs.Precondition || !strings.Contains(err.Error(), status) {
				t.Errorf("Delete of a %s tenant = %v, want a precondition naming %s", status, err, status)
			}
		}
		if _, err := svc.Restore(ctx, id); codeOf(err) != errs.Precondition {
			t.Errorf("Restore of a tenant not scheduled = %v, want precondition", err)
		}
		if _, err := svc.Cancel(ctx, id); err != nil {
			t.Fatal(err)
		}
		got, err := svc.Delete(ctx, id)
		if err != nil {
			t.Fatalf("Delete of a frozen tenant: %v", err)
		}
		want := clock.Now().Add(grace)
		if got.DeletionScheduledAt == nil || !got.DeletionScheduledAt.Equal(want) {
			t.Fatalf("deletion_scheduled_at = %v, want %v", got.DeletionScheduledAt, want)
		}
		read, err := svc.Get(ctx, id)
		if err != nil || read.DeletionScheduledAt == nil || !read.DeletionScheduledAt.Equal(want) {
			t.Fatalf("Get after Delete: %v %v, want deletion_scheduled_at %v", err, read, want)
		}
		ev := events(t, st, tn.ID, "tenant.deletion_scheduled")
		if len(ev) != 1 || ev[0].Fields["deletion_scheduled_at"] != want.Format(time.RFC3339Nano) || ev[0].Crud != "d" {
			t.Fatalf("tenant.deletion_scheduled = %+v", ev)
		}
		// A purge months ahead is no backlog of Keycloak work.
		if n, err := svc.ProvisioningBacklog(ctx); err != nil || n != 0 {
			t.Errorf("outbox backlog with a purge scheduled = %d, %v; want 0", n, err)
		}
		// Again: the same schedule, no second event.
		if again, err := svc.Delete(ctx, id); err != nil || !again.DeletionScheduledAt.Equal(want) {
			t.Errorf("second Delete = %v, %v; want the same schedule", again, err)
		}
		if n := len(events(t, st, tn.ID, "tenant.deletion_scheduled")); n != 1 {
			t.Errorf("tenant.deletion_scheduled events after a second Delete = %d, want 1", n)
		}
		// A tenant scheduled for deletion cannot be reactivated.
		if _, err := svc.Activate(ctx, id); codeOf(err) != errs.Precondition {
			t.Errorf("Activate while scheduled = %v, want precondition", err)
		}
		// Not due: the sweeper leaves it alone.
		clock.Advance(grace - time.Second)
		if n, err := svc.PurgeDue(ctx); err != nil || n != 0 {
			t.Errorf("PurgeDue before the deadline = %d, %v; want 0", n, err)
		}
		restored, err := svc.Restore(ctx, id)
		if err != nil || restored.DeletionScheduledAt != nil || restored.Status != enttenant.StatusFrozen {
			t.Fatalf("Restore = %+v, %v; want frozen and no deletion scheduled", restored, err)
		}
		if ev := events(t, st, tn.ID, "tenant.restored"); len(ev) != 1 {
			t.Errorf("tenant.restored events = %d, want 1", len(ev))
		}
		if n, err := st.Client.Outbox.Query().Where(outbox.TenantID(tn.ID), outbox.Kind("tenant.purge")).Count(ctx); err != nil || n != 0 {
			t.Errorf("purge jobs after Restore = %d, %v; want 0", n, err)
		}
		// Restored for good: past the old deadline nothing is purged.
		clock.Advance(time.Hour)
		if n, _ := svc.PurgeDue(ctx); n != 0 {
			t.Errorf("PurgeDue after Restore = %d, want 0", n)
		}
		if _, err := svc.Restore(ctx, id); codeOf(err) != errs.Precondition {
			t.Errorf("Restore twice = %v, want precondition", err)
		}
		// Once the grace period is over, restore is refused.
		if _, err := svc.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		clock.Advance(grace)
		if _, err := svc.Restore(ctx, id); codeOf(err) != errs.Precondition {
			t.Errorf("Restore after the grace period = %v, want precondition", err)
		}
		for _, bad := range []string{"", "x", uuid.NewString()} {
			want := errs.Invalid
			if bad != "" && bad != "x" {
				want = errs.NotFound
			}
			if _, err := svc.Delete(ctx, bad); codeOf(err) != want {
				t.Errorf("Delete(%q) = %v, want %v", bad, err, want)
			}
			if _, err := svc.Restore(ctx, bad); codeOf(err) != want {
				t.Errorf("Restore(%q) = %v, want %v", bad, err, want)
			}
		}
	})
}

// TestPurge: with a grace of 2s, a deleted tenant is purged at the
// deadline — not while Keycloak is down (its organisation would be left
// behind), but at the next sweep after it recovers, by one of two
// replicas: the organisation and every row of the tenant are gone, its
// audit history remains with tenant.deleted last, and its chain verifies.
func TestPurge(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		clock := storetest.NewClock(time.Now())
		fake := keycloaktest.New(t, "platform", "tenant-registry", "s3cret")
		const grace = 2 * time.Second
		svc := lifecycleService(t, st, clock, fake, grace)
		other := lifecycleService(t, st, clock, fake, grace)
		tn, err := svc.Create(ctx, tenant.CreateInput{Slug: "aviato", Name: "Aviato", AdminEmail: "erlich@aviato.example"})
		if err != nil || tn.KeycloakOrgID == nil {
			t.Fatalf("create: %v %+v", err, tn)
		}
		keep, err := svc.Create(ctx, tenant.CreateInput{Slug: "bystander", Name: "Bystander"})
		if err != nil {
			t.Fatal(err)
		}
		// Children of every kind.
		now := clock.Now()
		for _, owner := range []uuid.UUID{tn.ID, keep.ID} {
			p := st.Client.TenantProject.Create().SetID(uuid.New()).SetTenantID(owner).SetSlug("web").SetName("Web").
				SetCreatedAt(now).SetUpdatedAt(now).SaveX(ctx)
			st.Client.APIKey.Create().SetID(uuid.New()).SetTenantID(owner).SetProjectID(p.ID).SetName("ci").SetPrefix("tr_x").
				SetHash([]byte(uuid.NewString())).SetCreatedAt(now).SetUpdatedAt(now).ExecX(ctx)
			st.Client.TenantProduct.Create().SetID(uuid.New()).SetTenantID(owner).SetProduct("certifai").
				SetStatus(tenantproduct.StatusActive).SetCreatedAt(now).SetUpdatedAt(now).ExecX(ctx)
			st.Client.TenantIdpConfig.Create().SetID(uuid.New()).SetTenantID(owner).SetProtocol(tenantidpconfig.ProtocolOidc).
				SetIssuerURL("https://idp.example").SetCreatedAt(now).SetUpdatedAt(now).ExecX(ctx)
		}
		if _, err := svc.Cancel(ctx, tn.ID.String()); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Delete(ctx, tn.ID.String()); err != nil {
			t.Fatal(err)
		}

		// Due, but Keycloak is down: not purged.
		clock.Advance(3 * time.Second)
		fake.SetDown(true)
		if n, err := svc.PurgeDue(ctx); err != nil || n != 1 {
			t.Fatalf("PurgeDue while Keycloak is down = %d, %v; want 1 attempt", n, err)
		}
		if _, err := svc.Get(ctx, tn.ID.String()); err != nil {
			t.Fatalf("tenant after a purge attempt with Keycloak down: %v, want it still there", err)
		}
		if len(fake.Orgs()) != 2 {
			t.Errorf("organisations after the failed purge = %d, want 2", len(fake.Orgs()))
		}
		failed := events(t, st, tn.ID, "keycloak.org_delete_failed")
		if len(failed) != 1 || !failed[0].IsFailure {
			t.Fatalf("keycloak.org_delete_failed = %+v, want one failure event", failed)
		}

		// Recovered: the next sweep purges, on exactly one of two replicas.
		fake.SetDown(false)
		clock.Advance(time.Hour)
		var wg sync.WaitGroup
		for _, s := range []*tenant.Service{svc, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.PurgeDue(ctx); err != nil {
					t.Errorf("PurgeDue: %v", err)
				}
			}()
		}
		wg.Wait()
		if _, err := svc.Get(ctx, tn.ID.String()); codeOf(err) != errs.NotFound {
			t.Fatalf("Get after the purge = %v, want not found", err)
		}
		for _, o := range fake.Orgs() {
			if o.Alias == "aviato" {
				t.Errorf("organisation %+v still in Keycloak after the purge", o)
			}
		}
		if len(fake.Orgs()) != 1 {
			t.Errorf("organisations after the purge = %d, want the bystander's only", len(fake.Orgs()))
		}
		counts := map[string]func(uuid.UUID) (int, error){
			"tenant_projects": func(id uuid.UUID) (int, error) {
				return st.Client.TenantProject.Query().Where(tenantproject.TenantID(id)).Count(ctx)
			},
			"api_keys": func(id uuid.UUID) (int, error) { return st.Client.APIKey.Query().Where(apikey.TenantID(id)).Count(ctx) },
			"tenant_products": func(id uuid.UUID) (int, error) {
				return st.Client.TenantProduct.Query().Where(tenantproduct.TenantID(id)).Count(ctx)
			},
			"tenant_idp_config": func(id uuid.UUID) (int, error) {
				return st.Client.TenantIdpConfig.Query().Where(tenantidpconfig.TenantID(id)).Count(ctx)
			},
			"outbox": func(id uuid.UUID) (int, error) { return st.Client.Outbox.Query().Where(outbox.TenantID(id)).Count(ctx) },
		}
		for table, count := range counts {
			if n, err := count(tn.ID); err != nil || n != 0 {
				t.Errorf("%s rows of the purged tenant = %d, %v; want 0", table, n, err)
			}
			if n, err := count(keep.ID); err != nil || n == 0 {
				t.Errorf("%s rows of the bystander = %d, %v; want them kept", table, n, err)
			}
		}

		// The history stays: every event, tenant_id NULL, tenant.deleted last.
		hist, err := st.Client.AuditLog.Query().Where(auditlog.GroupID(tn.ID.String())).Order(auditlog.ByChainSeq()).All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var acts []string
		for _, e := range hist {
			acts = append(acts, e.Action)
			if e.TenantID != nil {
				t.Errorf("event %s keeps tenant_id %v after the purge, want NULL", e.Action, *e.TenantID)
			}
		}
		want := "tenant.created,keycloak.provisioned,tenant.cancelled,tenant.deletion_scheduled,keycloak.org_delete_failed,tenant.deleted"
		if got := strings.Join(acts, ","); got != want {
			t.Errorf("history after the purge = %s, want %s", got, want)
		}
		if last := hist[len(hist)-1]; last.Fields["slug"] != "aviato" || last.ActorType != "system" || last.GroupName != "Aviato" {
			t.Errorf("tenant.deleted = %+v", last)
		}
		auditSvc := storetest.Must(audit.NewService(audit.Deps{
			Client: st.Client, Recorder: storetest.Recorder(clock.Now, st.Postgres()), Clock: clock.Now, Pager: storetest.Pager(t),
		}))
		res, err := auditSvc.VerifyChain(ctx, tn.ID.String())
		if err != nil || !res.OK || res.EventsChecked != int64(len(hist)) {
			t.Errorf("VerifyChain of the purged tenant = %+v, %v; want ok over %d events", res, err, len(hist))
		}
		listed, _, err := auditSvc.List(ctx, audit.ListInput{TenantID: tn.ID.String()})
		if err != nil || len(listed) != len(hist) || listed[0].Action != "tenant.deleted" {
			t.Errorf("ListEvents of the purged tenant = %d events, %v; want %d, newest tenant.deleted", len(listed), err, len(hist))
		}
		exported := 0
		if err := auditSvc.Export(ctx, audit.ExportInput{TenantID: tn.ID.String()}, func(*audit.Event) error { exported++; return nil }); err != nil || exported != len(hist) {
			t.Errorf("ExportEvents of the purged tenant = %d, %v; want %d", exported, err, len(hist))
		}
		// Nothing more to purge.
		if n, _ := svc.PurgeDue(ctx); n != 0 {
			t.Errorf("PurgeDue after the purge = %d, want 0", n)
		}
	})
}

// TestPurgeOrganisationAlreadyGone: an organisation deleted in Keycloak by
// hand (404) does not hold the purge up.
func TestPurgeOrganisationAlreadyGone(t *testing.T) {
	st := storetest.SQLite(t)
	ctx := storetest.SystemContext()
	clock := storetest.NewClock(time.Now())
	fake := keycloaktest.New(t, "platform", "tenant-registry", "s3cret")
	svc := lifecycleService(t, st, clock, fake, time.Second)
	tn, err := svc.Create(ctx, tenant.CreateInput{Slug: "raviga", Name: "Raviga"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Cancel(ctx, tn.ID.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Delete(ctx, tn.ID.String()); err != nil {
		t.Fatal(err)
	}
	if err := mustAdapter(t, fake, clock).DeleteOrganization(ctx, keycloak.OrgRequest{OrgID: *tn.KeycloakOrgID}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second)
	if n, err := svc.PurgeDue(ctx); err != nil || n != 1 {
		t.Fatalf("PurgeDue = %d, %v", n, err)
	}
	if _, err := svc.Get(ctx, tn.ID.String()); codeOf(err) != errs.NotFound {
		t.Errorf("Get after the purge = %v, want not found", err)
	}
	if n := len(events(t, st, tn.ID, "tenant.deleted")); n != 1 {
		t.Errorf("tenant.deleted events = %d, want 1", n)
	}
}

// TestRenameOvertaken: renamed again while the first rename is in
// Keycloak, the first attempt's outcome is not recorded as done: the job
// runs again with the newer name, which is what Keycloak ends with, and
// keycloak.org_renamed is recorded once, for it.
func TestRenameOvertaken(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		clock := storetest.NewClock(time.Now())
		fake := keycloaktest.New(t, "platform", "tenant-registry", "s3cret")
		svc := lifecycleService(t, st, clock, fake, time.Hour)
		tn, err := svc.Create(ctx, tenant.CreateInput{Slug: "endframe", Name: "Endframe"})
		if err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		fake.SetHook(func(r *http.Request) {
			if r.Method != http.MethodPut {
				return
			}
			once.Do(func() {
				// The job's lease is held by the attempt in flight: this
				// update queues the newer name without running it.
				if _, err := svc.Update(ctx, tenant.UpdateInput{ID: tn.ID.String(), Name: ptr("Endframe Two")}); err != nil {
					t.Errorf("second update: %v", err)
				}
			})
		})
		if _, err := svc.Update(ctx, tenant.UpdateInput{ID: tn.ID.String(), Name: ptr("Endframe One")}); err != nil {
			t.Fatal(err)
		}
		if n := len(events(t, st, tn.ID, "keycloak.org_renamed")); n != 0 {
			t.Errorf("keycloak.org_renamed after the overtaken attempt = %d, want 0", n)
		}
		if n, err := svc.ProcessDue(ctx); err != nil || n != 1 {
			t.Fatalf("ProcessDue = %d, %v; want the rename run again", n, err)
		}
		orgs := fake.Orgs()
		if len(orgs) != 1 || orgs[0].Name != "Endframe Two" {
			t.Errorf("organisations = %+v, want one named Endframe Two", orgs)
		}
		renamed := events(t, st, tn.ID, "keycloak.org_renamed")
		if len(renamed) != 1 || renamed[0].Fields["name"] != "Endframe Two" {
			t.Errorf("keycloak.org_renamed = %d events (%v), want one for Endframe Two", len(renamed), renamed)
		}
	})
}

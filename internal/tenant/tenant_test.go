package tenant_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platform/tenant-registry/ent/auditlog"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/internal/tenant"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func newService(t *testing.T, st *store.Store, clock *storetest.Clock) *tenant.Service {
	t.Helper()
	return newServiceWith(t, st, clock, keycloak.Mock{})
}

// newServiceWith is newService with p as its Keycloak provisioner.
func newServiceWith(t *testing.T, st *store.Store, clock *storetest.Clock, p tenant.Provisioner) *tenant.Service {
	t.Helper()
	orgs, ok := p.(keycloak.Organizations)
	if !ok {
		orgs = keycloak.Mock{} // a provisioner of a provisioning test only
	}
	return storetest.Must(tenant.NewService(tenant.Deps{Client: st.Client, Recorder: storetest.Recorder(clock.Now, st.Postgres()), Clock: clock.Now, Pager: storetest.Pager(t), Provisioner: p, Organizations: orgs}))
}

func codeOf(err error) errs.Code { return errs.CodeOf(err) }

func TestCreateGetList(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		clock := storetest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		svc := newService(t, st, clock)

		created, err := svc.Create(ctx, tenant.CreateInput{Slug: "globex", Name: "  Globex Corp ", Plan: "enterprise"})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if got, want := created.Status, "trial"; string(got) != want {
			t.Errorf("status = %q, want %q", got, want)
		}
		if got, want := created.Name, "Globex Corp"; got != want {
			t.Errorf("name = %q, want %q", got, want)
		}
		byID, err := svc.Get(ctx, created.ID.String())
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		bySlug, err := svc.GetBySlug(ctx, "globex")
		if err != nil {
			t.Fatalf("GetBySlug: %v", err)
		}
		if byID.ID != created.ID || bySlug.ID != created.ID {
			t.Errorf("Get/GetBySlug returned %v/%v, want %v", byID.ID, bySlug.ID, created.ID)
		}
		if !byID.CreatedAt.Equal(clock.Now()) {
			t.Errorf("created_at = %v, want the injected clock's %v", byID.CreatedAt, clock.Now())
		}
		if _, err := svc.GetBySlug(ctx, "nobody"); codeOf(err) != errs.NotFound {
			t.Errorf("GetBySlug(unknown) = %v, want not found", err)
		}
		if _, err := svc.Get(ctx, "not-a-uuid"); codeOf(err) != errs.Invalid {
			t.Errorf("Get(bad id) = %v, want invalid", err)
		}

		// tenant.created, then the (mock) Keycloak provisioning, in the
		// tenant's group.
		events, err := st.Client.AuditLog.Query().Where(auditlog.GroupID(created.ID.String())).
			Order(auditlog.ByChainSeq()).All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, e := range events {
			actions = append(actions, e.Action)
		}
		if got, want := strings.Join(actions, ","), "tenant.created,keycloak.provisioned"; got != want {
			t.Fatalf("events = %s, want %s", got, want)
		}
		if events[0].TargetID != created.ID.String() || events[0].ActorID != principal.System.Subject {
			t.Errorf("tenant.created target/actor = %s/%s", events[0].TargetID, events[0].ActorID)
		}
		if got, want := created.ProvisioningState, tenant.ProvisioningProvisioned; got != want {
			t.Errorf("provisioning_state = %q, want %q", got, want)
		}
	})
}

func TestList(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		clock := storetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		svc := newService(t, st, clock)
		var want []string // newest first
		for i := range 12 {
			plan := []string{"starter", "professional", "enterprise"}[i%3]
			tn, err := svc.Create(ctx, tenant.CreateInput{Slug: fmt.Sprintf("co-%02d", i), Name: fmt.Sprintf("Company %02d", i), Plan: plan})
			if err != nil {
				t.Fatal(err)
			}
			if i%4 == 0 { // some share a timestamp: the id breaks the tie
				clock.Advance(time.Second)
			}
			want = append([]string{tn.Slug}, want...)
		}
		// Ties in created_at are ordered by id: compute the order the
		// service must return from the rows themselves.
		all, _, err := svc.List(ctx, tenant.ListInput{PageSize: 500})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 12 {
			t.Fatalf("got %d tenants, want 12", len(all))
		}
		for i := 1; i < len(all); i++ {
			a, b := all[i-1], all[i]
			if a.CreatedAt.Before(b.CreatedAt) || (a.CreatedAt.Equal(b.CreatedAt) && a.ID.String() < b.ID.String()) {
				t.Fatalf("not newest first at %d: %v %v / %v %v", i, a.CreatedAt, a.ID, b.CreatedAt, b.ID)
			}
		}
		for _, size := range []int32{1, 5, 12, 500} {
			var got []string
			next := ""
			for pages := 0; ; pages++ {
				page, n, err := svc.List(ctx, tenant.ListInput{PageSize: size, Cursor: next})
				if err != nil {
					t.Fatalf("size %d: %v", size, err)
				}
				for _, p := range page {
					got = append(got, p.Slug)
				}
				if next = n; next == "" || pages > 20 {
					break
				}
			}
			var wantOrder []string
			for _, a := range all {
				wantOrder = append(wantOrder, a.Slug)
			}
			if strings.Join(got, ",") != strings.Join(wantOrder, ",") {
				t.Errorf("size %d: got %v, want %v", size, got, wantOrder)
			}
		}
		filters := []struct {
			name string
			in   tenant.ListInput
			want int
		}{
			{"plan", tenant.ListInput{Plan: "enterprise"}, 4},
			{"status", tenant.ListInput{Status: "trial"}, 12},
			{"status frozen", tenant.ListInput{Status: "frozen"}, 0},
			{"slug prefix", tenant.ListInput{Query: "co-1"}, 2},
			{"name prefix, any case", tenant.ListInput{Query: "company 0"}, 10},
		}
		for _, f := range filters {
			got, _, err := svc.List(ctx, f.in)
			if err != nil {
				t.Fatalf("%s: %v", f.name, err)
			}
			if len(got) != f.want {
				t.Errorf("%s: got %d tenants, want %d", f.name, len(got), f.want)
			}
		}
		bad := []struct {
			name string
			in   tenant.ListInput
		}{
			{"tampered cursor", tenant.ListInput{Cursor: "abc"}},
			{"bad status", tenant.ListInput{Status: "deleted"}},
			{"bad plan", tenant.ListInput{Plan: "gold"}},
			{"negative page size", tenant.ListInput{PageSize: -1}},
		}
		for _, b := range bad {
			if _, _, err := svc.List(ctx, b.in); codeOf(err) != errs.Invalid {
				t.Errorf("%s: err = %v, want invalid", b.name, err)
			}
		}
		// A cursor made with other filters is refused.
		_, next, err := svc.List(ctx, tenant.ListInput{PageSize: 1, Plan: "starter"})
		if err != nil || next == "" {
			t.Fatalf("first page: %v, next %q", err, next)
		}
		if _, _, err := svc.List(ctx, tenant.ListInput{PageSize: 1, Cursor: next}); codeOf(err) != errs.Invalid {
			t.Errorf("foreign cursor: err = %v, want invalid", err)
		}
	})
}

func TestCreateValidation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		svc := newService(t, st, storetest.NewClock(time.Now()))
		cases := []struct {
			name      string
			in        tenant.CreateInput
			wantField string
		}{
			{"too short", tenant.CreateInput{Slug: "ab", Name: "x"}, "slug"},
			{"too long", tenant.CreateInput{Slug: strings.Repeat("a", 64), Name: "x"}, "slug"},
			{"leading dash", tenant.CreateInput{Slug: "-abc", Name: "x"}, "slug"},
			{"trailing dash", tenant.CreateInput{Slug: "abc-", Name: "x"}, "slug"},
			{"upper case", tenant.CreateInput{Slug: "Acme", Name: "x"}, "slug"},
			{"underscore", tenant.CreateInput{Slug: "ac_me", Name: "x"}, "slug"},
			{"empty slug", tenant.CreateInput{Slug: "", Name: "x"}, "slug"},
			{"empty name", tenant.CreateInput{Slug: "okay", Name: ""}, "name"},
			{"blank name", tenant.CreateInput{Slug: "okay", Name: "   "}, "name"},
			{"long name", tenant.CreateInput{Slug: "okay", Name: strings.Repeat("n", 201)}, "name"},
			{"bad plan", tenant.CreateInput{Slug: "okay", Name: "x", Plan: "gold"}, "plan"},
			{"bad admin email", tenant.CreateInput{Slug: "okay", Name: "x", AdminEmail: "not-an-email"}, "admin_email"},
			{"admin email with name part", tenant.CreateInput{Slug: "okay", Name: "x", AdminEmail: "Bob <bob@x.example>"}, "admin_email"},
			{"admin name without email", tenant.CreateInput{Slug: "okay", Name: "x", AdminName: "Bob"}, "admin_email"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				_, err := svc.Create(storetest.SystemContext(), c.in)
				if got, want := codeOf(err), errs.Invalid; got != want {
					t.Fatalf("code = %q (%v), want %q", got, err, want)
				}
				if !strings.HasPrefix(err.Error(), c.wantField+":") {
					t.Errorf("message %q does not name the field %q", err, c.wantField)
				}
			})
		}
		n, err := st.Client.Tenant.Query().Count(storetest.SystemContext())
		if err != nil || n != 0 {
			t.Errorf("tenants after bad input = %d (%v), want 0", n, err)
		}
		if n, _ := st.Client.AuditLog.Query().Count(storetest.SystemContext()); n != 0 {
			t.Errorf("audit events after bad input = %d, want 0", n)
		}
	})
}

func TestTransitions(t *testing.T) {
	type step struct {
		op       string // activate or cancel
		wantCode errs.Code
		want     string // status after
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"trial → active → frozen → active", []step{{"activate", "", "active"}, {"cancel", "", "frozen"}, {"activate", "", "active"}}},
		{"trial → frozen", []step{{"cancel", "", "frozen"}}},
		{"active twice", []step{{"activate", "", "active"}, {"activate", errs.Precondition, "active"}}},
		{"cancel frozen", []step{{"cancel", "", "frozen"}, {"cancel", errs.Precondition, "frozen"}}},
	}
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		svc := newService(t, st, storetest.NewClock(time.Now()))
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				tn, err := svc.Create(ctx, tenant.CreateInput{Slug: fmt.Sprintf("life-%d", i), Name: "Life"})
				if err != nil {
					t.Fatal(err)
				}
				wantEvents := 1
				for _, s := range c.steps {
					op := svc.Activate
					if s.op == "cancel" {
						op = svc.Cancel
					}
					_, err := op(ctx, tn.ID.String())
					if got := codeOf(err); got != s.wantCode {
						t.Fatalf("%s: code %q (%v), want %q", s.op, got, err, s.wantCode)
					}
					if err == nil {
						wantEvents++
					} else if !strings.Contains(err.Error(), "status is "+s.want) {
						t.Errorf("%s: message %q does not name the current status %q", s.op, err, s.want)
					}
					cur, err := svc.Get(ctx, tn.ID.String())
					if err != nil {
						t.Fatal(err)
					}
					if string(cur.Status) != s.want {
						t.Fatalf("after %s: status %q, want %q", s.op, cur.Status, s.want)
					}
				}
				n, err := st.Client.AuditLog.Query().Where(auditlog.GroupID(tn.ID.String()), auditlog.ActionHasPrefix("tenant.")).Count(ctx)
				if err != nil || n != wantEvents {
					t.Errorf("events = %d (%v), want %d", n, err, wantEvents)
				}
			})
		}
		if _, err := svc.Activate(ctx, "00000000-0000-0000-0000-00000000ffff"); codeOf(err) != errs.NotFound {
			t.Errorf("activate unknown: %v, want not found", err)
		}
	})
}

func TestConcurrentCreateSameSlug(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		svc := newService(t, st, storetest.NewClock(time.Now()))
		const n = 50
		failures := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, failures[i] = svc.Create(ctx, tenant.CreateInput{Slug: "contested", Name: fmt.Sprintf("Contender %d", i)})
			})
		}
		wg.Wait()
		ok, conflicts := 0, 0
		for _, err := range failures {
			switch codeOf(err) {
			case "":
				ok++
			case errs.Conflict:
				conflicts++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}
		if ok != 1 || conflicts != n-1 {
			t.Errorf("ok = %d, already_exists = %d; want 1 and %d", ok, conflicts, n-1)
		}
		tenants, _ := st.Client.Tenant.Query().Count(ctx)
		events, _ := st.Client.AuditLog.Query().Where(auditlog.Action("tenant.created")).Count(ctx)
		if tenants != 1 || events != 1 {
			t.Errorf("tenants = %d, tenant.created events = %d; want 1 and 1", tenants, events)
		}
	})
}

func TestConcurrentCancel(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		svc := newService(t, st, storetest.NewClock(time.Now()))
		for round := range 5 {
			tn, err := svc.Create(ctx, tenant.CreateInput{Slug: fmt.Sprintf("race-%d", round), Name: "Race"})
			if err != nil {
				t.Fatal(err)
			}
			failures := make([]error, 2)
			var wg sync.WaitGroup
			for i := range failures {
				wg.Go(func() { _, failures[i] = svc.Cancel(ctx, tn.ID.String()) })
			}
			wg.Wait()
			wins, pre := 0, 0
			for _, err := range failures {
				switch {
				case err == nil:
					wins++
				case codeOf(err) == errs.Precondition:
					pre++
				default:
					t.Fatalf("unexpected: %v", err)
				}
			}
			if wins != 1 || pre != 1 {
				t.Errorf("round %d: wins %d, failed_precondition %d; want 1 and 1", round, wins, pre)
			}
			n, _ := st.Client.AuditLog.Query().Where(auditlog.GroupID(tn.ID.String()), auditlog.Action("tenant.cancelled")).Count(ctx)
			if n != 1 {
				t.Errorf("round %d: %d tenant.cancelled events, want 1", round, n)
			}
		}
	})
}

func TestSeedDevIdempotent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		svc := newService(t, st, storetest.NewClock(time.Now()))
		var wg sync.WaitGroup
		failures := make([]error, 4)
		for i := range failures {
			wg.Go(func() { failures[i] = svc.SeedDev(ctx) })
		}
		wg.Wait()
		if err := errors.Join(failures...); err != nil {
			t.Fatal(err)
		}
		acme, err := svc.GetBySlug(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprint(acme.ID, acme.Name, acme.Status, acme.Plan, acme.Products)
		want := "00000000-0000-0000-0000-000000000001Acme Inc.activeprofessional[certifai compliance]"
		if got != want {
			t.Errorf("acme = %s, want %s", got, want)
		}
	})
}

// TestNoCallerRefused: a context without a caller is refused, never taken
// for the system: reads, lists and changes alike.
func TestNoCallerRefused(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		svc := newService(t, st, storetest.NewClock(time.Now()))
		if err := svc.SeedDev(storetest.SystemContext()); err != nil {
			t.Fatal(err)
		}
		bare := context.Background()
		for name, call := range map[string]func() error{
			"get":    func() error { _, err := svc.Get(bare, tenant.AcmeID.String()); return err },
			"list":   func() error { _, _, err := svc.List(bare, tenant.ListInput{}); return err },
			"create": func() error { _, err := svc.Create(bare, tenant.CreateInput{Slug: "nobody-co", Name: "N"}); return err },
			"cancel": func() error { _, err := svc.Cancel(bare, tenant.AcmeID.String()); return err },
		} {
			if got := errs.CodeOf(call()); got != errs.Unauthenticated {
				t.Errorf("%s without a caller: code %q, want unauthenticated", name, got)
			}
		}
		if _, err := svc.GetBySlug(storetest.SystemContext(), "nobody-co"); errs.CodeOf(err) != errs.NotFound {
			t.Errorf("the refused create wrote a tenant: %v", err)
		}
	})
}

package entitlement_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platform/tenant-registry/ent/auditlog"
	"github.com/platform/tenant-registry/ent/tenantproduct"
	"github.com/platform/tenant-registry/internal/catalog"
	"github.com/platform/tenant-registry/internal/entitlement"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/internal/tenant"
	"github.com/platform/tenant-registry/internal/worker"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var t0 = time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)

type env struct {
	st      *store.Store
	clock   *storetest.Clock
	svc     *entitlement.Service
	tenants *tenant.Service
}

func newEnv(t *testing.T, st *store.Store) *env {
	t.Helper()
	clock := storetest.NewClock(t0)
	rec := storetest.Recorder(clock.Now, st.Postgres())
	return &env{
		st:      st,
		clock:   clock,
		svc:     storetest.Must(entitlement.NewService(entitlement.Deps{Client: st.Client, Recorder: rec, Catalog: catalog.Default(), Clock: clock.Now})),
		tenants: storetest.Must(tenant.NewService(tenant.Deps{Client: st.Client, Recorder: rec, Clock: clock.Now, Pager: storetest.Pager(t), Provisioner: keycloak.Mock{}})),
	}
}

// newTenant creates an active tenant and returns its id.
func (e *env) newTenant(t *testing.T, slug string) string {
	t.Helper()
	ctx := storetest.SystemContext()
	tn, err := e.tenants.Create(ctx, tenant.CreateInput{Slug: slug, Name: strings.ToUpper(slug)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.tenants.Activate(ctx, tn.ID.String()); err != nil {
		t.Fatal(err)
	}
	return tn.ID.String()
}

func (e *env) events(t *testing.T, tenantID, action string) int {
	t.Helper()
	n, err := e.st.Client.AuditLog.Query().Where(auditlog.GroupID(tenantID), auditlog.Action(action)).Count(storetest.SystemContext())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) statuses(t *testing.T, tenantID string) string {
	t.Helper()
	list, err := e.svc.List(storetest.SystemContext(), tenantID)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, p := range list {
		parts = append(parts, p.Product+"="+string(p.Status))
	}
	return strings.Join(parts, ",")
}

func (e *env) products(t *testing.T, tenantID string) string {
	t.Helper()
	c, err := e.tenants.Claims(storetest.SystemContext(), tenantID, "")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(c.Products, ",")
}

func codeOf(err error) errs.Code { return errs.CodeOf(err) }

// errOf drops a call's result and keeps its error: errOf(e.svc.Grant(…)).
func errOf[T any](_ T, err error) error { return err }

// eachTenant runs fn on each store (see storetest.Each) with a fresh env,
// an active tenant named slug and the system's context.
func eachTenant(t *testing.T, slug string, fn func(t *testing.T, ctx context.Context, e *env, id string)) {
	t.Helper()
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		fn(t, storetest.SystemContext(), e, e.newTenant(t, slug))
	})
}

func TestRequestThenGrant(t *testing.T) {
	eachTenant(t, "globex", func(t *testing.T, ctx context.Context, e *env, id string) {

		type step struct {
			name      string
			op        func() error
			wantCode  errs.Code
			wantState string // List, as product=status
			wantClaim string // Claims products
			wantReq   int    // catalog.product_requested events so far
			wantGrant int    // entitlement.granted events so far
		}
		steps := []step{
			{"request", func() error { return errOf(e.svc.Request(ctx, id, "certifai", "50 seats")) }, "", "certifai=requested", "", 1, 0},
			{"request again, same note", func() error { return errOf(e.svc.Request(ctx, id, "certifai", "50 seats")) }, "", "certifai=requested", "", 1, 0},
			{"request again, no note", func() error { return errOf(e.svc.Request(ctx, id, "certifai", "")) }, "", "certifai=requested", "", 1, 0},
			{"request again, new note", func() error { return errOf(e.svc.Request(ctx, id, "certifai", "80 seats")) }, "", "certifai=requested", "", 2, 0},
			{"grant", func() error { return errOf(e.svc.Grant(ctx, id, "certifai")) }, "", "certifai=active", "certifai", 2, 1},
			{"grant again", func() error { return errOf(e.svc.Grant(ctx, id, "certifai")) }, "", "certifai=active", "certifai", 2, 1},
			{"request active", func() error { return errOf(e.svc.Request(ctx, id, "certifai", "")) }, errs.Precondition, "certifai=active", "certifai", 2, 1},
			{"grant without request", func() error { return errOf(e.svc.Grant(ctx, id, "compliance")) }, "", "certifai=active,compliance=active", "certifai,compliance", 2, 2},
		}
		for _, s := range steps {
			err := s.op()
			if got, want := codeOf(err), s.wantCode; got != want {
				t.Fatalf("%s: code %q (%v), want %q", s.name, got, err, want)
			}
			if got, want := e.statuses(t, id), s.wantState; got != want {
				t.Errorf("%s: entitlements %q, want %q", s.name, got, want)
			}
			if got, want := e.products(t, id), s.wantClaim; got != want {
				t.Errorf("%s: claims products %q, want %q", s.name, got, want)
			}
			if got, want := e.events(t, id, "catalog.product_requested"), s.wantReq; got != want {
				t.Errorf("%s: product_requested events %d, want %d", s.name, got, want)
			}
			if got, want := e.events(t, id, "entitlement.granted"), s.wantGrant; got != want {
				t.Errorf("%s: granted events %d, want %d", s.name, got, want)
			}
		}
		list, err := e.svc.List(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := list[0].Note, "80 seats"; got != want {
			t.Errorf("note = %q, want %q", got, want)
		}
	})
}

func TestTrialExpiry(t *testing.T) {
	eachTenant(t, "initech", func(t *testing.T, ctx context.Context, e *env, id string) {
		if _, err := e.svc.Grant(ctx, id, "compliance"); err != nil {
			t.Fatal(err)
		}
		tr, err := e.svc.StartTrial(ctx, id, "certifai")
		if err != nil {
			t.Fatal(err)
		}
		end := t0.Add(14 * 24 * time.Hour)
		if got, want := string(tr.Status), "trial"; got != want {
			t.Errorf("status = %q, want %q", got, want)
		}
		if tr.TrialEndsAt == nil || !tr.TrialEndsAt.Equal(end) {
			t.Fatalf("trial_ends_at = %v, want exactly %v", tr.TrialEndsAt, end)
		}
		if got, want := e.events(t, id, "catalog.trial_started"), 1; got != want {
			t.Errorf("trial_started events = %d, want %d", got, want)
		}

		cases := []struct {
			name      string
			at        time.Time
			wantState string
			wantClaim string
		}{
			{"just started", t0, "certifai=trial,compliance=active", "certifai,compliance"},
			{"a microsecond before the end", end.Add(-time.Microsecond), "certifai=trial,compliance=active", "certifai,compliance"},
			{"at the end, not yet swept", end, "certifai=expired,compliance=active", "compliance"},
			{"after the end, not yet swept", end.Add(time.Hour), "certifai=expired,compliance=active", "compliance"},
		}
		for _, c := range cases {
			e.clock.Advance(c.at.Sub(e.clock.Now()))
			if got, want := e.statuses(t, id), c.wantState; got != want {
				t.Errorf("%s: entitlements %q, want %q", c.name, got, want)
			}
			if got, want := e.products(t, id), c.wantClaim; got != want {
				t.Errorf("%s: claims products %q, want %q", c.name, got, want)
			}
			tn, err := e.tenants.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := strings.Join(tn.Products, ","), c.wantClaim; got != want {
				t.Errorf("%s: tenant products %q, want %q", c.name, got, want)
			}
		}
		// Nothing was written yet: readers computed "expired" themselves.
		row, err := e.st.Client.TenantProduct.Query().Where(tenantproduct.Product("certifai")).Only(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(row.Status), "trial"; got != want {
			t.Errorf("stored status before the sweep = %q, want %q", got, want)
		}
		for i, want := range []int{1, 0} {
			n, err := e.svc.SweepExpired(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n != want {
				t.Errorf("sweep %d expired %d, want %d", i+1, n, want)
			}
		}
		row, err = e.st.Client.TenantProduct.Get(ctx, row.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(row.Status), "expired"; got != want {
			t.Errorf("stored status after the sweep = %q, want %q", got, want)
		}
		if got, want := e.events(t, id, "entitlement.expired"), 1; got != want {
			t.Errorf("entitlement.expired events = %d, want %d", got, want)
		}
		ev, err := e.st.Client.AuditLog.Query().Where(auditlog.Action("entitlement.expired")).Only(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ev.ActorType+"/"+ev.TargetName+"/"+ev.TargetID, "system/certifai/"+row.ID.String(); got != want {
			t.Errorf("expired event actor/target = %q, want %q", got, want)
		}
	})
}

func TestSecondTrialRefused(t *testing.T) {
	type op struct {
		name     string
		do       func(e *env, id string) error
		wantCode errs.Code
	}
	ctx := storetest.SystemContext()
	trial := op{"start trial", func(e *env, id string) error { return errOf(e.svc.StartTrial(ctx, id, "certifai")) }, ""}
	again := op{"start trial again", trial.do, errs.Precondition}
	grant := op{"grant", func(e *env, id string) error { return errOf(e.svc.Grant(ctx, id, "certifai")) }, ""}
	revoke := op{"revoke", func(e *env, id string) error { return e.svc.Revoke(ctx, id, "certifai") }, ""}
	request := op{"request", func(e *env, id string) error { return errOf(e.svc.Request(ctx, id, "certifai", "buy")) }, ""}
	expire := op{"expire", func(e *env, id string) error {
		e.clock.Advance(15 * 24 * time.Hour)
		_, err := e.svc.SweepExpired(ctx)
		return err
	}, ""}
	elapse := op{"let the trial end, unswept", func(e *env, id string) error { e.clock.Advance(14 * 24 * time.Hour); return nil }, ""}
	cases := []struct {
		name      string
		ops       []op
		wantState string
	}{
		{"while running", []op{trial, again}, "certifai=trial"},
		{"after it ended, unswept", []op{trial, elapse, again}, "certifai=expired"},
		{"after it expired", []op{trial, expire, again}, "certifai=expired"},
		{"after a revoke", []op{trial, revoke, again}, "certifai=expired"},
		{"after grant and revoke", []op{trial, grant, revoke, again}, "certifai=expired"},
		{"after expiry and a request", []op{trial, expire, request, again}, "certifai=requested"},
		{"while active", []op{grant, {"start trial", trial.do, errs.Precondition}}, "certifai=active"},
		{"from requested", []op{request, trial}, "certifai=trial"},
	}
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e := newEnv(t, st)
				id := e.newTenant(t, fmt.Sprintf("second-%d", i))
				for _, o := range c.ops {
					err := o.do(e, id)
					if got, want := codeOf(err), o.wantCode; got != want {
						t.Fatalf("%s: code %q (%v), want %q", o.name, got, err, want)
					}
					if o.wantCode == errs.Precondition && o.name == "start trial again" && !strings.Contains(err.Error(), "trial already used") {
						t.Errorf("%s: message %q, want it to say the trial was already used", o.name, err)
					}
				}
				if got, want := e.statuses(t, id), c.wantState; got != want {
					t.Errorf("entitlements %q, want %q", got, want)
				}
			})
		}
	})
}

func TestFrozenTenant(t *testing.T) {
	eachTenant(t, "frozen", func(t *testing.T, ctx context.Context, e *env, id string) {
		if _, err := e.svc.Request(ctx, id, "risk", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := e.tenants.Cancel(ctx, id); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name string
			do   func() error
		}{
			{"request new", func() error { return errOf(e.svc.Request(ctx, id, "certifai", "")) }},
			{"request again", func() error { return errOf(e.svc.Request(ctx, id, "risk", "note")) }},
			{"trial new", func() error { return errOf(e.svc.StartTrial(ctx, id, "certifai")) }},
			{"trial of requested", func() error { return errOf(e.svc.StartTrial(ctx, id, "risk")) }},
		}
		for _, c := range cases {
			err := c.do()
			if got, want := codeOf(err), errs.Precondition; got != want {
				t.Errorf("%s: code %q (%v), want %q", c.name, got, err, want)
			} else if !strings.Contains(err.Error(), "frozen") {
				t.Errorf("%s: message %q does not say the tenant is frozen", c.name, err)
			}
		}
		if got, want := e.statuses(t, id), "risk=requested"; got != want {
			t.Errorf("entitlements %q, want %q", got, want)
		}
		if got, want := e.events(t, id, "catalog.product_requested")+e.events(t, id, "catalog.trial_started"), 1; got != want {
			t.Errorf("request/trial events = %d, want %d", got, want)
		}
		c, err := e.tenants.Claims(ctx, "", "frozen")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.Status, "frozen"; got != want {
			t.Errorf("claims status = %q, want %q", got, want)
		}
	})
}

func TestBadInput(t *testing.T) {
	eachTenant(t, "input", func(t *testing.T, ctx context.Context, e *env, id string) {
		const unknown = "00000000-0000-0000-0000-00000000ffff"
		cases := []struct {
			name      string
			do        func() error
			wantCode  errs.Code
			wantField string // message prefix, for Invalid
		}{
			{"request unknown product", func() error { return errOf(e.svc.Request(ctx, id, "nope", "")) }, errs.Invalid, "product:"},
			{"request empty product", func() error { return errOf(e.svc.Request(ctx, id, "", "")) }, errs.Invalid, "product:"},
			{"request long note", func() error { return errOf(e.svc.Request(ctx, id, "risk", strings.Repeat("n", 2001))) }, errs.Invalid, "note:"},
			{"trial unknown product", func() error { return errOf(e.svc.StartTrial(ctx, id, "nope")) }, errs.Invalid, "product:"},
			{"trial of a product without one", func() error { return errOf(e.svc.StartTrial(ctx, id, "privacy")) }, errs.Precondition, "product:"},
			{"grant unknown product", func() error { return errOf(e.svc.Grant(ctx, id, "nope")) }, errs.Invalid, "product:"},
			{"revoke what it does not have", func() error { return e.svc.Revoke(ctx, id, "risk") }, errs.NotFound, "product:"},
			{"bad tenant id", func() error { return errOf(e.svc.List(ctx, "nope")) }, errs.Invalid, "tenant_id:"},
			{"no tenant id", func() error { return errOf(e.svc.Request(ctx, "", "risk", "")) }, errs.Invalid, "tenant_id:"},
			{"list unknown tenant", func() error { return errOf(e.svc.List(ctx, unknown)) }, errs.NotFound, ""},
			{"request unknown tenant", func() error { return errOf(e.svc.Request(ctx, unknown, "risk", "")) }, errs.NotFound, ""},
			{"trial unknown tenant", func() error { return errOf(e.svc.StartTrial(ctx, unknown, "risk")) }, errs.NotFound, ""},
			{"grant unknown tenant", func() error { return errOf(e.svc.Grant(ctx, unknown, "risk")) }, errs.NotFound, ""},
			{"revoke unknown tenant", func() error { return e.svc.Revoke(ctx, unknown, "risk") }, errs.NotFound, ""},
			{"claims unknown id", func() error { return errOf(e.tenants.Claims(ctx, unknown, "")) }, errs.NotFound, ""},
			{"claims unknown slug", func() error { return errOf(e.tenants.Claims(ctx, "", "nobody")) }, errs.NotFound, ""},
			{"claims bad slug", func() error { return errOf(e.tenants.Claims(ctx, "", "No Body")) }, errs.Invalid, "slug:"},
			{"claims neither", func() error { return errOf(e.tenants.Claims(ctx, "", "")) }, errs.Invalid, "tenant_id:"},
			{"claims both", func() error { return errOf(e.tenants.Claims(ctx, id, "input")) }, errs.Invalid, "tenant_id:"},
		}
		for _, c := range cases {
			err := c.do()
			if got, want := codeOf(err), c.wantCode; got != want {
				t.Errorf("%s: code %q (%v), want %q", c.name, got, err, want)
				continue
			}
			if !strings.HasPrefix(err.Error(), c.wantField) {
				t.Errorf("%s: message %q, want it to start with %q", c.name, err, c.wantField)
			}
		}
		if n, _ := e.st.Client.TenantProduct.Query().Count(ctx); n != 0 {
			t.Errorf("entitlements after bad input = %d, want 0", n)
		}
	})
}

func TestRevoke(t *testing.T) {
	eachTenant(t, "revoke", func(t *testing.T, ctx context.Context, e *env, id string) {
		if _, err := e.svc.Request(ctx, id, "risk", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Grant(ctx, id, "privacy"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.StartTrial(ctx, id, "certifai"); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"risk", "privacy", "certifai", "certifai"} {
			if err := e.svc.Revoke(ctx, id, p); err != nil {
				t.Fatalf("revoke %s: %v", p, err)
			}
		}
		// A declined request and a plain grant leave nothing; a used trial
		// stays, expired. The second revoke of certifai changed nothing.
		if got, want := e.statuses(t, id), "certifai=expired"; got != want {
			t.Errorf("entitlements %q, want %q", got, want)
		}
		if got, want := e.events(t, id, "entitlement.revoked"), 3; got != want {
			t.Errorf("revoked events = %d, want %d", got, want)
		}
	})
}

func TestConcurrentRequestsAndTrials(t *testing.T) {
	eachTenant(t, "racer", func(t *testing.T, ctx context.Context, e *env, id string) {
		const n = 12
		reqErrs, trialErrs := make([]error, n), make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { _, reqErrs[i] = e.svc.Request(ctx, id, "risk", "same note") })
			wg.Go(func() { _, trialErrs[i] = e.svc.StartTrial(ctx, id, "certifai") })
		}
		wg.Wait()
		trials := 0
		for i := range n {
			if reqErrs[i] != nil {
				t.Errorf("request %d: %v", i, reqErrs[i])
			}
			switch codeOf(trialErrs[i]) {
			case "":
				trials++
			case errs.Precondition:
			default:
				t.Errorf("trial %d: %v", i, trialErrs[i])
			}
		}
		if got, want := trials, 1; got != want {
			t.Errorf("successful trials = %d, want %d", got, want)
		}
		if got, want := e.statuses(t, id), "certifai=trial,risk=requested"; got != want {
			t.Errorf("entitlements %q, want %q", got, want)
		}
		got := []int{e.events(t, id, "catalog.product_requested"), e.events(t, id, "catalog.trial_started")}
		if want := []int{1, 1}; got[0] != want[0] || got[1] != want[1] {
			t.Errorf("product_requested, trial_started events = %v, want %v", got, want)
		}
	})
}

func TestConcurrentSweepers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		e := newEnv(t, st)
		var ids []string
		for i := range 4 {
			id := e.newTenant(t, fmt.Sprintf("sweep-%d", i))
			ids = append(ids, id)
			for _, p := range []string{"certifai", "compliance", "risk"} {
				if _, err := e.svc.StartTrial(ctx, id, p); err != nil {
					t.Fatal(err)
				}
			}
		}
		const trials = 4 * 3
		e.clock.Advance(14 * 24 * time.Hour)
		const sweepers = 4
		counts, errs := make([]int, sweepers), make([]error, sweepers)
		var wg sync.WaitGroup
		for i := range sweepers {
			wg.Go(func() { counts[i], errs[i] = e.svc.SweepExpired(ctx) })
		}
		wg.Wait()
		total := 0
		for i := range sweepers {
			if errs[i] != nil {
				t.Errorf("sweeper %d: %v", i, errs[i])
			}
			total += counts[i]
		}
		if got, want := total, trials; got != want {
			t.Errorf("trials expired by all sweepers = %d (%v), want %d", got, counts, want)
		}
		events, err := st.Client.AuditLog.Query().Where(auditlog.Action("entitlement.expired")).All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		perTarget := map[string]int{}
		for _, ev := range events {
			perTarget[ev.TargetID]++
		}
		if got, want := len(events), trials; got != want {
			t.Errorf("entitlement.expired events = %d, want %d", got, want)
		}
		for target, n := range perTarget {
			if n != 1 {
				t.Errorf("trial %s has %d entitlement.expired events, want 1", target, n)
			}
		}
		stillTrial, _ := st.Client.TenantProduct.Query().Where(tenantproduct.StatusEQ(tenantproduct.StatusTrial)).Count(ctx)
		if stillTrial != 0 {
			t.Errorf("%d trials left unswept", stillTrial)
		}
		for _, id := range ids {
			if got, want := e.products(t, id), ""; got != want {
				t.Errorf("claims products %q, want none", got)
			}
		}
	})
}

// TestExpireTrialsJob: the sweeper's job, run by the worker loop as
// app.Run runs it, expires an ended trial at once and stops with its
// context.
func TestExpireTrialsJob(t *testing.T) {
	st := storetest.SQLite(t)
	e := newEnv(t, st)
	id := e.newTenant(t, "loop")
	if _, err := e.svc.StartTrial(storetest.SystemContext(), id, "certifai"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(15 * 24 * time.Hour)
	ctx, cancel := context.WithCancel(storetest.SystemContext())
	done := make(chan struct{})
	go func() {
		worker.Run(ctx, slog.New(slog.DiscardHandler), worker.Job{Name: "trial expiry sweep", Every: time.Hour, Run: e.svc.ExpireTrials})
		close(done)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for e.events(t, id, "entitlement.expired") == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the sweeper did not stop with its context")
	}
	if got, want := e.events(t, id, "entitlement.expired"), 1; got != want {
		t.Errorf("entitlement.expired events = %d, want %d", got, want)
	}
}

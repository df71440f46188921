package audit_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/auditlog"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// admin is a platform admin's context.
var admin = principal.With(storetest.SystemContext(), principal.Principal{
	Subject: "admin-1", Type: principal.ActorUser, Roles: []string{principal.RolePlatformAdmin},
})

func tenantCaller(tenantID string, roles ...string) context.Context {
	return principal.With(storetest.SystemContext(), principal.Principal{
		Subject: "user-" + tenantID[:4], Type: principal.ActorUser, TenantID: tenantID, Roles: roles,
	})
}

// eachFixture runs fn on each store (see storetest.Each) with a fresh
// fixture keeping events retentionDays (0: for ever).
func eachFixture(t *testing.T, retentionDays int, fn func(t *testing.T, f *fixture)) {
	t.Helper()
	storetest.Each(t, func(t *testing.T, st *store.Store) { fn(t, newFixture(t, st, retentionDays)) })
}

// serviceCaller is the context of an internal service named subject.
func serviceCaller(subject string) context.Context {
	return principal.With(storetest.SystemContext(), principal.Principal{Subject: subject, Type: principal.ActorService, Roles: []string{principal.RoleInternal}})
}

type fixture struct {
	st    *store.Store
	clock *storetest.Clock
	svc   *audit.Service
}

func newFixture(t testing.TB, st *store.Store, retentionDays int) *fixture {
	t.Helper()
	clock := storetest.NewClock(t0)
	rec := storetest.Recorder(clock.Now, st.Postgres())
	return &fixture{st: st, clock: clock, svc: storetest.Must(audit.NewService(audit.Deps{Client: st.Client, Recorder: rec, Clock: clock.Now, Pager: storetest.Pager(t), RetentionDays: retentionDays}))}
}

// tenant creates a tenant directly (no event of its own).
func (f *fixture) tenant(t testing.TB, slug string) string {
	t.Helper()
	tn, err := f.st.Client.Tenant.Create().SetID(uuid.New()).SetSlug(slug).SetName(strings.ToUpper(slug)).
		SetCreatedAt(f.clock.Now()).SetUpdatedAt(f.clock.Now()).Save(storetest.SystemContext())
	if err != nil {
		t.Fatal(err)
	}
	return tn.ID.String()
}

func validInput(tenantID string) audit.AppendInput {
	return audit.AppendInput{
		TenantID:    tenantID,
		Action:      "document.signed",
		CRUD:        "u",
		Actor:       audit.Actor{ID: "user-42", Name: "Ada", Type: "user"},
		Target:      audit.Target{ID: "doc-1", Name: "Contract", Type: "document"},
		Description: "Ada signed the contract",
		Fields:      map[string]string{"version": "3"},
		SourceIP:    "203.0.113.7",
	}
}

func (f *fixture) append(t testing.TB, ctx context.Context, in audit.AppendInput) *audit.Event {
	t.Helper()
	row, err := f.svc.Append(ctx, in)
	if err != nil {
		t.Fatalf("Append(%s): %v", in.Action, err)
	}
	return row
}

func (f *fixture) count(t testing.TB) int {
	t.Helper()
	n, err := f.st.Client.AuditLog.Query().Count(storetest.SystemContext())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// appendN appends n valid events to tenantID as admin and returns them,
// in order.
func (f *fixture) appendN(t testing.TB, tenantID string, n int) []*audit.Event {
	t.Helper()
	var out []*audit.Event
	for range n {
		out = append(out, f.append(t, admin, validInput(tenantID)))
	}
	return out
}

// exec runs raw SQL (tampering "from outside the service").
func (f *fixture) exec(t testing.TB, q string) {
	t.Helper()
	res, err := f.st.DB.ExecContext(storetest.SystemContext(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s: %d rows affected, want 1", q, n)
	}
}

// rewrite edits an event the only way the database still allows: delete it
// and insert a changed copy (set is the SET clause of an UPDATE of the copy),
// in one transaction, the way someone with write access would tamper.
func (f *fixture) rewrite(t testing.TB, id uuid.UUID, set string) {
	t.Helper()
	f.execInTx(t,
		fmt.Sprintf("CREATE TEMP TABLE tampered AS SELECT * FROM audit_log WHERE id = '%s'", id),
		fmt.Sprintf("DELETE FROM audit_log WHERE id = '%s'", id),
		"UPDATE tampered SET "+set,
		"INSERT INTO audit_log SELECT * FROM tampered",
		"DROP TABLE tampered",
	)
}

// execInTx runs the statements qs, in order, in one transaction on the raw
// database (from outside the service) and commits it.
func (f *fixture) execInTx(t testing.TB, qs ...string) {
	t.Helper()
	ctx := storetest.SystemContext()
	tx, err := f.st.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, q := range qs {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestAppendValidation(t *testing.T) {
	eachFixture(t, 0, func(t *testing.T, f *fixture) {
		tid := f.tenant(t, "acme")
		other := f.tenant(t, "globex")
		many := map[string]string{}
		for i := range audit.MaxFields + 1 {
			many[fmt.Sprintf("k%d", i)] = "v"
		}
		tests := []struct {
			name      string
			ctx       context.Context
			mutate    func(in *audit.AppendInput)
			wantCode  errs.Code
			wantField string // the message starts with "<field>:"
		}{
			{"action missing", admin, func(in *audit.AppendInput) { in.Action = "" }, errs.Invalid, "action"},
			{"action one segment", admin, func(in *audit.AppendInput) { in.Action = "signed" }, errs.Invalid, "action"},
			{"action upper case", admin, func(in *audit.AppendInput) { in.Action = "Document.signed" }, errs.Invalid, "action"},
			{"action empty segment", admin, func(in *audit.AppendInput) { in.Action = "document..signed" }, errs.Invalid, "action"},
			{"action trailing dot", admin, func(in *audit.AppendInput) { in.Action = "document." }, errs.Invalid, "action"},
			{"action space", admin, func(in *audit.AppendInput) { in.Action = "document.si gned" }, errs.Invalid, "action"},
			{"action too short", admin, func(in *audit.AppendInput) { in.Action = "a." }, errs.Invalid, "action"},
			{"action too long", admin, func(in *audit.AppendInput) { in.Action = "a." + strings.Repeat("b", 127) }, errs.Invalid, "action"},
			{"crud missing", admin, func(in *audit.AppendInput) { in.CRUD = "" }, errs.Invalid, "crud"},
			{"crud unknown", admin, func(in *audit.AppendInput) { in.CRUD = "x" }, errs.Invalid, "crud"},
			{"crud two letters", admin, func(in *audit.AppendInput) { in.CRUD = "cu" }, errs.Invalid, "crud"},
			{"actor id missing", admin, func(in *audit.AppendInput) { in.Actor.ID = "" }, errs.Invalid, "actor.id"},
			{"actor id too long", admin, func(in *audit.AppendInput) { in.Actor.ID = strings.Repeat("a", 256) }, errs.Invalid, "actor.id"},
			{"actor id control char", admin, func(in *audit.AppendInput) { in.Actor.ID = "a\nb" }, errs.Invalid, "actor.id"},
			{"actor name too long", admin, func(in *audit.AppendInput) { in.Actor.Name = strings.Repeat("é", 256) }, errs.Invalid, "actor.name"},
			{"actor type unknown", admin, func(in *audit.AppendInput) { in.Actor.Type = "robot" }, errs.Invalid, "actor.type"},
			{"target id too long", admin, func(in *audit.AppendInput) { in.Target.ID = strings.Repeat("t", 256) }, errs.Invalid, "target.id"},
			{"target name too long", admin, func(in *audit.AppendInput) { in.Target.Name = strings.Repeat("t", 256) }, errs.Invalid, "target.name"},
			{"target type too long", admin, func(in *audit.AppendInput) { in.Target.Type = strings.Repeat("t", 65) }, errs.Invalid, "target.type"},
			{"description too long", admin, func(in *audit.AppendInput) { in.Description = strings.Repeat("d", 2001) }, errs.Invalid, "description"},
			{"description NUL", admin, func(in *audit.AppendInput) { in.Description = "a\x00b" }, errs.Invalid, "description"},
			{"too many fields", admin, func(in *audit.AppendInput) { in.Fields = many }, errs.Invalid, "fields"},
			{"field key empty", admin, func(in *audit.AppendInput) { in.Fields = map[string]string{"": "v"} }, errs.Invalid, "fields"},
			{"field key bad char", admin, func(in *audit.AppendInput) { in.Fields = map[string]string{"a b": "v"} }, errs.Invalid, "fields"},
			{"field key too long", admin, func(in *audit.AppendInput) { in.Fields = map[string]string{strings.Repeat("k", 65): "v"} }, errs.Invalid, "fields"},
			{"field value too long", admin, func(in *audit.AppendInput) { in.Fields = map[string]string{"k": strings.Repeat("v", 1025)} }, errs.Invalid, "fields.k"},
			{"source ip bad", admin, func(in *audit.AppendInput) { in.SourceIP = "1.2.3" }, errs.Invalid, "source_ip"},
			{"source ip with zone", admin, func(in *audit.AppendInput) { in.SourceIP = "fe80::1%eth0" }, errs.Invalid, "source_ip"},
			{"source ip hostname", admin, func(in *audit.AppendInput) { in.SourceIP = "example.com" }, errs.Invalid, "source_ip"},
			{"idempotency key too long", admin, func(in *audit.AppendInput) { in.IdempotencyKey = strings.Repeat("i", 129) }, errs.Invalid, "idempotency_key"},
			{"idempotency key space", admin, func(in *audit.AppendInput) { in.IdempotencyKey = "a b" }, errs.Invalid, "idempotency_key"},
			{"tenant id not a uuid", admin, func(in *audit.AppendInput) { in.TenantID = "acme" }, errs.Invalid, "tenant_id"},
			{"tenant id missing for an admin", admin, func(in *audit.AppendInput) { in.TenantID = "" }, errs.Invalid, "tenant_id"},
			{"unknown tenant", admin, func(in *audit.AppendInput) { in.TenantID = uuid.NewString() }, errs.NotFound, ""},
			{"tenant caller names another tenant", tenantCaller(tid), func(in *audit.AppendInput) { in.TenantID = other }, errs.NotFound, ""},
			// Who may append at all is auth.Rules' decision; a caller
			// that got past it without a tenant of its own still sees no
			// tenant's log.
			{"caller without tenant or role", principal.With(storetest.SystemContext(), principal.Principal{Subject: "x", Type: principal.ActorUser}),
				func(in *audit.AppendInput) {}, errs.NotFound, ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				in := validInput(tid)
				tc.mutate(&in)
				_, err := f.svc.Append(tc.ctx, in)
				if got := errs.CodeOf(err); got != tc.wantCode {
					t.Fatalf("code = %q (%v), want %q", got, err, tc.wantCode)
				}
				if tc.wantField != "" && !strings.HasPrefix(errs.MessageOf(err), tc.wantField+":") {
					t.Errorf("message = %q, want it to start with %q", errs.MessageOf(err), tc.wantField+":")
				}
			})
		}
		if got := f.count(t); got != 0 {
			t.Fatalf("%d events written by rejected appends, want 0", got)
		}

		// The valid input, by an admin and by a tenant caller (its own
		// tenant by default), with the actor type defaulting to user.
		in := validInput(tid)
		in.Actor.Type = ""
		row := f.append(t, admin, in)
		if row.ActorType != "user" || row.GroupID != tid || row.GroupName != "ACME" || row.SourceIP != "203.0.113.7" || row.ChainSeq != 1 {
			t.Errorf("stored %+v", row)
		}
		in.TenantID = ""
		row = f.append(t, tenantCaller(tid), in)
		if row.GroupID != tid || row.ChainSeq != 2 {
			t.Errorf("tenant caller's event: group %q seq %d, want %q 2", row.GroupID, row.ChainSeq, tid)
		}
		service := serviceCaller("svc")
		in.TenantID, in.SourceIP = other, ""
		row = f.append(t, service, in)
		if row.GroupID != other || row.SourceIP != "" {
			t.Errorf("service's event: group %q source_ip %q, want %q and none", row.GroupID, row.SourceIP, other)
		}
	})
}

func TestAppendIdempotent(t *testing.T) {
	eachFixture(t, 0, func(t *testing.T, f *fixture) {
		tid := f.tenant(t, "acme")
		in := validInput(tid)
		in.IdempotencyKey = "req-1"
		first := f.append(t, admin, in)
		f.clock.Advance(time.Second)
		// The same content again: the stored event, nothing new.
		again := f.append(t, admin, in)
		if again.ID != first.ID || !again.CreatedAt.Equal(first.CreatedAt) {
			t.Errorf("second append returned %v at %v, want the first event %v at %v", again.ID, again.CreatedAt, first.ID, first.CreatedAt)
		}
		// The same key with other content is a conflict naming what differs.
		for _, tc := range []struct {
			field  string
			mutate func(in *audit.AppendInput)
		}{
			{"description", func(in *audit.AppendInput) { in.Description = "a retry" }},
			{"action", func(in *audit.AppendInput) { in.Action = "document.deleted" }},
			{"actor.id", func(in *audit.AppendInput) { in.Actor.ID = "user-43" }},
			{"fields", func(in *audit.AppendInput) { in.Fields = map[string]string{"version": "4"} }},
			{"fields", func(in *audit.AppendInput) { in.Fields = nil }},
			{"is_failure", func(in *audit.AppendInput) { in.IsFailure = true }},
			{"source_ip", func(in *audit.AppendInput) { in.SourceIP = "" }},
		} {
			changed := in
			tc.mutate(&changed)
			_, err := f.svc.Append(admin, changed)
			if errs.CodeOf(err) != errs.Conflict || !strings.Contains(errs.MessageOf(err), `idempotency_key: "req-1" was already used for a different event (`+tc.field+" differs") {
				t.Errorf("same key, other %s: %v, want a conflict naming %s", tc.field, err, tc.field)
			}
		}
		// The same key in another group is another event.
		other := f.tenant(t, "globex")
		in.TenantID = other
		if row := f.append(t, admin, in); row.ID == first.ID {
			t.Error("the same key in another tenant returned the first tenant's event")
		}

		in.TenantID, in.IdempotencyKey = tid, "req-2"
		const n = 10
		ids := make([]uuid.UUID, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				row, err := f.svc.Append(admin, in)
				errs[i] = err
				if err == nil {
					ids[i] = row.ID
				}
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("concurrent append %d: %v", i, errs[i])
			}
			if ids[i] != ids[0] {
				t.Errorf("concurrent append %d returned %v, want %v", i, ids[i], ids[0])
			}
		}
		got, err := f.st.Client.AuditLog.Query().Where(auditlog.GroupID(tid)).Count(storetest.SystemContext())
		if err != nil {
			t.Fatal(err)
		}
		if got != 2 {
			t.Errorf("tenant has %d events, want 2 (one per key)", got)
		}
		if res, err := f.svc.VerifyChain(admin, tid); err != nil || !res.OK || res.EventsChecked != 2 {
			t.Errorf("VerifyChain = %+v, %v; want ok with 2 events", res, err)
		}
	})
}

// TestIdempotencyKeyPerAppender: a key is its appender's own. An IT_ADMIN
// using a key first does not make a service's event with the same key
// vanish (issue 11), and vice versa.
func TestIdempotencyKeyPerAppender(t *testing.T) {
	eachFixture(t, 0, func(t *testing.T, f *fixture) {
		tid := f.tenant(t, "acme")
		itAdmin := tenantCaller(tid, principal.RoleITAdmin)
		service := serviceCaller("svc-billing")
		otherService := serviceCaller("svc-crm")

		byAdmin := validInput("")
		byAdmin.IdempotencyKey = "idem-1"
		adminRow := f.append(t, itAdmin, byAdmin)

		bySvc := validInput(tid)
		bySvc.IdempotencyKey = "idem-1"
		bySvc.Actor = audit.Actor{ID: "billing", Type: "service"}
		bySvc.Description = "invoice sent"
		svcRow := f.append(t, service, bySvc)
		if svcRow.ID == adminRow.ID {
			t.Fatal("the service's event vanished behind the IT_ADMIN's event with the same key")
		}
		if again := f.append(t, service, bySvc); again.ID != svcRow.ID {
			t.Errorf("the service's retry: event %v, want its own %v", again.ID, svcRow.ID)
		}
		if again := f.append(t, itAdmin, byAdmin); again.ID != adminRow.ID {
			t.Errorf("the IT_ADMIN's retry: event %v, want its own %v", again.ID, adminRow.ID)
		}
		crmRow := f.append(t, otherService, bySvc)
		if crmRow.ID == svcRow.ID {
			t.Error("another service's append with the same key answered the first service's event")
		}
		want := []struct {
			row             *audit.Event
			id, typ, tenant string
		}{
			{adminRow, "user-" + tid[:4], "user", tid},
			{svcRow, "svc-billing", "service", ""},
			{crmRow, "svc-crm", "service", ""},
		}
		for _, w := range want {
			if w.row.AppendedByID != w.id || w.row.AppendedByType != w.typ || w.row.AppendedByTenant != w.tenant || w.row.HashVersion != 2 {
				t.Errorf("event %v appended by %q/%q/%q v%d, want %q/%q/%q v2", w.row.ID,
					w.row.AppendedByID, w.row.AppendedByType, w.row.AppendedByTenant, w.row.HashVersion, w.id, w.typ, w.tenant)
			}
		}
		if n := f.count(t); n != 3 {
			t.Errorf("%d events, want 3", n)
		}
	})
}

// TestTenantCallerActorType: a tenant's users (IT_ADMIN) append user actors
// only; services and platform admins may state any actor type.
func TestTenantCallerActorType(t *testing.T) {
	eachFixture(t, 0, func(t *testing.T, f *fixture) {
		tid := f.tenant(t, "acme")
		itAdmin := tenantCaller(tid, principal.RoleITAdmin)
		service := serviceCaller("svc")
		tests := []struct {
			name      string
			ctx       context.Context
			actorType string
			wantCode  errs.Code // "" = stored
		}{
			{"IT_ADMIN, user", itAdmin, "user", ""},
			{"IT_ADMIN, default (user)", itAdmin, "", ""},
			{"IT_ADMIN, service", itAdmin, "service", errs.Forbidden},
			{"IT_ADMIN, system", itAdmin, "system", errs.Forbidden},
			{"service, service", service, "service", ""},
			{"service, system", service, "system", ""},
			{"platform admin, system", admin, "system", ""},
		}
		stored := 0
		for _, tc := range tests {
			in := validInput(tid)
			in.Actor.Type = tc.actorType
			_, err := f.svc.Append(tc.ctx, in)
			if got := errs.CodeOf(err); got != tc.wantCode {
				t.Errorf("%s: code %q (%v), want %q", tc.name, got, err, tc.wantCode)
			}
			if tc.wantCode == errs.Forbidden && !strings.HasPrefix(errs.MessageOf(err), "actor.type:") {
				t.Errorf("%s: message %q, want it to name actor.type", tc.name, errs.MessageOf(err))
			}
			if tc.wantCode == "" {
				stored++
			}
		}
		if n := f.count(t); n != stored {
			t.Errorf("%d events stored, want %d", n, stored)
		}
	})
}

// TestTenantIDAnyCase: any spelling of a tenant id names the same tenant in
// every audit call; an upper-case id with a taken idempotency key is the
// stored event, not an internal error (issue 11).
func TestTenantIDAnyCase(t *testing.T) {
	eachFixture(t, 0, func(t *testing.T, f *fixture) {
		tid := f.tenant(t, "acme")
		upper := strings.ToUpper(tid)
		if upper == tid {
			t.Fatal("the tenant id has no letters; the test tests nothing")
		}
		in := validInput(tid)
		in.IdempotencyKey = "k-1"
		first := f.append(t, admin, in)
		in.TenantID = upper
		again, err := f.svc.Append(admin, in)
		if err != nil || again.ID != first.ID {
			t.Fatalf("upper-case tenant id with a taken key: %v, %v; want the stored event %v", again, err, first.ID)
		}
		in.IdempotencyKey = ""
		second := f.append(t, admin, in)
		if second.GroupID != tid || second.TenantID == nil || second.TenantID.String() != tid || second.ChainSeq != 2 {
			t.Errorf("upper-case append stored group %q tenant %v seq %d, want %q and 2", second.GroupID, second.TenantID, second.ChainSeq, tid)
		}
		itAdmin := tenantCaller(tid, principal.RoleITAdmin)
		for _, ctx := range []context.Context{admin, itAdmin} {
			rows, _, err := f.svc.List(ctx, audit.ListInput{TenantID: upper})
			if err != nil || len(rows) != 2 {
				t.Errorf("List(upper): %d events, %v; want 2", len(rows), err)
			}
			n := 0
			if err := f.svc.Export(ctx, audit.ExportInput{TenantID: upper}, func(*audit.Event) error { n++; return nil }); err != nil || n != 2 {
				t.Errorf("Export(upper): %d events, %v; want 2", n, err)
			}
			res, err := f.svc.VerifyChain(ctx, upper)
			if err != nil || !res.OK || res.EventsChecked != 2 || res.TenantID != tid {
				t.Errorf("VerifyChain(upper) = %+v, %v; want ok with 2 events of %s", res, err, tid)
			}
		}
		// A tampered chain is broken in every spelling.
		f.rewrite(t, first.ID, "description = 'x'")
		for _, id := range []string{tid, upper} {
			res, err := f.svc.VerifyChain(admin, id)
			if err != nil || res.OK || res.FirstBrokenEventID != first.ID.String() {
				t.Errorf("VerifyChain(%s) of a tampered chain = %+v, %v; want broken at %s", id, res, err, first.ID)
			}
		}
	})
}

// TestVerifyEmpty: a tenant without events says so; an unknown id is not
// found.
func TestVerifyEmpty(t *testing.T) {
	eachFixture(t, 0, func(t *testing.T, f *fixture) {
		tid := f.tenant(t, "acme")
		res, err := f.svc.VerifyChain(admin, strings.ToUpper(tid))
		if want := (audit.VerifyResult{TenantID: tid, OK: true, Empty: true}); err != nil || res != want {
			t.Errorf("VerifyChain(empty) = %+v, %v; want %+v", res, err, want)
		}
		f.append(t, admin, validInput(tid))
		res, err = f.svc.VerifyChain(admin, tid)
		if want := (audit.VerifyResult{TenantID: tid, OK: true, EventsChecked: 1}); err != nil || res != want {
			t.Errorf("VerifyChain(one event) = %+v, %v; want %+v", res, err, want)
		}
		if _, err := f.svc.VerifyChain(admin, uuid.NewString()); errs.CodeOf(err) != errs.NotFound {
			t.Errorf("VerifyChain(unknown) = %v, want not found", err)
		}
	})
}

// seed appends a mix of events to two tenants, several sharing a
// created_at, and returns them.
func seed(t *testing.T, f *fixture, a, b string) []*audit.Event {
	t.Helper()
	actions := []string{"tenant.created", "tenant.activated", "api_key.created", "api_key.revoked", "document.signed", "tenant.cancelled"}
	cruds := []string{"c", "u", "c", "d", "r", "u"}
	var all []*audit.Event
	for i := range 45 {
		in := validInput(a)
		if i%5 == 4 {
			in.TenantID = b
		}
		in.Action, in.CRUD = actions[i%len(actions)], cruds[i%len(cruds)]
		in.Actor.ID = fmt.Sprintf("user-%d", i%3)
		in.Target = audit.Target{ID: fmt.Sprintf("obj-%d", i%4), Type: []string{"tenant", "api_key"}[i%2]}
		all = append(all, f.append(t, admin, in))
		if i%3 == 2 { // three events per created_at
			f.clock.Advance(1500 * time.Millisecond)
		}
	}
	return all
}

// newestFirst sorts events as ListEvents returns them.
func newestFirst(rows []*audit.Event) []string {
	rows = slices.Clone(rows)
	slices.SortFunc(rows, func(x, y *audit.Event) int {
		if c := y.CreatedAt.Compare(x.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(y.ID.String(), x.ID.String())
	})
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID.String()
	}
	return ids
}

func walk(t *testing.T, f *fixture, ctx context.Context, in audit.ListInput) []string {
	t.Helper()
	var ids []string
	for pages := 0; ; pages++ {
		rows, next, err := f.svc.List(ctx, in)
		if err != nil {
			t.Fatalf("List(%+v): %v", in, err)
		}
		if len(rows) > int(in.PageSize) && in.PageSize > 0 {
			t.Fatalf("page of %d, want at most %d", len(rows), in.PageSize)
		}
		for _, r := range rows {
			ids = append(ids, r.ID.String())
		}
		if next == "" {
			return ids
		}
		if pages > 1000 {
			t.Fatal("no end of pages")
		}
		in.Cursor = next
	}
}

func TestListPaging(t *testing.T) {
	eachFixture(t, 0, func(t *testing.T, f *fixture) {
		a, b := f.tenant(t, "acme"), f.tenant(t, "globex")
		all := seed(t, f, a, b)
		ofA := slices.DeleteFunc(slices.Clone(all), func(r *audit.Event) bool { return r.GroupID != a })
		for _, size := range []int32{1, 7, 500} {
			for _, tc := range []struct {
				name string
				in   audit.ListInput
				want []string
			}{
				{"all tenants", audit.ListInput{}, newestFirst(all)},
				{"tenant a", audit.ListInput{TenantID: a}, newestFirst(ofA)},
			} {
				tc.in.PageSize = size
				got := walk(t, f, admin, tc.in)
				if !slices.Equal(got, tc.want) {
					t.Errorf("size %d, %s: got %d events %v, want %d %v", size, tc.name, len(got), got, len(tc.want), tc.want)
				}
			}
		}

		// The default page is 50; the maximum 500.
		if rows, next, err := f.svc.List(admin, audit.ListInput{}); err != nil || len(rows) != 45 || next != "" {
			t.Errorf("default page: %d rows, next %q, %v; want 45 and no cursor", len(rows), next, err)
		}
		if _, _, err := f.svc.List(admin, audit.ListInput{PageSize: -1}); errs.CodeOf(err) != errs.Invalid {
			t.Errorf("page_size -1: %v, want invalid", err)
		}

		mid := all[20].CreatedAt
		filters := []struct {
			name string
			in   audit.ListInput
			keep func(r *audit.Event) bool
		}{
			{"tenant", audit.ListInput{TenantID: b}, func(r *audit.Event) bool { return r.GroupID == b }},
			{"action exact", audit.ListInput{Action: "tenant.created"}, func(r *audit.Event) bool { return r.Action == "tenant.created" }},
			{"action prefix", audit.ListInput{Action: "tenant.*"}, func(r *audit.Event) bool { return strings.HasPrefix(r.Action, "tenant.") }},
			{"action prefix with _", audit.ListInput{Action: "api_key.*"}, func(r *audit.Event) bool { return strings.HasPrefix(r.Action, "api_key.") }},
			{"actor", audit.ListInput{ActorID: "user-1"}, func(r *audit.Event) bool { return r.ActorID == "user-1" }},
			{"target id", audit.ListInput{TargetID: "obj-2"}, func(r *audit.Event) bool { return r.TargetID == "obj-2" }},
			{"target type", audit.ListInput{TargetType: "api_key"}, func(r *audit.Event) bool { return r.TargetType == "api_key" }},
			{"crud", audit.ListInput{CRUD: "d"}, func(r *audit.Event) bool { return r.Crud == "d" }},
			{"created after (inclusive)", audit.ListInput{CreatedAfter: mid}, func(r *audit.Event) bool { return !r.CreatedAt.Before(mid) }},
			{"created before (exclusive)", audit.ListInput{CreatedBefore: mid}, func(r *audit.Event) bool { return r.CreatedAt.Before(mid) }},
			{"time range", audit.ListInput{CreatedAfter: all[5].CreatedAt, CreatedBefore: mid},
				func(r *audit.Event) bool { return !r.CreatedAt.Before(all[5].CreatedAt) && r.CreatedAt.Before(mid) }},
			{"tenant and action prefix and crud", audit.ListInput{TenantID: a, Action: "tenant.*", CRUD: "u"},
				func(r *audit.Event) bool {
					return r.GroupID == a && strings.HasPrefix(r.Action, "tenant.") && r.Crud == "u"
				}},
			{"no match", audit.ListInput{Action: "nothing.here"}, func(r *audit.Event) bool { return false }},
		}
		for _, tc := range filters {
			want := newestFirst(slices.DeleteFunc(slices.Clone(all), func(r *audit.Event) bool { return !tc.keep(r) }))
			tc.in.PageSize = 4
			if got := walk(t, f, admin, tc.in); !slices.Equal(got, want) {
				t.Errorf("%s: got %d events, want %d\ngot  %v\nwant %v", tc.name, len(got), len(want), got, want)
			}
			if tc.name != "no match" && len(want) == 0 {
				t.Errorf("%s: the seed has no matching events; the case tests nothing", tc.name)
			}
		}

		// Bad filters and cursors.
		_, next, err := f.svc.List(admin, audit.ListInput{TenantID: a, PageSize: 2})
		if err != nil || next == "" {
			t.Fatalf("first page: %v, next %q", err, next)
		}
		flip := []byte(next)
		flip[len(flip)/2] ^= 1
		bad := []struct {
			name      string
			in        audit.ListInput
			wantField string
		}{
			{"tampered cursor", audit.ListInput{TenantID: a, Cursor: string(flip)}, "cursor"},
			{"truncated cursor", audit.ListInput{TenantID: a, Cursor: next[:len(next)-3]}, "cursor"},
			{"garbage cursor", audit.ListInput{TenantID: a, Cursor: "not-a-cursor"}, "cursor"},
			{"cursor with another tenant", audit.ListInput{TenantID: b, Cursor: next}, "cursor"},
			{"cursor with another filter", audit.ListInput{TenantID: a, CRUD: "c", Cursor: next}, "cursor"},
			{"cursor without the filter", audit.ListInput{Cursor: next}, "cursor"},
			{"bad tenant", audit.ListInput{TenantID: "acme"}, "tenant_id"},
			{"bad action", audit.ListInput{Action: "Tenant"}, "action"},
			{"bad action prefix", audit.ListInput{Action: "*"}, "action"},
			{"bad crud", audit.ListInput{CRUD: "z"}, "crud"},
			{"empty range", audit.ListInput{CreatedAfter: mid, CreatedBefore: mid}, "created_before"},
		}
		for _, tc := range bad {
			_, _, err := f.svc.List(admin, tc.in)
			if errs.CodeOf(err) != errs.Invalid || !strings.HasPrefix(errs.MessageOf(err), tc.wantField+":") {
				t.Errorf("%s: %v, want invalid naming %s", tc.name, err, tc.wantField)
			}
		}

		// A tenant caller sees its own tenant's events only.
		itAdmin := tenantCaller(a, principal.RoleITAdmin)
		if got := walk(t, f, itAdmin, audit.ListInput{PageSize: 500}); !slices.Equal(got, newestFirst(ofA)) {
			t.Errorf("tenant caller without a filter: %d events, want its %d", len(got), len(ofA))
		}
		if _, _, err := f.svc.List(itAdmin, audit.ListInput{TenantID: b}); errs.CodeOf(err) != errs.NotFound {
			t.Errorf("tenant caller naming another tenant: %v, want not found", err)
		}
	})
}

func TestConcurrentAppendsChain(t *testing.T) {
	eachFixture(t, 0, func(t *testing.T, f *fixture) {
		tid := f.tenant(t, "acme")
		const n = 20
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				in := validInput(tid)
				in.Fields = map[string]string{"n": fmt.Sprint(i)}
				_, err := f.svc.Append(admin, in)
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		res, err := f.svc.VerifyChain(admin, tid)
		if err != nil {
			t.Fatal(err)
		}
		if want := (audit.VerifyResult{TenantID: tid, OK: true, EventsChecked: n}); res != want {
			t.Errorf("VerifyChain = %+v, want %+v", res, want)
		}
	})
}

// TestVerifyDetectsTampering: what the database lets through is reported by
// VerifyChain — an event edited (deleted and inserted again changed) is
// reported itself; a deleted event as the event after the gap; a row
// inserted beside the chain or into the chain; an event moved to another
// tenant (deleted and inserted into the other tenant's chain).
func TestVerifyDetectsTampering(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		tests := []struct {
			name        string
			tamper      func(f *fixture, rows []*audit.Event, other string)
			wantBroken  int // index of the reported event; -1: none
			wantReason  string
			wantChecked int64
		}{
			{"edit description", func(f *fixture, rows []*audit.Event, _ string) {
				f.rewrite(t, rows[3].ID, "description = 'x'")
			}, 3, audit.ReasonHashMismatch, 3},
			{"edit fields", func(f *fixture, rows []*audit.Event, _ string) {
				f.rewrite(t, rows[0].ID, `fields = '{"version":"4"}'`)
			}, 0, audit.ReasonHashMismatch, 0},
			{"untouched", func(*fixture, []*audit.Event, string) {}, -1, "", 10},
			{"edit actor of the newest", func(f *fixture, rows []*audit.Event, _ string) {
				f.rewrite(t, rows[9].ID, "actor_id = 'someone-else'")
			}, 9, audit.ReasonHashMismatch, 9},
			{"edit appender", func(f *fixture, rows []*audit.Event, _ string) {
				f.rewrite(t, rows[2].ID, "appended_by_id = 'svc-other', appended_by_type = 'service'")
			}, 2, audit.ReasonHashMismatch, 2},
			{"downgrade to version 1", func(f *fixture, rows []*audit.Event, _ string) {
				f.rewrite(t, rows[2].ID, "hash_version = 1")
			}, 2, audit.ReasonHashMismatch, 2},
			{"delete one", func(f *fixture, rows []*audit.Event, _ string) {
				f.exec(t, fmt.Sprintf("DELETE FROM audit_log WHERE id = '%s'", rows[5].ID))
			}, 6, audit.ReasonGap, 5},
			{"delete the first", func(f *fixture, rows []*audit.Event, _ string) {
				f.exec(t, fmt.Sprintf("DELETE FROM audit_log WHERE id = '%s'", rows[0].ID))
			}, 1, audit.ReasonGap, 0},
			{"prev_hash pointing elsewhere", func(f *fixture, rows []*audit.Event, _ string) {
				f.rewrite(t, rows[4].ID, fmt.Sprintf("prev_hash = '%s'", rows[1].Hash))
			}, 4, audit.ReasonPrevHash, 4},
			{"insert beside the chain at the head", func(f *fixture, rows []*audit.Event, _ string) {
				f.insertCopy(t, rows[9], "chain_seq = 11, id = '"+uuid.NewString()+"', description = 'forged'")
			}, 10, audit.ReasonPrevHash, 10},
			{"insert a copy with a far chain_seq", func(f *fixture, rows []*audit.Event, _ string) {
				f.insertCopy(t, rows[9], "chain_seq = 1000, id = '"+uuid.NewString()+"'")
			}, 10, audit.ReasonGap, 10},
			{"move to another tenant", func(f *fixture, rows []*audit.Event, other string) {
				f.move(t, rows[4].ID, other)
			}, 5, audit.ReasonGap, 4},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				f := newFixture(t, st, 0)
				tid := f.tenant(t, "t-"+uuid.NewString()[:8])
				other := f.tenant(t, "o-"+uuid.NewString()[:8])
				var rows []*audit.Event
				for range 10 {
					rows = append(rows, f.append(t, admin, validInput(tid)))
					f.clock.Advance(time.Millisecond)
				}
				f.append(t, admin, validInput(other))
				tc.tamper(f, rows, other)
				// Rows inserted after the fixture's events are looked up
				// by chain position.
				wantID := ""
				switch {
				case tc.wantBroken < 0:
				case tc.wantBroken < len(rows):
					wantID = rows[tc.wantBroken].ID.String()
				default:
					r, err := st.Client.AuditLog.Query().Where(auditlog.GroupID(tid), auditlog.ChainSeqGT(10)).First(storetest.SystemContext())
					if err != nil {
						t.Fatal(err)
					}
					wantID = r.ID.String()
				}
				res, err := f.svc.VerifyChain(admin, tid)
				if err != nil {
					t.Fatal(err)
				}
				if tc.wantBroken < 0 {
					if !res.OK || res.EventsChecked != 10 || res.Empty {
						t.Errorf("untouched chain: %+v, want ok with 10 events", res)
					}
					return
				}
				if res.OK || res.FirstBrokenEventID != wantID || !strings.HasPrefix(res.Reason, tc.wantReason) {
					t.Errorf("VerifyChain = %+v\nwant broken at event #%d %s: %s", res, tc.wantBroken+1, wantID, tc.wantReason)
				}
				if res.EventsChecked != tc.wantChecked {
					t.Errorf("events_checked = %d, want %d (the intact ones before the break)", res.EventsChecked, tc.wantChecked)
				}
				if tc.name == "move to another tenant" {
					// The other tenant's chain has a stranger in it.
					if res, err := f.svc.VerifyChain(admin, other); err != nil || res.OK {
						t.Errorf("VerifyChain(the tenant it was moved to) = %+v, %v; want broken", res, err)
					}
				}
			})
		}
		// A tenant caller verifies only its own tenant.
		f := newFixture(t, st, 0)
		a, b := f.tenant(t, "verify-a"), f.tenant(t, "verify-b")
		if _, err := f.svc.VerifyChain(tenantCaller(a, principal.RoleITAdmin), b); errs.CodeOf(err) != errs.NotFound {
			t.Errorf("verify another tenant: %v, want not found", err)
		}
		if _, err := f.svc.VerifyChain(admin, ""); errs.CodeOf(err) != errs.Invalid {
			t.Errorf("verify without tenant_id: %v, want invalid", err)
		}
	})
}

// insertCopy inserts a copy of row changed by set (an UPDATE's SET clause of
// the copy): a row written beside the service.
func (f *fixture) insertCopy(t testing.TB, row *audit.Event, set string) {
	t.Helper()
	f.execInTx(t,
		fmt.Sprintf("CREATE TEMP TABLE forged AS SELECT * FROM audit_log WHERE id = '%s'", row.ID),
		"UPDATE forged SET "+set,
		"INSERT INTO audit_log SELECT * FROM forged",
		"DROP TABLE forged",
	)
}

// move takes an event out of its tenant's chain and puts it at the head of
// another tenant's chain (tenant and group both changed, as the database's
// CHECK demands).
func (f *fixture) move(t testing.TB, id uuid.UUID, to string) {
	t.Helper()
	f.rewrite(t, id, fmt.Sprintf("tenant_id = '%[1]s', group_id = '%[1]s', chain_seq = (SELECT max(chain_seq) + 1 FROM audit_log WHERE group_id = '%[1]s')", to))
}

// TestDatabaseRefuses: what the database itself refuses, on both stores:
// an UPDATE of an event (any column, also moving it to another tenant or
// detaching it from a live tenant), a row beside the chain (chain columns
// NULL), a tenant_id that is not the group, a group id not in canonical
// form. The purge's ON DELETE SET NULL of tenant_id is let through, and
// the purged tenant's chain still verifies.
func TestDatabaseRefuses(t *testing.T) {
	eachFixture(t, 0, func(t *testing.T, f *fixture) {
		ctx := storetest.SystemContext()
		a, b := f.tenant(t, "acme"), f.tenant(t, "globex")
		rows := f.appendN(t, a, 3)
		f.append(t, admin, validInput(b))
		id := rows[1].ID
		insert := func(tenantID, groupID, chainSeq, hash string) string {
			return fmt.Sprintf(`INSERT INTO audit_log (id, created_at, tenant_id, group_id, group_name, action, crud, actor_id, actor_name,
  actor_type, target_id, target_name, target_type, source_ip, description, is_failure, is_anonymous, appended_by_id, appended_by_type,
  appended_by_tenant, chain_seq, prev_hash, hash, hash_version)
VALUES ('%s', '2026-03-01 12:00:00', %s, %s, 'ACME', 'document.signed', 'u', 'x', '', 'user', '', '', '', '', '', false, false, '', '', '', %s, '', %s, 2)`,
				uuid.NewString(), tenantID, groupID, chainSeq, hash)
		}
		q := func(s string) string { return "'" + s + "'" }
		hash := q(strings.Repeat("a", 64))
		for _, tc := range []struct{ name, sql string }{
			{"update description", fmt.Sprintf("UPDATE audit_log SET description = 'x' WHERE id = '%s'", id)},
			{"update hash", fmt.Sprintf("UPDATE audit_log SET hash = '%s' WHERE id = '%s'", strings.Repeat("b", 64), id)},
			{"update chain_seq", fmt.Sprintf("UPDATE audit_log SET chain_seq = 99 WHERE id = '%s'", id)},
			{"move to another tenant", fmt.Sprintf("UPDATE audit_log SET tenant_id = '%[1]s', group_id = '%[1]s' WHERE id = '%[2]s'", b, id)},
			{"move tenant_id only", fmt.Sprintf("UPDATE audit_log SET tenant_id = '%s' WHERE id = '%s'", b, id)},
			{"detach from a live tenant", fmt.Sprintf("UPDATE audit_log SET tenant_id = NULL WHERE id = '%s'", id)},
			{"no-op update", fmt.Sprintf("UPDATE audit_log SET description = description WHERE id = '%s'", id)},
			{"insert without chain_seq", insert(q(a), q(a), "NULL", hash)},
			{"insert without hash", insert(q(a), q(a), "50", "NULL")},
			{"insert without group", insert(q(a), "NULL", "50", hash)},
			{"insert with tenant not the group", insert(q(b), q(a), "50", hash)},
			{"insert with an upper-case group", insert("NULL", q(strings.ToUpper(a)), "50", hash)},
			{"insert with chain_seq 0", insert(q(a), q(a), "0", hash)},
			{"insert with a short hash", insert(q(a), q(a), "50", "'abc'")},
		} {
			if _, err := f.st.DB.ExecContext(ctx, tc.sql); err == nil {
				t.Errorf("%s: the database accepted it", tc.name)
			}
		}
		if n := f.count(t); n != 4 {
			t.Errorf("%d events after the refused statements, want 4", n)
		}
		if res, err := f.svc.VerifyChain(admin, a); err != nil || !res.OK || res.EventsChecked != 3 {
			t.Errorf("VerifyChain after refused tampering = %+v, %v; want ok with 3", res, err)
		}
		// Retention's DELETE stays possible (TestRetention sweeps).

		// The purge: the tenant row goes, its events stay with their
		// group and tenant_id NULL, and still verify.
		if _, err := f.st.DB.ExecContext(ctx, fmt.Sprintf("DELETE FROM tenants WHERE id = '%s'", a)); err != nil {
			t.Fatalf("delete tenant: %v", err)
		}
		left, err := f.st.Client.AuditLog.Query().Where(auditlog.GroupID(a)).All(ctx)
		if err != nil || len(left) != 3 {
			t.Fatalf("events of the purged tenant: %d, %v; want 3", len(left), err)
		}
		for _, r := range left {
			if r.TenantID != nil {
				t.Errorf("event %s keeps tenant_id %v after the purge, want NULL", r.ID, r.TenantID)
			}
		}
		if res, err := f.svc.VerifyChain(admin, a); err != nil || !res.OK || res.EventsChecked != 3 {
			t.Errorf("VerifyChain of the purged tenant = %+v, %v; want ok with 3", res, err)
		}
		rows2, _, err := f.svc.List(admin, audit.ListInput{TenantID: a})
		if err != nil || len(rows2) != 3 {
			t.Errorf("List of the purged tenant: %d, %v; want 3", len(rows2), err)
		}
		// Still no UPDATE of the detached events.
		if _, err := f.st.DB.ExecContext(ctx, fmt.Sprintf("UPDATE audit_log SET description = 'x' WHERE id = '%s'", id)); err == nil {
			t.Error("UPDATE of a purged tenant's event accepted")
		}
		if _, err := f.st.DB.ExecContext(ctx, fmt.Sprintf("UPDATE audit_log SET tenant_id = '%s' WHERE id = '%s'", b, id)); err == nil {
			t.Error("re-attaching a purged tenant's event to another tenant accepted")
		}
	})
}

// TestExportChainOrder: export follows the chain, so an event committed
// during an export with an earlier created_at than the export's position
// (another replica's clock, a clock step) is exported, not skipped behind
// a (created_at, id) cursor.
func TestExportChainOrder(t *testing.T) {
	eachFixture(t, 0, func(t *testing.T, f *fixture) {
		tid := f.tenant(t, "acme")
		var want []string
		for range audit.ExportBatch {
			want = append(want, f.append(t, admin, validInput(tid)).ID.String())
			f.clock.Advance(time.Millisecond)
		}
		var got []string
		late := ""
		err := f.svc.Export(admin, audit.ExportInput{TenantID: tid}, func(r *audit.Event) error {
			got = append(got, r.ID.String())
			if late == "" {
				// Committed while the first page is being sent, stamped
				// an hour before every event of that page.
				f.clock.Advance(-time.Hour)
				late = f.append(t, admin, validInput(tid)).ID.String()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, late)
		if !slices.Equal(got, want) {
			t.Errorf("export: %d events (late one included: %v), want %d in chain order", len(got), slices.Contains(got, late), len(want))
		}
	})
}

func TestExport(t *testing.T) {
	eachFixture(t, 0, func(t *testing.T, f *fixture) {
		a, b := f.tenant(t, "acme"), f.tenant(t, "globex")
		var ofA []*audit.Event
		for i := range 2*audit.ExportBatch + 37 {
			tid := a
			if i%10 == 9 {
				tid = b
			}
			row := f.append(t, admin, validInput(tid))
			if tid == a {
				ofA = append(ofA, row)
			}
			if i%4 == 3 {
				f.clock.Advance(time.Second)
			}
		}
		from, to := ofA[100].CreatedAt, ofA[len(ofA)-50].CreatedAt
		tests := []struct {
			name string
			in   audit.ExportInput
			keep func(r *audit.Event) bool
		}{
			{"everything", audit.ExportInput{TenantID: a}, func(*audit.Event) bool { return true }},
			{"range", audit.ExportInput{TenantID: a, CreatedAfter: from, CreatedBefore: to},
				func(r *audit.Event) bool { return !r.CreatedAt.Before(from) && r.CreatedAt.Before(to) }},
		}
		for _, tc := range tests {
			// Chain order: the order they were appended in.
			var want []string
			for _, r := range ofA {
				if tc.keep(r) {
					want = append(want, r.ID.String())
				}
			}
			var got []string
			if err := f.svc.Export(admin, tc.in, func(r *audit.Event) error {
				got = append(got, r.ID.String())
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: got %d events, want %d, in chain order", tc.name, len(got), len(want))
			}
		}
		if err := f.svc.Export(admin, audit.ExportInput{}, func(*audit.Event) error { return nil }); errs.CodeOf(err) != errs.Invalid {
			t.Errorf("export without tenant_id: %v, want invalid", err)
		}
	})
}

func TestRetention(t *testing.T) {
	eachFixture(t, 30, func(t *testing.T, f *fixture) {
		ctx := storetest.SystemContext()
		a, b := f.tenant(t, "acme"), f.tenant(t, "globex")
		var oldA []*audit.Event
		for range 5 {
			oldA = append(oldA, f.append(t, admin, validInput(a)))
			f.append(t, admin, validInput(b))
			f.clock.Advance(24 * time.Hour)
		}
		f.clock.Advance(40 * 24 * time.Hour)
		newA := f.appendN(t, a, 3)

		// Nothing is old enough before the clock passes the cutoff.
		res, err := newFixture(t, f.st, 365).svc.Sweep(ctx)
		if err != nil || res.Deleted != 0 {
			t.Fatalf("sweep with a year's retention: %+v, %v; want nothing deleted", res, err)
		}
		res, err = f.svc.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.Deleted != 10 || res.Groups != 2 || len(res.Broken) != 0 {
			t.Errorf("sweep = %+v, want 10 events of 2 groups deleted", res)
		}
		for _, r := range oldA {
			if _, err := f.st.Client.AuditLog.Get(ctx, r.ID); !ent.IsNotFound(err) {
				t.Errorf("old event %s still there (%v)", r.ID, err)
			}
		}
		if got := f.count(t); got != 3 {
			t.Errorf("%d events left, want 3", got)
		}
		check := func(tid string, want audit.VerifyResult) {
			t.Helper()
			got, err := f.svc.VerifyChain(admin, tid)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("VerifyChain = %+v, want %+v", got, want)
			}
		}
		check(a, audit.VerifyResult{TenantID: a, OK: true, EventsChecked: 3, CheckpointSeq: 5})
		// b lost every event: new ones chain on from the checkpoint.
		check(b, audit.VerifyResult{TenantID: b, OK: true, Empty: true, EventsChecked: 0, CheckpointSeq: 5})
		if row := f.append(t, admin, validInput(b)); row.ChainSeq != 6 || row.PrevHash == "" {
			t.Errorf("append after retention: seq %d prev %q, want 6 chained to the checkpoint", row.ChainSeq, row.PrevHash)
		}
		check(b, audit.VerifyResult{TenantID: b, OK: true, EventsChecked: 1, CheckpointSeq: 5})
		// A second pass has nothing left to do.
		if res, err := f.svc.Sweep(ctx); err != nil || res.Deleted != 0 {
			t.Errorf("second sweep = %+v, %v; want nothing deleted", res, err)
		}

		// A row put back into the deleted segment is reported.
		f.insertCopy(t, newA[0], fmt.Sprintf("id = '%s', chain_seq = 2", uuid.New()))
		got, err := f.svc.VerifyChain(admin, a)
		if err != nil || got.OK || got.Reason != audit.ReasonCheckpoint {
			t.Errorf("after an insert below the checkpoint: %+v, %v; want broken (%s)", got, err, audit.ReasonCheckpoint)
		}
		f.exec(t, fmt.Sprintf("DELETE FROM audit_log WHERE group_id = '%s' AND chain_seq = 2", a))

		// Tampering after retention is still detected, also of the first
		// event after the checkpoint.
		f.rewrite(t, newA[1].ID, "description = 'x'")
		got, err = f.svc.VerifyChain(admin, a)
		if err != nil || got.OK || got.FirstBrokenEventID != newA[1].ID.String() || got.Reason != audit.ReasonHashMismatch {
			t.Errorf("after an edit: %+v, %v; want broken at %s", got, err, newA[1].ID)
		}
		f.exec(t, fmt.Sprintf("DELETE FROM audit_log WHERE id = '%s'", newA[0].ID))
		got, err = f.svc.VerifyChain(admin, a)
		if err != nil || got.OK || got.FirstBrokenEventID != newA[1].ID.String() || !strings.HasPrefix(got.Reason, audit.ReasonGap) {
			t.Errorf("after deleting the first event after the checkpoint: %+v, %v; want broken at %s (gap)", got, err, newA[1].ID)
		}

		// A broken old segment is never swept into a checkpoint.
		c := f.tenant(t, "initech")
		oldC := f.appendN(t, c, 3)
		f.rewrite(t, oldC[1].ID, "description = 'x'")
		f.clock.Advance(31 * 24 * time.Hour)
		res, err = f.svc.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(res.Broken, c) {
			t.Errorf("sweep = %+v, want group %s reported broken", res, c)
		}
		if _, err := f.st.Client.AuditLog.Get(ctx, oldC[1].ID); err != nil {
			t.Errorf("the tampered event was swept: %v", err)
		}
		got, err = f.svc.VerifyChain(admin, c)
		if err != nil || got.OK || got.FirstBrokenEventID != oldC[1].ID.String() {
			t.Errorf("verify after refusing to sweep: %+v, %v; want broken at %s", got, err, oldC[1].ID)
		}

		// RETENTION_DAYS=0 keeps everything.
		if res, err := newFixture(t, f.st, 0).svc.Sweep(ctx); err != nil || res.Deleted != 0 {
			t.Errorf("sweep with retention 0 = %+v, %v", res, err)
		}
	})
}

// TestExportRangeWithSkew: a time range over a chain whose created_at goes
// back and forth (replicas' clocks) exports exactly the events in the range,
// in chain order.
func TestExportRangeWithSkew(t *testing.T) {
	eachFixture(t, 0, func(t *testing.T, f *fixture) {
		tid := f.tenant(t, "acme")
		// Offsets from t0 of the events in chain order.
		offsets := []time.Duration{10 * time.Second, 5 * time.Second, 12 * time.Second, 4 * time.Second, 20 * time.Second}
		var ids []string
		for _, off := range offsets {
			f.clock.Advance(t0.Add(off).Sub(f.clock.Now()))
			ids = append(ids, f.append(t, admin, validInput(tid)).ID.String())
		}
		tests := []struct {
			name     string
			from, to time.Duration // zero: unbounded
			want     []string
		}{
			{"5s to 11s", 5 * time.Second, 11 * time.Second, []string{ids[0], ids[1]}},
			{"until 6s", 0, 6 * time.Second, []string{ids[1], ids[3]}},
			{"from 11s", 11 * time.Second, 0, []string{ids[2], ids[4]}},
			{"4s to 5s", 4 * time.Second, 5 * time.Second, []string{ids[3]}},
			{"nothing", 30 * time.Second, 40 * time.Second, nil},
		}
		for _, tc := range tests {
			in := audit.ExportInput{TenantID: tid}
			if tc.from != 0 {
				in.CreatedAfter = t0.Add(tc.from)
			}
			if tc.to != 0 {
				in.CreatedBefore = t0.Add(tc.to)
			}
			var got []string
			if err := f.svc.Export(admin, in, func(r *audit.Event) error { got = append(got, r.ID.String()); return nil }); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
			}
		}
	})
}

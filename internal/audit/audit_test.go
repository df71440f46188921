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
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/registry"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// admin is a platform admin's context.
var admin = registry.WithPrincipal(context.Background(), registry.Principal{
	Subject: "admin-1", Type: registry.ActorUser, Roles: []string{registry.RolePlatformAdmin},
})

func tenantCaller(tenantID string, roles ...string) context.Context {
	return registry.WithPrincipal(context.Background(), registry.Principal{
		Subject: "user-" + tenantID[:4], Type: registry.ActorUser, TenantID: tenantID, Roles: roles,
	})
}

type fixture struct {
	st    *store.Store
	clock *storetest.Clock
	svc   *audit.Service
}

func newFixture(t testing.TB, st *store.Store, retentionDays int) *fixture {
	t.Helper()
	clock := storetest.NewClock(t0)
	rec := audit.NewRecorder(clock.Now, st.Postgres())
	return &fixture{st: st, clock: clock, svc: audit.NewService(st.Client, rec, clock.Now, audit.Options{RetentionDays: retentionDays})}
}

// tenant creates a tenant directly (no event of its own).
func (f *fixture) tenant(t testing.TB, slug string) string {
	t.Helper()
	tn, err := f.st.Client.Tenant.Create().SetID(uuid.New()).SetSlug(slug).SetName(strings.ToUpper(slug)).
		SetCreatedAt(f.clock.Now()).SetUpdatedAt(f.clock.Now()).Save(context.Background())
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

func (f *fixture) append(t testing.TB, ctx context.Context, in audit.AppendInput) *ent.AuditLog {
	t.Helper()
	row, err := f.svc.Append(ctx, in)
	if err != nil {
		t.Fatalf("Append(%s): %v", in.Action, err)
	}
	return row
}

func (f *fixture) count(t testing.TB) int {
	t.Helper()
	n, err := f.st.Client.AuditLog.Query().Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// exec runs raw SQL (tampering "from outside the service").
func (f *fixture) exec(t testing.TB, q string) {
	t.Helper()
	res, err := f.st.DB.ExecContext(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s: %d rows affected, want 1", q, n)
	}
}

func TestAppendValidation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st, 0)
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
			wantCode  registry.Code
			wantField string // the message starts with "<field>:"
		}{
			{"action missing", admin, func(in *audit.AppendInput) { in.Action = "" }, registry.Invalid, "action"},
			{"action one segment", admin, func(in *audit.AppendInput) { in.Action = "signed" }, registry.Invalid, "action"},
			{"action upper case", admin, func(in *audit.AppendInput) { in.Action = "Document.signed" }, registry.Invalid, "action"},
			{"action empty segment", admin, func(in *audit.AppendInput) { in.Action = "document..signed" }, registry.Invalid, "action"},
			{"action trailing dot", admin, func(in *audit.AppendInput) { in.Action = "document." }, registry.Invalid, "action"},
			{"action space", admin, func(in *audit.AppendInput) { in.Action = "document.si gned" }, registry.Invalid, "action"},
			{"action too short", admin, func(in *audit.AppendInput) { in.Action = "a." }, registry.Invalid, "action"},
			{"action too long", admin, func(in *audit.AppendInput) { in.Action = "a." + strings.Repeat("b", 127) }, registry.Invalid, "action"},
			{"crud missing", admin, func(in *audit.AppendInput) { in.CRUD = "" }, registry.Invalid, "crud"},
			{"crud unknown", admin, func(in *audit.AppendInput) { in.CRUD = "x" }, registry.Invalid, "crud"},
			{"crud two letters", admin, func(in *audit.AppendInput) { in.CRUD = "cu" }, registry.Invalid, "crud"},
			{"actor id missing", admin, func(in *audit.AppendInput) { in.Actor.ID = "" }, registry.Invalid, "actor.id"},
			{"actor id too long", admin, func(in *audit.AppendInput) { in.Actor.ID = strings.Repeat("a", 256) }, registry.Invalid, "actor.id"},
			{"actor id control char", admin, func(in *audit.AppendInput) { in.Actor.ID = "a\nb" }, registry.Invalid, "actor.id"},
			{"actor name too long", admin, func(in *audit.AppendInput) { in.Actor.Name = strings.Repeat("é", 128) }, registry.Invalid, "actor.name"},
			{"actor type unknown", admin, func(in *audit.AppendInput) { in.Actor.Type = "robot" }, registry.Invalid, "actor.type"},
			{"target id too long", admin, func(in *audit.AppendInput) { in.Target.ID = strings.Repeat("t", 256) }, registry.Invalid, "target.id"},
			{"target name too long", admin, func(in *audit.AppendInput) { in.Target.Name = strings.Repeat("t", 256) }, registry.Invalid, "target.name"},
			{"target type too long", admin, func(in *audit.AppendInput) { in.Target.Type = strings.Repeat("t", 65) }, registry.Invalid, "target.type"},
			{"description too long", admin, func(in *audit.AppendInput) { in.Description = strings.Repeat("d", 2001) }, registry.Invalid, "description"},
			{"description NUL", admin, func(in *audit.AppendInput) { in.Description = "a\x00b" }, registry.Invalid, "description"},
			{"too many fields", admin, func(in *audit.AppendInput) { in.Fields = many }, registry.Invalid, "fields"},
			{"field key empty", admin, func(in *audit.AppendInput) { in.Fields = map[string]string{"": "v"} }, registry.Invalid, "fields"},
			{"field key bad char", admin, func(in *audit.AppendInput) { in.Fields = map[string]string{"a b": "v"} }, registry.Invalid, "fields"},
			{"field key too long", admin, func(in *audit.AppendInput) { in.Fields = map[string]string{strings.Repeat("k", 65): "v"} }, registry.Invalid, "fields"},
			{"field value too long", admin, func(in *audit.AppendInput) { in.Fields = map[string]string{"k": strings.Repeat("v", 1025)} }, registry.Invalid, "fields.k"},
			{"source ip bad", admin, func(in *audit.AppendInput) { in.SourceIP = "1.2.3" }, registry.Invalid, "source_ip"},
			{"source ip with zone", admin, func(in *audit.AppendInput) { in.SourceIP = "fe80::1%eth0" }, registry.Invalid, "source_ip"},
			{"source ip hostname", admin, func(in *audit.AppendInput) { in.SourceIP = "example.com" }, registry.Invalid, "source_ip"},
			{"idempotency key too long", admin, func(in *audit.AppendInput) { in.IdempotencyKey = strings.Repeat("i", 129) }, registry.Invalid, "idempotency_key"},
			{"idempotency key space", admin, func(in *audit.AppendInput) { in.IdempotencyKey = "a b" }, registry.Invalid, "idempotency_key"},
			{"tenant id not a uuid", admin, func(in *audit.AppendInput) { in.TenantID = "acme" }, registry.Invalid, "tenant_id"},
			{"tenant id missing for an admin", admin, func(in *audit.AppendInput) { in.TenantID = "" }, registry.Invalid, "tenant_id"},
			{"unknown tenant", admin, func(in *audit.AppendInput) { in.TenantID = uuid.NewString() }, registry.NotFound, ""},
			{"tenant caller names another tenant", tenantCaller(tid), func(in *audit.AppendInput) { in.TenantID = other }, registry.NotFound, ""},
			// Who may append at all is auth.Rules' decision; a caller
			// that got past it without a tenant of its own still sees no
			// tenant's log.
			{"caller without tenant or role", registry.WithPrincipal(context.Background(), registry.Principal{Subject: "x", Type: registry.ActorUser}),
				func(in *audit.AppendInput) {}, registry.NotFound, ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				in := validInput(tid)
				tc.mutate(&in)
				_, err := f.svc.Append(tc.ctx, in)
				if got := registry.ErrorCode(err); got != tc.wantCode {
					t.Fatalf("code = %q (%v), want %q", got, err, tc.wantCode)
				}
				if tc.wantField != "" && !strings.HasPrefix(registry.ErrorMessage(err), tc.wantField+":") {
					t.Errorf("message = %q, want it to start with %q", registry.ErrorMessage(err), tc.wantField+":")
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
		if row.ActorType != "user" || row.GroupID != tid || row.GroupName != "ACME" || row.SourceIP != "203.0.113.7" || *row.ChainSeq != 1 {
			t.Errorf("stored %+v", row)
		}
		in.TenantID = ""
		row = f.append(t, tenantCaller(tid), in)
		if row.GroupID != tid || *row.ChainSeq != 2 {
			t.Errorf("tenant caller's event: group %q seq %d, want %q 2", row.GroupID, *row.ChainSeq, tid)
		}
		service := registry.WithPrincipal(context.Background(), registry.Principal{Subject: "svc", Type: registry.ActorService, Roles: []string{registry.RoleInternal}})
		in.TenantID, in.SourceIP = other, ""
		row = f.append(t, service, in)
		if row.GroupID != other || row.SourceIP != "" {
			t.Errorf("service's event: group %q source_ip %q, want %q and none", row.GroupID, row.SourceIP, other)
		}
	})
}

func TestAppendIdempotent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st, 0)
		tid := f.tenant(t, "acme")
		in := validInput(tid)
		in.IdempotencyKey = "req-1"
		first := f.append(t, admin, in)
		f.clock.Advance(time.Second)
		in.Description = "a retry"
		again := f.append(t, admin, in)
		if again.ID != first.ID || again.Description != first.Description {
			t.Errorf("second append returned %v %q, want the first event %v %q", again.ID, again.Description, first.ID, first.Description)
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
		got, err := st.Client.AuditLog.Query().Where(auditlog.GroupID(tid)).Count(context.Background())
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

// seed appends a mix of events to two tenants, several sharing a
// created_at, and returns them.
func seed(t *testing.T, f *fixture, a, b string) []*ent.AuditLog {
	t.Helper()
	actions := []string{"tenant.created", "tenant.activated", "api_key.created", "api_key.revoked", "document.signed", "tenant.cancelled"}
	cruds := []string{"c", "u", "c", "d", "r", "u"}
	var all []*ent.AuditLog
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
func newestFirst(rows []*ent.AuditLog) []string {
	rows = slices.Clone(rows)
	slices.SortFunc(rows, func(x, y *ent.AuditLog) int {
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
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st, 0)
		a, b := f.tenant(t, "acme"), f.tenant(t, "globex")
		all := seed(t, f, a, b)
		ofA := slices.DeleteFunc(slices.Clone(all), func(r *ent.AuditLog) bool { return r.GroupID != a })
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
		if _, _, err := f.svc.List(admin, audit.ListInput{PageSize: -1}); registry.ErrorCode(err) != registry.Invalid {
			t.Errorf("page_size -1: %v, want invalid", err)
		}

		mid := all[20].CreatedAt
		filters := []struct {
			name string
			in   audit.ListInput
			keep func(r *ent.AuditLog) bool
		}{
			{"tenant", audit.ListInput{TenantID: b}, func(r *ent.AuditLog) bool { return r.GroupID == b }},
			{"action exact", audit.ListInput{Action: "tenant.created"}, func(r *ent.AuditLog) bool { return r.Action == "tenant.created" }},
			{"action prefix", audit.ListInput{Action: "tenant.*"}, func(r *ent.AuditLog) bool { return strings.HasPrefix(r.Action, "tenant.") }},
			{"action prefix with _", audit.ListInput{Action: "api_key.*"}, func(r *ent.AuditLog) bool { return strings.HasPrefix(r.Action, "api_key.") }},
			{"actor", audit.ListInput{ActorID: "user-1"}, func(r *ent.AuditLog) bool { return r.ActorID == "user-1" }},
			{"target id", audit.ListInput{TargetID: "obj-2"}, func(r *ent.AuditLog) bool { return r.TargetID == "obj-2" }},
			{"target type", audit.ListInput{TargetType: "api_key"}, func(r *ent.AuditLog) bool { return r.TargetType == "api_key" }},
			{"crud", audit.ListInput{CRUD: "d"}, func(r *ent.AuditLog) bool { return r.Crud == "d" }},
			{"created after (inclusive)", audit.ListInput{CreatedAfter: mid}, func(r *ent.AuditLog) bool { return !r.CreatedAt.Before(mid) }},
			{"created before (exclusive)", audit.ListInput{CreatedBefore: mid}, func(r *ent.AuditLog) bool { return r.CreatedAt.Before(mid) }},
			{"time range", audit.ListInput{CreatedAfter: all[5].CreatedAt, CreatedBefore: mid},
				func(r *ent.AuditLog) bool { return !r.CreatedAt.Before(all[5].CreatedAt) && r.CreatedAt.Before(mid) }},
			{"tenant and action prefix and crud", audit.ListInput{TenantID: a, Action: "tenant.*", CRUD: "u"},
				func(r *ent.AuditLog) bool {
					return r.GroupID == a && strings.HasPrefix(r.Action, "tenant.") && r.Crud == "u"
				}},
			{"no match", audit.ListInput{Action: "nothing.here"}, func(r *ent.AuditLog) bool { return false }},
		}
		for _, tc := range filters {
			want := newestFirst(slices.DeleteFunc(slices.Clone(all), func(r *ent.AuditLog) bool { return !tc.keep(r) }))
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
			if registry.ErrorCode(err) != registry.Invalid || !strings.HasPrefix(registry.ErrorMessage(err), tc.wantField+":") {
				t.Errorf("%s: %v, want invalid naming %s", tc.name, err, tc.wantField)
			}
		}

		// A tenant caller sees its own tenant's events only.
		itAdmin := tenantCaller(a, registry.RoleITAdmin)
		if got := walk(t, f, itAdmin, audit.ListInput{PageSize: 500}); !slices.Equal(got, newestFirst(ofA)) {
			t.Errorf("tenant caller without a filter: %d events, want its %d", len(got), len(ofA))
		}
		if _, _, err := f.svc.List(itAdmin, audit.ListInput{TenantID: b}); registry.ErrorCode(err) != registry.NotFound {
			t.Errorf("tenant caller naming another tenant: %v, want not found", err)
		}
	})
}

func TestConcurrentAppendsChain(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st, 0)
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
		if want := (audit.VerifyResult{OK: true, EventsChecked: n}); res != want {
			t.Errorf("VerifyChain = %+v, want %+v", res, want)
		}
	})
}

// TestVerifyDetectsTampering: an event edited in place is reported itself;
// a deleted event is reported as the event after the gap.
func TestVerifyDetectsTampering(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		tests := []struct {
			name        string
			tamper      func(rows []*ent.AuditLog) string // SQL
			wantBroken  int                               // index of the reported event; -1: none
			wantReason  string
			wantChecked int64
		}{
			{"update description", func(rows []*ent.AuditLog) string {
				return fmt.Sprintf("UPDATE audit_log SET description = 'x' WHERE id = '%s'", rows[3].ID)
			}, 3, audit.ReasonHashMismatch, 3},
			{"update fields", func(rows []*ent.AuditLog) string {
				return fmt.Sprintf(`UPDATE audit_log SET fields = '{"version":"4"}' WHERE id = '%s'`, rows[0].ID)
			}, 0, audit.ReasonHashMismatch, 0},
			{"untouched", func([]*ent.AuditLog) string { return "" }, -1, "", 10},
			{"update actor of the newest", func(rows []*ent.AuditLog) string {
				return fmt.Sprintf("UPDATE audit_log SET actor_id = 'someone-else' WHERE id = '%s'", rows[9].ID)
			}, 9, audit.ReasonHashMismatch, 9},
			{"delete one", func(rows []*ent.AuditLog) string {
				return fmt.Sprintf("DELETE FROM audit_log WHERE id = '%s'", rows[5].ID)
			}, 6, audit.ReasonGap, 5},
			{"delete the first", func(rows []*ent.AuditLog) string {
				return fmt.Sprintf("DELETE FROM audit_log WHERE id = '%s'", rows[0].ID)
			}, 1, audit.ReasonGap, 0},
			{"hash recomputed without the chain", func(rows []*ent.AuditLog) string {
				// Moving an event's prev_hash (as an insertion would) breaks
				// the link even when its own hash were recomputed.
				return fmt.Sprintf("UPDATE audit_log SET prev_hash = '%s' WHERE id = '%s'", rows[1].Hash, rows[4].ID)
			}, 4, audit.ReasonPrevHash, 4},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				f := newFixture(t, st, 0)
				tid := f.tenant(t, "t-"+uuid.NewString()[:8])
				var rows []*ent.AuditLog
				for range 10 {
					rows = append(rows, f.append(t, admin, validInput(tid)))
					f.clock.Advance(time.Millisecond)
				}
				if q := tc.tamper(rows); q != "" {
					f.exec(t, q)
				}
				res, err := f.svc.VerifyChain(admin, tid)
				if err != nil {
					t.Fatal(err)
				}
				if tc.wantBroken < 0 {
					if !res.OK || res.EventsChecked != 10 {
						t.Errorf("untouched chain: %+v, want ok with 10 events", res)
					}
					return
				}
				if res.OK || res.FirstBrokenEventID != rows[tc.wantBroken].ID.String() || !strings.HasPrefix(res.Reason, tc.wantReason) {
					t.Errorf("VerifyChain = %+v\nwant broken at event #%d %s: %s", res, tc.wantBroken+1, rows[tc.wantBroken].ID, tc.wantReason)
				}
				if res.EventsChecked != tc.wantChecked {
					t.Errorf("events_checked = %d, want %d (the intact ones before the break)", res.EventsChecked, tc.wantChecked)
				}
			})
		}
		// A tenant caller verifies only its own tenant.
		f := newFixture(t, st, 0)
		a, b := f.tenant(t, "verify-a"), f.tenant(t, "verify-b")
		if _, err := f.svc.VerifyChain(tenantCaller(a, registry.RoleITAdmin), b); registry.ErrorCode(err) != registry.NotFound {
			t.Errorf("verify another tenant: %v, want not found", err)
		}
		if _, err := f.svc.VerifyChain(admin, ""); registry.ErrorCode(err) != registry.Invalid {
			t.Errorf("verify without tenant_id: %v, want invalid", err)
		}
	})
}

func TestExport(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st, 0)
		a, b := f.tenant(t, "acme"), f.tenant(t, "globex")
		var ofA []*ent.AuditLog
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
			keep func(r *ent.AuditLog) bool
		}{
			{"everything", audit.ExportInput{TenantID: a}, func(*ent.AuditLog) bool { return true }},
			{"range", audit.ExportInput{TenantID: a, CreatedAfter: from, CreatedBefore: to},
				func(r *ent.AuditLog) bool { return !r.CreatedAt.Before(from) && r.CreatedAt.Before(to) }},
		}
		for _, tc := range tests {
			want := newestFirst(slices.DeleteFunc(slices.Clone(ofA), func(r *ent.AuditLog) bool { return !tc.keep(r) }))
			slices.Reverse(want)
			var got []string
			if err := f.svc.Export(admin, tc.in, func(r *ent.AuditLog) error {
				got = append(got, r.ID.String())
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: got %d events, want %d, oldest first", tc.name, len(got), len(want))
			}
		}
		if err := f.svc.Export(admin, audit.ExportInput{}, func(*ent.AuditLog) error { return nil }); registry.ErrorCode(err) != registry.Invalid {
			t.Errorf("export without tenant_id: %v, want invalid", err)
		}
	})
}

func TestRetention(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st, 30)
		ctx := context.Background()
		a, b := f.tenant(t, "acme"), f.tenant(t, "globex")
		var oldA []*ent.AuditLog
		for range 5 {
			oldA = append(oldA, f.append(t, admin, validInput(a)))
			f.append(t, admin, validInput(b))
			f.clock.Advance(24 * time.Hour)
		}
		f.clock.Advance(40 * 24 * time.Hour)
		var newA []*ent.AuditLog
		for range 3 {
			newA = append(newA, f.append(t, admin, validInput(a)))
		}

		// Nothing is old enough before the clock passes the cutoff.
		res, err := newFixture(t, st, 365).svc.Sweep(ctx)
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
			if _, err := st.Client.AuditLog.Get(ctx, r.ID); !ent.IsNotFound(err) {
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
		check(a, audit.VerifyResult{OK: true, EventsChecked: 3, CheckpointSeq: 5})
		// b lost every event: new ones chain on from the checkpoint.
		check(b, audit.VerifyResult{OK: true, EventsChecked: 0, CheckpointSeq: 5})
		if row := f.append(t, admin, validInput(b)); *row.ChainSeq != 6 || row.PrevHash == "" {
			t.Errorf("append after retention: seq %d prev %q, want 6 chained to the checkpoint", *row.ChainSeq, row.PrevHash)
		}
		check(b, audit.VerifyResult{OK: true, EventsChecked: 1, CheckpointSeq: 5})
		// A second pass has nothing left to do.
		if res, err := f.svc.Sweep(ctx); err != nil || res.Deleted != 0 {
			t.Errorf("second sweep = %+v, %v; want nothing deleted", res, err)
		}

		// Tampering after retention is still detected, also of the first
		// event after the checkpoint.
		f.exec(t, fmt.Sprintf("UPDATE audit_log SET description = 'x' WHERE id = '%s'", newA[1].ID))
		got, err := f.svc.VerifyChain(admin, a)
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
		var oldC []*ent.AuditLog
		for range 3 {
			oldC = append(oldC, f.append(t, admin, validInput(c)))
		}
		f.exec(t, fmt.Sprintf("UPDATE audit_log SET description = 'x' WHERE id = '%s'", oldC[1].ID))
		f.clock.Advance(31 * 24 * time.Hour)
		res, err = f.svc.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(res.Broken, c) {
			t.Errorf("sweep = %+v, want group %s reported broken", res, c)
		}
		if _, err := st.Client.AuditLog.Get(ctx, oldC[1].ID); err != nil {
			t.Errorf("the tampered event was swept: %v", err)
		}
		got, err = f.svc.VerifyChain(admin, c)
		if err != nil || got.OK || got.FirstBrokenEventID != oldC[1].ID.String() {
			t.Errorf("verify after refusing to sweep: %+v, %v; want broken at %s", got, err, oldC[1].ID)
		}

		// RETENTION_DAYS=0 keeps everything.
		if res, err := newFixture(t, st, 0).svc.Sweep(ctx); err != nil || res.Deleted != 0 {
			t.Errorf("sweep with retention 0 = %+v, %v", res, err)
		}
	})
}

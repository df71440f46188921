package tenant_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/internal/tenant"
)

// TestListQueryPrefix: query is a prefix of the slug (lower-cased) or a
// case-insensitive prefix of the name, with % and _ literal.
func TestListQueryPrefix(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		clock := storetest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		svc := newService(t, st, clock)
		for _, in := range []tenant.CreateInput{
			{Slug: "acme", Name: "Road Runner Supplies"},
			{Slug: "globex", Name: "Globex Corp"},
			{Slug: "initech", Name: "100% Pure_Code"},
			{Slug: "hooli", Name: "100 Pure Code"},
			{Slug: "umbrella", Name: "100x PureXCode"},
		} {
			if _, err := svc.Create(ctx, in); err != nil {
				t.Fatalf("Create %s: %v", in.Slug, err)
			}
			clock.Advance(time.Second)
		}
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"ac", []string{"acme"}},          // slug prefix
			{"ACM", []string{"acme"}},         // slug prefix, lower-cased
			{"road r", []string{"acme"}},      // name prefix, case-insensitive
			{"GLOBEX CO", []string{"globex"}}, // name prefix, case-insensitive
			{"corp", nil},                     // not a prefix
			{"cme", nil},                      // not a prefix
			{"100", []string{"umbrella", "hooli", "initech"}},
			{"100%", []string{"initech"}},       // % literal
			{"100% Pure_", []string{"initech"}}, // _ literal
			{"100_", nil},                       // _ is not any character
			{"%", nil},
			{"_", nil},
			{`\`, nil},
		} {
			got, _, err := svc.List(ctx, tenant.ListInput{Query: tc.query})
			if err != nil {
				t.Fatalf("List(%q): %v", tc.query, err)
			}
			var slugs []string
			for _, tn := range got {
				slugs = append(slugs, tn.Slug)
			}
			if !slices.Equal(slugs, tc.want) {
				t.Errorf("List(query=%q) = %v, want %v", tc.query, slugs, tc.want)
			}
		}
	})
}

// captureDriver remembers the last query on tenants run through it.
type captureDriver struct {
	dialect.Driver
	query string
	args  []any
}

func (d *captureDriver) Query(ctx context.Context, query string, args, v any) error {
	if strings.Contains(query, `FROM "tenants"`) {
		d.query, d.args = query, args.([]any)
	}
	return d.Driver.Query(ctx, query, args, v)
}

// TestListPlanUsesIndexes checks on PostgreSQL, over 50,000 tenants, that
// every documented filter of ListTenants, first page and next, reads an
// index of tenants rather than scanning the table.
func TestListPlanUsesIndexes(t *testing.T) {
	st := storetest.Postgres(t)
	ctx := storetest.SystemContext()
	// Names and slugs spread over hex prefixes; statuses and plans skewed
	// as in production (few frozen, few enterprise).
	if _, err := st.DB.ExecContext(ctx, `
INSERT INTO tenants (id, created_at, updated_at, slug, name, status, plan, provisioning_state)
SELECT gen_random_uuid(), ts, ts, 't' || md5(i::text), initcap(md5('n' || i)) || ' Ltd',
  (CASE WHEN i % 50 = 0 THEN 'frozen' WHEN i % 3 = 0 THEN 'trial' ELSE 'active' END)::tenant_status,
  (CASE WHEN i % 40 = 0 THEN 'enterprise' WHEN i % 4 = 0 THEN 'professional' ELSE 'starter' END)::tenant_plan,
  'provisioned'
FROM generate_series(1, 50000) AS i, LATERAL (SELECT timestamptz '2026-01-01' + i * interval '1 second' AS ts) t`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB.ExecContext(ctx, "ANALYZE tenants"); err != nil {
		t.Fatal(err)
	}
	drv := &captureDriver{Driver: entsql.OpenDB(dialect.Postgres, st.DB)}
	clock := storetest.NewClock(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	svc := storetest.Must(tenant.NewService(tenant.Deps{Client: ent.NewClient(ent.Driver(drv)), Recorder: storetest.Recorder(clock.Now, true), Clock: clock.Now, Pager: storetest.Pager(t), Provisioner: keycloak.Mock{}}))
	explain := func(in tenant.ListInput) (plan, next string) {
		t.Helper()
		_, next, err := svc.List(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		lines := storetest.Strings(t, ctx, st.DB, "EXPLAIN "+drv.query, drv.args...)
		return drv.query + "\n" + strings.Join(lines, "\n"), next
	}
	for _, tc := range []struct {
		name string
		in   tenant.ListInput
	}{
		{"query, slug-like prefix", tenant.ListInput{Query: "tab"}},
		{"query, name prefix", tenant.ListInput{Query: "Ab1"}}, // fewer than a page: no page 2
		{"query, one character", tenant.ListInput{Query: "f"}},
		{"status", tenant.ListInput{Status: "frozen"}},
		{"status, common", tenant.ListInput{Status: "active"}},
		{"plan", tenant.ListInput{Plan: "enterprise"}},
		{"status and plan", tenant.ListInput{Status: "trial", Plan: "professional"}},
		{"status and query", tenant.ListInput{Status: "active", Query: "ta"}},
		{"no filter", tenant.ListInput{}},
	} {
		plan, next := explain(tc.in)
		check := func(page, plan string) {
			if strings.Contains(plan, "Seq Scan on tenants") || !strings.Contains(plan, "Index") {
				t.Errorf("%s, %s: want an index scan of tenants, got:\n%s", tc.name, page, plan)
			} else {
				t.Logf("%s, %s:\n%s", tc.name, page, plan)
			}
		}
		check("page 1", plan)
		if next == "" {
			if tc.name != "query, name prefix" {
				t.Errorf("%s: no page 2", tc.name)
			}
			continue
		}
		in := tc.in
		in.Cursor = next
		plan, _ = explain(in)
		check("page 2", plan)
	}
}

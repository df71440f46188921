package project_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	entapikey "github.com/platform/tenant-registry/ent/apikey"
	"github.com/platform/tenant-registry/ent/auditlog"
	"github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/project"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/internal/tenant"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var secret = []byte("test-secret-0123456789abcdef-0123456789")

type fixture struct {
	st             *store.Store
	clock          *storetest.Clock
	projects       *project.Service
	keys           *apikey.Service
	tenantA, other *tenant.Tenant
}

func setup(t *testing.T, st *store.Store) *fixture {
	t.Helper()
	ctx := storetest.SystemContext()
	clock := storetest.NewClock(time.Date(2026, 6, 7, 8, 9, 10, 0, time.UTC))
	rec := storetest.Recorder(clock.Now, st.Postgres())
	tenants := storetest.Must(tenant.NewService(tenant.Deps{Client: st.Client, Recorder: rec, Clock: clock.Now, Pager: storetest.Pager(t), Provisioner: keycloak.Mock{}}))
	f := &fixture{st: st, clock: clock}
	f.projects = storetest.Must(project.NewService(project.Deps{Client: st.Client, Recorder: rec, Clock: clock.Now, Pager: storetest.Pager(t)}))
	f.keys = storetest.Must(apikey.NewService(apikey.Deps{Pager: storetest.Pager(t), Client: st.Client, Recorder: rec, Clock: clock.Now, Secret: secret, Postgres: st.Postgres()}))
	var err error
	for _, p := range []struct {
		slug string
		dst  **tenant.Tenant
	}{{"initech", &f.tenantA}, {"vandelay", &f.other}} {
		if *p.dst, err = tenants.Create(ctx, tenant.CreateInput{Slug: p.slug, Name: p.slug}); err != nil {
			t.Fatal(err)
		}
		if _, err := tenants.Activate(ctx, (*p.dst).ID.String()); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func actions(t *testing.T, f *fixture, tenantID uuid.UUID, action string) int {
	t.Helper()
	n, err := f.st.Client.AuditLog.Query().Where(auditlog.GroupID(tenantID.String()), auditlog.Action(action)).Count(storetest.SystemContext())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func ptr(s string) *string { return &s }

func TestProjectCRUD(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		f := setup(t, st)
		a := f.tenantA.ID.String()

		p, err := f.projects.Create(ctx, project.CreateInput{TenantID: a, Slug: "web-app", Name: " Web app ", Description: "the portal"})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if p.Slug != "web-app" || p.Name != "Web app" || p.TenantID != f.tenantA.ID || !p.CreatedAt.Equal(f.clock.Now()) {
			t.Errorf("created = %+v", p)
		}
		if n := actions(t, f, f.tenantA.ID, "project.created"); n != 1 {
			t.Errorf("project.created events = %d, want 1", n)
		}
		// The same slug in another tenant is fine; twice in one is a conflict.
		if _, err := f.projects.Create(ctx, project.CreateInput{TenantID: f.other.ID.String(), Slug: "web-app", Name: "Theirs"}); err != nil {
			t.Errorf("same slug in another tenant: %v", err)
		}
		bad := []struct {
			name string
			in   project.CreateInput
			want errs.Code
		}{
			{"duplicate slug", project.CreateInput{TenantID: a, Slug: "web-app", Name: "Again"}, errs.Conflict},
			{"bad slug", project.CreateInput{TenantID: a, Slug: "Web App", Name: "X"}, errs.Invalid},
			{"short slug", project.CreateInput{TenantID: a, Slug: "ab", Name: "X"}, errs.Invalid},
			{"dash at the end", project.CreateInput{TenantID: a, Slug: "abc-", Name: "X"}, errs.Invalid},
			{"no name", project.CreateInput{TenantID: a, Slug: "api", Name: " "}, errs.Invalid},
			{"unknown tenant", project.CreateInput{TenantID: uuid.NewString(), Slug: "api", Name: "X"}, errs.NotFound},
		}
		for _, tc := range bad {
			if _, err := f.projects.Create(ctx, tc.in); errs.CodeOf(err) != tc.want {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
		if n := actions(t, f, f.tenantA.ID, "project.created"); n != 1 {
			t.Errorf("project.created events after refused creates = %d, want 1", n)
		}

		got, err := f.projects.Get(ctx, a, p.ID.String())
		if err != nil || got.Slug != "web-app" {
			t.Errorf("Get = %+v, %v", got, err)
		}
		// Another tenant's project is not found through this tenant.
		if _, err := f.projects.Get(ctx, f.other.ID.String(), p.ID.String()); errs.CodeOf(err) != errs.NotFound {
			t.Errorf("Get through the other tenant = %v, want not found", err)
		}

		f.clock.Advance(time.Minute)
		upd, err := f.projects.Update(ctx, project.UpdateInput{TenantID: a, ID: p.ID.String(), Name: ptr("Web")})
		if err != nil || upd.Name != "Web" || upd.Slug != "web-app" || upd.Description != "the portal" {
			t.Fatalf("Update(name) = %+v, %v", upd, err)
		}
		ev, err := f.st.Client.AuditLog.Query().Where(auditlog.GroupID(a), auditlog.Action("project.updated")).Only(ctx)
		if err != nil || ev.Fields["old_name"] != "Web app" || ev.Fields["new_name"] != "Web" {
			t.Errorf("project.updated = %+v, %v", ev, err)
		}
		if _, err := f.projects.Create(ctx, project.CreateInput{TenantID: a, Slug: "api", Name: "API"}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			in   project.UpdateInput
			want errs.Code
		}{
			{"nothing sent", project.UpdateInput{TenantID: a, ID: p.ID.String()}, errs.Invalid},
			{"taken slug", project.UpdateInput{TenantID: a, ID: p.ID.String(), Slug: ptr("api")}, errs.Conflict},
			{"bad slug", project.UpdateInput{TenantID: a, ID: p.ID.String(), Slug: ptr("-x-")}, errs.Invalid},
			{"other tenant", project.UpdateInput{TenantID: f.other.ID.String(), ID: p.ID.String(), Name: ptr("Mine")}, errs.NotFound},
		} {
			if _, err := f.projects.Update(ctx, tc.in); errs.CodeOf(err) != tc.want {
				t.Errorf("Update %s: %v, want %v", tc.name, err, tc.want)
			}
		}
		if n := actions(t, f, f.tenantA.ID, "project.updated"); n != 1 {
			t.Errorf("project.updated events = %d, want 1", n)
		}
	})
}

func TestListProjectsPaginates(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		f := setup(t, st)
		a := f.tenantA.ID.String()
		var want []string
		for i := range 7 {
			f.clock.Advance(time.Second)
			p, err := f.projects.Create(ctx, project.CreateInput{TenantID: a, Slug: fmt.Sprintf("p-%02d", i), Name: "P"})
			if err != nil {
				t.Fatal(err)
			}
			want = append([]string{p.Slug}, want...) // newest first
		}
		var got []string
		cur := ""
		for pages := 0; ; pages++ {
			ps, next, err := f.projects.List(ctx, project.ListInput{TenantID: a, PageSize: 3, Cursor: cur})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				got = append(got, p.Slug)
			}
			if next == "" {
				break
			}
			if pages > 5 {
				t.Fatal("too many pages")
			}
			cur = next
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("listed %v, want %v", got, want)
		}
		// The cursor is bound to its tenant.
		_, next, _ := f.projects.List(ctx, project.ListInput{TenantID: a, PageSize: 3})
		if _, _, err := f.projects.List(ctx, project.ListInput{TenantID: f.other.ID.String(), PageSize: 3, Cursor: next}); errs.CodeOf(err) != errs.Invalid {
			t.Errorf("another tenant's cursor: %v, want invalid", err)
		}
		if _, _, err := f.projects.List(ctx, project.ListInput{TenantID: uuid.NewString()}); errs.CodeOf(err) != errs.NotFound {
			t.Errorf("unknown tenant: %v, want not found", err)
		}
	})
}

// TestProjectKeys: a key may belong to one of its tenant's projects, verify
// answers the project, and deleting the project revokes its keys (only
// its keys) in the same transaction, each with api_key.revoked.
func TestProjectKeys(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		f := setup(t, st)
		a := f.tenantA.ID.String()
		p, err := f.projects.Create(ctx, project.CreateInput{TenantID: a, Slug: "batch", Name: "Batch"})
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := f.projects.Create(ctx, project.CreateInput{TenantID: f.other.ID.String(), Slug: "batch", Name: "Batch"})
		if err != nil {
			t.Fatal(err)
		}
		inProject, err := f.keys.Create(ctx, apikey.CreateInput{TenantID: a, Name: "worker", ProjectID: p.ID.String()})
		if err != nil {
			t.Fatalf("create key in project: %v", err)
		}
		if inProject.Key.ProjectID == nil || *inProject.Key.ProjectID != p.ID {
			t.Errorf("key project = %v, want %v", inProject.Key.ProjectID, p.ID)
		}
		plain, err := f.keys.Create(ctx, apikey.CreateInput{TenantID: a, Name: "plain"})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, project string
			want          errs.Code
		}{
			{"another tenant's project", theirs.ID.String(), errs.NotFound},
			{"unknown project", uuid.NewString(), errs.NotFound},
			{"not an id", "batch", errs.Invalid},
		} {
			if _, err := f.keys.Create(ctx, apikey.CreateInput{TenantID: a, Name: "x", ProjectID: tc.project}); errs.CodeOf(err) != tc.want {
				t.Errorf("create key with %s: %v, want %v", tc.name, err, tc.want)
			}
		}

		v, err := f.keys.Verify(ctx, inProject.Plaintext)
		if err != nil || !v.Valid || v.ProjectID != p.ID.String() {
			t.Errorf("verify key in project = %+v, %v; want valid with project_id %s", v, err, p.ID)
		}
		v, err = f.keys.Verify(ctx, plain.Plaintext)
		if err != nil || !v.Valid || v.ProjectID != "" {
			t.Errorf("verify key without project = %+v, %v; want valid with no project_id", v, err)
		}

		// Another tenant's admin cannot delete it: not found, nothing revoked.
		otherAdmin := principal.With(context.Background(), principal.Principal{Subject: "x", Type: principal.ActorUser, TenantID: f.other.ID.String(), Roles: []string{principal.RoleITAdmin}})
		if _, _, err := f.projects.Delete(otherAdmin, a, p.ID.String()); errs.CodeOf(err) != errs.NotFound {
			t.Errorf("Delete by another tenant's admin = %v, want not found", err)
		}

		deleted, revoked, err := f.projects.Delete(ctx, a, p.ID.String())
		if err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if deleted.ID != p.ID || len(revoked) != 1 || revoked[0] != inProject.Key.ID {
			t.Errorf("Delete = %v revoked %v, want the project and its one key %s", deleted.ID, revoked, inProject.Key.ID)
		}
		if v, _ := f.keys.Verify(ctx, inProject.Plaintext); v.Valid || v.Reason != apikey.ReasonRevoked {
			t.Errorf("verify after the project's deletion = %+v, want revoked", v)
		}
		if v, _ := f.keys.Verify(ctx, plain.Plaintext); !v.Valid {
			t.Errorf("the key outside the project = %+v, want still valid", v)
		}
		row, err := st.Client.APIKey.Query().Where(entapikey.ID(inProject.Key.ID)).Only(ctx)
		if err != nil || row.RevokedAt == nil || row.ProjectID != nil {
			t.Errorf("revoked key row = %+v, %v; want revoked_at set and project_id NULL", row, err)
		}
		revokedEv, err := st.Client.AuditLog.Query().Where(auditlog.GroupID(a), auditlog.Action("api_key.revoked")).Only(ctx)
		if err != nil || revokedEv.TargetID != inProject.Key.ID.String() || revokedEv.Fields["reason"] != "project_deleted" {
			t.Errorf("api_key.revoked = %+v, %v", revokedEv, err)
		}
		delEv, err := st.Client.AuditLog.Query().Where(auditlog.GroupID(a), auditlog.Action("project.deleted")).Only(ctx)
		if err != nil || delEv.Fields["revoked_keys"] != "1" || delEv.ChainSeq <= revokedEv.ChainSeq {
			t.Errorf("project.deleted = %+v, %v; want revoked_keys 1, after the revoke", delEv, err)
		}
		if _, err := f.projects.Get(ctx, a, p.ID.String()); errs.CodeOf(err) != errs.NotFound {
			t.Errorf("Get after Delete = %v, want not found", err)
		}
		if _, _, err := f.projects.Delete(ctx, a, p.ID.String()); errs.CodeOf(err) != errs.NotFound {
			t.Errorf("Delete twice = %v, want not found", err)
		}
	})
}

// TestProjectDeleteTwoReplicas: replica B caches a project key's verdict;
// the project is deleted on replica A; B's next verify says revoked as soon
// as the notification arrives (PostgreSQL, both listening).
func TestProjectDeleteTwoReplicas(t *testing.T) {
	ctx := storetest.SystemContext()
	st := storetest.Postgres(t)
	f := setup(t, st)
	otherStore, err := store.Open(ctx, st.URL, store.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { otherStore.Close() })
	b := storetest.Must(apikey.NewService(apikey.Deps{Pager: storetest.Pager(t), Client: otherStore.Client,
		Recorder: storetest.Recorder(f.clock.Now, true), Clock: f.clock.Now, Secret: secret, Postgres: true}))
	for _, svc := range []*apikey.Service{f.keys, b} {
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = svc.Listen(lctx, st.URL) }()
		t.Cleanup(func() { cancel(); <-done })
		waitFor(t, "listener connected", svc.Listening)
	}
	a := f.tenantA.ID.String()
	p, err := f.projects.Create(ctx, project.CreateInput{TenantID: a, Slug: "edge", Name: "Edge"})
	if err != nil {
		t.Fatal(err)
	}
	k, err := f.keys.Create(ctx, apikey.CreateInput{TenantID: a, Name: "edge", ProjectID: p.ID.String()})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second answer comes from B's cache
		if v, err := b.Verify(ctx, k.Plaintext); err != nil || !v.Valid || v.ProjectID != p.ID.String() {
			t.Fatalf("verify on B = %+v, %v", v, err)
		}
	}
	if b.CacheLen() == 0 {
		t.Fatal("B did not cache the verdict")
	}
	if _, _, err := f.projects.Delete(ctx, a, p.ID.String()); err != nil {
		t.Fatal(err)
	}
	// A (the writer) answers revoked at once.
	if v, _ := f.keys.Verify(ctx, k.Plaintext); v.Valid {
		t.Errorf("verify on A right after the delete = %+v, want revoked", v)
	}
	waitFor(t, "B to see the revoke", func() bool {
		v, err := b.Verify(ctx, k.Plaintext)
		return err == nil && !v.Valid && v.Reason == apikey.ReasonRevoked
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

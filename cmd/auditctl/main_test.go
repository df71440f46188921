package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestVerify runs auditctl verify against a real migrated database while
// the chain is tampered with step by step, from outside the service: what
// the database refuses (an UPDATE, a row beside the chain) leaves the chain
// verifying; what it lets through (an edit by delete and re-insert, a
// deletion, a move to another tenant) is reported BROKEN with exit status 1.
func TestVerify(t *testing.T) {
	ctx := storetest.SystemContext()
	url := pgtest.MigratedURL(t)
	st, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	newTenant := func(slug string) string {
		tn, err := st.Client.Tenant.Create().SetID(uuid.New()).SetSlug(slug).SetName(slug).Save(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tn.ID.String()
	}
	tid, other, empty := newTenant("acme"), newTenant("globex"), newTenant("initech")
	clock := clock.Clock(clock.System)
	svc := storetest.Must(audit.NewService(audit.Deps{Client: st.Client, Recorder: storetest.Recorder(clock, true), Clock: clock, Pager: storetest.Pager(t)}))
	var ids []string
	appendTo := func(tenantID string) string {
		row, err := svc.Append(ctx, audit.AppendInput{TenantID: tenantID, Action: "doc.signed", CRUD: "u", Actor: audit.Actor{ID: "u1"}})
		if err != nil {
			t.Fatal(err)
		}
		return row.ID.String()
	}
	for range 6 {
		ids = append(ids, appendTo(tid))
	}
	appendTo(other)
	getenv := func(k string) string {
		if k == "DATABASE_URL" {
			return url
		}
		return ""
	}
	// rewrite deletes an event and inserts it again changed (set), in one
	// transaction: the edit the UPDATE trigger leaves possible.
	rewrite := func(id, set string) []string {
		return []string{
			fmt.Sprintf("CREATE TEMP TABLE tampered AS SELECT * FROM audit_log WHERE id = '%s'", id),
			fmt.Sprintf("DELETE FROM audit_log WHERE id = '%s'", id),
			"UPDATE tampered SET " + set,
			"INSERT INTO audit_log SELECT * FROM tampered",
			"DROP TABLE tampered",
		}
	}
	upper := strings.ToUpper(tid)
	tests := []struct {
		name       string
		args       []string
		tamper     []string
		refused    bool  // the database refuses tamper
		wantErr    error // nil, errBroken, or any (usage)
		wantOutput string
	}{
		{"usage", []string{"verify"}, nil, false, errors.New("usage"), ""},
		{"ok", []string{"verify", tid}, nil, false, nil, "ok: tenant " + tid + ": 6 events verified"},
		{"ok, upper-case id", []string{"verify", upper}, nil, false, nil, "ok: tenant " + tid + ": 6 events verified"},
		{"empty tenant", []string{"verify", empty}, nil, false, nil, "ok: tenant " + empty + ": no events to verify"},
		{"unknown tenant", []string{"verify", uuid.NewString()}, nil, false, errors.New("not found"), ""},
		{"update refused", []string{"verify", tid},
			[]string{fmt.Sprintf("UPDATE audit_log SET description = 'x' WHERE id = '%s'", ids[1])}, true, nil, "6 events verified"},
		{"move by update refused", []string{"verify", tid},
			[]string{fmt.Sprintf("UPDATE audit_log SET tenant_id = '%[1]s', group_id = '%[1]s' WHERE id = '%[2]s'", other, ids[1])}, true, nil, "6 events verified"},
		{"row beside the chain refused", []string{"verify", tid},
			[]string{fmt.Sprintf(`INSERT INTO audit_log (id, created_at, tenant_id, group_id, action, crud, actor_id, actor_type)
VALUES (gen_random_uuid(), now(), '%[1]s', '%[1]s', 'doc.signed', 'u', 'u1', 'user')`, tid)}, true, nil, "6 events verified"},
		{"edited", []string{"verify", upper}, rewrite(ids[4], "description = 'x'"), false, errBroken,
			"BROKEN: tenant " + tid + ": event " + ids[4] + ": " + audit.ReasonHashMismatch},
		{"deleted", []string{"verify", tid}, []string{fmt.Sprintf("DELETE FROM audit_log WHERE id = '%s'", ids[2])}, false, errBroken,
			"BROKEN: tenant " + tid + ": event " + ids[3] + ": " + audit.ReasonGap},
		{"moved", []string{"verify", tid}, rewrite(ids[0], fmt.Sprintf("tenant_id = '%[1]s', group_id = '%[1]s', chain_seq = 2", other)), false, errBroken,
			"BROKEN: tenant " + tid + ": event " + ids[1] + ": " + audit.ReasonGap},
		{"the tenant moved to", []string{"verify", other}, nil, false, errBroken, "BROKEN: tenant " + other + ": event " + ids[0] + ": " + audit.ReasonPrevHash},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.tamper) > 0 {
				tx, err := st.DB.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, q := range tc.tamper {
					if _, err = tx.ExecContext(ctx, q); err != nil {
						break
					}
				}
				if err == nil {
					err = tx.Commit()
				} else {
					_ = tx.Rollback()
				}
				switch {
				case tc.refused && err == nil:
					t.Fatalf("the database accepted %q", tc.tamper)
				case !tc.refused && err != nil:
					t.Fatalf("tamper: %v", err)
				}
			}
			var out bytes.Buffer
			err := run(ctx, tc.args, getenv, &out)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("run: %v", err)
			case tc.wantErr == errBroken && !errors.Is(err, errBroken):
				t.Fatalf("run: %v, want errBroken", err)
			case tc.wantErr != nil && err == nil:
				t.Fatalf("run: nil error, want %v", tc.wantErr)
			case tc.wantErr != nil && tc.wantErr != errBroken && !strings.Contains(err.Error(), tc.wantErr.Error()):
				t.Fatalf("run: %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(out.String(), tc.wantOutput) {
				t.Errorf("output %q, want it to contain %q", out.String(), tc.wantOutput)
			}
		})
	}
}

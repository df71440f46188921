package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/registry"
	"github.com/platform/tenant-registry/internal/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestVerify(t *testing.T) {
	ctx := context.Background()
	url := pgtest.MigratedURL(t)
	st, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tn, err := st.Client.Tenant.Create().SetID(uuid.New()).SetSlug("acme").SetName("Acme").Save(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clock := registry.Clock(registry.SystemClock)
	svc := audit.NewService(st.Client, audit.NewRecorder(clock, true), clock, audit.Options{})
	var ids []string
	for range 3 {
		row, err := svc.Append(ctx, audit.AppendInput{TenantID: tn.ID.String(), Action: "doc.signed", CRUD: "u", Actor: audit.Actor{ID: "u1"}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, row.ID.String())
	}
	getenv := func(k string) string {
		if k == "DATABASE_URL" {
			return url
		}
		return ""
	}
	tests := []struct {
		name       string
		args       []string
		tamper     string
		wantErr    error // nil, errBroken, or any (usage)
		wantOutput string
	}{
		{"usage", []string{"verify"}, "", errors.New("usage"), ""},
		{"ok", []string{"verify", tn.ID.String()}, "", nil, "ok: tenant " + tn.ID.String() + ": 3 events verified"},
		{"broken", []string{"verify", tn.ID.String()}, fmt.Sprintf("UPDATE audit_log SET description = 'x' WHERE id = '%s'", ids[1]), errBroken, "BROKEN: tenant " + tn.ID.String() + ": event " + ids[1]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.tamper != "" {
				if _, err := st.DB.ExecContext(ctx, tc.tamper); err != nil {
					t.Fatal(err)
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
			}
			if !strings.Contains(out.String(), tc.wantOutput) {
				t.Errorf("output %q, want it to contain %q", out.String(), tc.wantOutput)
			}
		})
	}
}

package sso_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/logtest"
	"github.com/platform/tenant-registry/internal/secret"
	"github.com/platform/tenant-registry/internal/sso"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

// TestClientSecretNeverLeaks sets a recognisable client secret and goes
// through set, get, provisioning (a failed attempt with Keycloak down, the
// worker's retry), an update keeping it, and delete, with every service
// logging into a buffer at debug level; then it scans every column of
// every row of every table, the logs, the audit events (a table too) and
// every answer for the secret. The sealed column holds ciphertext that
// opens to it only with the key and the tenant's additional data.
func TestClientSecretNeverLeaks(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		var logs logtest.Buffer
		logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		e := newEnv(t, st, func(d *sso.Deps) { d.Logger = logger })
		id := e.tenant(t, "acme").ID.String()
		var answers []any

		e.fake.SetDown(true)
		got, err := e.sso.Set(ctx, e.oidc(id, idpSecret, "acme.example"))
		if err != nil {
			t.Fatal(err)
		}
		answers = append(answers, got)
		e.fake.SetDown(false)
		e.clock.Advance(time.Hour)
		if _, err := e.sso.ProcessDue(ctx); err != nil {
			t.Fatal(err)
		}
		if p, _ := e.idp("acme-sso"); p.Config["clientSecret"] != idpSecret {
			t.Fatal("Keycloak did not get the secret: the test would prove nothing")
		}
		if got, err = e.sso.Get(ctx, id); err != nil || !got.HasClientSecret {
			t.Fatalf("get = %+v, %v", got, err)
		}
		answers = append(answers, got)
		if got, err = e.sso.Set(ctx, e.oidc(id, "", "acme.example", "acme.test")); err != nil {
			t.Fatal(err)
		}
		answers = append(answers, got)

		// The sealed value: ciphertext, opening to the secret only with the
		// tenant's additional data.
		var sealed []byte
		if err := st.DB.QueryRowContext(ctx, "SELECT client_secret_sealed FROM tenant_idp_config").Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		box := storetest.Must(secret.NewBox(testKey))
		if plain, err := box.Open(sealed, []byte("tenant_idp_config.client_secret_sealed:"+id)); err != nil || string(plain) != idpSecret {
			t.Errorf("sealed value opens to %q, %v", plain, err)
		}
		if _, err := box.Open(sealed, []byte("tenant_idp_config.client_secret_sealed:00000000-0000-0000-0000-000000000001")); err == nil {
			t.Error("sealed value opens for another tenant")
		}
		scanTables(t, st, idpSecret)

		if err := e.sso.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		scanTables(t, st, idpSecret)
		for i, a := range answers {
			b, _ := json.Marshal(a)
			if bytes.Contains(b, []byte(idpSecret)) {
				t.Errorf("answer %d holds the secret: %s", i, b)
			}
		}
		if strings.Contains(logs.String(), idpSecret) {
			t.Errorf("logs hold the secret:\n%s", logs.String())
		}
		if !strings.Contains(logs.String(), "keycloak job failed") {
			t.Errorf("logs lack the failed attempt (the scan would prove nothing):\n%s", logs.String())
		}
	})
}

// scanTables fails when any column of any row of any table of st holds s
// (as text, or as bytes).
func scanTables(t *testing.T, st *store.Store, s string) {
	t.Helper()
	ctx := context.Background()
	q := "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
	if st.Postgres() {
		q = "SELECT table_schema || '.' || table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
	}
	tables := storetest.Strings(t, ctx, st.DB, q)
	if len(tables) < 8 {
		t.Fatalf("found %d tables: %v", len(tables), tables)
	}
	rowsSeen := 0
	for _, table := range tables {
		rows, err := st.DB.QueryContext(ctx, "SELECT * FROM "+quoteTable(table))
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			rowsSeen++
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("%s: %v", table, err)
			}
			for i, v := range vals {
				var text string
				switch v := v.(type) {
				case []byte:
					text = string(v)
				case nil:
				default:
					text = fmt.Sprint(v)
				}
				if strings.Contains(text, s) {
					t.Errorf("%s.%s holds the secret", table, cols[i])
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	if rowsSeen == 0 {
		t.Fatal("scanned no rows")
	}
}

func quoteTable(name string) string {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	return strings.Join(parts, ".")
}

package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/auth/oidctest"
	"github.com/platform/tenant-registry/internal/keycloak"
	"github.com/platform/tenant-registry/internal/keycloak/keycloaktest"
	"github.com/platform/tenant-registry/internal/logtest"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

// TestIdpSecretNowhere: the whole service (REST, the worker, a fake
// Keycloak that is down for the first attempt) logging at debug level into
// a buffer; a recognisable client secret goes in with PUT, then GET, the
// worker's provisioning, a PUT keeping it, DELETE. Keycloak got the secret;
// no answer, log line, or column of any row of any table (audit events
// included) holds it.
func TestIdpSecretNowhere(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		const secret = "SERVER-LEAK-PROBE-idp-secret-7d41"
		ctx := storetest.SystemContext()
		var logs logtest.Buffer
		log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		fake := keycloaktest.New(t, "platform", "tenant-registry", "kc-secret")
		issuer := oidctest.New()
		t.Cleanup(issuer.Close)
		adapter, err := keycloak.NewHTTPAdapter(keycloak.Config{BaseURL: fake.URL(), Realm: "platform",
			ClientID: "tenant-registry", ClientSecret: "kc-secret", Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		s := newStack(t, st, withLogger(log), withKeycloak(adapter))
		if _, err := s.tenants.RetryProvisioning(ctx, acmeID); err != nil {
			t.Fatal(err)
		}
		var answers []string
		call := func(method, path, body string, want int) {
			t.Helper()
			res := do(t, s.srv, method, path, body, nil)
			if res.status != want {
				t.Fatalf("%s %s: %d %s, want %d", method, path, res.status, res.body, want)
			}
			answers = append(answers, res.body)
		}
		path := "/v1/tenants/" + acmeID + "/idp"
		body := func(secret string) string {
			return `{"protocol":"oidc","oidc":{"issuer":"` + issuer.URL() + `","client_id":"registry","client_secret":"` + secret + `"},"domains":["acme.example"]}`
		}
		fake.SetDown(true)
		call("PUT", path, body(secret), http.StatusOK)
		fake.SetDown(false)
		// The worker's retry (the backoff is the service clock's: wait it out
		// by running the due jobs until one lands).
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := s.sso.ProcessDue(ctx); err != nil {
				t.Fatal(err)
			}
			if c, err := s.sso.Get(ctx, acmeID); err == nil && c.State == "provisioned" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("never provisioned")
			}
			time.Sleep(200 * time.Millisecond)
			_ = forceDue(ctx, st)
		}
		got := false
		for _, p := range fake.IdPs() {
			got = got || p.Config["clientSecret"] == secret
		}
		if !got {
			t.Fatal("Keycloak never got the secret: the test would prove nothing")
		}
		call("GET", path, "", http.StatusOK)
		call("PUT", path, body(""), http.StatusOK)
		call("GET", path, "", http.StatusOK)
		call("POST", "/tenantregistry.v1.SsoService/GetIdpConfig", `{"tenant_id":"`+acmeID+`"}`, http.StatusOK)
		scanAllTables(t, st, secret)
		call("DELETE", path, "", http.StatusOK)
		scanAllTables(t, st, secret)
		for _, a := range answers {
			if strings.Contains(a, secret) {
				t.Errorf("an answer holds the secret: %s", a)
			}
		}
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the logs hold the secret:\n%s", logs.String())
		}
		if !strings.Contains(logs.String(), "keycloak job failed") || !strings.Contains(logs.String(), "SetIdpConfig") {
			t.Errorf("the logs lack the failed attempt or the access lines (the scan would prove little):\n%s", logs.String())
		}
	})
}

// forceDue makes every pending outbox job due now (the backoff is minutes).
func forceDue(ctx context.Context, st *store.Store) error {
	_, err := st.DB.ExecContext(ctx, "UPDATE outbox SET next_attempt_at = $1 WHERE done_at IS NULL", time.Now().Add(-time.Minute))
	return err
}

// scanAllTables fails when any column of any row of any table holds s.
func scanAllTables(t *testing.T, st *store.Store, s string) {
	t.Helper()
	ctx := context.Background()
	q := "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
	if st.Postgres() {
		q = "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
	}
	tables := storetest.Strings(t, ctx, st.DB, q)
	n := 0
	for _, table := range tables {
		if !st.Postgres() {
			table = `"` + table + `"`
		}
		rows, err := st.DB.QueryContext(ctx, "SELECT * FROM "+table)
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			n++
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				text := ""
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
		rows.Close()
	}
	if n == 0 || len(tables) < 8 {
		t.Fatalf("scanned %d rows of %d tables", n, len(tables))
	}
}

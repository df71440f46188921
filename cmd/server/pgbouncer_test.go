package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/pgcluster"
	"github.com/platform/tenant-registry/internal/pgtest"
)

// TestReplicasBehindPgBouncer runs two replicas (run, as main does) whose
// pools go through a real PgBouncer in transaction mode, their listeners
// straight to PostgreSQL (DATABASE_LISTEN_URL), and a third one whose
// listener goes through the pooler too: creates, lists and verifies work on
// each, a revoke through one is seen by the others, no prepared-statement
// error appears in any log, and the third one says its listener hears
// nothing (and verifies against the database meanwhile).
func TestReplicasBehindPgBouncer(t *testing.T) {
	if testing.Short() {
		t.Skip("PostgreSQL and PgBouncer")
	}
	pgtest.RequireBinary(t, pgcluster.DefaultPgBouncer, "PGBOUNCER_BIN", "apt-get install pgbouncer")
	direct := pgtest.MigratedURL(t)
	bouncer := pgtest.PgBouncer(t, direct, pgcluster.PgBouncerOptions{PoolSize: 5})
	pooled, err := bouncer.Rewrite(direct)
	if err != nil {
		t.Fatal(err)
	}
	env := func(listen string) map[string]string {
		return map[string]string{"APP_ENV": "dev", "DATABASE_URL": pooled, "DATABASE_LISTEN_URL": listen, "LOG_LEVEL": "info"}
	}
	a, logsA := startReplica(t, env(direct))
	b, logsB := startReplica(t, env(direct))
	c, logsC := startReplica(t, env("")) // listener through the pooler: must notice

	status, res, err := postJSON(http.DefaultClient, "POST", a+"/v1/tenants", `{"slug":"bouncer","name":"Bouncer","admin_email":"it@bouncer.example"}`)
	if err != nil || status != http.StatusOK {
		t.Fatalf("create tenant through A: %d %v %v", status, res, err)
	}
	tn, _ := res["tenant"].(map[string]any)
	tid, _ := tn["id"].(string)
	status, res, err = postJSON(http.DefaultClient, "POST", b+"/v1/api-keys", fmt.Sprintf(`{"tenant_id":%q,"name":"through b"}`, tid))
	if err != nil || status != http.StatusOK {
		t.Fatalf("create key through B: %d %v %v", status, res, err)
	}
	key, _ := res["key"].(string)
	meta, _ := res["api_key"].(map[string]any)
	keyID, _ := meta["id"].(string)
	if key == "" || keyID == "" {
		t.Fatalf("create key answer: %v", res)
	}
	for _, base := range []string{a, b, c} {
		status, res, err := postJSON(http.DefaultClient, "GET", base+"/v1/api-keys?tenant_id="+tid, "")
		if keys, _ := res["api_keys"].([]any); err != nil || status != http.StatusOK || len(keys) != 1 {
			t.Errorf("list keys through %s: %d %v %v", base, status, res, err)
		}
	}
	verify := func(base string) string {
		t.Helper()
		status, res, err := postJSON(http.DefaultClient, "POST", base+"/v1/internal/api-keys/verify", fmt.Sprintf(`{"key":%q}`, key))
		if err != nil || status != http.StatusOK {
			t.Fatalf("verify through %s: %d %v %v", base, status, res, err)
		}
		if v, _ := res["valid"].(bool); v {
			return "valid"
		}
		r, _ := res["reason"].(string)
		return r
	}
	for _, base := range []string{a, b, c} {
		for range 3 { // the second and third from A's and B's caches
			if got := verify(base); got != "valid" {
				t.Fatalf("verify through %s: %s, want valid", base, got)
			}
		}
	}

	status, res, err = postJSON(http.DefaultClient, "DELETE", a+"/v1/api-keys/"+keyID, "")
	if err != nil || status != http.StatusOK {
		t.Fatalf("revoke through A: %d %v %v", status, res, err)
	}
	if got := verify(a); got != "revoked" {
		t.Errorf("verify through A right after its revoke: %s, want revoked", got)
	}
	if got := verify(c); got != "revoked" {
		t.Errorf("verify through C (listener deaf, so no cache) right after the revoke: %s, want revoked", got)
	}
	// B learns it from the notification.
	deadline := time.Now().Add(10 * time.Second)
	for verify(b) != "revoked" {
		if time.Now().After(deadline) {
			t.Fatal("B still answers valid 10s after the revoke through A")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// C's listener gives up on the pooler within StaleAfter and says why.
	deadline = time.Now().Add(20 * time.Second)
	for !strings.Contains(logsC.String(), "not delivered") {
		if time.Now().After(deadline) {
			t.Fatalf("C's listener (through the pooler) did not report that notifications are not delivered:\n%s", logsC.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for name, logs := range map[string]string{"A": logsA.String(), "B": logsB.String(), "C": logsC.String(), "pgbouncer": bouncer.Log()} {
		if strings.Contains(logs, "prepared statement") {
			t.Errorf("%s's log mentions a prepared statement:\n%s", name, logs)
		}
	}
	for name, logs := range map[string]string{"A": logsA.String(), "B": logsB.String()} {
		if strings.Contains(logs, "not delivered") {
			t.Errorf("%s's direct listener reported no delivery:\n%s", name, logs)
		}
	}
}

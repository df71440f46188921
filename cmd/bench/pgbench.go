package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/platform/tenant-registry/internal/pgcluster"
)

// bareInsertTable is the table of the pgbench baseline of the one-tenant
// append row: audit_log's columns and a primary key, no other index, no
// constraint, no trigger.
const bareInsertTable = "bench_bare_insert"

// bareInsertSQL is pgbench's transaction: one INSERT of a row of the size
// AppendEvent stores for the bench's event (the same strings, two 64-char
// hashes, the same JSON), committed on its own.
const bareInsertSQL = `INSERT INTO ` + bareInsertTable + ` (id, created_at, tenant_id, group_id, group_name, action, crud,
  actor_id, actor_name, actor_type, target_id, target_name, target_type, source_ip, description, is_failure,
  is_anonymous, fields, appended_by_id, appended_by_type, appended_by_tenant, chain_seq, prev_hash, hash, hash_version)
VALUES (gen_random_uuid(), now(), '00000000-0000-0000-0000-00000000b0b0', '00000000-0000-0000-0000-00000000b0b0', 'Append one',
  'document.viewed', 'r', 'user-1', 'User One', 'user', 'doc-1', 'Doc', 'document', '203.0.113.7', 'bench event', false,
  false, '{"n": "1"}', 'service-account-bench', 'service', '', :aid,
  'ba5eba5eba5eba5eba5eba5eba5eba5eba5eba5eba5eba5eba5eba5eba5eba5e',
  'ba5eba5eba5eba5eba5eba5eba5eba5eba5eba5eba5eba5eba5eba5eba5eba5e', 2);
`

// pgbenchBinary is pgbench of the server's PostgreSQL: PG_BIN_DIR's,
// Debian's PostgreSQL 15, or the one on PATH.
func pgbenchBinary() (string, error) {
	for _, dir := range []string{os.Getenv("PG_BIN_DIR"), pgcluster.DefaultBinDir} {
		if dir == "" {
			continue
		}
		if p := filepath.Join(dir, "pgbench"); fileExists(p) {
			return p, nil
		}
	}
	p, err := exec.LookPath("pgbench")
	if err != nil {
		return "", fmt.Errorf("no pgbench (apt-get install postgresql-15 or postgresql-client): %w", err)
	}
	return p, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

var tpsLine = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)

// bareInsertRate runs pgbench with conns clients for d: each transaction
// one bareInsertSQL. It answers the transactions per second pgbench
// reports (without connection time).
func bareInsertRate(ctx context.Context, db *sql.DB, dbURL, dir string, conns int, d time.Duration) (float64, error) {
	bin, err := pgbenchBinary()
	if err != nil {
		return 0, err
	}
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + bareInsertTable,
		"CREATE TABLE " + bareInsertTable + " (LIKE audit_log INCLUDING DEFAULTS, PRIMARY KEY (id))",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return 0, fmt.Errorf("%s: %w", q, err)
		}
	}
	defer db.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+bareInsertTable)
	script := filepath.Join(dir, "bare-insert.sql")
	if err := os.WriteFile(script, []byte(`\set aid random(1, 1000000000)`+"\n"+bareInsertSQL), 0o644); err != nil {
		return 0, err
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	cmd := exec.CommandContext(ctx, bin, "-n", "-c", strconv.Itoa(conns), "-j", "2", "-T", strconv.Itoa(secs), "-f", script, dbURL)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("pgbench: %v\n%s", err, out.String())
	}
	m := tpsLine.FindStringSubmatch(out.String())
	if m == nil {
		return 0, fmt.Errorf("pgbench: no tps in its output:\n%s", out.String())
	}
	return strconv.ParseFloat(m[1], 64)
}

// verifyChain asks the service to verify tenantID's chain and answers how
// many events it checked; a broken chain is an error.
func verifyChain(api *apiClient, svc, tenantID string) (int64, error) {
	var res struct {
		OK            bool            `json:"ok"`
		EventsChecked json.RawMessage `json:"events_checked"`
		Reason        string          `json:"reason"`
	}
	if err := api.call("POST", svc+"/v1/audit/verify", fmt.Sprintf(`{"tenant_id":%q}`, tenantID), &res); err != nil {
		return 0, err
	}
	n, _ := strconv.ParseInt(strings.Trim(string(res.EventsChecked), `"`), 10, 64)
	if !res.OK {
		return n, fmt.Errorf("chain of %s does not verify: %s after %d events", tenantID, res.Reason, n)
	}
	return n, nil
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/auditlog"
	"github.com/platform/tenant-registry/internal/app"
	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/config"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/evidence"
	"github.com/platform/tenant-registry/internal/logtest"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

// acme is the dev seed tenant (every dev stack has it).
const acme = "00000000-0000-0000-0000-000000000001"

// replica is one tenant-registry as cmd/server wires it (app.New, APP_ENV
// dev: calls without a token are a platform admin's), served over HTTP.
type replica struct {
	url string
	app *app.App
}

func keyFile(t *testing.T) string {
	t.Helper()
	k, err := evidence.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "signing.key")
	if err := os.WriteFile(path, k.PrivateKeyPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startReplica(t *testing.T, st *store.Store, clk clock.Clock, mutate func(*config.Config)) *replica {
	t.Helper()
	r, err := newReplica(t, st, clk, mutate, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newReplica(t *testing.T, st *store.Store, clk clock.Clock, mutate func(*config.Config), log *slog.Logger) (*replica, error) {
	t.Helper()
	cfg, err := config.Load(func(k string) string {
		if k == "API_KEY_SECRET" {
			return "auditctl-test-secret-0123456789abcdef"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := app.New(context.Background(), app.Deps{Config: cfg, Store: st, Logger: log, Clock: clk})
	if err != nil {
		return nil, err
	}
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(srv.Close)
	return &replica{url: srv.URL, app: a}, nil
}

func (r *replica) do(t *testing.T, method, path, body string) []byte {
	t.Helper()
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	return b
}

// appendEvents appends n events to acme through POST /v1/audit, with
// fields and idempotency keys, as a product would.
func (r *replica) appendEvents(t *testing.T, n int) {
	t.Helper()
	for range n {
		k := uuid.NewString()
		r.do(t, "POST", "/v1/audit", fmt.Sprintf(`{"tenant_id":%q,"action":"doc.signed","crud":"u","actor":{"id":"u1","name":"Ann"},
			"target":{"id":"doc-%s","type":"document"},"description":"signed: a=b; c%%d","fields":{"k":"v:1","pct":"50%%"},"idempotency_key":%q}`, acme, k[:8], k))
	}
}

// digest asks for a digest of acme now and answers its id and last_seq.
func (r *replica) digest(t *testing.T) (id string, lastSeq string) {
	t.Helper()
	return r.digestOf(t, acme)
}

// digestOf asks for a digest of a tenant now.
func (r *replica) digestOf(t *testing.T, tenantID string) (id string, lastSeq string) {
	t.Helper()
	var out struct {
		Digest struct {
			ID      string `json:"id"`
			LastSeq string `json:"last_seq"`
		} `json:"digest"`
		Created bool `json:"created"`
	}
	if err := json.Unmarshal(r.do(t, "POST", "/v1/audit/digests", `{"tenant_id":"`+tenantID+`"}`), &out); err != nil {
		t.Fatal(err)
	}
	if !out.Created {
		t.Fatalf("POST /v1/audit/digests: created false, want a new digest")
	}
	return out.Digest.ID, out.Digest.LastSeq
}

// evidenceFiles are the three answers an auditor saves.
type evidenceFiles struct{ events, digests, keys string }

// download saves what GET /v1/audit/export, every page of GET
// /v1/audit/digests (page_size 1: one answer per line) and GET
// /v1/audit/public-keys answer.
func (r *replica) download(t *testing.T) evidenceFiles {
	t.Helper()
	return r.downloadOf(t, acme)
}

func (r *replica) downloadOf(t *testing.T, tenantID string) evidenceFiles {
	t.Helper()
	dir := t.TempDir()
	f := evidenceFiles{filepath.Join(dir, "events.ndjson"), filepath.Join(dir, "digests.json"), filepath.Join(dir, "keys.json")}
	write := func(path string, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(f.events, r.do(t, "GET", "/v1/audit/export?tenant_id="+tenantID, ""))
	var pages bytes.Buffer
	for cursor := ""; ; {
		b := r.do(t, "GET", "/v1/audit/digests?page_size=1&tenant_id="+tenantID+"&cursor="+url.QueryEscape(cursor), "")
		pages.Write(b)
		pages.WriteByte('\n')
		var page struct {
			Next string `json:"next_cursor"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			t.Fatal(err)
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	write(f.digests, pages.Bytes())
	write(f.keys, r.do(t, "GET", "/v1/audit/public-keys", ""))
	return f
}

// verifyOfflineRun runs auditctl verify-offline on f.
func verifyOfflineRun(f evidenceFiles) (string, error) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"verify-offline", "--events", f.events, "--digests", f.digests, "--public-keys", f.keys},
		func(string) string { return "" }, &out)
	return out.String(), err
}

// lines reads an NDJSON file as JSON objects.
func lines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func writeLines(t *testing.T, path string, ms []map[string]any) {
	t.Helper()
	var b bytes.Buffer
	for _, m := range ms {
		l, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(l)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// chain is acme's chain as a test builds it: events, two digests, and
// events after the last digest that no digest covers yet.
type chain struct {
	r              *replica
	files          evidenceFiles
	events         []map[string]any
	d1, d2         string // digest ids
	d1Last, d2Last string // their last_seq
}

func buildChain(t *testing.T, st *store.Store) *chain {
	t.Helper()
	r := startReplica(t, st, clock.System, nil)
	c := &chain{r: r}
	r.appendEvents(t, 4)
	c.d1, c.d1Last = r.digest(t)
	r.appendEvents(t, 4)
	c.d2, c.d2Last = r.digest(t)
	r.appendEvents(t, 2)
	c.files = r.download(t)
	c.events = lines(t, c.files.events)
	return c
}

func idx(t *testing.T, events []map[string]any, seq string) int {
	t.Helper()
	for i, e := range events {
		if e["chain_seq"] == seq {
			return i
		}
	}
	t.Fatalf("no event with chain_seq %s", seq)
	return 0
}

// TestVerifyOffline: an auditor's three files, downloaded from the real
// endpoints, verify offline; every kind of tampering with what they hold is
// reported with exit status 1 (errBroken), on both stores.
func TestVerifyOffline(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		c := buildChain(t, st)
		if len(c.events) < 10 {
			t.Fatalf("export holds %d events, want at least 10", len(c.events))
		}
		out, err := verifyOfflineRun(c.files)
		if err != nil {
			t.Fatalf("untouched: %v\n%s", err, out)
		}
		t.Logf("untouched:\n%s", out)
		last := c.events[len(c.events)-1]["chain_seq"].(string)
		for _, want := range []string{
			"ok: tenant " + acme + ": " + fmt.Sprint(len(c.events)) + " events (chain_seq 1-" + last + ") verified against 2 digests, signed through chain_seq " + c.d2Last,
			"not signed by a digest yet",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("untouched: output %q, want %q", out, want)
			}
		}

		mid := idx(t, c.events, c.d1Last) // an event the first digest covers
		foreign, err := evidence.GenerateSigningKey()
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name   string
			events func([]map[string]any) []map[string]any
			digest func(map[string]any)
			keys   string
			want   string
		}{
			{name: "edited", events: func(es []map[string]any) []map[string]any {
				es[mid]["description"] = "nothing happened"
				return es
			}, want: fmt.Sprintf("BROKEN: edited: event %s (chain_seq %s)", c.events[mid]["id"], c.d1Last)},
			{name: "inserted", events: func(es []map[string]any) []map[string]any {
				dup := map[string]any{}
				for k, v := range es[mid] {
					dup[k] = v
				}
				dup["id"] = "11111111-2222-3333-4444-555555555555"
				return append(es[:mid+1], append([]map[string]any{dup}, es[mid+1:]...)...)
			}, want: "BROKEN: inserted: event 11111111-2222-3333-4444-555555555555"},
			{name: "deleted", events: func(es []map[string]any) []map[string]any {
				return append(es[:mid], es[mid+1:]...)
			}, want: fmt.Sprintf("BROKEN: deleted: chain_seq %s missing before event %s", c.d1Last, c.events[mid+1]["id"])},
			{name: "reordered", events: func(es []map[string]any) []map[string]any {
				es[mid], es[mid+1] = es[mid+1], es[mid]
				return es
			}, want: fmt.Sprintf("BROKEN: reordered: event %s (chain_seq %s) comes after event %s", c.events[mid]["id"], c.d1Last, c.events[mid+1]["id"])},
			{name: "tail truncated", events: func(es []map[string]any) []map[string]any {
				return es[:idx(t, es, c.d2Last)-1]
			}, want: fmt.Sprintf("BROKEN: truncated: chain_seq %s-%s, covered by digest %s, missing at the end of the export", c.events[idx(t, c.events, c.d2Last)-1]["chain_seq"], c.d2Last, c.d2)},
			{name: "everything deleted", events: func([]map[string]any) []map[string]any { return nil },
				want: "BROKEN: truncated: the export holds no events, but digest " + c.d2},
			{name: "signed by a foreign key", digest: func(d map[string]any) {
				// Re-signed by someone else's key: its id and signature.
				first, _ := json.Number(d["first_seq"].(string)).Int64()
				lastSeq, _ := json.Number(d["last_seq"].(string)).Int64()
				created, _ := time.Parse(time.RFC3339Nano, d["created_at"].(string))
				ev := evidence.Digest{GroupID: acme, FirstSeq: first, LastSeq: lastSeq, HeadHash: d["head_hash"].(string),
					PrevDigestHash: d["prev_digest_hash"].(string), CreatedAt: created, KeyID: foreign.ID()}
				sig, err := foreign.Sign(ev)
				if err != nil {
					t.Fatal(err)
				}
				d["key_id"], d["signature"], d["digest_hash"] = foreign.ID(), sig, ev.Hash()
			}, want: "signed by unknown key " + foreign.ID()},
			{name: "keys of someone else", keys: `{"keys":[{"key_id":"` + foreign.ID() + `","public_key_pem":` + jsonString(foreign.PublicKeyPEM()) + `,"not_before":"2020-01-01T00:00:00Z"}]}`,
				want: "signed by unknown key"},
			{name: "digest altered", digest: func(d map[string]any) { d["last_seq"] = c.d1Last },
				want: "the signature does not verify"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				f := c.files
				dir := t.TempDir()
				if tc.events != nil {
					f.events = filepath.Join(dir, "events.ndjson")
					writeLines(t, f.events, tc.events(lines(t, c.files.events)))
				}
				if tc.digest != nil {
					f.digests = filepath.Join(dir, "digests.json")
					pages := lines(t, c.files.digests)
					for _, p := range pages {
						for _, d := range p["digests"].([]any) {
							if d := d.(map[string]any); d["id"] == c.d2 {
								tc.digest(d)
							}
						}
					}
					// A JSON array of pages this time.
					b, err := json.Marshal(pages)
					if err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(f.digests, b, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				if tc.keys != "" {
					f.keys = filepath.Join(dir, "keys.json")
					if err := os.WriteFile(f.keys, []byte(tc.keys), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				out, err := verifyOfflineRun(f)
				if !errors.Is(err, errBroken) {
					t.Errorf("run: %v, want errBroken\n%s", err, out)
				}
				if !strings.Contains(out, tc.want) {
					t.Errorf("output:\n%s\nwant it to contain %q", out, tc.want)
				}
				t.Logf("%s", out)
			})
		}
	})
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestVerifyOfflineDatabaseTampering: what a database-level writer does
// after a digest, in PostgreSQL itself, shows in the next export: a deleted
// event, and a whole chain rewritten with the immutability trigger
// switched off and every hash recomputed — which the chain alone (the
// service's own VerifyAuditChain) accepts, and only the signed digest
// exposes.
func TestVerifyOfflineDatabaseTampering(t *testing.T) {
	ctx := storetest.SystemContext()
	t.Run("deleted", func(t *testing.T) {
		st := storetest.Postgres(t)
		c := buildChain(t, st)
		victim := c.events[idx(t, c.events, c.d1Last)]
		if _, err := st.DB.ExecContext(ctx, "DELETE FROM audit_log WHERE id = $1", victim["id"]); err != nil {
			t.Fatal(err)
		}
		out, err := verifyOfflineRun(c.r.download(t))
		if want := "BROKEN: deleted: chain_seq " + c.d1Last + " missing"; !errors.Is(err, errBroken) || !strings.Contains(out, want) {
			t.Errorf("run: %v\n%s\nwant errBroken and %q", err, out, want)
		}
	})
	t.Run("digests and keys are append-only", func(t *testing.T) {
		st := storetest.Postgres(t)
		c := buildChain(t, st)
		for _, tc := range []struct {
			q       string
			refused bool
		}{
			{"UPDATE audit_digests SET head_hash = repeat('0', 64) WHERE id = '" + c.d2 + "'", true},
			{"DELETE FROM audit_digests WHERE id = '" + c.d2 + "'", true},
			{"TRUNCATE audit_digests", true},
			{"UPDATE audit_signing_keys SET public_key_pem = 'x'", true},
			{"DELETE FROM audit_signing_keys", true},
			{"UPDATE audit_signing_keys SET not_after = now()", false}, // closing a key
			{"UPDATE audit_signing_keys SET not_after = NULL", true},   // and never reopening it
		} {
			_, err := st.DB.ExecContext(ctx, tc.q)
			if got := err != nil; got != tc.refused {
				t.Errorf("%s: error %v, want refused %v", tc.q, err, tc.refused)
			}
		}
	})
	t.Run("rewritten", func(t *testing.T) {
		st := storetest.Postgres(t)
		c := buildChain(t, st)
		// A superuser's rewrite: triggers off for the session, one event
		// changed, every later hash recomputed from the canonical form.
		conn, err := st.DB.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "SET session_replication_role = replica"); err != nil {
			t.Fatal(err)
		}
		rows, err := st.Client.AuditLog.Query().Where(auditlog.GroupID(acme)).Order(ent.Asc(auditlog.FieldChainSeq)).All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		prev := ""
		for i, r := range rows {
			if i == 2 {
				r.Description = "the contract was never signed"
			}
			r.PrevHash = prev
			r.Hash = audit.CanonicalOf(r).Hash(prev)
			prev = r.Hash
			if _, err := conn.ExecContext(ctx, "UPDATE audit_log SET description = $1, prev_hash = $2, hash = $3 WHERE id = $4",
				r.Description, r.PrevHash, r.Hash, r.ID); err != nil {
				t.Fatal(err)
			}
		}
		// The chain holds together: only the signature can tell.
		var verified struct {
			OK bool `json:"ok"`
		}
		if err := json.Unmarshal(c.r.do(t, "POST", "/v1/audit/verify", `{"tenant_id":"`+acme+`"}`), &verified); err != nil || !verified.OK {
			t.Fatalf("VerifyAuditChain after the rewrite: ok %v (%v), want the rewrite to be consistent", verified.OK, err)
		}
		out, err := verifyOfflineRun(c.r.download(t))
		want := "BROKEN: rewritten: event " + c.events[idx(t, c.events, c.d1Last)]["id"].(string) + " (chain_seq " + c.d1Last + ")"
		if !errors.Is(err, errBroken) || !strings.Contains(out, want) || !strings.Contains(out, "digest "+c.d1) {
			t.Errorf("run: %v\n%s\nwant errBroken and %q naming digest %s", err, out, want, c.d1)
		}
		// And the service refuses to sign the rewritten chain: its next
		// event does not chain on from the last signed head.
		if _, _, err := c.r.app.Audit.CreateDigest(ctx, acme); errs.CodeOf(err) != errs.Precondition {
			t.Errorf("CreateDigest of the rewritten chain: %v, want a failed precondition", err)
		}
	})
}

// TestVerifyOfflineAfterRetention: retention deletes the oldest events
// (with a checkpoint) after they were digested; the untouched export of
// what is left verifies, whether the checkpoint falls on a digest's last
// event or inside a digest's range.
func TestVerifyOfflineAfterRetention(t *testing.T) {
	for _, lineUp := range []bool{true, false} {
		t.Run(fmt.Sprintf("checkpoint on a digest head %v", lineUp), func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, st *store.Store) {
				clk := storetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
				r := startReplica(t, st, clk.Now, func(c *config.Config) { c.RetentionDays = 30 })
				r.appendEvents(t, 3)
				r.digest(t)
				r.appendEvents(t, 3)
				if lineUp {
					r.digest(t) // the old events end on this digest's head
				}
				clk.Advance(48 * time.Hour)
				r.appendEvents(t, 3)
				_, last := r.digest(t)
				r.appendEvents(t, 1)
				clk.Advance(30 * 24 * time.Hour)
				res, err := r.app.Audit.Sweep(storetest.SystemContext())
				if err != nil || res.Deleted == 0 || len(res.Broken) > 0 {
					t.Fatalf("sweep: %+v, %v; want old events deleted", res, err)
				}
				checkTrimmedExport(t, r, last)
			})
		})
	}
}

// TestVerifyOfflineAfterPartitionDrop: on PostgreSQL retention drops a
// whole month partition once a digest covers it; the export of what is
// left, with the digests and keys, still verifies offline (the events of
// the dropped month are noted as deleted by retention).
func TestVerifyOfflineAfterPartitionDrop(t *testing.T) {
	st := storetest.Postgres(t)
	clk := storetest.NewClock(time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC))
	r := startReplica(t, st, clk.Now, func(c *config.Config) { c.RetentionDays = 30 })
	ctx := storetest.SystemContext()
	if _, err := r.app.Audit.EnsurePartitions(ctx); err != nil { // January to March 2026
		t.Fatal(err)
	}
	r.appendEvents(t, 3)
	r.digest(t)
	r.appendEvents(t, 2)
	r.digest(t)                      // January's events end on this digest's head
	clk.Advance(25 * 24 * time.Hour) // February 4
	r.appendEvents(t, 3)
	_, last := r.digest(t)
	r.appendEvents(t, 1)
	clk.Advance(30 * 24 * time.Hour) // March 6: the cutoff is February 4
	res, err := r.app.Audit.Sweep(ctx)
	if err != nil || !slices.Equal(res.Dropped, []string{"audit_log_2026_01"}) || len(res.Kept) > 0 || len(res.Broken) > 0 {
		t.Fatalf("sweep: %+v, %v; want January's partition dropped", res, err)
	}
	checkTrimmedExport(t, r, last)
}

// checkTrimmedExport downloads r's export, digests and keys after
// retention trimmed the chain and checks that they verify offline: the
// export no longer starts at chain_seq 1, the output names the last digest
// (signed through chain_seq last) and the events deleted by retention.
func checkTrimmedExport(t *testing.T, r *replica, last string) {
	t.Helper()
	f := r.download(t)
	if first := lines(t, f.events)[0]["chain_seq"].(string); first == "1" {
		t.Fatalf("the export starts at chain_seq 1: retention deleted nothing")
	}
	out, err := verifyOfflineRun(f)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if want := "signed through chain_seq " + last; !strings.Contains(out, want) {
		t.Errorf("output %q, want %q", out, want)
	}
	if want := "not in the export (deleted by retention"; !strings.Contains(out, want) {
		t.Errorf("output %q, want %q", out, want)
	}
}

// TestDigestReplicas: two replicas on one PostgreSQL database, with the same
// key, digesting at once — their digest workers every few milliseconds and
// POST /v1/audit/digests on both while events arrive — write one digest
// per head between them: a single linked chain of digests, which verifies
// offline, and nothing new when the chain did not move.
func TestDigestReplicas(t *testing.T) {
	st := storetest.Postgres(t)
	key := keyFile(t)
	fast := func(c *config.Config) { c.AuditSigningKeyFile, c.AuditDigestInterval = key, 5*time.Millisecond }
	a, b := startReplica(t, st, clock.System, fast), startReplica(t, st, clock.System, fast)
	ctx, cancel := context.WithCancel(context.Background())
	var workers sync.WaitGroup
	for _, r := range []*replica{a, b} {
		workers.Go(func() { r.app.Run(ctx) })
	}
	var wg sync.WaitGroup
	errc := make(chan error, 100)
	for round := range 10 {
		a.appendEvents(t, 2)
		for _, r := range []*replica{a, b, a, b} {
			wg.Go(func() {
				if _, _, err := r.app.Audit.CreateDigest(storetest.SystemContext(), acme); err != nil {
					errc <- fmt.Errorf("round %d: %w", round, err)
				}
			})
		}
		wg.Wait()
	}
	cancel()
	workers.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	f := a.download(t)
	out, err := verifyOfflineRun(f)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	// Every event is signed (the last CreateDigest came after the last
	// append), each head once.
	events := lines(t, f.events)
	if want := "signed through chain_seq " + events[len(events)-1]["chain_seq"].(string); !strings.Contains(out, want) {
		t.Errorf("output %q, want %q", out, want)
	}
	heads := storetest.Strings(t, ctx0(), st.DB, "SELECT group_id || ':' || last_seq FROM audit_digests GROUP BY group_id, last_seq HAVING count(*) > 1")
	if len(heads) > 0 {
		t.Errorf("heads digested twice: %v", heads)
	}
	before := storetest.Strings(t, ctx0(), st.DB, "SELECT id::text FROM audit_digests")
	for _, r := range []*replica{a, b} {
		if err := r.app.Audit.DigestAll(storetest.SystemContext()); err != nil {
			t.Fatal(err)
		}
	}
	if after := storetest.Strings(t, ctx0(), st.DB, "SELECT id::text FROM audit_digests"); len(after) != len(before) {
		t.Errorf("digests after a round without appends: %d, want %d", len(after), len(before))
	}
}

func ctx0() context.Context { return context.Background() }

// TestSigningKeyRotation: a dev replica without AUDIT_SIGNING_KEY_FILE
// generates its key and says so; a replica started with a new key records
// it and closes the old one, whose replicas then sign nothing and which no
// replica may start with again; digests of both keys verify offline with
// the public keys the registry answers.
func TestSigningKeyRotation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		logs := &logtest.Buffer{}
		dev, err := newReplica(t, st, clock.System, nil, slog.New(slog.NewJSONHandler(logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		var keys struct {
			Keys []struct {
				KeyID    string  `json:"key_id"`
				NotAfter *string `json:"not_after"`
			} `json:"keys"`
		}
		if err := json.Unmarshal(dev.do(t, "GET", "/v1/audit/public-keys", ""), &keys); err != nil || len(keys.Keys) != 1 {
			t.Fatalf("public keys = %+v (%v), want the generated one", keys, err)
		}
		if want := "AUDIT_SIGNING_KEY_FILE is not set; audit digests are signed with a key generated at start"; !strings.Contains(logs.String(), want) ||
			!strings.Contains(logs.String(), keys.Keys[0].KeyID) {
			t.Errorf("log %q, want %q naming key %s", logs.String(), want, keys.Keys[0].KeyID)
		}

		file1, file2 := keyFile(t), keyFile(t)
		one := func(c *config.Config) { c.AuditSigningKeyFile = file1 }
		a := startReplica(t, st, clock.System, one)
		a.appendEvents(t, 2)
		a.digest(t)
		b := startReplica(t, st, clock.System, func(c *config.Config) { c.AuditSigningKeyFile = file2 })
		a.appendEvents(t, 2)
		if _, _, err := a.app.Audit.CreateDigest(storetest.SystemContext(), acme); errs.CodeOf(err) != errs.Unavailable {
			t.Errorf("CreateDigest with the superseded key: %v, want unavailable", err)
		}
		b.digest(t)
		if _, err := newReplica(t, st, clock.System, one, slog.New(slog.DiscardHandler)); err == nil ||
			!strings.Contains(err.Error(), "AUDIT_SIGNING_KEY_FILE") || !strings.Contains(err.Error(), "superseded") {
			t.Errorf("start with the superseded key: %v, want an AUDIT_SIGNING_KEY_FILE error saying it was superseded", err)
		}
		if err := json.Unmarshal(b.do(t, "GET", "/v1/audit/public-keys", ""), &keys); err != nil || len(keys.Keys) != 3 {
			t.Fatalf("public keys = %+v (%v), want 3", keys, err)
		}
		for i, k := range keys.Keys { // newest first: only the newest is open
			if got, want := k.NotAfter == nil, i == 0; got != want {
				t.Errorf("key %d (%s): open %v, want %v", i, k.KeyID, got, want)
			}
		}
		out, err := verifyOfflineRun(b.download(t))
		if err != nil || !strings.Contains(out, "verified against 2 digests") {
			t.Errorf("run: %v\n%s\nwant both keys' digests verified", err, out)
		}
	})
}

// TestVerifyOfflineInput: a usage or file problem is no finding (exit 2,
// not errBroken), and an export that ended with its error line is
// incomplete (errBroken).
func TestVerifyOfflineInput(t *testing.T) {
	c := buildChain(t, storetest.SQLite(t))
	missing := filepath.Join(t.TempDir(), "nope.json")
	for name, args := range map[string][]string{
		"no flags":     {"verify-offline"},
		"no keys":      {"verify-offline", "--events", c.files.events, "--digests", c.files.digests},
		"stray arg":    {"verify-offline", "--events", c.files.events, "--digests", c.files.digests, "--public-keys", c.files.keys, "x"},
		"missing file": {"verify-offline", "--events", c.files.events, "--digests", missing, "--public-keys", c.files.keys},
		"not JSON":     {"verify-offline", "--events", c.files.events, "--digests", c.files.events + "x", "--public-keys", c.files.keys},
	} {
		err := run(context.Background(), args, func(string) string { return "" }, io.Discard)
		if err == nil || errors.Is(err, errBroken) {
			t.Errorf("%s: %v, want a usage or file error", name, err)
		}
	}
	f := c.files
	b, err := os.ReadFile(f.events)
	if err != nil {
		t.Fatal(err)
	}
	f.events = filepath.Join(t.TempDir(), "events.ndjson")
	b = append(b, `{"error":{"code":"deadline_exceeded","message":"deadline exceeded"}}`+"\n"...)
	if err := os.WriteFile(f.events, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := verifyOfflineRun(f)
	if want := "BROKEN: incomplete: the export ended with an error (deadline_exceeded: deadline exceeded)"; !errors.Is(err, errBroken) || !strings.Contains(out, want) {
		t.Errorf("run: %v\n%s\nwant errBroken and %q", err, out, want)
	}
}

// TestVerifyOfflinePurgedTenant: a tenant's digests outlive it as its
// events do: after the purge (its last events, tenant.deleted among them,
// signed by a digest taken after it) a platform admin downloads its
// evidence by its id and it verifies.
func TestVerifyOfflinePurgedTenant(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		r := startReplica(t, st, clock.System, func(c *config.Config) { c.DeletionGrace = 0 })
		var created struct {
			Tenant struct{ ID string } `json:"tenant"`
		}
		if err := json.Unmarshal(r.do(t, "POST", "/v1/tenants", `{"slug":"hooli","name":"Hooli"}`), &created); err != nil {
			t.Fatal(err)
		}
		id := created.Tenant.ID
		r.do(t, "POST", "/v1/tenants/"+id+"/cancel", `{}`)
		r.digestOf(t, id)
		r.do(t, "DELETE", "/v1/tenants/"+id, "")
		if n, err := r.app.Tenants.PurgeDue(storetest.SystemContext()); err != nil || n != 1 {
			t.Fatalf("PurgeDue = %d, %v; want the tenant purged", n, err)
		}
		_, last := r.digestOf(t, id)
		f := r.downloadOf(t, id)
		events := lines(t, f.events)
		if got := events[len(events)-1]["action"]; got != "tenant.deleted" {
			t.Errorf("last exported event %v, want tenant.deleted", got)
		}
		out, err := verifyOfflineRun(f)
		if want := "ok: tenant " + id + ": " + fmt.Sprint(len(events)) + " events (chain_seq 1-" + last + ") verified against 2 digests, signed through chain_seq " + last; err != nil || !strings.Contains(out, want) {
			t.Errorf("run: %v\n%s\nwant %q", err, out, want)
		}
	})
}

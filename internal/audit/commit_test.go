package audit_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

// gate holds the group's chain from outside the service until the
// returned function is called: on PostgreSQL the chain's advisory lock in
// a transaction of its own, on SQLite a transaction on the store's one
// connection. Appends arriving meanwhile queue up behind the first one.
func gate(t *testing.T, st *store.Store, groupID string) (release func()) {
	t.Helper()
	tx, err := st.DB.BeginTx(storetest.SystemContext(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Postgres() {
		if _, err := tx.Exec("SELECT pg_advisory_xact_lock(hashtextextended($1, 7351))", "audit:"+groupID); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// appendResult is one caller's answer.
type appendResult struct {
	ev  *audit.Event
	err error
}

// appendAll appends ins concurrently, one goroutine each, while the chain
// is gated, releasing it once every goroutine had time to queue.
func appendAll(t *testing.T, f *fixture, groupID string, ins []audit.AppendInput) []appendResult {
	t.Helper()
	release := gate(t, f.st, groupID)
	out := make([]appendResult, len(ins))
	var wg sync.WaitGroup
	for i, in := range ins {
		wg.Go(func() {
			ev, err := f.svc.Append(admin, in)
			out[i] = appendResult{ev, err}
		})
	}
	time.Sleep(300 * time.Millisecond)
	release()
	wg.Wait()
	return out
}

func numbered(tenantID string, i int) audit.AppendInput {
	in := validInput(tenantID)
	in.Actor.ID = fmt.Sprintf("user-%d", i)
	in.Fields = map[string]string{"n": fmt.Sprint(i)}
	return in
}

// TestGroupCommit: appends of many goroutines into one tenant are
// committed in a few batches, each caller answered with its own event, and
// the chain verifies.
func TestGroupCommit(t *testing.T) {
	eachFixture(t, 0, func(t *testing.T, f *fixture) {
		tid := f.tenant(t, "acme")
		const n = 64
		ins := make([]audit.AppendInput, n)
		for i := range ins {
			ins[i] = numbered(tid, i)
		}
		got := appendAll(t, f, tid, ins)
		seen := map[string]int{}
		seqs := map[int64]bool{}
		for i, r := range got {
			if r.err != nil {
				t.Fatalf("append %d: %v", i, r.err)
			}
			if r.ev.ActorID != ins[i].Actor.ID || r.ev.Fields["n"] != fmt.Sprint(i) {
				t.Errorf("append %d answered the event of %s (fields %v)", i, r.ev.ActorID, r.ev.Fields)
			}
			if j, dup := seen[r.ev.ID.String()]; dup {
				t.Errorf("appends %d and %d answered the same event %s", j, i, r.ev.ID)
			}
			seen[r.ev.ID.String()] = i
			seqs[r.ev.ChainSeq] = true
		}
		for seq := int64(1); seq <= n; seq++ {
			if !seqs[seq] {
				t.Errorf("no caller was answered chain_seq %d", seq)
			}
		}
		res, err := f.svc.VerifyChain(admin, tid)
		if err != nil {
			t.Fatal(err)
		}
		if want := (audit.VerifyResult{TenantID: tid, OK: true, EventsChecked: n}); res != want {
			t.Errorf("VerifyChain = %+v, want %+v", res, want)
		}
		batches, appends := audit.GroupCommits(f.svc)
		if appends != n || batches > n/8 {
			t.Errorf("%d appends in %d commits, want %d in at most %d", appends, batches, n, n/8)
		}
	})
}

// TestGroupCommitIdempotency: in one batch, repeats of a key share its
// event, a key already stored answers the stored event or, with other
// content, its own Conflict, and the other appends succeed.
func TestGroupCommitIdempotency(t *testing.T) {
	eachFixture(t, 0, func(t *testing.T, f *fixture) {
		tid := f.tenant(t, "acme")
		stored := validInput(tid)
		stored.IdempotencyKey = "stored"
		first := f.append(t, admin, stored)

		var ins []audit.AppendInput
		for i := range 8 {
			ins = append(ins, numbered(tid, i))
		}
		repeat := numbered(tid, 100)
		repeat.IdempotencyKey = "in-batch"
		ins = append(ins, repeat, repeat, repeat) // 8, 9, 10
		ins = append(ins, stored)                 // 11
		changed := stored
		changed.Description = "something else"
		ins = append(ins, changed) // 12
		for i := range 4 {
			ins = append(ins, numbered(tid, 200+i))
		}
		got := appendAll(t, f, tid, ins)
		for i, r := range got {
			switch {
			case i == 12:
				if errs.CodeOf(r.err) != errs.Conflict {
					t.Errorf("append %d (stored key, other content): %v, want conflict", i, r.err)
				}
			case r.err != nil:
				t.Errorf("append %d: %v", i, r.err)
			case i == 11 && r.ev.ID != first.ID:
				t.Errorf("append %d (stored key): event %s, want the stored %s", i, r.ev.ID, first.ID)
			case (i == 9 || i == 10) && (got[8].ev == nil || r.ev.ID != got[8].ev.ID):
				t.Errorf("append %d (repeated key in the batch): event %s, want the first's", i, r.ev.ID)
			}
		}
		res, err := f.svc.VerifyChain(admin, tid)
		if err != nil {
			t.Fatal(err)
		}
		// stored + 8 + one for the repeated key + 4.
		if want := (audit.VerifyResult{TenantID: tid, OK: true, EventsChecked: 14}); res != want {
			t.Errorf("VerifyChain = %+v, want %+v", res, want)
		}
	})
}

// TestGroupCommitOneBadAppend: an append the database refuses (here a
// trigger refusing one actor) fails alone; the rest of its batch is
// written and the chain verifies.
func TestGroupCommitOneBadAppend(t *testing.T) {
	st := storetest.Postgres(t)
	f := newFixture(t, st, 0)
	tid := f.tenant(t, "acme")
	ddl := func(q string) {
		t.Helper()
		if _, err := st.DB.ExecContext(storetest.SystemContext(), q); err != nil {
			t.Fatal(err)
		}
	}
	ddl(`CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NEW.actor_id = 'poison' THEN RAISE EXCEPTION 'poison'; END IF; RETURN NEW; END $$`)
	ddl(`CREATE TRIGGER refuse_poison BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_poison()`)
	var ins []audit.AppendInput
	for i := range 20 {
		in := numbered(tid, i)
		if i == 7 {
			in.Actor.ID = "poison"
		}
		ins = append(ins, in)
	}
	got := appendAll(t, f, tid, ins)
	for i, r := range got {
		if (r.err != nil) != (i == 7) {
			t.Errorf("append %d: error %v, want one only for append 7", i, r.err)
		}
	}
	if batches, appends := audit.GroupCommits(f.svc); appends != 19 || batches >= 10 {
		t.Errorf("%d appends in %d commits, want 19 in fewer than 10 (the failed batch halved)", appends, batches)
	}
	res, err := f.svc.VerifyChain(admin, tid)
	if err != nil {
		t.Fatal(err)
	}
	if want := (audit.VerifyResult{TenantID: tid, OK: true, EventsChecked: 19}); res != want {
		t.Errorf("VerifyChain = %+v, want %+v", res, want)
	}
}

// TestGroupCommitTwoReplicas: two services, each with its own pool and
// batches (two replicas), append concurrently into one tenant on one
// database; the chain lock serialises their batches and the chain
// verifies.
func TestGroupCommitTwoReplicas(t *testing.T) {
	url := pgtest.MigratedURL(t)
	open := func() *store.Store {
		st, err := store.Open(context.Background(), url, store.Options{MaxConns: 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	a, b := newFixture(t, open(), 0), newFixture(t, open(), 0)
	tid := a.tenant(t, "acme")
	const perReplica, rounds = 32, 5
	var wg sync.WaitGroup
	errc := make(chan error, 2*perReplica*rounds)
	for _, f := range []*fixture{a, b} {
		for g := range perReplica {
			wg.Go(func() {
				for r := range rounds {
					if _, err := f.svc.Append(admin, numbered(tid, g*rounds+r)); err != nil {
						errc <- err
					}
				}
			})
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	res, err := a.svc.VerifyChain(admin, tid)
	if err != nil {
		t.Fatal(err)
	}
	if want := (audit.VerifyResult{TenantID: tid, OK: true, EventsChecked: 2 * perReplica * rounds}); res != want {
		t.Errorf("VerifyChain = %+v, want %+v", res, want)
	}
	for name, f := range map[string]*fixture{"a": a, "b": b} {
		batches, appends := audit.GroupCommits(f.svc)
		t.Logf("replica %s: %d appends in %d commits", name, appends, batches)
		if appends != perReplica*rounds {
			t.Errorf("replica %s wrote %d appends, want %d", name, appends, perReplica*rounds)
		}
	}
}

// TestGroupCommitCallerLeaves: a caller whose context ends while its
// append is still queued gets the context's error and its event is not
// written; the batch it would have joined is.
func TestGroupCommitCallerLeaves(t *testing.T) {
	eachFixture(t, 0, func(t *testing.T, f *fixture) {
		tid := f.tenant(t, "acme")
		release := gate(t, f.st, tid)
		var wg sync.WaitGroup
		var leaderErr, stayErr, leftErr error
		wg.Go(func() { _, leaderErr = f.svc.Append(admin, numbered(tid, 0)) })
		time.Sleep(100 * time.Millisecond) // the leader waits for the chain
		wg.Go(func() { _, stayErr = f.svc.Append(admin, numbered(tid, 1)) })
		ctx, cancel := context.WithTimeout(admin, 200*time.Millisecond)
		defer cancel()
		_, leftErr = f.svc.Append(ctx, numbered(tid, 2))
		release()
		wg.Wait()
		if leaderErr != nil || stayErr != nil {
			t.Fatalf("appends that stayed: %v, %v", leaderErr, stayErr)
		}
		if leftErr != context.DeadlineExceeded {
			t.Errorf("append whose caller left: %v, want %v", leftErr, context.DeadlineExceeded)
		}
		res, err := f.svc.VerifyChain(admin, tid)
		if err != nil {
			t.Fatal(err)
		}
		if want := (audit.VerifyResult{TenantID: tid, OK: true, EventsChecked: 2}); res != want {
			t.Errorf("VerifyChain = %+v, want %+v", res, want)
		}
	})
}

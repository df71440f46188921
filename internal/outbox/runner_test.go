package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	entoutbox "github.com/platform/tenant-registry/ent/outbox"
	"github.com/platform/tenant-registry/internal/logtest"
	"github.com/platform/tenant-registry/internal/outbox"
	"github.com/platform/tenant-registry/internal/pgtest"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const kind = "test.job"

// fixture is a store with one tenant, and a runner whose attempts are
// made of the fixture's call and verdict, each recording what it was given.
type fixture struct {
	st    *store.Store
	clock *storetest.Clock
	logs  *logtest.Buffer
	tid   uuid.UUID

	mu      sync.Mutex
	call    func(ctx context.Context, job *ent.Outbox) (string, error)
	verdict outbox.Verdict
	calls   map[uuid.UUID]int
	records []record
}

// record is what one Attempt.Record was given.
type record struct {
	attempt int
	res     string
	perr    string
}

func newFixture(t *testing.T, st *store.Store) *fixture {
	t.Helper()
	f := &fixture{st: st, clock: storetest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
		logs: &logtest.Buffer{}, tid: uuid.New(), calls: map[uuid.UUID]int{}}
	now := f.clock.Now()
	if err := st.Client.Tenant.Create().SetID(f.tid).SetSlug("t-" + f.tid.String()[:8]).SetName("Acme").
		SetCreatedAt(now).SetUpdatedAt(now).Exec(storetest.SystemContext()); err != nil {
		t.Fatal(err)
	}
	f.call = func(context.Context, *ent.Outbox) (string, error) { return "ok", nil }
	return f
}

func (f *fixture) runner(dueOnly bool) *outbox.Runner[string] {
	return &outbox.Runner[string]{
		Client: f.st.Client, Clock: f.clock.Now, Log: slog.New(slog.NewJSONHandler(f.logs, nil)),
		Subject: "test job", DueOnly: dueOnly,
		Prepare: func(_ context.Context, job *ent.Outbox) (*outbox.Attempt[string], error) {
			return &outbox.Attempt[string]{
				Tenant: job.Edges.Tenant.Slug,
				Call: func(ctx context.Context) (string, error) {
					f.mu.Lock()
					f.calls[job.ID]++
					call := f.call
					f.mu.Unlock()
					return call(ctx, job)
				},
				Scrub: func(s string) string { return strings.ReplaceAll(s, "s3cret", "[redacted]") },
				Check: func(context.Context, *ent.Tx, error) (outbox.Verdict, error) { return f.verdict, nil },
				Record: func(_ context.Context, _ *ent.Tx, _ time.Time, attempt int, res string, perr error) error {
					r := record{attempt: attempt, res: res}
					if perr != nil {
						r.perr = perr.Error()
					}
					f.mu.Lock()
					f.records = append(f.records, r)
					f.mu.Unlock()
					return nil
				},
			}, nil
		},
	}
}

// job writes a job of the fixture's tenant, due at, with a payload.
func (f *fixture) job(t *testing.T, k string, at time.Time) uuid.UUID {
	t.Helper()
	id := uuid.New()
	now := f.clock.Now()
	if err := f.st.Client.Outbox.Create().SetID(id).SetTenantID(f.tid).SetKind(k).
		SetPayload(map[string]string{"email": "a@example.com"}).
		SetNextAttemptAt(at).SetCreatedAt(now).SetUpdatedAt(now).Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	return id
}

func (f *fixture) row(t *testing.T, id uuid.UUID) *ent.Outbox {
	t.Helper()
	j, err := f.st.Client.Outbox.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// want is a job row's state after an attempt; next is next_attempt_at's
// offset from the fixture clock's start.
type want struct {
	attempts  int
	next      time.Duration
	lastError string
	done      bool
	leased    bool
	payload   bool
}

func (f *fixture) check(t *testing.T, id uuid.UUID, w want, start time.Time) {
	t.Helper()
	j := f.row(t, id)
	got := want{attempts: j.Attempts, next: j.NextAttemptAt.Sub(start), lastError: j.LastError,
		done: j.DoneAt != nil, leased: j.LockedUntil != nil || j.LeaseToken != nil, payload: j.Payload != nil}
	if got != w {
		t.Errorf("job = %+v, want %+v", got, w)
	}
}

var errKeycloak = errors.New("keycloak: 503 (client secret s3cret)")

func TestRunOutcome(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		for _, tc := range []struct {
			name    string
			err     error
			verdict outbox.Verdict
			dueOnly bool
			dueIn   time.Duration
			// attempted, done: what Run and RunNow answer.
			attempted, done bool
			row             want
			records         []record
		}{
			{name: "success", attempted: true, done: true,
				row:     want{attempts: 1, done: true},
				records: []record{{attempt: 1, res: "ok"}}},
			{name: "failure retries after the backoff, scrubbed", err: errKeycloak, attempted: true,
				row:     want{attempts: 1, next: 5 * time.Second, lastError: "keycloak: 503 (client secret [redacted])", payload: true},
				records: []record{{attempt: 1, res: "partial", perr: "keycloak: 503 (client secret [redacted])"}}},
			{name: "changed meanwhile: due again at once, nothing recorded", verdict: outbox.Again, attempted: true,
				row: want{attempts: 1, payload: true}},
			{name: "dropped: nothing recorded, the lease left to run out", verdict: outbox.Drop, attempted: true,
				row: want{attempts: 1, leased: true, payload: true}},
			{name: "not due, claimed anyway", dueIn: time.Hour, attempted: true, done: true,
				row:     want{attempts: 1, next: time.Hour, done: true},
				records: []record{{attempt: 1, res: "ok"}}},
			{name: "not due, DueOnly: not claimed", dueIn: time.Hour, dueOnly: true,
				row: want{next: time.Hour, payload: true}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for _, entry := range []string{"Run", "RunNow"} {
					t.Run(entry, func(t *testing.T) {
						f := newFixture(t, st)
						if _, err := st.Client.Outbox.Delete().Exec(context.Background()); err != nil {
							t.Fatal(err)
						}
						start := f.clock.Now()
						f.verdict = tc.verdict
						f.call = func(context.Context, *ent.Outbox) (string, error) {
							if tc.err != nil {
								return "partial", tc.err
							}
							return "ok", nil
						}
						id := f.job(t, kind, start.Add(tc.dueIn))
						r := f.runner(tc.dueOnly)
						var attempted, done bool
						var res string
						if entry == "Run" {
							var err error
							attempted, res, err = r.Run(context.Background(), id, time.Second)
							if err != nil {
								t.Fatal(err)
							}
							done = res != ""
						} else {
							res, done = r.RunNow(context.Background(), f.tid, kind)
							attempted = f.calls[id] > 0
						}
						if attempted != tc.attempted || done != tc.done {
							t.Errorf("attempted, done = %v, %v (res %q), want %v, %v", attempted, done, res, tc.attempted, tc.done)
						}
						if done && res != "ok" {
							t.Errorf("res = %q, want ok", res)
						}
						f.check(t, id, tc.row, start)
						if got := f.records; !equalRecords(got, tc.records) {
							t.Errorf("records = %+v, want %+v", got, tc.records)
						}
						if strings.Contains(f.logs.String(), "s3cret") {
							t.Errorf("logs hold the secret: %s", f.logs.String())
						}
					})
				}
			})
		}
	})
}

func equalRecords(a, b []record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRunDueBackoff fails a job again and again: each failure makes it due
// after the next backoff (doubling from 5 s, at most 15 min), never given
// up, and RunDue does not run it before.
func TestRunDueBackoff(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st)
		f.call = func(context.Context, *ent.Outbox) (string, error) { return "", errKeycloak }
		start := f.clock.Now()
		id := f.job(t, kind, start)
		r := f.runner(false)
		ctx := context.Background()
		at := start
		for i, wait := range []time.Duration{
			5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
			160 * time.Second, 320 * time.Second, 640 * time.Second, 15 * time.Minute, 15 * time.Minute, 15 * time.Minute,
		} {
			attempt := i + 1
			if n, err := r.RunDue(ctx, entoutbox.Kind(kind)); n != 1 || err != nil {
				t.Fatalf("attempt %d: RunDue = %d, %v; want 1", attempt, n, err)
			}
			next := f.clock.Now().Sub(start) + wait
			f.check(t, id, want{attempts: attempt, next: next, lastError: "keycloak: 503 (client secret [redacted])", payload: true}, start)
			at = start.Add(next)
			f.clock.Advance(at.Sub(f.clock.Now()) - time.Microsecond)
			if n, err := r.RunDue(ctx, entoutbox.Kind(kind)); n != 0 || err != nil {
				t.Fatalf("after attempt %d, 1µs before due: RunDue = %d, %v; want 0", attempt, n, err)
			}
			f.clock.Advance(time.Microsecond)
		}
		if got := len(f.records); got != 11 {
			t.Errorf("%d failures recorded, want 11", got)
		}
		if n, err := r.RunDue(ctx, entoutbox.KindNEQ(kind)); n != 0 || err != nil {
			t.Errorf("RunDue of other kinds = %d, %v; want 0", n, err)
		}
	})
}

// TestRunDueHandsBack stops the worker while its call runs: the job is
// handed back (lease cleared, due at once, the attempt not counted) and
// nothing is recorded.
func TestRunDueHandsBack(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st)
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		f.call = func(callCtx context.Context, _ *ent.Outbox) (string, error) {
			stop() // the replica stops mid-call
			<-callCtx.Done()
			return "", callCtx.Err()
		}
		start := f.clock.Now()
		first := f.job(t, kind+":1", start)
		second := f.job(t, kind+":2", start.Add(time.Microsecond))
		f.clock.Advance(time.Second)
		n, err := f.runner(false).RunDue(ctx, entoutbox.KindHasPrefix(kind))
		if n != 1 || err != nil {
			t.Fatalf("RunDue = %d, %v; want 1 (then stopped)", n, err)
		}
		f.check(t, first, want{next: time.Second, payload: true}, start)
		f.check(t, second, want{next: time.Microsecond, payload: true}, start)
		if len(f.records) != 0 {
			t.Errorf("records = %+v, want none", f.records)
		}
		if !strings.Contains(f.logs.String(), "test job: stopping; job handed back") {
			t.Errorf("logs lack the hand-back:\n%s", f.logs.String())
		}
		// A call that succeeds while the worker stops is recorded (the
		// second job is due first now).
		ctx, stop = context.WithCancel(context.Background())
		defer stop()
		f.call = func(context.Context, *ent.Outbox) (string, error) { stop(); return "ok", nil }
		if n, err := f.runner(false).RunDue(ctx, entoutbox.KindHasPrefix(kind)); n != 1 || err != nil {
			t.Fatalf("RunDue = %d, %v; want 1 (then stopped)", n, err)
		}
		f.check(t, second, want{attempts: 1, next: time.Microsecond, done: true}, start)
		f.check(t, first, want{next: time.Second, payload: true}, start)
		if want := []record{{attempt: 1, res: "ok"}}; !equalRecords(f.records, want) {
			t.Errorf("records = %+v, want %+v", f.records, want)
		}
	})
}

// TestLease: a job another worker holds is not claimed, and a worker whose
// lease was taken over mid-call has its outcome refused.
func TestLease(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st)
		start := f.clock.Now()
		id := f.job(t, kind, start)
		ctx := context.Background()
		other := uuid.New()
		f.call = func(context.Context, *ent.Outbox) (string, error) {
			// Meanwhile the lease ran out and another worker claimed the job.
			if err := st.Client.Outbox.UpdateOneID(id).SetLeaseToken(other).Exec(ctx); err != nil {
				t.Error(err)
			}
			return "ok", nil
		}
		r := f.runner(false)
		attempted, res, err := r.Run(ctx, id, time.Second)
		if !attempted || res != "" || err != nil {
			t.Fatalf("Run = %v, %q, %v; want attempted, no result", attempted, res, err)
		}
		j := f.row(t, id)
		if j.DoneAt != nil || j.LeaseToken == nil || *j.LeaseToken != other || j.LockedUntil == nil {
			t.Errorf("job = done %v, token %v, locked_until %v; want the other worker's lease", j.DoneAt, j.LeaseToken, j.LockedUntil)
		}
		if len(f.records) != 0 {
			t.Errorf("records = %+v, want none", f.records)
		}
		if !strings.Contains(f.logs.String(), "test job: lease lost") {
			t.Errorf("logs lack the lost lease:\n%s", f.logs.String())
		}
		// Held (locked_until ahead): neither Run nor RunDue claims it.
		calls := f.calls[id]
		if attempted, _, err := r.Run(ctx, id, time.Second); attempted || err != nil {
			t.Errorf("Run of a held job = %v, %v; want not attempted", attempted, err)
		}
		if n, err := r.RunDue(ctx, entoutbox.KindHasPrefix(kind)); n != 0 || err != nil {
			t.Errorf("RunDue with the job held = %d, %v; want 0", n, err)
		}
		if f.calls[id] != calls {
			t.Errorf("a held job was called")
		}
	})
}

// TestPrepareFails: a job whose read or preparation fails is not called,
// and keeps its lease: it is tried again when the lease runs out, not on
// the next round.
func TestPrepareFails(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st)
		start := f.clock.Now()
		id := f.job(t, kind, start)
		ctx := context.Background()
		r := f.runner(false)
		prepare := r.Prepare
		r.Prepare = func(context.Context, *ent.Outbox) (*outbox.Attempt[string], error) {
			return nil, errors.New("database: connection reset")
		}
		if attempted, _, err := r.Run(ctx, id, time.Second); !attempted || err == nil || !strings.Contains(err.Error(), "connection reset") {
			t.Fatalf("Run = %v, %v; want attempted, the read's error", attempted, err)
		}
		f.check(t, id, want{attempts: 1, next: 0, leased: true, payload: true}, start)
		r.Prepare = prepare
		if n, err := r.RunDue(ctx, entoutbox.KindHasPrefix(kind)); n != 0 || err != nil {
			t.Errorf("RunDue right after = %d, %v; want 0 (the job is still leased)", n, err)
		}
		if f.calls[id] != 0 || len(f.records) != 0 {
			t.Errorf("calls %d, records %+v; want none", f.calls[id], f.records)
		}
	})
}

// TestRunDueConcurrent: workers running at once (two stacks on one
// database) run each job exactly once.
func TestRunDueConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st)
		f.call = func(context.Context, *ent.Outbox) (string, error) {
			time.Sleep(5 * time.Millisecond)
			return "ok", nil
		}
		start := f.clock.Now()
		var jobs []uuid.UUID
		for i := range 10 {
			jobs = append(jobs, f.job(t, fmt.Sprintf("%s:%d", kind, i), start.Add(time.Duration(i)*time.Microsecond)))
		}
		f.clock.Advance(time.Second)
		runners := []*outbox.Runner[string]{f.runner(false), f.runner(true)}
		var wg sync.WaitGroup
		var mu sync.Mutex
		total := 0
		for i := range 4 {
			wg.Go(func() {
				n, err := runners[i%2].RunDue(context.Background(), entoutbox.KindHasPrefix(kind))
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				total += n
				mu.Unlock()
			})
		}
		wg.Wait()
		for i, id := range jobs {
			if f.calls[id] != 1 {
				t.Errorf("job %d called %d times, want 1", i, f.calls[id])
			}
			if j := f.row(t, id); j.DoneAt == nil {
				t.Errorf("job %d not done", i)
			}
		}
		if total != len(jobs) || len(f.records) != len(jobs) {
			t.Errorf("attempted %d, recorded %d; want %d each", total, len(f.records), len(jobs))
		}
	})
}

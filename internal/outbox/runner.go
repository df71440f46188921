// Package outbox runs the jobs of the Keycloak outbox (the outbox table):
// it finds the due ones, claims each with a fenced lease (internal/lease),
// makes the attempt the job's kind supplies, hands a job back when the
// worker stops mid-call, and records the outcome — done, or retried with
// Backoff until it succeeds — so that concurrent workers (goroutines or
// replicas on one database) never run one job at once. The packages that
// own the kinds (tenant, sso) supply only their attempt: the call, and what
// its outcome writes.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	entoutbox "github.com/platform/tenant-registry/ent/outbox"
	"github.com/platform/tenant-registry/ent/predicate"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/lease"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/text"
)

// The retry policy of every kind.
const (
	// leaseFor is how long a claimed job is reserved for the worker that
	// claimed it; it outlives attemptTimeout so that a job is never run by
	// two workers at once, and a crashed worker's job is retried after it.
	leaseFor       = 5 * time.Minute
	attemptTimeout = 2 * time.Minute
	// InlineTimeout bounds the call of an attempt made inside an RPC (the
	// first one, right after the change that queued the job), so a hanging
	// Keycloak slows the RPC by at most this much; Budget also keeps it
	// within rpcShare of what is left of the RPC's deadline, so that the
	// outcome is recorded and the answer sent before the deadline.
	InlineTimeout = 6 * time.Second
	rpcShare      = 0.6
	// MinBudget: with less time left an RPC does not attempt at all (the
	// worker will).
	MinBudget = 500 * time.Millisecond
	// recordTimeout bounds the reads and writes around the call, which run
	// detached from the caller's context: the outcome is recorded whatever
	// happens to the request.
	recordTimeout = 15 * time.Second
	backoffMin    = 5 * time.Second
	backoffMax    = 15 * time.Minute
	batchSize     = 20
)

// Backoff is the wait after the n-th failed attempt (n ≥ 1): 5s, 10s, 20s,
// … at most 15 minutes. Jobs are retried until they succeed.
func Backoff(n int) time.Duration { return lease.Backoff(n, backoffMin, backoffMax) }

// Budget is how long an attempt made inside an RPC may spend in its call:
// at most limit, and at most rpcShare of what is left of ctx's deadline.
func Budget(ctx context.Context, limit time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return min(limit, time.Duration(float64(time.Until(dl))*rpcShare))
	}
	return limit
}

// Verdict is what Attempt.Check decides before an outcome is written.
type Verdict int

const (
	// Record writes the outcome.
	Record Verdict = iota
	// Again records nothing: the job's subject changed while the call ran,
	// so the job is released, due at once (the attempt counted), to run
	// again with what is current.
	Again
	// Drop records nothing and leaves the lease to run out, as when
	// another worker took the job over (the job is not due any more).
	Drop
)

// Attempt is one attempt of a job, made by its kind's package (Runner.Prepare).
type Attempt[R any] struct {
	// Tenant names the job's tenant in logs (its slug).
	Tenant string
	// Call is the attempt's work outside the database (Keycloak). Its
	// error is the attempt's failure.
	Call func(ctx context.Context) (R, error)
	// Scrub, when set, takes out of the call's error text what must never
	// be recorded or logged (a client secret).
	Scrub func(string) string
	// Check, when set, runs first in the outcome's transaction (perr nil:
	// the call succeeded) and tells whether to record it.
	Check func(ctx context.Context, tx *ent.Tx, perr error) (Verdict, error)
	// Record writes, in the outcome's transaction and once the job's row
	// is marked done (perr nil) or due again after Backoff(attempt), the
	// kind's state and audit event.
	Record func(ctx context.Context, tx *ent.Tx, now time.Time, attempt int, res R, perr error) error
	// Done, when set, runs once a success is committed.
	Done func(ctx context.Context)
}

// Runner runs the jobs of a family of kinds, whose attempts give an R.
type Runner[R any] struct {
	Client *ent.Client
	Clock  clock.Clock
	Log    *slog.Logger
	// Subject names the jobs at the head of log messages ("keycloak
	// provisioning" failed; will retry); empty: "outbox job".
	Subject string
	// DueOnly makes a claim require the job to be due, so that an attempt
	// made inside an RPC never runs early a job queued for later.
	DueOnly bool
	// Name is a kind's name in logs and errors; nil: the kind itself.
	Name func(kind string) string
	// Prepare reads what job (its tenant loaded) needs and returns its
	// attempt.
	Prepare func(ctx context.Context, job *ent.Outbox) (*Attempt[R], error)
}

// errLeaseLost: the outcome's write found another lease holder's token.
var errLeaseLost = errors.New("outbox lease lost")

// outcome is how a claimed attempt ended.
type outcome int

const (
	notClaimed outcome = iota
	succeeded
	other // failed (and recorded), handed back, lost, dropped or to run again
)

// RunDue runs the jobs of kinds that are due now, oldest due first, each
// claimed with a lease. It returns how many it attempted.
//
// ctx is the worker's: when it ends (the replica stops), RunDue claims
// nothing more, and a job whose call it cuts short is handed back — its
// lease released, due at once, the attempt not counted — so that another
// replica takes it over now rather than when the lease runs out. A call
// that completed is recorded as usual.
func (r *Runner[R]) RunDue(ctx context.Context, kinds predicate.Outbox) (int, error) {
	now := r.Clock()
	jobs, err := r.Client.Outbox.Query().
		Where(kinds, entoutbox.DoneAtIsNil(), entoutbox.NextAttemptAtLTE(now), leaseFree(now)).
		Order(ent.Asc(entoutbox.FieldNextAttemptAt)).
		Limit(batchSize).
		IDs(ctx)
	if err != nil {
		return 0, fmt.Errorf("scan outbox: %w", err)
	}
	n := 0
	for _, id := range jobs {
		if ctx.Err() != nil {
			return n, nil // stopping: the rest stays due for another worker
		}
		o, _, err := r.run(ctx, id, attemptTimeout, true)
		if err != nil {
			return n, err
		}
		if o != notClaimed {
			n++
		}
	}
	return n, nil
}

// RunNow makes an attempt of the tenant's job of kind right after the
// change that queued it, within the RPC's budget (InlineTimeout); the
// worker retries what it leaves undone. done tells that the attempt
// succeeded, res is then its result.
func (r *Runner[R]) RunNow(ctx context.Context, tenantID uuid.UUID, kind string) (res R, done bool) {
	b := Budget(ctx, InlineTimeout)
	if b < MinBudget {
		return res, false // too little time left in the RPC: the worker will do it
	}
	id, err := r.Client.Outbox.Query().Where(entoutbox.TenantID(tenantID), entoutbox.Kind(kind)).OnlyID(ctx)
	if err != nil {
		r.Log.ErrorContext(ctx, "read outbox job", "kind", r.name(kind), "error", err)
		return res, false
	}
	o, res, err := r.run(ctx, id, b, false)
	if err != nil {
		// The job stays in the outbox; the worker retries it.
		r.Log.ErrorContext(ctx, "outbox job attempt", "kind", r.name(kind), "error", err)
		return res, false
	}
	return res, o == succeeded
}

// Run claims job id and runs it once, spending at most timeout in its
// call, whatever its backoff (unless DueOnly). attempted is false when
// another worker holds it or it is done; res is the result of a success;
// the error is only for failures to read or write the database — a failed
// call is recorded, not returned.
func (r *Runner[R]) Run(ctx context.Context, id uuid.UUID, timeout time.Duration) (attempted bool, res R, err error) {
	o, res, err := r.run(ctx, id, timeout, false)
	return o != notClaimed, res, err
}

// run is Run, and with handBack (the worker's attempts) a call that ctx's
// end cuts short hands the job back instead of recording a failure.
//
// The claim takes a lease (locked_until, by the database's clock on
// PostgreSQL) with a new fencing token, and every write of the outcome
// requires the token: a worker that outlived its lease, whose job another
// worker took over, has its outcome refused (errLeaseLost) rather than
// overwriting the newer holder's. Everything after the claim runs detached
// from ctx (each step with its own timeout), so a request that ends
// mid-attempt leaves the outcome recorded, not a lease to wait out —
// except, with handBack, the call.
func (r *Runner[R]) run(ctx context.Context, id uuid.UUID, timeout time.Duration, handBack bool) (outcome, R, error) {
	var zero R
	token := uuid.New()
	now := r.Clock()
	claim := []predicate.Outbox{entoutbox.ID(id), entoutbox.DoneAtIsNil(), leaseFree(now)}
	if r.DueOnly {
		claim = append(claim, entoutbox.NextAttemptAtLTE(now))
	}
	claimed, err := r.Client.Outbox.Update().
		Where(claim...).
		SetLeaseToken(token).AddAttempts(1).SetUpdatedAt(now).
		Modify(lease.Set(entoutbox.FieldLockedUntil, now, leaseFor)).
		Save(ctx)
	if err != nil || claimed == 0 {
		return notClaimed, zero, err
	}
	dctx := context.WithoutCancel(ctx)
	readCtx, cancel := context.WithTimeout(dctx, recordTimeout)
	job, err := r.Client.Outbox.Query().Where(entoutbox.ID(id)).WithTenant().Only(readCtx)
	var a *Attempt[R]
	if err == nil {
		a, err = r.Prepare(readCtx, job)
	}
	cancel()
	if err != nil {
		// The lease is kept: the job is tried again when it runs out
		// (leaseFor), not on every round while the read keeps failing.
		return other, zero, fmt.Errorf("read outbox job: %w", err)
	}
	kind := r.name(job.Kind)
	callParent := dctx
	if handBack {
		callParent = ctx
	}
	callCtx, cancel := context.WithTimeout(callParent, timeout)
	res, perr := a.Call(callCtx)
	cancel()
	if handBack && perr != nil && ctx.Err() != nil {
		return other, zero, r.handBack(dctx, id, token, kind, a.Tenant)
	}
	if perr != nil && a.Scrub != nil {
		perr = errors.New(a.Scrub(perr.Error()))
	}

	rctx, cancel := context.WithTimeout(dctx, recordTimeout)
	defer cancel()
	mine := entoutbox.And(entoutbox.ID(id), entoutbox.LeaseToken(token), entoutbox.DoneAtIsNil())
	verdict := Record
	err = store.WithTx(rctx, r.Client, func(tx *ent.Tx) error {
		if a.Check != nil {
			var err error
			if verdict, err = a.Check(rctx, tx, perr); err != nil {
				return err
			}
		}
		now := r.Clock()
		upd := tx.Outbox.Update().Where(mine).ClearLockedUntil().ClearLeaseToken().SetUpdatedAt(now)
		switch {
		case verdict == Drop:
			return errLeaseLost
		case verdict == Again:
			upd.SetNextAttemptAt(now)
		case perr != nil:
			upd.SetLastError(text.Truncate(perr.Error(), 2000)).SetNextAttemptAt(now.Add(Backoff(job.Attempts)))
		default:
			// Done exactly once, by the lease holder: only the transaction
			// that flips done_at records the success. What the payload held
			// (an invitee's address) is not kept once it served.
			upd.SetDoneAt(now).SetLastError("").ClearPayload()
		}
		n, err := upd.Save(rctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return errLeaseLost
		}
		if verdict == Again {
			return nil
		}
		return a.Record(rctx, tx, now, job.Attempts, res, perr)
	})
	switch {
	case errors.Is(err, errLeaseLost):
		// Another worker took the job over (this one outlived its lease),
		// or the job is not due any more: its outcome stands, this one is
		// dropped.
		r.Log.WarnContext(ctx, r.subject()+": lease lost or job overtaken before the outcome was recorded; another worker's outcome stands",
			"kind", kind, "tenant", a.Tenant, "attempt", job.Attempts, "keycloak_error", perr)
		return other, zero, nil
	case err != nil:
		return other, zero, fmt.Errorf("record %s outcome: %w", kind, err)
	case verdict == Again:
		return other, zero, nil
	case perr != nil:
		r.Log.WarnContext(ctx, r.subject()+" failed; will retry", "kind", kind, "tenant", a.Tenant, "attempt", job.Attempts, "error", perr)
		return other, zero, nil
	}
	if a.Done != nil {
		a.Done(ctx)
	}
	return succeeded, res, nil
}

// handBack releases the lease token holds on job id without an outcome:
// the job is due at once and the cut-short attempt is not counted, so the
// next worker (on another replica) runs it as this one would have.
func (r *Runner[R]) handBack(ctx context.Context, id, token uuid.UUID, kind, tenant string) error {
	n, err := r.releaseN(ctx, id, token, true)
	if err != nil {
		// The worker is stopping and logs nothing more: say it here.
		r.Log.WarnContext(ctx, r.subject()+": stopping; could not release the lease (another worker takes the job over when it runs out)",
			"kind", kind, "tenant", tenant, "error", err)
		return err
	}
	if n == 0 {
		// The lease ran out and another worker holds the job: nothing to hand back.
		return nil
	}
	r.Log.InfoContext(ctx, r.subject()+": stopping; job handed back, lease released for another worker", "kind", kind, "tenant", tenant)
	return nil
}

// release gives job id back without an outcome, due at once; uncount
// takes the attempt back (a cut-short call).
func (r *Runner[R]) release(ctx context.Context, id, token uuid.UUID, uncount bool) error {
	_, err := r.releaseN(ctx, id, token, uncount)
	return err
}

func (r *Runner[R]) releaseN(ctx context.Context, id, token uuid.UUID, uncount bool) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	now := r.Clock()
	u := r.Client.Outbox.Update().
		Where(entoutbox.ID(id), entoutbox.LeaseToken(token), entoutbox.DoneAtIsNil()).
		ClearLockedUntil().ClearLeaseToken().SetNextAttemptAt(now).SetUpdatedAt(now)
	if uncount {
		u.AddAttempts(-1)
	}
	n, err := u.Save(ctx)
	if err != nil {
		return 0, fmt.Errorf("release outbox lease: %w", err)
	}
	return n, nil
}

func (r *Runner[R]) subject() string {
	if r.Subject == "" {
		return "outbox job"
	}
	return r.Subject
}

func (r *Runner[R]) name(kind string) string {
	if r.Name == nil {
		return kind
	}
	return r.Name(kind)
}

// leaseFree: the job's lease is free or ran out, by the database's clock
// on PostgreSQL (replicas' clocks differ; the database has one), by the
// service clock on the embedded store (one process).
func leaseFree(now time.Time) predicate.Outbox {
	return lease.Free(entoutbox.FieldLockedUntil, now)
}

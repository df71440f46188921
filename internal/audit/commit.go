package audit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/auditlog"
	enttenant "github.com/platform/tenant-registry/ent/tenant"
	"github.com/platform/tenant-registry/internal/errs"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/store"
)

// maxBatch bounds the appends one group commit writes: one INSERT of
// maxBatch rows stays well below PostgreSQL's 65,535 bind parameters and
// SQLite's 32,766.
const maxBatch = 256

// Group commit. Appends of one group (tenant) arriving while that group's
// previous batch commits are queued and then committed together by one of
// their callers, the batch's leader: one transaction, one chain lock, one
// read of the chain head and one INSERT for the lot, in arrival order
// (chain order is commit order). Each caller is answered after the commit
// with its own event or its own error. Between processes (replicas) the
// chain lock (PostgreSQL's advisory lock, SQLite's single writer) still
// serialises batches, so a batch chains on whatever another replica
// committed before it.
//
// No goroutine of its own: the first caller of an idle group leads; when a
// batch is done its leader hands the lead to the oldest caller still
// queued, so no caller waits for more than the batch before its own and
// its own.
type committer struct {
	mu     sync.Mutex
	groups map[string]*groupQueue
	// batches and appends count the commits and the appends they wrote
	// (tests read them).
	batches, appends atomic.Int64
}

// groupQueue is one group's appends waiting for a commit. running: a
// leader is committing (or about to); it hands over to pending[0].
type groupQueue struct {
	pending []*appendReq
	running bool
}

// appendReq is one caller's append.
type appendReq struct {
	ctx      context.Context
	in       AppendInput // validated
	groupID  string
	appender principal.Principal
	actor    principal.Principal

	// wake is closed when the request is answered (row, err) or made the
	// next leader (leader). Both are set under committer.mu.
	wake   chan struct{}
	leader bool
	taken  bool // in a batch being committed
	row    *ent.AuditLog
	err    error
}

// submit queues req for its group's next commit and answers its event once
// that is committed.
func (s *Service) submit(req *appendReq) (*ent.AuditLog, error) {
	c := &s.commits
	req.wake = make(chan struct{})
	c.mu.Lock()
	if c.groups == nil {
		c.groups = map[string]*groupQueue{}
	}
	q := c.groups[req.groupID]
	if q == nil {
		q = &groupQueue{}
		c.groups[req.groupID] = q
	}
	q.pending = append(q.pending, req)
	lead := !q.running
	if lead {
		q.running, req.leader = true, true
	}
	c.mu.Unlock()
	if !lead {
		select {
		case <-req.wake:
		case <-req.ctx.Done():
			c.mu.Lock()
			if !req.leader && !req.taken {
				// Still queued: leave the queue, nothing was written.
				for i, r := range q.pending {
					if r == req {
						q.pending = append(q.pending[:i], q.pending[i+1:]...)
						break
					}
				}
				c.mu.Unlock()
				return nil, req.ctx.Err()
			}
			c.mu.Unlock()
			// Leading or in a batch: its commit decides.
			<-req.wake
		}
	}
	if req.leader {
		s.lead(q)
	}
	return req.row, req.err
}

// lead commits the queue's oldest appends (the leader's own among them)
// and hands the lead on.
func (s *Service) lead(q *groupQueue) {
	c := &s.commits
	c.mu.Lock()
	n := min(len(q.pending), maxBatch)
	batch := append([]*appendReq(nil), q.pending[:n]...)
	q.pending = append(q.pending[:0], q.pending[n:]...)
	for _, r := range batch {
		r.taken = true
	}
	c.mu.Unlock()

	s.commitBatch(batch)

	c.mu.Lock()
	if len(q.pending) > 0 {
		next := q.pending[0]
		next.leader = true
		close(next.wake)
	} else {
		q.running = false
		delete(c.groups, batch[0].groupID)
	}
	for _, r := range batch {
		if !r.leader {
			close(r.wake)
		}
	}
	c.mu.Unlock()
}

// commitBatch writes batch in one transaction. When that fails, each half
// is committed on its own (and so on), so that one bad append fails alone.
func (s *Service) commitBatch(batch []*appendReq) {
	// The leader's context without its cancellation (the others' appends
	// do not depend on the leader's caller staying), bounded by the latest
	// of the batch's deadlines (none if a caller has none).
	ctx, cancel := batchContext(batch)
	defer cancel()
	if err := s.writeBatch(ctx, batch); err != nil {
		if len(batch) == 1 {
			r := batch[0]
			r.row, r.err = nil, err
			if r.in.IdempotencyKey != "" && ent.IsConstraintError(err) {
				// A concurrent append with the same key (another
				// replica's) won: answer with its event, or the conflict.
				if existing, rerr := s.byIdempotencyKey(ctx, r.groupID, r.appender, r.in); rerr != nil || existing != nil {
					r.row, r.err = existing, rerr
				}
			}
			return
		}
		// Halve it, in order: a bad append costs log2(batch) commits
		// more, not one per append.
		s.commitBatch(batch[:len(batch)/2])
		s.commitBatch(batch[len(batch)/2:])
		return
	}
	s.commits.batches.Add(1)
	s.commits.appends.Add(int64(len(batch)))
}

// batchContext is the context a batch is written in: the leader's values,
// no cancellation, and the latest deadline of the batch's callers.
func batchContext(batch []*appendReq) (context.Context, context.CancelFunc) {
	ctx := context.WithoutCancel(batch[0].ctx)
	var latest time.Time
	for _, r := range batch {
		d, ok := r.ctx.Deadline()
		if !ok {
			return ctx, func() {}
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(ctx, latest)
}

// writeBatch is one transaction for the batch: the tenant, the chain lock,
// the batch's idempotency keys already used, then the new events. It sets
// each request's answer unless it fails as a whole.
func (s *Service) writeBatch(ctx context.Context, batch []*appendReq) error {
	groupID := batch[0].groupID
	tenantID := uuid.MustParse(groupID)
	answers := make([]*ent.AuditLog, len(batch))
	failed := make([]error, len(batch))
	err := store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		t, err := tx.Tenant.Query().Where(enttenant.ID(tenantID)).Select(enttenant.FieldName).Only(ctx)
		if ent.IsNotFound(err) {
			for i := range batch {
				failed[i] = errs.Errorf(errs.NotFound, "tenant not found")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tenant: %w", err)
		}
		if s.postgres() {
			if err := lockChain(ctx, tx, groupID); err != nil {
				return err
			}
		}
		// Under the lock no other writer of the group inserts: a key is
		// taken when it is stored, or when an earlier append of this
		// batch takes it.
		stored, err := storedKeys(ctx, tx, groupID, batch)
		if err != nil {
			return err
		}
		type key struct{ typ, id, key string }
		firstOf := map[key]int{} // the batch's first append of a key
		var entries []Entry
		var writes []int // batch index of entries[i]
		for i, r := range batch {
			k := key{string(r.appender.Type), r.appender.Subject, r.in.IdempotencyKey}
			if r.in.IdempotencyKey != "" {
				if row := stored[k]; row != nil {
					answers[i], failed[i] = sameEvent(row, r.in)
					continue
				}
				if _, ok := firstOf[k]; ok {
					continue // answered by the first, below
				}
				firstOf[k] = i
			}
			actor := r.actor
			appender := r.appender
			entries = append(entries, Entry{
				Action: r.in.Action, CRUD: r.in.CRUD,
				TenantID: tenantID, TenantName: t.Name,
				Target:         r.in.Target,
				Description:    r.in.Description,
				IsFailure:      r.in.IsFailure,
				Fields:         r.in.Fields,
				Actor:          &actor,
				SourceIP:       r.in.SourceIP,
				IdempotencyKey: r.in.IdempotencyKey,
				AppendedBy:     &appender,
			})
			writes = append(writes, i)
		}
		rows, err := s.recorder.writeBatch(principal.WithSourceIP(ctx, ""), tx, entries, true)
		if err != nil {
			return err
		}
		for j, i := range writes {
			answers[i] = rows[j]
		}
		for i, r := range batch {
			if answers[i] != nil || failed[i] != nil {
				continue
			}
			first := firstOf[key{string(r.appender.Type), r.appender.Subject, r.in.IdempotencyKey}]
			answers[i], failed[i] = sameEvent(answers[first], r.in)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, r := range batch {
		r.row, r.err = answers[i], failed[i]
	}
	return nil
}

// storedKeys reads the events of the group already stored under the
// batch's idempotency keys, by appender and key.
func storedKeys(ctx context.Context, tx *ent.Tx, groupID string, batch []*appendReq) (map[struct{ typ, id, key string }]*ent.AuditLog, error) {
	var keys []string
	for _, r := range batch {
		if r.in.IdempotencyKey != "" {
			keys = append(keys, r.in.IdempotencyKey)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	rows, err := tx.AuditLog.Query().
		Where(auditlog.GroupID(groupID), auditlog.IdempotencyKeyIn(keys...)).
		All(ctx)
	if err != nil {
		return nil, fmt.Errorf("read audit events by idempotency key: %w", err)
	}
	out := make(map[struct{ typ, id, key string }]*ent.AuditLog, len(rows))
	for _, row := range rows {
		out[struct{ typ, id, key string }{row.AppendedByType, row.AppendedByID, *row.IdempotencyKey}] = row
	}
	return out, nil
}

// sameEvent answers row for an append of its idempotency key with in's
// content, or the Conflict when in differs.
func sameEvent(row *ent.AuditLog, in AppendInput) (*ent.AuditLog, error) {
	if field := differs(row, in); field != "" {
		return nil, errs.Errorf(errs.Conflict,
			"idempotency_key: %q was already used for a different event (%s differs from event %s)", in.IdempotencyKey, field, row.ID)
	}
	return row, nil
}

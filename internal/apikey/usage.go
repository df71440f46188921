package apikey

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	entapikey "github.com/platform/tenant-registry/ent/apikey"
	"github.com/platform/tenant-registry/internal/store"
)

// usage collects keys' last use in memory; a background flusher writes
// last_used_at in one statement per round (usageSQL), at most once per
// UsageEvery per key and replica. The request path only stores an atomic.
type usage struct {
	every time.Duration
	m     sync.Map // uuid.UUID → *useRec
	mu    sync.Mutex
}

type useRec struct {
	last      atomic.Int64 // unix microseconds of the latest use
	written   int64        // the value last written (flusher only)
	writtenAt time.Time    // when it was written (flusher only)
}

func newUsage(every time.Duration) *usage { return &usage{every: every} }

func (u *usage) touch(id uuid.UUID, now time.Time) {
	v, ok := u.m.Load(id)
	if !ok {
		v, _ = u.m.LoadOrStore(id, &useRec{})
	}
	r := v.(*useRec)
	t := now.UnixMicro()
	if r.last.Load() < t {
		r.last.Store(t)
	}
}

type pending struct {
	id  uuid.UUID
	r   *useRec
	val int64
}

// FlushUsage writes pending last_used_at values: those of keys not written
// within UsageEvery, or all pending ones when force is set (shutdown).
func (s *Service) FlushUsage(ctx context.Context, force bool) error {
	u := s.usage
	u.mu.Lock()
	defer u.mu.Unlock()
	now := s.clock()
	var batch []pending
	u.m.Range(func(k, v any) bool {
		r := v.(*useRec)
		last := r.last.Load()
		switch {
		case last > r.written && (force || r.writtenAt.IsZero() || now.Sub(r.writtenAt) >= u.every):
			batch = append(batch, pending{id: k.(uuid.UUID), r: r, val: last})
		case last == r.written && now.Sub(time.UnixMicro(last)) > 10*u.every:
			u.m.Delete(k) // idle: forget it
		}
		return true
	})
	if len(batch) == 0 {
		return nil
	}
	// Key order, always: two replicas flushing overlapping keys lock them
	// in the same order, so they wait for each other instead of
	// deadlocking.
	slices.SortFunc(batch, func(a, b pending) int { return bytes.Compare(a.id[:], b.id[:]) })
	if err := s.writeUsage(ctx, batch); err != nil {
		return err
	}
	for _, p := range batch {
		p.r.written, p.r.writtenAt = p.val, now
	}
	return nil
}

// writeUsage writes batch (sorted by key id). On PostgreSQL it is one
// statement that locks the rows in key order (the locking subquery's
// ORDER BY … FOR UPDATE) and then updates them, never moving a
// last_used_at backwards: a single row lock at a time is taken in the
// same order by every replica, and no other transaction of the service
// holds two api_keys rows while waiting for a third. The embedded store
// (one connection) writes key by key.
func (s *Service) writeUsage(ctx context.Context, batch []pending) error {
	if !s.postgres {
		return store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
			for _, p := range batch {
				t := time.UnixMicro(p.val).UTC()
				if _, err := tx.APIKey.Update().
					Where(entapikey.ID(p.id), entapikey.Or(entapikey.LastUsedAtIsNil(), entapikey.LastUsedAtLT(t))).
					SetLastUsedAt(t).
					Save(ctx); err != nil {
					return err
				}
			}
			return nil
		})
	}
	ids := make([]string, len(batch))
	times := make([]string, len(batch))
	for i, p := range batch {
		ids[i] = p.id.String()
		times[i] = time.UnixMicro(p.val).UTC().Format(time.RFC3339Nano)
	}
	_, err := s.client.ExecContext(ctx, usageSQL, ids, times)
	return err
}

// usageSQL: $1 key ids, $2 their last uses (text arrays: the same in every
// pgx query exec mode).
const usageSQL = `WITH v(id, t) AS (
  SELECT * FROM unnest($1::uuid[], $2::timestamptz[])
), locked AS (
  SELECT k.id FROM api_keys k JOIN v ON v.id = k.id ORDER BY k.id FOR UPDATE OF k
)
UPDATE api_keys k SET last_used_at = v.t
FROM v JOIN locked l ON l.id = v.id
WHERE k.id = v.id AND (k.last_used_at IS NULL OR k.last_used_at < v.t)`

// UsageFlushEvery is how often the usage job (see internal/worker) should
// run FlushUsage: a quarter of UsageEvery.
func (s *Service) UsageFlushEvery() time.Duration { return max(s.usage.every/4, 10*time.Millisecond) }

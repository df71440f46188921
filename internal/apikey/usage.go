package apikey

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	entapikey "github.com/platform/tenant-registry/ent/apikey"
	"github.com/platform/tenant-registry/internal/store"
)

// usage collects keys' last use in memory; a background flusher writes
// last_used_at in statements of usageChunk keys (usageSQL), at most once per
// UsageEvery per key and replica. The request path takes one of
// usageShards mutexes for a map update: a record is three integers in a
// map slot (about 50 bytes a key), not a pointer per key.
type usage struct {
	every  time.Duration
	mu     sync.Mutex // one flush at a time
	shards [usageShards]usageShard
}

const usageShards = 64

type usageShard struct {
	mu sync.Mutex
	m  map[uuid.UUID]useRec
	_  [40]byte // a cache line each
}

// useRec is a key's usage, in Unix microseconds.
type useRec struct {
	last      int64 // the latest use
	written   int64 // the value last written (flusher only)
	writtenAt int64 // when it was written (flusher only; 0: never)
}

func newUsage(every time.Duration) *usage {
	u := &usage{every: every}
	for i := range u.shards {
		u.shards[i].m = make(map[uuid.UUID]useRec)
	}
	return u
}

func (u *usage) shard(id uuid.UUID) *usageShard { return &u.shards[id[15]%usageShards] }

func (u *usage) touch(id uuid.UUID, now time.Time) {
	t := now.UnixMicro()
	sh := u.shard(id)
	sh.mu.Lock()
	if r := sh.m[id]; r.last < t {
		r.last = t
		sh.m[id] = r
	}
	sh.mu.Unlock()
}

type pending struct {
	id  uuid.UUID
	val int64
}

// FlushUsage writes pending last_used_at values: those of keys not written
// within UsageEvery, or all pending ones when force is set (shutdown).
func (s *Service) FlushUsage(ctx context.Context, force bool) error {
	u := s.usage
	u.mu.Lock()
	defer u.mu.Unlock()
	now := s.clock()
	nowMicro, every := now.UnixMicro(), u.every.Microseconds()
	var batch []pending
	for i := range u.shards {
		sh := &u.shards[i]
		sh.mu.Lock()
		for id, r := range sh.m {
			switch {
			case r.last > r.written && (force || r.writtenAt == 0 || nowMicro-r.writtenAt >= every):
				batch = append(batch, pending{id: id, val: r.last})
			case r.last == r.written && nowMicro-r.last > 10*every:
				delete(sh.m, id) // idle: forget it
			}
		}
		sh.mu.Unlock()
	}
	if len(batch) == 0 {
		return nil
	}
	// Key order, always: two replicas flushing overlapping keys lock them
	// in the same order, so they wait for each other instead of
	// deadlocking.
	slices.SortFunc(batch, func(a, b pending) int { return bytes.Compare(a.id[:], b.id[:]) })
	// In statements of usageChunk keys, in that order: each statement's
	// parameters are a few dozen KiB, not a copy of every key in use.
	for chunk := range slices.Chunk(batch, usageChunk) {
		if err := s.writeUsage(ctx, chunk); err != nil {
			return err
		}
		for _, p := range chunk {
			sh := u.shard(p.id)
			sh.mu.Lock()
			if r, ok := sh.m[p.id]; ok {
				r.written, r.writtenAt = p.val, nowMicro
				sh.m[p.id] = r
			}
			sh.mu.Unlock()
		}
	}
	return nil
}

// usageChunk is how many keys' last uses one statement writes at most.
const usageChunk = 1000

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

package apikey

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	entapikey "github.com/platform/tenant-registry/ent/apikey"
	"github.com/platform/tenant-registry/internal/store"
)

// usage collects keys' last use in memory; a background flusher writes
// last_used_at in one transaction per round, at most once per UsageEvery
// per key and replica. The request path only stores an atomic.
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

// FlushUsage writes pending last_used_at values: those of keys not written
// within UsageEvery, or all pending ones when force is set (shutdown).
func (s *Service) FlushUsage(ctx context.Context, force bool) error {
	u := s.usage
	u.mu.Lock()
	defer u.mu.Unlock()
	now := s.clock()
	type pending struct {
		id  uuid.UUID
		r   *useRec
		val int64
	}
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
	err := store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
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
	if err != nil {
		return err
	}
	for _, p := range batch {
		p.r.written, p.r.writtenAt = p.val, now
	}
	return nil
}

// RunUsageFlusher flushes last_used_at every quarter of UsageEvery until
// ctx is done, then once more for everything pending.
func (s *Service) RunUsageFlusher(ctx context.Context) {
	tick := time.NewTicker(max(s.usage.every/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.FlushUsage(fctx, true); err != nil {
				s.log.Warn("api key last_used_at: final flush failed", "error", err)
			}
			cancel()
			return
		case <-tick.C:
			if err := s.FlushUsage(ctx, false); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "api key last_used_at: flush failed", "error", err)
			}
		}
	}
}

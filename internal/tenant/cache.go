package tenant

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// The read cache of Get, GetBySlug and Claims: the portal's middleware asks
// for its tenant on every page and Keycloak for claims on every token, so
// the answers are kept in process, under the same rules as the API-key
// verify cache (internal/apikey), which also tells this one what to drop:
//
//   - it is used only while the verify cache's listener proves that
//     notifications are delivered (Deps.CacheFresh); otherwise every read
//     goes to the database;
//   - a write on this replica drops the tenant when it commits (before the
//     RPC that wrote it returns); a write anywhere else arrives as a
//     notification from the tenants and tenant_products triggers and drops
//     it on every replica; a listener (re)connect or loss clears it all;
//   - every drop bumps epoch, and a row read from the database is stored
//     only if epoch did not move since the read began, so a read that raced
//     a change cannot be stored after the change's drop;
//   - an entry stops being used by itself at the earliest end of the
//     tenant's trials (the products change then without a write) and,
//     as a last resort, cacheTTL after it was read.
//
// Only tenants that exist are cached; not found always asks the database.
const (
	maxCachedTenants = 100_000
	cacheTTL         = 30 * time.Second
)

type cache struct {
	fresh func() bool // nil: no cache

	mu     sync.RWMutex
	byID   map[uuid.UUID]*cached
	bySlug map[string]uuid.UUID
	epoch  uint64

	hits, misses atomic.Uint64
}

type cached struct {
	t *Tenant
	// until is the earliest trial end among the tenant's current products
	// (zero: none); stale is the read time plus cacheTTL.
	until, stale time.Time
}

func newCache(fresh func() bool) *cache {
	return &cache{fresh: fresh, byID: make(map[uuid.UUID]*cached), bySlug: make(map[string]uuid.UUID)}
}

// inUse reports whether the cache may answer now.
func (c *cache) inUse() bool { return c.fresh != nil && c.fresh() }

// get returns the cached tenant with id (or, when id is zero, slug).
func (c *cache) get(id uuid.UUID, slug string, now time.Time) (*Tenant, bool) {
	c.mu.RLock()
	if id == uuid.Nil {
		id = c.bySlug[slug]
	}
	e, ok := c.byID[id]
	c.mu.RUnlock()
	if !ok || !now.Before(e.stale) || (!e.until.IsZero() && !now.Before(e.until)) {
		c.misses.Add(1)
		return nil, false
	}
	c.hits.Add(1)
	t := *e.t // callers get their own copy; Products is shared, read-only
	return &t, true
}

// begin returns the epoch to pass to put after a database read.
func (c *cache) begin() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.epoch
}

// put stores t, read when epoch was current, unless something was dropped
// since.
func (c *cache) put(t *Tenant, until, now time.Time, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.epoch {
		return
	}
	if len(c.byID) >= maxCachedTenants {
		clear(c.byID)
		clear(c.bySlug)
	}
	if old, ok := c.byID[t.ID]; ok && old.t.Slug != t.Slug {
		delete(c.bySlug, old.t.Slug)
	}
	c.byID[t.ID] = &cached{t: t, until: until, stale: now.Add(cacheTTL)}
	c.bySlug[t.Slug] = t.ID
}

func (c *cache) drop(id uuid.UUID) {
	c.mu.Lock()
	if e, ok := c.byID[id]; ok {
		delete(c.byID, id)
		if c.bySlug[e.t.Slug] == id {
			delete(c.bySlug, e.t.Slug)
		}
	}
	c.epoch++
	c.mu.Unlock()
}

func (c *cache) flush() {
	c.mu.Lock()
	clear(c.byID)
	clear(c.bySlug)
	c.epoch++
	c.mu.Unlock()
}

// DropCachedTenant drops tenant id from the read cache (apikey.Follower:
// the verify cache's invalidations reach this cache too).
func (s *Service) DropCachedTenant(id uuid.UUID) { s.cache.drop(id) }

// FlushCache empties the read cache (apikey.Follower).
func (s *Service) FlushCache() { s.cache.flush() }

// CacheStats returns the read cache's hits and misses since start (for
// metrics); reads while the cache is off count as neither.
func (s *Service) CacheStats() (hits, misses uint64) {
	return s.cache.hits.Load(), s.cache.misses.Load()
}

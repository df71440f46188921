package apikey

import (
	"crypto/sha256"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// maxEntries bounds the cache of valid verdicts; when full it starts over
// (this is the number of distinct live keys in use). An entry is 64
// bytes plus its map slot; what a tenant's keys share (its id, slug and
// products) and scope lists are held once (make bench: peak RSS with
// 100,000 keys cached).
const maxEntries = 150_000

// maxScopeSets bounds the interned scope lists.
const maxScopeSets = 10_000

// Unknown keys (well-formed, but no such key) are remembered briefly and in
// a bounded set of their own, so a client retrying a bad key, or a flood of
// made-up ones, costs no database read each time and cannot push valid
// verdicts out. A key that is created later is not in the set: its creation
// forgets it on this replica, and elsewhere the entry lasts unknownTTL at
// most (a key is 256 random bits: nobody asks for it before it exists).
const (
	unknownTTL  = 2 * time.Second
	maxUnknowns = 10_000
)

// cache maps a key's HMAC to a snapshot of its valid verdict.
//
// Correctness rests on three rules:
//   - only valid verdicts are cached, and a hit re-checks the key's expiry
//     and the earliest end of the tenant's trials against the injected clock,
//     so an expiry takes effect at its exact moment;
//   - every invalidation bumps epoch: a notification or a local write drops
//     the entries of the key or tenant it names, a listener (re)connect or
//     loss clears the map; a verdict read from the database is stored only
//     if epoch did not move since the read began, so a read that raced a
//     change can never be stored after the change's invalidation;
//   - the caller uses the cache only while the listener is healthy, i.e.
//     has received its own heartbeat notification within StaleAfter.
type cache struct {
	enabled bool
	ttl     time.Duration

	mu       sync.RWMutex
	m        map[slot]*entry
	unknowns map[slot]int64               // until when a hash is unknown (Unix nanoseconds)
	tenants  map[uuid.UUID]*tenantVerdict // interned: one per tenant
	scopes   map[string]*[]string         // interned scope lists
	epoch    uint64

	// hits and misses count lookups while the cache is in use (metrics).
	hits, misses atomic.Uint64
}

// slot is a cache key: the first half of the key's HMAC. Two live keys
// share a slot with probability about n²/2¹²⁹ (n keys: 10⁻²⁹ for 100,000),
// and nobody can aim for it without API_KEY_SECRET; half the bytes of every
// map slot is what a cache of 100,000 keys saves by it.
type slot [16]byte

func slotOf(h [sha256.Size]byte) slot { return slot(h[:16]) }

// entry is a valid verdict, compact: what the key's tenant gives it is
// shared with the tenant's other keys.
type entry struct {
	keyID uuid.UUID
	// project is the key's project id ("" when none): immutable on the row.
	project string
	tenant  *tenantVerdict
	scopes  *[]string // interned
	// until is when the verdict stops being true by itself: the key's
	// expiry or the end of a trial among its products (0: never); stale is
	// loadedAt + ttl, the last-resort bound. Both in Unix nanoseconds.
	until, stale int64
}

// tenantVerdict is the tenant's part of its keys' verdicts.
type tenantVerdict struct {
	id       uuid.UUID
	idString string
	slug     string
	products []string
}

func (e *entry) verdict() Verdict {
	return Verdict{
		Valid: true, TenantID: e.tenant.idString, Slug: e.tenant.slug, KeyID: e.keyID.String(),
		Scopes: *e.scopes, Products: e.tenant.products, ProjectID: e.project,
	}
}

func (e *entry) validAt(now time.Time) bool {
	n := now.UnixNano()
	return n < e.stale && (e.until == 0 || n < e.until)
}

func newCache(ttl time.Duration) *cache {
	return &cache{ttl: ttl, m: make(map[slot]*entry), unknowns: make(map[slot]int64),
		tenants: make(map[uuid.UUID]*tenantVerdict), scopes: make(map[string]*[]string)}
}

func (c *cache) get(h [sha256.Size]byte, now time.Time) (*entry, bool) {
	c.mu.RLock()
	e, ok := c.m[slotOf(h)]
	c.mu.RUnlock()
	if !ok || !e.validAt(now) {
		return nil, false
	}
	return e, true
}

// begin returns the epoch to pass to put after a database read.
func (c *cache) begin() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.epoch
}

func (c *cache) put(h [sha256.Size]byte, e *entry, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.epoch {
		return // something changed since the read began
	}
	if len(c.m) >= maxEntries {
		clear(c.m)
		clear(c.tenants)
	}
	if t, ok := c.tenants[e.tenant.id]; ok && t.slug == e.tenant.slug && slices.Equal(t.products, e.tenant.products) {
		e.tenant = t
	} else {
		c.tenants[e.tenant.id] = e.tenant
	}
	key := strings.Join(*e.scopes, "\x00")
	if sc, ok := c.scopes[key]; ok && slices.Equal(*sc, *e.scopes) {
		e.scopes = sc
	} else {
		if len(c.scopes) >= maxScopeSets {
			clear(c.scopes)
		}
		c.scopes[key] = e.scopes
	}
	c.m[slotOf(h)] = e
}

// unknown reports whether h was recently found to be no key.
func (c *cache) unknown(h [sha256.Size]byte, now time.Time) bool {
	c.mu.RLock()
	until, ok := c.unknowns[slotOf(h)]
	c.mu.RUnlock()
	return ok && now.UnixNano() < until
}

// putUnknown remembers that h is no key, unless something changed since
// the read began (epoch).
func (c *cache) putUnknown(h [sha256.Size]byte, now time.Time, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.epoch {
		return
	}
	if len(c.unknowns) >= maxUnknowns {
		clear(c.unknowns)
	}
	c.unknowns[slotOf(h)] = now.Add(unknownTTL).UnixNano()
}

// forgetUnknown drops h from the unknown keys (it was just created).
func (c *cache) forgetUnknown(h [sha256.Size]byte) {
	c.mu.Lock()
	delete(c.unknowns, slotOf(h))
	c.epoch++
	c.mu.Unlock()
}

// flush drops every entry and invalidates reads in flight.
func (c *cache) flush() {
	c.mu.Lock()
	clear(c.m)
	clear(c.unknowns)
	clear(c.tenants)
	c.epoch++
	c.mu.Unlock()
}

// dropKey drops the verdicts of key id and invalidates reads in flight.
func (c *cache) dropKey(id uuid.UUID) { c.drop(func(e *entry) bool { return e.keyID == id }) }

// dropTenant drops the verdicts of tenant id's keys and invalidates reads
// in flight.
func (c *cache) dropTenant(id uuid.UUID) {
	c.drop(func(e *entry) bool { return e.tenant.id == id })
	c.mu.Lock()
	delete(c.tenants, id)
	c.mu.Unlock()
}

// drop deletes the entries matching match. Writes are rare next to verifies
// and the map is bounded, so a scan is cheaper than keeping indexes.
func (c *cache) drop(match func(*entry) bool) {
	c.mu.Lock()
	for h, e := range c.m {
		if match(e) {
			delete(c.m, h)
		}
	}
	c.epoch++
	c.mu.Unlock()
}

func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

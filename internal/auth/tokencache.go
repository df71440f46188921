package auth

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"

	"github.com/platform/tenant-registry/internal/principal"
)

// maxCachedTokens bounds the verified-token cache. When it is full, expired
// entries go; if none has, the cache starts over (callers then pay one full
// verification each).
const maxCachedTokens = 50_000

// tokenCache holds verified tokens by the SHA-256 of the raw token (never
// the token itself), so a token seen before costs a hash and a map lookup
// instead of an RS256 verification. An entry is served only until the
// token's expiry (plus Leeway, as Verify accepts it), only while the key set
// that vouched for it is unchanged and fresh: a changed key set (a revoked
// signing key) drops it. A tampered token is another hash: a miss.
type tokenCache struct {
	mu           sync.Mutex
	m            map[[sha256.Size]byte]cachedToken
	hits, misses atomic.Uint64
}

type cachedToken struct {
	p     principal.Principal
	from  time.Time // not before − Leeway (zero: no nbf claim)
	until time.Time // expiry + Leeway
	gen   uint64    // the key set's generation that verified it
}

func newTokenCache() *tokenCache {
	return &tokenCache{m: map[[sha256.Size]byte]cachedToken{}}
}

func (c *tokenCache) get(sum [sha256.Size]byte, gen uint64, now time.Time) (principal.Principal, bool) {
	c.mu.Lock()
	e, ok := c.m[sum]
	if ok && (e.gen != gen || !now.Before(e.until) || now.Before(e.from)) {
		delete(c.m, sum)
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		return principal.Principal{}, false
	}
	c.hits.Add(1)
	return e.p, true
}

func (c *tokenCache) put(sum [sha256.Size]byte, e cachedToken, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedTokens {
		for k, old := range c.m {
			if !now.Before(old.until) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCachedTokens {
			clear(c.m)
		}
	}
	c.m[sum] = e
}

package apikey

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	entapikey "github.com/platform/tenant-registry/ent/apikey"
	enttenant "github.com/platform/tenant-registry/ent/tenant"
	"github.com/platform/tenant-registry/ent/tenantproduct"
	"github.com/platform/tenant-registry/internal/entitlement"
	"github.com/platform/tenant-registry/internal/errs"
)

// Reasons a key is not valid.
const (
	ReasonUnknown      = "unknown"
	ReasonRevoked      = "revoked"
	ReasonExpired      = "expired"
	ReasonTenantFrozen = "tenant_frozen"
)

// Verdict is Verify's answer. For a valid key it names the tenant, the key,
// its scopes and the tenant's current products (sorted).
type Verdict struct {
	Valid    bool
	Reason   string
	TenantID string
	Slug     string
	KeyID    string
	Scopes   []string
	Products []string
}

// Verify answers whether key is good. It returns an error only when the
// database fails (Unavailable); any input gets a normal answer. Input that
// cannot be a key is valid=false, reason "unknown", without a database
// read (the format is public, so that leaks nothing).
func (s *Service) Verify(ctx context.Context, key string) (Verdict, error) {
	if len(key) > MaxKeyLen || !utf8.ValidString(key) || !wellFormed(key) {
		return Verdict{Reason: ReasonUnknown}, nil
	}
	h := s.hash.sum(key)
	now := s.clock()
	useCache := s.cache.enabled && s.listener.healthy()
	if useCache {
		if e, ok := s.cache.get(h, now); ok {
			s.cache.hits.Add(1)
			s.usage.touch(e.keyID, now)
			return e.verdict, nil
		}
		s.cache.misses.Add(1)
	}
	epoch := s.cache.begin()
	e, v, err := s.lookup(ctx, h, now)
	if err != nil {
		return Verdict{}, err
	}
	if v.Valid {
		s.usage.touch(e.keyID, now)
		if useCache && s.listener.healthy() {
			s.cache.put(h, e, epoch)
		}
	}
	return v, nil
}

// noKey stands in for the stored hash of an unknown key, so the compare
// runs either way.
var noKey = make([]byte, sha256.Size)

// lookup reads the verdict of the key with hash h. Whether the key exists
// or not, it runs the same three queries (the key by hash, its tenant, the
// tenant's products — with the nil id when there is no key) and one
// constant-time compare, so an unknown key and a revoked one answer alike.
func (s *Service) lookup(ctx context.Context, h [sha256.Size]byte, now time.Time) (*entry, Verdict, error) {
	k, err := s.client.APIKey.Query().Where(entapikey.Hash(h[:])).
		Select(entapikey.FieldID, entapikey.FieldTenantID, entapikey.FieldHash, entapikey.FieldScopes,
			entapikey.FieldExpiresAt, entapikey.FieldRevokedAt).
		Only(ctx)
	if err != nil && !ent.IsNotFound(err) {
		return nil, Verdict{}, s.unavailable(ctx, "read api key", err)
	}
	tid, stored := uuid.Nil, noKey
	if k != nil {
		tid, stored = k.TenantID, k.Hash
	}
	t, err := s.client.Tenant.Query().Where(enttenant.ID(tid)).
		Select(enttenant.FieldID, enttenant.FieldSlug, enttenant.FieldStatus).
		Only(ctx)
	if err != nil && !ent.IsNotFound(err) {
		return nil, Verdict{}, s.unavailable(ctx, "read tenant", err)
	}
	rows, err := s.client.TenantProduct.Query().
		Where(tenantproduct.TenantID(tid), entitlement.Current(now)).
		Select(tenantproduct.FieldProduct, tenantproduct.FieldStatus, tenantproduct.FieldTrialEndsAt).
		All(ctx)
	if err != nil {
		return nil, Verdict{}, s.unavailable(ctx, "read products", err)
	}
	match := hmac.Equal(stored, h[:])
	switch {
	case !match || k == nil || t == nil:
		return nil, Verdict{Reason: ReasonUnknown}, nil
	case k.RevokedAt != nil:
		return nil, Verdict{Reason: ReasonRevoked}, nil
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return nil, Verdict{Reason: ReasonExpired}, nil
	case t.Status == enttenant.StatusFrozen:
		return nil, Verdict{Reason: ReasonTenantFrozen}, nil
	}
	e := &entry{keyID: k.ID, tenantID: t.ID, stale: now.Add(s.cache.ttl)}
	if k.ExpiresAt != nil {
		e.until = *k.ExpiresAt
	}
	products := make([]string, 0, len(rows))
	for _, p := range rows {
		products = append(products, p.Product)
		if p.Status == tenantproduct.StatusTrial && p.TrialEndsAt != nil && (e.until.IsZero() || p.TrialEndsAt.Before(e.until)) {
			e.until = *p.TrialEndsAt
		}
	}
	slices.Sort(products)
	scopes := k.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	e.verdict = Verdict{
		Valid: true, TenantID: t.ID.String(), Slug: t.Slug, KeyID: k.ID.String(),
		Scopes: scopes, Products: products,
	}
	return e, e.verdict, nil
}

func (s *Service) unavailable(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s.log.WarnContext(ctx, "api key verify: database failed", "step", what, "error", err)
	return errs.Errorf(errs.Unavailable, "api key verification is unavailable: %s", "database unreachable")
}

// invalidateKey drops this replica's cached verdicts of key id after one
// of its own writes (the commit hook does too; this also covers a failed
// commit: the cache may only shrink).
func (s *Service) invalidateKey(id uuid.UUID) { s.cache.dropKey(id) }

// CacheStats returns the verify cache's hits and misses since start (for
// metrics). Verifies that bypass the cache (SQLite, listener down, malformed
// keys) count as neither.
func (s *Service) CacheStats() (hits, misses uint64) {
	return s.cache.hits.Load(), s.cache.misses.Load()
}

// CacheLen is the number of cached verdicts (for tests and metrics).
func (s *Service) CacheLen() int { return s.cache.len() }

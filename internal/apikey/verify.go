package apikey

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

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
	// ProjectID is the key's project ("" when it belongs to none).
	ProjectID string
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
			return e.verdict(), nil
		}
		if s.cache.unknown(h, now) {
			s.cache.hits.Add(1)
			return Verdict{Reason: ReasonUnknown}, nil
		}
		s.cache.misses.Add(1)
	}
	if !useCache {
		e, v, err := s.lookup(ctx, h, now)
		if err != nil {
			return Verdict{}, err
		}
		if v.Valid {
			s.usage.touch(e.keyID, now)
		}
		return v, nil
	}
	v, keyID, err := s.lookupShared(ctx, h, now)
	if err != nil {
		return Verdict{}, err
	}
	if v.Valid {
		s.usage.touch(keyID, now)
	}
	return v, nil
}

// sharedLookupTimeout bounds a read that callers share (lookupShared): it
// outlives the caller that started it, whose deadline the others do not
// share.
const sharedLookupTimeout = 5 * time.Second

// lookupShared is lookup for the callers that miss the cache on one key at
// once: one reads and caches the verdict, the others wait for its answer.
// When a hot key's entry expires, every connection in flight misses it at
// the same moment; this makes that one read, not one per connection
// queuing for the pool. The cache's epoch at the start is part of the
// flight's key, so a caller that began after an invalidation (a revoke
// this replica committed, a notification) never shares a read that began
// before it. A caller whose context ends stops waiting; the read goes on
// for the others.
func (s *Service) lookupShared(ctx context.Context, h [sha256.Size]byte, now time.Time) (Verdict, uuid.UUID, error) {
	epoch := s.cache.begin()
	var k [sha256.Size + 8]byte
	copy(k[:], h[:])
	binary.BigEndian.PutUint64(k[sha256.Size:], epoch)
	ch := s.flights.DoChan(string(k[:]), func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedLookupTimeout)
		defer cancel()
		e, v, err := s.lookup(rctx, h, now)
		if err != nil {
			return nil, err
		}
		r := sharedVerdict{v: v}
		switch {
		case v.Valid:
			r.keyID = e.keyID
			if s.listener.healthy() {
				s.cache.put(h, e, epoch)
			}
		case v.Reason == ReasonUnknown && s.listener.healthy():
			s.cache.putUnknown(h, now, epoch)
		}
		return r, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return Verdict{}, uuid.UUID{}, res.Err
		}
		r := res.Val.(sharedVerdict)
		return r.v, r.keyID, nil
	case <-ctx.Done():
		return Verdict{}, uuid.UUID{}, ctx.Err()
	}
}

// sharedVerdict is what lookupShared's callers share: the verdict (read
// only) and, when valid, the key's id for the usage count.
type sharedVerdict struct {
	v     Verdict
	keyID uuid.UUID
}

// noKey stands in for the stored hash of an unknown key, so the compare
// runs either way.
var noKey = make([]byte, sha256.Size)

// lookup reads the verdict of the key with hash h in one SQL statement:
// the key by its unique hash, joined to its tenant, LEFT JOIN the tenant's
// current products (entitlement.Current, a row each) — the same statement
// whether the key exists or not, and one constant-time compare, so an
// unknown key and a revoked one answer alike.
func (s *Service) lookup(ctx context.Context, h [sha256.Size]byte, now time.Time) (*entry, Verdict, error) {
	rows, err := s.readVerdictRows(ctx, h, now)
	if err != nil {
		return nil, Verdict{}, s.unavailable(ctx, "read api key", err)
	}
	stored := noKey
	if len(rows) > 0 {
		stored = rows[0].Hash
	}
	if !hmac.Equal(stored, h[:]) || len(rows) == 0 {
		return nil, Verdict{Reason: ReasonUnknown}, nil
	}
	k := rows[0]
	switch {
	case k.RevokedAt.Valid:
		return nil, Verdict{Reason: ReasonRevoked}, nil
	case k.ExpiresAt.Valid && !now.Before(k.ExpiresAt.Time):
		return nil, Verdict{Reason: ReasonExpired}, nil
	case enttenant.Status(k.Status) == enttenant.StatusFrozen:
		return nil, Verdict{Reason: ReasonTenantFrozen}, nil
	}
	var until time.Time
	if k.ExpiresAt.Valid {
		until = k.ExpiresAt.Time
	}
	products := make([]string, 0, len(rows))
	for _, p := range rows {
		if !p.Product.Valid {
			continue
		}
		products = append(products, p.Product.String)
		if tenantproduct.Status(p.PStatus.String) == tenantproduct.StatusTrial && p.TrialEndsAt.Valid && (until.IsZero() || p.TrialEndsAt.Time.Before(until)) {
			until = p.TrialEndsAt.Time
		}
	}
	slices.Sort(products)
	scopes := []string{}
	if k.Scopes.Valid && k.Scopes.String != "" && k.Scopes.String != "null" {
		if err := json.Unmarshal([]byte(k.Scopes.String), &scopes); err != nil {
			return nil, Verdict{}, fmt.Errorf("read api key scopes: %w", err)
		}
	}
	e := &entry{
		keyID:   k.ID,
		project: projectString(k.ProjectID),
		tenant:  &tenantVerdict{id: k.TenantID, idString: k.TenantID.String(), slug: k.Slug, products: products},
		scopes:  &scopes, stale: now.Add(s.cache.ttl).UnixNano(),
	}
	if !until.IsZero() {
		e.until = until.UnixNano()
	}
	return e, e.verdict(), nil
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

// verdictRow is a row of the verify lookup: the key, its tenant and one of
// the tenant's current products (NULL when it has none).
type verdictRow struct {
	ID          uuid.UUID      `json:"id"`
	TenantID    uuid.UUID      `json:"tenant_id"`
	Hash        []byte         `json:"hash"`
	Scopes      sql.NullString `json:"scopes"`
	ExpiresAt   sql.NullTime   `json:"expires_at"`
	RevokedAt   sql.NullTime   `json:"revoked_at"`
	Slug        string         `json:"slug"`
	Status      string         `json:"tenant_status"`
	Product     sql.NullString `json:"product"`
	PStatus     sql.NullString `json:"product_status"`
	TrialEndsAt sql.NullTime   `json:"trial_ends_at"`
	ProjectID   uuid.NullUUID  `json:"project_id"`
}

func projectString(id uuid.NullUUID) string {
	if !id.Valid {
		return ""
	}
	return id.UUID.String()
}

// readVerdictRows runs the verify lookup: on PostgreSQL the api_key_verdict
// function (migrations/20261201231000_api_key_verdict.sql), whose plan the
// server keeps; on SQLite the same query built with Ent.
func (s *Service) readVerdictRows(ctx context.Context, h [sha256.Size]byte, now time.Time) ([]verdictRow, error) {
	var rows []verdictRow
	if s.postgres {
		res, err := s.client.QueryContext(ctx, `SELECT id, tenant_id, hash, scopes, expires_at, revoked_at, slug, tenant_status,
  product, product_status, trial_ends_at, project_id FROM api_key_verdict($1, $2)`, h[:], now)
		if err != nil {
			return nil, err
		}
		defer res.Close()
		for res.Next() {
			var r verdictRow
			if err := res.Scan(&r.ID, &r.TenantID, &r.Hash, &r.Scopes, &r.ExpiresAt, &r.RevokedAt, &r.Slug, &r.Status,
				&r.Product, &r.PStatus, &r.TrialEndsAt, &r.ProjectID); err != nil {
				return nil, err
			}
			rows = append(rows, r)
		}
		return rows, res.Err()
	}
	err := s.client.APIKey.Query().Where(entapikey.Hash(h[:])).Modify(func(sel *entsql.Selector) {
		t := entsql.Table(enttenant.Table).As("t")
		p := entsql.Table(tenantproduct.Table).As("tp")
		// entitlement.Current, rendered against the joined table's alias.
		current := entsql.Dialect(sel.Dialect()).Select().From(p)
		entitlement.Current(now)(current)
		sel.Join(t).On(sel.C(entapikey.FieldTenantID), t.C(enttenant.FieldID))
		sel.LeftJoin(p).OnP(entsql.And(
			entsql.ColumnsEQ(sel.C(entapikey.FieldTenantID), p.C(tenantproduct.FieldTenantID)),
			current.P(),
		))
		sel.Select(
			sel.C(entapikey.FieldID), sel.C(entapikey.FieldTenantID), sel.C(entapikey.FieldHash), sel.C(entapikey.FieldScopes),
			sel.C(entapikey.FieldExpiresAt), sel.C(entapikey.FieldRevokedAt),
			t.C(enttenant.FieldSlug), entsql.As(t.C(enttenant.FieldStatus), "tenant_status"),
			entsql.As(p.C(tenantproduct.FieldProduct), "product"), entsql.As(p.C(tenantproduct.FieldStatus), "product_status"),
			p.C(tenantproduct.FieldTrialEndsAt), sel.C(entapikey.FieldProjectID),
		)
	}).Scan(ctx, &rows)
	return rows, err
}

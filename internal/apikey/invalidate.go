package apikey

import (
	"context"
	"slices"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/tenantproduct"
)

// A Follower is a cache of tenant data of its own (tenant.Service's) kept in
// step with the verify cache: it is told of every change to a tenant or its
// products that this replica writes (at commit) or the listener hears of,
// and of every reset (a listener (re)connect or loss, an unknown payload).
// It should use its cache only while Listening reports true.
type Follower interface {
	DropCachedTenant(id uuid.UUID)
	FlushCache()
}

// Follow adds f to the followers. Call it while wiring, before Listen.
func (s *Service) Follow(f Follower) { s.followers = append(s.followers, f) }

// dropTenant drops tenant id's verdicts and the followers' copies.
func (s *Service) dropTenant(id uuid.UUID) {
	s.cache.dropTenant(id)
	for _, f := range s.followers {
		f.DropCachedTenant(id)
	}
}

// flush clears the verdicts and the followers' caches.
func (s *Service) flush() {
	s.cache.flush()
	for _, f := range s.followers {
		f.FlushCache()
	}
}

// localInvalidation is an Ent hook on api_keys, tenants and tenant_products:
// a write through this process's client that can change a verdict (a key's
// revoke, expiry, scopes, hash or tenant; a tenant's status or slug; any
// entitlement change) drops this replica's cached verdicts of that key or
// tenant (and the followers' copies of that tenant) when it commits — before the RPC that wrote it returns, whichever
// service wrote it — instead of waiting for the notification, which other
// replicas still get from the triggers.
func (s *Service) localInvalidation(next ent.Mutator) ent.Mutator {
	return ent.MutateFunc(func(ctx context.Context, m ent.Mutation) (ent.Value, error) {
		drop := s.affected(ctx, m)
		v, err := next.Mutate(ctx, m)
		if drop == nil {
			return v, err
		}
		// Now (a verify that began before is refused its cache write by the
		// epoch), and again at commit (a verify that read the old row between
		// the two cannot store it either).
		drop()
		if tx := txOf(m); tx != nil {
			tx.OnCommit(func(next ent.Committer) ent.Committer {
				return ent.CommitFunc(func(ctx context.Context, tx *ent.Tx) error {
					err := next.Commit(ctx, tx)
					drop()
					return err
				})
			})
		}
		return v, err
	})
}

// affected returns what a mutation invalidates, or nil for nothing. It runs
// before the mutation (bulk updates' ids are read first); when the keys or
// tenants cannot be told, it clears the whole cache.
func (s *Service) affected(ctx context.Context, m ent.Mutation) func() {
	all := s.flush
	switch m := m.(type) {
	case *ent.APIKeyMutation:
		if m.Op().Is(ent.OpCreate) || !changes(m.Fields(), m.ClearedFields(), "revoked_at", "expires_at", "scopes", "hash", "tenant_id") && !isDelete(m.Op()) {
			return nil // a new key is not cached; name, last_used_at: same verdict
		}
		ids, err := m.IDs(ctx)
		if err != nil {
			return all
		}
		return func() {
			for _, id := range ids {
				s.cache.dropKey(id)
			}
		}
	case *ent.TenantMutation:
		// Any change: the followers' cached tenants show every field (a
		// rename or a provisioning step is rare next to reads).
		if m.Op().Is(ent.OpCreate) {
			return nil
		}
		ids, err := m.IDs(ctx)
		if err != nil {
			return all
		}
		return dropTenants(s, ids)
	case *ent.TenantProductMutation:
		var tenants []uuid.UUID
		if tid, ok := m.TenantID(); ok {
			tenants = append(tenants, tid)
		}
		if !m.Op().Is(ent.OpCreate) {
			ids, err := m.IDs(ctx)
			if err != nil {
				return all
			}
			if len(ids) > 0 {
				old, err := m.Client().TenantProduct.Query().Where(tenantproduct.IDIn(ids...)).
					Unique(true).Select(tenantproduct.FieldTenantID).Strings(ctx)
				if err != nil {
					return all
				}
				for _, o := range old {
					tid, err := uuid.Parse(o)
					if err != nil {
						return all
					}
					tenants = append(tenants, tid)
				}
			}
		}
		return dropTenants(s, tenants)
	}
	return nil
}

func dropTenants(s *Service, ids []uuid.UUID) func() {
	return func() {
		for _, id := range ids {
			s.dropTenant(id)
		}
	}
}

func isDelete(op ent.Op) bool { return op.Is(ent.OpDelete) || op.Is(ent.OpDeleteOne) }

// changes reports whether any of fields is set or cleared.
func changes(set, cleared []string, fields ...string) bool {
	for _, f := range fields {
		if slices.Contains(set, f) || slices.Contains(cleared, f) {
			return true
		}
	}
	return false
}

// txOf is the transaction a mutation runs in, nil outside one.
func txOf(m ent.Mutation) *ent.Tx {
	var tx *ent.Tx
	var err error
	switch m := m.(type) {
	case *ent.APIKeyMutation:
		tx, err = m.Tx()
	case *ent.TenantMutation:
		tx, err = m.Tx()
	case *ent.TenantProductMutation:
		tx, err = m.Tx()
	}
	if err != nil {
		return nil
	}
	return tx
}

package apikey_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/platform/tenant-registry/ent"
	entapikey "github.com/platform/tenant-registry/ent/apikey"
	keys "github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

// TestUsageFlushTwoReplicas: two replicas (each its own pool) flush
// last_used_at of the same thousands of keys at the same moments, in
// different orders of use, while keys are revoked: no flush fails
// (PostgreSQL reports a deadlock as 40P01 after deadlock_timeout), and the
// newest use of each key is what is stored.
func TestUsageFlushTwoReplicas(t *testing.T) {
	ctx := storetest.SystemContext()
	st := storetest.Postgres(t)
	other, err := store.Open(ctx, st.URL, store.Options{MaxConns: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	clock := storetest.NewClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	replicas := make([]*keys.Service, 2)
	for i, s := range []*store.Store{st, other} {
		if replicas[i], err = keys.NewService(keys.Deps{Pager: storetest.Pager(t), Client: s.Client, Recorder: storetest.Recorder(clock.Now, true),
			Clock: clock.Now, Secret: secret, Postgres: true, UsageEvery: time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	tid := uuid.New()
	now := clock.Now()
	if err := st.Client.Tenant.Create().SetID(tid).SetSlug("flushers").SetName("Flushers").
		SetCreatedAt(now).SetUpdatedAt(now).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	// More keys than two of a flush's statements hold (usageChunk), the
	// last one part full.
	const n = 2_500
	ids := make([]uuid.UUID, n)
	creates := make([]*ent.APIKeyCreate, n)
	for i := range ids {
		ids[i] = uuid.New()
		h := make([]byte, 32)
		copy(h, ids[i][:])
		creates[i] = st.Client.APIKey.Create().SetID(ids[i]).SetTenantID(tid).SetName(fmt.Sprint("k", i)).
			SetPrefix("trk_x").SetHash(h).SetScopes([]string{}).SetCreatedBy("test").
			SetCreatedAt(now).SetUpdatedAt(now)
	}
	if err := st.Client.APIKey.CreateBulk(creates...).Exec(ctx); err != nil {
		t.Fatal(err)
	}

	const rounds = 6
	latest := make(map[uuid.UUID]time.Time, n)
	for round := range rounds {
		base := now.Add(time.Duration(round+1) * time.Second)
		for r, svc := range replicas {
			order := rand.Perm(n)
			for j, i := range order {
				at := base.Add(time.Duration(r*n+j) * time.Microsecond)
				svc.Touch(ids[i], at)
				if at.After(latest[ids[i]]) {
					latest[ids[i]] = at
				}
			}
		}
		var wg sync.WaitGroup
		failures := make([]error, len(replicas)+1)
		for r, svc := range replicas {
			wg.Go(func() { failures[r] = svc.FlushUsage(ctx, true) })
		}
		// A revoke between the flushers takes one of their rows.
		wg.Go(func() {
			_, failures[len(replicas)] = replicas[round%2].Revoke(ctx, ids[rand.IntN(n)].String())
		})
		wg.Wait()
		for i, err := range failures {
			if err != nil {
				t.Fatalf("round %d: replica %d: %v", round, i, err)
			}
		}
	}
	rows, err := st.Client.APIKey.Query().Where(entapikey.TenantID(tid)).All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range rows {
		if k.LastUsedAt == nil || !k.LastUsedAt.Equal(latest[k.ID]) {
			t.Errorf("key %s: last_used_at %v, want %v", k.ID, k.LastUsedAt, latest[k.ID])
		}
	}
}

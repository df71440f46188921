package entitlement

import (
	"context"
	"fmt"
	"time"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/ent/tenantproduct"
	"github.com/platform/tenant-registry/internal/principal"
	"github.com/platform/tenant-registry/internal/store"
)

// sweepBatch bounds how many due trials one query of the sweeper reads.
const sweepBatch = 200

// SweepExpired records every trial whose end has passed (trial_ends_at <=
// now) as expired, each with one entitlement.expired event in the same
// transaction as its status change. Readers never wait for it: they already
// see such a trial as expired. Several replicas may sweep at once: the
// status change is a conditional UPDATE … WHERE status = 'trial' that only
// one of them can win (on PostgreSQL the loser blocks on the row lock, then
// re-checks the condition and matches nothing), and only the winner writes
// the event. It returns how many trials this call expired.
func (s *Service) SweepExpired(ctx context.Context) (n int, err error) {
	ctx = principal.With(ctx, principal.System)
	now := s.clock()
	for {
		due, err := s.client.TenantProduct.Query().
			Where(tenantproduct.StatusEQ(tenantproduct.StatusTrial), tenantproduct.TrialEndsAtLTE(now)).
			Order(ent.Asc(tenantproduct.FieldTrialEndsAt), ent.Asc(tenantproduct.FieldID)).
			Limit(sweepBatch).
			WithTenant().
			All(ctx)
		if err != nil {
			return n, fmt.Errorf("find expired trials: %w", err)
		}
		for _, p := range due {
			won, err := s.expire(ctx, p, now)
			if err != nil {
				return n, err
			}
			if won {
				n++
			}
		}
		if len(due) < sweepBatch {
			return n, nil
		}
	}
}

// expire moves one trial to expired, unless another sweeper (or a grant or
// revoke) changed it first.
func (s *Service) expire(ctx context.Context, p *ent.TenantProduct, now time.Time) (won bool, err error) {
	err = store.WithTx(ctx, s.client, func(tx *ent.Tx) error {
		changed, err := tx.TenantProduct.Update().
			Where(tenantproduct.ID(p.ID), tenantproduct.StatusEQ(tenantproduct.StatusTrial), tenantproduct.TrialEndsAtLTE(now)).
			SetStatus(tenantproduct.StatusExpired).
			SetUpdatedAt(now).
			Save(ctx)
		if err != nil {
			return fmt.Errorf("expire trial: %w", err)
		}
		if changed == 0 {
			return nil // someone else got there first
		}
		won = true
		return s.record(ctx, &change{tx: tx, tenant: p.Edges.Tenant, row: p, now: now}, "entitlement.expired", "u",
			fmt.Sprintf("trial of %s ended for tenant %s", p.Product, p.Edges.Tenant.Slug),
			map[string]string{"product": p.Product, "trial_ends_at": p.TrialEndsAt.UTC().Format(time.RFC3339Nano)})
	})
	return won, err
}

// ExpireTrials is the trial sweeper's job (see internal/worker):
// SweepExpired, with what it expired logged.
func (s *Service) ExpireTrials(ctx context.Context) error {
	n, err := s.SweepExpired(ctx)
	if n > 0 {
		s.log.InfoContext(ctx, "trials expired", "count", n)
	}
	return err
}

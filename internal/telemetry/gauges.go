package telemetry

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Gauges are the service's own observable instruments. A nil func leaves
// its instrument out.
type Gauges struct {
	// OutboxBacklog counts the outbox rows not done yet.
	OutboxBacklog func(ctx context.Context) (int64, error)
	// BacklogEvery is the least time between two backlog queries (default
	// 30s); a collection in between reports the last count.
	BacklogEvery time.Duration
	// VerifyCache returns the API-key verify cache's hits and misses since
	// start.
	VerifyCache func() (hits, misses uint64)
	// TenantCache returns the tenant read cache's (GetTenant,
	// GetTenantBySlug, ResolveClaims) hits and misses since start.
	TenantCache func() (hits, misses uint64)
	Logger      *slog.Logger
}

// RegisterGauges registers g's instruments with mp. Their callbacks run
// only when a reader collects, so with a no-op MeterProvider the backlog
// query never runs.
//
//	tenant_registry.outbox.backlog           gauge    rows of the outbox not done
//	tenant_registry.apikey.verify.cache      counter  lookups by result (hit, miss)
//	tenant_registry.apikey.verify.cache.hit_ratio
//	                                         gauge    hits / lookups since the last collection
//	tenant_registry.tenant.cache             counter  tenant read cache lookups by result (hit, miss)
func RegisterGauges(mp metric.MeterProvider, g Gauges) error {
	m := mp.Meter(ScopeName)
	if g.Logger == nil {
		g.Logger = slog.New(slog.DiscardHandler)
	}
	if g.OutboxBacklog != nil {
		if g.BacklogEvery <= 0 {
			g.BacklogEvery = 30 * time.Second
		}
		b := &backlog{count: g.OutboxBacklog, every: g.BacklogEvery, log: g.Logger}
		if _, err := m.Int64ObservableGauge("tenant_registry.outbox.backlog",
			metric.WithDescription("Outbox rows (Keycloak provisioning jobs) not done yet."),
			metric.WithUnit("{row}"),
			metric.WithInt64Callback(b.observe)); err != nil {
			return err
		}
	}
	hit := metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "hit")))
	miss := metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "miss")))
	lookups := func(name, desc string, stats func() (uint64, uint64)) error {
		_, err := m.Int64ObservableCounter(name, metric.WithDescription(desc), metric.WithUnit("{lookup}"),
			metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
				h, mi := stats()
				o.Observe(int64(h), hit)
				o.Observe(int64(mi), miss)
				return nil
			}))
		return err
	}
	if g.TenantCache != nil {
		if err := lookups("tenant_registry.tenant.cache", "Tenant read cache lookups by result.", g.TenantCache); err != nil {
			return err
		}
	}
	if g.VerifyCache != nil {
		if err := lookups("tenant_registry.apikey.verify.cache", "API-key verify cache lookups by result.", g.VerifyCache); err != nil {
			return err
		}
		var mu sync.Mutex
		var lastH, lastM uint64
		if _, err := m.Float64ObservableGauge("tenant_registry.apikey.verify.cache.hit_ratio",
			metric.WithDescription("Share of API-key verify cache lookups that hit, since the previous collection."),
			metric.WithUnit("1"),
			metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
				h, mi := g.VerifyCache()
				mu.Lock()
				dh, dm := h-lastH, mi-lastM
				lastH, lastM = h, mi
				mu.Unlock()
				if dh+dm > 0 {
					o.Observe(float64(dh) / float64(dh+dm))
				}
				return nil
			})); err != nil {
			return err
		}
	}
	return nil
}

// backlog caches the outbox count for every.
type backlog struct {
	count func(context.Context) (int64, error)
	every time.Duration
	log   *slog.Logger

	mu   sync.Mutex
	at   time.Time
	n    int64
	have bool
}

func (b *backlog) observe(ctx context.Context, o metric.Int64Observer) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.have || time.Since(b.at) >= b.every {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n, err := b.count(qctx)
		cancel()
		b.at = time.Now() // a failing database is not asked again at once either
		if err != nil {
			b.log.WarnContext(ctx, "outbox backlog metric: count failed", "error", err)
		} else {
			b.n, b.have = n, true
		}
	}
	if b.have {
		o.Observe(b.n)
	}
	return nil
}

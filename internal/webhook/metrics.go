package webhook

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/platform/tenant-registry/internal/telemetry"
)

// metrics are the worker's instruments:
//
//	tenant_registry.webhook.deliveries    counter  attempts by outcome (delivered, retry, failed)
//	tenant_registry.webhook.backlog.age   gauge    seconds the oldest pending message has waited
type metrics struct {
	deliveries metric.Int64Counter
	byOutcome  map[string]metric.MeasurementOption
}

func newMetrics(mp metric.MeterProvider, age func(context.Context) (time.Duration, error)) (*metrics, error) {
	m := mp.Meter(telemetry.ScopeName)
	c, err := m.Int64Counter("tenant_registry.webhook.deliveries",
		metric.WithDescription("Webhook delivery attempts by outcome: delivered, retry (failed, tried again later), failed (given up)."),
		metric.WithUnit("{attempt}"))
	if err != nil {
		return nil, err
	}
	if _, err := m.Float64ObservableGauge("tenant_registry.webhook.backlog.age",
		metric.WithDescription("How long the oldest pending webhook message has waited."),
		metric.WithUnit("s"),
		metric.WithFloat64Callback(func(ctx context.Context, o metric.Float64Observer) error {
			d, err := age(ctx)
			if err != nil {
				return nil // a collection without the gauge; the next one tries again
			}
			o.Observe(d.Seconds())
			return nil
		})); err != nil {
		return nil, err
	}
	out := &metrics{deliveries: c, byOutcome: map[string]metric.MeasurementOption{}}
	for _, o := range []string{StatusDelivered, "retry", StatusFailed} {
		out.byOutcome[o] = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", o)))
	}
	return out, nil
}

func (m *metrics) outcomes(ctx context.Context, o string, n int) {
	m.deliveries.Add(ctx, int64(n), m.byOutcome[o])
}

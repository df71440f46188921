package webhook_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/internal/webhook"
)

// TestMetricsAndSpans: each attempt is a webhook.deliver span and counts
// in tenant_registry.webhook.deliveries by outcome; the backlog's age is
// the oldest pending message's wait.
func TestMetricsAndSpans(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	st := storetest.SQLite(t)
	clock := newClock()
	f := newFixture(t, st, clock, func(d *webhook.Deps) {
		d.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
		d.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	})
	rc := newReceiver(t)
	rc.answer = func(_ received, n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	f.endpoint(t, rc.srv.URL, []string{"tenant.updated"}, "")
	tid := f.tenant(t, "observed")
	if err := f.change(t, tid, "tenant.updated", false); err != nil {
		t.Fatal(err)
	}
	collect := func() (map[string]int64, float64) {
		t.Helper()
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		counts, age := map[string]int64{}, -1.0
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case metricdata.Sum[int64]:
					if m.Name == "tenant_registry.webhook.deliveries" {
						for _, p := range d.DataPoints {
							o, _ := p.Attributes.Value(attribute.Key("outcome"))
							counts[o.AsString()] += p.Value
						}
					}
				case metricdata.Gauge[float64]:
					if m.Name == "tenant_registry.webhook.backlog.age" && len(d.DataPoints) == 1 {
						age = d.DataPoints[0].Value
					}
				}
			}
		}
		return counts, age
	}
	clock.Advance(7 * time.Second)
	f.drain(t) // 503: retry
	counts, age := collect()
	if counts["retry"] != 1 || counts["delivered"] != 0 || age != 7 {
		t.Errorf("after a 503: deliveries %v, backlog age %v s; want 1 retry, age 7", counts, age)
	}
	clock.Advance(time.Second)
	f.drain(t)
	counts, age = collect()
	if counts["retry"] != 1 || counts["delivered"] != 1 || age != 0 {
		t.Errorf("after the retry: deliveries %v, backlog age %v s; want 1 retry, 1 delivered, age 0", counts, age)
	}
	var attempts []int64
	for _, s := range spans.Ended() {
		if s.Name() != "webhook.deliver" {
			continue
		}
		for _, a := range s.Attributes() {
			if a.Key == "http.response.status_code" {
				attempts = append(attempts, a.Value.AsInt64())
			}
		}
	}
	if len(attempts) != 2 || attempts[0] != 503 || attempts[1] != 200 {
		t.Errorf("webhook.deliver spans' statuses %v, want [503 200]", attempts)
	}
}

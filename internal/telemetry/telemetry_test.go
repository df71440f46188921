package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/platform/tenant-registry/internal/telemetry"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestPlanFromEnv(t *testing.T) {
	for _, c := range []struct {
		name    string
		env     map[string]string
		want    telemetry.Plan
		wantErr string
	}{
		{"nothing set", nil, telemetry.Plan{}, ""},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, telemetry.Plan{Traces: "http/protobuf", Metrics: "http/protobuf"}, ""},
		{"traces endpoint only", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, telemetry.Plan{Traces: "http/protobuf"}, ""},
		{"grpc", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, telemetry.Plan{Traces: "grpc", Metrics: "grpc"}, ""},
		{"exporter otlp without endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, telemetry.Plan{Traces: "http/protobuf"}, ""},
		{"metrics none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_METRICS_EXPORTER": "none"}, telemetry.Plan{Traces: "http/protobuf"}, ""},
		{"disabled", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, telemetry.Plan{}, ""},
		{"bad exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, telemetry.Plan{}, "OTEL_TRACES_EXPORTER"},
		{"bad protocol", map[string]string{"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/json"}, telemetry.Plan{}, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"},
		{"bad disabled", map[string]string{"OTEL_SDK_DISABLED": "yes"}, telemetry.Plan{}, "OTEL_SDK_DISABLED"},
	} {
		got, err := telemetry.PlanFromEnv(env(c.env))
		switch {
		case c.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), c.wantErr+":")):
			t.Errorf("%s: error %v, want one naming %s", c.name, err, c.wantErr)
		case c.wantErr == "" && (err != nil || got != c.want):
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}

func TestSetupWithoutEnvIsNoop(t *testing.T) {
	tel, err := telemetry.Setup(context.Background(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	_, span := tel.TracerProvider.Tracer("t").Start(context.Background(), "x")
	if span.IsRecording() || span.SpanContext().IsValid() {
		t.Error("without OTEL_* spans must be no-ops")
	}
}

func TestSetupExporting(t *testing.T) {
	// Nothing listens there: Setup must not block, Shutdown must return.
	tel, err := telemetry.Setup(context.Background(), env(map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tel.TracerProvider.(*sdktrace.TracerProvider); !ok || tel.Traces != "http/protobuf" {
		t.Errorf("traces: %T %q", tel.TracerProvider, tel.Traces)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = tel.Shutdown(ctx) // the export fails (nothing listens); it must not hang
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT a FROM t WHERE b = $1`:                          `SELECT a FROM t WHERE b = $1`,
		`SELECT a FROM t WHERE e = 'ann@example.com' AND x = 1`: `SELECT a FROM t WHERE e = '?' AND x = 1`,
		`UPDATE t SET n = 'it''s secret' WHERE id = $1`:         `UPDATE t SET n = '?' WHERE id = $1`,
	} {
		if got := telemetry.Sanitize(in); got != want {
			t.Errorf("Sanitize(%q) = %q, want %q", in, got, want)
		}
	}
	if got := telemetry.Sanitize(strings.Repeat("x", 5000)); len(got) != 2048 {
		t.Errorf("long statement: %d bytes", len(got))
	}
}

func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(&buf, nil)))
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(telemetry.WithRequestID(context.Background(), "rid-1"), "op")
	defer span.End()
	log.With("k", "v").InfoContext(ctx, "hello")
	log.Info("no context")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["request_id"] != "rid-1" || rec["trace_id"] != span.SpanContext().TraceID().String() || rec["span_id"] != span.SpanContext().SpanID().String() || rec["k"] != "v" {
		t.Errorf("record: %v", rec)
	}
	if strings.Contains(lines[1], "request_id") || strings.Contains(lines[1], "trace_id") {
		t.Errorf("a record without context got ids: %s", lines[1])
	}
}

func TestGauges(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	var queries atomic.Int64
	var hits, misses atomic.Uint64
	err := telemetry.RegisterGauges(mp, telemetry.Gauges{
		OutboxBacklog: func(context.Context) (int64, error) { queries.Add(1); return 7, nil },
		BacklogEvery:  time.Hour,
		VerifyCache:   func() (uint64, uint64) { return hits.Load(), misses.Load() },
	})
	if err != nil {
		t.Fatal(err)
	}
	hits.Store(3)
	misses.Store(1)
	values := map[string]float64{}
	for range 3 {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case metricdata.Gauge[int64]:
					values[m.Name] = float64(d.DataPoints[0].Value)
				case metricdata.Gauge[float64]:
					values[m.Name] = d.DataPoints[0].Value
				case metricdata.Sum[int64]:
					for _, dp := range d.DataPoints {
						r, _ := dp.Attributes.Value("result")
						values[m.Name+"."+r.AsString()] = float64(dp.Value)
					}
				}
			}
		}
		if _, ok := values["tenant_registry.apikey.verify.cache.hit_ratio"]; ok {
			if got := values["tenant_registry.apikey.verify.cache.hit_ratio"]; got != 0.75 {
				t.Errorf("hit ratio %v, want 0.75", got)
			}
		}
	}
	if values["tenant_registry.outbox.backlog"] != 7 || values["tenant_registry.apikey.verify.cache.hit"] != 3 || values["tenant_registry.apikey.verify.cache.miss"] != 1 {
		t.Errorf("values: %v", values)
	}
	if n := queries.Load(); n != 1 {
		t.Errorf("backlog queried %d times in three collections, want once (BacklogEvery)", n)
	}
}

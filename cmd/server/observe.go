package main

import (
	"context"
	"log/slog"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"github.com/platform/tenant-registry/ent/outbox"
	"github.com/platform/tenant-registry/internal/apikey"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/telemetry"
)

// outboxBacklogEvery is the least time between two outbox backlog counts.
const outboxBacklogEvery = 30 * time.Second

// instrument traces the store's queries and registers the service's gauges
// (outbox backlog, API-key verify cache). It must run before st.Client is
// handed to the services.
func instrument(tel *telemetry.Telemetry, st *store.Store, log *slog.Logger) {
	st.Instrument(func(d *entsql.Driver) dialect.Driver { return telemetry.TraceDriver(d, tel.TracerProvider) })
	switch {
	case tel.Traces == "" && tel.Metrics == "":
		log.Info("telemetry: nothing exported (no OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_*_EXPORTER set)")
	default:
		log.Info("telemetry: exporting over OTLP", "traces", or(tel.Traces, "off"), "metrics", or(tel.Metrics, "off"))
	}
}

// registerGauges registers the outbox backlog and verify cache instruments.
func registerGauges(tel *telemetry.Telemetry, st *store.Store, keys *apikey.Service, log *slog.Logger) error {
	client := st.Client
	return telemetry.RegisterGauges(tel.MeterProvider, telemetry.Gauges{
		OutboxBacklog: func(ctx context.Context) (int64, error) {
			n, err := client.Outbox.Query().Where(outbox.DoneAtIsNil()).Count(ctx)
			return int64(n), err
		},
		BacklogEvery: outboxBacklogEvery,
		VerifyCache:  keys.CacheStats,
		Logger:       log,
	})
}

// shutdownTelemetry flushes what is left to export.
func shutdownTelemetry(tel *telemetry.Telemetry, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), telemetry.ShutdownTimeout)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		log.Warn("telemetry: final flush failed", "error", err)
	}
}

package main

import (
	"context"
	"log/slog"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/telemetry"
)

// instrument traces the store's queries. It must run before st.Client is
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

// shutdownTelemetry flushes what is left to export.
func shutdownTelemetry(tel *telemetry.Telemetry, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), telemetry.ShutdownTimeout)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		log.Warn("telemetry: final flush failed", "error", err)
	}
}

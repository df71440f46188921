package main

import (
	"context"
	"log/slog"

	"github.com/platform/tenant-registry/internal/telemetry"
)

// logTelemetry says at start-up what is exported.
func logTelemetry(tel *telemetry.Telemetry, log *slog.Logger) {
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

// Package telemetry sets up OpenTelemetry for tenant-registry: traces and
// metrics exported over OTLP when the standard OTEL_* variables ask for it,
// no-op providers (next to no overhead) when they do not; the database
// tracing driver; the slog handler that stamps request and trace ids on
// every record; and the service's own gauges.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// ServiceName is the default service.name (OTEL_SERVICE_NAME or
// OTEL_RESOURCE_ATTRIBUTES override it).
const ServiceName = "tenant-registry"

// ScopeName is the instrumentation scope of the service's tracers and meters.
const ScopeName = "github.com/platform/tenant-registry"

// Telemetry holds the providers; Shutdown flushes and stops them.
type Telemetry struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// Traces and Metrics say what is exported ("" when nothing is, else
	// the OTLP protocol), for the start-up log line.
	Traces, Metrics string

	shutdown []func(context.Context) error
}

// Disabled returns no-op providers: nothing is recorded or exported.
func Disabled() *Telemetry {
	return &Telemetry{TracerProvider: tracenoop.NewTracerProvider(), MeterProvider: metricnoop.NewMeterProvider()}
}

// Plan is what the OTEL_* variables ask for: the OTLP protocol per signal,
// "" for off.
type Plan struct {
	Traces, Metrics string
}

// Protocols the OTLP exporters speak.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// PlanFromEnv reads the standard variables through getenv:
//
//   - OTEL_SDK_DISABLED=true turns everything off;
//   - OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER: "otlp" on, "none" off;
//     unset means on when an OTLP endpoint is configured for the signal
//     (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT),
//     so that a machine without any OTEL_* variable exports nothing;
//   - OTEL_EXPORTER_OTLP_{TRACES,METRICS}_PROTOCOL, else
//     OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf (default) or grpc.
//
// The exporters themselves read the remaining OTEL_EXPORTER_OTLP_* variables
// (endpoint, headers, timeout, TLS), the SDK reads OTEL_TRACES_SAMPLER*,
// OTEL_BSP_* and OTEL_METRIC_EXPORT_*, and the resource reads
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
func PlanFromEnv(getenv func(string) string) (Plan, error) {
	var p Plan
	switch v := strings.ToLower(strings.TrimSpace(getenv("OTEL_SDK_DISABLED"))); v {
	case "", "false":
	case "true":
		return p, nil
	default:
		return p, fmt.Errorf("OTEL_SDK_DISABLED: want true or false, got %q", v)
	}
	var err error
	if p.Traces, err = signalPlan(getenv, "TRACES"); err != nil {
		return p, err
	}
	if p.Metrics, err = signalPlan(getenv, "METRICS"); err != nil {
		return p, err
	}
	return p, nil
}

func signalPlan(getenv func(string) string, signal string) (string, error) {
	exporterVar := "OTEL_" + signal + "_EXPORTER"
	on := false
	switch v := strings.TrimSpace(getenv(exporterVar)); v {
	case "":
		on = getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
	case "none":
	case "otlp":
		on = true
	default:
		return "", fmt.Errorf("%s: want otlp or none, got %q (only OTLP export is built in)", exporterVar, v)
	}
	if !on {
		return "", nil
	}
	protoVar := "OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL"
	proto := strings.TrimSpace(getenv(protoVar))
	if proto == "" {
		protoVar = "OTEL_EXPORTER_OTLP_PROTOCOL"
		proto = strings.TrimSpace(getenv(protoVar))
	}
	switch proto {
	case "", ProtocolHTTP:
		return ProtocolHTTP, nil
	case ProtocolGRPC:
		return ProtocolGRPC, nil
	default:
		return "", fmt.Errorf("%s: want http/protobuf or grpc, got %q", protoVar, proto)
	}
}

// Setup builds the providers that the OTEL_* variables (read through
// getenv) ask for and installs them, with the W3C trace-context and
// baggage propagators, as the otel globals. Without any OTEL_* variable the
// providers are no-ops. Call Shutdown before exiting to flush.
func Setup(ctx context.Context, getenv func(string) string) (*Telemetry, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	plan, err := PlanFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	t := Disabled()
	t.Traces, t.Metrics = plan.Traces, plan.Metrics
	if plan.Traces == "" && plan.Metrics == "" {
		return t, nil
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", ServiceName)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	if plan.Traces != "" {
		var exp sdktrace.SpanExporter
		if plan.Traces == ProtocolGRPC {
			exp, err = otlptracegrpc.New(ctx)
		} else {
			exp, err = otlptracehttp.New(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: traces exporter: %w", err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		t.TracerProvider = tp
		t.shutdown = append(t.shutdown, tp.Shutdown)
	}
	if plan.Metrics != "" {
		var exp sdkmetric.Exporter
		if plan.Metrics == ProtocolGRPC {
			exp, err = otlpmetricgrpc.New(ctx)
		} else {
			exp, err = otlpmetrichttp.New(ctx)
		}
		if err != nil {
			_ = t.Shutdown(ctx)
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: metrics exporter: %w", err)
		}
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)), sdkmetric.WithResource(res))
		t.MeterProvider = mp
		t.shutdown = append(t.shutdown, mp.Shutdown)
	}
	otel.SetTracerProvider(t.TracerProvider)
	otel.SetMeterProvider(t.MeterProvider)
	return t, nil
}

// Shutdown flushes what is buffered and stops the exporters.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	t.shutdown = nil
	return errors.Join(errs...)
}

// ShutdownTimeout bounds the final flush.
const ShutdownTimeout = 5 * time.Second

package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/platform/tenant-registry/gen/tenantregistry/v1/tenantregistryv1connect"
	"github.com/platform/tenant-registry/internal/telemetry"
	"github.com/platform/tenant-registry/internal/text"
)

// Observability of every request, in one HTTP middleware (observer) and one
// Connect interceptor (observeInterceptor):
//
//   - a request id (X-Request-Id when sane, else a fresh one), echoed in the
//     response and carried in the context, so every log line of the request
//     has request_id (and trace_id/span_id: see telemetry.LogHandler);
//   - one server span per request (the W3C traceparent of the caller is
//     honoured), named by the RPC procedure, or the route of a plain
//     handler, with rpc.system/service/method and the Connect code; no
//     header, query string or body is recorded;
//   - the request counter and latency histogram by procedure and code;
//   - one access log line per request (debug for the health probes);
//   - panics in plain handlers recovered into a 500 internal error with one
//     error log line (the Connect handlers recover with recoverRPC).
//
// The RPC interceptor only notes the procedure, protocol and final code in
// the request's reqInfo; the middleware does the rest once, after the
// handler, so the REST shim (which calls the same Connect handlers) is
// covered the same way.

// reqInfo is what the RPC layer tells the middleware about a request.
type reqInfo struct {
	mu        sync.Mutex
	rpc       bool
	procedure string
	protocol  string
	code      connect.Code // 0: ok
	readOnly  bool         // the RPC has no side effects
}

type reqInfoKey struct{}

func infoFrom(ctx context.Context) *reqInfo {
	i, _ := ctx.Value(reqInfoKey{}).(*reqInfo)
	return i
}

func (i *reqInfo) set(spec connect.Spec, protocol string, err error) {
	if i == nil {
		return
	}
	i.mu.Lock()
	i.rpc, i.procedure, i.protocol = true, spec.Procedure, protocol
	i.readOnly = spec.IdempotencyLevel == connect.IdempotencyNoSideEffects
	i.code = 0
	if err != nil {
		i.code = connect.CodeOf(err)
	}
	i.mu.Unlock()
}

// observeInterceptor is the outermost interceptor: it sees the error after
// errorInterceptor has translated it.
type observeInterceptor struct{}

func (observeInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := next(ctx, req)
		infoFrom(ctx).set(req.Spec(), req.Peer().Protocol, err)
		return res, err
	}
}

func (observeInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (observeInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		err := next(ctx, conn)
		infoFrom(ctx).set(conn.Spec(), conn.Peer().Protocol, err)
		return err
	}
}

// deadlineInterceptor gives every unary RPC a deadline of d unless the
// client asked for a shorter one (Connect-Timeout-Ms, grpc-timeout).
// Streams are left to the client's deadline: an export may run long.
type deadlineInterceptor struct{ d time.Duration }

// longRPCs walk a tenant's whole history (a first digest verifies the chain
// it signs) and get at least this long, past the server's ReadTimeout and
// WriteTimeout too (longUnary, and restFront for their REST paths).
var longRPCs = map[string]time.Duration{
	tenantregistryv1connect.AuditServiceVerifyAuditChainProcedure: 5 * time.Minute,
	tenantregistryv1connect.AuditServiceCreateDigestProcedure:     5 * time.Minute,
}

func (i deadlineInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	if i.d <= 0 {
		return next
	}
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		d := max(i.d, longRPCs[req.Spec().Procedure])
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > d {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return next(ctx, req)
	}
}

func (deadlineInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (deadlineInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// recoverRPC is connect.WithRecover's handler: a panic in an RPC becomes
// internal, with one error log line.
func recoverRPC(log *slog.Logger) func(context.Context, connect.Spec, http.Header, any) error {
	return func(ctx context.Context, spec connect.Spec, _ http.Header, v any) error {
		logPanic(ctx, log, spec.Procedure, v)
		if i := infoFrom(ctx); i != nil {
			i.mu.Lock()
			i.rpc, i.procedure, i.code = true, spec.Procedure, connect.CodeInternal
			i.mu.Unlock()
		}
		return connect.NewError(connect.CodeInternal, errors.New("internal error"))
	}
}

func logPanic(ctx context.Context, log *slog.Logger, where string, v any) {
	msg := text.Truncate(fmt.Sprint(v), 200)
	log.LogAttrs(ctx, slog.LevelError, "panic recovered",
		slog.String("where", where), slog.String("panic", msg), slog.String("stack", string(debug.Stack())))
}

// observer is the HTTP middleware.
type observer struct {
	next     http.Handler
	log      *slog.Logger
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	requests metric.Int64Counter
	duration metric.Float64Histogram
	attrs    sync.Map // procedure + "\x00" + code → metric.MeasurementOption
}

func newObserver(next http.Handler, log *slog.Logger, tp trace.TracerProvider, mp metric.MeterProvider) (*observer, error) {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(telemetry.ScopeName)
	requests, err := m.Int64Counter("tenant_registry.requests",
		metric.WithDescription("Requests served, by procedure (or route) and Connect code."),
		metric.WithUnit("{request}"))
	if err != nil {
		return nil, err
	}
	duration, err := m.Float64Histogram("tenant_registry.request.duration",
		metric.WithDescription("Time to serve a request, by procedure (or route) and Connect code."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
	if err != nil {
		return nil, err
	}
	return &observer{
		next: next, log: log, tracer: tp.Tracer(telemetry.ScopeName),
		prop: otel.GetTextMapPropagator(), requests: requests, duration: duration,
	}, nil
}

func (o *observer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// The REST shim rewrites the request's URL in place: note the path now.
	reqLine := reqLine{method: r.Method, path: r.URL.Path}
	id := requestID(r.Header.Get("X-Request-Id"))
	w.Header().Set("X-Request-Id", id)
	info := &reqInfo{}
	ctx := context.WithValue(telemetry.WithRequestID(r.Context(), id), reqInfoKey{}, info)
	probe := r.URL.Path == "/healthz" || r.URL.Path == "/readyz"
	span := trace.SpanFromContext(ctx) // non-recording
	if !probe {
		ctx = o.prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
		ctx, span = o.tracer.Start(ctx, "HTTP "+r.Method, trace.WithSpanKind(trace.SpanKindServer))
	}
	sw := &statusWriter{ResponseWriter: w}
	r = r.WithContext(ctx)
	defer func() {
		v := recover()
		if v == http.ErrAbortHandler {
			span.End()
			panic(v)
		}
		if v != nil {
			logPanic(ctx, o.log, reqLine.method+" "+reqLine.path, v)
			info.mu.Lock()
			info.code = connect.CodeInternal
			info.mu.Unlock()
			if sw.status == 0 {
				writeJSONError(sw, connect.CodeInternal, "internal error")
			}
		}
		o.finish(ctx, span, r, reqLine, sw, info, probe, time.Since(start))
	}()
	o.next.ServeHTTP(sw, r)
}

// reqLine is a request's method and path as received.
type reqLine struct{ method, path string }

func (o *observer) finish(ctx context.Context, span trace.Span, r *http.Request, rl reqLine, sw *statusWriter, info *reqInfo, probe bool, d time.Duration) {
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	info.mu.Lock()
	rpc, procedure, protocol, code, readOnly := info.rpc, info.procedure, info.protocol, info.code, info.readOnly
	info.mu.Unlock()
	if !rpc && code == 0 {
		code = responseCode(sw.Header(), status)
	}
	codeStr := "ok"
	if code != 0 {
		codeStr = code.String()
	}
	name := procedure
	if name == "" {
		switch {
		case r.Pattern != "" && r.Pattern != "/":
			name = r.Pattern
		default:
			name = "other" // the REST shim's unmatched paths, among others
		}
	}

	if span.IsRecording() {
		if rpc {
			svc, method, _ := strings.Cut(strings.TrimPrefix(procedure, "/"), "/")
			span.SetName(strings.TrimPrefix(procedure, "/"))
			span.SetAttributes(
				attribute.String("rpc.system", rpcSystem(protocol)),
				attribute.String("rpc.service", svc),
				attribute.String("rpc.method", method),
				attribute.String("rpc.response.status_code", codeStr),
			)
			if protocol == connect.ProtocolGRPC || protocol == connect.ProtocolGRPCWeb {
				span.SetAttributes(attribute.Int("rpc.grpc.status_code", int(code)))
			} else if code != 0 {
				span.SetAttributes(attribute.String("rpc.connect_rpc.error_code", codeStr))
			}
		} else if name != "other" {
			span.SetName(name)
			span.SetAttributes(attribute.String("http.route", strings.TrimPrefix(name, rl.method+" ")))
		}
		span.SetAttributes(
			attribute.String("http.request.method", rl.method),
			attribute.String("url.path", rl.path),
			attribute.Int("http.response.status_code", status),
		)
		if serverFault(code) || status >= 500 {
			span.SetStatus(otelcodes.Error, codeStr)
		}
	}

	opt := o.measurement(name, codeStr)
	o.requests.Add(ctx, 1, opt)
	o.duration.Record(ctx, d.Seconds(), opt)

	// Changes and failures are logged; successful reads (the verify and
	// claims hot paths among them) and probes only at debug: metrics and
	// traces count them, and a line per verify would flood the logs.
	level := slog.LevelInfo
	if (probe && status < 500) || (readOnly && code == 0 && status < 400) {
		level = slog.LevelDebug
	}
	if o.log.Enabled(ctx, level) {
		attrs := make([]slog.Attr, 0, 6)
		attrs = append(attrs, slog.String("method", rl.method), slog.String("path", rl.path))
		if procedure != "" {
			attrs = append(attrs, slog.String("procedure", procedure))
		}
		attrs = append(attrs, slog.String("code", codeStr), slog.Int("status", status),
			slog.Float64("duration_ms", float64(d.Microseconds())/1000))
		o.log.LogAttrs(ctx, level, "request", attrs...)
	}
	span.End()
}

// measurement returns the cached attribute set of a procedure and code.
func (o *observer) measurement(procedure, code string) metric.MeasurementOption {
	key := procedure + "\x00" + code
	if v, ok := o.attrs.Load(key); ok {
		return v.(metric.MeasurementOption)
	}
	opt := metric.WithAttributeSet(attribute.NewSet(attribute.String("procedure", procedure), attribute.String("code", code)))
	o.attrs.Store(key, opt)
	return opt
}

// responseCode is the Connect code of a response that no RPC interceptor
// saw: a plain handler's, or an RPC refused before its handler ran (a body
// over the limit, a bad content type).
func responseCode(h http.Header, status int) connect.Code {
	for _, k := range []string{"Grpc-Status", http.TrailerPrefix + "Grpc-Status"} {
		if v := h.Get(k); v != "" {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 && n <= 16 {
				return connect.Code(n)
			}
		}
	}
	if status < 400 {
		return 0
	}
	return codeFromHTTP(status)
}

func rpcSystem(protocol string) string {
	switch protocol {
	case connect.ProtocolGRPC:
		return "grpc"
	case connect.ProtocolGRPCWeb:
		return "grpc_web"
	default:
		return "connect_rpc"
	}
}

// serverFault reports codes that are the server's fault (a span error).
func serverFault(c connect.Code) bool {
	switch c {
	case connect.CodeUnknown, connect.CodeInternal, connect.CodeUnavailable, connect.CodeDataLoss,
		connect.CodeDeadlineExceeded, connect.CodeUnimplemented:
		return true
	}
	return false
}

// statusWriter remembers the status sent.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 && status >= 200 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

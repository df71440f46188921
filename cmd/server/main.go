// Command server runs tenant-registry.
package main

import (
	"context"
	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/platform/tenant-registry/internal/app"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/config"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	applyGCPolicy(os.Getenv)
	if err := run(ctx, os.Args, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "tenant-registry: %v\n", err)
		os.Exit(1)
	}
}

// run starts the service and serves until ctx is done, then shuts down
// gracefully, each phase logged once:
//
//  1. draining: /readyz answers 503 (gRPC health NOT_SERVING) at once, and
//     for SHUTDOWN_DELAY every request is still served — with
//     Connection: close, so that keep-alive connections end — while load
//     balancers notice and stop sending new ones;
//  2. shutting down: the listener closes, idle connections too, and
//     in-flight requests finish within SHUTDOWN_TIMEOUT;
//  3. the background workers stop (a provisioning job they were running is
//     handed back, its lease released) and the last usage flush runs;
//  4. stopped.
func run(ctx context.Context, _ []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := newLogger(stdout, cfg.LogLevel)
	tel, err := telemetry.Setup(ctx, getenv)
	if err != nil {
		return err
	}
	defer shutdownTelemetry(tel, log) // last: after the server and the workers
	// Every statement is traced (client spans, SQL text without values).
	opts := store.Options{MaxConns: cfg.DBMaxConns, Driver: func(d *entsql.Driver) dialect.Driver {
		return telemetry.TraceDriver(d, tel.TracerProvider)
	}}
	var st *store.Store
	if cfg.DatabaseURL == "" {
		st, err = store.OpenSQLite(ctx, cfg.SQLitePath, opts)
	} else {
		st, err = store.Open(ctx, cfg.DatabaseURL, opts)
	}
	if err != nil {
		return err
	}
	if !st.Postgres() {
		log.Info("using the embedded SQLite store (dev only)", "path", or(cfg.SQLitePath, "(in memory)"))
	}
	defer st.Close()
	logTelemetry(tel, log)

	a, err := app.New(ctx, app.Deps{
		Config: cfg, Store: st, Logger: log, Clock: clock.System,
		TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider,
	})
	if err != nil {
		return err
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // h2c, for gRPC clients without TLS
	srv := &http.Server{
		Addr:              cfg.Addr,
		Handler:           a.Handler,
		Protocols:         &protocols,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("ADDR: %w", err)
	}
	gc, memoryLimit := gcInForce()
	log.Info("tenant-registry listening", "addr", ln.Addr().String(), "env", cfg.Env, "store", st.Dialect,
		"gc", gc, "memory_limit", memoryLimit)

	// Background work stops once the server has drained, before the store
	// is closed.
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	workersDone := make(chan struct{})
	go func() { a.Run(workCtx); close(workersDone) }()
	stopWorkers := sync.OnceFunc(func() {
		stopWork()
		<-workersDone
		log.Info("background jobs stopped")
	})
	defer stopWorkers()

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}

	a.Drain.Begin()
	log.Info("draining: readiness answers 503, still serving", "delay", cfg.ShutdownDelay.String())
	delay := time.NewTimer(cfg.ShutdownDelay)
	select {
	case err := <-serveErr:
		delay.Stop()
		return err
	case <-delay.C:
	}

	log.Info("shutting down: no new connections, in-flight requests drain", "grace", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	stopWorkers()
	log.Info("stopped")
	return nil
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	// Every record logged with a request's context carries its request_id
	// and trace_id/span_id.
	return slog.New(telemetry.LogHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})))
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

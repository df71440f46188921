// Command server runs tenant-registry.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/platform/tenant-registry/internal/audit"
	"github.com/platform/tenant-registry/internal/config"
	"github.com/platform/tenant-registry/internal/registry"
	"github.com/platform/tenant-registry/internal/server"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/tenant"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "tenant-registry: %v\n", err)
		os.Exit(1)
	}
}

// run starts the service and serves until ctx is done, then shuts down
// gracefully: in-flight requests finish, new ones are refused.
func run(ctx context.Context, _ []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := newLogger(stdout, cfg.LogLevel)
	clock := registry.Clock(registry.SystemClock)

	var st *store.Store
	if cfg.DatabaseURL == "" {
		st, err = store.OpenSQLite(ctx, cfg.SQLitePath)
		log.Info("using the embedded SQLite store", "path", or(cfg.SQLitePath, "(in memory)"))
	} else {
		st, err = store.Open(ctx, cfg.DatabaseURL, store.Options{MaxConns: cfg.DBMaxConns})
	}
	if err != nil {
		return err
	}
	defer st.Close()

	recorder := audit.NewRecorder(clock, st.Postgres())
	tenants := tenant.NewService(st.Client, recorder, clock)
	if cfg.Env == config.Dev {
		if err := tenants.SeedDev(ctx); err != nil {
			return fmt.Errorf("dev seed: %w", err)
		}
		log.Warn("APP_ENV=dev: requests without a token are served as a platform admin")
	}

	handler, err := server.NewServer(server.Deps{Logger: log, Store: st, Tenants: tenants})
	if err != nil {
		return err
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // h2c, for gRPC clients without TLS
	srv := &http.Server{
		Addr:              cfg.Addr,
		Handler:           handler,
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
	log.Info("tenant-registry listening", "addr", ln.Addr().String(), "env", cfg.Env, "store", st.Dialect)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

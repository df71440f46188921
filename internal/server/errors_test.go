package server

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/platform/tenant-registry/internal/errs"
)

// TestToConnectErrorDatabaseDown: a database that cannot be reached (or
// drops the connection) is unavailable (503, retryable), never a logged
// internal error; a failed statement stays internal, and the caller's own
// deadline stays deadline_exceeded.
func TestToConnectErrorDatabaseDown(t *testing.T) {
	// A real pgx connect error: nothing listens on a just-closed loopback port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, connectErr := pgconn.Connect(ctx, "postgres://postgres@"+addr+"/x?sslmode=disable&connect_timeout=2")
	var ce *pgconn.ConnectError
	if !errors.As(connectErr, &ce) {
		t.Fatalf("pgconn.Connect to a closed port = %T %v, want a *pgconn.ConnectError", connectErr, connectErr)
	}

	live := context.Background()
	expired, cancelExpired := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancelExpired()
	cases := []struct {
		name string
		ctx  context.Context
		err  error
		want connect.Code
	}{
		{"pgconn connect error", live, fmt.Errorf("begin: %w", connectErr), connect.CodeUnavailable},
		{"connection refused", live, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, connect.CodeUnavailable},
		{"connection reset", live, fmt.Errorf("read: %w", syscall.ECONNRESET), connect.CodeUnavailable},
		{"bad conn", live, fmt.Errorf("query: %w", driver.ErrBadConn), connect.CodeUnavailable},
		{"unexpected EOF", live, fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF), connect.CodeUnavailable},
		{"conn closed", live, fmt.Errorf("commit: %w", errors.New("conn closed")), connect.CodeUnavailable},
		{"admin shutdown", live, &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, connect.CodeUnavailable},
		{"starting up", live, &pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}, connect.CodeUnavailable},
		{"connection failure class 08", live, &pgconn.PgError{Code: "08006"}, connect.CodeUnavailable},
		{"pool timeout, request still live", live, fmt.Errorf("begin: %w", context.DeadlineExceeded), connect.CodeUnavailable},
		{"caller's deadline", expired, fmt.Errorf("begin: %w", context.DeadlineExceeded), connect.CodeDeadlineExceeded},
		{"unique violation", live, &pgconn.PgError{Code: "23505"}, connect.CodeInternal},
		{"a bug", live, errors.New("boom"), connect.CodeInternal},
		{"domain error", live, errs.Errorf(errs.NotFound, "tenant not found"), connect.CodeNotFound},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	for _, c := range cases {
		got := toConnectError(c.ctx, log, "/test/Proc", c.err)
		if code := connect.CodeOf(got); code != c.want {
			t.Errorf("%s: %v → %v, want %v", c.name, c.err, code, c.want)
		}
		if c.want == connect.CodeUnavailable && httpStatus(connect.CodeOf(got)) != 503 {
			t.Errorf("%s: HTTP %d, want 503", c.name, httpStatus(connect.CodeOf(got)))
		}
	}
}

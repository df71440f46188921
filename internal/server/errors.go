package server

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/platform/tenant-registry/ent"
	"github.com/platform/tenant-registry/internal/errs"
)

var errNotProto = errors.New("not a protobuf message")

// connectCodes maps domain error codes to Connect codes: the one place where
// domain errors become wire errors.
var connectCodes = map[errs.Code]connect.Code{
	errs.Invalid:         connect.CodeInvalidArgument,
	errs.NotFound:        connect.CodeNotFound,
	errs.Conflict:        connect.CodeAlreadyExists,
	errs.Precondition:    connect.CodeFailedPrecondition,
	errs.Unauthenticated: connect.CodeUnauthenticated,
	errs.Forbidden:       connect.CodePermissionDenied,
	errs.Unavailable:     connect.CodeUnavailable,
	errs.Exhausted:       connect.CodeResourceExhausted,
	errs.Internal:        connect.CodeInternal,
}

// toConnectError turns a handler's error into the error the client sees.
// Domain errors keep their message; anything else is logged here, once, and
// shown as a generic internal error (or unavailable/deadline when the
// context says so).
func toConnectError(ctx context.Context, log *slog.Logger, procedure string, err error) error {
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		return cerr
	}
	code := errs.CodeOf(err)
	if code == errs.Internal && ent.IsValidationError(err) {
		// The domain checks input before it reaches Ent; a value that
		// still fails a schema validator is bad input all the same.
		log.WarnContext(ctx, "input passed the domain's checks but not the schema's", "procedure", procedure, "error", err)
		return connect.NewError(connect.CodeInvalidArgument, errors.New("invalid input: a value is out of range"))
	}
	if code != errs.Internal {
		return connect.NewError(connectCodes[code], errors.New(errs.MessageOf(err)))
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New("deadline exceeded"))
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return connect.NewError(connect.CodeCanceled, errors.New("request canceled"))
	case databaseUnreachable(err):
		log.WarnContext(ctx, "database unavailable", "procedure", procedure, "error", err)
		return connect.NewError(connect.CodeUnavailable, errors.New("database unavailable; try again"))
	}
	log.ErrorContext(ctx, "internal error", "procedure", procedure, "error", err)
	return connect.NewError(connect.CodeInternal, errors.New("internal error"))
}

// databaseUnreachable reports whether err means the database could not be
// reached or dropped the connection (it is down, restarting or cut off), as
// opposed to a failed statement: pgx connect errors, network errors, a
// connection the pool gave up on, a server shutting down, or a timeout inside
// the pool while the request itself still had time (the caller's own
// deadline is handled before this).
func databaseUnreachable(err error) bool {
	var (
		connErr *pgconn.ConnectError
		netErr  net.Error
		pgErr   *pgconn.PgError
	)
	switch {
	case errors.As(err, &connErr), errors.As(err, &netErr),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &pgErr):
		// Class 08: connection exception; 57P01-57P03: admin shutdown,
		// crash shutdown, cannot connect now (starting up).
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	// pgx reports the use of a connection it already closed with a bare
	// errors.New("conn closed").
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "failed to connect to")
}

// restStatuses is the HTTP status of each Connect code on the REST paths,
// as the README's API section documents it (failed_precondition is 409
// there); a code not listed is 500. Read backwards, the first code listed
// for a status is that status's code.
var restStatuses = []struct {
	code   connect.Code
	status int
}{
	{connect.CodeInvalidArgument, http.StatusBadRequest},
	{connect.CodeOutOfRange, http.StatusBadRequest},
	{connect.CodeUnauthenticated, http.StatusUnauthorized},
	{connect.CodePermissionDenied, http.StatusForbidden},
	{connect.CodeNotFound, http.StatusNotFound},
	{connect.CodeAlreadyExists, http.StatusConflict},
	{connect.CodeFailedPrecondition, http.StatusConflict},
	{connect.CodeAborted, http.StatusConflict},
	{connect.CodeResourceExhausted, http.StatusTooManyRequests},
	{connect.CodeCanceled, 499},
	{connect.CodeUnimplemented, http.StatusNotImplemented},
	{connect.CodeUnavailable, http.StatusServiceUnavailable},
	{connect.CodeDeadlineExceeded, http.StatusGatewayTimeout},
	// Statuses that never come from an RPC's code, for codeFromHTTP.
	{connect.CodeInvalidArgument, http.StatusUnsupportedMediaType},
	{connect.CodeUnimplemented, http.StatusMethodNotAllowed},
	{connect.CodeResourceExhausted, http.StatusRequestEntityTooLarge},
}

// httpStatus is the HTTP status of a Connect code on the REST paths;
// codeFromHTTP is the code of an error that never was an RPC error (an
// unknown path, a method not allowed, a body too large). Both read
// restStatuses.
var statusOf, codeOf = func() (map[connect.Code]int, map[int]connect.Code) {
	status, code := map[connect.Code]int{}, map[int]connect.Code{}
	for _, r := range restStatuses {
		if _, ok := status[r.code]; !ok {
			status[r.code] = r.status
		}
		if _, ok := code[r.status]; !ok {
			code[r.status] = r.code
		}
	}
	return status, code
}()

func httpStatus(code connect.Code) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

func codeFromHTTP(status int) connect.Code {
	if c, ok := codeOf[status]; ok {
		return c
	}
	return connect.CodeInternal
}

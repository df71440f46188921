package telemetry

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// maxStatement bounds the statement text recorded on a span.
const maxStatement = 2048

// TraceDriver wraps an ent SQL driver so that every Exec, Query and
// transaction is a client span with db.system and the statement text. The
// text is ent's SQL with its placeholders; argument values are never
// recorded (they may hold key hashes or e-mail addresses), and quoted
// literals in the text are replaced by '?'. With a no-op TracerProvider the
// wrapper costs a few nanoseconds per call.
func TraceDriver(drv *entsql.Driver, tp trace.TracerProvider) dialect.Driver {
	system := drv.Dialect()
	switch system {
	case dialect.Postgres:
		system = "postgresql"
	case dialect.SQLite:
		system = "sqlite"
	}
	return &tracedDriver{
		drv:    drv,
		tracer: tp.Tracer(ScopeName + "/db"),
		system: attribute.String("db.system", system),
		name:   attribute.String("db.system.name", system),
	}
}

type tracedDriver struct {
	drv          *entsql.Driver
	tracer       trace.Tracer
	system, name attribute.KeyValue
}

var _ dialect.Driver = (*tracedDriver)(nil)

func (d *tracedDriver) start(ctx context.Context, query string) (context.Context, trace.Span) {
	ctx, span := d.tracer.Start(ctx, "db", trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		op, table := operation(query)
		name := op
		if table != "" {
			name += " " + table
		}
		span.SetName(name)
		span.SetAttributes(d.system, d.name,
			attribute.String("db.operation.name", op),
			attribute.String("db.query.text", Sanitize(query)))
		if table != "" {
			span.SetAttributes(attribute.String("db.collection.name", table))
		}
	}
	return ctx, span
}

func end(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		// The error text of a driver may quote values (a unique violation
		// names the duplicate key), so only its type is recorded.
		span.SetStatus(codes.Error, "database error")
		span.SetAttributes(attribute.String("error.type", errorType(err)))
	}
	span.End()
}

func (d *tracedDriver) Exec(ctx context.Context, query string, args, v any) error {
	ctx, span := d.start(ctx, query)
	err := d.drv.Exec(ctx, query, args, v)
	end(span, err)
	return err
}

func (d *tracedDriver) Query(ctx context.Context, query string, args, v any) error {
	ctx, span := d.start(ctx, query)
	err := d.drv.Query(ctx, query, args, v)
	end(span, err)
	return err
}

// ExecContext and QueryContext serve ent's client.ExecContext/QueryContext.
func (d *tracedDriver) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx, span := d.start(ctx, query)
	res, err := d.drv.ExecContext(ctx, query, args...)
	end(span, err)
	return res, err
}

func (d *tracedDriver) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx, span := d.start(ctx, query)
	rows, err := d.drv.QueryContext(ctx, query, args...)
	end(span, err)
	return rows, err
}

func (d *tracedDriver) Tx(ctx context.Context) (dialect.Tx, error) { return d.BeginTx(ctx, nil) }

// BeginTx starts a transaction; its span lasts until Commit or Rollback.
func (d *tracedDriver) BeginTx(ctx context.Context, opts *sql.TxOptions) (dialect.Tx, error) {
	_, span := d.tracer.Start(ctx, "BEGIN", trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetName("transaction")
		span.SetAttributes(d.system, d.name)
	}
	tx, err := d.drv.BeginTx(ctx, opts)
	if err != nil {
		end(span, err)
		return nil, err
	}
	return &tracedTx{Tx: tx, d: d, span: span}, nil
}

func (d *tracedDriver) Close() error    { return d.drv.Close() }
func (d *tracedDriver) Dialect() string { return d.drv.Dialect() }

// DB is the underlying database.
func (d *tracedDriver) DB() *sql.DB { return d.drv.DB() }

type tracedTx struct {
	dialect.Tx
	d    *tracedDriver
	span trace.Span
}

func (t *tracedTx) Exec(ctx context.Context, query string, args, v any) error {
	ctx, span := t.d.start(ctx, query)
	err := t.Tx.Exec(ctx, query, args, v)
	end(span, err)
	return err
}

func (t *tracedTx) Query(ctx context.Context, query string, args, v any) error {
	ctx, span := t.d.start(ctx, query)
	err := t.Tx.Query(ctx, query, args, v)
	end(span, err)
	return err
}

func (t *tracedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ex, ok := t.Tx.(interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	})
	if !ok {
		return nil, errNoExecContext
	}
	ctx, span := t.d.start(ctx, query)
	res, err := ex.ExecContext(ctx, query, args...)
	end(span, err)
	return res, err
}

func (t *tracedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	q, ok := t.Tx.(interface {
		QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	})
	if !ok {
		return nil, errNoQueryContext
	}
	ctx, span := t.d.start(ctx, query)
	rows, err := q.QueryContext(ctx, query, args...)
	end(span, err)
	return rows, err
}

func (t *tracedTx) Commit() error {
	err := t.Tx.Commit()
	if t.span.IsRecording() {
		t.span.SetAttributes(attribute.String("db.transaction.outcome", "commit"))
	}
	end(t.span, err)
	return err
}

func (t *tracedTx) Rollback() error {
	err := t.Tx.Rollback()
	if t.span.IsRecording() {
		t.span.SetAttributes(attribute.String("db.transaction.outcome", "rollback"))
	}
	end(t.span, err)
	return err
}

type driverError string

func (e driverError) Error() string { return string(e) }

const (
	errNoExecContext  = driverError("Tx.ExecContext is not supported")
	errNoQueryContext = driverError("Tx.QueryContext is not supported")
)

// operation returns a statement's first keyword (upper case) and, for the
// common shapes, the table it works on.
func operation(q string) (op, table string) {
	q = strings.TrimSpace(q)
	i := strings.IndexAny(q, " \t\n(")
	if i < 0 {
		return strings.ToUpper(q), ""
	}
	op = strings.ToUpper(q[:i])
	rest := q[i:]
	var after string
	switch op {
	case "SELECT", "DELETE":
		after = "FROM"
	case "INSERT":
		after = "INTO"
	case "UPDATE":
		return op, firstIdent(rest)
	default:
		return op, ""
	}
	j := indexKeyword(rest, after)
	if j < 0 {
		return op, ""
	}
	return op, firstIdent(rest[j+len(after):])
}

// indexKeyword finds kw as a whole word outside quotes (case-insensitive).
func indexKeyword(s, kw string) int {
	for i := 0; i+len(kw) <= len(s); i++ {
		if s[i] == '\'' || s[i] == '"' {
			q := s[i]
			for i++; i < len(s) && s[i] != q; i++ {
			}
			continue
		}
		if strings.EqualFold(s[i:i+len(kw)], kw) && (i == 0 || s[i-1] == ' ' || s[i-1] == '\n' || s[i-1] == '\t') &&
			(i+len(kw) == len(s) || s[i+len(kw)] == ' ' || s[i+len(kw)] == '\n' || s[i+len(kw)] == '\t' || s[i+len(kw)] == '"') {
			return i
		}
	}
	return -1
}

func firstIdent(s string) string {
	s = strings.TrimLeft(s, " \t\n")
	end := strings.IndexAny(s, " \t\n(,;")
	if end < 0 {
		end = len(s)
	}
	id := strings.ReplaceAll(strings.ReplaceAll(s[:end], `"`, ""), "`", "")
	if len(id) > 64 {
		return ""
	}
	return id
}

// Sanitize returns a statement fit for a span: quoted string literals
// become '?', and the text is cut at maxStatement bytes. Values passed as
// arguments never reach it.
func Sanitize(q string) string {
	if strings.IndexByte(q, '\'') < 0 {
		if len(q) > maxStatement {
			return q[:maxStatement]
		}
		return q
	}
	var b strings.Builder
	b.Grow(len(q))
	for i := 0; i < len(q); i++ {
		c := q[i]
		if c != '\'' {
			b.WriteByte(c)
			continue
		}
		// Skip to the closing quote ('' is an escaped quote inside).
		for i++; i < len(q); i++ {
			if q[i] == '\'' {
				if i+1 < len(q) && q[i+1] == '\'' {
					i++
					continue
				}
				break
			}
		}
		b.WriteString("'?'")
		if b.Len() >= maxStatement {
			break
		}
	}
	s := b.String()
	if len(s) > maxStatement {
		s = s[:maxStatement]
	}
	return s
}

func errorType(err error) string {
	var state interface{ SQLState() string }
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "no_rows"
	case errors.Is(err, sql.ErrTxDone):
		return "tx_done"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	case errors.As(err, &state):
		return "sqlstate_" + state.SQLState() // a code, never a value
	}
	return "error"
}

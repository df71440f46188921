package telemetry_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	_ "modernc.org/sqlite"

	"github.com/platform/tenant-registry/internal/telemetry"
)

func TestTraceDriver(t *testing.T) {
	db, err := sql.Open("sqlite", "file:tracedrv?mode=memory&cache=shared")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	drv := telemetry.TraceDriver(entsql.OpenDB(dialect.SQLite, db), tp)
	ctx := context.Background()
	const secret = "ann@example.com"
	if err := drv.Exec(ctx, "CREATE TABLE users (email TEXT)", []any{}, nil); err != nil {
		t.Fatal(err)
	}
	tx, err := drv.Tx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Exec(ctx, "INSERT INTO users (email) VALUES (?)", []any{secret}, nil); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var rows entsql.Rows
	if err := drv.Query(ctx, "SELECT email FROM users WHERE email = ?", []any{secret}, &rows); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if err := drv.Exec(ctx, "INSERT INTO nowhere VALUES (?)", []any{secret}, nil); err == nil {
		t.Fatal("want an error")
	}

	names := []string{}
	for _, s := range rec.Ended() {
		names = append(names, s.Name())
		all := s.Name() + s.Status().Description
		for _, kv := range s.Attributes() {
			all += kv.Value.Emit()
		}
		if strings.Contains(all, secret) {
			t.Errorf("span %s holds an argument value", s.Name())
		}
		set := attribute.NewSet(s.Attributes()...)
		if v, _ := set.Value("db.system"); v.AsString() != "sqlite" {
			t.Errorf("span %s: db.system %q", s.Name(), v.AsString())
		}
	}
	want := "CREATE INSERT users transaction SELECT users INSERT nowhere"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("spans %q, want %q", got, want)
	}
}

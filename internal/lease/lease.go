// Package lease gives the queues (the Keycloak outbox, webhook messages)
// their timing: leases on one clock — the database's on PostgreSQL, where
// replicas' clocks differ and the database has one, and the service clock
// on the embedded store (one process) — and the retry backoff.
package lease

import (
	"fmt"
	"time"

	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql"
)

// Free selects the rows whose lease in column is free or ran out.
func Free(column string, now time.Time) func(*sql.Selector) {
	return func(s *sql.Selector) {
		c := s.C(column)
		if s.Dialect() == dialect.Postgres {
			s.Where(sql.Or(sql.IsNull(c), sql.ExprP(c+" < now()")))
			return
		}
		s.Where(sql.Or(sql.IsNull(c), sql.LT(c, now)))
	}
}

// Set sets column to d from now, by Free's clock. d is whole seconds.
func Set(column string, now time.Time, d time.Duration) func(*sql.UpdateBuilder) {
	return func(u *sql.UpdateBuilder) {
		if u.Dialect() == dialect.Postgres {
			u.Set(column, sql.Expr(fmt.Sprintf("now() + interval '%d seconds'", int(d/time.Second))))
			return
		}
		u.Set(column, now.Add(d))
	}
}

// Backoff is the wait after the n-th failed attempt (n ≥ 1): first,
// 2·first, 4·first, …, at most limit.
func Backoff(n int, first, limit time.Duration) time.Duration {
	d := first
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

package store

import (
	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"github.com/platform/tenant-registry/ent"
)

// Instrument replaces s.Client by a client whose driver is wrap's (e.g. a
// tracing driver: telemetry.TraceDriver) over the same database. Call it
// before handing s.Client to the services.
func (s *Store) Instrument(wrap func(*entsql.Driver) dialect.Driver) {
	s.Client = ent.NewClient(ent.Driver(wrap(entsql.OpenDB(s.Dialect, s.DB))))
}

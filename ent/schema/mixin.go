package schema

import (
	"fmt"
	"time"

	"entgo.io/ent/dialect"

	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/mixin"
	"github.com/google/uuid"
)

// IDMixin gives a table a UUID primary key. Services set ids themselves; the
// default is a fallback for hand-written inserts through Ent.
type IDMixin struct{ mixin.Schema }

func (IDMixin) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(uuid.New).Immutable(),
	}
}

// TimeMixin adds created_at and updated_at. The service sets both from its
// injected clock; the defaults are fallbacks, and on PostgreSQL a trigger
// keeps updated_at current for writes from outside the service too.
type TimeMixin struct{ mixin.Schema }

func (TimeMixin) Fields() []ent.Field {
	return []ent.Field{
		field.Time("created_at").Default(time.Now).Immutable(),
		field.Time("updated_at").Default(time.Now).UpdateDefault(time.Now),
	}
}

func uuidType() uuid.UUID { return uuid.UUID{} }

// varchar is a string column's PostgreSQL type: varchar(n), which counts
// characters, as MaxRuneLen does (Ent alone would make it an unbounded
// character varying), so the database holds the API's limit too.
func varchar(n int) map[string]string {
	return map[string]string{dialect.Postgres: fmt.Sprintf("varchar(%d)", n)}
}

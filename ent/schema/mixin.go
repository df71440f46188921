package schema

import (
	"time"

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

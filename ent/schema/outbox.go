package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// Outbox is durable pending work, written in the same transaction as the
// change that needs it (e.g. Keycloak provisioning of a new tenant) and
// worked off by a background worker on any replica: a worker claims a job
// with a lease (locked_until), so no two replicas run it at once, and a
// failed attempt is retried with backoff until it succeeds. Leases are
// fenced (lease_token) and timed by the database's clock on PostgreSQL.
type Outbox struct{ ent.Schema }

func (Outbox) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}} }

func (Outbox) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("tenant_id", uuid.UUID{}).Immutable(),
		// What to do, e.g. "keycloak.provision".
		field.String("kind").NotEmpty().MaxRuneLen(64).SchemaType(varchar(64)).Immutable(),
		field.JSON("payload", map[string]string{}).Optional(),
		field.Int("attempts").Default(0).NonNegative(),
		field.Time("next_attempt_at"),
		field.Time("locked_until").Optional().Nillable(),
		// The lease holder's fencing token, new at every claim: each write
		// of an attempt's outcome requires it, so a worker whose lease ran
		// out (and was taken over) cannot overwrite the newer holder's result.
		field.UUID("lease_token", uuid.UUID{}).Optional().Nillable(),
		field.String("last_error").Optional().MaxRuneLen(2000).SchemaType(varchar(2000)),
		field.Time("done_at").Optional().Nillable(),
	}
}

func (Outbox) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("tenant", Tenant.Type).Ref("outbox").Field("tenant_id").Unique().Required().Immutable(),
	}
}

func (Outbox) Indexes() []ent.Index {
	return []ent.Index{
		// One job of a kind per tenant.
		index.Fields("tenant_id", "kind").Unique(),
		// The worker's scan: due jobs not yet done.
		index.Fields("next_attempt_at").Annotations(entsql.IndexWhere("done_at IS NULL")),
	}
}

func (Outbox) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("outbox")}
}

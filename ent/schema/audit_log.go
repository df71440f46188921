package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// AuditLog is one Retraced-shaped audit event. The tenant reference is set to
// NULL when the tenant is deleted (group_id and group_name keep who it was),
// so history outlives the tenant. Events are append-only: no updated_at.
type AuditLog struct{ ent.Schema }

func (AuditLog) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}} }

func (AuditLog) Fields() []ent.Field {
	return []ent.Field{
		field.Time("created_at").Default(time.Now).Immutable(),
		field.UUID("tenant_id", uuidType()).Optional().Nillable(),
		// The group as it was when the event was written.
		field.String("group_id").Optional().MaxRuneLen(64).Immutable(),
		field.String("group_name").Optional().MaxRuneLen(200).Immutable(),
		field.String("action").NotEmpty().MaxRuneLen(128).Immutable(),
		field.String("crud").MaxRuneLen(1).Immutable(),
		field.String("actor_id").NotEmpty().MaxRuneLen(255).Immutable(),
		field.String("actor_name").Optional().MaxRuneLen(255).Immutable(),
		field.String("actor_type").MaxRuneLen(16).Immutable(),
		field.String("target_id").Optional().MaxRuneLen(255).Immutable(),
		field.String("target_name").Optional().MaxRuneLen(255).Immutable(),
		field.String("target_type").Optional().MaxRuneLen(64).Immutable(),
		field.String("source_ip").Optional().MaxRuneLen(64).Immutable(),
		field.String("description").Optional().MaxRuneLen(2000).Immutable(),
		field.Bool("is_failure").Default(false).Immutable(),
		field.Bool("is_anonymous").Default(false).Immutable(),
		field.JSON("fields", map[string]string{}).Optional().Immutable(),
		// Products' idempotency key: one event per (group, key).
		field.String("idempotency_key").Optional().Nillable().MaxRuneLen(128).Immutable(),
		// Position in the group's hash chain (1, 2, …) and the chain hashes
		// (hex SHA-256): hash = SHA-256(prev_hash ‖ canonical(event)).
		field.Int64("chain_seq").Optional().Nillable().Immutable(),
		field.String("prev_hash").Optional().MaxRuneLen(64).Immutable(),
		field.String("hash").Optional().MaxRuneLen(64).Immutable(),
	}
}

func (AuditLog) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("tenant", Tenant.Type).Ref("audit_events").Field("tenant_id").Unique(),
	}
}

func (AuditLog) Indexes() []ent.Index {
	return []ent.Index{
		// ListEvents keyset order: newest first on (created_at, id), globally
		// and per tenant.
		index.Fields("created_at", "id"),
		index.Fields("tenant_id", "created_at", "id"),
		index.Fields("group_id", "chain_seq").Unique(),
		index.Fields("group_id", "idempotency_key").Unique(),
		index.Fields("action"),
	}
}

func (AuditLog) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entsql.Table("audit_log"),
		entsql.Checks(map[string]string{
			"audit_log_crud":       "crud IN ('c', 'r', 'u', 'd')",
			"audit_log_actor_type": "actor_type IN ('user', 'service', 'system')",
		}),
	}
}

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
// so history outlives the tenant. Events are append-only: no updated_at, and
// a trigger refuses every UPDATE but the purge's SET NULL of tenant_id (see
// migrations/*_audit_log_immutable.sql and store.sqliteAuditTriggers). Every
// row is in its group's chain: the chain columns are NOT NULL.
type AuditLog struct{ ent.Schema }

func (AuditLog) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}} }

func (AuditLog) Fields() []ent.Field {
	return []ent.Field{
		field.Time("created_at").Default(time.Now).Immutable(),
		// The tenant while it exists: NULL once it is purged (the FK's ON
		// DELETE SET NULL), otherwise always group_id (a CHECK). Not hashed
		// (it changes at the purge); group_id is, and the UPDATE-refusing
		// trigger lets nothing but the purge's SET NULL change it.
		field.UUID("tenant_id", uuidType()).Optional().Nillable(),
		// The group (tenant id, canonical lower-case UUID) as it was when the
		// event was written: what list, export and verify read.
		field.String("group_id").NotEmpty().MaxRuneLen(64).SchemaType(varchar(64)).Immutable(),
		field.String("group_name").Optional().MaxRuneLen(200).SchemaType(varchar(200)).Immutable(),
		field.String("action").NotEmpty().MaxRuneLen(128).SchemaType(varchar(128)).Immutable(),
		field.String("crud").MaxRuneLen(1).SchemaType(varchar(1)).Immutable(),
		field.String("actor_id").NotEmpty().MaxRuneLen(255).SchemaType(varchar(255)).Immutable(),
		field.String("actor_name").Optional().MaxRuneLen(255).SchemaType(varchar(255)).Immutable(),
		field.String("actor_type").MaxRuneLen(16).SchemaType(varchar(16)).Immutable(),
		field.String("target_id").Optional().MaxRuneLen(255).SchemaType(varchar(255)).Immutable(),
		field.String("target_name").Optional().MaxRuneLen(255).SchemaType(varchar(255)).Immutable(),
		field.String("target_type").Optional().MaxRuneLen(64).SchemaType(varchar(64)).Immutable(),
		field.String("source_ip").Optional().MaxRuneLen(64).SchemaType(varchar(64)).Immutable(),
		field.String("description").Optional().MaxRuneLen(2000).SchemaType(varchar(2000)).Immutable(),
		field.Bool("is_failure").Default(false).Immutable(),
		field.Bool("is_anonymous").Default(false).Immutable(),
		field.JSON("fields", map[string]string{}).Optional().Immutable(),
		// The authenticated appender: the caller of AppendEvent, or the
		// service itself (system) for its own events. Empty on events of
		// hash_version 1, written before appenders were recorded.
		field.String("appended_by_id").Default("").MaxRuneLen(255).SchemaType(varchar(255)).Immutable(),
		field.String("appended_by_type").Default("").MaxRuneLen(16).SchemaType(varchar(16)).Immutable(),
		field.String("appended_by_tenant").Default("").MaxRuneLen(64).SchemaType(varchar(64)).Immutable(),
		// Idempotency key: one event per (group, appender, key).
		field.String("idempotency_key").Optional().Nillable().MaxRuneLen(128).SchemaType(varchar(128)).Immutable(),
		// Position in the group's hash chain (1, 2, …) and the chain hashes
		// (hex SHA-256): hash = SHA-256(prev_hash ‖ canonical(event)).
		field.Int64("chain_seq").Immutable(),
		field.String("prev_hash").MaxRuneLen(64).SchemaType(varchar(64)).Immutable(),
		field.String("hash").MaxRuneLen(64).SchemaType(varchar(64)).Immutable(),
		// The version of the canonical form the hash covers (see
		// internal/audit.Canonical): 1 without the appender, 2 with it.
		field.Int("hash_version").Default(1).Immutable(),
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
		index.Fields("group_id", "created_at", "id"),
		// The chain: export and verify read it in this order.
		index.Fields("group_id", "chain_seq").Unique(),
		// Idempotency keys are the appender's own.
		index.Fields("group_id", "appended_by_type", "appended_by_id", "idempotency_key").Unique().StorageKey("auditlog_group_id_appender_idempotency_key"),
		// Every documented ListEvents filter of a tenant is a seek in the
		// keyset order: (group, filter column, created_at, id), so a page
		// of a rare actor among a tenant's millions of events reads that
		// page and no more. The action's is in pattern order, so that an
		// action prefix ("tenant.*") is an index range too. (It replaces the
		// global (action) index, which the planner preferred for an action
		// rare overall and then walked filtering the tenant.)
		index.Fields("group_id", "actor_id", "created_at", "id"),
		index.Fields("group_id", "target_id", "created_at", "id"),
		index.Fields("group_id", "target_type", "created_at", "id"),
		index.Fields("group_id", "action", "created_at", "id").Annotations(entsql.OpClassColumn("action", "varchar_pattern_ops")),
		index.Fields("group_id", "crud", "created_at", "id"),
		// The purge's ON DELETE SET NULL finds a tenant's events by it.
		index.Fields("tenant_id"),
	}
}

func (AuditLog) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entsql.Table("audit_log"),
		entsql.Checks(map[string]string{
			"audit_log_crud":             "crud IN ('c', 'r', 'u', 'd')",
			"audit_log_actor_type":       "actor_type IN ('user', 'service', 'system')",
			"audit_log_appended_by_type": "appended_by_type IN ('', 'user', 'service', 'system')",
			// The row's tenant is its group, or NULL once the tenant is purged.
			"audit_log_tenant_group": "tenant_id IS NULL OR CAST(tenant_id AS TEXT) = group_id",
			// A canonical (lower-case) UUID: one spelling per group.
			"audit_log_group_id":     "length(group_id) = 36 AND group_id = lower(group_id)",
			"audit_log_chain_seq":    "chain_seq >= 1",
			"audit_log_hash":         "length(hash) = 64",
			"audit_log_hash_version": "hash_version IN (1, 2)",
		}),
	}
}

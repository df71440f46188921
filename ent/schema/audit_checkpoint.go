package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// AuditCheckpoint records a segment of a group's audit hash chain that the
// retention sweeper deleted: every event of the group up to and including
// chain_seq is gone, and hash is the stored hash of that last deleted event.
// Verification of the chain starts after the group's latest checkpoint (and
// new events chain on from it when nothing else is left). Checkpoints are
// append-only: one row per deleted segment, a record of retention too.
type AuditCheckpoint struct{ ent.Schema }

func (AuditCheckpoint) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}} }

func (AuditCheckpoint) Fields() []ent.Field {
	return []ent.Field{
		// The group (tenant id, as audit_log.group_id).
		field.String("group_id").MaxRuneLen(64).SchemaType(varchar(64)).Immutable(),
		// The chain_seq of the last deleted event.
		field.Int64("chain_seq").Immutable(),
		// The hash of the last deleted event (hex SHA-256).
		field.String("hash").MaxRuneLen(64).SchemaType(varchar(64)).Immutable(),
		// created_at of the last deleted event.
		field.Time("deleted_through").Immutable(),
		// How many events this segment held.
		field.Int64("events_deleted").Default(0).Immutable(),
		// When the sweeper deleted the segment.
		field.Time("created_at").Immutable(),
	}
}

func (AuditCheckpoint) Indexes() []ent.Index {
	return []ent.Index{
		// The latest checkpoint of a group: highest chain_seq.
		index.Fields("group_id", "chain_seq").Unique(),
	}
}

func (AuditCheckpoint) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("audit_checkpoints")}
}

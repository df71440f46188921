package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// AuditDigest is a signed statement of a group's audit hash chain head:
// events first_seq..last_seq were written and the one at last_seq has the
// hash head_hash. Digests of a group form their own chain
// (prev_digest_hash is the previous digest's digest_hash) and are signed
// with an Ed25519 key the database never holds (internal/audit/digest.go
// documents the signed encoding). Like checkpoints they name the group, not
// a tenant row, so they outlive a purged tenant. Append-only: unique
// (group_id, first_seq) and (group_id, last_seq) keep two replicas from
// digesting one head twice or forking the digest chain.
type AuditDigest struct{ ent.Schema }

func (AuditDigest) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}} }

func (AuditDigest) Fields() []ent.Field {
	return []ent.Field{
		// The group (tenant id, canonical lower-case UUID, as audit_log.group_id).
		field.String("group_id").MaxRuneLen(64).SchemaType(varchar(64)).Immutable(),
		// The chain segment this digest covers, both inclusive.
		field.Int64("first_seq").Immutable(),
		field.Int64("last_seq").Immutable(),
		// The hash of the event at last_seq (hex SHA-256).
		field.String("head_hash").MaxRuneLen(64).SchemaType(varchar(64)).Immutable(),
		// The digest_hash of the group's previous digest; "" for its first.
		field.String("prev_digest_hash").MaxRuneLen(64).SchemaType(varchar(64)).Immutable(),
		// hex(SHA-256(the signed encoding)): what the next digest links to.
		field.String("digest_hash").MaxRuneLen(64).SchemaType(varchar(64)).Immutable(),
		// When it was signed (microseconds, part of the signed encoding).
		field.Time("created_at").Immutable(),
		// The signing key (audit_signing_keys.key_id).
		field.String("key_id").MaxRuneLen(64).SchemaType(varchar(64)).Immutable(),
		// The Ed25519 signature over the encoding, standard base64.
		field.String("signature").MaxRuneLen(128).SchemaType(varchar(128)).Immutable(),
	}
}

func (AuditDigest) Indexes() []ent.Index {
	return []ent.Index{
		// One digest per head, and one successor per digest.
		index.Fields("group_id", "last_seq").Unique(),
		index.Fields("group_id", "first_seq").Unique(),
		// ListDigests' keyset order, newest first.
		index.Fields("group_id", "created_at", "id"),
	}
}

func (AuditDigest) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entsql.Table("audit_digests"),
		entsql.Checks(map[string]string{
			"audit_digests_seq":  "first_seq >= 1 AND last_seq >= first_seq",
			"audit_digests_hash": "length(head_hash) = 64 AND length(digest_hash) = 64",
		}),
	}
}

package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// AuditSigningKey is the public half of a key that signs audit digests
// (AUDIT_SIGNING_KEY_FILE): the database never holds a private key. A
// replica records its key at start-up when it is new, closing (not_after)
// the keys it supersedes; a superseded key signs no more digests.
type AuditSigningKey struct{ ent.Schema }

func (AuditSigningKey) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}} }

func (AuditSigningKey) Fields() []ent.Field {
	return []ent.Field{
		// hex(SHA-256(the public key's PKIX DER)).
		field.String("key_id").MaxRuneLen(64).SchemaType(varchar(64)).Immutable(),
		// The public key, PEM ("PUBLIC KEY", PKIX).
		field.String("public_key_pem").MaxRuneLen(1024).SchemaType(varchar(1024)).Immutable(),
		// The key signs digests from not_before until not_after (open while NULL).
		field.Time("not_before").Immutable(),
		field.Time("not_after").Optional().Nillable(),
	}
}

func (AuditSigningKey) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("key_id").Unique(),
		// ListPublicKeys' keyset order, newest first.
		index.Fields("not_before", "id"),
	}
}

func (AuditSigningKey) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("audit_signing_keys")}
}

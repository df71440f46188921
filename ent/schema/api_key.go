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

// APIKey is a tenant's API key. Only a keyed hash of the secret is stored.
type APIKey struct{ ent.Schema }

func (APIKey) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}} }

func (APIKey) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("tenant_id", uuid.UUID{}).Immutable(),
		// The tenant's project the key belongs to, if any (NULL once the
		// project is deleted: its keys are revoked then).
		field.UUID("project_id", uuid.UUID{}).Optional().Nillable().Immutable(),
		field.String("name").NotEmpty().MaxRuneLen(200).SchemaType(varchar(200)),
		// Short non-secret prefix for display.
		field.String("prefix").NotEmpty().MaxRuneLen(32).SchemaType(varchar(32)).Immutable(),
		// HMAC-SHA-256 of the secret, keyed with the server's secret.
		field.Bytes("hash").Unique().Immutable().Sensitive(),
		field.Strings("scopes").Optional(),
		field.String("created_by").Optional().MaxRuneLen(255).SchemaType(varchar(255)),
		field.Time("expires_at").Optional().Nillable(),
		field.Time("last_used_at").Optional().Nillable(),
		field.Time("revoked_at").Optional().Nillable(),
	}
}

func (APIKey) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("tenant", Tenant.Type).Ref("api_keys").Field("tenant_id").Unique().Required().Immutable(),
		edge.From("project", TenantProject.Type).Ref("api_keys").Field("project_id").Unique().Immutable(),
	}
}

func (APIKey) Indexes() []ent.Index {
	return []ent.Index{
		// ListApiKeys: a tenant's keys newest first, keyset on (created_at, id).
		index.Fields("tenant_id", "created_at", "id"),
		// DeleteProject revokes a project's keys.
		index.Fields("project_id"),
	}
}

func (APIKey) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("api_keys")}
}

package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"github.com/google/uuid"
)

// TenantIdpConfig is a tenant's own identity provider for SSO (one per
// tenant).
type TenantIdpConfig struct{ ent.Schema }

func (TenantIdpConfig) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}} }

func (TenantIdpConfig) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("tenant_id", uuid.UUID{}).Unique().Immutable(),
		field.Enum("protocol").Values("oidc", "saml").
			SchemaType(map[string]string{dialect.Postgres: "idp_protocol"}),
		// OIDC issuer URL or SAML metadata URL.
		field.String("issuer_url").MaxRuneLen(2048).SchemaType(varchar(2048)),
		field.String("client_id").Optional().MaxRuneLen(255).SchemaType(varchar(255)),
		field.Bool("enabled").Default(false),
	}
}

func (TenantIdpConfig) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("tenant", Tenant.Type).Ref("idp_config").Field("tenant_id").Unique().Required().Immutable(),
	}
}

func (TenantIdpConfig) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("tenant_idp_config")}
}

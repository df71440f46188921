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
// tenant), provisioned in Keycloak through the outbox (internal/sso).
type TenantIdpConfig struct{ ent.Schema }

func (TenantIdpConfig) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}} }

func (TenantIdpConfig) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("tenant_id", uuid.UUID{}).Unique().Immutable(),
		field.Enum("protocol").Values("oidc", "saml").
			SchemaType(map[string]string{dialect.Postgres: "idp_protocol"}),
		// OIDC issuer URL or SAML metadata URL ("" for a SAML provider
		// given by entity id, SSO URL and certificate).
		field.String("issuer_url").MaxRuneLen(2048).SchemaType(varchar(2048)),
		field.String("client_id").Optional().MaxRuneLen(255).SchemaType(varchar(255)),
		field.Bool("enabled").Default(false),
		// The OIDC client secret, sealed (internal/secret) under
		// IDP_SECRET_KEY with the tenant and column as additional data:
		// ciphertext only, never the secret.
		field.Bytes("client_secret_sealed").Optional().Nillable().Sensitive(),
		// SAML without a metadata URL: the IdP's entity id, SSO URL and
		// signing certificate (PEM).
		field.String("saml_entity_id").Optional().MaxRuneLen(2048).SchemaType(varchar(2048)),
		field.String("saml_sso_url").Optional().MaxRuneLen(2048).SchemaType(varchar(2048)),
		field.Text("saml_signing_certificate").Optional().MaxRuneLen(16384),
		// Keycloak provisioning of the identity provider: pending,
		// provisioned or failed (the outbox retries it), as a tenant's
		// provisioning_state.
		field.String("idp_state").Default("pending").MaxRuneLen(16).SchemaType(varchar(16)),
		// generation counts the configuration's changes: a provisioning
		// attempt that started on an older generation records no success.
		field.Int64("generation").Default(1),
	}
}

func (TenantIdpConfig) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("tenant", Tenant.Type).Ref("idp_config").Field("tenant_id").Unique().Required().Immutable(),
		edge.To("domains", TenantIdpDomain.Type).Annotations(entsql.OnDelete(entsql.Cascade)),
	}
}

func (TenantIdpConfig) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entsql.Table("tenant_idp_config"),
		entsql.Checks(map[string]string{
			"tenant_idp_config_idp_state": "idp_state IN ('pending', 'provisioned', 'failed')",
		}),
	}
}

// TenantIdpDomain is an email domain routed to a tenant's identity
// provider. A domain belongs to one tenant at most: the unique index
// decides, not a read before the write.
type TenantIdpDomain struct{ ent.Schema }

func (TenantIdpDomain) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}} }

func (TenantIdpDomain) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("config_id", uuid.UUID{}).Immutable(),
		// Lower case, no trailing dot.
		field.String("domain").NotEmpty().MaxRuneLen(253).SchemaType(varchar(253)).Unique().Immutable(),
	}
}

func (TenantIdpDomain) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("config", TenantIdpConfig.Type).Ref("domains").Field("config_id").Unique().Required().Immutable(),
	}
}

func (TenantIdpDomain) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("tenant_idp_domains")}
}

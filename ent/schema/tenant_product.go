package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// TenantProduct is an entitlement: one product of one tenant.
type TenantProduct struct{ ent.Schema }

func (TenantProduct) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}} }

func (TenantProduct) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("tenant_id", uuid.UUID{}).Immutable(),
		field.String("product").NotEmpty().MaxRuneLen(64).SchemaType(varchar(64)).Immutable(),
		field.Enum("status").Values("requested", "trial", "active", "expired").
			SchemaType(map[string]string{dialect.Postgres: "entitlement_status"}),
		// Set once when a trial starts and never cleared: one trial per
		// product per tenant, ever.
		field.Time("trial_started_at").Optional().Nillable(),
		field.Time("trial_ends_at").Optional().Nillable(),
		field.String("note").Optional().MaxRuneLen(2000).SchemaType(varchar(2000)),
	}
}

func (TenantProduct) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("tenant", Tenant.Type).Ref("products").Field("tenant_id").Unique().Required().Immutable(),
	}
}

func (TenantProduct) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("tenant_id", "product").Unique(),
		// The expiry sweeper: trials whose end has passed.
		index.Fields("status", "trial_ends_at"),
	}
}

func (TenantProduct) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("tenant_products")}
}

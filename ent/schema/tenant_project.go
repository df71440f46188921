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

// TenantProject is a tenant's project (workspace).
type TenantProject struct{ ent.Schema }

func (TenantProject) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}} }

func (TenantProject) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("tenant_id", uuid.UUID{}).Immutable(),
		field.String("name").NotEmpty().MaxRuneLen(200).SchemaType(varchar(200)),
		field.String("description").Optional().MaxRuneLen(2000).SchemaType(varchar(2000)),
	}
}

func (TenantProject) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("tenant", Tenant.Type).Ref("projects").Field("tenant_id").Unique().Required().Immutable(),
	}
}

func (TenantProject) Indexes() []ent.Index {
	return []ent.Index{index.Fields("tenant_id", "name").Unique()}
}

func (TenantProject) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("tenant_projects")}
}

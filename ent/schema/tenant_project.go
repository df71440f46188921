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
		// Unique within the tenant; the tenant slug rules (ProjectSlugCheck).
		field.String("slug").NotEmpty().MaxRuneLen(63).SchemaType(varchar(63)),
		field.String("name").NotEmpty().MaxRuneLen(200).SchemaType(varchar(200)),
		field.String("description").Optional().MaxRuneLen(2000).SchemaType(varchar(2000)),
	}
}

func (TenantProject) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("tenant", Tenant.Type).Ref("projects").Field("tenant_id").Unique().Required().Immutable(),
		// Deleting a project revokes its keys first (internal/project); the
		// FK keeps the revoked keys, unlinked.
		edge.To("api_keys", APIKey.Type).Annotations(entsql.OnDelete(entsql.SetNull)),
	}
}

func (TenantProject) Indexes() []ent.Index {
	return []ent.Index{
		// One slug per tenant (409 already_exists); names may repeat.
		index.Fields("tenant_id", "slug").Unique(),
		// ListProjects: a tenant's projects newest first, keyset on (created_at, id).
		index.Fields("tenant_id", "created_at", "id"),
	}
}

func (TenantProject) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entsql.Table("tenant_projects"),
		entsql.Checks(map[string]string{"tenant_projects_slug_format": SlugCheck}),
	}
}

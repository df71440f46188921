package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// SlugCheck is the tenants.slug CHECK: ^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$,
// written with functions PostgreSQL and SQLite share so both enforce it.
const SlugCheck = "length(slug) BETWEEN 3 AND 63" +
	" AND ltrim(slug, 'abcdefghijklmnopqrstuvwxyz0123456789-') = ''" +
	" AND substr(slug, 1, 1) <> '-'" +
	" AND substr(slug, length(slug), 1) <> '-'"

// Tenant is a customer organisation.
type Tenant struct{ ent.Schema }

func (Tenant) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}} }

func (Tenant) Fields() []ent.Field {
	return []ent.Field{
		field.String("slug").NotEmpty().MaxRuneLen(63).SchemaType(varchar(63)).Unique().Immutable(),
		field.String("name").NotEmpty().MaxRuneLen(200).SchemaType(varchar(200)),
		field.Enum("status").Values("trial", "active", "frozen").Default("trial").
			SchemaType(map[string]string{dialect.Postgres: "tenant_status"}),
		field.Enum("plan").Values("starter", "professional", "enterprise").Default("starter").
			SchemaType(map[string]string{dialect.Postgres: "tenant_plan"}),
		field.String("keycloak_org_id").Optional().Nillable(),
		// Keycloak provisioning: pending (not yet done), provisioned, or
		// failed (the last attempt failed; the outbox retries it).
		field.String("provisioning_state").Default("pending").MaxRuneLen(16).SchemaType(varchar(16)),
		// Offboarding: set by DeleteTenant (a frozen tenant only) to when the
		// purge may run (now + DELETION_GRACE); cleared by RestoreTenant. The
		// sweeper purges the tenant once it has passed.
		field.Time("deletion_scheduled_at").Optional().Nillable(),
	}
}

func (Tenant) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("projects", TenantProject.Type).Annotations(entsql.OnDelete(entsql.Cascade)),
		edge.To("products", TenantProduct.Type).Annotations(entsql.OnDelete(entsql.Cascade)),
		edge.To("idp_config", TenantIdpConfig.Type).Unique().Annotations(entsql.OnDelete(entsql.Cascade)),
		edge.To("api_keys", APIKey.Type).Annotations(entsql.OnDelete(entsql.Cascade)),
		edge.To("audit_events", AuditLog.Type).Annotations(entsql.OnDelete(entsql.SetNull)),
		edge.To("outbox", Outbox.Type).Annotations(entsql.OnDelete(entsql.Cascade)),
	}
}

func (Tenant) Indexes() []ent.Index {
	return []ent.Index{
		// ListTenants: newest first, keyset on (created_at, id).
		index.Fields("created_at", "id"),
		// ListTenants?status= and ?plan=: an equality, then the same
		// keyset order, so a page is a seek with no sort.
		index.Fields("status", "created_at", "id"),
		index.Fields("plan", "created_at", "id"),
		// ListTenants?query=: slug LIKE 'prefix%' is a range on this index
		// whatever the database's collation. Its companion on lower(name)
		// is an expression index Ent cannot declare: it is written by hand
		// in the migration after tenant_list_indexes (tenant_name_prefix).
		index.Fields("slug").Annotations(entsql.OpClass("varchar_pattern_ops")).StorageKey("tenant_slug_prefix"),
		// The purge sweeper's scan: tenants scheduled for deletion.
		index.Fields("deletion_scheduled_at").Annotations(entsql.IndexWhere("deletion_scheduled_at IS NOT NULL")),
	}
}

func (Tenant) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entsql.Table("tenants"),
		entsql.Checks(map[string]string{
			"tenants_slug_format":        SlugCheck,
			"tenants_provisioning_state": "provisioning_state IN ('pending', 'provisioned', 'failed')",
		}),
	}
}

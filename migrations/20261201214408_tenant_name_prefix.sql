-- ListTenants?query=: lower(name) LIKE 'prefix%' is a range on this index
-- whatever the database's collation (text_pattern_ops). Hand-written: Ent
-- cannot declare an expression index (internal/devdb keeps it out of the
-- drift check); its companion on slug is tenant_slug_prefix.
CREATE INDEX "tenant_name_prefix" ON "tenants" (lower("name") text_pattern_ops);

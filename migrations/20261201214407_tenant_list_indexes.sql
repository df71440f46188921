-- Drop index "tenant_status" from table: "tenants"
DROP INDEX "tenant_status";
-- Create index "tenant_plan_created_at_id" to table: "tenants"
CREATE INDEX "tenant_plan_created_at_id" ON "tenants" ("plan", "created_at", "id");
-- Create index "tenant_slug_prefix" to table: "tenants"
CREATE INDEX "tenant_slug_prefix" ON "tenants" ("slug" varchar_pattern_ops);
-- Create index "tenant_status_created_at_id" to table: "tenants"
CREATE INDEX "tenant_status_created_at_id" ON "tenants" ("status", "created_at", "id");

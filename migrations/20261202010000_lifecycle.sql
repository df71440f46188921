-- Drop index "tenantproject_tenant_id_name" from table: "tenant_projects"
DROP INDEX "tenantproject_tenant_id_name";
-- Modify "tenant_projects" table
-- (edited: the column is added nullable, existing rows get a slug made
-- from their id, then it becomes NOT NULL, so the migration also applies
-- to a table that has rows)
ALTER TABLE "tenant_projects" ADD COLUMN "slug" character varying(63) NULL;
UPDATE "tenant_projects" SET "slug" = 'project-' || replace("id"::text, '-', '') WHERE "slug" IS NULL;
ALTER TABLE "tenant_projects" ALTER COLUMN "slug" SET NOT NULL, ADD CONSTRAINT "tenant_projects_slug_format" CHECK (((length((slug)::text) >= 3) AND (length((slug)::text) <= 63)) AND (ltrim((slug)::text, 'abcdefghijklmnopqrstuvwxyz0123456789-'::text) = ''::text) AND (substr((slug)::text, 1, 1) <> '-'::text) AND (substr((slug)::text, length((slug)::text), 1) <> '-'::text));
-- Create index "tenantproject_tenant_id_created_at_id" to table: "tenant_projects"
CREATE INDEX "tenantproject_tenant_id_created_at_id" ON "tenant_projects" ("tenant_id", "created_at", "id");
-- Create index "tenantproject_tenant_id_slug" to table: "tenant_projects"
CREATE UNIQUE INDEX "tenantproject_tenant_id_slug" ON "tenant_projects" ("tenant_id", "slug");
-- Modify "tenants" table
ALTER TABLE "tenants" ADD COLUMN "deletion_scheduled_at" timestamptz NULL;
-- Create index "tenant_deletion_scheduled_at" to table: "tenants"
CREATE INDEX "tenant_deletion_scheduled_at" ON "tenants" ("deletion_scheduled_at") WHERE (deletion_scheduled_at IS NOT NULL);
-- Modify "api_keys" table
ALTER TABLE "api_keys" ADD COLUMN "project_id" uuid NULL, ADD CONSTRAINT "api_keys_tenant_projects_api_keys" FOREIGN KEY ("project_id") REFERENCES "tenant_projects" ("id") ON UPDATE NO ACTION ON DELETE SET NULL;
-- Create index "apikey_project_id" to table: "api_keys"
CREATE INDEX "apikey_project_id" ON "api_keys" ("project_id");

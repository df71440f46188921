-- Drop index "auditlog_group_id_idempotency_key" from table: "audit_log"
DROP INDEX "auditlog_group_id_idempotency_key";
-- Drop index "auditlog_tenant_id_created_at_id" from table: "audit_log"
DROP INDEX "auditlog_tenant_id_created_at_id";
-- Modify "audit_log" table
ALTER TABLE "audit_log" ADD CONSTRAINT "audit_log_appended_by_type" CHECK ((appended_by_type)::text = ANY ((ARRAY[''::character varying, 'user'::character varying, 'service'::character varying, 'system'::character varying])::text[])), ADD CONSTRAINT "audit_log_chain_seq" CHECK (chain_seq >= 1), ADD CONSTRAINT "audit_log_group_id" CHECK ((length((group_id)::text) = 36) AND ((group_id)::text = lower((group_id)::text))), ADD CONSTRAINT "audit_log_hash" CHECK (length((hash)::text) = 64), ADD CONSTRAINT "audit_log_hash_version" CHECK (hash_version = ANY (ARRAY[(1)::bigint, (2)::bigint])), ADD CONSTRAINT "audit_log_tenant_group" CHECK ((tenant_id IS NULL) OR ((tenant_id)::text = (group_id)::text)), ALTER COLUMN "group_id" SET NOT NULL, ALTER COLUMN "chain_seq" SET NOT NULL, ALTER COLUMN "prev_hash" SET NOT NULL, ALTER COLUMN "hash" SET NOT NULL, ADD COLUMN "appended_by_id" character varying NOT NULL DEFAULT '', ADD COLUMN "appended_by_type" character varying NOT NULL DEFAULT '', ADD COLUMN "appended_by_tenant" character varying NOT NULL DEFAULT '', ADD COLUMN "hash_version" bigint NOT NULL DEFAULT 1;
-- Create index "auditlog_group_id_appender_idempotency_key" to table: "audit_log"
CREATE UNIQUE INDEX "auditlog_group_id_appender_idempotency_key" ON "audit_log" ("group_id", "appended_by_type", "appended_by_id", "idempotency_key");
-- Create index "auditlog_group_id_created_at_id" to table: "audit_log"
CREATE INDEX "auditlog_group_id_created_at_id" ON "audit_log" ("group_id", "created_at", "id");
-- Create index "auditlog_tenant_id" to table: "audit_log"
CREATE INDEX "auditlog_tenant_id" ON "audit_log" ("tenant_id");

-- String columns get their API length limit as varchar(n), which counts
-- characters as the API and Ent's validators do (generated from the Ent
-- schemas' SchemaType). tenants_notify_status names slug in its WHEN, which
-- PostgreSQL requires to be dropped around the ALTER; it is recreated as
-- it was (20261201195000_targeted_invalidation.sql).
-- Modify "api_keys" table
ALTER TABLE "api_keys" ALTER COLUMN "name" TYPE character varying(200), ALTER COLUMN "prefix" TYPE character varying(32), ALTER COLUMN "created_by" TYPE character varying(255);
-- Modify "audit_checkpoints" table
ALTER TABLE "audit_checkpoints" ALTER COLUMN "group_id" TYPE character varying(64), ALTER COLUMN "hash" TYPE character varying(64);
-- Modify "audit_log" table
ALTER TABLE "audit_log" ALTER COLUMN "group_id" TYPE character varying(64), ALTER COLUMN "group_name" TYPE character varying(200), ALTER COLUMN "action" TYPE character varying(128), ALTER COLUMN "crud" TYPE character varying(1), ALTER COLUMN "actor_id" TYPE character varying(255), ALTER COLUMN "actor_name" TYPE character varying(255), ALTER COLUMN "actor_type" TYPE character varying(16), ALTER COLUMN "target_id" TYPE character varying(255), ALTER COLUMN "target_name" TYPE character varying(255), ALTER COLUMN "target_type" TYPE character varying(64), ALTER COLUMN "source_ip" TYPE character varying(64), ALTER COLUMN "description" TYPE character varying(2000), ALTER COLUMN "idempotency_key" TYPE character varying(128), ALTER COLUMN "prev_hash" TYPE character varying(64), ALTER COLUMN "hash" TYPE character varying(64), ALTER COLUMN "appended_by_id" TYPE character varying(255), ALTER COLUMN "appended_by_type" TYPE character varying(16), ALTER COLUMN "appended_by_tenant" TYPE character varying(64);
-- Modify "outbox" table
ALTER TABLE "outbox" ALTER COLUMN "kind" TYPE character varying(64), ALTER COLUMN "last_error" TYPE character varying(2000);
-- Modify "tenant_idp_config" table
ALTER TABLE "tenant_idp_config" ALTER COLUMN "issuer_url" TYPE character varying(2048), ALTER COLUMN "client_id" TYPE character varying(255);
-- Modify "tenant_products" table
ALTER TABLE "tenant_products" ALTER COLUMN "product" TYPE character varying(64), ALTER COLUMN "note" TYPE character varying(2000);
-- Modify "tenant_projects" table
ALTER TABLE "tenant_projects" ALTER COLUMN "name" TYPE character varying(200), ALTER COLUMN "description" TYPE character varying(2000);
-- Modify "tenants" table
DROP TRIGGER "tenants_notify_status" ON "tenants";
ALTER TABLE "tenants" ALTER COLUMN "slug" TYPE character varying(63), ALTER COLUMN "name" TYPE character varying(200), ALTER COLUMN "provisioning_state" TYPE character varying(16);
CREATE TRIGGER "tenants_notify_status" AFTER UPDATE ON "tenants" FOR EACH ROW
  WHEN (OLD."status" IS DISTINCT FROM NEW."status" OR OLD."slug" IS DISTINCT FROM NEW."slug")
  EXECUTE FUNCTION "notify_invalidate"('tenant', 'id');

-- Create "tenants" table
CREATE TABLE "tenants" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "slug" character varying NOT NULL, "name" character varying NOT NULL, "status" "tenant_status" NOT NULL DEFAULT 'trial', "plan" "tenant_plan" NOT NULL DEFAULT 'starter', "keycloak_org_id" character varying NULL, PRIMARY KEY ("id"), CONSTRAINT "tenants_slug_format" CHECK (((length((slug)::text) >= 3) AND (length((slug)::text) <= 63)) AND (ltrim((slug)::text, 'abcdefghijklmnopqrstuvwxyz0123456789-'::text) = ''::text) AND (substr((slug)::text, 1, 1) <> '-'::text) AND (substr((slug)::text, length((slug)::text), 1) <> '-'::text)));
-- Create index "tenant_created_at_id" to table: "tenants"
CREATE INDEX "tenant_created_at_id" ON "tenants" ("created_at", "id");
-- Create index "tenant_status" to table: "tenants"
CREATE INDEX "tenant_status" ON "tenants" ("status");
-- Create index "tenants_slug_key" to table: "tenants"
CREATE UNIQUE INDEX "tenants_slug_key" ON "tenants" ("slug");
-- Create "api_keys" table
CREATE TABLE "api_keys" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "name" character varying NOT NULL, "prefix" character varying NOT NULL, "hash" bytea NOT NULL, "scopes" jsonb NULL, "created_by" character varying NULL, "expires_at" timestamptz NULL, "last_used_at" timestamptz NULL, "revoked_at" timestamptz NULL, "tenant_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "api_keys_tenants_api_keys" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE CASCADE);
-- Create index "api_keys_hash_key" to table: "api_keys"
CREATE UNIQUE INDEX "api_keys_hash_key" ON "api_keys" ("hash");
-- Create index "apikey_tenant_id_created_at_id" to table: "api_keys"
CREATE INDEX "apikey_tenant_id_created_at_id" ON "api_keys" ("tenant_id", "created_at", "id");
-- Create "audit_log" table
CREATE TABLE "audit_log" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "group_id" character varying NULL, "group_name" character varying NULL, "action" character varying NOT NULL, "crud" character varying NOT NULL, "actor_id" character varying NOT NULL, "actor_name" character varying NULL, "actor_type" character varying NOT NULL, "target_id" character varying NULL, "target_name" character varying NULL, "target_type" character varying NULL, "source_ip" character varying NULL, "description" character varying NULL, "is_failure" boolean NOT NULL DEFAULT false, "is_anonymous" boolean NOT NULL DEFAULT false, "fields" jsonb NULL, "idempotency_key" character varying NULL, "chain_seq" bigint NULL, "prev_hash" character varying NULL, "hash" character varying NULL, "tenant_id" uuid NULL, PRIMARY KEY ("id"), CONSTRAINT "audit_log_tenants_audit_events" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE SET NULL, CONSTRAINT "audit_log_actor_type" CHECK ((actor_type)::text = ANY ((ARRAY['user'::character varying, 'service'::character varying, 'system'::character varying])::text[])), CONSTRAINT "audit_log_crud" CHECK ((crud)::text = ANY ((ARRAY['c'::character varying, 'r'::character varying, 'u'::character varying, 'd'::character varying])::text[])));
-- Create index "auditlog_action" to table: "audit_log"
CREATE INDEX "auditlog_action" ON "audit_log" ("action");
-- Create index "auditlog_created_at_id" to table: "audit_log"
CREATE INDEX "auditlog_created_at_id" ON "audit_log" ("created_at", "id");
-- Create index "auditlog_group_id_chain_seq" to table: "audit_log"
CREATE UNIQUE INDEX "auditlog_group_id_chain_seq" ON "audit_log" ("group_id", "chain_seq");
-- Create index "auditlog_group_id_idempotency_key" to table: "audit_log"
CREATE UNIQUE INDEX "auditlog_group_id_idempotency_key" ON "audit_log" ("group_id", "idempotency_key");
-- Create index "auditlog_tenant_id_created_at_id" to table: "audit_log"
CREATE INDEX "auditlog_tenant_id_created_at_id" ON "audit_log" ("tenant_id", "created_at", "id");
-- Create "tenant_idp_config" table
CREATE TABLE "tenant_idp_config" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "protocol" "idp_protocol" NOT NULL, "issuer_url" character varying NOT NULL, "client_id" character varying NULL, "enabled" boolean NOT NULL DEFAULT false, "tenant_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "tenant_idp_config_tenants_idp_config" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE CASCADE);
-- Create index "tenant_idp_config_tenant_id_key" to table: "tenant_idp_config"
CREATE UNIQUE INDEX "tenant_idp_config_tenant_id_key" ON "tenant_idp_config" ("tenant_id");
-- Create "tenant_products" table
CREATE TABLE "tenant_products" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "product" character varying NOT NULL, "status" "entitlement_status" NOT NULL, "trial_started_at" timestamptz NULL, "trial_ends_at" timestamptz NULL, "note" character varying NULL, "tenant_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "tenant_products_tenants_products" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE CASCADE);
-- Create index "tenantproduct_status_trial_ends_at" to table: "tenant_products"
CREATE INDEX "tenantproduct_status_trial_ends_at" ON "tenant_products" ("status", "trial_ends_at");
-- Create index "tenantproduct_tenant_id_product" to table: "tenant_products"
CREATE UNIQUE INDEX "tenantproduct_tenant_id_product" ON "tenant_products" ("tenant_id", "product");
-- Create "tenant_projects" table
CREATE TABLE "tenant_projects" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "name" character varying NOT NULL, "description" character varying NULL, "tenant_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "tenant_projects_tenants_projects" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE CASCADE);
-- Create index "tenantproject_tenant_id_name" to table: "tenant_projects"
CREATE UNIQUE INDEX "tenantproject_tenant_id_name" ON "tenant_projects" ("tenant_id", "name");

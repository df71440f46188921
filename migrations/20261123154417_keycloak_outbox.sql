-- Modify "tenants" table
ALTER TABLE "tenants" ADD CONSTRAINT "tenants_provisioning_state" CHECK ((provisioning_state)::text = ANY ((ARRAY['pending'::character varying, 'provisioned'::character varying, 'failed'::character varying])::text[])), ADD COLUMN "provisioning_state" character varying NOT NULL DEFAULT 'pending';
-- Create "outbox" table
CREATE TABLE "outbox" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "kind" character varying NOT NULL, "payload" jsonb NULL, "attempts" bigint NOT NULL DEFAULT 0, "next_attempt_at" timestamptz NOT NULL, "locked_until" timestamptz NULL, "last_error" character varying NULL, "done_at" timestamptz NULL, "tenant_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "outbox_tenants_outbox" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE CASCADE);
-- Create index "outbox_next_attempt_at" to table: "outbox"
CREATE INDEX "outbox_next_attempt_at" ON "outbox" ("next_attempt_at") WHERE (done_at IS NULL);
-- Create index "outbox_tenant_id_kind" to table: "outbox"
CREATE UNIQUE INDEX "outbox_tenant_id_kind" ON "outbox" ("tenant_id", "kind");

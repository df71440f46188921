-- Create "audit_checkpoints" table
CREATE TABLE "audit_checkpoints" ("id" uuid NOT NULL, "group_id" character varying NOT NULL, "chain_seq" bigint NOT NULL, "hash" character varying NOT NULL, "deleted_through" timestamptz NOT NULL, "events_deleted" bigint NOT NULL DEFAULT 0, "created_at" timestamptz NOT NULL, PRIMARY KEY ("id"));
-- Create index "auditcheckpoint_group_id_chain_seq" to table: "audit_checkpoints"
CREATE UNIQUE INDEX "auditcheckpoint_group_id_chain_seq" ON "audit_checkpoints" ("group_id", "chain_seq");

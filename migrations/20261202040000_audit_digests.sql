-- Create "audit_digests" table
CREATE TABLE "audit_digests" ("id" uuid NOT NULL, "group_id" character varying(64) NOT NULL, "first_seq" bigint NOT NULL, "last_seq" bigint NOT NULL, "head_hash" character varying(64) NOT NULL, "prev_digest_hash" character varying(64) NOT NULL, "digest_hash" character varying(64) NOT NULL, "created_at" timestamptz NOT NULL, "key_id" character varying(64) NOT NULL, "signature" character varying(128) NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "audit_digests_hash" CHECK ((length((head_hash)::text) = 64) AND (length((digest_hash)::text) = 64)), CONSTRAINT "audit_digests_seq" CHECK ((first_seq >= 1) AND (last_seq >= first_seq)));
-- Create index "auditdigest_group_id_created_at_id" to table: "audit_digests"
CREATE INDEX "auditdigest_group_id_created_at_id" ON "audit_digests" ("group_id", "created_at", "id");
-- Create index "auditdigest_group_id_first_seq" to table: "audit_digests"
CREATE UNIQUE INDEX "auditdigest_group_id_first_seq" ON "audit_digests" ("group_id", "first_seq");
-- Create index "auditdigest_group_id_last_seq" to table: "audit_digests"
CREATE UNIQUE INDEX "auditdigest_group_id_last_seq" ON "audit_digests" ("group_id", "last_seq");
-- Create "audit_signing_keys" table
CREATE TABLE "audit_signing_keys" ("id" uuid NOT NULL, "key_id" character varying(64) NOT NULL, "public_key_pem" character varying(1024) NOT NULL, "not_before" timestamptz NOT NULL, "not_after" timestamptz NULL, PRIMARY KEY ("id"));
-- Create index "auditsigningkey_key_id" to table: "audit_signing_keys"
CREATE UNIQUE INDEX "auditsigningkey_key_id" ON "audit_signing_keys" ("key_id");
-- Create index "auditsigningkey_not_before_id" to table: "audit_signing_keys"
CREATE INDEX "auditsigningkey_not_before_id" ON "audit_signing_keys" ("not_before", "id");

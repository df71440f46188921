-- Create "webhook_endpoints" table
CREATE TABLE "webhook_endpoints" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "url" character varying(2048) NOT NULL, "description" character varying(500) NOT NULL DEFAULT '', "event_types" jsonb NULL, "tenant_id" uuid NULL, "secret_sealed" bytea NOT NULL, "previous_secret_sealed" bytea NULL, "previous_secret_until" timestamptz NULL, "created_by" character varying(255) NOT NULL DEFAULT '', "failing_since" timestamptz NULL, "disabled_at" timestamptz NULL, PRIMARY KEY ("id"));
-- Create index "webhookendpoint_created_at_id" to table: "webhook_endpoints"
CREATE INDEX "webhookendpoint_created_at_id" ON "webhook_endpoints" ("created_at", "id");
-- Create "webhook_messages" table
CREATE TABLE "webhook_messages" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "group_id" character varying(36) NOT NULL, "chain_seq" bigint NOT NULL, "event_id" uuid NOT NULL, "event_type" character varying(128) NOT NULL, "payload" bytea NOT NULL, "status" character varying(16) NOT NULL DEFAULT 'pending', "attempts" bigint NOT NULL DEFAULT 0, "next_attempt_at" timestamptz NOT NULL, "give_up_at" timestamptz NOT NULL, "locked_until" timestamptz NULL, "lease_token" uuid NULL, "last_status" bigint NOT NULL DEFAULT 0, "last_error" character varying(2000) NOT NULL DEFAULT '', "delivered_at" timestamptz NULL, "endpoint_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "webhook_messages_webhook_endpoints_messages" FOREIGN KEY ("endpoint_id") REFERENCES "webhook_endpoints" ("id") ON UPDATE NO ACTION ON DELETE CASCADE);
-- Create index "webhookmessage_endpoint_id_created_at_id" to table: "webhook_messages"
CREATE INDEX "webhookmessage_endpoint_id_created_at_id" ON "webhook_messages" ("endpoint_id", "created_at", "id");
-- Create index "webhookmessage_endpoint_id_group_id_chain_seq" to table: "webhook_messages"
CREATE UNIQUE INDEX "webhookmessage_endpoint_id_group_id_chain_seq" ON "webhook_messages" ("endpoint_id", "group_id", "chain_seq");
-- Create index "webhookmessage_next_attempt_at" to table: "webhook_messages"
CREATE INDEX "webhookmessage_next_attempt_at" ON "webhook_messages" ("next_attempt_at") WHERE ((status)::text = 'pending'::text);

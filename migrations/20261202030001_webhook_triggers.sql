-- Hand-written: keep updated_at current on the webhook tables like every
-- other table's (see 20261123000003_updated_at_triggers.sql), and hold a
-- message's status to its three words.
CREATE TRIGGER "webhook_endpoints_set_updated_at" BEFORE UPDATE ON "webhook_endpoints" FOR EACH ROW EXECUTE FUNCTION "set_updated_at"();
CREATE TRIGGER "webhook_messages_set_updated_at" BEFORE UPDATE ON "webhook_messages" FOR EACH ROW EXECUTE FUNCTION "set_updated_at"();
ALTER TABLE "webhook_messages" ADD CONSTRAINT "webhook_messages_status_check" CHECK ("status" IN ('pending', 'delivered', 'failed'));

-- Hand-written: keep updated_at current on the webhook tables like every
-- other table's (see 20261123000003_updated_at_triggers.sql).
CREATE TRIGGER "webhook_endpoints_set_updated_at" BEFORE UPDATE ON "webhook_endpoints" FOR EACH ROW EXECUTE FUNCTION "set_updated_at"();
CREATE TRIGGER "webhook_messages_set_updated_at" BEFORE UPDATE ON "webhook_messages" FOR EACH ROW EXECUTE FUNCTION "set_updated_at"();

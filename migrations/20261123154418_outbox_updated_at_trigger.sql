-- Hand-written: keep outbox.updated_at current like every other table's
-- (see 20261123000003_updated_at_triggers.sql).
CREATE TRIGGER "outbox_set_updated_at" BEFORE UPDATE ON "outbox" FOR EACH ROW EXECUTE FUNCTION "set_updated_at"();

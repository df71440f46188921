-- Hand-written: targeted invalidation. The notifications of
-- 20261123154800_api_key_notify.sql now name what to drop from the
-- verdict caches, in two forms the service parses (internal/apikey):
--   "key:<api key id>"   one key's verdicts
--   "tenant:<tenant id>" the verdicts of every key of one tenant
-- An UPDATE that moves a row to another key or tenant notifies both the
-- old and the new one. The listener's own heartbeats ("heartbeat:…") share
-- the channel. Additive for one release: a binary of the previous release
-- clears its whole cache on any payload, so it keeps working on this schema.
CREATE OR REPLACE FUNCTION "notify_invalidate"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  kind text := TG_ARGV[0];
  col  text := coalesce(TG_ARGV[1], 'id');
  old_v text;
  new_v text;
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    old_v := to_jsonb(OLD) ->> col;
    PERFORM pg_notify('tenant_registry_invalidate', kind || ':' || coalesce(old_v, ''));
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    new_v := to_jsonb(NEW) ->> col;
    IF TG_OP = 'INSERT' OR new_v IS DISTINCT FROM old_v THEN
      PERFORM pg_notify('tenant_registry_invalidate', kind || ':' || coalesce(new_v, ''));
    END IF;
  END IF;
  RETURN NULL;
END;
$$;
DROP TRIGGER "api_keys_notify_update" ON "api_keys";
CREATE TRIGGER "api_keys_notify_update" AFTER UPDATE ON "api_keys" FOR EACH ROW
  WHEN (OLD."revoked_at" IS DISTINCT FROM NEW."revoked_at"
     OR OLD."expires_at" IS DISTINCT FROM NEW."expires_at"
     OR OLD."scopes" IS DISTINCT FROM NEW."scopes"
     OR OLD."hash" IS DISTINCT FROM NEW."hash"
     OR OLD."tenant_id" IS DISTINCT FROM NEW."tenant_id")
  EXECUTE FUNCTION "notify_invalidate"('key', 'id');
DROP TRIGGER "api_keys_notify_delete" ON "api_keys";
CREATE TRIGGER "api_keys_notify_delete" AFTER DELETE ON "api_keys" FOR EACH ROW
  EXECUTE FUNCTION "notify_invalidate"('key', 'id');
DROP TRIGGER "tenants_notify_status" ON "tenants";
CREATE TRIGGER "tenants_notify_status" AFTER UPDATE ON "tenants" FOR EACH ROW
  WHEN (OLD."status" IS DISTINCT FROM NEW."status" OR OLD."slug" IS DISTINCT FROM NEW."slug")
  EXECUTE FUNCTION "notify_invalidate"('tenant', 'id');
CREATE TRIGGER "tenants_notify_delete" AFTER DELETE ON "tenants" FOR EACH ROW
  EXECUTE FUNCTION "notify_invalidate"('tenant', 'id');
DROP TRIGGER "tenant_products_notify" ON "tenant_products";
CREATE TRIGGER "tenant_products_notify" AFTER INSERT OR UPDATE OR DELETE ON "tenant_products" FOR EACH ROW
  EXECUTE FUNCTION "notify_invalidate"('tenant', 'tenant_id');

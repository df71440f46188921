-- Hand-written: invalidate the API-key verdict caches of every replica.
-- Each replica LISTENs on "tenant_registry_invalidate" (internal/apikey);
-- these triggers notify on every change that can turn a valid key invalid
-- (or change its answer), whoever writes it: the service, psql or a script.
-- Notifications are delivered at commit, and not at all on rollback.
-- The payload names the row ("api_keys:<id>", "tenants:<id>",
-- "tenant_products:<tenant id>"); it never carries a secret or a hash.
CREATE FUNCTION "notify_invalidate"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  IF TG_OP = 'DELETE' THEN
    r := OLD;
  ELSE
    r := NEW;
  END IF;
  PERFORM pg_notify('tenant_registry_invalidate', TG_TABLE_NAME || ':' || coalesce(to_jsonb(r) ->> TG_ARGV[0], ''));
  RETURN NULL;
END;
$$;
-- A key's verdict changes with revoked_at, expires_at, scopes, hash or
-- tenant; last_used_at (written by the usage flusher) and name do not
-- notify, so usage writes do not clear every replica's cache.
CREATE TRIGGER "api_keys_notify_update" AFTER UPDATE ON "api_keys" FOR EACH ROW
  WHEN (OLD."revoked_at" IS DISTINCT FROM NEW."revoked_at"
     OR OLD."expires_at" IS DISTINCT FROM NEW."expires_at"
     OR OLD."scopes" IS DISTINCT FROM NEW."scopes"
     OR OLD."hash" IS DISTINCT FROM NEW."hash"
     OR OLD."tenant_id" IS DISTINCT FROM NEW."tenant_id")
  EXECUTE FUNCTION "notify_invalidate"('id');
-- Deletes, including those cascading from a deleted tenant.
CREATE TRIGGER "api_keys_notify_delete" AFTER DELETE ON "api_keys" FOR EACH ROW
  EXECUTE FUNCTION "notify_invalidate"('id');
-- Freeze and reactivation.
CREATE TRIGGER "tenants_notify_status" AFTER UPDATE ON "tenants" FOR EACH ROW
  WHEN (OLD."status" IS DISTINCT FROM NEW."status" OR OLD."slug" IS DISTINCT FROM NEW."slug")
  EXECUTE FUNCTION "notify_invalidate"('id');
-- Entitlements: the products a valid key's answer lists.
CREATE TRIGGER "tenant_products_notify" AFTER INSERT OR UPDATE OR DELETE ON "tenant_products" FOR EACH ROW
  EXECUTE FUNCTION "notify_invalidate"('tenant_id');

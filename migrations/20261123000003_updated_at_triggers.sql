-- Keep updated_at current for every write, including writes from outside the
-- service (psql, scripts). The service sets updated_at itself too; the
-- trigger overrides it with the transaction's clock only when an UPDATE does
-- not change it explicitly, so the service's injected clock still wins.
CREATE FUNCTION "set_updated_at"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW."updated_at" IS NOT DISTINCT FROM OLD."updated_at" THEN
    NEW."updated_at" := now();
  END IF;
  RETURN NEW;
END;
$$;
CREATE TRIGGER "tenants_set_updated_at" BEFORE UPDATE ON "tenants" FOR EACH ROW EXECUTE FUNCTION "set_updated_at"();
CREATE TRIGGER "tenant_projects_set_updated_at" BEFORE UPDATE ON "tenant_projects" FOR EACH ROW EXECUTE FUNCTION "set_updated_at"();
CREATE TRIGGER "tenant_products_set_updated_at" BEFORE UPDATE ON "tenant_products" FOR EACH ROW EXECUTE FUNCTION "set_updated_at"();
CREATE TRIGGER "tenant_idp_config_set_updated_at" BEFORE UPDATE ON "tenant_idp_config" FOR EACH ROW EXECUTE FUNCTION "set_updated_at"();
CREATE TRIGGER "api_keys_set_updated_at" BEFORE UPDATE ON "api_keys" FOR EACH ROW EXECUTE FUNCTION "set_updated_at"();

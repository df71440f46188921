-- Hand-written: the tenant read cache (internal/tenant: GetTenant,
-- GetTenantBySlug, ResolveClaims) shows every column of a tenant, so every
-- UPDATE of a tenant row that changes anything now notifies
-- "tenant:<id>", not only a change of status or slug. The verify cache
-- drops that tenant's verdicts too (harmless: such writes are rare).
-- Additive: a binary of the previous release receives more notifications
-- of a kind it already handles.
DROP TRIGGER "tenants_notify_status" ON "tenants";
CREATE TRIGGER "tenants_notify_update" AFTER UPDATE ON "tenants" FOR EACH ROW
  WHEN (OLD.* IS DISTINCT FROM NEW.*)
  EXECUTE FUNCTION "notify_invalidate"('tenant', 'id');

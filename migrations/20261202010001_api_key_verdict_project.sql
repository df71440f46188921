-- Hand-written: api_key_verdict (20261201231000_api_key_verdict.sql) also
-- answers the key's project_id, so VerifyApiKey can say which project a
-- key belongs to. The new column comes last: a binary of the previous
-- release selects its columns by name and keeps working. A function's
-- result type cannot be changed in place, hence DROP and CREATE (in the
-- migration's transaction, so no verify sees it missing).
DROP FUNCTION "api_key_verdict"(bytea, timestamptz);
CREATE FUNCTION "api_key_verdict"("key_hash" bytea, "at" timestamptz)
RETURNS TABLE ("id" uuid, "tenant_id" uuid, "hash" bytea, "scopes" jsonb, "expires_at" timestamptz,
  "revoked_at" timestamptz, "slug" varchar, "tenant_status" text, "product" varchar,
  "product_status" text, "trial_ends_at" timestamptz, "project_id" uuid)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  SELECT k.id, k.tenant_id, k.hash, k.scopes, k.expires_at, k.revoked_at, t.slug, t.status::text,
    tp.product, tp.status::text, tp.trial_ends_at, k.project_id
  FROM api_keys k
  JOIN tenants t ON t.id = k.tenant_id
  LEFT JOIN tenant_products tp ON tp.tenant_id = k.tenant_id
    AND (tp.status = 'active' OR (tp.status = 'trial' AND tp.trial_ends_at > "at"))
  WHERE k.hash = "key_hash";
END;
$$;

-- Hand-written: the verify miss as a PL/pgSQL function, so that PostgreSQL
-- plans it once per server connection instead of on every call. The pool
-- sends every statement unnamed (store.QueryExecMode "exec", safe behind
-- PgBouncer in transaction mode), so an inline query is parsed and planned
-- each time, which was half of PostgreSQL's time on a verify miss; a
-- PL/pgSQL function keeps its plan in the server backend whichever client
-- session calls it. One row per current product (the rule of
-- internal/entitlement.Current: active, or a trial whose end is after
-- "at"), one row with NULL products when there is none, no row when no key
-- has the hash. internal/apikey's lookup reads it on PostgreSQL and runs the
-- same query through Ent on SQLite; the tests run both.
CREATE FUNCTION "api_key_verdict"("key_hash" bytea, "at" timestamptz)
RETURNS TABLE ("id" uuid, "tenant_id" uuid, "hash" bytea, "scopes" jsonb, "expires_at" timestamptz,
  "revoked_at" timestamptz, "slug" varchar, "tenant_status" text, "product" varchar,
  "product_status" text, "trial_ends_at" timestamptz)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  SELECT k.id, k.tenant_id, k.hash, k.scopes, k.expires_at, k.revoked_at, t.slug, t.status::text,
    tp.product, tp.status::text, tp.trial_ends_at
  FROM api_keys k
  JOIN tenants t ON t.id = k.tenant_id
  LEFT JOIN tenant_products tp ON tp.tenant_id = k.tenant_id
    AND (tp.status = 'active' OR (tp.status = 'trial' AND tp.trial_ends_at > "at"))
  WHERE k.hash = "key_hash";
END;
$$;

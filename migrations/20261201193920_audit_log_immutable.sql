-- Hand-written: audit events are append-only, whoever writes (the service,
-- psql, a script). Every UPDATE of audit_log is refused but one: the purge
-- of a tenant, whose foreign key (ON DELETE SET NULL) sets tenant_id to NULL
-- on its events. That UPDATE is let through only when it changes nothing
-- but tenant_id, to NULL, and the tenant row is gone (so a tenant's events
-- can never be moved or detached while it exists; group_id, which the hash
-- covers, keeps naming it). DELETE stays possible: the retention sweeper
-- deletes the oldest segment of a chain and records a checkpoint, and any
-- other deletion breaks the chain, which VerifyAuditChain reports. TRUNCATE,
-- which would empty every chain at once without a trace, is refused too.
CREATE FUNCTION "audit_log_refuse_update"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    RAISE EXCEPTION 'audit_log is append-only: TRUNCATE is refused (retention deletes old events with a checkpoint)';
  END IF;
  IF OLD."tenant_id" IS NOT NULL AND NEW."tenant_id" IS NULL
     AND (to_jsonb(NEW) - 'tenant_id') = (to_jsonb(OLD) - 'tenant_id')
     AND NOT EXISTS (SELECT 1 FROM "tenants" WHERE "id" = OLD."tenant_id") THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit_log is append-only: event % cannot be changed', OLD."id";
END;
$$;
CREATE TRIGGER "audit_log_refuse_update" BEFORE UPDATE ON "audit_log" FOR EACH ROW
  EXECUTE FUNCTION "audit_log_refuse_update"();
CREATE TRIGGER "audit_log_refuse_truncate" BEFORE TRUNCATE ON "audit_log" FOR EACH STATEMENT
  EXECUTE FUNCTION "audit_log_refuse_update"();

-- Hand-written: digests and signing keys are append-only, whoever writes
-- (the service, psql, a script). A digest is never changed or deleted
-- (TRUNCATE is refused too); a signing key is never deleted, and the one
-- change it takes is being closed: not_after set once, nothing else. A
-- superuser can still switch triggers off: the digests' worth is their
-- signature, which no one without the private key can forge, and
-- auditctl verify-offline checks what the database answers against it.
CREATE FUNCTION "audit_digests_refuse_change"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_digests is append-only: % is refused', TG_OP;
END;
$$;
CREATE TRIGGER "audit_digests_refuse_change" BEFORE UPDATE OR DELETE ON "audit_digests" FOR EACH ROW
  EXECUTE FUNCTION "audit_digests_refuse_change"();
CREATE TRIGGER "audit_digests_refuse_truncate" BEFORE TRUNCATE ON "audit_digests" FOR EACH STATEMENT
  EXECUTE FUNCTION "audit_digests_refuse_change"();
CREATE FUNCTION "audit_signing_keys_refuse_change"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD."not_after" IS NULL AND NEW."not_after" IS NOT NULL
     AND (to_jsonb(NEW) - 'not_after') = (to_jsonb(OLD) - 'not_after') THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit_signing_keys is append-only: % is refused (a key can only be closed, once)', TG_OP;
END;
$$;
CREATE TRIGGER "audit_signing_keys_refuse_change" BEFORE UPDATE OR DELETE ON "audit_signing_keys" FOR EACH ROW
  EXECUTE FUNCTION "audit_signing_keys_refuse_change"();
CREATE TRIGGER "audit_signing_keys_refuse_truncate" BEFORE TRUNCATE ON "audit_signing_keys" FOR EACH STATEMENT
  EXECUTE FUNCTION "audit_signing_keys_refuse_change"();

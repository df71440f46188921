-- Hand-written: from the next migration on, every audit_log row is in its
-- group's hash chain (chain_seq, prev_hash, hash and group_id NOT NULL; the
-- tenant is the group; group ids are canonical lower-case UUIDs). A hash
-- cannot be invented for an event written beside the chain, so there is no
-- backfill: this migration refuses, naming what is wrong, a database that
-- holds such rows. Look at them, move them out of audit_log (e.g. into an
-- archive table) and run the migration again.
DO $$
DECLARE
  n bigint;
BEGIN
  SELECT count(*) INTO n FROM "audit_log"
   WHERE "chain_seq" IS NULL OR "hash" IS NULL OR "prev_hash" IS NULL OR "group_id" IS NULL;
  IF n > 0 THEN
    RAISE EXCEPTION 'audit_log holds % event(s) outside the hash chain (chain_seq, hash, prev_hash or group_id is NULL); a hash cannot be made up for them: inspect them with SELECT * FROM audit_log WHERE chain_seq IS NULL OR hash IS NULL OR prev_hash IS NULL OR group_id IS NULL, move them out of audit_log and migrate again', n;
  END IF;
  SELECT count(*) INTO n FROM "audit_log"
   WHERE length("group_id") <> 36 OR "group_id" <> lower("group_id");
  IF n > 0 THEN
    RAISE EXCEPTION 'audit_log holds % event(s) whose group_id is not a lower-case tenant id: inspect them with SELECT * FROM audit_log WHERE length(group_id) <> 36 OR group_id <> lower(group_id) and migrate again', n;
  END IF;
  SELECT count(*) INTO n FROM "audit_log"
   WHERE "tenant_id" IS NOT NULL AND "tenant_id"::text <> "group_id";
  IF n > 0 THEN
    RAISE EXCEPTION 'audit_log holds % event(s) whose tenant_id is not their group_id (moved to another tenant): inspect them with SELECT * FROM audit_log WHERE tenant_id::text <> group_id and migrate again', n;
  END IF;
END;
$$;

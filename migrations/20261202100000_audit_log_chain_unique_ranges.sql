-- Hand-written: audit_log_chain_unique checks chain_seq per group of the
-- statement, not per row.
--
-- The trigger of 20261202070000_audit_log_partitions.sql looked up each
-- new row's (group_id, chain_seq) in every partition: a group commit of n
-- events into a table of p partitions paid n × p index probes for a check
-- that, under the chain's advisory lock, never fails. Now, for each group
-- of the statement's new rows, the rows of audit_log whose chain_seq lies
-- between the group's lowest and highest new one are counted, one index
-- range scan per partition: a count above the group's new rows, or two new
-- rows with one chain_seq, means a duplicate, and only then are the rows
-- looked up one by one to name it in the error (the same SQLSTATE 23505,
-- constraint and detail as before). The appender's idempotency key is
-- still looked up per row that has one: keys have no range.
CREATE OR REPLACE FUNCTION "audit_log_chain_unique"() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off AS $$
DECLARE
  g record;
  r record;
  n bigint;
  dup boolean := false;
BEGIN
  FOR g IN SELECT "group_id", min("chain_seq") AS lo, max("chain_seq") AS hi,
                  count(*) AS k, count(DISTINCT "chain_seq") AS d
             FROM "audit_log_new" GROUP BY "group_id"
  LOOP
    IF g.d < g.k THEN
      dup := true;
      EXIT;
    END IF;
    SELECT count(*) INTO n FROM "audit_log" a
     WHERE a."group_id" = g."group_id" AND a."chain_seq" BETWEEN g.lo AND g.hi;
    IF n > g.k THEN
      dup := true;
      EXIT;
    END IF;
  END LOOP;
  FOR r IN SELECT "id", "created_at", "group_id", "chain_seq", "appended_by_type", "appended_by_id", "idempotency_key"
             FROM "audit_log_new"
            WHERE dup OR "idempotency_key" IS NOT NULL
  LOOP
    IF dup AND EXISTS (SELECT 1 FROM "audit_log" a
                WHERE a."group_id" = r."group_id" AND a."chain_seq" = r."chain_seq"
                  AND (a."id", a."created_at") IS DISTINCT FROM (r."id", r."created_at")) THEN
      RAISE EXCEPTION 'duplicate key value violates unique constraint "auditlog_group_id_chain_seq"'
        USING ERRCODE = 'unique_violation', CONSTRAINT = 'auditlog_group_id_chain_seq', TABLE = 'audit_log',
              DETAIL = format('Key (group_id, chain_seq)=(%s, %s) already exists.', r."group_id", r."chain_seq");
    END IF;
    IF r."idempotency_key" IS NOT NULL AND EXISTS (SELECT 1 FROM "audit_log" a
                WHERE a."group_id" = r."group_id" AND a."appended_by_type" = r."appended_by_type"
                  AND a."appended_by_id" = r."appended_by_id" AND a."idempotency_key" = r."idempotency_key"
                  AND (a."id", a."created_at") IS DISTINCT FROM (r."id", r."created_at")) THEN
      RAISE EXCEPTION 'duplicate key value violates unique constraint "auditlog_group_id_appender_idempotency_key"'
        USING ERRCODE = 'unique_violation', CONSTRAINT = 'auditlog_group_id_appender_idempotency_key', TABLE = 'audit_log',
              DETAIL = format('Key (group_id, appended_by_type, appended_by_id, idempotency_key)=(%s, %s, %s, %s) already exists.',
                              r."group_id", r."appended_by_type", r."appended_by_id", r."idempotency_key");
    END IF;
  END LOOP;
  RETURN NULL;
END;
$$;

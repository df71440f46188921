-- Hand-written: audit_log is partitioned by month of created_at (UTC).
--
-- Design. audit_log becomes a declarative PARTITION BY RANGE (created_at)
-- table; its partitions are audit_log_YYYY_MM ([first of the month, first
-- of the next month) in UTC) and audit_log_default for whatever falls
-- outside them. This migration creates one partition for every month from
-- the oldest existing event's to two months ahead of now(); the service
-- keeps creating them ahead (audit_log_ensure_partitions, hourly, see
-- internal/audit/partition.go), and retention drops whole months once a
-- digest covers them (internal/audit/retention.go).
--
-- What partitioning changes:
--   * The primary key is (id, created_at): a unique index of a partitioned
--     table must include the partition key.
--   * (group_id, chain_seq) and the appender's idempotency key cannot be
--     unique indexes for the same reason. They stay indexes of the same
--     names (not unique), and the statement-level AFTER INSERT trigger
--     audit_log_chain_unique refuses a statement that leaves a duplicate,
--     with SQLSTATE 23505 and the index's name, as the unique index did (so
--     Ent still reports a constraint error). The service appends to a chain
--     only under the chain's advisory lock (internal/audit.lockChain), so
--     two appends of one chain never run the check concurrently: for the
--     service the check is race-free. Two writers from outside the service
--     that do not take the lock could each insert the same chain_seq
--     unseen by the other's check (READ COMMITTED); VerifyAuditChain
--     reports such a fork. Rows written straight into a partition (not
--     through audit_log) bypass the trigger too.
--   * Every index is a partitioned index; a partition's own index is named
--     after the parent's with the partition's suffix
--     (auditlog_group_id_created_at_id_2026_12, …_default), so a plan names
--     the index it seeks in each partition it touches.
--   * The append-only triggers are recreated on the new table: the
--     row-level BEFORE UPDATE trigger is cloned onto every partition by
--     PostgreSQL; the statement-level TRUNCATE trigger is not, so every
--     partition gets its own (audit_log_add_partition).
--   * Partitions are created as a table LIKE audit_log and then ATTACHed,
--     which takes SHARE UPDATE EXCLUSIVE on audit_log (it does not wait for
--     nor block appends), not CREATE TABLE … PARTITION OF, which takes
--     ACCESS EXCLUSIVE on audit_log: queued behind any open transaction
--     that read audit_log, it would hold up every append meanwhile.
--
-- The copy runs in this migration's transaction, under the ACCESS
-- EXCLUSIVE lock the RENAME takes of the old table: appends wait for it (it
-- is a full rewrite of the table, with its indexes).
ALTER TABLE "audit_log" RENAME TO "audit_log_unpartitioned";
ALTER TABLE "audit_log_unpartitioned" RENAME CONSTRAINT "audit_log_pkey" TO "audit_log_unpartitioned_pkey";
DROP INDEX "auditlog_created_at_id";
DROP INDEX "auditlog_group_id_created_at_id";
DROP INDEX "auditlog_group_id_chain_seq";
DROP INDEX "auditlog_group_id_appender_idempotency_key";
DROP INDEX "auditlog_group_id_actor_id_created_at_id";
DROP INDEX "auditlog_group_id_target_id_created_at_id";
DROP INDEX "auditlog_group_id_target_type_created_at_id";
DROP INDEX "auditlog_group_id_action_created_at_id";
DROP INDEX "auditlog_group_id_crud_created_at_id";
DROP INDEX "auditlog_tenant_id";
-- The same columns (types, NOT NULL, defaults) and CHECK constraints.
CREATE TABLE "audit_log" (LIKE "audit_log_unpartitioned" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
  PARTITION BY RANGE ("created_at");
ALTER TABLE "audit_log" ADD PRIMARY KEY ("id", "created_at");
CREATE INDEX "auditlog_created_at_id" ON "audit_log" ("created_at", "id");
CREATE INDEX "auditlog_group_id_created_at_id" ON "audit_log" ("group_id", "created_at", "id");
CREATE INDEX "auditlog_group_id_chain_seq" ON "audit_log" ("group_id", "chain_seq");
CREATE INDEX "auditlog_group_id_appender_idempotency_key" ON "audit_log" ("group_id", "appended_by_type", "appended_by_id", "idempotency_key");
CREATE INDEX "auditlog_group_id_actor_id_created_at_id" ON "audit_log" ("group_id", "actor_id", "created_at", "id");
CREATE INDEX "auditlog_group_id_target_id_created_at_id" ON "audit_log" ("group_id", "target_id", "created_at", "id");
CREATE INDEX "auditlog_group_id_target_type_created_at_id" ON "audit_log" ("group_id", "target_type", "created_at", "id");
CREATE INDEX "auditlog_group_id_action_created_at_id" ON "audit_log" ("group_id", "action" varchar_pattern_ops, "created_at", "id");
CREATE INDEX "auditlog_group_id_crud_created_at_id" ON "audit_log" ("group_id", "crud", "created_at", "id");
CREATE INDEX "auditlog_tenant_id" ON "audit_log" ("tenant_id");
ALTER TABLE "audit_log" ADD CONSTRAINT "audit_log_tenants_audit_events" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE SET NULL;
CREATE TRIGGER "audit_log_refuse_update" BEFORE UPDATE ON "audit_log" FOR EACH ROW
  EXECUTE FUNCTION "audit_log_refuse_update"();
CREATE TRIGGER "audit_log_refuse_truncate" BEFORE TRUNCATE ON "audit_log" FOR EACH STATEMENT
  EXECUTE FUNCTION "audit_log_refuse_update"();

-- audit_log_add_partition creates the table part LIKE audit_log, with each
-- of audit_log's indexes (but the primary key's, which ATTACH creates)
-- named after the parent's plus suffix, runs fill (SQL filling it, or
-- NULL), attaches it with bound ("FOR VALUES …" or "DEFAULT") and gives it
-- the TRUNCATE-refusing trigger. A CHECK of the month's range, added
-- before ATTACH, spares ATTACH its scan of the new table.
CREATE FUNCTION "audit_log_add_partition"(part text, suffix text, bound text, range_check text, fill text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  idx record;
BEGIN
  EXECUTE format('CREATE TABLE %I (LIKE "audit_log" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
  IF range_check IS NOT NULL THEN
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (%s)', part, part || '_range', range_check);
  END IF;
  IF fill IS NOT NULL THEN
    EXECUTE fill;
  END IF;
  FOR idx IN
    SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS def
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
     WHERE i.indrelid = 'audit_log'::regclass AND NOT i.indisprimary
  LOOP
    -- "CREATE [UNIQUE] INDEX name ON ONLY public.audit_log USING …"
    EXECUTE regexp_replace(idx.def,
      '^(CREATE (UNIQUE )?INDEX )\S+ ON ONLY \S+ ',
      '\1' || quote_ident(idx.name || '_' || suffix) || ' ON ' || quote_ident(part) || ' ');
  END LOOP;
  EXECUTE format('ALTER TABLE "audit_log" ATTACH PARTITION %I %s', part, bound);
  EXECUTE format('CREATE TRIGGER "audit_log_refuse_truncate" BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION "audit_log_refuse_update"()', part);
END;
$$;

-- audit_log_create_partition creates the partition audit_log_YYYY_MM of
-- the month of month (UTC) unless it exists, and answers whether it did.
-- Rows of that month in audit_log_default move into it (ATTACH would refuse
-- them otherwise); the default partition is locked meanwhile. Concurrent
-- callers (replicas) are serialised by an advisory lock and the second
-- finds the partition there.
CREATE FUNCTION "audit_log_create_partition"(month date) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  m    date := date_trunc('month', month)::date;
  part text := 'audit_log_' || to_char(m, 'YYYY_MM');
  lo   timestamptz := m::timestamp AT TIME ZONE 'UTC';
  hi   timestamptz := (m + interval '1 month')::timestamp AT TIME ZONE 'UTC';
  fill text;
BEGIN
  IF to_regclass(quote_ident(part)) IS NOT NULL THEN
    RETURN false;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended('audit:partitions', 7351));
  IF to_regclass(quote_ident(part)) IS NOT NULL THEN
    RETURN false;
  END IF;
  IF to_regclass('audit_log_default') IS NOT NULL THEN
    LOCK TABLE "audit_log_default" IN SHARE ROW EXCLUSIVE MODE;
    IF EXISTS (SELECT 1 FROM "audit_log_default" WHERE "created_at" >= lo AND "created_at" < hi) THEN
      fill := format('WITH moved AS (DELETE FROM "audit_log_default" WHERE "created_at" >= %L AND "created_at" < %L RETURNING *) INSERT INTO %I SELECT * FROM moved', lo, hi, part);
    END IF;
  END IF;
  PERFORM "audit_log_add_partition"(part, to_char(m, 'YYYY_MM'),
    format('FOR VALUES FROM (%L) TO (%L)', lo, hi),
    format('"created_at" >= %L AND "created_at" < %L', lo, hi), fill);
  RETURN true;
END;
$$;

-- audit_log_ensure_partitions creates the partitions of the month of at
-- (UTC; the service passes its clock's now) and of the months_ahead
-- following ones, and of every month up to then that has rows in
-- audit_log_default (which it moves), and answers how many it created.
-- Nothing is locked when they all exist.
CREATE FUNCTION "audit_log_ensure_partitions"(months_ahead int, at timestamptz DEFAULT now()) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  this date := date_trunc('month', at AT TIME ZONE 'UTC')::date;
  m    date;
  n    int := 0;
BEGIN
  FOR m IN
    SELECT (this + make_interval(months => k))::date FROM generate_series(0, months_ahead) AS k
    UNION
    SELECT DISTINCT date_trunc('month', "created_at" AT TIME ZONE 'UTC')::date FROM "audit_log_default"
     WHERE "created_at" < (this + make_interval(months => months_ahead + 1))::timestamp AT TIME ZONE 'UTC'
    ORDER BY 1
  LOOP
    IF "audit_log_create_partition"(m) THEN
      n := n + 1;
    END IF;
  END LOOP;
  RETURN n;
END;
$$;

SELECT "audit_log_add_partition"('audit_log_default', 'default', 'DEFAULT', NULL, NULL);
SELECT "audit_log_create_partition"(m::date)
  FROM generate_series(
    date_trunc('month', LEAST(now(), (SELECT min("created_at") FROM "audit_log_unpartitioned")) AT TIME ZONE 'UTC'),
    date_trunc('month', now() AT TIME ZONE 'UTC') + interval '2 months',
    interval '1 month') AS m;

INSERT INTO "audit_log" SELECT * FROM "audit_log_unpartitioned";
DROP TABLE "audit_log_unpartitioned";

-- audit_log_chain_unique: see the design note above. It runs once per
-- INSERT statement and, for each of the statement's new rows, looks up
-- (group_id, chain_seq) and, when the row has an idempotency key, the
-- appender's key: one index probe each in every partition (neither
-- includes created_at, so no partition is pruned). One lookup per row, not
-- a join of the new rows with audit_log: PL/pgSQL caches a statement's plan
-- per session, and a join planned for a one-row statement (the common
-- append) would be reused, scanning partitions whole once per new row, for
-- a statement of many. The lookups' plans are kept to index probes (no
-- sequential scan) for the same reason: a plan cached while the current
-- month's partition was small must not go on scanning it as it grows.
CREATE FUNCTION "audit_log_chain_unique"() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off AS $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT "id", "created_at", "group_id", "chain_seq", "appended_by_type", "appended_by_id", "idempotency_key"
             FROM "audit_log_new"
  LOOP
    IF EXISTS (SELECT 1 FROM "audit_log" a
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
CREATE TRIGGER "audit_log_chain_unique" AFTER INSERT ON "audit_log"
  REFERENCING NEW TABLE AS "audit_log_new" FOR EACH STATEMENT
  EXECUTE FUNCTION "audit_log_chain_unique"();

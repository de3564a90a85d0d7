-- iotstream 0.1.0 -> 0.2.0: least privilege (see README.md, "Privileges").
--
-- After this script the catalog is what CREATE EXTENSION iotstream VERSION
-- '0.2.0' makes (test/integration/01_upgrade.sh compares the two).  Every
-- function body below is the text of sql/install/ as 0.2.0 ships it:
-- CREATE OR REPLACE where the signature stayed, DROP and CREATE where it
-- changed (_evaluate and _export_write_files gained source_table).  Then
-- the stored rule and rollup statements get table placeholders instead of
-- table names, rollup tables go to the owner of their source table, and the
-- privileges of 90_privileges.sql are applied again.  Settings rows stay
-- as they are; the new check trigger applies to the rows written from now on.
\echo Use "ALTER EXTENSION iotstream UPDATE TO '0.2.0'" to load this file. \quit

-- Every role may call the public API: its functions check who may do what
-- (see README.md, "Privileges"); internal functions (named _*) are revoked
-- from PUBLIC at the end of the script.
GRANT USAGE ON SCHEMA iotstream TO PUBLIC;

-- ------------------------------------------------------------ stream tables

-- 0.1.0 let a table's owner write its settings row directly, under row
-- policies.  Everyone may read the settings.  Only the API writes them,
-- through _settings_put and _settings_delete, which check that the caller
-- acts for the table's owner (src/stream_table_settings.c).
DROP POLICY owner_writes ON iotstream.stream_table_settings;
DROP POLICY read_all ON iotstream.stream_table_settings;
ALTER TABLE iotstream.stream_table_settings DISABLE ROW LEVEL SECURITY;
REVOKE ALL ON iotstream.stream_table_settings FROM PUBLIC;
GRANT SELECT ON iotstream.stream_table_settings TO PUBLIC;

CREATE FUNCTION iotstream._settings_put(relid regclass, time_column name, partition_interval interval,
    premake int, retention interval, retention_mode text, max_past interval, max_future interval)
RETURNS void AS 'MODULE_PATHNAME', 'settings_put' LANGUAGE C;
COMMENT ON FUNCTION iotstream._settings_put(regclass, name, interval, int, interval, text, interval, interval) IS
    'Internal: inserts or replaces a stream table''s settings; the caller must act for the table''s owner.';

CREATE FUNCTION iotstream._settings_delete(relid regclass) RETURNS boolean
AS 'MODULE_PATHNAME', 'settings_delete' LANGUAGE C;
COMMENT ON FUNCTION iotstream._settings_delete(regclass) IS
    'Internal: forgets a stream table''s settings; the caller must act for the table''s owner.';

CREATE FUNCTION iotstream._stream_table_settings_check() RETURNS trigger
AS 'MODULE_PATHNAME', 'stream_table_settings_check' LANGUAGE C;
COMMENT ON FUNCTION iotstream._stream_table_settings_check() IS
    'Internal: rejects settings rows for tables that cannot be stream tables (not range-partitioned on the time column alone, a default partition, a bad interval).';

CREATE TRIGGER settings_check
    BEFORE INSERT OR UPDATE ON iotstream.stream_table_settings
    FOR EACH ROW EXECUTE FUNCTION iotstream._stream_table_settings_check();

-- the API writes settings through _settings_put and _settings_delete;
-- run_maintenance visits the tables whose owner the caller acts for
CREATE OR REPLACE FUNCTION iotstream.create_stream_table(
    table_name         text,
    columns            text DEFAULT NULL,
    time_column        name DEFAULT NULL,
    partition_interval interval DEFAULT '1 day',
    premake            int DEFAULT 3,
    retention          interval DEFAULT '30 days',
    retention_mode     text DEFAULT 'drop',
    max_past           interval DEFAULT NULL,
    max_future         interval DEFAULT NULL)
RETURNS regclass LANGUAGE plpgsql AS $$
DECLARE
    parts text[];
    nsp name;
    rel name;
    existing regclass;
    tbl regclass;
    col_type regtype;
    col_num int;
    strategy "char";
    key_cols int2vector;
    converted bool := false;
BEGIN
    IF table_name IS NULL OR time_column IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'table_name and time_column are required',
            HINT = 'Call iotstream.create_stream_table(''telemetry'', ''ts timestamptz NOT NULL, device_id text, value float8'', ''ts'').';
    END IF;
    parts := parse_ident(table_name);
    IF cardinality(parts) = 1 THEN
        nsp := current_schema();
        rel := parts[1];
    ELSIF cardinality(parts) = 2 THEN
        nsp := parts[1];
        rel := parts[2];
    ELSE
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_name',
            MESSAGE = format('invalid table name %L', table_name),
            HINT = 'Use table or schema.table.';
    END IF;
    IF nsp IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_schema_name',
            MESSAGE = 'no schema has been selected to create in',
            HINT = 'Qualify the table name with a schema.';
    END IF;
    IF premake IS NULL OR premake NOT BETWEEN 0 AND 1000 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('premake must be between 0 and 1000, not %s', coalesce(premake::text, 'NULL')),
            HINT = 'premake is the number of future partitions kept ready.';
    END IF;
    IF retention <= interval '0' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('retention must be positive, not %s', retention),
            HINT = 'Pass NULL to keep every partition.';
    END IF;
    IF retention_mode IS NULL OR retention_mode NOT IN ('drop', 'detach') THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid retention_mode %L', retention_mode),
            HINT = 'Use ''drop'' to drop expired partitions or ''detach'' to keep them as plain tables.';
    END IF;

    existing := to_regclass(format('%I.%I', nsp, rel));
    IF columns IS NOT NULL THEN
        IF existing IS NOT NULL THEN
            RAISE EXCEPTION USING
                ERRCODE = 'duplicate_table',
                MESSAGE = format('relation %I.%I already exists', nsp, rel),
                HINT = 'To adopt the existing table as a stream table, pass columns => NULL.';
        END IF;
        BEGIN
            EXECUTE format('CREATE TABLE %I.%I (%s) PARTITION BY RANGE (%I)', nsp, rel, columns, time_column);
        EXCEPTION WHEN undefined_column THEN
            RAISE EXCEPTION USING
                ERRCODE = 'undefined_column',
                MESSAGE = format('time column %I is not among the columns of %I.%I', time_column, nsp, rel),
                HINT = format('Add a timestamptz column named %I to the column list, or pass the name of an existing one as time_column.', time_column);
        END;
    ELSE
        IF existing IS NULL THEN
            RAISE EXCEPTION USING
                ERRCODE = 'undefined_table',
                MESSAGE = format('relation %I.%I does not exist', nsp, rel),
                HINT = 'Pass a column list to create a new stream table, or create the table first.';
        END IF;
        IF EXISTS (SELECT 1 FROM iotstream.stream_table_settings s WHERE s.relid = existing) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'duplicate_object',
                MESSAGE = format('%s is already a stream table', existing),
                HINT = 'Change its settings with iotstream.alter_stream_table().';
        END IF;
    END IF;

    SELECT a.atttypid::regtype, a.attnum INTO col_type, col_num
      FROM pg_attribute a
     WHERE a.attrelid = format('%I.%I', nsp, rel)::regclass
       AND a.attname = time_column AND NOT a.attisdropped AND a.attnum > 0;
    IF col_num IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'undefined_column',
            MESSAGE = format('time column %I does not exist in %I.%I', time_column, nsp, rel),
            HINT = 'Pass the name of the column that holds the event time.';
    END IF;
    IF col_type NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'datatype_mismatch',
            MESSAGE = format('time column %I is of type %s, not a time type', time_column, col_type),
            HINT = 'The time column must be timestamptz (recommended), timestamp or date.';
    END IF;
    PERFORM iotstream._check_partition_interval(partition_interval, col_type);

    IF columns IS NULL THEN
        SELECT c.relkind = 'p', pt.partstrat, pt.partattrs INTO converted, strategy, key_cols
          FROM pg_class c LEFT JOIN pg_partitioned_table pt ON pt.partrelid = c.oid
         WHERE c.oid = existing;
        IF converted THEN
            IF strategy <> 'r' OR array_length(key_cols::int2[], 1) <> 1 OR key_cols[0] <> col_num THEN
                RAISE EXCEPTION USING
                    ERRCODE = 'invalid_table_definition',
                    MESSAGE = format('%s is partitioned, but not by range on %I alone', existing, time_column),
                    HINT = format('A stream table is partitioned BY RANGE (%I).', time_column);
            END IF;
            IF EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                        WHERE i.inhparent = existing AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT') THEN
                RAISE EXCEPTION USING
                    ERRCODE = 'invalid_table_definition',
                    MESSAGE = format('%s has a default partition', existing),
                    DETAIL = 'A default partition blocks the creation of partitions for the rows it holds.',
                    HINT = 'Detach the default partition and move its rows into the table after adopting it.';
            END IF;
            converted := false;
        ELSE
            PERFORM iotstream._convert_to_partitioned(nsp, rel, time_column);
            converted := true;
        END IF;
    END IF;

    tbl := format('%I.%I', nsp, rel)::regclass;
    PERFORM iotstream._settings_put(tbl, time_column, partition_interval, premake, retention, retention_mode,
                                    coalesce(max_past, retention),
                                    coalesce(max_future, partition_interval * greatest(premake, 1)));

    IF converted THEN
        DECLARE
            old regclass := format('%I.%I', nsp, left(rel, 49) || '_unpartitioned')::regclass;
            lo timestamptz;
            hi timestamptz;
            moved bigint;
        BEGIN
            EXECUTE format('SELECT min(%1$I)::timestamptz, max(%1$I)::timestamptz FROM %2$s', time_column, old)
               INTO lo, hi;
            IF lo IS NOT NULL THEN
                PERFORM iotstream.ensure_partitions(tbl, lo, hi);
            END IF;
            EXECUTE format('INSERT INTO %s SELECT * FROM %s', tbl, old);
            GET DIAGNOSTICS moved = ROW_COUNT;
            RAISE NOTICE 'moved % rows into stream table %; the original table is kept as %', moved, tbl, old
                USING HINT = format('Drop %s once you have checked the stream table.', old);
        END;
    END IF;

    PERFORM iotstream.ensure_partitions(tbl, now(), now() + partition_interval * premake);
    RETURN tbl;
END $$;
COMMENT ON FUNCTION iotstream.create_stream_table(text, text, name, interval, int, interval, text, interval, interval) IS
    'Creates a stream table from a column list, or adopts an existing table (columns => NULL): range-partitioned on time_column, partitions on demand. max_past defaults to retention, max_future to premake partition intervals.';

CREATE OR REPLACE FUNCTION iotstream.alter_stream_table(
    stream_table       regclass,
    partition_interval interval DEFAULT NULL,
    premake            int DEFAULT NULL,
    retention          interval DEFAULT NULL,
    retention_mode     text DEFAULT NULL,
    max_past           interval DEFAULT NULL,
    max_future         interval DEFAULT NULL,
    keep_forever       boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    s iotstream.stream_table_settings;
BEGIN
    SELECT * INTO s FROM iotstream.stream_table_settings st WHERE st.relid = stream_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'wrong_object_type',
            MESSAGE = format('relation %s is not a stream table', stream_table),
            HINT = 'Create it with iotstream.create_stream_table().';
    END IF;
    IF partition_interval IS NOT NULL THEN
        PERFORM iotstream._check_partition_interval(partition_interval,
            (SELECT atttypid::regtype FROM pg_attribute WHERE attrelid = stream_table AND attname = s.time_column));
    END IF;
    IF retention_mode IS NOT NULL AND retention_mode NOT IN ('drop', 'detach') THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid retention_mode %L', retention_mode),
            HINT = 'Use ''drop'' or ''detach''.';
    END IF;
    IF premake IS NOT NULL AND premake NOT BETWEEN 0 AND 1000 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('premake must be between 0 and 1000, not %s', premake),
            HINT = 'premake is the number of future partitions kept ready.';
    END IF;
    PERFORM iotstream._settings_put(stream_table, s.time_column,
        coalesce(alter_stream_table.partition_interval, s.partition_interval),
        coalesce(alter_stream_table.premake, s.premake),
        CASE WHEN keep_forever THEN NULL ELSE coalesce(alter_stream_table.retention, s.retention) END,
        coalesce(alter_stream_table.retention_mode, s.retention_mode),
        CASE WHEN keep_forever AND alter_stream_table.max_past IS NULL THEN NULL
             ELSE coalesce(alter_stream_table.max_past, s.max_past) END,
        coalesce(alter_stream_table.max_future, s.max_future));
END $$;
COMMENT ON FUNCTION iotstream.alter_stream_table(regclass, interval, int, interval, text, interval, interval, boolean) IS
    'Changes a stream table''s settings; NULL leaves a setting unchanged. keep_forever => true clears retention (and max_past unless given).';

CREATE OR REPLACE FUNCTION iotstream.drop_stream_table(stream_table regclass, drop_table boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM iotstream.stream_table_settings st WHERE st.relid = stream_table)
       OR NOT iotstream._settings_delete(stream_table) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'wrong_object_type',
            MESSAGE = format('relation %s is not a stream table', stream_table),
            HINT = 'List stream tables in iotstream.stream_tables.';
    END IF;
    IF drop_table THEN
        EXECUTE format('DROP TABLE %s', stream_table);
    END IF;
END $$;
COMMENT ON FUNCTION iotstream.drop_stream_table(regclass, boolean) IS
    'Stops managing a stream table; with drop_table => true also drops it and its partitions.';

CREATE OR REPLACE FUNCTION iotstream.run_maintenance(for_table regclass DEFAULT NULL)
RETURNS TABLE (stream_table regclass, created int, dropped int, detached int)
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    s iotstream.stream_table_settings;
    p record;
BEGIN
    -- the tables whose owner the caller acts for (a superuser: all)
    FOR s IN SELECT * FROM iotstream.stream_table_settings st
              WHERE (for_table IS NULL OR st.relid = for_table)
                AND pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = st.relid), 'USAGE')
              ORDER BY st.relid::text
    LOOP
        stream_table := s.relid;
        created := 0;
        dropped := 0;
        detached := 0;
        -- one table's failure (a lock timeout, say) must not stop the others
        BEGIN
            created := iotstream.ensure_partitions(s.relid, now(), now() + s.partition_interval * s.premake);
            IF s.retention IS NOT NULL THEN
                FOR p IN SELECT * FROM iotstream.partitions(s.relid) x
                          WHERE x.range_end <= now() - s.retention ORDER BY x.range_start
                LOOP
                    IF s.retention_mode = 'drop' THEN
                        EXECUTE format('DROP TABLE %s', p.partition);
                        dropped := dropped + 1;
                    ELSE
                        EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', s.relid, p.partition);
                        detached := detached + 1;
                    END IF;
                END LOOP;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'iotstream maintenance of % failed: %', s.relid, SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
END $$;
COMMENT ON FUNCTION iotstream.run_maintenance(regclass) IS
    'Premakes partitions and applies retention (drop or detach) for one or all stream tables; returns what it did per table.';

-- The view lists every stream table even if one of them is broken (its
-- partition key changed, a default partition attached): that one shows no
-- partitions instead of failing the whole view.
CREATE FUNCTION iotstream._partitions_or_none(stream_table regclass,
    OUT partition regclass, OUT range_start timestamptz, OUT range_end timestamptz)
RETURNS SETOF record LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY SELECT * FROM iotstream.partitions(stream_table);
EXCEPTION WHEN OTHERS THEN
    RETURN;
END $$;
COMMENT ON FUNCTION iotstream._partitions_or_none(regclass) IS 'Internal: iotstream.partitions(), or no rows if the table no longer qualifies.';

CREATE OR REPLACE VIEW iotstream.stream_tables AS
SELECT s.relid AS stream_table,
       s.time_column,
       s.partition_interval,
       s.premake,
       s.retention,
       s.retention_mode,
       s.max_past,
       s.max_future,
       p.partitions,
       p.oldest_partition,
       p.newest_partition,
       p.oldest_start,
       p.newest_end,
       p.total_bytes,
       pg_size_pretty(p.total_bytes) AS total_size,
       p.row_estimate
  FROM iotstream.stream_table_settings s
  CROSS JOIN LATERAL (
       SELECT count(*)::int AS partitions,
              (array_agg(x.partition ORDER BY x.range_start))[1] AS oldest_partition,
              (array_agg(x.partition ORDER BY x.range_start DESC))[1] AS newest_partition,
              min(x.range_start) AS oldest_start,
              max(x.range_end) AS newest_end,
              coalesce(sum(pg_total_relation_size(x.partition)), 0)::bigint AS total_bytes,
              coalesce(sum(CASE WHEN c.reltuples >= 0 THEN c.reltuples
                                ELSE pg_stat_get_live_tuples(c.oid) END), 0)::bigint AS row_estimate
         FROM iotstream._partitions_or_none(s.relid) x
         JOIN pg_class c ON c.oid = x.partition) p;
COMMENT ON VIEW iotstream.stream_tables IS
    'Each stream table with its settings, partition count, oldest and newest partition, total size and row estimate (from the last ANALYZE, or the live-tuple counter of partitions never analyzed).';

-- dedup keys: no foreign key (it checked and locked the source row for every
-- key a batch stored); a trigger forgets the keys of a deleted source
ALTER TABLE iotstream.source_dedup DROP CONSTRAINT source_dedup_source_id_fkey;
CREATE FUNCTION iotstream._source_forget_dedup() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM iotstream.source_dedup d WHERE d.source_id = OLD.source_id;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION iotstream._source_forget_dedup() IS 'Internal: forgets the dedup keys of a deleted source.';
CREATE TRIGGER forget_dedup AFTER DELETE ON iotstream.sources
    FOR EACH ROW EXECUTE FUNCTION iotstream._source_forget_dedup();

-- maintenance scheduling: a NULL schedule and a missing job get answers
CREATE OR REPLACE FUNCTION iotstream.schedule_maintenance(cron text DEFAULT '*/10 * * * *')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    job bigint;
BEGIN
    PERFORM iotstream._require_pg_cron();
    IF cron IS NULL OR btrim(cron) = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'a maintenance schedule is required',
            HINT = 'Pass a cron expression such as ''*/10 * * * *'', or call iotstream.unschedule_maintenance().';
    END IF;
    EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO job
      USING 'iotstream_maintenance', cron, 'SELECT count(*) FROM iotstream.run_maintenance()';
    RETURN job;
END $$;
COMMENT ON FUNCTION iotstream.schedule_maintenance(text) IS
    'Registers iotstream.run_maintenance() as the pg_cron job "iotstream_maintenance"; returns the job id. Needs pg_cron.';

CREATE OR REPLACE FUNCTION iotstream.unschedule_maintenance() RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    found boolean;
    done boolean;
BEGIN
    PERFORM iotstream._require_pg_cron();
    -- no job is no error: there is nothing to remove
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM cron.job WHERE jobname = $1)' INTO found USING 'iotstream_maintenance';
    IF NOT found THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT cron.unschedule($1)' INTO done USING 'iotstream_maintenance';
    RETURN done;
END $$;
COMMENT ON FUNCTION iotstream.unschedule_maintenance() IS 'Removes the pg_cron job "iotstream_maintenance"; false if there is none. Needs pg_cron.';

-- ------------------------------------------------------------ sources

-- Dead letters are data: a role reads those of the sources whose target it
-- may read.  The worker writes them as the extension's owner.
CREATE FUNCTION iotstream._may_read_source(source text, role name) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT pg_catalog.has_table_privilege(role, s.target, 'SELECT')
                       FROM iotstream.sources s WHERE s.name = source), false)
$$;
COMMENT ON FUNCTION iotstream._may_read_source(text, name) IS
    'Internal: whether role may read the target table of a source (the dead letters'' row policy).';

ALTER TABLE iotstream.dead_letters ENABLE ROW LEVEL SECURITY;
CREATE POLICY readers_of_the_target ON iotstream.dead_letters FOR SELECT
    USING (iotstream._may_read_source(source, current_user));
GRANT SELECT ON iotstream.dead_letters TO PUBLIC;

-- sources, rules and rollups run as the owner of their table
CREATE OR REPLACE FUNCTION iotstream._require_superuser(what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('permission denied to %s', what),
            DETAIL = 'Sources, rules and rollups run in background workers and hold credentials; superusers define them, and they run as the owner of the table they read or write.',
            HINT = 'Ask a superuser to define it on your table (see "Privileges" in README.md).';
    END IF;
END $$;
COMMENT ON FUNCTION iotstream._require_superuser(text) IS 'Internal: errors unless the caller is a superuser.';

COMMENT ON FUNCTION iotstream._worker_stats() IS 'Internal: the counters of each source worker since it started, from shared memory; a role sees the workers of the tables it may read.';

-- each role sees the sources of the tables it may read
CREATE OR REPLACE VIEW iotstream.source_status AS
SELECT s.name AS source,
       s.target,
       s.topics,
       CASE WHEN NOT s.running THEN 'stopped'
            WHEN w.workers = 0 THEN 'starting'
            ELSE w.state END AS state,
       w.pids,
       o.partitions,
       o.lag,
       coalesce(w.messages_per_sec, 0) AS messages_per_sec,
       coalesce(w.rows_per_sec, 0) AS rows_per_sec,
       coalesce(w.messages, 0) AS messages,
       coalesce(w.rows, 0) AS rows,
       coalesce(w.duplicates, 0) AS duplicates,
       (SELECT count(*) FROM iotstream.dead_letters d WHERE d.source = s.name) AS dead_letters,
       w.last_batch_at,
       w.last_error,
       w.last_error_at
  FROM iotstream.sources s
  LEFT JOIN LATERAL (
       SELECT count(*) FILTER (WHERE x.pid IS NOT NULL) AS workers,
              array_agg(x.pid) FILTER (WHERE x.pid IS NOT NULL) AS pids,
              min(x.state) FILTER (WHERE x.pid IS NOT NULL) AS state,
              sum(x.messages_per_sec) AS messages_per_sec, sum(x.rows_per_sec) AS rows_per_sec,
              sum(x.messages) AS messages, sum(x.rows) AS rows, sum(x.duplicates) AS duplicates,
              max(x.last_batch_at) AS last_batch_at,
              (array_agg(x.last_error ORDER BY x.last_error_at DESC NULLS LAST))[1] AS last_error,
              max(x.last_error_at) AS last_error_at
         FROM iotstream._worker_stats() x WHERE x.source_id = s.source_id) w ON true
  LEFT JOIN LATERAL (
       SELECT jsonb_agg(jsonb_build_object('topic', so.topic, 'partition', so.partition,
                        'next_offset', so.next_offset, 'high_watermark', so.high_watermark,
                        'lag', greatest(so.high_watermark - so.next_offset, 0))
                        ORDER BY so.topic, so.partition) AS partitions,
              sum(greatest(so.high_watermark - so.next_offset, 0))::bigint AS lag
         FROM iotstream.source_offsets so WHERE so.source_id = s.source_id) o ON true
 -- each role sees the sources of the tables it may read
 WHERE coalesce(pg_catalog.has_table_privilege(s.target, 'SELECT'), false)
    OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user);
GRANT SELECT ON iotstream.source_status TO PUBLIC;

-- ------------------------------------------------------------ detection

-- Stored statements name their tables by placeholder ("@iotstream.source@",
-- "@iotstream.rollup@", "@iotstream.delta@"); each use puts in the current
-- name of the OID the definition holds, so a rename, or a view put in a
-- table's place, never redirects them.  The workers do the same in C
-- (owner.c); the statements run as the table's owner (_as_owner).
CREATE FUNCTION iotstream._named(sql text, source regclass, rollup regclass DEFAULT NULL,
                                 delta regclass DEFAULT NULL) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT replace(replace(replace(sql,
        '"@iotstream.source@"', (SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
                                  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = source)),
        '"@iotstream.rollup@"', coalesce((SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
                                  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rollup),
                                 '"@iotstream.rollup@"')),
        '"@iotstream.delta@"', coalesce((SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
                                  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = delta),
                                '"@iotstream.delta@"'))
$$;
COMMENT ON FUNCTION iotstream._named(text, regclass, regclass, regclass) IS
    'Internal: a stored statement with its table placeholders replaced by the current names of the OIDs.';

CREATE FUNCTION iotstream._as_owner(relid regclass, sql text, a timestamptz DEFAULT NULL, b timestamptz DEFAULT NULL)
RETURNS jsonb AS 'MODULE_PATHNAME', 'iotstream_as_owner' LANGUAGE C;
COMMENT ON FUNCTION iotstream._as_owner(regclass, text, timestamptz, timestamptz) IS
    'Internal: runs sql ($1 = a, $2 = b) as the owner of relid, in a security-restricted operation: a query''s one jsonb column of its first row, or {"rows": n}. The caller must have the owner''s privileges.';

-- rollups: superusers define them; their tables belong to the source
-- table's owner, who runs their statements
CREATE OR REPLACE FUNCTION iotstream.create_rollup(
    name          text,
    source_table  regclass,
    key_columns   text[],
    value_columns text[],
    bucket        interval DEFAULT '1 minute',
    lateness      interval DEFAULT '5 minutes')
RETURNS regclass LANGUAGE plpgsql AS $$
DECLARE
    tcol name := iotstream._time_column(source_table);
    parts text[];
    qname text;
    cols text := '';
    keys text := '';
    ukeys text := '';
    aggs text := '';
    sets text := '';
    unn text := '';
    dcols text := '';
    uaggs text := '';
    allcols text;
    delta text;
    params text := '';
    n int := 0;
    c text;
    tbl regclass;
    id int;
    owner name;
    ph_rollup text := '"@iotstream.rollup@"';
    ph_delta text := '"@iotstream.delta@"';
BEGIN
    PERFORM iotstream._require_superuser('create a rollup');
    IF EXISTS (SELECT 1 FROM iotstream.rollups r WHERE r.name = create_rollup.name) THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('rollup %L already exists', create_rollup.name),
            HINT = 'Drop it with iotstream.drop_rollup() first.';
    END IF;
    PERFORM iotstream._check_columns(source_table, key_columns, 'key_columns', false);
    PERFORM iotstream._check_columns(source_table, value_columns, 'value_columns', true);
    IF cardinality(value_columns) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'value_columns must name at least one column',
            HINT = 'Pass for example ARRAY[''value''].';
    END IF;
    PERFORM iotstream._check_interval(bucket, 'bucket', false);
    PERFORM iotstream._check_interval(lateness, 'lateness', true);
    parts := parse_ident(name);
    qname := (SELECT string_agg(quote_ident(p), '.') FROM unnest(parts) p);

    FOREACH c IN ARRAY key_columns LOOP
        n := n + 1;
        cols := cols || format('%I %s, ', c, (SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                                              WHERE attrelid = source_table AND attname = c));
        dcols := dcols || format('%I %s[], ', c, (SELECT format_type(atttypid, NULL) FROM pg_attribute
                                                 WHERE attrelid = source_table AND attname = c));
        keys := keys || format('%I, ', c);
        ukeys := ukeys || format('u.%I, ', c);
        unn := unn || format('$%s::%s[], ', n, (SELECT format_type(atttypid, NULL) FROM pg_attribute
                                               WHERE attrelid = source_table AND attname = c));
    END LOOP;
    n := n + 1;
    unn := unn || format('$%s::timestamptz[]', n);
    dcols := dcols || 'bucket_start timestamptz[]';
    ukeys := ukeys || 'u.bucket_start';
    FOREACH c IN ARRAY value_columns LOOP
        n := n + 1;
        aggs := aggs || format(', iotstream.stats_agg(%I::float8)', c);
        uaggs := uaggs || format(', iotstream.rollup(u.%I)', c);
        dcols := dcols || format(', %I iotstream.stats[]', c);
        sets := sets || format('%s%I = CASE WHEN r.%I IS NULL THEN excluded.%I WHEN excluded.%I IS NULL THEN r.%I'
                               ' ELSE iotstream.stats_combine(r.%I, excluded.%I) END',
                               CASE WHEN sets = '' THEN '' ELSE ', ' END, c, c, c, c, c, c, c);
        unn := unn || format(', $%s::iotstream.stats[]', n);
    END LOOP;
    allcols := keys || 'bucket_start' || (SELECT string_agg(format(', %I', v), '') FROM unnest(value_columns) v);
    EXECUTE format('CREATE TABLE %s (%sbucket_start timestamptz NOT NULL, %s, UNIQUE NULLS NOT DISTINCT (%s))',
                   qname, cols, (SELECT string_agg(format('%I iotstream.stats', v), ', ') FROM unnest(value_columns) v),
                   keys || 'bucket_start');
    tbl := qname::regclass;
    -- the groups of each batch, until the detection worker folds them in;
    -- stored out of line uncompressed: compressing them costs the batch more
    -- than the bytes save
    id := nextval(pg_get_serial_sequence('iotstream.rollups', 'rollup_id'));
    delta := format('iotstream.%I', '_rollup_delta_' || id);
    EXECUTE format('CREATE TABLE %s (%s)', delta, dcols);
    EXECUTE format('ALTER TABLE %s %s', delta,
                   (SELECT string_agg(format('ALTER COLUMN %I SET STORAGE EXTERNAL', attname), ', ')
                      FROM pg_attribute WHERE attrelid = delta::regclass AND attnum > 0));
    -- both tables belong to the source table's owner, who alone runs the
    -- rollup's statements (the workers run them as that role)
    owner := (SELECT a.rolname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles a ON a.oid = c.relowner
               WHERE c.oid = source_table);
    EXECUTE format('ALTER TABLE %s OWNER TO %I', tbl, owner);
    EXECUTE format('ALTER TABLE %s OWNER TO %I', delta, owner);
    INSERT INTO iotstream.rollups (rollup_id, name, source_table, rollup_table, key_columns, value_columns, bucket,
                                   lateness, delta_table, delta_sql, upsert_sql, refresh_sql)
    VALUES (id, name, source_table, tbl, key_columns, value_columns, bucket, lateness, delta::regclass,
            format('INSERT INTO %s VALUES (%s)', ph_delta, unn),
            format('WITH d AS (DELETE FROM %s RETURNING *)'
                   ' INSERT INTO %s AS r (%s) SELECT %s%s FROM d, unnest(%s) u(%s) GROUP BY %s'
                   ' ON CONFLICT (%s) DO UPDATE SET %s',
                   ph_delta, ph_rollup, allcols, ukeys, uaggs,
                   (SELECT string_agg('d.' || quote_ident(x), ', ') FROM unnest(key_columns || 'bucket_start'::text || value_columns) x),
                   allcols, ukeys,
                   keys || 'bucket_start', sets),
            format('INSERT INTO %s (%s) SELECT %sdate_bin(%L, %I, %L)%s FROM %s WHERE %I >= $1 AND %I < $2 GROUP BY %s',
                   ph_rollup, allcols, keys, bucket, tcol, '2000-01-01 00:00:00+00', aggs, '"@iotstream.source@"', tcol, tcol,
                   (SELECT string_agg(g::text, ', ') FROM generate_series(1, cardinality(key_columns) + 1) g)));
    INSERT INTO iotstream.rollup_progress (rollup_id) VALUES (id);
    INSERT INTO iotstream.watermarks (relid) VALUES (source_table) ON CONFLICT DO NOTHING;
    RETURN tbl;
END $$;
COMMENT ON FUNCTION iotstream.create_rollup(text, regclass, text[], text[], interval, interval) IS
    'Creates table name (keys..., bucket_start, one iotstream.stats per value column), kept up to date from each ingested batch (through deltas the detection worker folds in). Rows arriving after their bucket closed (watermark - lateness) are counted as late and merged only by refresh_rollup().';

CREATE OR REPLACE FUNCTION iotstream._rollup_apply(id int) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    r iotstream.rollups;
BEGIN
    SELECT * INTO r FROM iotstream.rollups WHERE rollup_id = id;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(1769238101, id);
    RETURN (iotstream._as_owner(r.source_table,
                iotstream._named(r.upsert_sql, r.source_table, r.rollup_table, r.delta_table))->>'rows')::bigint;
END $$;
COMMENT ON FUNCTION iotstream._rollup_apply(int) IS 'Internal: folds a rollup''s waiting batch deltas into its table; returns the groups written.';

CREATE OR REPLACE FUNCTION iotstream._rollup_pending(id int) RETURNS bigint
LANGUAGE sql AS $$
    SELECT (iotstream._as_owner(r.source_table, format('SELECT to_jsonb(count(*)) FROM %s', r.delta_table)) #>> '{}')::bigint
      FROM iotstream.rollups r WHERE r.rollup_id = id
$$;
COMMENT ON FUNCTION iotstream._rollup_pending(int) IS 'Internal: how many batch deltas of a rollup wait to be folded in.';

CREATE OR REPLACE FUNCTION iotstream.refresh_rollup(name text, from_time timestamptz, to_time timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    r iotstream.rollups := iotstream._rollup(name);
    lo timestamptz;
    hi timestamptz;
    n bigint;
BEGIN
    PERFORM iotstream._require_superuser('refresh a rollup');
    IF from_time IS NULL OR to_time IS NULL OR from_time > to_time THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'refresh_rollup needs from_time <= to_time',
            HINT = 'Pass the event-time range whose buckets to recompute.';
    END IF;
    -- batches hold this lock until they commit: from here on every
    -- committed row's delta is visible, and no new one commits before us
    PERFORM 1 FROM iotstream.watermarks WHERE relid = r.source_table FOR UPDATE;
    PERFORM iotstream._rollup_apply(r.rollup_id);
    lo := date_bin(r.bucket, from_time, '2000-01-01 00:00:00+00');
    hi := date_bin(r.bucket, to_time, '2000-01-01 00:00:00+00');
    IF hi < to_time THEN
        hi := hi + r.bucket;
    END IF;
    PERFORM iotstream._as_owner(r.source_table,
        format('DELETE FROM %s WHERE bucket_start >= $1 AND bucket_start < $2', r.rollup_table), lo, hi);
    n := (iotstream._as_owner(r.source_table, iotstream._named(r.refresh_sql, r.source_table, r.rollup_table),
                              lo, hi)->>'rows')::bigint;
    RETURN n;
END $$;
COMMENT ON FUNCTION iotstream.refresh_rollup(text, timestamptz, timestamptz) IS
    'Recomputes the rollup''s buckets overlapping [from_time, to_time) from the source table, late rows included; returns the buckets written.';

CREATE OR REPLACE FUNCTION iotstream.drop_rollup(name text, keep_table boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r iotstream.rollups;
BEGIN
    PERFORM iotstream._require_superuser('drop a rollup');
    r := iotstream._rollup(name);
    PERFORM iotstream._rollup_apply(r.rollup_id);
    DELETE FROM iotstream.rollups WHERE rollup_id = r.rollup_id;
    EXECUTE format('DROP TABLE IF EXISTS %s', r.delta_table);
    IF NOT keep_table AND EXISTS (SELECT 1 FROM pg_class WHERE oid = r.rollup_table) THEN
        EXECUTE format('DROP TABLE %s', r.rollup_table);
    END IF;
END $$;
COMMENT ON FUNCTION iotstream.drop_rollup(text, boolean) IS 'Stops a rollup and drops its table (unless keep_table).';

-- rules: superusers define them; their statement names the table by
-- placeholder and is planned as the table's owner
CREATE OR REPLACE FUNCTION iotstream._rule_sql(
    source_table regclass, value_column text, key_columns text[], detector text,
    INOUT params jsonb, window_size interval, filter text, OUT eval_sql text)
LANGUAGE plpgsql AS $$
DECLARE
    tcol name := iotstream._time_column(source_table);
    keyjson text;
    keylist text;
    keytail text;
    cond text;
    h text := 'See the detector table under "Detectors" in docs/detect.md.';
    origin text := quote_literal('2000-01-01 00:00:00+00');
    w text := quote_literal(window_size);
    -- the table by placeholder: whoever evaluates the rule names it by OID
    src text := '"@iotstream.source@"';
BEGIN
    PERFORM iotstream._check_columns(source_table, ARRAY[value_column], 'value_column', true);
    PERFORM iotstream._check_columns(source_table, key_columns, 'key_columns', false);
    PERFORM iotstream._check_interval(window_size, 'window', false);
    IF params IS NULL OR jsonb_typeof(params) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'params must be a JSON object', HINT = 'Pass for example ''{"threshold": 100, "min_count": 5}''.';
    END IF;
    keyjson := CASE WHEN cardinality(key_columns) = 0 THEN '''{}''::jsonb'
               ELSE 'jsonb_build_object(' || (SELECT string_agg(format('%L, %I', k, k), ', ') FROM unnest(key_columns) k) || ')' END;
    keylist := (SELECT coalesce(string_agg(format('%I, ', k), ''), '') FROM unnest(key_columns) k);
    -- The queries rules.c reads row by row return their fixed columns
    -- first, then the key columns, bytewise-collated, and sort by position:
    -- the sort compares columns at known offsets, with no NULL and no
    -- extra sort column, and rules.c spells a key as JSON only when it
    -- changes.
    keytail := (SELECT coalesce(string_agg(format(', %I%s AS %I', k, CASE WHEN a.attcollation <> 0 THEN ' COLLATE "C"' ELSE '' END, k), '' ORDER BY o), '')
                   FROM unnest(key_columns) WITH ORDINALITY u(k, o)
                   JOIN pg_attribute a ON a.attrelid = source_table AND a.attname = u.k);
    cond := format('%I >= $1 AND %I < $2 AND %I IS NOT NULL', tcol, tcol, value_column);
    IF filter IS NOT NULL THEN
        cond := cond || ' AND (' || filter || ')';
    END IF;

    CASE detector
    WHEN 'threshold_count' THEN
        params := params || jsonb_build_object(
            'threshold', iotstream._param(params, 'threshold', NULL, '-Infinity', 'Infinity', 'threshold_count needs {"threshold": t, "min_count": n}: windows with at least n values above t.'),
            'min_count', iotstream._param(params, 'min_count', 1, 1, 1e9, 'min_count is the number of values above the threshold that flags a window (at least 1).'));
        eval_sql := format('SELECT %s AS key, w AS window_start, w + %s::interval AS window_end, NULL::timestamptz AS event_time,'
                           ' c::float8 AS value, c::float8 AS score FROM (SELECT %sdate_bin(%s, %I, %s) AS w,'
                           ' iotstream.threshold_count(%I::float8, %s) AS c FROM %s WHERE %s GROUP BY %sw) s'
                           ' WHERE c >= %s ORDER BY 2, 1',
                           keyjson, w, keylist, w, tcol, origin, value_column, params->'threshold',
                           src, cond, keylist, params->'min_count');
    WHEN 'zscore' THEN
        params := params || jsonb_build_object(
            'threshold', iotstream._param(params, 'threshold', 3, 0, 'Infinity', 'threshold is the |z| of a window''s mean against the means of the key''s previous windows that flags it.'),
            'history', iotstream._param(params, 'history', 10, 2, 100000, 'history is the number of previous windows the mean is compared with (at least 2).'),
            'min_history', iotstream._param(params, 'min_history', 3, 2, 100000, 'min_history is how many previous windows must exist before a window can be flagged.'));
        -- each key's window means, in order: rules.c compares each with the
        -- key's previous windows (its saved state)
        eval_sql := format('SELECT w AS grp, w + %s::interval AS grp_end, avg(%I::float8) AS value%s'
                           ' FROM (SELECT *, date_bin(%s, %I, %s) AS w FROM %s WHERE %s) s'
                           ' GROUP BY %sw ORDER BY %s1',
                           w, value_column, keytail, w, tcol, origin, src, cond, keylist,
                           iotstream._key_positions(key_columns, 3));
    WHEN 'mad' THEN
        params := params || jsonb_build_object(
            'threshold', iotstream._param(params, 'threshold', 3.5, 0, 'Infinity', 'threshold is the |modified z-score| against the window''s values that flags a value (3.5 by default).'),
            'min_count', iotstream._param(params, 'min_count', 5, 3, 1e9, 'min_count is the fewest values a window needs before its values are scored (at least 3).'));
        eval_sql := format('SELECT date_bin(%s, %I, %s) AS grp, date_bin(%s, %I, %s) + %s::interval AS grp_end,'
                           ' %I AS ts, %I::float8 AS value%s FROM %s WHERE %s ORDER BY %s1, 3, 4',
                           w, tcol, origin, w, tcol, origin, w, tcol, value_column, keytail, src, cond,
                           iotstream._key_positions(key_columns, 4));
    WHEN 'spike_dip', 'change_point', 'ewma', 'cusum' THEN
        IF detector IN ('spike_dip', 'change_point') THEN
            params := params || jsonb_build_object(
                'confidence', iotstream._param(params, 'confidence', 99, 1, 100, 'confidence is a percentage between 1 and 100.'),
                'history_size', iotstream._param(params, 'history_size', 100, 2, 100000, 'history_size is the number of previous values a value is compared with (at least 2).'));
            IF detector = 'spike_dip' THEN
                IF coalesce(params->>'mode', 'spikesanddips') NOT IN ('spikes', 'dips', 'spikesanddips') THEN
                    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                        MESSAGE = format('params.mode must be "spikes", "dips" or "spikesanddips", not %s', params->'mode'),
                        HINT = 'mode chooses which tail of the p-value flags a value.';
                END IF;
                params := params || jsonb_build_object('mode', coalesce(params->>'mode', 'spikesanddips'));
            END IF;
        ELSIF detector = 'ewma' THEN
            params := params || jsonb_build_object(
                'lambda', iotstream._param(params, 'lambda', 0.2, 1e-9, 1, 'lambda is the EWMA weight, in (0, 1].'),
                'L', iotstream._param(params, 'L', 3, 1e-9, 'Infinity', 'L is the width of the control limits in sigmas.'),
                'warmup', iotstream._param(params, 'warmup', 30, 2, 1e9, 'warmup is the number of values mu and sigma are estimated from (at least 2).'));
            IF (params ? 'mu') <> (params ? 'sigma') THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = 'params needs both mu and sigma, or neither',
                    HINT = 'Without them the chart estimates both from the first warmup values of each key.';
            END IF;
            IF params ? 'mu' THEN
                PERFORM iotstream._param(params, 'mu', NULL, '-Infinity', 'Infinity', h);
                PERFORM iotstream._param(params, 'sigma', NULL, 0, 'Infinity', h);
            END IF;
        ELSE
            params := params || jsonb_build_object(
                'target', iotstream._param(params, 'target', NULL, '-Infinity', 'Infinity', 'cusum needs {"target": mean, "k": slack, "h": limit} in the value''s units.'),
                'k', iotstream._param(params, 'k', NULL, 0, 'Infinity', 'k is the slack per value, in the value''s units (often half the shift to detect).'),
                'h', iotstream._param(params, 'h', NULL, 0, 'Infinity', 'h is the decision limit, in the value''s units (often 4 to 5 standard deviations).'));
        END IF;
        eval_sql := format('SELECT %I AS ts, %I::float8 AS value%s FROM %s WHERE %s ORDER BY %s1, 2',
                           tcol, value_column, keytail, src, cond, iotstream._key_positions(key_columns, 2));
    ELSE
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('unknown detector %L', detector),
            HINT = 'Use threshold_count, zscore, mad, ewma, cusum, spike_dip or change_point.';
    END CASE;

    -- a bad filter fails here, not in a worker; planned as the table's
    -- owner, who runs it (constant folding may call its functions)
    BEGIN
        PERFORM iotstream._as_owner(source_table,
            format('SELECT to_jsonb(q) FROM (%s LIMIT 0) q', iotstream._named(eval_sql, source_table)), now(), now());
        -- the range above may prune every partition, and the filter with
        -- them: its expression alone, over a row of the table's columns,
        -- initialized (so its functions' privileges are checked) but run
        -- on no row
        IF filter IS NOT NULL THEN
            PERFORM iotstream._as_owner(source_table,
                format('SELECT to_jsonb(q) FROM (SELECT (%s)::boolean AS f FROM (VALUES (%s)) t(%s) WHERE random() < 0) q',
                       filter,
                       (SELECT string_agg(format('NULL::%s', format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY a.attnum)
                          FROM pg_catalog.pg_attribute a WHERE a.attrelid = source_table AND a.attnum > 0 AND NOT a.attisdropped),
                       (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
                          FROM pg_catalog.pg_attribute a WHERE a.attrelid = source_table AND a.attnum > 0 AND NOT a.attisdropped)));
        END IF;
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('the rule does not compile: %s', SQLERRM),
            HINT = 'Check filter: it is a boolean SQL expression over the source table''s columns.';
    END;
END $$;
COMMENT ON FUNCTION iotstream._rule_sql(regclass, text, text[], text, jsonb, interval, text) IS
    'Internal: checks a rule''s detector and params (filling in defaults) and builds the query that evaluates [$1, $2).';

CREATE OR REPLACE FUNCTION iotstream.create_rule(
    name         text,
    source_table regclass,
    value_column text,
    key_columns  text[],
    detector     text,
    params       jsonb DEFAULT '{}',
    "window"     interval DEFAULT '1 minute',
    filter       text DEFAULT NULL,
    lateness     interval DEFAULT '30 seconds',
    severity     text DEFAULT 'warning',
    alert_topic  text DEFAULT NULL)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    r record;
    id int;
BEGIN
    PERFORM iotstream._require_superuser('create a rule');
    IF name IS NULL OR name !~ '^[A-Za-z0-9_.-]{1,63}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_name',
            MESSAGE = format('invalid rule name %L', name),
            HINT = 'Use up to 63 letters, digits, dots, dashes and underscores.';
    END IF;
    IF EXISTS (SELECT 1 FROM iotstream.rules x WHERE x.name = create_rule.name) THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('rule %L already exists', create_rule.name),
            HINT = 'Change it with iotstream.alter_rule() or drop it with iotstream.drop_rule().';
    END IF;
    PERFORM iotstream._check_interval(lateness, 'lateness', true);
    IF severity IS NULL OR severity NOT IN ('info', 'warning', 'critical') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('severity must be info, warning or critical, not %s', coalesce(severity, 'NULL')),
            HINT = 'severity is copied to every anomaly the rule raises.';
    END IF;
    IF alert_topic IS NOT NULL AND alert_topic !~ '^[A-Za-z0-9._-]{1,249}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid alert topic %L', alert_topic),
            HINT = 'A Kafka topic name has up to 249 letters, digits, dots, dashes and underscores.';
    END IF;
    r := iotstream._rule_sql(source_table, value_column, key_columns, detector, params, "window", filter);
    INSERT INTO iotstream.rules (name, source_table, value_column, key_columns, detector, params, window_size,
                                 filter, lateness, severity, alert_topic, eval_sql)
    VALUES (name, source_table, value_column, key_columns, detector, r.params, "window",
            filter, lateness, severity, alert_topic, r.eval_sql)
    RETURNING rule_id INTO id;
    INSERT INTO iotstream.rule_progress (rule_id) VALUES (id);
    INSERT INTO iotstream.watermarks (relid) VALUES (source_table) ON CONFLICT DO NOTHING;
    PERFORM iotstream._ensure_time_index(source_table);
    RETURN id;
END $$;
COMMENT ON FUNCTION iotstream.create_rule(text, regclass, text, text[], text, jsonb, interval, text, interval, text, text) IS
    'Defines a detection rule on a stream table, evaluated by the table''s detection worker as the watermark passes each window end (each row, for row detectors) plus lateness. Detectors: threshold_count, zscore, mad (per window); ewma, cusum, spike_dip, change_point (per row in event-time order).';

CREATE OR REPLACE FUNCTION iotstream.enable_rule(name text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r iotstream.rules;
BEGIN
    PERFORM iotstream._require_superuser('enable a rule');
    r := iotstream._rule(name);
    UPDATE iotstream.rules SET enabled = true WHERE rule_id = r.rule_id;
END $$;
COMMENT ON FUNCTION iotstream.enable_rule(text) IS 'Resumes a rule; windows closed while it was disabled are evaluated when its detection worker next runs.';

CREATE OR REPLACE FUNCTION iotstream.disable_rule(name text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r iotstream.rules;
BEGIN
    PERFORM iotstream._require_superuser('disable a rule');
    r := iotstream._rule(name);
    UPDATE iotstream.rules SET enabled = false WHERE rule_id = r.rule_id;
END $$;
COMMENT ON FUNCTION iotstream.disable_rule(text) IS 'Pauses a rule; its progress is kept.';

CREATE OR REPLACE FUNCTION iotstream.drop_rule(name text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r iotstream.rules;
BEGIN
    PERFORM iotstream._require_superuser('drop a rule');
    r := iotstream._rule(name);
    DELETE FROM iotstream.rules WHERE rule_id = r.rule_id;
END $$;
COMMENT ON FUNCTION iotstream.drop_rule(text) IS 'Drops a rule and its progress; its anomalies stay.';

CREATE OR REPLACE FUNCTION iotstream.alter_rule(
    name        text,
    params      jsonb DEFAULT NULL,
    "window"    interval DEFAULT NULL,
    filter      text DEFAULT NULL,
    lateness    interval DEFAULT NULL,
    severity    text DEFAULT NULL,
    alert_topic text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    old iotstream.rules;
    r record;
BEGIN
    PERFORM iotstream._require_superuser('alter a rule');
    old := iotstream._rule(name);
    IF lateness IS NOT NULL THEN
        PERFORM iotstream._check_interval(lateness, 'lateness', true);
    END IF;
    IF severity IS NOT NULL AND severity NOT IN ('info', 'warning', 'critical') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('severity must be info, warning or critical, not %s', severity),
            HINT = 'severity is copied to every anomaly the rule raises.';
    END IF;
    r := iotstream._rule_sql(old.source_table, old.value_column, old.key_columns, old.detector,
                             coalesce(old.params || alter_rule.params, old.params),
                             coalesce("window", old.window_size), coalesce(filter, old.filter));
    UPDATE iotstream.rules x
       SET params = r.params, window_size = coalesce("window", old.window_size),
           filter = coalesce(alter_rule.filter, old.filter), lateness = coalesce(alter_rule.lateness, old.lateness),
           severity = coalesce(alter_rule.severity, old.severity),
           alert_topic = coalesce(alter_rule.alert_topic, old.alert_topic), eval_sql = r.eval_sql
     WHERE x.rule_id = old.rule_id;
    -- detector state built with other parameters no longer applies
    IF r.params IS DISTINCT FROM old.params THEN
        DELETE FROM iotstream.rule_state WHERE rule_id = old.rule_id;
    END IF;
END $$;
COMMENT ON FUNCTION iotstream.alter_rule(text, jsonb, interval, text, interval, text, text) IS
    'Changes a rule; params are merged into the current ones. New settings apply from the next window; row detectors restart their state when params change.';

-- _evaluate runs a rule as the owner of its table: one argument more
DROP FUNCTION iotstream._evaluate(text, jsonb, text, interval, timestamptz, timestamptz);
CREATE FUNCTION iotstream._evaluate(detector text, params jsonb, eval_sql text, window_size interval,
                                    from_time timestamptz, to_time timestamptz, source_table regclass)
RETURNS TABLE (key jsonb, window_start timestamptz, window_end timestamptz, event_time timestamptz,
               value float8, score float8)
AS 'MODULE_PATHNAME', 'iotstream_evaluate' LANGUAGE C;
COMMENT ON FUNCTION iotstream._evaluate(text, jsonb, text, interval, timestamptz, timestamptz, regclass) IS
    'Internal: runs a rule''s evaluation over [from_time, to_time) with fresh detector state, the code path the workers use, as the owner of source_table, and returns the anomalies.';

CREATE OR REPLACE FUNCTION iotstream.backtest_rule(name text, from_time timestamptz, to_time timestamptz)
RETURNS TABLE (key jsonb, window_start timestamptz, window_end timestamptz, event_time timestamptz,
               value float8, score float8)
LANGUAGE plpgsql AS $$
DECLARE
    r iotstream.rules;
BEGIN
    PERFORM iotstream._require_superuser('backtest a rule');
    -- a quoted literal resolves to this text version: a JSON object is a definition
    IF ltrim(name) LIKE '{%' THEN
        RETURN QUERY SELECT * FROM iotstream.backtest_rule(name::jsonb, from_time, to_time);
        RETURN;
    END IF;
    r := iotstream._rule(name);
    RETURN QUERY SELECT * FROM iotstream._evaluate(r.detector, r.params, r.eval_sql, r.window_size, from_time, to_time,
                                                   r.source_table);
END $$;
COMMENT ON FUNCTION iotstream.backtest_rule(text, timestamptz, timestamptz) IS
    'Runs rule name over the stored rows of [from_time, to_time) and returns the anomalies it would raise, writing nothing.';

CREATE OR REPLACE FUNCTION iotstream.backtest_rule(definition jsonb, from_time timestamptz, to_time timestamptz)
RETURNS TABLE (key jsonb, window_start timestamptz, window_end timestamptz, event_time timestamptz,
               value float8, score float8)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    PERFORM iotstream._require_superuser('backtest a rule');
    IF definition IS NULL OR NOT definition ?& ARRAY['source_table', 'value_column', 'detector'] THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'a rule definition needs source_table, value_column and detector',
            HINT = 'Pass the arguments of create_rule() as JSON, e.g. {"source_table": "readings", "value_column": "value", "key_columns": ["sensor_id"], "detector": "threshold_count", "params": {"threshold": 100, "min_count": 5}}.';
    END IF;
    r := iotstream._rule_sql((definition->>'source_table')::regclass, definition->>'value_column',
                             coalesce(ARRAY(SELECT jsonb_array_elements_text(definition->'key_columns')), '{}'),
                             definition->>'detector', coalesce(definition->'params', '{}'),
                             coalesce((definition->>'window')::interval, '1 minute'), definition->>'filter');
    RETURN QUERY SELECT * FROM iotstream._evaluate(definition->>'detector', r.params, r.eval_sql,
                                                   coalesce((definition->>'window')::interval, '1 minute'), from_time, to_time,
                                                   (definition->>'source_table')::regclass);
END $$;
COMMENT ON FUNCTION iotstream.backtest_rule(jsonb, timestamptz, timestamptz) IS
    'Runs a rule given as JSON (create_rule''s arguments) over the stored rows of [from_time, to_time) and returns the anomalies, writing nothing. Use it to tune params.';

-- ------------------------------------------------------------ exports

-- _export_write_files runs the export's query as the owner of its table:
-- one argument more (revoked from PUBLIC with the other internal functions
-- at the end).  Export folders are percent-encoded (_path_component).
DROP FUNCTION iotstream._export_write_files(text, text, text, text, text, jsonb, jsonb);
CREATE FUNCTION iotstream._export_write_files(
    query text, destination text, folder text, file_id text, credential text,
    writer_options jsonb, upload_options jsonb, source_table regclass,
    OUT files text[], OUT rows bigint, OUT bytes bigint)
AS 'MODULE_PATHNAME', 'export_write_files' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iotstream._export_write_files(text, text, text, text, text, jsonb, jsonb, regclass) IS
    'Internal: writes the rows of query, run as the owner of source_table, as Parquet files folder/part-NNNNN-file_id.parquet under destination, cut at target_file_size; all become visible only at the end. folder and file_id must stay below destination.';

CREATE FUNCTION iotstream._path_component(name text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    out text := '';
    c text;
    b bytea;
    i int := 0;
BEGIN
    FOREACH c IN ARRAY regexp_split_to_array(name, '') LOOP
        i := i + 1;
        IF c ~ '^[A-Za-z0-9_-]$' OR (c = '.' AND i > 1) THEN
            out := out || c;
        ELSE
            b := convert_to(c, 'UTF8');
            FOR j IN 0 .. length(b) - 1 LOOP
                out := out || '%' || upper(lpad(to_hex(get_byte(b, j)), 2, '0'));
            END LOOP;
        END IF;
    END LOOP;
    RETURN out;
END $$;
COMMENT ON FUNCTION iotstream._path_component(text) IS 'Internal: a name as one path component that cannot leave its folder (percent-encoded).';

-- a period's summary runs as the table's owner; folders are percent-encoded
CREATE OR REPLACE FUNCTION iotstream._period_summary(relid regclass, time_column name, from_ts timestamptz, to_ts timestamptz,
    OUT rows bigint, OUT checksum bigint, OUT min_time timestamptz, OUT max_time timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    tc text;
    j jsonb;
BEGIN
    -- a sum of row hashes (numeric, folded into bigint): independent of row
    -- order, changed by any insert, update or delete
    -- timestamp and date columns hold UTC wall-clock times
    IF (SELECT a.atttypid FROM pg_catalog.pg_attribute a WHERE a.attrelid = relid AND a.attname = time_column)
       = 'timestamptz'::regtype THEN
        tc := format('%I', time_column);
    ELSE
        tc := format('(%I::timestamp AT TIME ZONE ''UTC'')', time_column);
    END IF;
    -- the table's code (casts, output functions) runs as its owner
    j := iotstream._as_owner(relid,
        format('SELECT jsonb_build_object(''rows'', count(*), ''checksum'', coalesce(sum(hashtextextended(t::text, 0)) %% 9223372036854775807, 0)::bigint, '
               '''min_time'', min(%s), ''max_time'', max(%s)) FROM %s t WHERE %s',
               tc, tc, relid, iotstream._export_range(relid, time_column, from_ts, to_ts)));
    rows := (j->>'rows')::bigint;
    checksum := (j->>'checksum')::bigint;
    min_time := (j->>'min_time')::timestamptz;
    max_time := (j->>'max_time')::timestamptz;
END $$;
COMMENT ON FUNCTION iotstream._period_summary(regclass, name, timestamptz, timestamptz) IS
    'Internal: row count, content checksum (sum of row hashes) and event-time range of one period.';

CREATE OR REPLACE FUNCTION iotstream._export_period(e iotstream.exports, time_column name, from_ts timestamptz,
    to_ts timestamptz, version int, old iotstream.export_log)
RETURNS iotstream.export_log LANGUAGE plpgsql AS $$
DECLARE
    l iotstream.export_log;
    sig bigint;
    folder text;
    w record;
    upload_keys text[] := iotstream._export_upload_keys();
    writer_opts jsonb;
    upload_opts jsonb;
BEGIN
    l.export := e.name;
    l.period_start := from_ts;
    l.period_end := to_ts;
    l.version := version;
    l.started_at := clock_timestamp();
    -- the signal is read before the rows: a change after it is seen next time
    sig := iotstream._change_signal(e.source_table, from_ts, to_ts);
    SELECT * INTO l.rows, l.checksum, l.min_time, l.max_time
      FROM iotstream._period_summary(e.source_table, time_column, from_ts, to_ts);
    l.change_signal := sig;
    l.files := '{}';
    l.bytes := 0;
    IF l.rows > 0 THEN
        folder := format('%s/date=%s',
                         iotstream._path_component((SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid = e.source_table)),
                         to_char(from_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD'));
        IF to_ts - from_ts < interval '1 day' THEN
            folder := folder || to_char(from_ts AT TIME ZONE 'UTC', '/"hour="HH24');
        END IF;
        IF to_ts - from_ts < interval '1 hour' THEN
            folder := folder || to_char(from_ts AT TIME ZONE 'UTC', '/"minute="MI');
        END IF;
        SELECT coalesce(jsonb_object_agg(key, value), '{}') INTO writer_opts
          FROM jsonb_each(e.options) WHERE key <> ALL (upload_keys);
        SELECT coalesce(jsonb_object_agg(key, value), '{}') INTO upload_opts
          FROM jsonb_each(e.options) WHERE key = ANY (upload_keys);
        writer_opts := writer_opts || jsonb_build_object('compression', e.compression,
            'metadata', coalesce(writer_opts->'metadata', '{}') || jsonb_build_object(
                'iotstream.source_table', e.source_table::text,
                'iotstream.export', e.name,
                'iotstream.period_start', to_char(from_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                'iotstream.period_end', to_char(to_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                'iotstream.export_version', version::text));
        upload_opts := upload_opts || jsonb_build_object('target_file_size', e.target_file_size);
        SELECT * INTO w FROM iotstream._export_write_files(
            format('SELECT * FROM %s WHERE %s', e.source_table,
                   iotstream._export_range(e.source_table, time_column, from_ts, to_ts)),
            -- named by export, period and version: a rerun of a rolled-back
            -- attempt overwrites its files instead of duplicating them
            e.destination, folder, md5(format('%s|%s|%s', e.name, from_ts, version))::uuid::text,
            e.credential, writer_opts, upload_opts, e.source_table);
        l.files := w.files;
        l.rows := w.rows;
        l.bytes := w.bytes;
    END IF;
    l.status := 'exported';
    l.finished_at := clock_timestamp();
    IF old.id IS NOT NULL THEN
        UPDATE iotstream.export_log x SET status = 'replacing' WHERE x.id = old.id;
    END IF;
    INSERT INTO iotstream.export_log (export, period_start, period_end, version, files, rows, bytes, min_time,
                                      max_time, checksum, change_signal, status, started_at, finished_at)
    VALUES (l.export, l.period_start, l.period_end, l.version, l.files, l.rows, l.bytes, l.min_time,
            l.max_time, l.checksum, l.change_signal, l.status, l.started_at, l.finished_at)
    RETURNING * INTO l;
    RETURN l;
END $$;
COMMENT ON FUNCTION iotstream._export_period(iotstream.exports, name, timestamptz, timestamptz, int, iotstream.export_log) IS
    'Internal: writes one period''s files and records the new version in the ledger.';

-- ------------------------------------------------------------ definitions

-- 0.1.0 stored each rule's statement with its table's name in it, and ran
-- it as the superuser.  0.2.0 names the table by placeholder and runs the
-- statement as the table's owner: each rule's statement is built again by
-- 0.2.0's _rule_sql from the rule's definition (which also plans it as the
-- owner).  A rule that cannot be built stops the update, rather than
-- leaving a statement 0.2.0's workers would run by name.
DO $$
DECLARE
    r iotstream.rules;
    stmt text;
BEGIN
    FOR r IN SELECT * FROM iotstream.rules ORDER BY rule_id LOOP
        BEGIN
            stmt := (iotstream._rule_sql(r.source_table, r.value_column, r.key_columns, r.detector, r.params,
                                         r.window_size, r.filter)).eval_sql;
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION USING
                ERRCODE = 'object_not_in_prerequisite_state',
                MESSAGE = format('rule %L cannot be rebuilt for iotstream 0.2.0: %s', r.name, SQLERRM),
                DETAIL = format('0.2.0 runs a rule''s statement as the owner of its table, %s.', r.source_table),
                HINT = 'Give the table''s owner what the rule''s filter needs, or drop the rule with iotstream.drop_rule(), then update again.';
        END;
        UPDATE iotstream.rules x SET eval_sql = stmt WHERE x.rule_id = r.rule_id;
    END LOOP;
END $$;

-- A rollup's statements are those 0.2.0's create_rollup writes: the fold
-- (upsert_sql) and the recomputation (refresh_sql) are built again from the
-- definition, with the time column the 0.1.0 statement named; the batch
-- insert (delta_sql) keeps its column types and gets the delta table's
-- placeholder in place of the name 0.1.0 wrote, iotstream._rollup_delta_<id>.
-- Both tables go to the owner of the source table, who runs the statements.
DO $$
DECLARE
    r iotstream.rollups;
    old_insert text;
    tcol text;
    keys text;
    ukeys text;
    aggs text;
    uaggs text;
    sets text;
    allcols text;
    col text;
BEGIN
    FOR r IN SELECT * FROM iotstream.rollups ORDER BY rollup_id LOOP
        old_insert := format('INSERT INTO iotstream.%I VALUES (', '_rollup_delta_' || r.rollup_id);
        -- 0.1.0: ... FROM <source> WHERE <time column> >= $1 AND <time column> < $2 GROUP BY 1, 2, ...
        tcol := substring(r.refresh_sql FROM ' WHERE (.+) >= \$1 AND \1 < \$2 GROUP BY [0-9, ]+$');
        IF left(r.delta_sql, length(old_insert)) IS DISTINCT FROM old_insert OR tcol IS NULL THEN
            RAISE EXCEPTION USING
                ERRCODE = 'object_not_in_prerequisite_state',
                MESSAGE = format('rollup %L cannot be rebuilt for iotstream 0.2.0: its statements are not those 0.1.0 wrote', r.name),
                HINT = 'Drop it with iotstream.drop_rollup(name, keep_table => true), update, and create it again.';
        END IF;
        keys := '';
        ukeys := '';
        FOREACH col IN ARRAY r.key_columns LOOP
            keys := keys || format('%I, ', col);
            ukeys := ukeys || format('u.%I, ', col);
        END LOOP;
        ukeys := ukeys || 'u.bucket_start';
        aggs := '';
        uaggs := '';
        sets := '';
        FOREACH col IN ARRAY r.value_columns LOOP
            aggs := aggs || format(', iotstream.stats_agg(%I::float8)', col);
            uaggs := uaggs || format(', iotstream.rollup(u.%I)', col);
            sets := sets || format('%s%I = CASE WHEN r.%I IS NULL THEN excluded.%I WHEN excluded.%I IS NULL THEN r.%I'
                                   ' ELSE iotstream.stats_combine(r.%I, excluded.%I) END',
                                   CASE WHEN sets = '' THEN '' ELSE ', ' END, col, col, col, col, col, col, col);
        END LOOP;
        allcols := keys || 'bucket_start' || (SELECT string_agg(format(', %I', v), '') FROM unnest(r.value_columns) v);
        UPDATE iotstream.rollups x SET
            delta_sql = 'INSERT INTO "@iotstream.delta@" VALUES (' || substr(r.delta_sql, length(old_insert) + 1),
            upsert_sql = format('WITH d AS (DELETE FROM %s RETURNING *)'
                   ' INSERT INTO %s AS r (%s) SELECT %s%s FROM d, unnest(%s) u(%s) GROUP BY %s'
                   ' ON CONFLICT (%s) DO UPDATE SET %s',
                   '"@iotstream.delta@"', '"@iotstream.rollup@"', allcols, ukeys, uaggs,
                   (SELECT string_agg('d.' || quote_ident(x), ', ') FROM unnest(r.key_columns || 'bucket_start'::text || r.value_columns) x),
                   allcols, ukeys,
                   keys || 'bucket_start', sets),
            refresh_sql = format('INSERT INTO %s (%s) SELECT %sdate_bin(%L, %s, %L)%s FROM %s WHERE %s >= $1 AND %s < $2 GROUP BY %s',
                   '"@iotstream.rollup@"', allcols, keys, r.bucket, tcol, '2000-01-01 00:00:00+00', aggs,
                   '"@iotstream.source@"', tcol, tcol,
                   (SELECT string_agg(g::text, ', ') FROM generate_series(1, cardinality(r.key_columns) + 1) g))
         WHERE x.rollup_id = r.rollup_id;
        EXECUTE format('ALTER TABLE %s OWNER TO %s', r.rollup_table,
                       (SELECT c.relowner::regrole FROM pg_catalog.pg_class c WHERE c.oid = r.source_table));
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = r.delta_table) THEN
            EXECUTE format('ALTER TABLE %s OWNER TO %s', r.delta_table,
                           (SELECT c.relowner::regrole FROM pg_catalog.pg_class c WHERE c.oid = r.source_table));
        END IF;
    END LOOP;
END $$;

-- Privileges: internal functions (named _*) are not for PUBLIC.  The few
-- that the public API, views and row policies reach as the calling role
-- are granted back.  The model is described in README.md, "Privileges".
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'iotstream'::regnamespace AND p.proname LIKE '\_%' AND p.prokind = 'f'
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END $$;

GRANT EXECUTE ON FUNCTION
    iotstream._check_partition_interval(interval, regtype),   -- create_stream_table
    iotstream._convert_to_partitioned(name, name, name),      -- create_stream_table (adoption)
    iotstream._settings_put(regclass, name, interval, int, interval, text, interval, interval),
    iotstream._settings_delete(regclass),                     -- they check the caller owns the table
    iotstream._require_pg_cron(),                             -- schedule_maintenance
    iotstream._require_superuser(text),                       -- the errors of superuser-only functions
    iotstream._export_require_superuser(text),
    iotstream._partitions_or_none(regclass),                  -- the stream_tables view
    iotstream._worker_stats(),                                -- source_status: filtered by the caller's rights
    iotstream._may_read_source(text, name)                    -- the dead letters' row policy
TO PUBLIC;

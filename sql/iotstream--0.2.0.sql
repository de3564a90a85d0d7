-- iotstream install script, assembled by the Makefile from sql/install/*.sql.
\echo Use "CREATE EXTENSION iotstream" to load this file. \quit

COMMENT ON SCHEMA iotstream IS 'iotstream: Kafka/Event Hubs ingestion, anomaly detection and Parquet export for time-partitioned stream tables';

-- Raises a clear error when pg_cron, which scheduling functions need, is
-- missing from this database.
CREATE FUNCTION iotstream._require_pg_cron() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION USING
            ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = 'pg_cron is not installed in this database',
            DETAIL = 'Scheduled jobs in iotstream run through pg_cron.',
            HINT = format('Add pg_cron to shared_preload_libraries, set cron.database_name = %L, restart, and run CREATE EXTENSION pg_cron. Or call the function you wanted to schedule from your own scheduler.',
                          current_database());
    END IF;
END $$;
COMMENT ON FUNCTION iotstream._require_pg_cron() IS 'Internal: errors with a hint when pg_cron is not installed in this database.';

-- Every role may call the public API: its functions check who may do what
-- (see README.md, "Privileges"); internal functions (named _*) are revoked
-- from PUBLIC at the end of the script (90_privileges.sql).
GRANT USAGE ON SCHEMA iotstream TO PUBLIC;
-- Stream tables: range-partitioned on one time column, partitions on demand.

CREATE TABLE iotstream.stream_table_settings (
    relid              regclass PRIMARY KEY,
    time_column        name NOT NULL,
    partition_interval interval NOT NULL,
    premake            int NOT NULL CHECK (premake BETWEEN 0 AND 1000),
    retention          interval CHECK (retention > interval '0'),
    retention_mode     text NOT NULL DEFAULT 'drop' CHECK (retention_mode IN ('drop', 'detach')),
    max_past           interval CHECK (max_past >= interval '0'),
    max_future         interval CHECK (max_future > interval '0'),
    created_at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE iotstream.stream_table_settings IS
    'One row per stream table. Rows older than now() - max_past or newer than now() + max_future are rejected (NULL: unbounded).';
SELECT pg_catalog.pg_extension_config_dump('iotstream.stream_table_settings', '');

-- Everyone may read the settings.  Only the API writes them, through
-- _settings_put and _settings_delete, which check that the caller acts for
-- the table's owner (src/stream_table_settings.c).
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

-- Whoever writes a row, it must name a table that can be a stream table:
-- partitioned by range on its time column alone, no default partition, an
-- interval of whole minutes or months.  Checked again when a backend loads it.
CREATE FUNCTION iotstream._stream_table_settings_check() RETURNS trigger
AS 'MODULE_PATHNAME', 'stream_table_settings_check' LANGUAGE C;
COMMENT ON FUNCTION iotstream._stream_table_settings_check() IS
    'Internal: rejects settings rows for tables that cannot be stream tables (not range-partitioned on the time column alone, a default partition, a bad interval).';
CREATE TRIGGER settings_check
    BEFORE INSERT OR UPDATE ON iotstream.stream_table_settings
    FOR EACH ROW EXECUTE FUNCTION iotstream._stream_table_settings_check();

CREATE FUNCTION iotstream.stream_table_settings_changed() RETURNS trigger
AS 'MODULE_PATHNAME' LANGUAGE C;
COMMENT ON FUNCTION iotstream.stream_table_settings_changed() IS
    'Internal: turns a change of settings into a relcache invalidation, so every backend''s partition cache reloads.';
CREATE TRIGGER settings_changed
    AFTER INSERT OR UPDATE OR DELETE ON iotstream.stream_table_settings
    FOR EACH ROW EXECUTE FUNCTION iotstream.stream_table_settings_changed();

CREATE FUNCTION iotstream.ensure_partition(stream_table regclass, ts timestamptz)
RETURNS regclass AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION iotstream.ensure_partition(regclass, timestamptz) IS
    'The partition that holds ts, created on demand. Rejects ts outside the table''s max_past/max_future bounds, as ingestion does.';

CREATE FUNCTION iotstream.ensure_partitions(stream_table regclass, "from" timestamptz, "to" timestamptz)
RETURNS int AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION iotstream.ensure_partitions(regclass, timestamptz, timestamptz) IS
    'Creates the partitions of every period intersecting [from, to], ignoring bounds; returns how many were created.';

CREATE FUNCTION iotstream.partitions(stream_table regclass,
    OUT partition regclass, OUT range_start timestamptz, OUT range_end timestamptz)
RETURNS SETOF record AS 'MODULE_PATHNAME' LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION iotstream.partitions(regclass) IS
    'The partitions of a stream table in time order, with their [range_start, range_end) ranges (timestamp columns read as UTC).';

-- Validates a partition interval; raises with a hint when it is unusable.
CREATE FUNCTION iotstream._check_partition_interval(iv interval, time_type regtype)
RETURNS void LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    months int := extract(year FROM iv)::int * 12 + extract(month FROM iv)::int;
    fixed interval := iv - make_interval(months => months);
BEGIN
    IF iv IS NULL OR iv <= interval '0' OR (months > 0 AND fixed <> interval '0') THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid partition_interval %s', coalesce(iv::text, 'NULL')),
            DETAIL = 'A partition interval is a positive number of months, or a positive fixed length of days, hours and minutes, not both.',
            HINT = 'Use for example ''1 hour'', ''1 day'', ''7 days'' or ''1 month''.';
    END IF;
    IF months = 0 AND (fixed < interval '1 minute'
                       OR extract(epoch FROM fixed)::numeric % 60 <> 0) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid partition_interval %s', iv),
            DETAIL = 'Partitions are whole minutes long at least.',
            HINT = 'Use a multiple of one minute, such as ''15 minutes'' or ''1 hour''.';
    END IF;
    IF time_type = 'date'::regtype AND months = 0
       AND extract(epoch FROM fixed)::numeric % 86400 <> 0 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('partition_interval %s is finer than the date time column', iv),
            HINT = 'Use whole days for a date column, or make the column timestamptz.';
    END IF;
END $$;
COMMENT ON FUNCTION iotstream._check_partition_interval(interval, regtype) IS 'Internal: validates a partition interval.';

-- Turns an existing plain table into a stream table: the rows move into a
-- new partitioned table of the same name; the original is kept, renamed.
CREATE FUNCTION iotstream._convert_to_partitioned(nsp name, rel name, time_column name)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    old_name name := left(rel, 49) || '_unpartitioned';
    new_rel regclass;
    lo timestamptz;
    hi timestamptz;
    nulls bigint;
BEGIN
    EXECUTE format('LOCK TABLE %I.%I IN ACCESS EXCLUSIVE MODE', nsp, rel);
    EXECUTE format('SELECT min(%1$I)::timestamptz, max(%1$I)::timestamptz, count(*) FILTER (WHERE %1$I IS NULL) FROM %2$I.%3$I',
                   time_column, nsp, rel) INTO lo, hi, nulls;
    IF nulls > 0 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'not_null_violation',
            MESSAGE = format('table %I.%I has %s rows with a null %I', nsp, rel, nulls, time_column),
            HINT = 'Set or delete those rows first: every row of a stream table has an event time.';
    END IF;
    EXECUTE format('ALTER TABLE %I.%I RENAME TO %I', nsp, rel, old_name);
    BEGIN
        EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED INCLUDING INDEXES INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING COMMENTS) PARTITION BY RANGE (%I)',
                       nsp, rel, nsp, old_name, time_column);
    EXCEPTION WHEN feature_not_supported OR invalid_table_definition THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_table_definition',
            MESSAGE = format('cannot partition %I.%I on %I: %s', nsp, rel, time_column, SQLERRM),
            HINT = format('Every primary key and unique constraint of a stream table must include %I.', time_column);
    END;
    new_rel := format('%I.%I', nsp, rel)::regclass;
    EXECUTE format('ALTER TABLE %s OWNER TO %I', new_rel,
                   (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = format('%I.%I', nsp, old_name)::regclass));
    RETURN;
END $$;
COMMENT ON FUNCTION iotstream._convert_to_partitioned(name, name, name) IS 'Internal: replaces a plain table by a partitioned copy, keeping the original renamed.';

CREATE FUNCTION iotstream.create_stream_table(
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

CREATE FUNCTION iotstream.alter_stream_table(
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

CREATE FUNCTION iotstream.drop_stream_table(stream_table regclass, drop_table boolean DEFAULT false)
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

-- DROP TABLE of a stream table forgets its settings.
CREATE FUNCTION iotstream._on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM iotstream.stream_table_settings s
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND d.objid = s.relid::oid;
END $$;
COMMENT ON FUNCTION iotstream._on_sql_drop() IS 'Internal: forgets the settings of dropped stream tables.';
CREATE EVENT TRIGGER iotstream_sql_drop ON sql_drop EXECUTE FUNCTION iotstream._on_sql_drop();

CREATE FUNCTION iotstream.run_maintenance(for_table regclass DEFAULT NULL)
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

CREATE FUNCTION iotstream.schedule_maintenance(cron text DEFAULT '*/10 * * * *')
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

CREATE FUNCTION iotstream.unschedule_maintenance() RETURNS boolean
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

CREATE VIEW iotstream.stream_tables AS
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
GRANT SELECT ON iotstream.stream_tables TO PUBLIC;
-- Sources: Kafka / Event Hubs topics consumed into stream tables, exactly once.
--
-- The catalog is private (only superusers, the SQL API and the workers touch
-- it); users see iotstream.source_status with every secret masked.

CREATE TABLE iotstream.sources (
    source_id   serial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.-]{1,63}$'),
    brokers     text NOT NULL,
    topics      text[] NOT NULL CHECK (cardinality(topics) > 0),
    target      regclass NOT NULL,
    mapping     jsonb,
    options     jsonb NOT NULL DEFAULT '{}',   -- without secrets
    group_id    text NOT NULL,
    running     boolean NOT NULL DEFAULT false, -- the launcher keeps a worker for each running source
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE iotstream.sources IS 'Kafka sources. options holds librdkafka properties and iotstream settings; secrets live in iotstream.source_secrets.';

-- Secrets (sasl.password, Event Hubs connection strings): readable by superusers only.
CREATE TABLE iotstream.source_secrets (
    source_id   int PRIMARY KEY REFERENCES iotstream.sources ON DELETE CASCADE,
    properties  jsonb NOT NULL                 -- librdkafka properties that are secret
);
COMMENT ON TABLE iotstream.source_secrets IS 'Secret librdkafka properties of each source; never shown in views, logs or errors.';

-- The next offset to read per partition, written in the same transaction as
-- the rows read up to it: this is what makes ingestion exactly once.
CREATE TABLE iotstream.source_offsets (
    source_id      int NOT NULL REFERENCES iotstream.sources ON DELETE CASCADE,
    topic          text NOT NULL,
    partition      int NOT NULL,
    next_offset    bigint NOT NULL,
    high_watermark bigint,
    max_event_time timestamptz,       -- the newest event time stored from the partition
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, topic, partition)
);
COMMENT ON TABLE iotstream.source_offsets IS 'Per source and partition: the next offset to consume, committed with the rows; the last high watermark seen; and the newest event time stored (the partition''s watermark).';

-- Dedup keys seen within the horizon, per source.  No foreign key: a batch
-- stores thousands of keys, and a foreign key checks (and locks) the source
-- row for each one; a trigger forgets the keys of a source that goes.
CREATE TABLE iotstream.source_dedup (
    source_id   int NOT NULL,
    key_hash    bigint NOT NULL,
    seen_at     timestamptz NOT NULL,
    PRIMARY KEY (source_id, key_hash)
);
COMMENT ON TABLE iotstream.source_dedup IS 'Hashes of dedup keys ingested within each source''s horizon.';

CREATE FUNCTION iotstream._source_forget_dedup() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM iotstream.source_dedup d WHERE d.source_id = OLD.source_id;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION iotstream._source_forget_dedup() IS 'Internal: forgets the dedup keys of a deleted source.';
CREATE TRIGGER forget_dedup AFTER DELETE ON iotstream.sources
    FOR EACH ROW EXECUTE FUNCTION iotstream._source_forget_dedup();

CREATE TABLE iotstream.dead_letters (
    id          bigserial PRIMARY KEY,
    source      text NOT NULL,
    topic       text,
    partition   int,
    "offset"    bigint,
    key         bytea,
    payload     bytea,
    reason      text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON iotstream.dead_letters (source, received_at);
COMMENT ON TABLE iotstream.dead_letters IS 'Messages that could not be stored, with the reason; written in the same transaction as the batch they came in.';

REVOKE ALL ON iotstream.sources, iotstream.source_secrets, iotstream.source_offsets,
              iotstream.source_dedup, iotstream.dead_letters FROM PUBLIC;

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
SELECT pg_catalog.pg_extension_config_dump('iotstream.sources', '');
SELECT pg_catalog.pg_extension_config_dump('iotstream.source_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('iotstream.source_offsets', '');

-- Keys of options that are secret (librdkafka's sensitive properties).
CREATE FUNCTION iotstream._is_secret_option(key text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT key ~ '(password|secret|sasl\.jaas\.config|sasl\.oauthbearer\.config|ssl\.key\.pem|ssl_key|connection_string|token)'
$$;
COMMENT ON FUNCTION iotstream._is_secret_option(text) IS 'Internal: whether an option key holds a secret.';

-- Options in two parts: what may be shown, and the secrets.
CREATE FUNCTION iotstream._split_options(options jsonb, OUT public_options jsonb, OUT secret_options jsonb)
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(key, value) FILTER (WHERE NOT iotstream._is_secret_option(key)), '{}'),
           coalesce(jsonb_object_agg(key, value) FILTER (WHERE iotstream._is_secret_option(key)), '{}')
      FROM jsonb_each(options)
$$;
COMMENT ON FUNCTION iotstream._split_options(jsonb) IS 'Internal: splits source options into the shown ones and the secrets.';

-- Our own settings inside options, with their defaults and checks.
CREATE FUNCTION iotstream._check_source_options(options jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    k text;
    v jsonb;
BEGIN
    IF options IS NULL OR jsonb_typeof(options) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'options must be a JSON object',
            HINT = 'Pass for example ''{"batch_size": 10000, "batch_ms": 100, "start": "earliest"}''.';
    END IF;
    FOR k, v IN SELECT * FROM jsonb_each(options) LOOP
        IF k IN ('batch_size', 'batch_ms', 'max_message_bytes') AND
           (jsonb_typeof(v) <> 'number' OR (v #>> '{}')::numeric <= 0 OR (v #>> '{}')::numeric <> trunc((v #>> '{}')::numeric)) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('option %s must be a positive integer, not %s', k, v),
                HINT = 'batch_size counts messages, batch_ms milliseconds, max_message_bytes bytes.';
        ELSIF k = 'start' AND v #>> '{}' NOT IN ('earliest', 'latest') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('option start must be "earliest" or "latest", not %s', v),
                HINT = 'start is where a new source begins reading a partition it has no stored offset for.';
        ELSIF k = 'dedup_key' AND NOT (jsonb_typeof(v) = 'string' OR
              (jsonb_typeof(v) = 'array' AND jsonb_array_length(v) > 0)) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'option dedup_key must be a JSON path or an array of them',
                HINT = 'For example "eventId" or ["deviceId", "deviceSequenceNumber"].';
        ELSIF k = 'dedup_horizon' AND (jsonb_typeof(v) <> 'string' OR (v #>> '{}')::interval <= interval '0') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('option dedup_horizon must be a positive interval, not %s', v),
                HINT = 'For example "1 hour".';
        ELSIF k NOT IN ('batch_size', 'batch_ms', 'max_message_bytes', 'workers', 'start', 'dedup_key', 'dedup_horizon')
              AND k !~ '^[a-z][a-z0-9._]*$' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('unknown option %L', k),
                HINT = 'Options are librdkafka properties (lowercase, dotted) or batch_size, batch_ms, max_message_bytes, workers, start, dedup_key, dedup_horizon.';
        ELSIF k IN ('enable.auto.commit', 'enable.auto.offset.store', 'group.id', 'bootstrap.servers') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('option %s is managed by iotstream', k),
                HINT = 'Offsets are committed with the rows; pass brokers and the group through create_source.';
        END IF;
    END LOOP;
    RETURN options;
END $$;
COMMENT ON FUNCTION iotstream._check_source_options(jsonb) IS 'Internal: validates the options of a source.';

CREATE FUNCTION iotstream._require_superuser(what text) RETURNS void
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

CREATE FUNCTION iotstream._source_id(source_name text) RETURNS int
LANGUAGE plpgsql STABLE AS $$
DECLARE
    id int;
BEGIN
    SELECT s.source_id INTO id FROM iotstream.sources s WHERE s.name = source_name;
    IF id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('source %L does not exist', source_name),
            HINT = 'List sources in iotstream.source_status.';
    END IF;
    RETURN id;
END $$;
COMMENT ON FUNCTION iotstream._source_id(text) IS 'Internal: the id of a source, or an error with a hint.';

CREATE FUNCTION iotstream._validate_source(target regclass, mapping jsonb, options jsonb)
RETURNS void AS 'MODULE_PATHNAME', 'iotstream_validate_source' LANGUAGE C;
COMMENT ON FUNCTION iotstream._validate_source(regclass, jsonb, jsonb) IS
    'Internal: builds the decoder and dedup settings a worker would, so a mapping or dedup key that cannot work fails at create time.';

CREATE FUNCTION iotstream.create_source(
    name    text,
    brokers text,
    topics  text[],
    target  regclass,
    mapping jsonb DEFAULT NULL,
    options jsonb DEFAULT '{}')
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    id int;
    public_opts jsonb;
    secret_opts jsonb;
BEGIN
    PERFORM iotstream._require_superuser('create a source');
    IF EXISTS (SELECT 1 FROM iotstream.sources s WHERE s.name = create_source.name) THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('source %L already exists', create_source.name),
            HINT = 'Change it with iotstream.alter_source() or drop it with iotstream.drop_source().';
    END IF;
    IF name IS NULL OR name !~ '^[A-Za-z0-9_.-]{1,63}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_name',
            MESSAGE = format('invalid source name %L', name),
            HINT = 'Use up to 63 letters, digits, dots, dashes and underscores.';
    END IF;
    IF brokers IS NULL OR btrim(brokers) = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'brokers must not be empty',
            HINT = 'Pass a bootstrap list such as ''host1:9092,host2:9092''.';
    END IF;
    IF topics IS NULL OR cardinality(topics) = 0 OR array_position(topics, NULL) IS NOT NULL
       OR EXISTS (SELECT 1 FROM unnest(topics) t WHERE t !~ '^[A-Za-z0-9._-]{1,249}$') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'topics must be a non-empty array of topic names',
            HINT = 'Pass for example ARRAY[''telemetry''].';
    END IF;
    IF target IS NULL OR NOT EXISTS (SELECT 1 FROM iotstream.stream_table_settings st WHERE st.relid = target) THEN
        RAISE EXCEPTION USING ERRCODE = 'wrong_object_type',
            MESSAGE = format('target %s is not a stream table', coalesce(target::text, 'NULL')),
            HINT = 'Create it with iotstream.create_stream_table() first.';
    END IF;
    PERFORM iotstream._check_source_options(options);
    PERFORM iotstream._validate_source(target, mapping, options);
    SELECT * INTO public_opts, secret_opts FROM iotstream._split_options(options);
    INSERT INTO iotstream.sources (name, brokers, topics, target, mapping, options, group_id)
    VALUES (name, brokers, topics, target, mapping, public_opts, 'iotstream-' || name)
    RETURNING source_id INTO id;
    INSERT INTO iotstream.source_secrets VALUES (id, secret_opts);
    RETURN id;
END $$;
COMMENT ON FUNCTION iotstream.create_source(text, text, text[], regclass, jsonb, jsonb) IS
    'Defines a Kafka source: topics consumed into the stream table target, exactly once. options: librdkafka properties, plus batch_size (10000), batch_ms (100), max_message_bytes (1048576), start (earliest|latest), dedup_key, dedup_horizon. Superusers only. The consumer group is iotstream-<name>.';

CREATE FUNCTION iotstream.start_source(name text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM iotstream._require_superuser('start a source');
    UPDATE iotstream.sources s SET running = true WHERE s.source_id = iotstream._source_id(start_source.name);
    PERFORM iotstream._wake_launcher();
END $$;
COMMENT ON FUNCTION iotstream.start_source(text) IS 'Starts consuming: the launcher starts a worker at commit, and again after restarts, until stop_source.';

CREATE FUNCTION iotstream.stop_source(name text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM iotstream._require_superuser('stop a source');
    UPDATE iotstream.sources s SET running = false WHERE s.source_id = iotstream._source_id(stop_source.name);
    PERFORM iotstream._wake_launcher();
END $$;
COMMENT ON FUNCTION iotstream.stop_source(text) IS 'Stops consuming; the worker finishes its batch and exits within a second of commit.';

CREATE FUNCTION iotstream.alter_source(
    name    text,
    brokers text DEFAULT NULL,
    topics  text[] DEFAULT NULL,
    mapping jsonb DEFAULT NULL,
    options jsonb DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    id int;
    s iotstream.sources;
    public_opts jsonb;
    secret_opts jsonb;
BEGIN
    PERFORM iotstream._require_superuser('alter a source');
    id := iotstream._source_id(name);
    SELECT * INTO s FROM iotstream.sources x WHERE x.source_id = id FOR UPDATE;
    PERFORM iotstream._validate_source(s.target, coalesce(mapping, s.mapping),
                                       s.options || coalesce(options, '{}'));
    IF options IS NOT NULL THEN
        PERFORM iotstream._check_source_options(options);
        SELECT * INTO public_opts, secret_opts FROM iotstream._split_options(options);
        UPDATE iotstream.source_secrets x SET properties = x.properties || secret_opts WHERE x.source_id = id;
    END IF;
    UPDATE iotstream.sources x SET
        brokers = coalesce(alter_source.brokers, x.brokers),
        topics = coalesce(alter_source.topics, x.topics),
        mapping = coalesce(alter_source.mapping, x.mapping),
        options = CASE WHEN public_opts IS NULL THEN x.options ELSE x.options || public_opts END
     WHERE x.source_id = id;
    PERFORM iotstream._wake_launcher();
END $$;
COMMENT ON FUNCTION iotstream.alter_source(text, text, text[], jsonb, jsonb) IS
    'Changes a source; NULL leaves a setting unchanged, options are merged. A running worker restarts with the new settings.';

CREATE FUNCTION iotstream.drop_source(name text, drop_offsets boolean DEFAULT true) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM iotstream._require_superuser('drop a source');
    DELETE FROM iotstream.sources s WHERE s.source_id = iotstream._source_id(drop_source.name);
    PERFORM iotstream._wake_launcher();
END $$;
COMMENT ON FUNCTION iotstream.drop_source(text, boolean) IS 'Stops and removes a source with its stored offsets and dedup keys; dead letters stay.';

-- Event Hubs: its Kafka endpoint, from a connection string.
CREATE FUNCTION iotstream.eventhubs_properties(connection_string text, consumer_group text DEFAULT '$Default')
RETURNS TABLE (brokers text, topic text, properties jsonb)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    endpoint text := substring(connection_string FROM '(?i)Endpoint=sb://([^/;]+)/?');
    entity text := substring(connection_string FROM '(?i)EntityPath=([^;]+)');
BEGIN
    IF endpoint IS NULL OR connection_string !~* 'SharedAccessKeyName=[^;]+' OR connection_string !~* 'SharedAccessKey=[^;]+' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'invalid Event Hubs connection string',
            DETAIL = 'It needs Endpoint=sb://NAMESPACE.servicebus.windows.net/, SharedAccessKeyName and SharedAccessKey.',
            HINT = 'Copy the connection string of a shared access policy from the Azure portal; the event hub goes in EntityPath.';
    END IF;
    IF entity IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'the Event Hubs connection string has no EntityPath',
            HINT = 'Use the connection string of the event hub itself, or append ;EntityPath=<event hub name>.';
    END IF;
    brokers := endpoint || ':9093';
    topic := entity;
    -- what Azure recommends for its Kafka endpoint
    properties := jsonb_build_object(
        'security.protocol', 'SASL_SSL',
        'sasl.mechanisms', 'PLAIN',
        'sasl.username', '$ConnectionString',
        'sasl.password', connection_string,
        'socket.keepalive.enable', 'true',
        'metadata.max.age.ms', '180000',
        'connections.max.idle.ms', '180000',
        'socket.timeout.ms', '60000',
        'session.timeout.ms', '30000',
        'heartbeat.interval.ms', '3000',
        'request.timeout.ms', '60000');
    RETURN NEXT;
END $$;
COMMENT ON FUNCTION iotstream.eventhubs_properties(text, text) IS
    'The Kafka endpoint, topic and librdkafka properties (secret included) for an Event Hubs connection string.';
REVOKE ALL ON FUNCTION iotstream.eventhubs_properties(text, text) FROM PUBLIC;

CREATE FUNCTION iotstream.create_eventhubs_source(
    name              text,
    connection_string text,
    target            regclass,
    mapping           jsonb DEFAULT NULL,
    consumer_group    text DEFAULT '$Default',
    options           jsonb DEFAULT '{}')
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    eh record;
    id int;
BEGIN
    SELECT * INTO eh FROM iotstream.eventhubs_properties(connection_string, consumer_group);
    id := iotstream.create_source(name, eh.brokers, ARRAY[eh.topic], target, mapping,
                                  eh.properties || coalesce(options, '{}'));
    -- Event Hubs consumer groups are named in the hub, not by us
    UPDATE iotstream.sources s SET group_id = consumer_group WHERE s.source_id = id;
    RETURN id;
END $$;
COMMENT ON FUNCTION iotstream.create_eventhubs_source(text, text, regclass, jsonb, text, jsonb) IS
    'Defines a source reading an Azure event hub through its Kafka endpoint (NAMESPACE.servicebus.windows.net:9093, SASL_SSL/PLAIN). The connection string is stored as a secret. IoT Hub''s built-in endpoint speaks AMQP: route IoT Hub messages to an event hub and read that.';

CREATE FUNCTION iotstream._wake_launcher() RETURNS void
AS 'MODULE_PATHNAME', 'iotstream_wake_launcher' LANGUAGE C;
COMMENT ON FUNCTION iotstream._wake_launcher() IS 'Internal: the launcher re-reads the sources when this transaction commits.';

CREATE FUNCTION iotstream._worker_stats(
    OUT source_id int, OUT pid int, OUT state text, OUT messages bigint, OUT rows bigint,
    OUT dead_letters bigint, OUT duplicates bigint, OUT batches bigint,
    OUT messages_per_sec float8, OUT rows_per_sec float8, OUT started_at timestamptz,
    OUT last_batch_at timestamptz, OUT last_error text, OUT last_error_at timestamptz)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'iotstream_worker_stats' LANGUAGE C;
COMMENT ON FUNCTION iotstream._worker_stats() IS 'Internal: the counters of each source worker since it started, from shared memory; a role sees the workers of the tables it may read.';

CREATE VIEW iotstream.source_status AS
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
COMMENT ON VIEW iotstream.source_status IS
    'Each source: state, worker pids, partitions with stored offset, high watermark and lag, messages and rows per second over the last minute, totals since the workers started, duplicates, dead letters, and the last error. No secrets.';

-- Every option of a source as the worker passes it to librdkafka, secrets masked.
CREATE FUNCTION iotstream.source_config(name text)
RETURNS TABLE (property text, value text)
LANGUAGE sql STABLE AS $$
    SELECT 'bootstrap.servers', s.brokers FROM iotstream.sources s WHERE s.name = source_config.name
    UNION ALL
    SELECT 'group.id', s.group_id FROM iotstream.sources s WHERE s.name = source_config.name
    UNION ALL
    SELECT o.key, o.value #>> '{}' FROM iotstream.sources s, jsonb_each(s.options) o WHERE s.name = source_config.name
    UNION ALL
    SELECT o.key, '********' FROM iotstream.sources s JOIN iotstream.source_secrets x USING (source_id),
           jsonb_each(x.properties) o WHERE s.name = source_config.name
    ORDER BY 1
$$;
COMMENT ON FUNCTION iotstream.source_config(text) IS 'The properties of a source, with secret values shown as ********.';
-- Decoding Kafka messages into the columns of a table: preview and checks.
-- The ingest worker uses the same C decoder (src/decode.c).

CREATE FUNCTION iotstream.decode_preview(target regclass, mapping jsonb, payload text,
                                         key text DEFAULT NULL, topic text DEFAULT 't',
                                         "partition" int DEFAULT 0, "offset" bigint DEFAULT 0,
                                         "timestamp" timestamptz DEFAULT NULL,
                                         headers jsonb DEFAULT NULL)
RETURNS jsonb AS 'MODULE_PATHNAME', 'decode_preview' LANGUAGE C STABLE;
COMMENT ON FUNCTION iotstream.decode_preview(regclass, jsonb, text, text, text, int, bigint, timestamptz, jsonb) IS
$$The row a source with this mapping would insert into target for one message, as a jsonb object (columns that would take their DEFAULT are left out), or {"error": reason} for a message that would go to the dead letters.
Mapping: NULL or {} maps each column to the top-level key of its name; a key in camelCase also matches a snake_case column (deviceId -> device_id), then any key equal ignoring case; the best match wins. {"column": "a.b.c"} reads a nested key ("\." is a literal dot); "$payload" (jsonb, json, text, varchar, bytea), "$topic" (text), "$partition" and "$offset" (integers, numeric, text), "$key" (text, bytea, integers, numeric, uuid), "$timestamp" (timestamptz, timestamp, or bigint milliseconds), "$headers" (jsonb); null leaves the column out. Columns the mapping does not name keep the default rule.
Types: text/varchar take strings, or other values as JSON text; integers take integral numbers or strings of them; real/double/numeric take numbers, numeric strings, NaN; boolean takes true/false, 0/1, "true"/"false"/"t"/"f"; timestamptz/timestamp/date take ISO 8601 (UTC when no offset) or epoch numbers, whose unit is told by magnitude: < 1e11 seconds, < 1e14 milliseconds, < 1e17 microseconds, else nanoseconds; uuid takes 32 hex digits with or without hyphens; jsonb/json take any value; bytea takes a "\\x..." hex string. JSON null and missing keys give NULL (a missing key gives the DEFAULT when the column has one); NULL in a NOT NULL column is an error.$$;

CREATE FUNCTION iotstream.validate_mapping(target regclass, mapping jsonb)
RETURNS void AS 'MODULE_PATHNAME', 'validate_mapping' LANGUAGE C STABLE;
COMMENT ON FUNCTION iotstream.validate_mapping(regclass, jsonb) IS
'Raises the error a source would get at create time for this mapping and target: a mapping that is not an object, an unknown or generated column, a malformed path or unknown $source, a source the column type cannot take, a column type the decoder cannot fill (map it to null), or a NOT NULL column without default that the mapping leaves out. Keys cannot be known in advance: a NOT NULL column whose key a message lacks makes that message a dead letter.';

CREATE FUNCTION iotstream._decode_count_transfn(internal, regclass, jsonb, text)
RETURNS internal AS 'MODULE_PATHNAME', 'decode_count_transfn' LANGUAGE C;
COMMENT ON FUNCTION iotstream._decode_count_transfn(internal, regclass, jsonb, text) IS
'Internal: transition function of iotstream._decode_count.';
CREATE FUNCTION iotstream._decode_count_finalfn(internal)
RETURNS bigint AS 'MODULE_PATHNAME', 'decode_count_finalfn' LANGUAGE C;
COMMENT ON FUNCTION iotstream._decode_count_finalfn(internal) IS
'Internal: final function of iotstream._decode_count.';
CREATE AGGREGATE iotstream._decode_count(target regclass, mapping jsonb, payload text) (
    SFUNC = iotstream._decode_count_transfn,
    STYPE = internal,
    FINALFUNC = iotstream._decode_count_finalfn
);
COMMENT ON AGGREGATE iotstream._decode_count(regclass, jsonb, text) IS
'Internal, for test/bench/decode.sh: decodes each payload into a row of target as the ingest worker would and counts the rows decoded without error.';

CREATE FUNCTION iotstream.decode_preview(target regclass, mapping jsonb, payload bytea,
                                         key text DEFAULT NULL, topic text DEFAULT 't',
                                         "partition" int DEFAULT 0, "offset" bigint DEFAULT 0,
                                         "timestamp" timestamptz DEFAULT NULL,
                                         headers jsonb DEFAULT NULL)
RETURNS jsonb AS 'MODULE_PATHNAME', 'decode_preview' LANGUAGE C STABLE;
COMMENT ON FUNCTION iotstream.decode_preview(regclass, jsonb, bytea, text, text, int, bigint, timestamptz, jsonb) IS
'decode_preview for a payload given as raw bytes, which may be anything a Kafka message can hold (invalid UTF-8, NUL bytes).';
-- Windowed analytics: hopping and session windows, mergeable statistics
-- (iotstream.stats, stats_agg, rollup) and anomaly detectors.  Tumbling
-- windows are date_bin(); see docs/analytics.md.

-- ---------------------------------------------------------------- windows

CREATE FUNCTION iotstream.hop(ts timestamptz, size interval, slide interval,
                              origin timestamptz DEFAULT '1970-01-01 00:00:00+00')
RETURNS SETOF timestamptz
AS 'MODULE_PATHNAME', 'hop' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE ROWS 2;
COMMENT ON FUNCTION iotstream.hop(timestamptz, interval, interval, timestamptz) IS
    'Start of every hopping window [origin + k*slide, origin + k*slide + size) that contains ts, ascending. Use in GROUP BY or a LATERAL join.';

CREATE FUNCTION iotstream.hop(ts timestamp, size interval, slide interval,
                              origin timestamp DEFAULT '1970-01-01 00:00:00')
RETURNS SETOF timestamp
AS 'MODULE_PATHNAME', 'hop' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE ROWS 2;
COMMENT ON FUNCTION iotstream.hop(timestamp, interval, interval, timestamp) IS
    'Start of every hopping window [origin + k*slide, origin + k*slide + size) that contains ts, ascending. Use in GROUP BY or a LATERAL join.';

CREATE FUNCTION iotstream.session_id(ts timestamptz, gap interval) RETURNS bigint
AS 'MODULE_PATHNAME', 'session_id' LANGUAGE C WINDOW IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.session_id(timestamptz, interval) IS
    'Window function: numbers session windows from 1 over OVER (PARTITION BY key ORDER BY ts); a row more than gap after the previous one starts a new session.';

CREATE FUNCTION iotstream.session_id(ts timestamp, gap interval) RETURNS bigint
AS 'MODULE_PATHNAME', 'session_id' LANGUAGE C WINDOW IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.session_id(timestamp, interval) IS
    'Window function: numbers session windows from 1 over OVER (PARTITION BY key ORDER BY ts); a row more than gap after the previous one starts a new session.';

-- ---------------------------------------------------------------- stats

CREATE TYPE iotstream.stats;

CREATE FUNCTION iotstream.stats_in(cstring) RETURNS iotstream.stats
AS 'MODULE_PATHNAME', 'stats_in' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stats_in(cstring) IS
    'Input function of iotstream.stats: (n:N,sum:S,sxx:Q,min:A,max:B).';
CREATE FUNCTION iotstream.stats_out(iotstream.stats) RETURNS cstring
AS 'MODULE_PATHNAME', 'stats_out' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stats_out(iotstream.stats) IS
    'Output function of iotstream.stats; floats are printed exactly (shortest round-trip form).';
CREATE FUNCTION iotstream.stats_recv(internal) RETURNS iotstream.stats
AS 'MODULE_PATHNAME', 'stats_recv' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stats_recv(internal) IS
    'Binary input of iotstream.stats: int8 n, then float8 sum, sxx, min, max.';
CREATE FUNCTION iotstream.stats_send(iotstream.stats) RETURNS bytea
AS 'MODULE_PATHNAME', 'stats_send' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stats_send(iotstream.stats) IS
    'Binary output of iotstream.stats: int8 n, then float8 sum, sxx, min, max.';

CREATE TYPE iotstream.stats (
    INPUT = iotstream.stats_in,
    OUTPUT = iotstream.stats_out,
    RECEIVE = iotstream.stats_recv,
    SEND = iotstream.stats_send,
    INTERNALLENGTH = 40,
    ALIGNMENT = double,
    STORAGE = plain
);
COMMENT ON TYPE iotstream.stats IS
    'Mergeable summary of float8 values: count, sum, sum of squared deviations (Youngs-Cramer), min and max. 40 bytes.';

CREATE FUNCTION iotstream.stats_agg_transfn(iotstream.stats, float8) RETURNS iotstream.stats
AS 'MODULE_PATHNAME', 'stats_agg_transfn' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stats_agg_transfn(iotstream.stats, float8) IS
    'Internal: transition function of stats_agg (Youngs-Cramer update).';
CREATE FUNCTION iotstream.stats_agg_invfn(iotstream.stats, float8) RETURNS iotstream.stats
AS 'MODULE_PATHNAME', 'stats_agg_invfn' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stats_agg_invfn(iotstream.stats, float8) IS
    'Internal: inverse transition of stats_agg; NULL (recompute the frame) when an extreme or a non-finite value leaves.';
CREATE FUNCTION iotstream.stats_combine(iotstream.stats, iotstream.stats) RETURNS iotstream.stats
AS 'MODULE_PATHNAME', 'stats_combine' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stats_combine(iotstream.stats, iotstream.stats) IS
    'Merges two stats values (the combine function of stats_agg and the transition of rollup).';
CREATE FUNCTION iotstream.stats_agg_finalfn(iotstream.stats) RETURNS iotstream.stats
AS 'MODULE_PATHNAME', 'stats_agg_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stats_agg_finalfn(iotstream.stats) IS
    'Internal: NULL for an aggregate over no values, like avg().';

CREATE AGGREGATE iotstream.stats_agg(float8) (
    SFUNC = iotstream.stats_agg_transfn,
    STYPE = iotstream.stats,
    INITCOND = '(n:0,sum:0,sxx:0,min:Infinity,max:-Infinity)',
    FINALFUNC = iotstream.stats_agg_finalfn,
    COMBINEFUNC = iotstream.stats_combine,
    MSFUNC = iotstream.stats_agg_transfn,
    MINVFUNC = iotstream.stats_agg_invfn,
    MSTYPE = iotstream.stats,
    MINITCOND = '(n:0,sum:0,sxx:0,min:Infinity,max:-Infinity)',
    MFINALFUNC = iotstream.stats_agg_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.stats_agg(float8) IS
    'Summary statistics of the non-NULL values as iotstream.stats. Parallel (combine function) and O(1) per row in moving windows (inverse transition).';

CREATE AGGREGATE iotstream.rollup(iotstream.stats) (
    SFUNC = iotstream.stats_combine,
    STYPE = iotstream.stats,
    INITCOND = '(n:0,sum:0,sxx:0,min:Infinity,max:-Infinity)',
    FINALFUNC = iotstream.stats_agg_finalfn,
    COMBINEFUNC = iotstream.stats_combine,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.rollup(iotstream.stats) IS
    'Merges stored stats values, e.g. minute stats into hours; equals stats_agg over the underlying values.';

CREATE FUNCTION iotstream.count(iotstream.stats) RETURNS bigint
AS 'MODULE_PATHNAME', 'stats_count' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.count(iotstream.stats) IS 'Number of values summarised.';
CREATE FUNCTION iotstream.mean(iotstream.stats) RETURNS float8
AS 'MODULE_PATHNAME', 'stats_mean' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.mean(iotstream.stats) IS 'Mean (sum / n), as avg(); NULL when empty.';
CREATE FUNCTION iotstream.stddev(iotstream.stats) RETURNS float8
AS 'MODULE_PATHNAME', 'stats_stddev_samp' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stddev(iotstream.stats) IS 'Sample standard deviation sqrt(sxx / (n - 1)), as stddev_samp(); NULL below 2 values.';
CREATE FUNCTION iotstream.stddev_samp(iotstream.stats) RETURNS float8
AS 'MODULE_PATHNAME', 'stats_stddev_samp' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stddev_samp(iotstream.stats) IS 'Sample standard deviation sqrt(sxx / (n - 1)); NULL below 2 values.';
CREATE FUNCTION iotstream.stddev_pop(iotstream.stats) RETURNS float8
AS 'MODULE_PATHNAME', 'stats_stddev_pop' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.stddev_pop(iotstream.stats) IS 'Population standard deviation sqrt(sxx / n); NULL when empty.';
CREATE FUNCTION iotstream.variance(iotstream.stats) RETURNS float8
AS 'MODULE_PATHNAME', 'stats_var_samp' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.variance(iotstream.stats) IS 'Sample variance sxx / (n - 1), as var_samp(); NULL below 2 values.';
CREATE FUNCTION iotstream.var_samp(iotstream.stats) RETURNS float8
AS 'MODULE_PATHNAME', 'stats_var_samp' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.var_samp(iotstream.stats) IS 'Sample variance sxx / (n - 1); NULL below 2 values.';
CREATE FUNCTION iotstream.var_pop(iotstream.stats) RETURNS float8
AS 'MODULE_PATHNAME', 'stats_var_pop' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.var_pop(iotstream.stats) IS 'Population variance sxx / n; NULL when empty.';
CREATE FUNCTION iotstream.min(iotstream.stats) RETURNS float8
AS 'MODULE_PATHNAME', 'stats_min' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.min(iotstream.stats) IS 'Smallest value (exact, also in moving windows); NULL when empty.';
CREATE FUNCTION iotstream.max(iotstream.stats) RETURNS float8
AS 'MODULE_PATHNAME', 'stats_max' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.max(iotstream.stats) IS 'Largest value (exact, also in moving windows; NaN sorts highest); NULL when empty.';
CREATE FUNCTION iotstream.zscore(iotstream.stats, x float8) RETURNS float8
AS 'MODULE_PATHNAME', 'stats_zscore' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.zscore(iotstream.stats, float8) IS
    '(x - mean) / sample stddev; NULL when the stddev is undefined (n < 2) or zero.';

-- ---------------------------------------------------------------- detectors

CREATE TYPE iotstream.anomaly AS (score float8, p_value float8, martingale float8, is_anomaly bool);
COMMENT ON TYPE iotstream.anomaly IS
    'Verdict of spike_dip and change_point on a row: score = 1 - p_value, the p-value used, the power martingale (change_point only) and the flag.';
CREATE TYPE iotstream.robust_zscore_result AS (score float8, median float8, mad float8, is_anomaly bool);
COMMENT ON TYPE iotstream.robust_zscore_result IS
    'Modified z-score of the newest value in the frame, the frame''s median and MAD, and whether |score| exceeds the threshold.';
CREATE TYPE iotstream.ewma_chart_result AS (ewma float8, lower float8, upper float8, is_anomaly bool);
COMMENT ON TYPE iotstream.ewma_chart_result IS
    'EWMA statistic and its control limits after the current row; NULL while mu and sigma are estimated.';
CREATE TYPE iotstream.cusum_result AS (upper float8, lower float8, is_anomaly bool);
COMMENT ON TYPE iotstream.cusum_result IS
    'Upper and lower tabular CUSUM sums after the current row, and whether either exceeds h.';

-- threshold_count
CREATE FUNCTION iotstream.threshold_count_transfn(bigint, float8, float8) RETURNS bigint
AS 'MODULE_PATHNAME', 'threshold_count_transfn' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.threshold_count_transfn(bigint, float8, float8) IS 'Internal: transition of threshold_count.';
CREATE FUNCTION iotstream.threshold_count_invfn(bigint, float8, float8) RETURNS bigint
AS 'MODULE_PATHNAME', 'threshold_count_invfn' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.threshold_count_invfn(bigint, float8, float8) IS 'Internal: inverse transition of threshold_count.';
CREATE AGGREGATE iotstream.threshold_count(value float8, threshold float8) (
    SFUNC = iotstream.threshold_count_transfn, STYPE = bigint, INITCOND = '0',
    COMBINEFUNC = pg_catalog.int8pl,
    MSFUNC = iotstream.threshold_count_transfn, MINVFUNC = iotstream.threshold_count_invfn,
    MSTYPE = bigint, MINITCOND = '0',
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.threshold_count(float8, float8) IS
    'Number of values strictly above threshold (NULLs skipped); same as count(*) FILTER (WHERE value > threshold).';

-- outliers
CREATE FUNCTION iotstream.outliers_transfn(internal, float8, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'outliers_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.outliers_transfn(internal, float8, float8) IS 'Internal: transition of outliers.';
CREATE FUNCTION iotstream.outliers_combine(internal, internal) RETURNS internal
AS 'MODULE_PATHNAME', 'outliers_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.outliers_combine(internal, internal) IS 'Internal: combine function of outliers.';
CREATE FUNCTION iotstream.outliers_serialize(internal) RETURNS bytea
AS 'MODULE_PATHNAME', 'outliers_serialize' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.outliers_serialize(internal) IS 'Internal: serialization of the outliers state for parallel aggregation.';
CREATE FUNCTION iotstream.outliers_deserialize(bytea, internal) RETURNS internal
AS 'MODULE_PATHNAME', 'outliers_deserialize' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.outliers_deserialize(bytea, internal) IS 'Internal: deserialization of the outliers state for parallel aggregation.';
CREATE FUNCTION iotstream.outliers_finalfn(internal) RETURNS bigint
AS 'MODULE_PATHNAME', 'outliers_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.outliers_finalfn(internal) IS 'Internal: counts the values beyond mean +/- k stddev.';
CREATE AGGREGATE iotstream.outliers(value float8, k float8) (
    SFUNC = iotstream.outliers_transfn, STYPE = internal,
    FINALFUNC = iotstream.outliers_finalfn,
    COMBINEFUNC = iotstream.outliers_combine,
    SERIALFUNC = iotstream.outliers_serialize,
    DESERIALFUNC = iotstream.outliers_deserialize,
    -- the state keeps every value: about 256 bytes for a typical window
    -- (the planner would otherwise assume 8 kB and never hash)
    SSPACE = 256,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.outliers(float8, float8) IS
    'Number of values with |x - mean| > k * stddev_samp, mean and stddev being those of the same group (0 below 2 values).';

-- outlier_summary: the state and transition of outliers, a row for a result
CREATE TYPE iotstream.outlier_summary AS (n bigint, mean float8, stddev float8, min float8, max float8, outliers bigint);
COMMENT ON TYPE iotstream.outlier_summary IS
    'Result of outlier_summary(): count, mean, sample standard deviation, min, max, and the number of values beyond mean +/- k stddev.';
CREATE FUNCTION iotstream.outlier_summary_finalfn(internal) RETURNS iotstream.outlier_summary
AS 'MODULE_PATHNAME', 'outlier_summary_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.outlier_summary_finalfn(internal) IS 'Internal: summarizes the outliers state as a row.';
CREATE AGGREGATE iotstream.outlier_summary(value float8, k float8) (
    SFUNC = iotstream.outliers_transfn, STYPE = internal,
    FINALFUNC = iotstream.outlier_summary_finalfn,
    COMBINEFUNC = iotstream.outliers_combine,
    SERIALFUNC = iotstream.outliers_serialize,
    DESERIALFUNC = iotstream.outliers_deserialize,
    SSPACE = 256,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.outlier_summary(float8, float8) IS
    'One pass, one state per group: (n, mean, stddev, min, max, outliers) as count, avg, stddev_samp, min, max and outliers(value, k) give them.';

-- tumbling_summary: per key, every tumbling window's outlier_summary
CREATE TYPE iotstream.window_summary AS (window_start timestamptz, n bigint, mean float8, stddev float8, min float8, max float8, outliers bigint);
COMMENT ON TYPE iotstream.window_summary IS
    'Element of tumbling_summary(): the window''s start, then count, mean, sample standard deviation, min, max and the number of values beyond mean +/- k stddev.';
CREATE FUNCTION iotstream.tumbling_summary_transfn(internal, timestamptz, float8, interval, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'tumbling_summary_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.tumbling_summary_transfn(internal, timestamptz, float8, interval, float8) IS 'Internal: transition of tumbling_summary.';
CREATE FUNCTION iotstream.tumbling_summary_transfn(internal, timestamptz, float8, interval, float8, timestamptz) RETURNS internal
AS 'MODULE_PATHNAME', 'tumbling_summary_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.tumbling_summary_transfn(internal, timestamptz, float8, interval, float8, timestamptz) IS 'Internal: transition of tumbling_summary.';
CREATE FUNCTION iotstream.tumbling_summary_combine(internal, internal) RETURNS internal
AS 'MODULE_PATHNAME', 'tumbling_summary_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.tumbling_summary_combine(internal, internal) IS 'Internal: combine function of tumbling_summary.';
CREATE FUNCTION iotstream.tumbling_summary_serialize(internal) RETURNS bytea
AS 'MODULE_PATHNAME', 'tumbling_summary_serialize' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.tumbling_summary_serialize(internal) IS 'Internal: serialization of the tumbling_summary state for parallel aggregation.';
CREATE FUNCTION iotstream.tumbling_summary_deserialize(bytea, internal) RETURNS internal
AS 'MODULE_PATHNAME', 'tumbling_summary_deserialize' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.tumbling_summary_deserialize(bytea, internal) IS 'Internal: deserialization of the tumbling_summary state for parallel aggregation.';
CREATE FUNCTION iotstream.tumbling_summary_finalfn(internal) RETURNS iotstream.window_summary[]
AS 'MODULE_PATHNAME', 'tumbling_summary_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.tumbling_summary_finalfn(internal) IS 'Internal: one window_summary per window, by window start.';
CREATE AGGREGATE iotstream.tumbling_summary(ts timestamptz, value float8, width interval, k float8) (
    SFUNC = iotstream.tumbling_summary_transfn, STYPE = internal,
    FINALFUNC = iotstream.tumbling_summary_finalfn,
    COMBINEFUNC = iotstream.tumbling_summary_combine,
    SERIALFUNC = iotstream.tumbling_summary_serialize,
    DESERIALFUNC = iotstream.tumbling_summary_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.tumbling_summary(timestamptz, float8, interval, float8) IS
    'Per group (a key), every tumbling window date_bin(width, ts, epoch) that holds a value, as an array of (window_start, n, mean, stddev, min, max, outliers), outliers being the values beyond mean +/- k stddev. Rows with a NULL ts or value are skipped.';
CREATE AGGREGATE iotstream.tumbling_summary(ts timestamptz, value float8, width interval, k float8, origin timestamptz) (
    SFUNC = iotstream.tumbling_summary_transfn, STYPE = internal,
    FINALFUNC = iotstream.tumbling_summary_finalfn,
    COMBINEFUNC = iotstream.tumbling_summary_combine,
    SERIALFUNC = iotstream.tumbling_summary_serialize,
    DESERIALFUNC = iotstream.tumbling_summary_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.tumbling_summary(timestamptz, float8, interval, float8, timestamptz) IS
    'Per group (a key), every tumbling window date_bin(width, ts, origin) that holds a value, as an array of (window_start, n, mean, stddev, min, max, outliers), outliers being the values beyond mean +/- k stddev. Rows with a NULL ts or value are skipped.';

-- robust_zscore
CREATE FUNCTION iotstream.robust_zscore_transfn(internal, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'robust_zscore_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.robust_zscore_transfn(internal, float8) IS 'Internal: transition of robust_zscore.';
CREATE FUNCTION iotstream.robust_zscore_transfn(internal, float8, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'robust_zscore_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.robust_zscore_transfn(internal, float8, float8) IS 'Internal: transition of robust_zscore.';
CREATE FUNCTION iotstream.robust_zscore_invfn(internal, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'robust_zscore_invfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.robust_zscore_invfn(internal, float8) IS 'Internal: inverse transition of robust_zscore (drops the oldest value).';
CREATE FUNCTION iotstream.robust_zscore_invfn(internal, float8, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'robust_zscore_invfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.robust_zscore_invfn(internal, float8, float8) IS 'Internal: inverse transition of robust_zscore (drops the oldest value).';
CREATE FUNCTION iotstream.robust_zscore_finalfn(internal) RETURNS iotstream.robust_zscore_result
AS 'MODULE_PATHNAME', 'robust_zscore_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.robust_zscore_finalfn(internal) IS 'Internal: modified z-score of the newest value.';
CREATE AGGREGATE iotstream.robust_zscore(value float8) (
    SFUNC = iotstream.robust_zscore_transfn, STYPE = internal,
    FINALFUNC = iotstream.robust_zscore_finalfn,
    MSFUNC = iotstream.robust_zscore_transfn, MINVFUNC = iotstream.robust_zscore_invfn,
    MSTYPE = internal, MFINALFUNC = iotstream.robust_zscore_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.robust_zscore(float8) IS
    'Modified z-score 0.6745 * (x - median) / MAD of the newest value x against the frame, flagged when |score| > 3.5. Use OVER (PARTITION BY key ORDER BY ts ROWS BETWEEN n PRECEDING AND CURRENT ROW).';
CREATE AGGREGATE iotstream.robust_zscore(value float8, threshold float8) (
    SFUNC = iotstream.robust_zscore_transfn, STYPE = internal,
    FINALFUNC = iotstream.robust_zscore_finalfn,
    MSFUNC = iotstream.robust_zscore_transfn, MINVFUNC = iotstream.robust_zscore_invfn,
    MSTYPE = internal, MFINALFUNC = iotstream.robust_zscore_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.robust_zscore(float8, float8) IS
    'Modified z-score 0.6745 * (x - median) / MAD of the newest value x against the frame, flagged when |score| > threshold.';

-- ewma
CREATE FUNCTION iotstream.ewma_transfn(internal, float8, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'ewma_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.ewma_transfn(internal, float8, float8) IS 'Internal: transition of ewma.';
CREATE FUNCTION iotstream.ewma_finalfn(internal) RETURNS float8
AS 'MODULE_PATHNAME', 'ewma_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.ewma_finalfn(internal) IS 'Internal: the smoothed value.';
CREATE AGGREGATE iotstream.ewma(value float8, alpha float8) (
    SFUNC = iotstream.ewma_transfn, STYPE = internal,
    FINALFUNC = iotstream.ewma_finalfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.ewma(float8, float8) IS
    'Exponentially weighted moving average s1 = x1, st = alpha * xt + (1 - alpha) * s(t-1), in input order. Use OVER (PARTITION BY key ORDER BY ts).';

-- ewma_chart
CREATE FUNCTION iotstream.ewma_chart_transfn(internal, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'ewma_chart_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.ewma_chart_transfn(internal, float8) IS 'Internal: transition of ewma_chart.';
CREATE FUNCTION iotstream.ewma_chart_transfn(internal, float8, float8, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'ewma_chart_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.ewma_chart_transfn(internal, float8, float8, float8) IS 'Internal: transition of ewma_chart.';
CREATE FUNCTION iotstream.ewma_chart_transfn(internal, float8, float8, float8, float8, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'ewma_chart_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.ewma_chart_transfn(internal, float8, float8, float8, float8, float8) IS 'Internal: transition of ewma_chart.';
CREATE FUNCTION iotstream.ewma_chart_transfn(internal, float8, float8, float8, float8, float8, int) RETURNS internal
AS 'MODULE_PATHNAME', 'ewma_chart_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.ewma_chart_transfn(internal, float8, float8, float8, float8, float8, int) IS 'Internal: transition of ewma_chart.';
CREATE FUNCTION iotstream.ewma_chart_finalfn(internal) RETURNS iotstream.ewma_chart_result
AS 'MODULE_PATHNAME', 'ewma_chart_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.ewma_chart_finalfn(internal) IS 'Internal: EWMA statistic, limits and flag.';
CREATE AGGREGATE iotstream.ewma_chart(value float8) (
    SFUNC = iotstream.ewma_chart_transfn, STYPE = internal,
    FINALFUNC = iotstream.ewma_chart_finalfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.ewma_chart(float8) IS
    'EWMA control chart with lambda = 0.2, L = 3, mu and sigma estimated from the first 20 values. Use OVER (PARTITION BY key ORDER BY ts).';
CREATE AGGREGATE iotstream.ewma_chart(value float8, lambda float8, l float8) (
    SFUNC = iotstream.ewma_chart_transfn, STYPE = internal,
    FINALFUNC = iotstream.ewma_chart_finalfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.ewma_chart(float8, float8, float8) IS
    'EWMA control chart, mu and sigma estimated from the first 20 values: flags z_t outside mu +/- L*sigma*sqrt(lambda/(2-lambda)*(1-(1-lambda)^(2t))).';
CREATE AGGREGATE iotstream.ewma_chart(value float8, lambda float8, l float8, mu float8, sigma float8) (
    SFUNC = iotstream.ewma_chart_transfn, STYPE = internal,
    FINALFUNC = iotstream.ewma_chart_finalfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.ewma_chart(float8, float8, float8, float8, float8) IS
    'EWMA control chart for a known in-control mean mu and standard deviation sigma (both NULL: estimated from the first 20 values).';
CREATE AGGREGATE iotstream.ewma_chart(value float8, lambda float8, l float8, mu float8, sigma float8, warmup int) (
    SFUNC = iotstream.ewma_chart_transfn, STYPE = internal,
    FINALFUNC = iotstream.ewma_chart_finalfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.ewma_chart(float8, float8, float8, float8, float8, int) IS
    'EWMA control chart; with mu and sigma NULL they are estimated from the first warmup values, which are not charted.';

-- cusum
CREATE FUNCTION iotstream.cusum_transfn(internal, float8, float8, float8, float8) RETURNS internal
AS 'MODULE_PATHNAME', 'cusum_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.cusum_transfn(internal, float8, float8, float8, float8) IS 'Internal: transition of cusum.';
CREATE FUNCTION iotstream.cusum_finalfn(internal) RETURNS iotstream.cusum_result
AS 'MODULE_PATHNAME', 'cusum_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.cusum_finalfn(internal) IS 'Internal: CUSUM sums and flag.';
CREATE AGGREGATE iotstream.cusum(value float8, target float8, k float8, h float8) (
    SFUNC = iotstream.cusum_transfn, STYPE = internal,
    FINALFUNC = iotstream.cusum_finalfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.cusum(float8, float8, float8, float8) IS
    'Tabular CUSUM: upper = max(0, upper + x - target - k), lower = max(0, lower + target - x - k), alarm when either > h. Use OVER (PARTITION BY key ORDER BY ts).';

-- spike_dip, change_point
CREATE FUNCTION iotstream.spike_dip_transfn(internal, float8, float8, int) RETURNS internal
AS 'MODULE_PATHNAME', 'spike_dip_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.spike_dip_transfn(internal, float8, float8, int) IS 'Internal: transition of spike_dip.';
CREATE FUNCTION iotstream.spike_dip_transfn(internal, float8, float8, int, text) RETURNS internal
AS 'MODULE_PATHNAME', 'spike_dip_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.spike_dip_transfn(internal, float8, float8, int, text) IS 'Internal: transition of spike_dip.';
CREATE FUNCTION iotstream.change_point_transfn(internal, float8, float8, int) RETURNS internal
AS 'MODULE_PATHNAME', 'change_point_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.change_point_transfn(internal, float8, float8, int) IS 'Internal: transition of change_point.';
CREATE FUNCTION iotstream.kde_finalfn(internal) RETURNS iotstream.anomaly
AS 'MODULE_PATHNAME', 'kde_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.kde_finalfn(internal) IS 'Internal: verdict of spike_dip or change_point on the last row.';
CREATE AGGREGATE iotstream.spike_dip(value float8, confidence float8, history_size int) (
    SFUNC = iotstream.spike_dip_transfn, STYPE = internal,
    FINALFUNC = iotstream.kde_finalfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.spike_dip(float8, float8, int) IS
    'Spikes and dips: two-sided kernel-density p-value of x against the last history_size values, flagged when p <= 1 - confidence/100 once the history is full. Use OVER (PARTITION BY key ORDER BY ts).';
CREATE AGGREGATE iotstream.spike_dip(value float8, confidence float8, history_size int, mode text) (
    SFUNC = iotstream.spike_dip_transfn, STYPE = internal,
    FINALFUNC = iotstream.kde_finalfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.spike_dip(float8, float8, int, text) IS
    'Kernel-density spike detector; mode ''spikes'' (upper tail), ''dips'' (lower tail) or ''spikesanddips'' (two-sided).';
CREATE AGGREGATE iotstream.change_point(value float8, confidence float8, history_size int) (
    SFUNC = iotstream.change_point_transfn, STYPE = internal,
    FINALFUNC = iotstream.kde_finalfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.change_point(float8, float8, int) IS
    'Level changes: power martingale (eps = 0.1) over the last history_size kernel-density p-values, flagged above the value history_size p-values at 1 - confidence/100 reach. Use OVER (PARTITION BY key ORDER BY ts).';

-- spike_dip_events, change_point_events: per key, the rows the detector flags
CREATE TYPE iotstream.detector_event AS (ts timestamptz, value float8, score float8, p_value float8, martingale float8);
COMMENT ON TYPE iotstream.detector_event IS
    'Element of spike_dip_events() and change_point_events(): a flagged row''s time and value, and the detector''s score, p-value and martingale (NULL for spike_dip) on it.';
CREATE FUNCTION iotstream.spike_dip_events_transfn(internal, timestamptz, float8, float8, int) RETURNS internal
AS 'MODULE_PATHNAME', 'detector_events_spike_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.spike_dip_events_transfn(internal, timestamptz, float8, float8, int) IS 'Internal: transition of spike_dip_events.';
CREATE FUNCTION iotstream.spike_dip_events_transfn(internal, timestamptz, float8, float8, int, text) RETURNS internal
AS 'MODULE_PATHNAME', 'detector_events_spike_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.spike_dip_events_transfn(internal, timestamptz, float8, float8, int, text) IS 'Internal: transition of spike_dip_events.';
CREATE FUNCTION iotstream.change_point_events_transfn(internal, timestamptz, float8, float8, int) RETURNS internal
AS 'MODULE_PATHNAME', 'detector_events_change_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.change_point_events_transfn(internal, timestamptz, float8, float8, int) IS 'Internal: transition of change_point_events.';
CREATE FUNCTION iotstream.detector_events_combine(internal, internal) RETURNS internal
AS 'MODULE_PATHNAME', 'detector_events_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.detector_events_combine(internal, internal) IS 'Internal: combine function of spike_dip_events and change_point_events.';
CREATE FUNCTION iotstream.detector_events_serialize(internal) RETURNS bytea
AS 'MODULE_PATHNAME', 'detector_events_serialize' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.detector_events_serialize(internal) IS 'Internal: serialization of the spike_dip_events and change_point_events state for parallel aggregation.';
CREATE FUNCTION iotstream.detector_events_deserialize(bytea, internal) RETURNS internal
AS 'MODULE_PATHNAME', 'detector_events_deserialize' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.detector_events_deserialize(bytea, internal) IS 'Internal: deserialization of the spike_dip_events and change_point_events state for parallel aggregation.';
CREATE FUNCTION iotstream.detector_events_finalfn(internal) RETURNS iotstream.detector_event[]
AS 'MODULE_PATHNAME', 'detector_events_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iotstream.detector_events_finalfn(internal) IS 'Internal: the flagged rows of the group, in time order.';
CREATE AGGREGATE iotstream.spike_dip_events(ts timestamptz, value float8, confidence float8, history_size int) (
    SFUNC = iotstream.spike_dip_events_transfn, STYPE = internal,
    FINALFUNC = iotstream.detector_events_finalfn,
    COMBINEFUNC = iotstream.detector_events_combine,
    SERIALFUNC = iotstream.detector_events_serialize,
    DESERIALFUNC = iotstream.detector_events_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.spike_dip_events(timestamptz, float8, float8, int) IS
    'Per group (a key), the rows spike_dip(value, confidence, history_size) OVER (ORDER BY ts) flags, in time order, as an array of (ts, value, score, p_value, martingale); no sort of the whole input. Rows with a NULL ts or value are skipped.';
CREATE AGGREGATE iotstream.spike_dip_events(ts timestamptz, value float8, confidence float8, history_size int, mode text) (
    SFUNC = iotstream.spike_dip_events_transfn, STYPE = internal,
    FINALFUNC = iotstream.detector_events_finalfn,
    COMBINEFUNC = iotstream.detector_events_combine,
    SERIALFUNC = iotstream.detector_events_serialize,
    DESERIALFUNC = iotstream.detector_events_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.spike_dip_events(timestamptz, float8, float8, int, text) IS
    'Per group (a key), the rows spike_dip(value, confidence, history_size, mode) OVER (ORDER BY ts) flags, in time order, as an array of (ts, value, score, p_value, martingale).';
CREATE AGGREGATE iotstream.change_point_events(ts timestamptz, value float8, confidence float8, history_size int) (
    SFUNC = iotstream.change_point_events_transfn, STYPE = internal,
    FINALFUNC = iotstream.detector_events_finalfn,
    COMBINEFUNC = iotstream.detector_events_combine,
    SERIALFUNC = iotstream.detector_events_serialize,
    DESERIALFUNC = iotstream.detector_events_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE iotstream.change_point_events(timestamptz, float8, float8, int) IS
    'Per group (a key), the rows change_point(value, confidence, history_size) OVER (ORDER BY ts) flags, in time order, as an array of (ts, value, score, p_value, martingale).';
-- Continuous detection: rollups and rules (src/detect.c, rollup.c, rules.c,
-- detect_worker.c).
--
-- Two kinds of worker share the work.  A source worker, in the transaction
-- of each batch, moves the table's watermark, counts late rows, and writes
-- the batch's rollup groups as one delta row.  A detection worker per
-- table (started by the launcher) folds the deltas into the rollup tables
-- and evaluates the rules as the watermark seals windows, each in one
-- transaction with its progress, detector state and anomalies.  Either
-- way, what a step reads and what it records commit together, so a crash
-- loses or repeats nothing.  A statement trigger bumps
-- iotstream.detect_catalog.version on every definition change: workers
-- compare it once per step and reload their cached definitions.

CREATE TABLE iotstream.detect_catalog (
    version bigint NOT NULL
);
INSERT INTO iotstream.detect_catalog VALUES (1);
COMMENT ON TABLE iotstream.detect_catalog IS 'One row: the version of the rule and rollup definitions, bumped on every change.';

CREATE FUNCTION iotstream._detect_catalog_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE iotstream.detect_catalog SET version = version + 1;
    PERFORM iotstream._wake_launcher();     -- it starts and stops detection workers
    RETURN NULL;
END $$;
COMMENT ON FUNCTION iotstream._detect_catalog_changed() IS 'Internal: bumps detect_catalog.version so workers reload their rules and rollups.';

-- The newest event time ingested into each stream table that has rules or
-- rollups.  Its row lock serializes the batches of one table (and
-- refresh_rollup with them).
CREATE TABLE iotstream.watermarks (
    relid      regclass PRIMARY KEY,
    watermark  timestamptz,
    updated_at timestamptz
);
COMMENT ON TABLE iotstream.watermarks IS 'Per stream table with rules or rollups: the newest event time ingested (the watermark before any lateness).';

CREATE TABLE iotstream.rollups (
    rollup_id     serial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    source_table  regclass NOT NULL,
    rollup_table  regclass NOT NULL,
    key_columns   text[] NOT NULL,
    value_columns text[] NOT NULL,
    bucket        interval NOT NULL CHECK (bucket > interval '0'),
    lateness      interval NOT NULL CHECK (lateness >= interval '0'),
    delta_table   regclass NOT NULL,  -- batches' groups waiting to be folded in
    delta_sql     text NOT NULL,      -- stores one batch's groups: $keys..., $buckets, $stats...
    upsert_sql    text NOT NULL,      -- folds every waiting delta into rollup_table
    refresh_sql   text NOT NULL,      -- recomputes [$1, $2) from the source table
    created_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE iotstream.rollups IS 'Rollups: per key and bucket, iotstream.stats of value columns; batches store their groups as deltas, the detection worker folds them in.';

CREATE TABLE iotstream.rollup_progress (
    rollup_id   int PRIMARY KEY REFERENCES iotstream.rollups ON DELETE CASCADE,
    rows_merged bigint NOT NULL DEFAULT 0,
    late_rows   bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz
);
COMMENT ON TABLE iotstream.rollup_progress IS 'Per rollup: rows merged, and rows that came after their bucket closed (merged only by refresh_rollup).';

CREATE TABLE iotstream.rules (
    rule_id       serial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    source_table  regclass NOT NULL,
    value_column  text NOT NULL,
    key_columns   text[] NOT NULL DEFAULT '{}',
    detector      text NOT NULL,
    params        jsonb NOT NULL DEFAULT '{}',
    window_size   interval NOT NULL CHECK (window_size > interval '0'),
    filter        text,
    lateness      interval NOT NULL CHECK (lateness >= interval '0'),
    severity      text NOT NULL,
    alert_topic   text,
    enabled       boolean NOT NULL DEFAULT true,
    eval_sql      text NOT NULL,      -- the rows or windows of [$1, $2)
    created_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE iotstream.rules IS 'Detection rules evaluated on the stream by the detection worker of their table; see iotstream.create_rule().';

CREATE TABLE iotstream.rule_progress (
    rule_id           int PRIMARY KEY REFERENCES iotstream.rules ON DELETE CASCADE,
    evaluated_until   timestamptz,    -- every window or row before this is done
    windows_evaluated bigint NOT NULL DEFAULT 0,
    rows_evaluated    bigint NOT NULL DEFAULT 0,
    anomalies         bigint NOT NULL DEFAULT 0,
    late_rows         bigint NOT NULL DEFAULT 0,
    last_evaluation   timestamptz
);
COMMENT ON TABLE iotstream.rule_progress IS 'Per rule: how far it has evaluated, and its counters.';

-- Per rule and key, the state of a row-by-row detector (a C struct).
CREATE TABLE iotstream.rule_state (
    rule_id int NOT NULL REFERENCES iotstream.rules ON DELETE CASCADE,
    key     jsonb NOT NULL,
    state   bytea NOT NULL,
    PRIMARY KEY (rule_id, key)
);
COMMENT ON TABLE iotstream.rule_state IS 'Per rule and key: the detector state of row-by-row rules, saved with each evaluation.';

CREATE TABLE iotstream.anomalies (
    id             bigserial PRIMARY KEY,
    rule_id        int,
    rule           text NOT NULL,
    key            jsonb NOT NULL,
    window_start   timestamptz,
    window_end     timestamptz,
    event_time     timestamptz,
    detector       text NOT NULL,
    value          float8,
    score          float8,
    params         jsonb NOT NULL,
    severity       text NOT NULL,
    detected_at    timestamptz NOT NULL DEFAULT now(),
    source         text,
    source_offsets jsonb,             -- [{topic, partition, next_offset}]: the consumers' positions when it was raised
    alert_topic    text,
    alerted_at     timestamptz        -- produced to alert_topic (the outbox mark)
);
CREATE INDEX ON iotstream.anomalies (rule, window_start);
CREATE INDEX ON iotstream.anomalies (id) WHERE alert_topic IS NOT NULL AND alerted_at IS NULL;
COMMENT ON TABLE iotstream.anomalies IS 'Every anomaly raised by a rule, with the positions of the table''s consumers when it was raised (its rows are before them); announced by NOTIFY iotstream_anomaly.';

CREATE FUNCTION iotstream._anomaly_payload(a iotstream.anomalies) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'id', a.id, 'rule', a.rule, 'key', a.key, 'window_start', a.window_start,
        'window_end', a.window_end, 'event_time', a.event_time, 'detector', a.detector,
        'value', a.value, 'score', a.score, 'severity', a.severity, 'detected_at', a.detected_at))
$$;
COMMENT ON FUNCTION iotstream._anomaly_payload(iotstream.anomalies) IS 'Internal: the JSON an anomaly is announced with (NOTIFY and alert topics).';

CREATE FUNCTION iotstream._anomaly_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('iotstream_anomaly', iotstream._anomaly_payload(NEW)::text);
    RETURN NULL;
END $$;
COMMENT ON FUNCTION iotstream._anomaly_notify() IS 'Internal: NOTIFY iotstream_anomaly for each new anomaly (delivered at commit).';
CREATE TRIGGER notify AFTER INSERT ON iotstream.anomalies
    FOR EACH ROW EXECUTE FUNCTION iotstream._anomaly_notify();

CREATE TRIGGER catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON iotstream.rules
    FOR EACH STATEMENT EXECUTE FUNCTION iotstream._detect_catalog_changed();
CREATE TRIGGER catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON iotstream.rollups
    FOR EACH STATEMENT EXECUTE FUNCTION iotstream._detect_catalog_changed();

-- Definitions name their tables by OID: when a table goes, so do the rules
-- and rollups that read it (as its indexes would), and a rollup whose table
-- was dropped.  Anomalies stay: they are history.
CREATE FUNCTION iotstream._detect_on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    delta oid;
BEGIN
    DELETE FROM iotstream.rules r
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND d.objid = r.source_table::oid;
    FOR delta IN
        DELETE FROM iotstream.rollups r
         USING pg_event_trigger_dropped_objects() d
         WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0
           AND d.objid IN (r.source_table::oid, r.rollup_table::oid)
        RETURNING r.delta_table::oid
    LOOP
        IF EXISTS (SELECT 1 FROM pg_class WHERE oid = delta) THEN
            EXECUTE format('DROP TABLE %s', delta::regclass);
        END IF;
    END LOOP;
    DELETE FROM iotstream.watermarks w
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND d.objid = w.relid::oid;
END $$;
COMMENT ON FUNCTION iotstream._detect_on_sql_drop() IS 'Internal: forgets the rules and rollups of dropped tables.';
CREATE EVENT TRIGGER iotstream_detect_sql_drop ON sql_drop EXECUTE FUNCTION iotstream._detect_on_sql_drop();

-- ---------------------------------------------------------------- helpers

CREATE FUNCTION iotstream._time_column(tbl regclass) RETURNS name
LANGUAGE plpgsql STABLE AS $$
DECLARE
    col name;
BEGIN
    SELECT time_column INTO col FROM iotstream.stream_table_settings WHERE relid = tbl;
    IF col IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'wrong_object_type',
            MESSAGE = format('%s is not a stream table', coalesce(tbl::text, 'NULL')),
            HINT = 'Rules and rollups read stream tables; create one with iotstream.create_stream_table().';
    END IF;
    RETURN col;
END $$;
COMMENT ON FUNCTION iotstream._time_column(regclass) IS 'Internal: the event-time column of a stream table, or an error with a hint.';

CREATE FUNCTION iotstream._check_columns(tbl regclass, cols text[], what text, numeric_only boolean) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    c text;
    typ regtype;
BEGIN
    IF cols IS NULL OR array_position(cols, NULL) IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = format('%s must be an array of column names without NULLs', what),
            HINT = 'Pass for example ARRAY[''sensor_id''], or ''{}'' for none.';
    END IF;
    FOREACH c IN ARRAY cols LOOP
        SELECT atttypid INTO typ FROM pg_attribute
         WHERE attrelid = tbl AND attname = c AND attnum > 0 AND NOT attisdropped;
        IF typ IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_column',
                MESSAGE = format('column %I of %s named in %s does not exist', c, tbl, what),
                HINT = format('Name columns of %s.', tbl);
        END IF;
        IF numeric_only AND typ NOT IN ('int2'::regtype, 'int4', 'int8', 'float4', 'float8', 'numeric') THEN
            RAISE EXCEPTION USING ERRCODE = 'datatype_mismatch',
                MESSAGE = format('column %I named in %s is of type %s, not a number', c, what, typ),
                HINT = 'Detectors and rollups summarize numeric columns (smallint to double precision, numeric).';
        END IF;
    END LOOP;
END $$;
COMMENT ON FUNCTION iotstream._check_columns(regclass, text[], text, boolean) IS 'Internal: errors with a hint unless every name is a column of tbl (numeric if asked).';

CREATE FUNCTION iotstream._check_interval(v interval, what text, allow_zero boolean) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF v IS NULL OR v < interval '0' OR (NOT allow_zero AND v = interval '0')
       OR extract(month FROM v) <> 0 OR extract(day FROM v) <> 0 AND v >= interval '1 month' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s must be a %s interval without months, not %s', what,
                             CASE WHEN allow_zero THEN 'non-negative' ELSE 'positive' END, coalesce(v::text, 'NULL')),
            HINT = 'Use for example ''1 minute'' or ''30 seconds''.';
    END IF;
END $$;
COMMENT ON FUNCTION iotstream._check_interval(interval, text, boolean) IS 'Internal: errors with a hint on a NULL, negative or month-based interval.';

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

-- ---------------------------------------------------------------- rollups

CREATE FUNCTION iotstream.create_rollup(
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

CREATE FUNCTION iotstream._rollup(name text) RETURNS iotstream.rollups
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r iotstream.rollups;
BEGIN
    SELECT * INTO r FROM iotstream.rollups x WHERE x.name = _rollup.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('rollup %L does not exist', name),
            HINT = 'See SELECT name FROM iotstream.rollups.';
    END IF;
    RETURN r;
END $$;
COMMENT ON FUNCTION iotstream._rollup(text) IS 'Internal: a rollup''s definition, or an error with a hint.';

-- Folds the waiting deltas into the rollup table, under a lock per rollup;
-- the detection worker (RollupApply) and refresh_rollup call it.
CREATE FUNCTION iotstream._rollup_apply(id int) RETURNS bigint
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

CREATE FUNCTION iotstream._rollup_pending(id int) RETURNS bigint
LANGUAGE sql AS $$
    SELECT (iotstream._as_owner(r.source_table, format('SELECT to_jsonb(count(*)) FROM %s', r.delta_table)) #>> '{}')::bigint
      FROM iotstream.rollups r WHERE r.rollup_id = id
$$;
COMMENT ON FUNCTION iotstream._rollup_pending(int) IS 'Internal: how many batch deltas of a rollup wait to be folded in.';

CREATE FUNCTION iotstream.refresh_rollup(name text, from_time timestamptz, to_time timestamptz) RETURNS bigint
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

CREATE FUNCTION iotstream.drop_rollup(name text, keep_table boolean DEFAULT false) RETURNS void
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

-- ---------------------------------------------------------------- rules

CREATE FUNCTION iotstream._param(params jsonb, key text, dflt float8, lo float8, hi float8, hint text) RETURNS float8
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v jsonb := params -> key;
BEGIN
    IF v IS NULL THEN
        IF dflt IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('params needs %s', key), HINT = hint;
        END IF;
        RETURN dflt;
    END IF;
    IF jsonb_typeof(v) <> 'number' OR (v #>> '{}')::float8 < lo OR (v #>> '{}')::float8 > hi THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('params.%s must be a number between %s and %s, not %s', key, lo, hi, v),
            HINT = hint;
    END IF;
    RETURN (v #>> '{}')::float8;
END $$;
COMMENT ON FUNCTION iotstream._param(jsonb, text, float8, float8, float8, text) IS 'Internal: a numeric detector parameter, its default, or an error with a hint.';

-- Rules read the rows of each newly sealed time range: without an index on
-- the time column that is a scan of the whole partition per evaluation.  A
-- BRIN index costs little to maintain on append-mostly stream tables.
CREATE FUNCTION iotstream._ensure_time_index(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    tcol name := iotstream._time_column(tbl);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                    WHERE i.indrelid = tbl AND a.attname = tcol) THEN
        EXECUTE format('CREATE INDEX ON %s USING brin (%I) WITH (pages_per_range = 16)', tbl, tcol);
    END IF;
END $$;
COMMENT ON FUNCTION iotstream._ensure_time_index(regclass) IS
    'Internal: gives a stream table a BRIN index on its time column unless an index already leads with it.';

-- Checks params, fills in defaults, and returns the SQL that reads [$1, $2).
-- Windowed detectors return (key, window_start, window_end, event_time, value,
-- score), one row per anomaly; the others return the rows (key, grp, ts,
-- value) in key and time order for the C detectors of rules.c.
-- "n+1, n+2, ..., " for the key columns that follow n fixed columns.
CREATE FUNCTION iotstream._key_positions(key_columns text[], n int) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(string_agg((n + o)::text || ', ', '' ORDER BY o), '')
      FROM unnest(key_columns) WITH ORDINALITY u(k, o)
$$;
COMMENT ON FUNCTION iotstream._key_positions(text[], int) IS 'Internal: the ORDER BY positions of a rule query''s key columns.';

CREATE FUNCTION iotstream._rule_sql(
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

CREATE FUNCTION iotstream.create_rule(
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

CREATE FUNCTION iotstream._rule(name text) RETURNS iotstream.rules
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r iotstream.rules;
BEGIN
    SELECT * INTO r FROM iotstream.rules x WHERE x.name = _rule.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('rule %L does not exist', name),
            HINT = 'See SELECT name FROM iotstream.rules.';
    END IF;
    RETURN r;
END $$;
COMMENT ON FUNCTION iotstream._rule(text) IS 'Internal: a rule''s definition, or an error with a hint.';

CREATE FUNCTION iotstream.enable_rule(name text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r iotstream.rules;
BEGIN
    PERFORM iotstream._require_superuser('enable a rule');
    r := iotstream._rule(name);
    UPDATE iotstream.rules SET enabled = true WHERE rule_id = r.rule_id;
END $$;
COMMENT ON FUNCTION iotstream.enable_rule(text) IS 'Resumes a rule; windows closed while it was disabled are evaluated when its detection worker next runs.';

CREATE FUNCTION iotstream.disable_rule(name text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r iotstream.rules;
BEGIN
    PERFORM iotstream._require_superuser('disable a rule');
    r := iotstream._rule(name);
    UPDATE iotstream.rules SET enabled = false WHERE rule_id = r.rule_id;
END $$;
COMMENT ON FUNCTION iotstream.disable_rule(text) IS 'Pauses a rule; its progress is kept.';

CREATE FUNCTION iotstream.drop_rule(name text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r iotstream.rules;
BEGIN
    PERFORM iotstream._require_superuser('drop a rule');
    r := iotstream._rule(name);
    DELETE FROM iotstream.rules WHERE rule_id = r.rule_id;
END $$;
COMMENT ON FUNCTION iotstream.drop_rule(text) IS 'Drops a rule and its progress; its anomalies stay.';

CREATE FUNCTION iotstream.alter_rule(
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

CREATE FUNCTION iotstream._evaluate(detector text, params jsonb, eval_sql text, window_size interval,
                                    from_time timestamptz, to_time timestamptz, source_table regclass)
RETURNS TABLE (key jsonb, window_start timestamptz, window_end timestamptz, event_time timestamptz,
               value float8, score float8)
AS 'MODULE_PATHNAME', 'iotstream_evaluate' LANGUAGE C;
COMMENT ON FUNCTION iotstream._evaluate(text, jsonb, text, interval, timestamptz, timestamptz, regclass) IS
    'Internal: runs a rule''s evaluation over [from_time, to_time) with fresh detector state, the code path the workers use, as the owner of source_table, and returns the anomalies.';

CREATE FUNCTION iotstream.backtest_rule(name text, from_time timestamptz, to_time timestamptz)
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

CREATE FUNCTION iotstream.backtest_rule(definition jsonb, from_time timestamptz, to_time timestamptz)
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

CREATE VIEW iotstream.rule_status AS
SELECT r.name AS rule, r.source_table, r.detector, r.enabled, r.window_size AS "window", r.lateness,
       w.watermark,
       w.watermark - r.lateness AS closable_until,
       p.evaluated_until,
       p.windows_evaluated, p.rows_evaluated, p.anomalies, p.late_rows, p.last_evaluation,
       (w.watermark - r.lateness) - p.evaluated_until AS lag
  FROM iotstream.rules r
  JOIN iotstream.rule_progress p USING (rule_id)
  LEFT JOIN iotstream.watermarks w ON w.relid = r.source_table;
COMMENT ON VIEW iotstream.rule_status IS
    'Per rule: the table''s watermark (newest event time), how far the rule has evaluated, windows and rows evaluated, anomalies, late rows (arrived after their window was evaluated), last evaluation, and lag (watermark - lateness - evaluated_until).';

CREATE VIEW iotstream.rollup_status AS
SELECT r.name AS rollup, r.source_table, r.rollup_table, r.bucket, r.lateness, w.watermark,
       p.rows_merged, p.late_rows, p.updated_at,
       iotstream._rollup_pending(r.rollup_id) AS pending_batches
  FROM iotstream.rollups r
  JOIN iotstream.rollup_progress p USING (rollup_id)
  LEFT JOIN iotstream.watermarks w ON w.relid = r.source_table;
COMMENT ON VIEW iotstream.rollup_status IS 'Per rollup: the watermark, rows merged, late rows (counted, not merged until refresh_rollup), and batches whose groups wait for the detection worker to fold them into the table (pending_batches).';

-- Definitions, progress and anomalies are user data: pg_dump keeps them.
SELECT pg_catalog.pg_extension_config_dump('iotstream.rules', '');
SELECT pg_catalog.pg_extension_config_dump('iotstream.rollups', '');
SELECT pg_catalog.pg_extension_config_dump('iotstream.rule_progress', '');
SELECT pg_catalog.pg_extension_config_dump('iotstream.rollup_progress', '');
SELECT pg_catalog.pg_extension_config_dump('iotstream.rule_state', '');
SELECT pg_catalog.pg_extension_config_dump('iotstream.watermarks', '');
SELECT pg_catalog.pg_extension_config_dump('iotstream.anomalies', '');
SELECT pg_catalog.pg_extension_config_dump('iotstream.rules_rule_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('iotstream.rollups_rollup_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('iotstream.anomalies_id_seq', '');
-- Parquet: write the result of any query to a local Parquet file.

CREATE FUNCTION iotstream.write_parquet(
    query text,
    path text,
    options jsonb DEFAULT '{}',
    OUT rows bigint,
    OUT bytes bigint,
    OUT row_groups int)
RETURNS record
AS 'MODULE_PATHNAME', 'write_parquet' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION iotstream.write_parquet(text, text, jsonb) IS
$$Writes the rows of query to the Parquet file path (absolute; replaced atomically through a temporary file in the same directory) and returns the rows, bytes and row groups written. Options: compression ("zstd" default, "snappy", "gzip", "none"), compression_level (zstd -7..22, default 3; gzip 1..9), compression_threads (1..8, default 2: pages are compressed on helper threads, in parallel and while rows are still being read; 1 keeps everything on the backend), row_group_size (bytes or "128MB", default 128MB, measured as plain-encoded bytes), page_size (default "1MB"), dictionary (default true), dictionary_size (per column chunk, then PLAIN; default "1MB"), metadata (object of strings, stored as key-value metadata next to iotstream.version). Types: bool BOOLEAN; int2/int4 INT32 INT(16/32); int8 INT64; float4 FLOAT; float8 DOUBLE; numeric(p,s) with p <= 38 and 0 <= s <= p DECIMAL (INT32, INT64 or FIXED_LEN_BYTE_ARRAY by precision; NaN is an error); numeric without a typmod STRING (exact text); text/varchar/bpchar/name STRING; json/jsonb STRING with JSON; uuid FIXED_LEN_BYTE_ARRAY(16) UUID; bytea BYTE_ARRAY; timestamptz INT64 TIMESTAMP(MICROS, UTC); timestamp INT64 TIMESTAMP(MICROS, local); date DATE (infinite values become the extreme values DuckDB reads as infinity); any other type STRING with its text output. Only superusers and members of pg_write_server_files may call it.$$;
-- Exports: sealed periods of a stream table as compacted Parquet files in a
-- local folder, Azure Blob Storage or ADLS Gen2, with a ledger.
--
-- Which periods, the ledger and re-exports are decided here; the bytes are
-- written by C (_export_write_files: Parquet encoding, block uploads, all
-- files of a period committed only at the end).

-- Storage credentials: the kind and its non-secret settings.  Secrets live
-- in storage_credential_secrets, which only superusers can read.
CREATE TABLE iotstream.storage_credentials (
    name        text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('shared_key', 'sas', 'service_principal', 'managed_identity')),
    account     text,
    options     jsonb NOT NULL DEFAULT '{}',   -- tenant, client_id, authority_host, endpoint
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE iotstream.storage_credentials IS 'Credentials for export destinations, without their secrets (see iotstream.storage_credential_secrets).';

CREATE TABLE iotstream.storage_credential_secrets (
    name    text PRIMARY KEY REFERENCES iotstream.storage_credentials ON DELETE CASCADE ON UPDATE CASCADE,
    secret  jsonb NOT NULL                      -- key, token or client_secret
);
COMMENT ON TABLE iotstream.storage_credential_secrets IS 'The secret of each storage credential; readable by superusers only, never shown in views, logs or errors.';
REVOKE ALL ON iotstream.storage_credentials, iotstream.storage_credential_secrets FROM PUBLIC;
GRANT SELECT ON iotstream.storage_credentials TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('iotstream.storage_credentials', '');
SELECT pg_catalog.pg_extension_config_dump('iotstream.storage_credential_secrets', '');

CREATE TABLE iotstream.exports (
    name              text PRIMARY KEY,
    source_table      regclass NOT NULL,
    destination       text NOT NULL,
    period            interval NOT NULL,
    lateness          interval NOT NULL,
    target_file_size  bigint NOT NULL,
    compression       text NOT NULL,
    credential        text REFERENCES iotstream.storage_credentials ON UPDATE CASCADE,
    schedule          text,
    options           jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE iotstream.exports IS 'Exports of stream tables to Parquet files; see iotstream.create_export().';
SELECT pg_catalog.pg_extension_config_dump('iotstream.exports', '');

-- The ledger: one row per attempt.  A period's current files are those of
-- its one 'exported' row; 'replacing' rows are older versions whose files
-- are still to be deleted, 'replaced' rows older versions already deleted,
-- 'failed' rows attempts that committed nothing.
CREATE TABLE iotstream.export_log (
    id             bigserial PRIMARY KEY,
    export         text NOT NULL REFERENCES iotstream.exports ON DELETE CASCADE ON UPDATE CASCADE,
    period_start   timestamptz NOT NULL,
    period_end     timestamptz NOT NULL,
    version        int NOT NULL,
    files          text[] NOT NULL DEFAULT '{}',
    rows           bigint,
    bytes          bigint,
    min_time       timestamptz,
    max_time       timestamptz,
    checksum       bigint,
    change_signal  bigint,
    status         text NOT NULL CHECK (status IN ('exported', 'replacing', 'replaced', 'failed')),
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz,
    error          text
);
CREATE UNIQUE INDEX export_log_current ON iotstream.export_log (export, period_start) WHERE status = 'exported';
CREATE INDEX export_log_export ON iotstream.export_log (export, period_start);
COMMENT ON TABLE iotstream.export_log IS
    'The export ledger: per export and period, each version''s files, rows, bytes, event-time range, content checksum, status (exported, replacing, replaced, failed), timings and error.';
SELECT pg_catalog.pg_extension_config_dump('iotstream.export_log', '');
SELECT pg_catalog.pg_extension_config_dump('iotstream.export_log_id_seq', '');
REVOKE ALL ON iotstream.exports, iotstream.export_log FROM PUBLIC;
GRANT SELECT ON iotstream.exports, iotstream.export_log TO PUBLIC;

CREATE FUNCTION iotstream._export_write_files(
    query text, destination text, folder text, file_id text, credential text,
    writer_options jsonb, upload_options jsonb, source_table regclass,
    OUT files text[], OUT rows bigint, OUT bytes bigint)
AS 'MODULE_PATHNAME', 'export_write_files' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iotstream._export_write_files(text, text, text, text, text, jsonb, jsonb, regclass) IS
    'Internal: writes the rows of query, run as the owner of source_table, as Parquet files folder/part-NNNNN-file_id.parquet under destination, cut at target_file_size; all become visible only at the end. folder and file_id must stay below destination.';

-- One component of an export path from a name its owner chose (a table
-- name may hold "/" or be ".."): bytes outside [A-Za-z0-9_.-], and a
-- leading dot, become %XX, so the result is one safe folder name.
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

CREATE FUNCTION iotstream._export_delete_files(files text[], credential text) RETURNS int
AS 'MODULE_PATHNAME', 'export_delete_files' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iotstream._export_delete_files(text[], text) IS 'Internal: deletes exported files (already gone counts as deleted).';

CREATE FUNCTION iotstream._export_upload_file(path text, url text, credential text, options jsonb DEFAULT '{}')
RETURNS bigint AS 'MODULE_PATHNAME', 'export_upload_file' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iotstream._export_upload_file(text, text, text, jsonb) IS
    'Internal: uploads a server file to a blob URL through the export upload path (Put Block + Put Block List); for benchmarks and tests. Superusers only.';

CREATE FUNCTION iotstream.parse_destination(destination text,
    OUT kind text, OUT endpoint text, OUT account text, OUT container text, OUT path text)
AS 'MODULE_PATHNAME', 'parse_destination' LANGUAGE C IMMUTABLE STRICT;
COMMENT ON FUNCTION iotstream.parse_destination(text) IS
    'How an export destination is read: kind (file or blob), blob endpoint, account, container and folder path.';
REVOKE ALL ON FUNCTION iotstream._export_write_files(text, text, text, text, text, jsonb, jsonb, regclass),
    iotstream._export_delete_files(text[], text), iotstream._export_upload_file(text, text, text, jsonb) FROM PUBLIC;

CREATE FUNCTION iotstream._export_require_superuser(what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'insufficient_privilege',
            MESSAGE = format('permission denied to %s', what),
            DETAIL = 'Storage credentials and exports are managed by superusers.',
            HINT = 'Ask a superuser to run it.';
    END IF;
END $$;
COMMENT ON FUNCTION iotstream._export_require_superuser(text) IS 'Internal: errors unless the current user is a superuser.';

CREATE FUNCTION iotstream.create_storage_credential(
    name text, kind text, account text DEFAULT NULL, key text DEFAULT NULL, token text DEFAULT NULL,
    tenant text DEFAULT NULL, client_id text DEFAULT NULL, client_secret text DEFAULT NULL,
    authority_host text DEFAULT NULL, endpoint text DEFAULT NULL, federated_token_file text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    secret jsonb;
    opts jsonb := jsonb_strip_nulls(jsonb_build_object('tenant', tenant, 'client_id', client_id,
                                    'authority_host', rtrim(authority_host, '/'), 'endpoint', endpoint,
                                    'federated_token_file', federated_token_file));
    missing text;
BEGIN
    PERFORM iotstream._export_require_superuser('create storage credentials');
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'a storage credential needs a name',
            HINT = 'Pass name => ''lake''.';
    END IF;
    CASE kind
    WHEN 'shared_key' THEN
        missing := CASE WHEN account IS NULL THEN 'account' WHEN key IS NULL THEN 'key' END;
        secret := jsonb_build_object('key', key);
    WHEN 'sas' THEN
        missing := CASE WHEN token IS NULL THEN 'token' END;
        secret := jsonb_build_object('token', ltrim(token, '?'));
    WHEN 'service_principal' THEN
        missing := CASE WHEN tenant IS NULL THEN 'tenant' WHEN client_id IS NULL THEN 'client_id'
                        WHEN client_secret IS NULL THEN 'client_secret' END;
        secret := jsonb_build_object('client_secret', client_secret);
    WHEN 'managed_identity' THEN
        secret := '{}';
    ELSE
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('unknown storage credential kind "%s"', kind),
            HINT = 'The kinds are shared_key (account, key), sas (token), service_principal (tenant, client_id, client_secret) and managed_identity (optional client_id).';
    END CASE;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('a %s storage credential needs %s', kind, missing),
            HINT = format('Pass %s => ... to iotstream.create_storage_credential().', missing);
    END IF;
    IF EXISTS (SELECT 1 FROM iotstream.storage_credentials c WHERE c.name = create_storage_credential.name) THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('storage credential "%s" already exists', name),
            HINT = 'Drop it with iotstream.drop_storage_credential() first, or pick another name.';
    END IF;
    INSERT INTO iotstream.storage_credentials (name, kind, account, options) VALUES (name, kind, account, opts);
    INSERT INTO iotstream.storage_credential_secrets (name, secret) VALUES (name, secret);
END $$;
COMMENT ON FUNCTION iotstream.create_storage_credential(text, text, text, text, text, text, text, text, text, text, text) IS
    'Creates a storage credential for exports: shared_key (account, key), sas (token), service_principal (tenant, client_id, client_secret; authority_host overrides https://login.microsoftonline.com) or managed_identity (IMDS with optional client_id and endpoint; workload identity with federated_token_file, tenant and client_id, or AZURE_FEDERATED_TOKEN_FILE, AZURE_TENANT_ID and AZURE_CLIENT_ID in the server''s environment). The secret is readable by superusers only.';

CREATE FUNCTION iotstream.drop_storage_credential(name text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM iotstream._export_require_superuser('drop storage credentials');
    IF EXISTS (SELECT 1 FROM iotstream.exports e WHERE e.credential = drop_storage_credential.name) THEN
        RAISE EXCEPTION USING ERRCODE = 'dependent_objects_still_exist',
            MESSAGE = format('storage credential "%s" is used by an export', name),
            HINT = 'Drop the export or give it another credential with iotstream.alter_export() first.';
    END IF;
    DELETE FROM iotstream.storage_credentials c WHERE c.name = drop_storage_credential.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('storage credential "%s" does not exist', name),
            HINT = 'See iotstream.storage_credential_info for the credentials that exist.';
    END IF;
END $$;
COMMENT ON FUNCTION iotstream.drop_storage_credential(text) IS 'Removes a storage credential and its secret.';

CREATE VIEW iotstream.storage_credential_info AS
SELECT c.name, c.kind, c.account, c.options,
       CASE c.kind WHEN 'shared_key' THEN '{"key": "********"}'::jsonb
                   WHEN 'sas' THEN '{"token": "********"}'::jsonb
                   WHEN 'service_principal' THEN '{"client_secret": "********"}'::jsonb
                   ELSE '{}'::jsonb END AS secret,
       c.created_at
  FROM iotstream.storage_credentials c;
COMMENT ON VIEW iotstream.storage_credential_info IS 'Each storage credential with its secret masked as ********.';
GRANT SELECT ON iotstream.storage_credential_info TO PUBLIC;

-- Options of an export that go to the uploader; the rest go to the writer.
CREATE FUNCTION iotstream._export_upload_keys() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY['block_size', 'parallel_uploads', 'max_retries', 'request_timeout_ms'] $$;
COMMENT ON FUNCTION iotstream._export_upload_keys() IS 'Internal: the export options that configure uploads.';

CREATE FUNCTION iotstream._export_check_options(writer_options jsonb, upload_options jsonb) RETURNS void
AS 'MODULE_PATHNAME', 'export_check_options' LANGUAGE C STRICT;
COMMENT ON FUNCTION iotstream._export_check_options(jsonb, jsonb) IS 'Internal: validates export options before they are stored.';

CREATE FUNCTION iotstream._check_export(e iotstream.exports) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    d record;
    cred iotstream.storage_credentials;
    secs numeric := extract(epoch FROM e.period);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM iotstream.stream_table_settings s WHERE s.relid = e.source_table) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s is not a stream table', e.source_table),
            HINT = 'Exports read stream tables; create one with iotstream.create_stream_table().';
    END IF;
    IF e.period IS NULL OR secs <= 0 OR secs > 86400 OR 86400 % secs <> 0
       OR extract(month FROM e.period) <> 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid export period "%s"', e.period),
            HINT = 'A period divides a day evenly: ''15 minutes'', ''1 hour'', ''6 hours'' or ''1 day''.';
    END IF;
    IF e.lateness IS NULL OR e.lateness < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid export lateness "%s"', e.lateness),
            HINT = 'Lateness is how long after its end a period is sealed, such as ''10 minutes''.';
    END IF;
    IF e.target_file_size IS NULL OR e.target_file_size < 1024 * 1024 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'target_file_size must be at least 1MB',
            HINT = 'Data lakes read best with files of 128MB to 1GB; the default is 256MB.';
    END IF;
    IF e.compression NOT IN ('zstd', 'snappy', 'gzip', 'none') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('unknown compression "%s"', e.compression),
            HINT = 'Use zstd, snappy, gzip or none.';
    END IF;
    IF jsonb_typeof(e.options) <> 'object' OR e.options ? 'compression' OR e.options ? 'target_file_size' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'invalid export options',
            HINT = 'Options are a JSON object; compression and target_file_size are arguments of their own.';
    END IF;
    PERFORM iotstream._export_check_options(
        (SELECT coalesce(jsonb_object_agg(key, value), '{}') FROM jsonb_each(e.options)
          WHERE key <> ALL (iotstream._export_upload_keys())),
        (SELECT coalesce(jsonb_object_agg(key, value), '{}') FROM jsonb_each(e.options)
          WHERE key = ANY (iotstream._export_upload_keys())));
    d := iotstream.parse_destination(e.destination);
    IF e.credential IS NOT NULL THEN
        SELECT * INTO cred FROM iotstream.storage_credentials c WHERE c.name = e.credential;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_object',
                MESSAGE = format('storage credential "%s" does not exist', e.credential),
                HINT = 'Create it with iotstream.create_storage_credential().';
        END IF;
        IF cred.account IS NOT NULL AND d.account IS NOT NULL AND cred.account <> d.account THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('storage credential "%s" is for account "%s", not "%s"', e.credential, cred.account, d.account),
                HINT = 'Use a credential of the destination''s storage account.';
        END IF;
    ELSIF d.kind = 'blob' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('destination "%s" needs a credential', e.destination),
            HINT = 'Create one with iotstream.create_storage_credential() and pass credential => its name.';
    END IF;
END $$;
COMMENT ON FUNCTION iotstream._check_export(iotstream.exports) IS 'Internal: validates an export''s settings with actionable errors.';

CREATE FUNCTION iotstream._schedule_export(name text, schedule text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF schedule IS NULL THEN
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
            EXECUTE 'SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = $1' USING 'iotstream_export_' || name;
        END IF;
        RETURN;
    END IF;
    PERFORM iotstream._require_pg_cron();
    -- DROP EXTENSION cannot reach pg_cron's table, so the job cleans up
    -- after it: once iotstream is gone, its next run unschedules it
    -- (PL/pgSQL parses the run_export call only when it runs)
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
      USING 'iotstream_export_' || name, schedule,
            format('DO $iotstream_job$BEGIN IF to_regprocedure(%L) IS NULL THEN PERFORM cron.unschedule(%L); '
                   'ELSE PERFORM count(*) FROM iotstream.run_export(%L); END IF; END$iotstream_job$',
                   'iotstream.run_export(text)', 'iotstream_export_' || name, name);
END $$;
COMMENT ON FUNCTION iotstream._schedule_export(text, text) IS 'Internal: registers (or with NULL removes) the pg_cron job iotstream_export_<name>, which unschedules itself once the extension is dropped.';

CREATE FUNCTION iotstream.create_export(
    name text, source_table regclass, destination text,
    period interval DEFAULT '1 hour', lateness interval DEFAULT '10 minutes',
    target_file_size text DEFAULT '256 MB', compression text DEFAULT 'zstd',
    credential text DEFAULT NULL, schedule text DEFAULT '*/5 * * * *', options jsonb DEFAULT '{}')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    e iotstream.exports;
BEGIN
    PERFORM iotstream._export_require_superuser('create exports');
    IF name IS NULL OR name !~ '^[A-Za-z0-9_.-]+$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid export name "%s"', name),
            HINT = 'Use letters, digits, underscores, dots and hyphens.';
    END IF;
    IF EXISTS (SELECT 1 FROM iotstream.exports x WHERE x.name = create_export.name) THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('export "%s" already exists', name),
            HINT = 'Change it with iotstream.alter_export(), or drop it with iotstream.drop_export().';
    END IF;
    e := ROW(name, source_table, destination, period, lateness, pg_catalog.pg_size_bytes(target_file_size),
             lower(compression), credential, schedule, coalesce(options, '{}'), now());
    PERFORM iotstream._check_export(e);
    INSERT INTO iotstream.exports SELECT e.*;
    PERFORM iotstream._schedule_export(name, schedule);
END $$;
COMMENT ON FUNCTION iotstream.create_export(text, regclass, text, interval, interval, text, text, text, text, jsonb) IS
    'Creates an export of a stream table: every sealed period (end + lateness < now()) becomes about ceil(bytes / target_file_size) Parquet files at destination/<table>/date=YYYY-MM-DD/hour=HH/part-NNNNN-<uuid>.parquet, by event time. Registers the pg_cron job iotstream_export_<name> running iotstream.run_export(name) (schedule => NULL: none). Options: the writer options of write_parquet (compression_level, row_group_size, ...) and block_size (16MB), parallel_uploads (4), max_retries (6), request_timeout_ms (120000).';

CREATE FUNCTION iotstream.alter_export(
    name text, destination text DEFAULT NULL, lateness interval DEFAULT NULL,
    target_file_size text DEFAULT NULL, compression text DEFAULT NULL, credential text DEFAULT NULL,
    schedule text DEFAULT NULL, options jsonb DEFAULT NULL, unschedule boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    e iotstream.exports;
BEGIN
    PERFORM iotstream._export_require_superuser('alter exports');
    SELECT * INTO e FROM iotstream.exports x WHERE x.name = alter_export.name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object', MESSAGE = format('export "%s" does not exist', name),
            HINT = 'Create it with iotstream.create_export().';
    END IF;
    e.destination := coalesce(destination, e.destination);
    e.lateness := coalesce(lateness, e.lateness);
    e.target_file_size := coalesce(pg_catalog.pg_size_bytes(target_file_size), e.target_file_size);
    e.compression := coalesce(lower(compression), e.compression);
    e.credential := coalesce(credential, e.credential);
    e.schedule := CASE WHEN unschedule THEN NULL ELSE coalesce(schedule, e.schedule) END;
    e.options := e.options || coalesce(options, '{}');
    PERFORM iotstream._check_export(e);
    UPDATE iotstream.exports x SET destination = e.destination, lateness = e.lateness,
        target_file_size = e.target_file_size, compression = e.compression, credential = e.credential,
        schedule = e.schedule, options = e.options
     WHERE x.name = e.name;
    PERFORM iotstream._schedule_export(e.name, e.schedule);
END $$;
COMMENT ON FUNCTION iotstream.alter_export(text, text, interval, text, text, text, text, jsonb, boolean) IS
    'Changes an export; NULL keeps a setting, options are merged, unschedule => true removes the pg_cron job. The period cannot change: it names the files already written (drop and create the export instead). New settings apply to periods exported from then on.';

CREATE FUNCTION iotstream.drop_export(name text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM iotstream._export_require_superuser('drop exports');
    IF NOT EXISTS (SELECT 1 FROM iotstream.exports x WHERE x.name = drop_export.name) THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object', MESSAGE = format('export "%s" does not exist', name),
            HINT = 'See iotstream.exports for the exports that exist.';
    END IF;
    PERFORM iotstream._schedule_export(name, NULL);
    DELETE FROM iotstream.exports x WHERE x.name = drop_export.name;
END $$;
COMMENT ON FUNCTION iotstream.drop_export(text) IS
    'Removes an export, its ledger and its pg_cron job. Files already exported stay where they are.';

-- Exports name their table by OID: when the table goes, so do its exports
-- and their pg_cron jobs (which would otherwise fail every few minutes).
CREATE FUNCTION iotstream._export_on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM iotstream.drop_export(e.name)
       FROM iotstream.exports e, pg_event_trigger_dropped_objects() d
      WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND d.objid = e.source_table::oid;
END $$;
COMMENT ON FUNCTION iotstream._export_on_sql_drop() IS 'Internal: drops the exports (and their pg_cron jobs) of dropped tables.';
CREATE EVENT TRIGGER iotstream_export_sql_drop ON sql_drop EXECUTE FUNCTION iotstream._export_on_sql_drop();

-- The change signal of [from_ts, to_ts): inserted + updated + deleted tuples
-- of the partitions overlapping it, from the cumulative statistics.  NULL
-- when partitions do not cover the whole range (dropped or detached by
-- retention): such a period is never re-exported.
CREATE FUNCTION iotstream._change_signal(relid regclass, from_ts timestamptz, to_ts timestamptz)
RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN sum(least(p.range_end, to_ts) - greatest(p.range_start, from_ts)) >= to_ts - from_ts
                THEN sum(pg_catalog.pg_stat_get_tuples_inserted(p.partition)
                         + pg_catalog.pg_stat_get_tuples_updated(p.partition)
                         + pg_catalog.pg_stat_get_tuples_deleted(p.partition))::bigint END
      FROM iotstream.partitions(relid) p
     WHERE p.range_start < to_ts AND p.range_end > from_ts
$$;
COMMENT ON FUNCTION iotstream._change_signal(regclass, timestamptz, timestamptz) IS
    'Internal: the cumulative insert/update/delete count of the partitions under a period; a change means the period may have late rows.';

-- A WHERE clause selecting [from_ts, to_ts) on the table's time column.
CREATE FUNCTION iotstream._export_range(relid regclass, time_column name, from_ts timestamptz, to_ts timestamptz)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN a.atttypid = 'timestamptz'::regtype
                THEN format('%I >= %L::timestamptz AND %I < %L::timestamptz', time_column, from_ts, time_column, to_ts)
                ELSE format('%I >= (%L::timestamptz AT TIME ZONE ''UTC'') AND %I < (%L::timestamptz AT TIME ZONE ''UTC'')',
                            time_column, from_ts, time_column, to_ts) END
      FROM pg_catalog.pg_attribute a WHERE a.attrelid = relid AND a.attname = time_column
$$;
COMMENT ON FUNCTION iotstream._export_range(regclass, name, timestamptz, timestamptz) IS
    'Internal: the WHERE clause of a period on a time column (timestamp and date columns read as UTC).';

-- Row count, checksum and time range of a period: what the ledger compares.
CREATE FUNCTION iotstream._period_summary(relid regclass, time_column name, from_ts timestamptz, to_ts timestamptz,
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

-- Exports one period as version `version`; replaces the files of `old`.
CREATE FUNCTION iotstream._export_period(e iotstream.exports, time_column name, from_ts timestamptz,
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

-- Deletes the files of replaced versions; a failure leaves them for the next run.
CREATE FUNCTION iotstream._export_delete_replaced(e iotstream.exports) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r iotstream.export_log;
    msg text;
BEGIN
    FOR r IN SELECT * FROM iotstream.export_log x WHERE x.export = e.name AND x.status = 'replacing' ORDER BY x.id LOOP
        BEGIN
            PERFORM iotstream._export_delete_files(r.files, e.credential);
            UPDATE iotstream.export_log x SET status = 'replaced', error = NULL WHERE x.id = r.id;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
            UPDATE iotstream.export_log x SET error = 'deleting the replaced files failed: ' || msg WHERE x.id = r.id;
            RAISE WARNING 'export %: could not delete the replaced files of period %: %', e.name, r.period_start, msg;
            RETURN;
        END;
    END LOOP;
END $$;
COMMENT ON FUNCTION iotstream._export_delete_replaced(iotstream.exports) IS
    'Internal: deletes the files of versions replaced by a re-export; retried on the next run if storage fails.';

CREATE FUNCTION iotstream.run_export(name text)
RETURNS TABLE (period_start timestamptz, period_end timestamptz, version int, files int, rows bigint,
               bytes bigint, status text)
LANGUAGE plpgsql AS $$
DECLARE
    e iotstream.exports;
    tcol name;
    cutoff timestamptz;
    todo record;
    l iotstream.export_log;
    msg text;
    detail text;
    cur record;
BEGIN
    PERFORM iotstream._export_require_superuser('run exports');
    SELECT * INTO e FROM iotstream.exports x WHERE x.name = run_export.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object', MESSAGE = format('export "%s" does not exist', name),
            HINT = 'Create it with iotstream.create_export().';
    END IF;
    -- one run at a time per export (the cron job and a manual call)
    IF NOT pg_try_advisory_xact_lock(hashtext('iotstream.run_export'), hashtext(e.name)) THEN
        RAISE NOTICE 'export % is already running', e.name;
        RETURN;
    END IF;
    SELECT s.time_column INTO tcol FROM iotstream.stream_table_settings s WHERE s.relid = e.source_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s is no longer a stream table', e.source_table),
            HINT = 'Drop the export, or register the table again with iotstream.create_stream_table().';
    END IF;
    cutoff := now() - e.lateness;

    PERFORM iotstream._export_delete_replaced(e);

    -- Work: periods exported whose change signal moved and whose content
    -- differs (late rows), then sealed periods never exported.
    FOR todo IN
        WITH parts AS (
            -- statistics are read once per run and cached for the transaction
            SELECT p.range_start, p.range_end,
                   pg_catalog.pg_stat_get_tuples_inserted(p.partition)
                   + pg_catalog.pg_stat_get_tuples_updated(p.partition)
                   + pg_catalog.pg_stat_get_tuples_deleted(p.partition) AS sig
              FROM iotstream.partitions(e.source_table) p),
        periods AS (
            SELECT DISTINCT g AS ps
              FROM parts, generate_series(date_bin(e.period, parts.range_start, 'epoch'),
                                          parts.range_end - interval '1 microsecond', e.period) g
             WHERE parts.range_start < cutoff AND g + e.period <= cutoff),
        exported AS (
            -- as _change_signal(): NULL unless partitions cover the whole period
            SELECT x, x.period_start AS ps,
                   (SELECT CASE WHEN sum(least(pp.range_end, x.period_end) - greatest(pp.range_start, x.period_start))
                                     >= x.period_end - x.period_start
                                THEN sum(pp.sig)::bigint END
                      FROM parts pp WHERE pp.range_start < x.period_end AND pp.range_end > x.period_start) AS sig
              FROM iotstream.export_log x
             WHERE x.export = e.name AND x.status = 'exported')
        SELECT exported.x AS old, exported.ps FROM exported
         WHERE exported.sig IS NOT NULL AND exported.sig IS DISTINCT FROM (exported.x).change_signal
        UNION ALL
        SELECT NULL, periods.ps FROM periods
         WHERE NOT EXISTS (SELECT 1 FROM iotstream.export_log x
                            WHERE x.export = e.name AND x.period_start = periods.ps AND x.status = 'exported')
        ORDER BY 2
    LOOP
        l := NULL;
        BEGIN
            IF (todo.old).id IS NOT NULL THEN
                -- the signal moved: re-export only if the content changed
                SELECT * INTO cur FROM iotstream._period_summary(e.source_table, tcol, todo.ps, todo.ps + e.period);
                IF cur.rows = (todo.old).rows AND cur.checksum = (todo.old).checksum THEN
                    UPDATE iotstream.export_log x
                       SET change_signal = iotstream._change_signal(e.source_table, x.period_start, x.period_end)
                     WHERE x.id = (todo.old).id;
                    CONTINUE;
                END IF;
                l := iotstream._export_period(e, tcol, todo.ps, todo.ps + e.period, (todo.old).version + 1, todo.old);
            ELSE
                l := iotstream._export_period(e, tcol, todo.ps, todo.ps + e.period,
                        coalesce((SELECT max(x.version) FROM iotstream.export_log x
                                   WHERE x.export = e.name AND x.period_start = todo.ps AND x.status <> 'failed'), 0) + 1,
                        NULL);
            END IF;
        EXCEPTION WHEN OTHERS THEN
            -- nothing of this attempt is visible; the ledger keeps the old version
            GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
            INSERT INTO iotstream.export_log (export, period_start, period_end, version, status, started_at,
                                              finished_at, error)
            VALUES (e.name, todo.ps, todo.ps + e.period, coalesce((todo.old).version, 0) + 1, 'failed',
                    now(), clock_timestamp(), msg || coalesce(' ' || detail, ''));
            RAISE WARNING 'export % of period % failed: %', e.name, todo.ps, msg;
            period_start := todo.ps;
            period_end := todo.ps + e.period;
            version := coalesce((todo.old).version, 0) + 1;
            files := 0;
            rows := NULL;
            bytes := NULL;
            status := 'failed';
            RETURN NEXT;
            -- storage is likely down: the next run resumes here
            RETURN;
        END;
        period_start := l.period_start;
        period_end := l.period_end;
        version := l.version;
        files := cardinality(l.files);
        rows := l.rows;
        bytes := l.bytes;
        status := l.status;
        RETURN NEXT;
    END LOOP;

    PERFORM iotstream._export_delete_replaced(e);
END $$;
COMMENT ON FUNCTION iotstream.run_export(text) IS
    'Exports every sealed period of the export not exported yet, and re-exports periods that got late rows (their change signal moved and their row count or checksum differs), replacing their files. Returns one row per period written. Idempotent: a second run writes nothing. A failure is recorded as a failed ledger row and stops the run; the next run resumes.';

CREATE VIEW iotstream.export_status AS
SELECT e.name, e.source_table, e.destination, e.period, e.lateness, e.target_file_size, e.compression,
       e.credential, e.schedule,
       (SELECT max(l.period_end) FROM iotstream.export_log l WHERE l.export = e.name AND l.status = 'exported') AS exported_until,
       (SELECT count(*) FROM iotstream.export_log l WHERE l.export = e.name AND l.status = 'exported') AS periods,
       (SELECT sum(cardinality(l.files)) FROM iotstream.export_log l WHERE l.export = e.name AND l.status = 'exported') AS files,
       (SELECT sum(l.rows) FROM iotstream.export_log l WHERE l.export = e.name AND l.status = 'exported') AS rows,
       (SELECT sum(l.bytes) FROM iotstream.export_log l WHERE l.export = e.name AND l.status = 'exported') AS bytes,
       (SELECT count(*) FROM iotstream.export_log l WHERE l.export = e.name AND l.version > 1 AND l.status = 'exported') AS reexported_periods,
       f.finished_at AS last_error_at, f.error AS last_error
  FROM iotstream.exports e
  LEFT JOIN LATERAL (SELECT l.finished_at, l.error FROM iotstream.export_log l
                      WHERE l.export = e.name AND l.status = 'failed' ORDER BY l.id DESC LIMIT 1) f ON true;
COMMENT ON VIEW iotstream.export_status IS 'Per export: settings, how far it has exported, periods, files, rows and bytes, re-exported periods, and the last failure. No secrets.';
GRANT SELECT ON iotstream.export_status TO PUBLIC;
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

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

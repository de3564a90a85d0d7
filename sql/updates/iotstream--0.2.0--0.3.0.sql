-- iotstream 0.2.0 -> 0.3.0.
--
-- After this script the catalog is what CREATE EXTENSION iotstream VERSION
-- '0.3.0' makes (test/integration/01_upgrade.sh walks 0.1.0 -> 0.2.0 ->
-- 0.3.0 and compares).  Each change below names the issue it serves.
\echo Use "ALTER EXTENSION iotstream UPDATE TO '0.3.0'" to load this file. \quit

-- ------------------------------------------------------------ sources
-- Sources have a kind, the implementation of the source interface that
-- reads them (issues 19 and 20 add mqtt and file); every 0.2.0 source is a
-- Kafka or Event Hubs source.
ALTER TABLE iotstream.sources
    ADD COLUMN kind text NOT NULL DEFAULT 'kafka' CHECK (kind IN ('kafka', 'mqtt', 'file'));
COMMENT ON TABLE iotstream.sources IS 'Sources (kind kafka: Kafka and Event Hubs; mqtt; file). options holds librdkafka properties and iotstream settings; secrets live in iotstream.source_secrets.';

-- Dedup keys: one row per batch and key shard instead of one row per key
-- (issue 21).  A row per key made every ingested message write a b-tree
-- entry at a random place; a row per batch and shard writes 16 rows a
-- batch, and expires a whole row at a time.  The keys seen within the
-- horizon move over, grouped by the time they were seen.
ALTER TABLE iotstream.source_dedup RENAME TO source_dedup_0_2;
CREATE TABLE iotstream.source_dedup (
    source_id   int NOT NULL,
    seen_at     timestamptz NOT NULL,
    shard       smallint NOT NULL CHECK (shard BETWEEN 0 AND 31),
    keys        bytea NOT NULL
) WITH (toast_tuple_target = 8160);
ALTER TABLE iotstream.source_dedup ALTER COLUMN keys SET STORAGE EXTERNAL;
CREATE INDEX source_dedup_lookup ON iotstream.source_dedup (source_id, shard, seen_at);
COMMENT ON TABLE iotstream.source_dedup IS 'Hashes of the dedup keys ingested within each source''s horizon: one row per batch and key shard.';
REVOKE ALL ON iotstream.source_dedup FROM PUBLIC;
INSERT INTO iotstream.source_dedup (source_id, seen_at, shard, keys)
SELECT source_id, seen_at, ((key_hash >> 59) & 31)::smallint,
       -- 0.2.0 kept 64 bits: the second half 0 matches any (src/ingest/dedup.c)
       string_agg(int8send(key_hash) || '\x0000000000000000'::bytea, ''::bytea)
  FROM iotstream.source_dedup_0_2
 GROUP BY 1, 2, 3;
DROP TABLE iotstream.source_dedup_0_2;

-- ------------------------------------------------------------ exports
-- Delta Lake tables (issue 18): exports have a format, delta by default for
-- new exports; 0.2.0's exports keep writing Parquet folders.  The ledger
-- keeps each version's add actions and when a re-export removed it.
ALTER TABLE iotstream.exports
    ADD COLUMN format text NOT NULL DEFAULT 'parquet' CHECK (format IN ('delta', 'parquet')),
    ADD COLUMN delta_runs bigint NOT NULL DEFAULT 0,
    ADD COLUMN delta_state jsonb NOT NULL DEFAULT '{}';
ALTER TABLE iotstream.exports ALTER COLUMN format SET DEFAULT 'delta';
ALTER TABLE iotstream.export_log ADD COLUMN removed_at timestamptz, ADD COLUMN delta_files jsonb;

COMMENT ON TABLE iotstream.exports IS 'Exports of stream tables to Delta tables or Parquet folders; see iotstream.create_export().';

COMMENT ON TABLE iotstream.export_log IS
    'The export ledger: per export and period, each version''s files, rows, bytes, event-time range, content checksum, status (exported, replacing, replaced, failed), timings and error; for Delta tables, when a version was removed and its add actions.';


-- the writer returns per-file sizes, rows and statistics: new OUT columns
DROP FUNCTION iotstream._export_write_files(text, text, text, text, text, jsonb, jsonb, regclass);

CREATE FUNCTION iotstream._export_write_files(
    query text, destination text, folder text, file_id text, credential text,
    writer_options jsonb, upload_options jsonb, source_table regclass,
    OUT files text[], OUT rows bigint, OUT bytes bigint, OUT sizes bigint[], OUT file_rows bigint[],
    OUT stats text[], OUT schema text)
AS 'MODULE_PATHNAME', 'export_write_files' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iotstream._export_write_files(text, text, text, text, text, jsonb, jsonb, regclass) IS
    'Internal: writes the rows of query, run as the owner of source_table, as Parquet files folder/part-NNNNN-file_id.parquet under destination, cut at target_file_size; all become visible only at the end. folder and file_id must stay below destination. Returns per file its size, rows and Delta statistics, and the files'' columns as Delta schema fields.';

REVOKE ALL ON FUNCTION iotstream._export_write_files(text, text, text, text, text, jsonb, jsonb, regclass) FROM PUBLIC;


-- create_export and alter_export take a format
DROP FUNCTION iotstream.create_export(text, regclass, text, interval, interval, text, text, text, text, jsonb);
DROP FUNCTION iotstream.alter_export(text, text, interval, text, text, text, text, jsonb, boolean);

CREATE FUNCTION iotstream.create_export(
    name text, source_table regclass, destination text,
    period interval DEFAULT '1 hour', lateness interval DEFAULT '10 minutes',
    target_file_size text DEFAULT '256 MB', compression text DEFAULT 'zstd',
    credential text DEFAULT NULL, schedule text DEFAULT '*/5 * * * *', options jsonb DEFAULT '{}',
    format text DEFAULT 'delta')
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
             lower(compression), credential, schedule, coalesce(options, '{}'), now(), lower(format), 0, '{}');
    PERFORM iotstream._check_export(e);
    INSERT INTO iotstream.exports SELECT e.*;
    PERFORM iotstream._schedule_export(name, schedule);
END $$;
COMMENT ON FUNCTION iotstream.create_export(text, regclass, text, interval, interval, text, text, text, text, jsonb, text) IS
    'Creates an export of a stream table: every sealed period (end + lateness < now()) becomes about ceil(bytes / target_file_size) Parquet files, by event time. format delta (the default): a Delta Lake table at destination/<table>, files in event_date=YYYY-MM-DD/event_hour=H/, one log commit per run; format parquet: destination/<table>/date=YYYY-MM-DD/hour=HH/part-NNNNN-<uuid>.parquet without a log. Registers the pg_cron job iotstream_export_<name> running iotstream.run_export(name) (schedule => NULL: none). Options: the writer options of write_parquet (compression_level, row_group_size, ...), block_size (16MB), parallel_uploads (4), max_retries (6), request_timeout_ms (120000), and for delta deleted_file_retention (7 days).';

CREATE FUNCTION iotstream.alter_export(
    name text, destination text DEFAULT NULL, lateness interval DEFAULT NULL,
    target_file_size text DEFAULT NULL, compression text DEFAULT NULL, credential text DEFAULT NULL,
    schedule text DEFAULT NULL, options jsonb DEFAULT NULL, unschedule boolean DEFAULT false,
    format text DEFAULT NULL)
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
    IF lower(format) IS DISTINCT FROM e.format AND format IS NOT NULL THEN
        -- the files already written are laid out, and logged, for the old format
        IF EXISTS (SELECT 1 FROM iotstream.export_log l WHERE l.export = e.name AND l.status <> 'failed') THEN
            RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
                MESSAGE = format('export "%s" has exported periods as %s', e.name, e.format),
                DETAIL = 'The format decides the folder layout and whether a Delta log lists the files.',
                HINT = 'Drop the export and create it again with the new format (and a new destination).';
        END IF;
        e.format := lower(format);
    END IF;
    IF e.format = 'delta' AND e.destination IS DISTINCT FROM (SELECT x.destination FROM iotstream.exports x WHERE x.name = e.name)
       AND EXISTS (SELECT 1 FROM iotstream.export_log l WHERE l.export = e.name AND l.status <> 'failed') THEN
        -- the Delta table's log, and the files later commits replace, are at the old place
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('export "%s" has committed periods to its delta table', e.name),
            DETAIL = 'A Delta table cannot move: its log lists the files at its destination.',
            HINT = 'Drop the export and create it again with the new destination.';
    END IF;
    PERFORM iotstream._check_export(e);
    UPDATE iotstream.exports x SET destination = e.destination, lateness = e.lateness,
        target_file_size = e.target_file_size, compression = e.compression, credential = e.credential,
        schedule = e.schedule, options = e.options, format = e.format
     WHERE x.name = e.name;
    PERFORM iotstream._schedule_export(e.name, e.schedule);
END $$;
COMMENT ON FUNCTION iotstream.alter_export(text, text, interval, text, text, text, text, jsonb, boolean, text) IS
    'Changes an export; NULL keeps a setting, options are merged, unschedule => true removes the pg_cron job. The period cannot change: it names the files already written (drop and create the export instead); neither can the format once periods were exported, nor the destination of a Delta table. New settings apply to periods exported from then on.';

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
    tbl text;
    pcols text[];
    pvals jsonb;
    file_id text;
    now_ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
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
        tbl := iotstream._path_component((SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid = e.source_table));
        IF e.format = 'delta' THEN
            -- partition columns derived from event time: in the log's
            -- partitionValues and in the folder names, not in the files
            pcols := iotstream._delta_partition_columns(e.source_table, e.period);
            pvals := jsonb_build_object(pcols[1], to_char(from_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD'));
            IF cardinality(pcols) > 1 THEN
                pvals := pvals || jsonb_build_object(pcols[2], extract(hour FROM from_ts AT TIME ZONE 'UTC')::int::text);
            END IF;
            IF cardinality(pcols) > 2 THEN
                pvals := pvals || jsonb_build_object(pcols[3], extract(minute FROM from_ts AT TIME ZONE 'UTC')::int::text);
            END IF;
            folder := tbl;
            FOR i IN 1 .. cardinality(pcols) LOOP
                folder := folder || '/' || pcols[i] || '=' || (pvals->>pcols[i]);
            END LOOP;
            -- another server's export of the same name writes other names
            file_id := md5(format('%s|%s|%s', iotstream._delta_app_id(e), from_ts, version))::uuid::text;
        ELSE
            folder := format('%s/date=%s', tbl, to_char(from_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD'));
            IF to_ts - from_ts < interval '1 day' THEN
                folder := folder || to_char(from_ts AT TIME ZONE 'UTC', '/"hour="HH24');
            END IF;
            IF to_ts - from_ts < interval '1 hour' THEN
                folder := folder || to_char(from_ts AT TIME ZONE 'UTC', '/"minute="MI');
            END IF;
            file_id := md5(format('%s|%s|%s', e.name, from_ts, version))::uuid::text;
        END IF;
        SELECT coalesce(jsonb_object_agg(key, value), '{}') INTO writer_opts
          FROM jsonb_each(e.options) WHERE key <> ALL (upload_keys || iotstream._export_table_keys());
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
            format('SELECT %s FROM %s WHERE %s',
                   CASE WHEN e.format = 'delta' THEN iotstream._delta_select_list(e.source_table) ELSE '*' END,
                   e.source_table,
                   iotstream._export_range(e.source_table, time_column, from_ts, to_ts)),
            -- named by export, period and version: a rerun of a rolled-back
            -- attempt overwrites its files instead of duplicating them
            e.destination, folder, file_id, e.credential, writer_opts, upload_opts, e.source_table);
        l.files := w.files;
        l.rows := w.rows;
        l.bytes := w.bytes;
        IF e.format = 'delta' THEN
            -- the add actions of the run's commit (paths relative to the table)
            SELECT jsonb_build_object('fields', w.schema::jsonb, 'add', coalesce(jsonb_agg(jsonb_build_object(
                       'path', substr(f.url, length(rtrim(e.destination, '/')) + length(tbl) + 3),
                       'partitionValues', pvals, 'size', w.sizes[f.i], 'modificationTime', now_ms,
                       'dataChange', true, 'stats', w.stats[f.i],
                       'tags', jsonb_build_object('iotstream.period_start', to_char(from_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                                                  'iotstream.version', version::text)) ORDER BY f.i), '[]'))
              INTO l.delta_files
              FROM unnest(w.files) WITH ORDINALITY AS f(url, i);
        END IF;
    END IF;
    l.status := 'exported';
    l.finished_at := clock_timestamp();
    IF old.id IS NOT NULL THEN
        UPDATE iotstream.export_log x SET status = 'replacing', removed_at = now() WHERE x.id = old.id;
    END IF;
    INSERT INTO iotstream.export_log (export, period_start, period_end, version, files, rows, bytes, min_time,
                                      max_time, checksum, change_signal, status, started_at, finished_at,
                                      delta_files)
    VALUES (l.export, l.period_start, l.period_end, l.version, l.files, l.rows, l.bytes, l.min_time,
            l.max_time, l.checksum, l.change_signal, l.status, l.started_at, l.finished_at, l.delta_files)
    RETURNING * INTO l;
    RETURN l;
END $$;
COMMENT ON FUNCTION iotstream._export_period(iotstream.exports, name, timestamptz, timestamptz, int, iotstream.export_log) IS
    'Internal: writes one period''s files and records the new version in the ledger.';

CREATE OR REPLACE FUNCTION iotstream._export_delete_replaced(e iotstream.exports) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r iotstream.export_log;
    msg text;
BEGIN
    -- a Delta table's removed files stay for readers of older versions
    -- until deleted_file_retention has passed since the commit removed them
    FOR r IN SELECT * FROM iotstream.export_log x
              WHERE x.export = e.name AND x.status = 'replacing'
                AND (e.format <> 'delta' OR x.removed_at <= now() - coalesce((e.options->>'deleted_file_retention')::interval, interval '7 days'))
              ORDER BY x.id LOOP
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
    'Internal: deletes the files of versions replaced by a re-export (for a Delta table once deleted_file_retention has passed since their removal); retried on the next run if storage fails.';

-- export_status shows the format, the table version and the files pending deletion (new last columns)

CREATE OR REPLACE VIEW iotstream.export_status AS
SELECT e.name, e.source_table, e.destination, e.period, e.lateness, e.target_file_size, e.compression,
       e.credential, e.schedule,
       (SELECT max(l.period_end) FROM iotstream.export_log l WHERE l.export = e.name AND l.status = 'exported') AS exported_until,
       (SELECT count(*) FROM iotstream.export_log l WHERE l.export = e.name AND l.status = 'exported') AS periods,
       (SELECT sum(cardinality(l.files)) FROM iotstream.export_log l WHERE l.export = e.name AND l.status = 'exported') AS files,
       (SELECT sum(l.rows) FROM iotstream.export_log l WHERE l.export = e.name AND l.status = 'exported') AS rows,
       (SELECT sum(l.bytes) FROM iotstream.export_log l WHERE l.export = e.name AND l.status = 'exported') AS bytes,
       (SELECT count(*) FROM iotstream.export_log l WHERE l.export = e.name AND l.version > 1 AND l.status = 'exported') AS reexported_periods,
       f.finished_at AS last_error_at, f.error AS last_error,
       e.format,
       (e.delta_state->>'version')::bigint AS table_version,
       (e.delta_state->>'checkpoint')::bigint AS last_checkpoint,
       (SELECT coalesce(sum(cardinality(l.files)), 0) FROM iotstream.export_log l
         WHERE l.export = e.name AND l.status = 'replacing') AS files_pending_deletion
  FROM iotstream.exports e
  LEFT JOIN LATERAL (SELECT l.finished_at, l.error FROM iotstream.export_log l
                      WHERE l.export = e.name AND l.status = 'failed' ORDER BY l.id DESC LIMIT 1) f ON true;
COMMENT ON VIEW iotstream.export_status IS 'Per export: settings, how far it has exported, periods, files, rows and bytes, re-exported periods, the last failure, and for Delta tables the table version, the last checkpoint it wrote and the files removed but not yet deleted. No secrets.';


-- the Delta log (sql/install/70_export_delta.sql)

CREATE FUNCTION iotstream._delta_read_log(destination text, folder text, credential text, from_version bigint,
    OUT version bigint, OUT commit text)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'delta_read_log' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iotstream._delta_read_log(text, text, text, bigint) IS
    'Internal: the commits of the Delta table destination/folder from from_version on, up to the first version missing.';

CREATE FUNCTION iotstream._delta_create_commit(destination text, folder text, credential text, version bigint,
    commit text)
RETURNS boolean AS 'MODULE_PATHNAME', 'delta_create_commit' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iotstream._delta_create_commit(text, text, text, bigint, text) IS
    'Internal: creates version of the Delta table''s log with put-if-absent; false if that version exists.';
CREATE FUNCTION iotstream._delta_write_checkpoint(destination text, folder text, credential text, version bigint,
    actions jsonb[], adds int)
RETURNS bigint AS 'MODULE_PATHNAME', 'delta_write_checkpoint' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iotstream._delta_write_checkpoint(text, text, text, bigint, jsonb[], int) IS
    'Internal: writes version''s checkpoint (one action a row, in the checkpoint schema, as nested Parquet) and then _last_checkpoint; returns its bytes.';
REVOKE ALL ON FUNCTION iotstream._delta_read_log(text, text, text, bigint),
    iotstream._delta_create_commit(text, text, text, bigint, text),
    iotstream._delta_write_checkpoint(text, text, text, bigint, jsonb[], int) FROM PUBLIC;

-- The partition columns of an export's table, derived from event time:
-- event_date (date), event_hour and event_minute (integer) as far as the
-- period divides them, with a prefix when the table has such a column.
CREATE FUNCTION iotstream._delta_partition_columns(relid regclass, period interval) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT ARRAY[p.pfx || 'event_date']
           || CASE WHEN period < interval '1 day' THEN ARRAY[p.pfx || 'event_hour'] ELSE '{}'::text[] END
           || CASE WHEN period < interval '1 hour' THEN ARRAY[p.pfx || 'event_minute'] ELSE '{}'::text[] END
      FROM (SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                                      WHERE a.attrelid = relid AND a.attnum > 0 AND NOT a.attisdropped
                                        AND lower(a.attname) IN ('event_date', 'event_hour', 'event_minute'))
                        THEN 'iotstream_' ELSE '' END AS pfx) p
$$;
COMMENT ON FUNCTION iotstream._delta_partition_columns(regclass, interval) IS
    'Internal: the Delta partition columns of an export (event_date, event_hour, event_minute as the period needs; prefixed iotstream_ when the table has a column of such a name).';

-- The txn appId of an export: unique per server, database and export, so
-- that exports of several servers can feed one table.
CREATE FUNCTION iotstream._delta_app_id(e iotstream.exports) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT md5(format('iotstream|%s|%s|%s|%s', (SELECT c.system_identifier FROM pg_catalog.pg_control_system() c),
                      current_database(), e.name, e.created_at))::uuid::text
$$;
COMMENT ON FUNCTION iotstream._delta_app_id(iotstream.exports) IS
    'Internal: the appId of an export''s txn actions (server, database, export name and creation time, hashed).';


-- ------------------------------------------------------------ COPY's dead letters (issue 20)
-- COPY into a stream table WITH (out_of_bounds 'dead_letters') keeps the
-- rows outside the table's bounds as dead letters of source 'copy', the
-- table's qualified name as topic and the line number as offset
-- (src/ingest/copy_route.c); they are read by whoever may read the table.
CREATE FUNCTION iotstream._may_read_copied_table(tbl text, role name) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(pg_catalog.has_table_privilege(role, pg_catalog.to_regclass(tbl), 'SELECT'), false)
$$;
COMMENT ON FUNCTION iotstream._may_read_copied_table(text, name) IS
    'Internal: whether role may read the table a COPY''s dead letter names (the dead letters'' row policy).';
CREATE POLICY readers_of_the_copied_table ON iotstream.dead_letters FOR SELECT
    USING (source = 'copy' AND iotstream._may_read_copied_table(topic, current_user));
REVOKE ALL ON FUNCTION iotstream._may_read_copied_table(text, name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION iotstream._may_read_copied_table(text, name) TO PUBLIC;

-- ------------------------------------------------------------ file sources (issue 20)
-- A file source (kind 'file', src/source/file_*.c) reads the files of a
-- folder once each: location is kept in brokers, the glob in topics, and
-- its own settings as "file.*" options, which reach the worker as
-- properties.  The ledger below is written in the transaction of each
-- file's rows.
CREATE TABLE iotstream.source_files (
    source_id   int NOT NULL REFERENCES iotstream.sources ON DELETE CASCADE,
    path        text NOT NULL,                 -- relative to the source's folder
    size        bigint,
    etag        text,                          -- the version its rows are of
    modified_at timestamptz,
    rows        bigint NOT NULL DEFAULT 0,     -- records read: stored, dead letters or duplicates
    position    bigint NOT NULL DEFAULT 0,     -- bytes of its (uncompressed) text read and stored
    lines       bigint NOT NULL DEFAULT 0,
    state       text NOT NULL CHECK (state IN ('seen', 'in progress', 'done', 'failed', 'rewritten')),
    error       text,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, path)
);
COMMENT ON TABLE iotstream.source_files IS 'The ledger of file sources: each file''s version (etag), position, lines, records read and state, written in the transaction of its rows.';
REVOKE ALL ON iotstream.source_files FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('iotstream.source_files', '');

CREATE FUNCTION iotstream.create_file_source(
    name     text,
    location text,
    target   regclass,
    format   text,
    mapping  jsonb DEFAULT NULL,
    options  jsonb DEFAULT '{}')
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    id int;
    file_opts jsonb := jsonb_build_object('file.format', format);
    rest jsonb := '{}';
    k text;
    v jsonb;
    pattern text;
BEGIN
    PERFORM iotstream._require_superuser('create a source');
    IF EXISTS (SELECT 1 FROM iotstream.sources s WHERE s.name = create_file_source.name) THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('source %L already exists', create_file_source.name),
            HINT = 'Drop it with iotstream.drop_source(), or pick another name.';
    END IF;
    IF name IS NULL OR name !~ '^[A-Za-z0-9_.-]{1,63}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_name',
            MESSAGE = format('invalid source name %L', name),
            HINT = 'Use up to 63 letters, digits, dots, dashes and underscores.';
    END IF;
    IF location IS NULL OR location !~ '^(file:///|abfss?://[^/@]+@[^/]+|https?://[^/]+/[^/]+)' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('location %L is not a folder or a container a file source can read', location),
            HINT = 'Pass file:///path, abfss://container@account.dfs.core.windows.net/path, https://account.blob.core.windows.net/container/path, or an emulator''s http://host:port/account/container/path.';
    END IF;
    IF location !~ '^file://' AND create_file_source.options ? 'credential' AND NOT EXISTS
       (SELECT 1 FROM iotstream.storage_credentials c WHERE c.name = create_file_source.options->>'credential') THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('storage credential "%s" does not exist', create_file_source.options->>'credential'),
            HINT = 'Create it with iotstream.create_storage_credential().';
    END IF;
    IF format IS NULL OR format NOT IN ('csv', 'jsonl', 'avro') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('unknown file format %L', format),
            HINT = 'Pass ''csv'', ''jsonl'' or ''avro'' (Event Hubs Capture files among them); csv and jsonl files ending in .gz are decompressed.';
    END IF;
    IF target IS NULL OR NOT EXISTS (SELECT 1 FROM iotstream.stream_table_settings st WHERE st.relid = target) THEN
        RAISE EXCEPTION USING ERRCODE = 'wrong_object_type',
            MESSAGE = format('target %s is not a stream table', coalesce(target::text, 'NULL')),
            HINT = 'Create it with iotstream.create_stream_table() first.';
    END IF;
    IF options IS NULL OR jsonb_typeof(options) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'options must be a JSON object',
            HINT = 'Pass for example ''{"pattern": "**/*.csv", "header": true}''.';
    END IF;
    FOR k, v IN SELECT * FROM jsonb_each(options) LOOP
        IF k = 'pattern' AND (jsonb_typeof(v) <> 'string' OR v #>> '{}' = '' OR v #>> '{}' ~ '(^/|(^|/)\.\.(/|$))') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('option pattern must be a relative glob, not %s', v),
                HINT = 'For example "**/*.csv" or "data/*/*/physical_data_*.csv"; "**" matches any number of folders.';
        ELSIF k = 'header' AND jsonb_typeof(v) <> 'boolean' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('option header must be true or false, not %s', v),
                HINT = 'header: whether the first line of a CSV file names its columns.';
        ELSIF k IN ('delimiter', 'quote') AND (jsonb_typeof(v) <> 'string' OR octet_length(v #>> '{}') <> 1
                                               OR v #>> '{}' IN (E'\n', E'\r')) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('option %s must be one single-byte character, not %s', k, v),
                HINT = 'For example "," or ";" as delimiter, "\"" as quote.';
        ELSIF k = 'columns' AND (jsonb_typeof(v) <> 'array' OR jsonb_array_length(v) = 0 OR
              EXISTS (SELECT 1 FROM jsonb_array_elements(v) e WHERE jsonb_typeof(e) <> 'string')) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'option columns must be a non-empty array of names',
                HINT = 'Name the CSV fields by position, e.g. ["ts", "sensor_id", "value"]; the mapping reads them by these names.';
        ELSIF k = 'on_rewrite' AND v #>> '{}' NOT IN ('skip', 'reingest') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('option on_rewrite must be "skip" or "reingest", not %s', v),
                HINT = 'on_rewrite is what happens to a file that changes after it was read.';
        ELSIF k = 'path_column' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid = target AND a.attname = v #>> '{}' AND a.attnum > 0 AND NOT a.attisdropped
                   AND a.atttypid IN ('text'::regtype, 'varchar'::regtype)) THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_column',
                MESSAGE = format('option path_column %s names no text column of %s', v, target),
                HINT = 'Name the column the mapping fills with "$topic", the file''s path.';
        ELSIF k = 'credential' AND (jsonb_typeof(v) <> 'string' OR location ~ '^file://') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'option credential names a storage credential, for a blob location only',
                HINT = 'A file:/// folder is read as the server''s OS user; pass credential with an abfss:// or https:// location.';
        ELSIF k = 'list_page' AND (jsonb_typeof(v) <> 'number' OR (v #>> '{}')::numeric NOT BETWEEN 1 AND 5000
                                   OR (v #>> '{}')::numeric <> trunc((v #>> '{}')::numeric)) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('option list_page must be an integer from 1 to 5000, not %s', v),
                HINT = 'list_page is how many names one List Blobs request returns.';
        ELSIF k = 'date_levels' AND (jsonb_typeof(v) <> 'number' OR (v #>> '{}')::numeric NOT BETWEEN 0 AND 16
                                     OR (v #>> '{}')::numeric <> trunc((v #>> '{}')::numeric)) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('option date_levels must be an integer from 0 to 16, not %s', v),
                HINT = 'date_levels is how many folders before a file are laid out by date, as 2 for "data/*/*/physical_data_*.csv".';
        ELSIF k = 'date_levels' AND coalesce(options->>'pattern', '**') LIKE '%**%' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'option date_levels needs a pattern without "**"',
                HINT = 'Write one glob per folder, as in "data/*/*/physical_data_*.csv".';
        ELSIF k = 'poll_ms' AND (jsonb_typeof(v) <> 'number' OR (v #>> '{}')::numeric < 10
                                 OR (v #>> '{}')::numeric <> trunc((v #>> '{}')::numeric)) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('option poll_ms must be an integer of at least 10, not %s', v),
                HINT = 'poll_ms is how often, in milliseconds, the folder is listed for new files.';
        END IF;
        IF k IN ('pattern', 'header', 'delimiter', 'quote', 'columns', 'on_rewrite', 'path_column', 'poll_ms',
                 'credential', 'list_page', 'date_levels') THEN
            file_opts := file_opts || jsonb_build_object('file.' || k, v);
        ELSIF k IN ('batch_size', 'batch_ms', 'max_message_bytes', 'dedup_key', 'dedup_horizon', 'dedup_memory') THEN
            rest := rest || jsonb_build_object(k, v);
        ELSE
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('unknown option %L of a file source', k),
                HINT = 'Options are pattern, header, delimiter, quote, columns, on_rewrite, path_column, poll_ms, date_levels, credential, list_page, batch_size, batch_ms, max_message_bytes, dedup_key, dedup_horizon, dedup_memory.';
        END IF;
    END LOOP;
    IF options->>'on_rewrite' = 'reingest' AND options->>'path_column' IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'option on_rewrite "reingest" needs path_column',
            HINT = 'Map a text column to "$topic" (the file''s path) and name it as path_column: the rows of the earlier version are those that hold its path.';
    END IF;
    pattern := coalesce(options->>'pattern', '**/*.' || format);
    PERFORM iotstream._check_source_options(rest);
    PERFORM iotstream._validate_source(target, mapping, rest);
    INSERT INTO iotstream.sources (name, brokers, topics, target, mapping, options, group_id, kind)
    VALUES (name, location, ARRAY[pattern], target, mapping, rest || file_opts, 'iotstream-' || name, 'file')
    RETURNING source_id INTO id;
    INSERT INTO iotstream.source_secrets VALUES (id, '{}');
    RETURN id;
END $$;
COMMENT ON FUNCTION iotstream.create_file_source(text, text, regclass, text, jsonb, jsonb) IS
    'Defines a file source: the files of a folder (file:///...) or blob container (abfss://, https://, emulator http://; options.credential) that match options.pattern (default **/*.<format>, .gz included) read once each into the stream table target; format csv, jsonl or avro (Event Hubs Capture: Body decoded, the rest in $headers). options: pattern, header, delimiter, quote, columns, on_rewrite (skip|reingest), path_column, poll_ms, date_levels, credential, list_page, batch_size, batch_ms, max_message_bytes, dedup_key, dedup_horizon. Superusers only.';

-- ------------------------------------------------------------ Delta log cleanup (issue 18)
-- Commits and checkpoints older than the log_retention option
-- (delta.logRetentionDuration, 30 days) go once a checkpoint covers them,
-- as part of run_export, recorded in the ledger (status log_cleaned).  Each
-- checkpoint is built from the export's previous one, kept in
-- export_delta_checkpoints, since the commits it covers may be deleted.
ALTER TABLE iotstream.export_log DROP CONSTRAINT export_log_status_check,
    ADD CONSTRAINT export_log_status_check
        CHECK (status IN ('exported', 'replacing', 'replaced', 'failed', 'log_cleaned'));

COMMENT ON TABLE iotstream.export_log IS
    'The export ledger: per export and period, each version''s files, rows, bytes, event-time range, content checksum, status (exported, replacing, replaced, failed, log_cleaned), timings and error; for Delta tables, when a version was removed and its add actions, and the log cleanups (log_cleaned: the checkpoint version cut at and the log entries deleted).';

CREATE FUNCTION iotstream._delta_read_last_checkpoint(destination text, folder text, credential text)
RETURNS text AS 'MODULE_PATHNAME', 'delta_read_last_checkpoint' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iotstream._delta_read_last_checkpoint(text, text, text) IS
    'Internal: the Delta table''s _delta_log/_last_checkpoint, or NULL when it has none.';
CREATE FUNCTION iotstream._delta_delete_log(destination text, folder text, credential text, from_version bigint,
    before_version bigint)
RETURNS text[] AS 'MODULE_PATHNAME', 'delta_delete_log' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iotstream._delta_delete_log(text, text, text, bigint, bigint) IS
    'Internal: deletes the commits and checkpoints of versions from_version up to before_version (excluded) of the Delta table''s log; returns the names of those that were there.';
REVOKE ALL ON FUNCTION iotstream._delta_read_log(text, text, text, bigint),
    iotstream._delta_create_commit(text, text, text, bigint, text),
    iotstream._delta_write_checkpoint(text, text, text, bigint, jsonb[], int),
    iotstream._delta_read_last_checkpoint(text, text, text),
    iotstream._delta_delete_log(text, text, text, bigint, bigint) FROM PUBLIC;

-- The state of the last checkpoint each export wrote, so that the next one
-- is that state plus the commits after it: log cleanup deletes the commits
-- a checkpoint covers, so they cannot be replayed again.
CREATE TABLE iotstream.export_delta_checkpoints (
    export   text PRIMARY KEY REFERENCES iotstream.exports ON DELETE CASCADE ON UPDATE CASCADE,
    version  bigint NOT NULL,
    actions  jsonb[] NOT NULL
);
COMMENT ON TABLE iotstream.export_delta_checkpoints IS
    'Per Delta export, the version and actions of the last checkpoint it wrote: the base of its next checkpoint.';
SELECT pg_catalog.pg_extension_config_dump('iotstream.export_delta_checkpoints', '');
REVOKE ALL ON iotstream.export_delta_checkpoints FROM PUBLIC;

REVOKE ALL ON FUNCTION iotstream._delta_read_last_checkpoint(text, text, text),
    iotstream._delta_delete_log(text, text, text, bigint, bigint) FROM PUBLIC;

CREATE OR REPLACE FUNCTION iotstream._export_table_keys() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY['deleted_file_retention', 'log_retention'] $$;
COMMENT ON FUNCTION iotstream._export_table_keys() IS 'Internal: the export options that configure the Delta table, not the writer.';

CREATE OR REPLACE FUNCTION iotstream._check_export(e iotstream.exports) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    d record;
    cred iotstream.storage_credentials;
    secs numeric := extract(epoch FROM e.period);
    retention interval;
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
    IF e.format IS NULL OR e.format NOT IN ('delta', 'parquet') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('unknown export format "%s"', e.format),
            HINT = 'Use delta (a Delta Lake table, the default) or parquet (Hive-style Parquet folders without a log).';
    END IF;
    IF e.options ? 'deleted_file_retention' THEN
        BEGIN
            retention := (e.options->>'deleted_file_retention')::interval;
        EXCEPTION WHEN OTHERS THEN
            retention := NULL;
        END;
        IF jsonb_typeof(e.options->'deleted_file_retention') <> 'string' OR retention IS NULL
           OR retention < interval '0' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('invalid deleted_file_retention %s', e.options->'deleted_file_retention'),
                HINT = 'Give an interval such as ''7 days'': how long files a commit removed stay for readers and time travel.';
        END IF;
    END IF;
    IF e.options ? 'log_retention' THEN
        BEGIN
            retention := (e.options->>'log_retention')::interval;
        EXCEPTION WHEN OTHERS THEN
            retention := NULL;
        END;
        IF jsonb_typeof(e.options->'log_retention') <> 'string' OR retention IS NULL
           OR retention < interval '0' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('invalid log_retention %s', e.options->'log_retention'),
                HINT = 'Give an interval such as ''30 days'': how long the Delta log keeps commits for history and time travel once a checkpoint covers them.';
        END IF;
    END IF;
    PERFORM iotstream._export_check_options(
        (SELECT coalesce(jsonb_object_agg(key, value), '{}') FROM jsonb_each(e.options)
          WHERE key <> ALL (iotstream._export_upload_keys() || iotstream._export_table_keys())),
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

CREATE OR REPLACE FUNCTION iotstream._delta_metadata(e iotstream.exports, current jsonb, data_fields jsonb, pcols text[],
    now_ms bigint) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    pfields jsonb;
    cur_data jsonb;
    n int;
    diff text;
BEGIN
    SELECT jsonb_agg(jsonb_build_object('name', c, 'type', CASE WHEN i = 1 THEN 'date' ELSE 'integer' END,
                                        'nullable', true, 'metadata', '{}'::jsonb) ORDER BY i)
      INTO pfields FROM unnest(pcols) WITH ORDINALITY u(c, i);
    IF current IS NULL THEN
        RETURN jsonb_build_object(
            'id', gen_random_uuid(),
            'format', jsonb_build_object('provider', 'parquet', 'options', '{}'::jsonb),
            'schemaString', jsonb_build_object('type', 'struct', 'fields', data_fields || pfields)::text,
            'partitionColumns', to_jsonb(pcols),
            'configuration', jsonb_build_object('delta.deletedFileRetentionDuration',
                format('interval %s seconds', extract(epoch FROM coalesce((e.options->>'deleted_file_retention')::interval,
                                                                          interval '7 days'))::bigint),
                'delta.logRetentionDuration',
                format('interval %s seconds', extract(epoch FROM coalesce((e.options->>'log_retention')::interval,
                                                                          interval '30 days'))::bigint),
                'delta.checkpointInterval', '10'),
            'createdTime', now_ms);
    END IF;
    IF data_fields IS NULL THEN
        RETURN NULL;                -- the run only removes files
    END IF;
    IF current->'partitionColumns' <> to_jsonb(pcols) THEN
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
            MESSAGE = format('export "%s": the delta table is partitioned by %s, the export by %s',
                             e.name, current->'partitionColumns', to_jsonb(pcols)),
            DETAIL = 'A column named event_date, event_hour or event_minute was added or dropped, which renames the partition columns.',
            HINT = 'Rename that column of the stream table, or export to a new destination.';
    END IF;
    SELECT coalesce(jsonb_agg(f ORDER BY i), '[]') INTO cur_data
      FROM jsonb_array_elements(((current->>'schemaString')::jsonb)->'fields') WITH ORDINALITY x(f, i)
     WHERE NOT (f->>'name' = ANY (pcols));
    IF cur_data = data_fields THEN
        RETURN NULL;
    END IF;
    n := jsonb_array_length(cur_data);
    -- the first column that differs, for the message
    SELECT format('column %s: %s in the delta table, %s now', i,
                  coalesce((c->>'name') || ' ' || (c->>'type'), 'none'),
                  coalesce((d->>'name') || ' ' || (d->>'type'), 'none'))
      INTO diff
      FROM generate_series(0, greatest(n, jsonb_array_length(data_fields)) - 1) i,
           LATERAL (SELECT cur_data->i AS c, data_fields->i AS d) p
     WHERE p.c IS DISTINCT FROM p.d ORDER BY i LIMIT 1;
    IF jsonb_array_length(data_fields) <= n
       OR (n > 0 AND (SELECT jsonb_agg(data_fields->i ORDER BY i) FROM generate_series(0, n - 1) i) <> cur_data) THEN
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
            MESSAGE = format('export "%s": the stream table''s columns no longer match its delta table', e.name),
            DETAIL = format('First difference at %s. A dropped, renamed or retyped column needs column mapping, which iotstream does not write; nothing was committed.', diff),
            HINT = 'Add columns at the end instead (ALTER TABLE ... ADD COLUMN), restore the old column, or drop the export and create it with a new destination.';
    END IF;
    RETURN (current - 'createdTime')
           || jsonb_build_object('schemaString', jsonb_build_object('type', 'struct', 'fields', data_fields || pfields)::text);
END $$;
COMMENT ON FUNCTION iotstream._delta_metadata(iotstream.exports, jsonb, jsonb, text[], bigint) IS
    'Internal: the metaData action a commit needs (a new table, or columns added at the end), or NULL; refuses dropped, renamed and retyped columns.';

CREATE OR REPLACE FUNCTION iotstream._delta_checkpoint(e iotstream.exports, tbl text, v bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    keep_ms bigint := (extract(epoch FROM coalesce((e.options->>'deleted_file_retention')::interval, interval '7 days')) * 1000)::bigint;
    base iotstream.export_delta_checkpoints;
    from_v bigint;
    acts jsonb[];
    nadds int;
    nread bigint;
    msg text;
BEGIN
    SELECT * INTO base FROM iotstream.export_delta_checkpoints c WHERE c.export = e.name AND c.version < v;
    from_v := coalesce(base.version, -1) + 1;
    WITH raw AS MATERIALIZED (
        SELECT r.version, r.commit
          FROM iotstream._delta_read_log(e.destination, tbl, e.credential, from_v) r
         WHERE r.version <= v),
    log AS (
        SELECT base.version, b.a FROM unnest(base.actions) b(a) WHERE base.version IS NOT NULL
        UNION ALL
        SELECT r.version, x.a
          FROM raw r, LATERAL (SELECT t::jsonb AS a FROM regexp_split_to_table(r.commit, E'\n') t WHERE t <> '') x),
    files AS (
        -- the last action on each path decides
        SELECT DISTINCT ON (coalesce(a->'add'->>'path', a->'remove'->>'path')) a
          FROM log WHERE a ? 'add' OR a ? 'remove'
         ORDER BY coalesce(a->'add'->>'path', a->'remove'->>'path'), version DESC, (a ? 'add') DESC),
    state AS (
        SELECT jsonb_build_object('add', (a->'add') || '{"dataChange": false}') AS a, true AS is_add FROM files WHERE a ? 'add'
        UNION ALL
        SELECT a, false FROM files
         WHERE a ? 'remove' AND coalesce((a->'remove'->>'deletionTimestamp')::bigint, 0) > now_ms - keep_ms
        UNION ALL
        SELECT * FROM (SELECT DISTINCT ON (a->'txn'->>'appId') a, false FROM log WHERE a ? 'txn'
                        ORDER BY a->'txn'->>'appId', version DESC) t
        UNION ALL
        SELECT * FROM (SELECT a, false FROM log WHERE a ? 'metaData' ORDER BY version DESC LIMIT 1) m
        UNION ALL
        SELECT * FROM (SELECT a, false FROM log WHERE a ? 'protocol' ORDER BY version DESC LIMIT 1) p)
    SELECT array_agg(a), count(*) FILTER (WHERE is_add), (SELECT count(*) FROM raw)
      INTO acts, nadds, nread FROM state;
    IF nread <> v - from_v + 1 THEN
        RAISE EXCEPTION 'the log from version % to % is incomplete (% of its commits are there)', from_v, v, nread;
    END IF;
    PERFORM iotstream._delta_write_checkpoint(e.destination, tbl, e.credential, v, acts, nadds);
    INSERT INTO iotstream.export_delta_checkpoints AS c (export, version, actions) VALUES (e.name, v, acts)
        ON CONFLICT (export) DO UPDATE SET version = excluded.version, actions = excluded.actions;
    -- the checkpoints log cleanup may cut at, with the time of their commit
    UPDATE iotstream.exports x
       SET delta_state = x.delta_state || jsonb_build_object('checkpoint', v,
               'checkpoints', coalesce(x.delta_state->'checkpoints', '[]') || jsonb_build_array(jsonb_build_array(v, now_ms)))
     WHERE x.name = e.name;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
    RAISE WARNING 'export %: could not write the checkpoint of delta version %: %', e.name, v, msg;
END $$;
COMMENT ON FUNCTION iotstream._delta_checkpoint(iotstream.exports, text, bigint) IS
    'Internal: writes the checkpoint of a version of the export''s Delta table (every 10 commits) from its previous checkpoint and the commits since; a failure is a warning.';

CREATE FUNCTION iotstream._delta_clean_log(e iotstream.exports) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    tbl text := iotstream._path_component((SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid = e.source_table));
    keep interval := coalesce((e.options->>'log_retention')::interval, interval '30 days');
    start bigint := coalesce((e.delta_state->>'log_start')::bigint, 0);
    started timestamptz := clock_timestamp();
    cut bigint;
    cut_ms bigint;
    names text[];
    msg text;
BEGIN
    SELECT (c->>0)::bigint, (c->>1)::bigint INTO cut, cut_ms
      FROM jsonb_array_elements(coalesce(e.delta_state->'checkpoints', '[]')) c
     WHERE (c->>1)::bigint <= (extract(epoch FROM started - keep) * 1000)::bigint
     ORDER BY (c->>0)::bigint DESC LIMIT 1;
    IF cut IS NULL OR cut <= start THEN
        RETURN;
    END IF;
    -- at most 100,000 versions a run (_delta_delete_log's limit): every
    -- version below the checkpoint is covered, so a part of them may go first
    cut := least(cut, start + 100000);
    -- can't happen: the cut is at or below the checkpoint the next one builds on
    IF cut > coalesce((SELECT c.version FROM iotstream.export_delta_checkpoints c WHERE c.export = e.name), -1) THEN
        RAISE EXCEPTION 'log cleanup of export % would cut at version %, which no kept checkpoint covers', e.name, cut;
    END IF;
    BEGIN
        names := iotstream._delta_delete_log(e.destination, tbl, e.credential, start, cut);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
        RAISE WARNING 'export %: could not clean up the delta log below version %: %', e.name, cut, msg;
        RETURN;
    END;
    UPDATE iotstream.exports x
       SET delta_state = x.delta_state || jsonb_build_object('log_start', cut, 'log_start_time', cut_ms,
               'checkpoints', (SELECT coalesce(jsonb_agg(c), '[]') FROM jsonb_array_elements(x.delta_state->'checkpoints') c
                                WHERE (c->>0)::bigint >= cut))
     WHERE x.name = e.name;
    INSERT INTO iotstream.export_log (export, period_start, period_end, version, files, status, started_at, finished_at)
    VALUES (e.name, coalesce(to_timestamp((e.delta_state->>'log_start_time')::bigint / 1000.0), e.created_at),
            to_timestamp(cut_ms / 1000.0), cut, names, 'log_cleaned', started, clock_timestamp());
END $$;
COMMENT ON FUNCTION iotstream._delta_clean_log(iotstream.exports) IS
    'Internal: deletes the Delta log entries older than the log_retention option (30 days) that a checkpoint of the export covers, and records it in the ledger (status log_cleaned).';

REVOKE ALL ON FUNCTION iotstream._delta_clean_log(iotstream.exports) FROM PUBLIC;

CREATE OR REPLACE FUNCTION iotstream.delta_history(export text)
RETURNS TABLE (version bigint, "timestamp" timestamptz, operation text, operation_parameters jsonb,
               files_added int, files_removed int, rows_added bigint, bytes_added bigint, writer text,
               engine text)
LANGUAGE plpgsql AS $$
DECLARE
    e iotstream.exports;
    r record;
    acts jsonb[];
    ci jsonb;
BEGIN
    PERFORM iotstream._export_require_superuser('read delta logs');
    SELECT * INTO e FROM iotstream.exports x WHERE x.name = delta_history.export;
    IF NOT FOUND OR e.format <> 'delta' THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('export "%s" does not exist or does not write a delta table', export),
            HINT = 'See iotstream.export_status for the exports and their formats.';
    END IF;
    -- from the first version log cleanup kept
    FOR r IN SELECT * FROM iotstream._delta_read_log(e.destination,
                 iotstream._path_component((SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid = e.source_table)),
                 e.credential, coalesce((e.delta_state->>'log_start')::bigint, 0)) LOOP
        SELECT array_agg(t::jsonb) INTO acts FROM regexp_split_to_table(r.commit, E'\n') t WHERE t <> '';
        SELECT a->'commitInfo' INTO ci FROM unnest(acts) a WHERE a ? 'commitInfo' LIMIT 1;
        version := r.version;
        "timestamp" := to_timestamp((ci->>'timestamp')::bigint / 1000.0);
        operation := ci->>'operation';
        operation_parameters := ci->'operationParameters';
        SELECT count(*) FILTER (WHERE a ? 'add'), count(*) FILTER (WHERE a ? 'remove'),
               sum(((a->'add'->>'stats')::jsonb->>'numRecords')::bigint), sum((a->'add'->>'size')::bigint)
          INTO files_added, files_removed, rows_added, bytes_added FROM unnest(acts) a;
        writer := ci->'iotstream'->>'export';
        engine := ci->>'engineInfo';
        RETURN NEXT;
    END LOOP;
END $$;
COMMENT ON FUNCTION iotstream.delta_history(text) IS
    'The commits of an export''s Delta table, oldest first, like DESCRIBE HISTORY: version, time, operation, files and rows added, files removed, and the export (of any server) that wrote it.';

CREATE OR REPLACE FUNCTION iotstream.run_export(name text)
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
    added bigint[] := '{}';      -- ledger rows of this run: its Delta commit
    removed bigint[] := '{}';
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
                                   WHERE x.export = e.name AND x.period_start = todo.ps AND x.status NOT IN ('failed', 'log_cleaned')), 0) + 1,
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
            -- storage is likely down: the next run resumes here (what was
            -- written before the failure is still committed below)
            EXIT;
        END;
        added := added || l.id;
        IF (todo.old).id IS NOT NULL THEN
            removed := removed || (todo.old).id;
        END IF;
        period_start := l.period_start;
        period_end := l.period_end;
        version := l.version;
        files := cardinality(l.files);
        rows := l.rows;
        bytes := l.bytes;
        status := l.status;
        RETURN NEXT;
    END LOOP;

    IF e.format = 'delta' THEN
        -- one Delta commit for everything this run wrote and replaced
        PERFORM iotstream._delta_commit(e, added, removed);
        SELECT * INTO e FROM iotstream.exports x WHERE x.name = run_export.name;
        PERFORM iotstream._delta_clean_log(e);
    END IF;
    PERFORM iotstream._export_delete_replaced(e);
END $$;
COMMENT ON FUNCTION iotstream.run_export(text) IS
    'Exports every sealed period of the export not exported yet, and re-exports periods that got late rows (their change signal moved and their row count or checksum differs), replacing their files. For a Delta table, everything a run writes and replaces is one commit to its log. Returns one row per period written. Idempotent: a second run writes nothing. A failure is recorded as a failed ledger row and stops the run; the next run resumes.';

COMMENT ON FUNCTION iotstream.create_export(text, regclass, text, interval, interval, text, text, text, text, jsonb, text) IS
    'Creates an export of a stream table: every sealed period (end + lateness < now()) becomes about ceil(bytes / target_file_size) Parquet files, by event time. format delta (the default): a Delta Lake table at destination/<table>, files in event_date=YYYY-MM-DD/event_hour=H/, one log commit per run; format parquet: destination/<table>/date=YYYY-MM-DD/hour=HH/part-NNNNN-<uuid>.parquet without a log. Registers the pg_cron job iotstream_export_<name> running iotstream.run_export(name) (schedule => NULL: none). Options: the writer options of write_parquet (compression_level, row_group_size, ...), block_size (16MB), parallel_uploads (4), max_retries (6), request_timeout_ms (120000), and for delta deleted_file_retention (7 days) and log_retention (30 days).';

-- ------------------------------------------------------------ rule state
-- Bounded memory (issue 21): a key that stopped sending ages out of its
-- rule's state after iotstream.rule_state_idle.
ALTER TABLE iotstream.rule_state ADD COLUMN seen_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX rule_state_idle ON iotstream.rule_state (rule_id, seen_at);
COMMENT ON TABLE iotstream.rule_state IS 'Per rule and key: the detector state of row-by-row rules, saved with each evaluation; idle keys age out.';

-- ------------------------------------------------------------ MQTT sources (issue 19)
-- An MQTT source is a row of iotstream.sources of kind 'mqtt': brokers holds
-- the broker URL, topics the topic filters, group_id the default client id.
-- create_mqtt_source and alter_source run the same checks (the broker,
-- filters, options and topic template: _check_mqtt_source,
-- _check_mqtt_options and _mqtt_template_levels); alter_source also swaps
-- a topic template's levels in the mapping.

CREATE OR REPLACE FUNCTION iotstream._check_mqtt_options(options jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    k text;
    v jsonb;
    protocol text;
BEGIN
    PERFORM iotstream._check_source_options(options);
    protocol := coalesce(options->>'protocol', '3.1.1');
    FOR k, v IN SELECT * FROM jsonb_each(options) LOOP
        IF k NOT IN ('qos', 'client_id', 'username', 'password', 'tls_ca', 'tls_cert', 'tls_key',
                     'keepalive', 'protocol', 'workers', 'retained', 'topic_template',
                     'batch_size', 'batch_ms', 'max_message_bytes', 'dedup_key', 'dedup_horizon') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('unknown MQTT source option %L', k),
                HINT = 'The options of an MQTT source are qos, client_id, username, password, tls_ca, tls_cert, tls_key, keepalive, protocol, workers, retained, topic_template, batch_size, batch_ms, max_message_bytes, dedup_key and dedup_horizon.';
        ELSIF k = 'qos' AND v::text NOT IN ('1', '2') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('option qos must be 1 or 2, not %s', v),
                HINT = 'QoS 2 stores each message exactly once; QoS 1 at least once (set a dedup_key to drop redeliveries).';
        ELSIF k = 'protocol' AND v #>> '{}' NOT IN ('3.1.1', '5') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('option protocol must be "3.1.1" or "5", not %s', v),
                HINT = 'Write the MQTT version as a string, for example "5".';
        ELSIF k = 'retained' AND v #>> '{}' NOT IN ('store', 'skip') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('option retained must be "store" or "skip", not %s', v),
                HINT = 'store keeps the retained message a new subscription receives; skip acknowledges it and stores nothing.';
        ELSIF k = 'keepalive' AND (jsonb_typeof(v) <> 'number' OR (v #>> '{}')::numeric NOT BETWEEN 0 AND 65535
                                   OR (v #>> '{}')::numeric <> trunc((v #>> '{}')::numeric)) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('option keepalive must be a number of seconds from 0 to 65535, not %s', v),
                HINT = 'The default is 30; 0 turns keepalive off.';
        ELSIF k = 'workers' AND (jsonb_typeof(v) <> 'number' OR (v #>> '{}')::numeric NOT BETWEEN 1 AND 64
                                 OR (v #>> '{}')::numeric <> trunc((v #>> '{}')::numeric)) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('option workers must be an integer from 1 to 64, not %s', v),
                HINT = 'Several workers share the topic filters through an MQTT 5 shared subscription.';
        ELSIF k = 'workers' AND (v #>> '{}')::int > 1 AND protocol <> '5' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'several workers need MQTT 5',
                DETAIL = 'The workers share the topic filters through a shared subscription ($share/<group>/<filter>), which MQTT 3.1.1 does not have.',
                HINT = 'Add "protocol": "5" to the options, or use one worker.';
        ELSIF k = 'client_id' AND (jsonb_typeof(v) <> 'string' OR v #>> '{}' !~ '^[A-Za-z0-9_.:-]{1,60}$') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('invalid client_id %s', v),
                HINT = 'Use up to 60 letters, digits, dots, colons, dashes and underscores; with several workers, -1, -2, ... is appended.';
        ELSIF k IN ('username', 'password', 'tls_ca', 'tls_cert', 'tls_key') AND
              (jsonb_typeof(v) <> 'string' OR v #>> '{}' = '') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('option %s must be a non-empty string', k),
                HINT = 'tls_ca, tls_cert and tls_key are paths of PEM files the server can read.';
        END IF;
    END LOOP;
    RETURN options;
END $$;
COMMENT ON FUNCTION iotstream._check_mqtt_options(jsonb) IS 'Internal: validates the options of an MQTT source.';
REVOKE ALL ON FUNCTION iotstream._check_mqtt_options(jsonb) FROM PUBLIC;

-- A topic template, arduino/{site}/{sensor}: each {name} level fills the
-- column name, as {"name": "$topic[n]"}; NULL without a template.
CREATE FUNCTION iotstream._mqtt_template_levels(template jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    level text;
    i int := 0;
    levels jsonb := '{}';
BEGIN
    IF template IS NULL THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(template) <> 'string' OR template #>> '{}' = '' OR template #>> '{}' ~ '[+#\x01-\x1f]' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid topic_template %s', template),
            HINT = 'Write the topic with a {column} for each level to map, for example "arduino/{site}/{sensor}".';
    END IF;
    FOREACH level IN ARRAY string_to_array(template #>> '{}', '/') LOOP
        IF level ~ '[{}]' THEN
            IF level !~ '^\{[A-Za-z_][A-Za-z0-9_]*\}$' OR levels ? substr(level, 2, length(level) - 2) THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = format('invalid level %L of topic_template %L', level, template #>> '{}'),
                    HINT = 'A mapped level is a whole level of the form {column}, each column once.';
            END IF;
            levels := levels || jsonb_build_object(substr(level, 2, length(level) - 2), format('$topic[%s]', i));
        END IF;
        i := i + 1;
    END LOOP;
    RETURN levels;
END $$;
COMMENT ON FUNCTION iotstream._mqtt_template_levels(jsonb) IS 'Internal: the mapping of the {column} levels of an MQTT topic template, after checking it.';

-- The checks of an MQTT source's broker, filters and whole options, the
-- same when it is created and when it is altered.
CREATE FUNCTION iotstream._check_mqtt_source(broker text, topic_filters text[], options jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    f text;
BEGIN
    IF broker IS NULL OR broker !~ '^mqtts?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?/?$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid MQTT broker %L', broker),
            HINT = 'Pass mqtt://host:1883, or mqtts://host:8883 for TLS.';
    END IF;
    IF topic_filters IS NULL OR cardinality(topic_filters) = 0 OR array_position(topic_filters, NULL) IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'topic_filters must be a non-empty array of MQTT topic filters',
            HINT = 'Pass for example ARRAY[''arduino/+/dht11'', ''plant/#''].';
    END IF;
    FOREACH f IN ARRAY topic_filters LOOP
        -- + is a whole level, # the whole last level (MQTT 3.1.1 section 4.7)
        IF f = '' OR octet_length(f) > 1024 OR f ~ '[^/]\+|\+[^/]|[^/]#|#.' OR f ~ '[\x01-\x1f]' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('invalid MQTT topic filter %L', f),
                HINT = '+ stands for one whole level (a/+/c) and # for all remaining levels, last (a/#).';
        END IF;
        IF f LIKE '$share/%' AND coalesce(options->>'protocol', '3.1.1') <> '5' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('the shared subscription %L needs MQTT 5', f),
                HINT = 'Add "protocol": "5" to the options; with "workers" above 1 the filters are shared for you.';
        END IF;
    END LOOP;
    PERFORM iotstream._check_mqtt_options(coalesce(options, '{}'));
    PERFORM iotstream._mqtt_template_levels(options->'topic_template');
END $$;
COMMENT ON FUNCTION iotstream._check_mqtt_source(text, text[], jsonb) IS 'Internal: validates the broker, topic filters and options of an MQTT source, for create_mqtt_source and alter_source.';

CREATE OR REPLACE FUNCTION iotstream.create_mqtt_source(
    name          text,
    broker        text,
    topic_filters text[],
    target        regclass,
    mapping       jsonb DEFAULT NULL,
    options       jsonb DEFAULT '{}')
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    id int;
    public_opts jsonb;
    secret_opts jsonb;
    levels jsonb;
BEGIN
    PERFORM iotstream._require_superuser('create a source');
    IF EXISTS (SELECT 1 FROM iotstream.sources s WHERE s.name = create_mqtt_source.name) THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('source %L already exists', create_mqtt_source.name),
            HINT = 'Change it with iotstream.alter_source() or drop it with iotstream.drop_source().';
    END IF;
    IF name IS NULL OR name !~ '^[A-Za-z0-9_.-]{1,63}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_name',
            MESSAGE = format('invalid source name %L', name),
            HINT = 'Use up to 63 letters, digits, dots, dashes and underscores.';
    END IF;
    -- the {name} levels of a topic template fill their columns (unless the
    -- mapping says otherwise), and the template with + for them is the
    -- filter if none is given
    levels := iotstream._mqtt_template_levels(options->'topic_template');
    IF levels IS NOT NULL THEN
        mapping := levels || coalesce(mapping, '{}');
        IF topic_filters IS NULL OR cardinality(topic_filters) = 0 THEN
            topic_filters := ARRAY[regexp_replace(options->>'topic_template', '\{[A-Za-z0-9_]+\}', '+', 'g')];
        END IF;
    END IF;
    PERFORM iotstream._check_mqtt_source(broker, topic_filters, coalesce(options, '{}'));
    IF target IS NULL OR NOT EXISTS (SELECT 1 FROM iotstream.stream_table_settings st WHERE st.relid = target) THEN
        RAISE EXCEPTION USING ERRCODE = 'wrong_object_type',
            MESSAGE = format('target %s is not a stream table', coalesce(target::text, 'NULL')),
            HINT = 'Create it with iotstream.create_stream_table() first.';
    END IF;
    PERFORM iotstream._validate_source(target, mapping, coalesce(options, '{}'));
    SELECT * INTO public_opts, secret_opts FROM iotstream._split_options(coalesce(options, '{}'));
    INSERT INTO iotstream.sources (name, brokers, topics, target, mapping, options, group_id, kind)
    VALUES (name, broker, topic_filters, target, mapping, public_opts,
            coalesce(options->>'client_id', 'iotstream-' || name), 'mqtt')
    RETURNING source_id INTO id;
    INSERT INTO iotstream.source_secrets VALUES (id, secret_opts);
    RETURN id;
END $$;
COMMENT ON FUNCTION iotstream.create_mqtt_source(text, text, text[], regclass, jsonb, jsonb) IS
    'Defines an MQTT source: messages of the topic filters (+ and # wildcards) on broker (mqtt://host:1883 or mqtts://host:8883) stored in the stream table target; at QoS 2 exactly once. options: qos (2), client_id (iotstream-<name>), username, password (secret), tls_ca, tls_cert, tls_key, keepalive (30), protocol (3.1.1|5), workers (MQTT 5 shared subscription), retained (store|skip), topic_template (arduino/{site}/{sensor}: levels into columns, and the filter if none is given), batch_size, batch_ms, dedup_key, dedup_horizon. The mapping also reads $topic[n] (from 0), $qos and $retain. Superusers only.';

CREATE OR REPLACE FUNCTION iotstream.alter_source(
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
    old_levels jsonb;
    new_levels jsonb;
BEGIN
    PERFORM iotstream._require_superuser('alter a source');
    id := iotstream._source_id(name);
    SELECT * INTO s FROM iotstream.sources x WHERE x.source_id = id FOR UPDATE;
    IF s.kind = 'mqtt' THEN
        -- the checks of create_mqtt_source, on the settings as they will be
        IF options ? 'topic_template' OR mapping IS NOT NULL THEN
            -- the template's levels are part of the stored mapping: swap them
            old_levels := coalesce(iotstream._mqtt_template_levels(s.options->'topic_template'), '{}');
            new_levels := iotstream._mqtt_template_levels(coalesce(options->'topic_template', s.options->'topic_template'));
            IF mapping IS NULL THEN
                SELECT jsonb_object_agg(e.key, e.value) INTO mapping
                  FROM jsonb_each(s.mapping) e WHERE old_levels->e.key IS DISTINCT FROM e.value;
            END IF;
            IF new_levels IS NOT NULL THEN
                mapping := new_levels || coalesce(mapping, '{}');
            END IF;
            -- a filter made from the old template follows the new one
            IF topics IS NULL AND options ? 'topic_template' AND s.options ? 'topic_template'
               AND s.topics = ARRAY[regexp_replace(s.options->>'topic_template', '\{[A-Za-z0-9_]+\}', '+', 'g')] THEN
                topics := ARRAY[regexp_replace(options->>'topic_template', '\{[A-Za-z0-9_]+\}', '+', 'g')];
            END IF;
        END IF;
        PERFORM iotstream._check_mqtt_source(coalesce(brokers, s.brokers), coalesce(topics, s.topics),
                                             s.options || coalesce(options, '{}'));
    ELSIF options IS NOT NULL THEN
        PERFORM iotstream._check_source_options(options);
    END IF;
    PERFORM iotstream._validate_source(s.target, coalesce(mapping, s.mapping),
                                       s.options || coalesce(options, '{}'));
    IF options IS NOT NULL THEN
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
    'Changes a source; NULL leaves a setting unchanged, options are merged and checked as at creation (for an MQTT source: the broker URL, topic filters, options and topic_template as create_mqtt_source does). A running worker restarts with the new settings.';
REVOKE ALL ON FUNCTION iotstream._mqtt_template_levels(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION iotstream._check_mqtt_source(text, text[], jsonb) FROM PUBLIC;

-- Delta exports write arrays as Delta arrays and composites as structs
-- The columns a Delta export writes: all of them, uuids (and arrays of
-- uuids) as their text (Delta has no uuid type, and Spark refuses a
-- FIXED_LEN_BYTE_ARRAY without one).
CREATE OR REPLACE FUNCTION iotstream._delta_select_list(relid regclass) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(string_agg(CASE WHEN 'uuid'::regtype IN (a.atttypid, t.typbasetype)
                                    THEN format('%I::text AS %I', a.attname, a.attname)
                                    WHEN 'uuid[]'::regtype IN (a.atttypid, t.typbasetype)
                                    THEN format('%I::text[] AS %I', a.attname, a.attname)
                                    ELSE format('%I', a.attname) END, ', ' ORDER BY a.attnum), '*')
      FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
     WHERE a.attrelid = relid AND a.attnum > 0 AND NOT a.attisdropped
$$;
COMMENT ON FUNCTION iotstream._delta_select_list(regclass) IS
    'Internal: the select list of a Delta export (uuid and uuid[] columns as text).';

-- The protocol a commit needs, or NULL when the table's is enough.  Errors
-- when the table uses writer features iotstream does not implement.
CREATE OR REPLACE FUNCTION iotstream._delta_protocol(current jsonb, fields jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    -- also an array's elements and a struct's fields
    ntz boolean := jsonb_path_exists(fields, '$.** ? (@.type == "timestamp_ntz" || @.elementType == "timestamp_ntz" || @.valueType == "timestamp_ntz")');
    rf jsonb;
    wf jsonb;
    extra text;
BEGIN
    IF current IS NULL THEN
        IF ntz THEN
            RETURN '{"minReaderVersion": 3, "minWriterVersion": 7, "readerFeatures": ["timestampNtz"], "writerFeatures": ["timestampNtz"]}';
        END IF;
        RETURN '{"minReaderVersion": 1, "minWriterVersion": 2}';
    END IF;
    SELECT string_agg(f, ', ') INTO extra
      FROM jsonb_array_elements_text(coalesce(current->'writerFeatures', '[]')) f
     WHERE f NOT IN ('appendOnly', 'invariants', 'timestampNtz');
    IF (current->>'minWriterVersion')::int NOT IN (1, 2, 7) OR (current->>'minReaderVersion')::int > 3
       OR extra IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
            MESSAGE = 'the delta table needs a writer iotstream is not',
            DETAIL = format('Its protocol is %s.', current),
            HINT = 'iotstream writes tables of writer version 2, or 7 with the features appendOnly, invariants and timestampNtz; export to another destination.';
    END IF;
    IF NOT ntz OR coalesce(current->'readerFeatures', '[]') ? 'timestampNtz' THEN
        RETURN NULL;
    END IF;
    -- the upgrade to table features lists the legacy features writer version 2 implied
    rf := coalesce(current->'readerFeatures', '[]') || '["timestampNtz"]';
    wf := coalesce(current->'writerFeatures',
                   CASE WHEN (current->>'minWriterVersion')::int >= 2 THEN '["appendOnly", "invariants"]'::jsonb
                        ELSE '[]' END) || '["timestampNtz"]';
    RETURN jsonb_build_object('minReaderVersion', 3, 'minWriterVersion', 7, 'readerFeatures', rf, 'writerFeatures', wf);
END $$;
COMMENT ON FUNCTION iotstream._delta_protocol(jsonb, jsonb) IS
    'Internal: the protocol action a commit of these schema fields needs on a table of the current protocol (timestampNtz needs reader 3 and writer 7), or NULL.';

-- A Delta commit creates its version first and reads the log only when
-- another writer took it; _last_checkpoint only past the log retention
-- The log retention that bounds what any writer's cleanup may have deleted
-- since: the shorter of the table's delta.logRetentionDuration ("interval
-- 30 days", as Delta writes it) and this export's log_retention; NULL when
-- the table's cannot be read.
CREATE FUNCTION iotstream._delta_log_retention_ms(e iotstream.exports, st jsonb) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce((extract(epoch FROM least(t.i, coalesce((e.options->>'log_retention')::interval, interval '30 days'))) * 1000)::bigint, 0)
      FROM (SELECT (SELECT (m[1] || ' ' || m[2])::interval
                      FROM regexp_match(coalesce(st->'metaData'->'configuration'->>'delta.logRetentionDuration', 'interval 30 days'),
                                        '^\s*interval\s+(\d{1,9})\s+(seconds?|minutes?|hours?|days?|weeks?)\s*$', 'i') m) AS i) t
     WHERE t.i IS NOT NULL
$$;
COMMENT ON FUNCTION iotstream._delta_log_retention_ms(iotstream.exports, jsonb) IS
    'Internal: the shorter of the Delta table''s delta.logRetentionDuration and the export''s log_retention, in milliseconds (NULL when unreadable).';
REVOKE ALL ON FUNCTION iotstream._delta_log_retention_ms(iotstream.exports, jsonb) FROM PUBLIC;

-- Commits the ledger rows `added` (their add actions) and `removed` (their
-- files as remove actions) as one version; returns it, or NULL when the run
-- wrote nothing.
-- A Delta writer joins a table whose early log is gone from its checkpoint
CREATE FUNCTION iotstream._delta_read_checkpoint(destination text, folder text, credential text, version bigint)
RETURNS jsonb[] AS 'MODULE_PATHNAME', 'delta_read_checkpoint' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iotstream._delta_read_checkpoint(text, text, text, bigint) IS
    'Internal: the actions of the Delta table''s classic checkpoint of version, one a row as in a commit; NULL when it has none.';
REVOKE ALL ON FUNCTION iotstream._delta_read_checkpoint(text, text, text, bigint) FROM PUBLIC;
-- Commits the ledger rows `added` (their add actions) and `removed` (their
-- files as remove actions) as one version; returns it, or NULL when the run
-- wrote nothing.
CREATE OR REPLACE FUNCTION iotstream._delta_commit(e iotstream.exports, added bigint[], removed bigint[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    tbl text := iotstream._path_component((SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid = e.source_table));
    app text := iotstream._delta_app_id(e);
    seq bigint := e.delta_runs + 1;
    st jsonb := e.delta_state;
    pcols text[] := iotstream._delta_partition_columns(e.source_table, e.period);
    now_ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    adds jsonb;
    removes jsonb;
    fields jsonb;
    paths text[];
    r record;
    acts jsonb[];
    mine boolean;
    clash text;
    meta jsonb;
    proto jsonb;
    body text;
    v bigint;
    nread int;
    lc bigint;
    cp jsonb[];
    attempt int := 0;
BEGIN
    SELECT coalesce(jsonb_agg(x.a ORDER BY l.id, x.i), '[]') INTO adds
      FROM iotstream.export_log l, jsonb_array_elements(l.delta_files->'add') WITH ORDINALITY x(a, i)
     WHERE l.id = ANY (added);
    SELECT coalesce(jsonb_agg(jsonb_build_object('path', x.a->'path', 'deletionTimestamp', now_ms, 'dataChange', true,
                                                 'extendedFileMetadata', true, 'partitionValues', x.a->'partitionValues',
                                                 'size', x.a->'size') ORDER BY l.id, x.i), '[]') INTO removes
      FROM iotstream.export_log l, jsonb_array_elements(l.delta_files->'add') WITH ORDINALITY x(a, i)
     WHERE l.id = ANY (removed);
    IF jsonb_array_length(adds) = 0 AND jsonb_array_length(removes) = 0 THEN
        RETURN NULL;
    END IF;
    SELECT l.delta_files->'fields' INTO fields FROM iotstream.export_log l
     WHERE l.id = ANY (added) AND l.delta_files ? 'fields' ORDER BY l.id DESC LIMIT 1;
    SELECT array_agg(x->>'path') INTO paths
      FROM (SELECT jsonb_array_elements(adds) UNION ALL SELECT jsonb_array_elements(removes)) y(x);

    LOOP
        attempt := attempt + 1;
        nread := 0;
        -- The first attempt creates the next version at once: put-if-absent
        -- fails if anyone (another writer, or an earlier attempt of this
        -- run that committed and then rolled back in PostgreSQL) took it,
        -- and only then are the commits since read, and checked.  The
        -- exports row is locked from here on: its state is about to change.
        IF attempt = 1 THEN
            PERFORM FROM iotstream.exports x WHERE x.name = e.name FOR NO KEY UPDATE;
        ELSE
        FOR r IN SELECT * FROM iotstream._delta_read_log(e.destination, tbl, e.credential,
                                                         coalesce((st->>'version')::bigint, -1) + 1) LOOP
            nread := nread + 1;
            SELECT array_agg(t::jsonb) INTO acts FROM regexp_split_to_table(r.commit, E'\n') t WHERE t <> '';
            mine := EXISTS (SELECT 1 FROM unnest(acts) a
                             WHERE a->'txn'->>'appId' = app AND (a->'txn'->>'version')::bigint >= seq);
            IF NOT mine THEN
                SELECT coalesce(a->'add'->>'path', a->'remove'->>'path') INTO clash FROM unnest(acts) a
                 WHERE coalesce(a->'add'->>'path', a->'remove'->>'path') = ANY (paths) LIMIT 1;
                IF clash IS NOT NULL THEN
                    RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
                        MESSAGE = format('export "%s": version %s of the delta table, by another writer, touches "%s", which this run adds or removes',
                                         e.name, r.version, clash),
                        DETAIL = 'Nothing was committed; the ledger keeps the periods as they were.',
                        HINT = 'Two exports write the same files: give each its own destination or export name.';
                END IF;
            END IF;
            SELECT st || coalesce((SELECT jsonb_build_object('metaData', a->'metaData') FROM unnest(acts) a WHERE a ? 'metaData' LIMIT 1), '{}')
                      || coalesce((SELECT jsonb_build_object('protocol', a->'protocol') FROM unnest(acts) a WHERE a ? 'protocol' LIMIT 1), '{}')
                      || jsonb_build_object('version', r.version)
              INTO st;
            IF mine THEN
                -- committed already: never twice, as long as the files it
                -- lists are the ones in storage now.  Rows that came between
                -- the attempts make the retry write other bytes under the
                -- same names: then the same paths are committed again with
                -- their sizes and stats now (legal for an existing path), and
                -- files only the earlier attempt wrote are removed.
                IF (SELECT coalesce(jsonb_agg(jsonb_build_array(a->'add'->'path', a->'add'->'size', a->'add'->'stats')
                                              ORDER BY a->'add'->>'path'), '[]')
                      FROM unnest(acts) a WHERE a ? 'add')
                   = (SELECT coalesce(jsonb_agg(jsonb_build_array(x->'path', x->'size', x->'stats') ORDER BY x->>'path'), '[]')
                        FROM jsonb_array_elements(adds) x) THEN
                    UPDATE iotstream.exports x SET delta_state = st, delta_runs = seq WHERE x.name = e.name;
                    RETURN r.version;
                END IF;
                SELECT coalesce(jsonb_agg(jsonb_build_object('path', a->'add'->'path', 'deletionTimestamp', now_ms,
                                          'dataChange', true, 'extendedFileMetadata', true,
                                          'partitionValues', a->'add'->'partitionValues', 'size', a->'add'->'size')), '[]')
                  INTO removes
                  FROM unnest(acts) a
                 WHERE a ? 'add' AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(adds) x WHERE x->>'path' = a->'add'->>'path');
            END IF;
        END LOOP;
        -- what was read is kept (the exports row is locked from here on)
        UPDATE iotstream.exports x SET delta_state = st WHERE x.name = e.name;
        END IF;
        v := coalesce((st->>'version')::bigint, -1) + 1;
        -- no commit after the last known: v is free, unless log cleanup
        -- deleted it (it only deletes below a checkpoint).  Cleanup only
        -- deletes commits older than the log retention, so while this
        -- export's knowledge of the table is younger than that, it cannot
        -- have deleted v: _last_checkpoint is read only past it.
        IF nread = 0 AND NOT coalesce(now_ms - (st->>'known_at')::bigint < iotstream._delta_log_retention_ms(e, st), false) THEN
            lc := (iotstream._delta_read_last_checkpoint(e.destination, tbl, e.credential)::jsonb->>'version')::bigint;
            IF lc >= v THEN
                -- the commits up to lc are gone: the table is its checkpoint
                -- of lc plus the commits after it, read by the next attempt
                cp := iotstream._delta_read_checkpoint(e.destination, tbl, e.credential, lc);
                IF cp IS NULL OR NOT EXISTS (SELECT 1 FROM unnest(cp) a WHERE a ? 'metaData')
                   OR NOT EXISTS (SELECT 1 FROM unnest(cp) a WHERE a ? 'protocol') THEN
                    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
                        MESSAGE = format('export "%s": the delta table''s log was cleaned up past version %s, and its checkpoint of version %s cannot be read',
                                         e.name, v, lc),
                        DETAIL = 'iotstream reads classic single-file checkpoints holding metaData and protocol. Nothing was committed.',
                        HINT = 'Write a classic checkpoint of the table with another engine, or export to a new destination.';
                END IF;
                IF EXISTS (SELECT 1 FROM unnest(cp) a WHERE a->'txn'->>'appId' = app AND (a->'txn'->>'version')::bigint >= seq) THEN
                    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
                        MESSAGE = format('export "%s": the delta table''s checkpoint of version %s holds this run''s commit, whose actions are deleted', e.name, lc),
                        DETAIL = 'Nothing was committed.',
                        HINT = 'Drop the export and create it again to export its periods anew.';
                END IF;
                st := st || jsonb_build_object('version', lc, 'checkpoint', lc, 'log_start', lc,
                    'metaData', (SELECT a->'metaData' FROM unnest(cp) a WHERE a ? 'metaData' LIMIT 1),
                    'protocol', (SELECT a->'protocol' FROM unnest(cp) a WHERE a ? 'protocol' LIMIT 1));
                -- the base of this export's next checkpoint
                INSERT INTO iotstream.export_delta_checkpoints AS c (export, version, actions)
                VALUES (e.name, lc, cp)
                ON CONFLICT (export) DO UPDATE SET version = excluded.version, actions = excluded.actions;
                UPDATE iotstream.exports x SET delta_state = st WHERE x.name = e.name;
                CONTINUE;
            END IF;
        END IF;

        meta := iotstream._delta_metadata(e, st->'metaData', fields, pcols, now_ms);
        proto := iotstream._delta_protocol(st->'protocol',
                    coalesce(((meta->>'schemaString')::jsonb)->'fields', '[]'));
        SELECT string_agg(x::text, E'\n') || E'\n' INTO body FROM (
            SELECT jsonb_build_object('commitInfo', jsonb_build_object(
                       'timestamp', now_ms,
                       'operation', 'WRITE',
                       'operationParameters', jsonb_build_object(
                           'mode', CASE WHEN jsonb_array_length(removes) = 0 THEN 'Append' ELSE 'Overwrite' END,
                           'partitionBy', to_jsonb(pcols)::text),
                       'readVersion', CASE WHEN v > 0 THEN v - 1 END,
                       'isBlindAppend', jsonb_array_length(removes) = 0,
                       'engineInfo', 'iotstream/' || (SELECT x.extversion FROM pg_catalog.pg_extension x WHERE x.extname = 'iotstream'),
                       'txnId', gen_random_uuid(),
                       'iotstream', jsonb_build_object('export', e.name, 'run', seq, 'attempt', attempt))) AS x
            UNION ALL SELECT jsonb_build_object('protocol', proto) WHERE proto IS NOT NULL
            UNION ALL SELECT jsonb_build_object('metaData', meta) WHERE meta IS NOT NULL
            UNION ALL SELECT jsonb_build_object('txn', jsonb_build_object('appId', app, 'version', seq, 'lastUpdated', now_ms))
            UNION ALL SELECT jsonb_build_object('add', a) FROM jsonb_array_elements(adds) a
            UNION ALL SELECT jsonb_build_object('remove', a) FROM jsonb_array_elements(removes) a) y;
        IF iotstream._delta_create_commit(e.destination, tbl, e.credential, v, body) THEN
            -- known_at: when this export last knew the table's newest version
            st := st || jsonb_build_object('version', v, 'known_at', now_ms)
                  || CASE WHEN meta IS NULL THEN '{}' ELSE jsonb_build_object('metaData', meta) END
                  || CASE WHEN proto IS NULL THEN '{}' ELSE jsonb_build_object('protocol', proto) END;
            UPDATE iotstream.exports x SET delta_state = st, delta_runs = seq WHERE x.name = e.name;
            -- every delta.checkpointInterval (10) commits
            IF v > 0 AND v % 10 = 0 THEN
                PERFORM iotstream._delta_checkpoint(e, tbl, v);
            END IF;
            RETURN v;
        END IF;
        -- another writer took version v: read it and try the next
        IF attempt >= 100 THEN
            RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
                MESSAGE = format('export "%s": 100 attempts to commit to the delta table lost to other writers', e.name),
                HINT = 'The next run tries again; nothing was committed.';
        END IF;
    END LOOP;
END $$;
COMMENT ON FUNCTION iotstream._delta_commit(iotstream.exports, bigint[], bigint[]) IS
    'Internal: commits a run''s add and remove actions as one version of the export''s Delta table (put-if-absent, optimistic concurrency, txn dedup); returns the version or NULL.';

-- ------------------------------------------------------------ source_status
-- source_status shows each source's kind, its workers' memory (issue 21:
-- RssAnon, what dedup holds, the keys it holds exactly and behind filters)
-- and a file source's files by state, with how many done ones its worker
-- caches (issues 20 and 21).  _worker_stats gains columns, so both are
-- made again.
DROP VIEW iotstream.source_status;
DROP FUNCTION iotstream._worker_stats();
CREATE FUNCTION iotstream._worker_stats(
    OUT source_id int, OUT pid int, OUT state text, OUT messages bigint, OUT rows bigint,
    OUT dead_letters bigint, OUT duplicates bigint, OUT batches bigint,
    OUT messages_per_sec float8, OUT rows_per_sec float8, OUT started_at timestamptz,
    OUT last_batch_at timestamptz, OUT last_error text, OUT last_error_at timestamptz,
    OUT memory_bytes bigint, OUT dedup_bytes bigint, OUT dedup_keys bigint, OUT dedup_filtered_keys bigint,
    OUT cached bigint)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'iotstream_worker_stats' LANGUAGE C;
COMMENT ON FUNCTION iotstream._worker_stats() IS 'Internal: the counters of each source worker since it started, from shared memory; a role sees the workers of the tables it may read.';
REVOKE ALL ON FUNCTION iotstream._worker_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION iotstream._worker_stats() TO PUBLIC;
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
       w.last_error_at,
       s.kind,
       w.memory_bytes,
       w.dedup_bytes,
       w.dedup_keys,
       w.dedup_filtered_keys,
       f.files
  FROM iotstream.sources s
  LEFT JOIN LATERAL (
       SELECT count(*) FILTER (WHERE x.pid IS NOT NULL) AS workers,
              array_agg(x.pid) FILTER (WHERE x.pid IS NOT NULL) AS pids,
              min(x.state) FILTER (WHERE x.pid IS NOT NULL) AS state,
              sum(x.messages_per_sec) AS messages_per_sec, sum(x.rows_per_sec) AS rows_per_sec,
              sum(x.messages) AS messages, sum(x.rows) AS rows, sum(x.duplicates) AS duplicates,
              max(x.last_batch_at) AS last_batch_at,
              (array_agg(x.last_error ORDER BY x.last_error_at DESC NULLS LAST))[1] AS last_error,
              max(x.last_error_at) AS last_error_at,
              sum(x.memory_bytes)::bigint AS memory_bytes, sum(x.dedup_bytes)::bigint AS dedup_bytes,
              sum(x.dedup_keys)::bigint AS dedup_keys, sum(x.dedup_filtered_keys)::bigint AS dedup_filtered_keys,
              sum(x.cached)::bigint AS cached
         FROM iotstream._worker_stats() x WHERE x.source_id = s.source_id) w ON true
  LEFT JOIN LATERAL (
       SELECT jsonb_agg(jsonb_build_object('topic', so.topic, 'partition', so.partition,
                        'next_offset', so.next_offset, 'high_watermark', so.high_watermark,
                        'lag', greatest(so.high_watermark - so.next_offset, 0))
                        ORDER BY so.topic, so.partition) AS partitions,
              sum(greatest(so.high_watermark - so.next_offset, 0))::bigint AS lag
         FROM iotstream.source_offsets so WHERE so.source_id = s.source_id) o ON true
  LEFT JOIN LATERAL (
       SELECT jsonb_build_object('seen', count(*),
                                 'waiting', count(*) FILTER (WHERE sf.state = 'seen'),
                                 'in_progress', count(*) FILTER (WHERE sf.state = 'in progress'),
                                 'done', count(*) FILTER (WHERE sf.state = 'done'),
                                 'failed', count(*) FILTER (WHERE sf.state = 'failed'),
                                 'rewritten', count(*) FILTER (WHERE sf.state = 'rewritten'),
                                 'cached', w.cached) AS files
         FROM iotstream.source_files sf WHERE sf.source_id = s.source_id AND s.kind = 'file'
       HAVING s.kind = 'file') f ON true
 -- each role sees the sources of the tables it may read
 WHERE coalesce(pg_catalog.has_table_privilege(s.target, 'SELECT'), false)
    OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user);
GRANT SELECT ON iotstream.source_status TO PUBLIC;
COMMENT ON VIEW iotstream.source_status IS
    'Each source: state, worker pids, partitions with stored offset, high watermark and lag, messages and rows per second over the last minute, totals since the workers started, duplicates, dead letters, the last error, its kind, and its workers'' memory: private memory (RssAnon), what dedup holds, and the keys it holds exactly and behind filters. No secrets.';

-- ------------------------------------------------------------ privileges
-- internal export and Delta functions are not for PUBLIC (as
-- sql/install/90_privileges.sql)
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'iotstream'::regnamespace AND p.proname LIKE '\_%' AND p.prokind = 'f'
                AND (p.proname LIKE '\_delta\_%' OR p.proname LIKE '\_export\_%')
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END $$;
GRANT EXECUTE ON FUNCTION iotstream._export_require_superuser(text) TO PUBLIC;

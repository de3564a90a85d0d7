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

-- source_status shows each source's kind and its workers' memory (issue
-- 21): _worker_stats gains columns, so both are made again.
DROP VIEW iotstream.source_status;
DROP FUNCTION iotstream._worker_stats();
CREATE FUNCTION iotstream._worker_stats(
    OUT source_id int, OUT pid int, OUT state text, OUT messages bigint, OUT rows bigint,
    OUT dead_letters bigint, OUT duplicates bigint, OUT batches bigint,
    OUT messages_per_sec float8, OUT rows_per_sec float8, OUT started_at timestamptz,
    OUT last_batch_at timestamptz, OUT last_error text, OUT last_error_at timestamptz,
    OUT memory_bytes bigint, OUT dedup_bytes bigint, OUT dedup_keys bigint, OUT dedup_filtered_keys bigint)
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
       w.dedup_filtered_keys
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
              sum(x.dedup_keys)::bigint AS dedup_keys, sum(x.dedup_filtered_keys)::bigint AS dedup_filtered_keys
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
    'Each source: state, worker pids, partitions with stored offset, high watermark and lag, messages and rows per second over the last minute, totals since the workers started, duplicates, dead letters, the last error, its kind, and its workers'' memory: private memory (RssAnon), what dedup holds, and the keys it holds exactly and behind filters. No secrets.';

-- Dedup keys: one row per batch and key shard instead of one row per key
-- (issue 21).  A row per key made every ingested message write a b-tree
-- entry at a random place; a row per batch and shard writes 16 rows a
-- batch, and expires a whole row at a time.  The keys seen within the
-- horizon move over, grouped by the time they were seen.
ALTER TABLE iotstream.source_dedup RENAME TO source_dedup_0_2;
CREATE TABLE iotstream.source_dedup (
    source_id   int NOT NULL,
    seen_at     timestamptz NOT NULL,
    shard       smallint NOT NULL CHECK (shard BETWEEN 0 AND 15),
    keys        bytea NOT NULL
);
ALTER TABLE iotstream.source_dedup ALTER COLUMN keys SET STORAGE EXTERNAL;
CREATE INDEX source_dedup_lookup ON iotstream.source_dedup (source_id, shard, seen_at);
COMMENT ON TABLE iotstream.source_dedup IS 'Hashes of the dedup keys ingested within each source''s horizon: one row per batch and key shard.';
REVOKE ALL ON iotstream.source_dedup FROM PUBLIC;
INSERT INTO iotstream.source_dedup (source_id, seen_at, shard, keys)
SELECT source_id, seen_at, ((key_hash >> 60) & 15)::smallint, string_agg(int8send(key_hash), ''::bytea)
  FROM iotstream.source_dedup_0_2
 GROUP BY 1, 2, 3;
DROP TABLE iotstream.source_dedup_0_2;

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
        ELSIF k = 'poll_ms' AND (jsonb_typeof(v) <> 'number' OR (v #>> '{}')::numeric < 10
                                 OR (v #>> '{}')::numeric <> trunc((v #>> '{}')::numeric)) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('option poll_ms must be an integer of at least 10, not %s', v),
                HINT = 'poll_ms is how often, in milliseconds, the folder is listed for new files.';
        END IF;
        IF k IN ('pattern', 'header', 'delimiter', 'quote', 'columns', 'on_rewrite', 'path_column', 'poll_ms',
                 'credential', 'list_page') THEN
            file_opts := file_opts || jsonb_build_object('file.' || k, v);
        ELSIF k IN ('batch_size', 'batch_ms', 'max_message_bytes', 'dedup_key', 'dedup_horizon', 'dedup_memory') THEN
            rest := rest || jsonb_build_object(k, v);
        ELSE
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('unknown option %L of a file source', k),
                HINT = 'Options are pattern, header, delimiter, quote, columns, on_rewrite, path_column, poll_ms, credential, list_page, batch_size, batch_ms, max_message_bytes, dedup_key, dedup_horizon, dedup_memory.';
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
    'Defines a file source: the files of a folder (file:///...) or blob container (abfss://, https://, emulator http://; options.credential) that match options.pattern (default **/*.<format>, .gz included) read once each into the stream table target; format csv, jsonl or avro (Event Hubs Capture: Body decoded, the rest in $headers). options: pattern, header, delimiter, quote, columns, on_rewrite (skip|reingest), path_column, poll_ms, credential, list_page, batch_size, batch_ms, max_message_bytes, dedup_key, dedup_horizon. Superusers only.';

-- source_status: the files of a file source by state (a new last column)
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
              sum(x.dedup_keys)::bigint AS dedup_keys, sum(x.dedup_filtered_keys)::bigint AS dedup_filtered_keys
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
                                 'rewritten', count(*) FILTER (WHERE sf.state = 'rewritten')) AS files
         FROM iotstream.source_files sf WHERE sf.source_id = s.source_id AND s.kind = 'file'
       HAVING s.kind = 'file') f ON true
 -- each role sees the sources of the tables it may read
 WHERE coalesce(pg_catalog.has_table_privilege(s.target, 'SELECT'), false)
    OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user);

-- Delta Lake tables: an export of format delta commits what each run wrote
-- and replaced to the table's _delta_log, one commit per run, as
-- delta-io/delta PROTOCOL.md says.
--
-- The invariant: a run's files are in the table in one commit or not at
-- all, and a run is committed at most once.  The commit carries a txn
-- action (appId: the export, version: its run number).  Commits are
-- created with put-if-absent (C: src/export/delta_log.c); when the version
-- after the last one the run knows is taken, the run reads every commit
-- since, finds there its own when an earlier attempt of the same run
-- committed and then rolled back in PostgreSQL, checks that the others
-- touched none of its files, and tries the next version.  A writer whose next version log
-- cleanup deleted starts from the checkpoint _last_checkpoint names.

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
CREATE FUNCTION iotstream._delta_read_last_checkpoint(destination text, folder text, credential text)
RETURNS text AS 'MODULE_PATHNAME', 'delta_read_last_checkpoint' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iotstream._delta_read_last_checkpoint(text, text, text) IS
    'Internal: the Delta table''s _delta_log/_last_checkpoint, or NULL when it has none.';
CREATE FUNCTION iotstream._delta_read_checkpoint(destination text, folder text, credential text, version bigint)
RETURNS jsonb[] AS 'MODULE_PATHNAME', 'delta_read_checkpoint' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iotstream._delta_read_checkpoint(text, text, text, bigint) IS
    'Internal: the actions of the Delta table''s classic checkpoint of version, one a row as in a commit; NULL when it has none.';
CREATE FUNCTION iotstream._delta_delete_log(destination text, folder text, credential text, from_version bigint,
    before_version bigint)
RETURNS text[] AS 'MODULE_PATHNAME', 'delta_delete_log' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iotstream._delta_delete_log(text, text, text, bigint, bigint) IS
    'Internal: deletes the commits and checkpoints of versions from_version up to before_version (excluded) of the Delta table''s log; returns the names of those that were there.';
REVOKE ALL ON FUNCTION iotstream._delta_read_log(text, text, text, bigint),
    iotstream._delta_create_commit(text, text, text, bigint, text),
    iotstream._delta_write_checkpoint(text, text, text, bigint, jsonb[], int),
    iotstream._delta_read_last_checkpoint(text, text, text),
    iotstream._delta_read_checkpoint(text, text, text, bigint),
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

-- The columns a Delta export writes: all of them, uuids (and arrays of
-- uuids) as their text (Delta has no uuid type, and Spark refuses a
-- FIXED_LEN_BYTE_ARRAY without one).
CREATE FUNCTION iotstream._delta_select_list(relid regclass) RETURNS text
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

-- The txn appId of an export: unique per server, database and export, so
-- that exports of several servers can feed one table.
CREATE FUNCTION iotstream._delta_app_id(e iotstream.exports) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT md5(format('iotstream|%s|%s|%s|%s', (SELECT c.system_identifier FROM pg_catalog.pg_control_system() c),
                      current_database(), e.name, e.created_at))::uuid::text
$$;
COMMENT ON FUNCTION iotstream._delta_app_id(iotstream.exports) IS
    'Internal: the appId of an export''s txn actions (server, database, export name and creation time, hashed).';

-- The protocol a commit needs, or NULL when the table's is enough.  Errors
-- when the table uses writer features iotstream does not implement.
CREATE FUNCTION iotstream._delta_protocol(current jsonb, fields jsonb) RETURNS jsonb
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

-- The metaData action a commit needs, or NULL.  A column added at the end
-- is a new schema; a dropped, renamed or retyped column cannot be written
-- without column mapping and is refused.
CREATE FUNCTION iotstream._delta_metadata(e iotstream.exports, current jsonb, data_fields jsonb, pcols text[],
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

-- Writes the checkpoint of version v: the table's state (live adds,
-- tombstones still within their retention, the latest txn of each writer,
-- metaData, protocol) replayed from the export's previous checkpoint and
-- the JSON commits after it, or from version 0 when it has none.  A failure
-- costs a warning, not the run: the commit is made, and readers replay the
-- JSON.  A gap in the commits to replay (another writer's log cleanup)
-- is such a failure: a checkpoint is never written from part of the log.
CREATE FUNCTION iotstream._delta_checkpoint(e iotstream.exports, tbl text, v bigint) RETURNS void
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

-- Log cleanup: deletes the commits and checkpoints older than
-- delta.logRetentionDuration (the log_retention option, 30 days) below the
-- newest checkpoint of this export whose commit is that old, as PROTOCOL.md's
-- metadata cleanup does.  Only versions a checkpoint covers go: the cut is
-- a version whose checkpoint this export wrote whole, and the next
-- checkpoint is built from the last one (export_delta_checkpoints), never
-- from the deleted commits.  Each cleanup is a ledger row (status
-- log_cleaned, version the cut, files the entries deleted, period the
-- commit times they span); a failure is a warning and the next run retries.
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

-- Commits the ledger rows `added` (their add actions) and `removed` (their
-- files as remove actions) as one version; returns it, or NULL when the run
-- wrote nothing.
CREATE FUNCTION iotstream._delta_commit(e iotstream.exports, added bigint[], removed bigint[]) RETURNS bigint
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

CREATE FUNCTION iotstream.delta_history(export text)
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

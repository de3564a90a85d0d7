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

-- Per rule and key, the state of a row-by-row detector (a C struct), and
-- when the key last sent: a key silent for iotstream.rule_state_idle loses
-- its state (src/detect/rule_state.c).
CREATE TABLE iotstream.rule_state (
    rule_id int NOT NULL REFERENCES iotstream.rules ON DELETE CASCADE,
    key     jsonb NOT NULL,
    state   bytea NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, key)
);
CREATE INDEX rule_state_idle ON iotstream.rule_state (rule_id, seen_at);
COMMENT ON TABLE iotstream.rule_state IS 'Per rule and key: the detector state of row-by-row rules, saved with each evaluation; idle keys age out.';

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

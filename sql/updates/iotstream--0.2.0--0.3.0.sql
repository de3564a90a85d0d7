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

-- ------------------------------------------------------------ MQTT sources (issue 19)
-- New functions only: create_mqtt_source and its option checks.
-- An MQTT source is a row of iotstream.sources of kind 'mqtt': brokers holds
-- the broker URL, topics the topic filters, group_id the default client id.

-- The MQTT options: what each may be, with the shared ones checked as for
-- every source.
CREATE FUNCTION iotstream._check_mqtt_options(options jsonb) RETURNS jsonb
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
                     'keepalive', 'protocol', 'workers', 'retained',
                     'batch_size', 'batch_ms', 'max_message_bytes', 'dedup_key', 'dedup_horizon') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('unknown MQTT source option %L', k),
                HINT = 'The options of an MQTT source are qos, client_id, username, password, tls_ca, tls_cert, tls_key, keepalive, protocol, workers, retained, batch_size, batch_ms, max_message_bytes, dedup_key and dedup_horizon.';
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

CREATE FUNCTION iotstream.create_mqtt_source(
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
    f text;
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
    IF target IS NULL OR NOT EXISTS (SELECT 1 FROM iotstream.stream_table_settings st WHERE st.relid = target) THEN
        RAISE EXCEPTION USING ERRCODE = 'wrong_object_type',
            MESSAGE = format('target %s is not a stream table', coalesce(target::text, 'NULL')),
            HINT = 'Create it with iotstream.create_stream_table() first.';
    END IF;
    PERFORM iotstream._check_mqtt_options(coalesce(options, '{}'));
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
    'Defines an MQTT source: messages of the topic filters (+ and # wildcards) on broker (mqtt://host:1883 or mqtts://host:8883) stored in the stream table target; at QoS 2 exactly once. options: qos (2), client_id (iotstream-<name>), username, password (secret), tls_ca, tls_cert, tls_key, keepalive (30), protocol (3.1.1|5), workers (MQTT 5 shared subscription), retained (store|skip), batch_size, batch_ms, dedup_key, dedup_horizon. The mapping also reads $topic[n] (from 0), $qos and $retain. Superusers only.';
REVOKE ALL ON FUNCTION iotstream._check_mqtt_options(jsonb) FROM PUBLIC;

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
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- which implementation of the source interface reads it (src/source/source.h)
    kind        text NOT NULL DEFAULT 'kafka' CHECK (kind IN ('kafka', 'mqtt', 'file'))
);
COMMENT ON TABLE iotstream.sources IS 'Sources (kind kafka: Kafka and Event Hubs; mqtt; file). options holds librdkafka properties and iotstream settings; secrets live in iotstream.source_secrets.';

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

-- Dedup keys seen within the horizon, per source: one row per batch and key
-- shard (the top 5 bits of the key hash), the batch's keys in `keys` as
-- 16-byte big-endian hashes (two 64-bit halves).  Written in the batch's transaction, looked up
-- by shard and time only for keys memory cannot decide, and deleted a whole
-- row at a time once the horizon has passed (src/ingest/dedup.c).  No
-- foreign key: a trigger forgets the keys of a source that goes.
CREATE TABLE iotstream.source_dedup (
    source_id   int NOT NULL,
    seen_at     timestamptz NOT NULL,
    shard       smallint NOT NULL CHECK (shard BETWEEN 0 AND 31),
    keys        bytea NOT NULL
) WITH (toast_tuple_target = 8160);
-- random hashes do not compress: never compressed, and kept in the row up
-- to a page (a batch of 10,000 keys makes rows of about 5kB): a row stored
-- out of line cost three TOAST rows and their index entries more
ALTER TABLE iotstream.source_dedup ALTER COLUMN keys SET STORAGE EXTERNAL;
CREATE INDEX source_dedup_lookup ON iotstream.source_dedup (source_id, shard, seen_at);
COMMENT ON TABLE iotstream.source_dedup IS 'Hashes of the dedup keys ingested within each source''s horizon: one row per batch and key shard.';

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
    OUT last_batch_at timestamptz, OUT last_error text, OUT last_error_at timestamptz,
    OUT memory_bytes bigint, OUT dedup_bytes bigint, OUT dedup_keys bigint, OUT dedup_filtered_keys bigint,
    OUT cached bigint)
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

-- source_status: the files of a file source by state (a new last column),
-- and how many of them its worker holds in memory (cached)
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

-- ------------------------------------------------------------ MQTT sources (issue 19)
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

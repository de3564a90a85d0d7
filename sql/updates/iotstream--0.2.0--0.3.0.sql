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

-- source_status shows each source's kind (a new last column)
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
       s.kind
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

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

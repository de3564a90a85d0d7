-- Stream tables: creation, naming, adoption and the error paths.
-- Times are fixed and bounds are off (retention => NULL, max_future large),
-- so the output does not depend on today's date.
SET client_min_messages = warning;
SET TimeZone = 'UTC';
SET IntervalStyle = 'postgres';
\set SHOW_CONTEXT never

-- From a column list; partitions for fixed times, out of order.
SELECT iotstream.create_stream_table('telemetry',
    'ts timestamptz NOT NULL, sensor_id text NOT NULL, metric_type text, value float8',
    'ts', retention => NULL, max_future => '100 years', premake => 0) IS NOT NULL AS created;
SELECT iotstream.ensure_partition('telemetry', '2026-03-05 17:00+00');
SELECT iotstream.ensure_partition('telemetry', '2026-03-03 23:59:59.999999+00');
SELECT iotstream.ensure_partition('telemetry', '2026-03-05 00:00+00');  -- existing
SELECT iotstream.ensure_partition('telemetry', '2026-03-04 01:00+01');  -- = 03-04 00:00 UTC
SELECT partition, range_start, range_end FROM iotstream.partitions('telemetry')
 WHERE range_start < '2026-06-01' ORDER BY range_start;

-- Partition names follow the interval; grids are UTC whatever the session zone.
SET TimeZone = 'America/New_York';  -- UTC-5
SELECT iotstream.create_stream_table('hourly', 'ts timestamptz, v int', 'ts',
    partition_interval => '1 hour', premake => 0, retention => NULL, max_future => '100 years') IS NOT NULL;
SELECT iotstream.ensure_partition('hourly', '2026-03-05 17:30+00');
SELECT iotstream.create_stream_table('quarter', 'ts timestamptz, v int', 'ts',
    partition_interval => '15 minutes', premake => 0, retention => NULL, max_future => '100 years') IS NOT NULL;
SELECT iotstream.ensure_partition('quarter', '2026-03-05 17:31+00');
SELECT iotstream.create_stream_table('monthly', 'ts timestamp, v int', 'ts',
    partition_interval => '1 month', premake => 0, retention => NULL, max_future => '100 years') IS NOT NULL;
SELECT iotstream.ensure_partition('monthly', '2026-02-28 23:00+00');
SELECT iotstream.create_stream_table('quarterly', 'ts timestamptz, v int', 'ts',
    partition_interval => '3 months', premake => 0, retention => NULL, max_future => '100 years') IS NOT NULL;
SELECT iotstream.ensure_partition('quarterly', '2026-05-15 00:00+00');
SELECT iotstream.create_stream_table('yearly', 'ts date, v int', 'ts',
    partition_interval => '1 year', premake => 0, retention => NULL, max_future => '100 years') IS NOT NULL;
SELECT iotstream.ensure_partition('yearly', '2026-05-15 00:00+00');
SELECT iotstream.create_stream_table('weekly', 'ts date, v int', 'ts',
    partition_interval => '7 days', premake => 0, retention => NULL, max_future => '100 years') IS NOT NULL;
SELECT iotstream.ensure_partition('weekly', '2026-11-21 12:00+00');  -- a Saturday
SELECT partition, range_start, range_end FROM iotstream.partitions('weekly')
 WHERE range_start = '2026-11-16 00:00+00';
SET TimeZone = 'UTC';

-- Rows route into the partitions; the partition key holds the bounds.
INSERT INTO telemetry VALUES ('2026-03-05 17:00+00', 's1', 'temperature', 101.5),
                             ('2026-03-03 23:59:59.999999+00', 's2', 'temperature', 20);
SELECT tableoid::regclass, count(*) FROM telemetry GROUP BY 1 ORDER BY 1;

-- Adopting an existing plain table with rows moves them into partitions.
CREATE TABLE readings (ts timestamptz NOT NULL, device_id text, value float8);
INSERT INTO readings SELECT '2026-01-01 00:00+00'::timestamptz + i * interval '7 hours', 'd' || (i % 3), i
  FROM generate_series(0, 19) i;
SELECT iotstream.create_stream_table('readings', NULL, 'ts', retention => NULL,
    max_future => '100 years', premake => 0) IS NOT NULL AS adopted;
SELECT count(*), sum(value) FROM readings;
SELECT count(*) AS kept_original FROM readings_unpartitioned;
SELECT count(*) FILTER (WHERE range_start < '2026-02-01') AS partitions_for_rows
  FROM iotstream.partitions('readings');
SELECT relkind FROM pg_class WHERE oid = 'readings'::regclass;

-- Adopting an existing range-partitioned table keeps its (unaligned) partitions.
CREATE TABLE legacy (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
CREATE TABLE legacy_old PARTITION OF legacy FOR VALUES FROM ('2026-03-01 06:00+00') TO ('2026-03-02 06:00+00');
SELECT iotstream.create_stream_table('legacy', NULL, 'ts', retention => NULL,
    max_future => '100 years', premake => 0) IS NOT NULL AS adopted;
SELECT iotstream.ensure_partition('legacy', '2026-03-02 07:00+00');  -- clipped to start at 06:00
SELECT iotstream.ensure_partition('legacy', '2026-03-01 05:00+00');  -- clipped to end at 06:00
SELECT partition, range_start, range_end FROM iotstream.partitions('legacy')
 WHERE range_start < '2026-04-01' ORDER BY range_start;

-- The view lists every stream table.
SELECT stream_table, time_column, partition_interval, retention, partitions > 0 AS has_partitions
  FROM iotstream.stream_tables ORDER BY stream_table::text;

-- Error paths: each has an errcode and a hint.
\set VERBOSITY default
SELECT iotstream.create_stream_table('telemetry', 'ts timestamptz', 'ts');
SELECT iotstream.create_stream_table('t_nocol', 'a int, b text', 'ts');
SELECT iotstream.create_stream_table('t_badtype', 'ts text, v int', 'ts');
SELECT iotstream.create_stream_table('t_badiv', 'ts timestamptz', 'ts', partition_interval => '0 days');
SELECT iotstream.create_stream_table('t_badiv', 'ts timestamptz', 'ts', partition_interval => '1 month 2 days');
SELECT iotstream.create_stream_table('t_badiv', 'ts timestamptz', 'ts', partition_interval => '30 seconds');
SELECT iotstream.create_stream_table('t_badiv', 'ts date', 'ts', partition_interval => '1 hour');
SELECT iotstream.create_stream_table('t_nots', 'ts timestamptz', NULL);
SELECT iotstream.create_stream_table('t_badmode', 'ts timestamptz', 'ts', retention_mode => 'archive');
SELECT iotstream.create_stream_table('t_premake', 'ts timestamptz', 'ts', premake => -1);
SELECT iotstream.create_stream_table('no_such_table', NULL, 'ts');
SELECT iotstream.create_stream_table('telemetry', NULL, 'ts');
CREATE TABLE t_pk (id int PRIMARY KEY, ts timestamptz NOT NULL);
SELECT iotstream.create_stream_table('t_pk', NULL, 'ts');
CREATE TABLE t_listpart (ts timestamptz, k int) PARTITION BY LIST (k);
SELECT iotstream.create_stream_table('t_listpart', NULL, 'ts');
CREATE TABLE t_default (ts timestamptz) PARTITION BY RANGE (ts);
CREATE TABLE t_default_d PARTITION OF t_default DEFAULT;
SELECT iotstream.create_stream_table('t_default', NULL, 'ts');
SELECT iotstream.ensure_partition('pg_class', now());
SELECT iotstream.alter_stream_table('telemetry', retention_mode => 'shred');
SELECT iotstream.drop_stream_table('pg_class');
-- pg_cron is not installed in this database
SELECT iotstream.schedule_maintenance();

-- Dropping a stream table forgets it; drop_stream_table can drop it too.
DROP TABLE hourly;
SELECT iotstream.drop_stream_table('quarter', drop_table => true);
SELECT count(*) FROM iotstream.stream_table_settings;
SELECT to_regclass('quarter') IS NULL AS quarter_dropped;

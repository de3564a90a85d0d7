-- Stream tables: creation, partitions on demand, bounds, cache invalidation
-- and the error paths with their SQLSTATEs.
BEGIN;
SELECT plan(37);
SET LOCAL TimeZone = 'UTC';

SELECT lives_ok($$SELECT iotstream.create_stream_table('tap_t',
    'ts timestamptz NOT NULL, sensor_id text, value float8', 'ts',
    partition_interval => '1 hour', premake => 3, retention => '2 days', max_future => '6 hours')$$,
    'create_stream_table from a column list');
SELECT is((SELECT relkind::text FROM pg_class WHERE oid = 'tap_t'::regclass), 'p', 'the table is partitioned');
SELECT is((SELECT pg_get_partkeydef('tap_t'::regclass)), 'RANGE (ts)', 'by range on the time column');
SELECT is((SELECT count(*)::int FROM iotstream.partitions('tap_t')), 4, 'premake: the current hour and 3 more');
SELECT is((SELECT min(range_start) FROM iotstream.partitions('tap_t')), date_trunc('hour', now()),
          'the first partition starts at the current hour');
SELECT is((SELECT partition::text FROM iotstream.partitions('tap_t') ORDER BY range_start LIMIT 1),
          'tap_t_p' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD_HH24'), 'partitions are named <table>_pYYYYMMDD_HH');
SELECT ok(NOT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                       WHERE i.inhparent = 'tap_t'::regclass AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'),
          'there is no default partition');
SELECT is((SELECT count(*)::int FROM iotstream.partitions('tap_t') p JOIN pg_class c ON c.oid = p.partition
            WHERE c.relowner <> (SELECT relowner FROM pg_class WHERE oid = 'tap_t'::regclass)), 0,
          'partitions have the owner of their table');

-- Late and out-of-order times create partitions where they fall.
SELECT is(iotstream.ensure_partition('tap_t', now() - interval '30 hours')::text,
          'tap_t_p' || to_char((now() - interval '30 hours') AT TIME ZONE 'UTC', 'YYYYMMDD_HH24'), 'a late row gets its partition');
SELECT is(iotstream.ensure_partition('tap_t', now() - interval '40 hours')::text,
          'tap_t_p' || to_char((now() - interval '40 hours') AT TIME ZONE 'UTC', 'YYYYMMDD_HH24'), 'an older row, out of order');
SELECT is(iotstream.ensure_partition('tap_t', now() + interval '5 hours')::text,
          'tap_t_p' || to_char((now() + interval '5 hours') AT TIME ZONE 'UTC', 'YYYYMMDD_HH24'), 'a row from the near future');
SELECT is(iotstream.ensure_partition('tap_t', now() - interval '30 hours'),
          iotstream.ensure_partition('tap_t', date_trunc('hour', now() - interval '30 hours') + interval '59 minutes 59.999999 seconds'),
          'the same hour maps to the same partition');
SELECT is((SELECT count(*)::int FROM iotstream.partitions('tap_t')), 7, 'three partitions were added');
SELECT lives_ok($$INSERT INTO tap_t SELECT date_trunc('hour', now()) + i * interval '1 minute', 's1', i FROM generate_series(0, 59) i$$,
                'rows route into the partitions');
SELECT lives_ok($$INSERT INTO tap_t VALUES (now() - interval '30 hours', 's1', 1), (now() - interval '40 hours', 's2', 2)$$,
                'late rows route into their new partitions');

-- Bounds: max_past (= retention by default) and max_future.
SELECT throws_ok($$SELECT iotstream.ensure_partition('tap_t', now() - interval '3 days')$$, '22008',
                 NULL, 'a row older than max_past is rejected');
SELECT throws_like($$SELECT iotstream.ensure_partition('tap_t', now() - interval '3 days')$$,
                   '%outside the bounds%', 'the rejection says why');
SELECT throws_ok($$SELECT iotstream.ensure_partition('tap_t', now() + interval '7 hours')$$, '22008',
                 NULL, 'a row beyond max_future is rejected');
SELECT lives_ok($$SELECT iotstream.alter_stream_table('tap_t', max_future => '2 days')$$, 'widen max_future');
SELECT lives_ok($$SELECT iotstream.ensure_partition('tap_t', now() + interval '7 hours')$$,
                'the new bound applies at once (the settings change invalidated the cache)');

-- The cache follows DDL done behind its back.
SELECT lives_ok(format('DROP TABLE %s', iotstream.ensure_partition('tap_t', now() + interval '7 hours')), 'drop a partition');
SELECT ok(iotstream.ensure_partition('tap_t', now() + interval '7 hours') IS NOT NULL, 'ensure_partition recreates it');
SELECT is((SELECT count(*)::int FROM iotstream.partitions('tap_t') WHERE now() + interval '7 hours' >= range_start
            AND now() + interval '7 hours' < range_end), 1, 'exactly one partition holds that time');

-- The view.
SELECT is((SELECT partitions FROM iotstream.stream_tables WHERE stream_table = 'tap_t'::regclass),
          (SELECT count(*)::int FROM iotstream.partitions('tap_t')), 'stream_tables counts the partitions');
SELECT is((SELECT oldest_start FROM iotstream.stream_tables WHERE stream_table = 'tap_t'::regclass),
          date_trunc('hour', now() - interval '40 hours'), 'stream_tables knows the oldest partition');
SELECT ok((SELECT total_bytes > 0 FROM iotstream.stream_tables WHERE stream_table = 'tap_t'::regclass), 'and the size');

-- Error paths.
SELECT throws_ok($$SELECT iotstream.create_stream_table('tap_t', 'ts timestamptz', 'ts')$$, '42P07', NULL, 'existing name');
SELECT throws_ok($$SELECT iotstream.create_stream_table('tap_x', 'a int', 'ts')$$, '42703', NULL, 'missing time column');
SELECT throws_ok($$SELECT iotstream.create_stream_table('tap_x', 'ts int', 'ts')$$, '42804', NULL, 'non-time column');
SELECT throws_ok($$SELECT iotstream.create_stream_table('tap_x', 'ts timestamptz', 'ts', partition_interval => '-1 day')$$,
                 '22023', NULL, 'negative interval');
SELECT throws_ok($$SELECT iotstream.create_stream_table('tap_x', 'ts timestamptz', 'ts', partition_interval => '1 mon 1 day')$$,
                 '22023', NULL, 'mixed interval');
SELECT throws_ok($$SELECT iotstream.create_stream_table('tap_x', 'ts timestamptz', 'ts', partition_interval => '90 seconds')$$,
                 '22023', NULL, 'interval not in whole minutes');
SELECT throws_ok($$SELECT iotstream.create_stream_table('tap_x', 'ts timestamptz', NULL)$$, '22004', NULL, 'no time column');
SELECT throws_ok($$SELECT iotstream.create_stream_table('tap_nothere', NULL, 'ts')$$, '42P01', NULL, 'adopting a missing table');
SELECT throws_ok($$SELECT iotstream.create_stream_table('tap_t', NULL, 'ts')$$, '42710', NULL, 'adopting a stream table twice');
SELECT throws_ok($$SELECT iotstream.ensure_partition('pg_class', now())$$, '42809', NULL, 'not a stream table');
SELECT is((SELECT count(*)::int FROM pg_class WHERE relname LIKE 'tap_x%'), 0, 'failed calls leave nothing behind');

SELECT * FROM finish();
ROLLBACK;

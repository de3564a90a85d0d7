-- Maintenance: premake and retention, dropping or detaching.
BEGIN;
SELECT plan(14);
SET LOCAL TimeZone = 'UTC';

SELECT iotstream.create_stream_table('tap_drop', 'ts timestamptz NOT NULL, v int', 'ts',
    premake => 2, retention => '3 days', max_past => '30 days');
SELECT iotstream.create_stream_table('tap_detach', 'ts timestamptz NOT NULL, v int', 'ts',
    premake => 2, retention => '3 days', retention_mode => 'detach', max_past => '30 days');
-- ten days of history in each
SELECT iotstream.ensure_partitions('tap_drop', now() - interval '10 days', now());
SELECT iotstream.ensure_partitions('tap_detach', now() - interval '10 days', now());
INSERT INTO tap_drop SELECT now() - i * interval '1 hour', i FROM generate_series(0, 239) i;
INSERT INTO tap_detach SELECT now() - i * interval '1 hour', i FROM generate_series(0, 239) i;

CREATE TEMP TABLE expired AS
SELECT p.partition::text AS name, (SELECT count(*) FROM tap_detach t WHERE t.ts >= p.range_start AND t.ts < p.range_end) AS n
  FROM iotstream.partitions('tap_detach') p WHERE p.range_end <= now() - interval '3 days';
SELECT ok((SELECT count(*) FROM expired) >= 7, 'some partitions are past retention');

-- drop the future partitions so maintenance has premaking to do
SELECT lives_ok($q$DO $do$ DECLARE p record; BEGIN
    FOR p IN SELECT partition FROM iotstream.partitions('tap_drop') WHERE range_start > now() LOOP
        EXECUTE format('DROP TABLE %s', p.partition); END LOOP; END $do$$q$, 'drop future partitions');

CREATE TEMP TABLE result AS SELECT * FROM iotstream.run_maintenance();
SELECT is((SELECT created FROM result WHERE stream_table = 'tap_drop'::regclass), 2, 'premake recreated 2 partitions');
SELECT is((SELECT dropped FROM result WHERE stream_table = 'tap_drop'::regclass),
          (SELECT count(*)::int FROM expired), 'retention dropped every expired partition');
SELECT is((SELECT detached FROM result WHERE stream_table = 'tap_detach'::regclass),
          (SELECT count(*)::int FROM expired), 'retention detached every expired partition');
SELECT is((SELECT min(range_start) FROM iotstream.partitions('tap_drop')),
          date_trunc('day', now() - interval '3 days'), 'the oldest kept day is the one retention still covers');
SELECT is((SELECT count(*)::int FROM iotstream.partitions('tap_drop') WHERE range_start > now()), 2, 'two future partitions');
SELECT is((SELECT count(*)::int FROM pg_class c JOIN expired e ON c.relname = e.name AND c.relname LIKE 'tap_drop%'), 0,
          'dropped partitions are gone');
SELECT is((SELECT count(*)::int FROM pg_class c JOIN expired e ON c.relname = e.name WHERE c.relkind = 'r' AND NOT c.relispartition),
          (SELECT count(*)::int FROM expired), 'detached partitions remain as plain tables');
SELECT is((SELECT sum(n)::bigint FROM expired), 240 - (SELECT count(*) FROM tap_detach),
          'detached tables hold exactly the rows the stream table no longer has');
SELECT is((SELECT count(*) FROM tap_drop), (SELECT count(*) FROM tap_detach), 'both kept the same rows');
SELECT is((SELECT count(*)::int FROM tap_drop WHERE ts < date_trunc('day', now() - interval '3 days')), 0, 'no expired rows remain');

-- A second run has nothing to do.
SELECT is((SELECT created + dropped + detached FROM iotstream.run_maintenance('tap_drop')), 0, 'maintenance is idempotent');
SELECT is((SELECT count(*)::int FROM iotstream.run_maintenance()), 2, 'run_maintenance reports every stream table');

SELECT * FROM finish();
ROLLBACK;

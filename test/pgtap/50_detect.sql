-- Rules and rollups: the SQL API's argument errors, backtest_rule over
-- stored rows (checked against plain SQL), rule_status, enable/disable/
-- alter/drop, and refresh_rollup against GROUP BY.
BEGIN;
SELECT plan(55);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

SELECT iotstream.create_stream_table('public.t70',
  'ts timestamptz NOT NULL, sensor_id text NOT NULL, metric_type text NOT NULL, value float8, note text',
  'ts', partition_interval => '1 hour', max_past => '3650 days', max_future => '1 day', retention => NULL);
SELECT iotstream.ensure_partitions('t70', '2026-11-01', '2026-11-01 01:00');
CREATE TABLE public.plain70 (ts timestamptz, value float8);
-- three sensors, one reading a second; s1 has 6 readings above 100 in 00:10,
-- s2 has 4 in 00:20 (below min_count), s0 one spike of 500 at 00:30
INSERT INTO t70 SELECT '2026-11-01'::timestamptz + g * interval '1 second', 's' || (g % 3), 'temperature',
                       60 + (g * 7919 % 23) FROM generate_series(0, 3599) g;
INSERT INTO t70 SELECT '2026-11-01 00:10:00.5'::timestamptz + g * interval '5 seconds', 's1', 'temperature', 101 + g
  FROM generate_series(0, 5) g;
INSERT INTO t70 SELECT '2026-11-01 00:20:00.5'::timestamptz + g * interval '5 seconds', 's2', 'temperature', 101 + g
  FROM generate_series(0, 3) g;
INSERT INTO t70 VALUES ('2026-11-01 00:30:00.7', 's0', 'temperature', 500);
INSERT INTO t70 VALUES ('2026-11-01 00:31:00', 's0', 'pressure', 900);

-- argument errors: errcodes, and the message names what is wrong
SELECT throws_ok($$SELECT iotstream.create_rule('r', 't70', 'value', ARRAY['sensor_id'], 'nosuch', '{}')$$,
  '22023', 'unknown detector ''nosuch''', 'an unknown detector is rejected');
SELECT throws_ok($$SELECT iotstream.create_rule('r', 't70', 'value', ARRAY['sensor_id'], 'threshold_count', '{}')$$,
  '22023', 'params needs threshold', 'threshold_count needs a threshold');
SELECT throws_ok($$SELECT iotstream.create_rule('r', 't70', 'value', ARRAY['sensor_id'], 'spike_dip', '{"confidence": 120}')$$,
  '22023', 'params.confidence must be a number between 1 and 100, not 120', 'confidence outside 1..100');
SELECT throws_ok($$SELECT iotstream.create_rule('r', 't70', 'value', ARRAY['sensor_id'], 'change_point', '{"history_size": 1}')$$,
  '22023', 'params.history_size must be a number between 2 and 100000, not 1', 'history_size below 2');
SELECT throws_ok($$SELECT iotstream.create_rule('r', 't70', 'value', ARRAY['sensor_id'], 'cusum', '{"target": 1, "k": -1, "h": 5}')$$,
  '22023', NULL, 'a negative cusum k');
SELECT throws_ok($$SELECT iotstream.create_rule('r', 't70', 'value', ARRAY['sensor_id'], 'ewma', '{"mu": 1}')$$,
  '22023', 'params needs both mu and sigma, or neither', 'ewma mu without sigma');
SELECT throws_ok($$SELECT iotstream.create_rule('r', 'plain70', 'value', '{}', 'zscore', '{}')$$,
  '42809', 'plain70 is not a stream table', 'a table that is not a stream table');
SELECT throws_ok($$SELECT iotstream.create_rule('r', 't70', 'nosuch', '{}', 'zscore', '{}')$$,
  '42703', NULL, 'an unknown value column');
SELECT throws_ok($$SELECT iotstream.create_rule('r', 't70', 'note', '{}', 'zscore', '{}')$$,
  '42804', 'column note named in value_column is of type text, not a number', 'a text value column');
SELECT throws_ok($$SELECT iotstream.create_rule('r', 't70', 'value', ARRAY['nosuch'], 'zscore', '{}')$$,
  '42703', NULL, 'an unknown key column');
SELECT throws_ok($$SELECT iotstream.create_rule('r', 't70', 'value', '{}', 'zscore', '{}', filter => 'nosuch > 1')$$,
  '22023', NULL, 'a filter that does not compile');
-- the filter runs as the table's owner: a function the owner may not
-- execute fails at create time, not in the worker (even with no row in range)
CREATE ROLE owner70 NOLOGIN;
GRANT CREATE ON SCHEMA public TO owner70;  -- its partitions are created as it
CREATE TABLE public.owned70 (ts timestamptz NOT NULL, value float8) PARTITION BY RANGE (ts);
ALTER TABLE public.owned70 OWNER TO owner70;
SELECT iotstream.create_stream_table('public.owned70', time_column => 'ts', retention => NULL);
CREATE FUNCTION public.secret70(float8) RETURNS boolean LANGUAGE sql AS 'SELECT true';
REVOKE ALL ON FUNCTION public.secret70(float8) FROM PUBLIC;
SELECT throws_ok($$SELECT iotstream.create_rule('r', 'owned70', 'value', '{}', 'zscore', '{}', filter => 'public.secret70(value)')$$,
  '22023', 'the rule does not compile: permission denied for function secret70',
  'a filter calling a function the table owner may not execute');
SELECT throws_ok($$SELECT iotstream.create_rule('r', 't70', 'value', '{}', 'zscore', '{}', "window" => '0 seconds')$$,
  '22023', NULL, 'a zero window');
SELECT throws_ok($$SELECT iotstream.create_rule('r', 't70', 'value', '{}', 'zscore', '{}', lateness => '-1 second')$$,
  '22023', NULL, 'a negative lateness');
SELECT throws_ok($$SELECT iotstream.create_rule('r', 't70', 'value', '{}', 'zscore', '{}', severity => 'loud')$$,
  '22023', 'severity must be info, warning or critical, not loud', 'an unknown severity');
SELECT throws_ok($$SELECT iotstream.create_rule('bad name!', 't70', 'value', '{}', 'zscore', '{}')$$,
  '42602', NULL, 'an invalid rule name');
SELECT throws_ok($$SELECT iotstream.enable_rule('nosuch')$$, '42704', 'rule ''nosuch'' does not exist', 'enable an unknown rule');
SELECT throws_ok($$SELECT * FROM iotstream.backtest_rule('nosuch', now(), now())$$, '42704', NULL, 'backtest an unknown rule');
SELECT throws_ok($$SELECT * FROM iotstream.backtest_rule('{"detector": "zscore"}'::jsonb, now(), now())$$,
  '22023', 'a rule definition needs source_table, value_column and detector', 'an incomplete definition');
SELECT throws_ok($$SELECT iotstream.create_rollup('r70', 't70', ARRAY['sensor_id'], '{}')$$,
  '22023', 'value_columns must name at least one column', 'a rollup without value columns');
SELECT throws_ok($$SELECT iotstream.create_rollup('r70', 't70', ARRAY['sensor_id'], ARRAY['value'], bucket => '1 month')$$,
  '22023', NULL, 'a month-based bucket');
SELECT throws_ok($$SELECT iotstream.refresh_rollup('nosuch', now(), now())$$, '42704', NULL, 'refresh an unknown rollup');

-- the seed-004 rule
SELECT lives_ok($$SELECT iotstream.create_rule('seed004_70', 't70', 'value', ARRAY['sensor_id'], 'threshold_count',
  '{"threshold": 100, "min_count": 5}', filter => 'metric_type = ''temperature''')$$, 'the seed-004 rule is created');
SELECT throws_ok($$SELECT iotstream.create_rule('seed004_70', 't70', 'value', ARRAY['sensor_id'], 'zscore', '{}')$$,
  '42710', NULL, 'a second rule of the same name');
SELECT is((SELECT params FROM iotstream.rules WHERE name = 'seed004_70'), '{"threshold": 100, "min_count": 5}'::jsonb,
  'params are stored');
SELECT is((SELECT rule_id FROM iotstream.rule_progress JOIN iotstream.rules USING (rule_id) WHERE name = 'seed004_70'
            AND evaluated_until IS NULL AND anomalies = 0), (SELECT rule_id FROM iotstream.rules WHERE name = 'seed004_70'),
  'a new rule has progress, nothing evaluated');
SELECT is((SELECT format('%s %s %s', enabled, windows_evaluated, late_rows) FROM iotstream.rule_status WHERE rule = 'seed004_70'),
  't 0 0', 'rule_status shows the new rule');

-- backtest: the same windows as plain SQL over the same rows
SELECT results_eq(
  $$SELECT key->>'sensor_id', window_start, value FROM iotstream.backtest_rule('seed004_70', '2026-11-01', '2026-11-01 01:00')$$,
  $$SELECT sensor_id, date_bin('1 minute', ts, '2000-01-01'), count(*)::float8 FROM t70
     WHERE metric_type = 'temperature' AND value > 100 GROUP BY 1, 2 HAVING count(*) >= 5 ORDER BY 2, 1$$,
  'backtest_rule finds the windows plain SQL finds');
SELECT is((SELECT count(*)::int FROM iotstream.backtest_rule('seed004_70', '2026-11-01 00:11', '2026-11-01 01:00')), 0,
  'backtest_rule looks only at the range it is given');
SELECT is((SELECT count(*)::int FROM iotstream.anomalies WHERE rule = 'seed004_70'), 0, 'backtest_rule writes nothing');
SELECT is((SELECT string_agg(format('%s %s', key->>'sensor_id', window_start), ',')
             FROM iotstream.backtest_rule('{"source_table": "t70", "value_column": "value", "key_columns": ["sensor_id"],
                                           "detector": "threshold_count", "params": {"threshold": 100, "min_count": 4},
                                           "filter": "metric_type = ''temperature''"}'::jsonb, '2026-11-01', '2026-11-01 01:00')),
  's1 2026-11-01 00:10:00+00,s2 2026-11-01 00:20:00+00', 'a definition as JSON can be backtested (min_count 4)');
SELECT is((SELECT count(*)::int
             FROM iotstream.backtest_rule('{"source_table": "t70", "value_column": "value", "key_columns": ["sensor_id"],
                                           "detector": "threshold_count", "params": {"threshold": 100, "min_count": 4},
                                           "filter": "metric_type = ''temperature''"}', '2026-11-01', '2026-11-01 01:00')),
  2, 'a definition as an uncast JSON literal is backtested too');
SELECT is((SELECT string_agg(format('%s %s %s', key->>'sensor_id', event_time, value), ',')
             FROM iotstream.backtest_rule('{"source_table": "t70", "value_column": "value", "key_columns": ["sensor_id"],
                                           "detector": "spike_dip", "params": {"confidence": 99.9, "history_size": 50, "mode": "spikes"},
                                           "filter": "metric_type = ''temperature'' AND (value < 101 OR value > 200)"}'::jsonb,
                                       '2026-11-01', '2026-11-01 01:00')),
  's0 2026-11-01 00:30:00.7+00 500', 'backtest runs the row detectors (spike_dip finds the spike)');
SELECT is((SELECT count(*)::int FROM iotstream.backtest_rule('{"source_table": "t70", "value_column": "value",
              "key_columns": ["sensor_id"], "detector": "mad", "params": {"threshold": 6}, "filter": "metric_type = ''temperature''"}'::jsonb,
              '2026-11-01', '2026-11-01 01:00') WHERE value = 500), 1, 'mad scores values against their window');
-- keys of any type, several columns, and a key column named like a
-- column of the rule's query: each key keeps its own state and its JSON
SELECT iotstream.create_stream_table('public.t70k', 'ts timestamptz NOT NULL, dev int NOT NULL, value text, x float8',
  'ts', partition_interval => '1 hour', max_past => '3650 days', max_future => '1 day', retention => NULL);
SELECT iotstream.ensure_partitions('t70k', '2026-11-01', '2026-11-01 01:00');
INSERT INTO t70k SELECT '2026-11-01'::timestamptz + (g / 4) * interval '1 second', g % 2, CASE WHEN g % 4 < 2 THEN 'a' ELSE 'b' END,
                        60 + (g * 7919 % 23) + CASE WHEN g = 2001 THEN 400 ELSE 0 END FROM generate_series(0, 3999) g;
SELECT is((SELECT string_agg(format('%s %s %s', key, event_time, value), ',')
             FROM iotstream.backtest_rule('{"source_table": "t70k", "value_column": "x", "key_columns": ["dev", "value"],
                                           "detector": "spike_dip", "params": {"confidence": 99.9, "history_size": 50, "mode": "spikes"}}'::jsonb,
                                       '2026-11-01', '2026-11-01 01:00')),
  '{"dev": 1, "value": "a"} 2026-11-01 00:08:20+00 460', 'a spike is found under an int and text key, one key among four');
SELECT is((SELECT count(DISTINCT key)::int FROM iotstream.backtest_rule('{"source_table": "t70k", "value_column": "x",
              "key_columns": ["dev", "value"], "detector": "ewma", "params": {"L": 0.01}}'::jsonb, '2026-11-01', '2026-11-01 01:00')),
  4, 'each of the four keys has its own chart');
SELECT is((SELECT string_agg(format('%s %s', key, window_start), ',')
             FROM iotstream.backtest_rule('{"source_table": "t70k", "value_column": "x", "key_columns": ["dev"],
                                           "detector": "zscore", "params": {"threshold": 3}}'::jsonb, '2026-11-01', '2026-11-01 00:16')),
  '{"dev": 1} 2026-11-01 00:08:00+00', 'zscore keyed on an int column flags the window of the spike (full windows only)');
SELECT throws_ok($$SELECT * FROM iotstream.backtest_rule('seed004_70', '2026-11-02', '2026-11-01')$$, '22023',
  'from_time is after to_time', 'a reversed range');

-- enable, disable, alter, drop; each change bumps the catalog version workers watch
SELECT iotstream.disable_rule('seed004_70');
SELECT is((SELECT enabled FROM iotstream.rule_status WHERE rule = 'seed004_70'), false, 'disable_rule');
SELECT iotstream.enable_rule('seed004_70');
SELECT is((SELECT enabled FROM iotstream.rule_status WHERE rule = 'seed004_70'), true, 'enable_rule');
CREATE TEMP TABLE v70 AS SELECT version FROM iotstream.detect_catalog;
SELECT iotstream.alter_rule('seed004_70', params => '{"min_count": 4}', severity => 'critical');
SELECT is((SELECT params || jsonb_build_object('severity', severity) FROM iotstream.rules WHERE name = 'seed004_70'),
  '{"threshold": 100, "min_count": 4, "severity": "critical"}'::jsonb, 'alter_rule merges params');
SELECT ok((SELECT version FROM iotstream.detect_catalog) > (SELECT version FROM v70), 'a change bumps the catalog version');
SELECT is((SELECT count(*)::int FROM iotstream.backtest_rule('seed004_70', '2026-11-01', '2026-11-01 01:00')), 2,
  'the altered rule evaluates with its new params');
SELECT iotstream.drop_rule('seed004_70');
SELECT is((SELECT count(*)::int FROM iotstream.rule_status WHERE rule = 'seed004_70'), 0, 'drop_rule');

-- rollups: the table, and refresh_rollup against GROUP BY
SELECT is(iotstream.create_rollup('public.r70', 't70', ARRAY['sensor_id', 'metric_type'], ARRAY['value'])::text, 'r70',
  'create_rollup creates its table');
SELECT is((SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
             FROM pg_attribute WHERE attrelid = 'r70'::regclass AND attnum > 0),
  'sensor_id text, metric_type text, bucket_start timestamp with time zone, value iotstream.stats', 'the rollup''s columns');
SELECT is(iotstream.refresh_rollup('public.r70', '2026-11-01', '2026-11-01 01:00'), 181::bigint, 'refresh_rollup writes every bucket (60 minutes, 3 sensors, and one pressure reading)');
SELECT is_empty($$
  SELECT sensor_id, metric_type, date_bin('1 minute', ts, '2000-01-01'), count(*), min(value), max(value) FROM t70 GROUP BY 1, 2, 3
  EXCEPT
  SELECT sensor_id, metric_type, bucket_start, iotstream.count(value), iotstream.min(value), iotstream.max(value) FROM r70$$,
  'the refreshed rollup equals GROUP BY');

-- a batch's groups wait as one delta row until they are folded in (the
-- detection worker calls the same statement); groups of one key and bucket
-- from several deltas merge
SELECT is((SELECT pending_batches FROM iotstream.rollup_status WHERE rollup = 'public.r70'), 0::bigint,
  'no batch waits to be folded in');
DO $$
DECLARE
    r iotstream.rollups;
BEGIN
    SELECT * INTO r FROM iotstream.rollups WHERE name = 'public.r70';
    EXECUTE iotstream._named(r.delta_sql, r.source_table, r.rollup_table, r.delta_table) USING ARRAY['s9', 's9'], ARRAY['temperature', 'temperature'],
        ARRAY['2026-11-02 00:00+00', '2026-11-02 00:00+00']::timestamptz[],
        ARRAY[(SELECT iotstream.stats_agg(x) FROM unnest(ARRAY[1.0, 2.0]::float8[]) x),
              (SELECT iotstream.stats_agg(x) FROM unnest(ARRAY[6.0]::float8[]) x)];
END $$;
SELECT is((SELECT pending_batches FROM iotstream.rollup_status WHERE rollup = 'public.r70'), 1::bigint,
  'a batch delta waits');
SELECT is(iotstream._rollup_apply((SELECT rollup_id FROM iotstream.rollups WHERE name = 'public.r70')), 1::bigint,
  'folding writes one group');
SELECT is((SELECT format('%s %s %s', iotstream.count(value), iotstream.mean(value), iotstream.max(value))
             FROM r70 WHERE sensor_id = 's9'), '3 3 6', 'the folded group merges both entries');

-- dropping a table drops the definitions that read it
SELECT iotstream.create_stream_table('public.gone70', 'ts timestamptz NOT NULL, sensor_id text NOT NULL, value float8',
  'ts', retention => NULL);
SELECT iotstream.create_rule('gone_rule', 'gone70', 'value', ARRAY['sensor_id'], 'threshold_count', '{"threshold": 1}');
SELECT iotstream.create_rollup('public.gone70_1m', 'gone70', ARRAY['sensor_id'], ARRAY['value']);
SELECT delta_table::text AS gone_delta FROM iotstream.rollups WHERE name LIKE '%gone70_1m' \gset
DROP TABLE public.gone70;
SELECT is(to_regclass(:'gone_delta'), NULL, 'DROP TABLE drops the rollup''s delta table too');
SELECT is((SELECT count(*) FROM iotstream.rules WHERE name = 'gone_rule'), 0::bigint,
  'DROP TABLE removes the rules on the table');
SELECT is((SELECT count(*) FROM iotstream.rollups WHERE name LIKE '%gone70_1m'), 0::bigint,
  'DROP TABLE removes the rollups of the table');

SELECT * FROM finish();
ROLLBACK;

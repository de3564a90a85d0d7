#!/usr/bin/env bash
# Detection is exactly once under failures: while the simulator streams
# seed-004 telemetry with bursts, spikes and a level shift into table a,
#  0. three evaluation steps fail at their end, after the keys' states were
#     saved (the worker keeps those states in memory: it must not reuse them),
#  1. kill -9 the source worker in the middle of batches,
#  2. pg_ctl stop -m immediate, then start again.
# Then a second source reads the same topic into table b without failures.
# Both tables must have the same anomalies (none twice, none missing) and
# the same rollups, and a's rollup must equal GROUP BY over a.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
W=$IOTSTREAM_WORK

start_broker --topic crash61:1

setup() {
  local t=$1
  psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
SELECT iotstream.create_stream_table('it61.$t',
  'ts timestamptz NOT NULL, sensor_id text NOT NULL, metric_type text NOT NULL, value float8 NOT NULL',
  'ts', partition_interval => '1 hour', max_past => '3650 days', max_future => '1 day', retention => NULL);
SELECT iotstream.create_rule('it61_seed004_$t', 'it61.$t', 'value', ARRAY['sensor_id'], 'threshold_count',
  '{"threshold": 100, "min_count": 5}', filter => 'metric_type = ''temperature''', lateness => '2 minutes');
SELECT iotstream.create_rule('it61_spike_$t', 'it61.$t', 'value', ARRAY['sensor_id'], 'spike_dip',
  '{"confidence": 99.9, "history_size": 60}', filter => 'metric_type = ''temperature''', lateness => '2 minutes');
SELECT iotstream.create_rule('it61_cusum_$t', 'it61.$t', 'value', ARRAY['sensor_id'], 'cusum',
  '{"target": 65, "k": 10, "h": 150}', filter => 'metric_type = ''temperature''', lateness => '2 minutes');
SELECT iotstream.create_rollup('it61.${t}_1m', 'it61.$t', ARRAY['sensor_id', 'metric_type'], ARRAY['value'],
  bucket => '1 minute', lateness => '2 minutes');
SELECT iotstream.create_source('it61_$t', '$BROKERS', ARRAY['crash61'], 'it61.$t', '{"ts": "timestamp"}',
  '{"batch_size": 500, "batch_ms": 20, "session.timeout.ms": "6000"}');
SELECT iotstream.start_source('it61_$t');
SQL
}

fresh_schema it61
setup a
# 0. the first three evaluations of the cusum rule past 00:05 fail as they
# store their progress (a sequence counts them: an abort does not undo it)
cusum=$(q "SELECT rule_id FROM iotstream.rules WHERE name = 'it61_cusum_a'")
psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
CREATE SEQUENCE it61.failures;
CREATE FUNCTION it61.fail_progress() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
  IF nextval('it61.failures') <= 3 THEN
    RAISE EXCEPTION 'it61: an evaluation that fails after saving its states';
  END IF;
  RETURN new;
END \$\$;
CREATE TRIGGER it61_fail BEFORE UPDATE ON iotstream.rule_progress FOR EACH ROW
  WHEN (new.rule_id = $cusum
        AND old.evaluated_until > '2026-11-01 00:05' AND new.evaluated_until > old.evaluated_until)
  EXECUTE FUNCTION it61.fail_progress();
SQL

total=30000
# 2,000 msg/s for 15 s: the failures land in the middle of the stream
"$IOTSTREAM_SIM" --brokers "$BROKERS" --topic crash61 --format telemetry --count $total --rate 2000 \
  --devices 20 --seed 61 --start-time 2026-11-01T00:00:00Z \
  --burst 2,2026-11-01T00:04:00Z --burst 4,2026-11-01T00:09:00Z --burst 6,2026-11-01T00:14:00Z \
  --burst 8,2026-11-01T00:19:00Z --spike 1,2026-11-01T00:06:00Z --spike 3,2026-11-01T00:16:00Z \
  --level-shift 5,2026-11-01T00:12:00Z,100 --no-per-device >"$W/crash.json" &
sim=$!
echo "$sim" >>"$IOTSTREAM_PIDS"

# 1. kill -9 the worker while it is storing batches
wait_for "SELECT count(*) > 5000 FROM it61.a" 60
pid=$(q "SELECT pids[1] FROM iotstream.source_status WHERE source = 'it61_a'")
kill -9 "$pid"
echo "killed worker $pid"
wait_for "SELECT count(*) > 0 FROM iotstream.source_status WHERE source = 'it61_a' AND state = 'running' AND NOT $pid = ANY(pids)" 60
before=$(q "SELECT count(*) FROM it61.a")
wait_for "SELECT count(*) > $before + 3000 FROM it61.a" 60

# 2. immediate shutdown mid-stream, then a restart
as_pg "$PGBIN/pg_ctl" -D "$CLUSTER_DATA" -m immediate -w stop >/dev/null
echo "immediate shutdown"
as_pg "$PGBIN/pg_ctl" -D "$CLUSTER_DATA" -l "$CLUSTER_DATA/server.log" -w start >/dev/null
wait_for "SELECT state = 'running' FROM iotstream.source_status WHERE source = 'it61_a'" 60

wait "$sim" || fail "the simulator could not deliver every message"
s=$(cat "$W/crash.json")
good=$(json_get "$s" good)
wait_for "SELECT count(*) = $good FROM it61.a" 120
wait_for "SELECT lag = 0 FROM iotstream.source_status WHERE source = 'it61_a'" 60

wait_for "SELECT last_value >= 4 FROM it61.failures" 60   # three failed, and one after them passed
q "DROP TRIGGER it61_fail ON iotstream.rule_progress"

# the clean run: the same topic from the start into b
setup b
wait_for "SELECT count(*) = $good FROM it61.b" 120
wait_for "SELECT (SELECT evaluated_until FROM iotstream.rule_status WHERE rule = 'it61_seed004_b')
                 = (SELECT evaluated_until FROM iotstream.rule_status WHERE rule = 'it61_seed004_a')" 30
wait_detected 'it61%'

anoms() {
  q "SELECT count(*) || ' ' || md5(string_agg(a, ',' ORDER BY a)) FROM (
       SELECT format('%s %s %s %s %s %s', split_part(rule, '_', 2), key, window_start, event_time,
                     round(value::numeric, 6), round(score::numeric, 6)) a
         FROM iotstream.anomalies WHERE rule LIKE 'it61\_%\_$1' ESCAPE '\\') x"
}
a=$(anoms a)
b=$(anoms b)
assert_eq "$a" "$b" "anomalies after kill -9 and immediate shutdown equal a clean run's"
assert_eq "$(q "SELECT count(*) - count(DISTINCT (rule, key, window_start, event_time)) FROM iotstream.anomalies
                WHERE rule LIKE 'it61%'")" 0 "no anomaly stored twice"
# (the level-shifted sensor-0005 crosses 100 from 00:12 on: those windows are real)
assert_eq "$(q "SELECT count(*) FROM iotstream.anomalies WHERE rule = 'it61_seed004_a'
                AND key->>'sensor_id' <> 'sensor-0005'")" 4 "every burst found"
assert_eq "$(q "SELECT count(*) FROM iotstream.anomalies WHERE rule = 'it61_cusum_a'
                AND key->>'sensor_id' = 'sensor-0005' AND event_time >= '2026-11-01 00:12'")" 1 "the level shift found once"
assert_eq "$(q "SELECT string_agg(key->>'sensor_id', ' ' ORDER BY event_time) FROM iotstream.anomalies
                WHERE rule = 'it61_spike_a' AND value > 200")" "sensor-0001 sensor-0003" "both spikes found"

states() {
  q "SELECT count(*) || ' ' || md5(string_agg(format('%s %s %s', split_part(r.name, '_', 2), s.key, encode(s.state, 'hex')),
            ',' ORDER BY r.name, s.key::text))
       FROM iotstream.rule_state s JOIN iotstream.rules r USING (rule_id) WHERE r.name LIKE 'it61\_%\_$1' ESCAPE '\\'"
}
assert_eq "$(states a)" "$(states b)" "the keys' detector states equal a clean run's"

rollup() {
  q "SELECT count(*) || ' ' || md5(string_agg(format('%s %s %s %s %s %s %s', sensor_id, metric_type, bucket_start,
            iotstream.count(value), iotstream.min(value), iotstream.max(value),
            round(iotstream.mean(value)::numeric, 6)), ',' ORDER BY sensor_id, metric_type, bucket_start))
       FROM it61.${1}_1m"
}
assert_eq "$(rollup a)" "$(rollup b)" "rollups after failures equal a clean run's"
assert_eq "$(q "SELECT count(*) FROM (SELECT sensor_id, metric_type, date_bin('1 minute', ts, '2000-01-01') b,
                  count(*) n, avg(value) m, min(value) lo, max(value) hi FROM it61.a GROUP BY 1, 2, 3) g
                FULL JOIN it61.a_1m r ON r.sensor_id = g.sensor_id AND r.metric_type = g.metric_type AND r.bucket_start = g.b
                WHERE g.n IS DISTINCT FROM iotstream.count(r.value) OR g.lo IS DISTINCT FROM iotstream.min(r.value)
                   OR g.hi IS DISTINCT FROM iotstream.max(r.value) OR abs(g.m - iotstream.mean(r.value)) > 1e-9 * abs(g.m)")" \
  0 "the rollup equals GROUP BY over the raw table (nothing counted twice)"
assert_eq "$(q "SELECT string_agg(format('%s %s %s', windows_evaluated, anomalies, late_rows), ',' ORDER BY rule)
                FROM iotstream.rule_status WHERE rule LIKE 'it61%a'")" \
  "$(q "SELECT string_agg(format('%s %s %s', windows_evaluated, anomalies, late_rows), ',' ORDER BY rule)
        FROM iotstream.rule_status WHERE rule LIKE 'it61%b'")" "rule_status counters equal a clean run's"

q "SELECT iotstream.drop_source(s) FROM unnest(ARRAY['it61_a', 'it61_b']) s" >/dev/null
echo "ok"

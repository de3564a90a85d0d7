#!/usr/bin/env bash
# Detection definitions that stop loading must not take the server down.
# Dropping a column is allowed even when a rollup or rule uses it; the
# workers notice that the table changed (a relcache callback), reload,
# fail, and try again, as after any definition change.  A
# failed reload used to leave the old rule and rollup lists pointing into
# their deleted context, and the next attempt freed them again (a crash,
# and a restart of the whole cluster).
#  A. humidity, a rollup's value column, is dropped and a rule is created
#     while readings stream in: the detection worker fails every second, the
#     source worker fails each batch whole (and restarts, with backoff).
#     Nothing of the batches is committed and nothing is lost: once
#     drop_rollup repairs the definitions, the backlog comes in.
#  B. after a healthy reload, battery, a rule's value column, is dropped
#     (the rule's query no longer prepares); drop_rule repairs it.
#  C. the rollup's value column becomes float4: the rollup must read the
#     new type (the workers reload on the table's relcache invalidation).
# Throughout, the checkpointer keeps its pid (no cluster restart) and the
# log shows no process terminated by a signal.  At the end every reading is
# stored once, the rollup equals GROUP BY, and both rules found exactly the
# injected bursts of the rows they saw.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
W=$IOTSTREAM_WORK

log0=$(q "SELECT size FROM pg_stat_file('server.log')")
# SQL: how many times the server log matched a regexp since the test began
logged() {
  echo "(SELECT count(*) FROM regexp_matches(pg_read_file('server.log', $log0,
           (pg_stat_file('server.log')).size - $log0), '$1', 'g'))"
}
checkpointer() { q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'"; }
ckpt0=$(checkpointer)
no_crash() {
  assert_eq "$(checkpointer)" "$ckpt0" "$1: the server did not restart (checkpointer pid)"
  assert_eq "$(q "SELECT $(logged 'terminated by signal|was terminated by exception')")" 0 \
    "$1: no process terminated by a signal"
}
# sim NAME START COUNT SEED [--burst ...]: 20 sensors, a reading a second each
sim() {
  local name=$1 start=$2 count=$3 seed=$4
  shift 4
  "$IOTSTREAM_SIM" --brokers "$BROKERS" --topic tel65 --format telemetry --count "$count" --devices 20 \
    --seed "$seed" --start-time "2026-11-01T$start:00Z" --no-per-device "$@" >"$W/$name.json"
  json_get "$(cat "$W/$name.json")" good
}
# the injected bursts of at least 5 readings in the named runs, and what a rule found
bursts() {
  local docs="'[]'::jsonb" f
  for f; do docs="$docs || ('$(cat "$W/$f.json")'::jsonb->'bursts')"; done
  q "SELECT string_agg(format('%s@%s', b->>'device', (b->>'minute')::timestamptz), ' '
                       ORDER BY b->>'device', b->>'minute')
       FROM jsonb_array_elements($docs) b WHERE (b->>'count')::int >= 5"
}
found() {
  q "SELECT string_agg(format('%s@%s', key->>'sensor_id', window_start), ' ' ORDER BY key->>'sensor_id', window_start)
       FROM iotstream.anomalies WHERE rule = '$1'"
}
merged() { q "SELECT rows_merged FROM iotstream.rollup_status WHERE rollup = 'it65.tel_1m'"; }

start_broker --topic tel65:1
fresh_schema it65
psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
SELECT iotstream.create_stream_table('it65.tel', 'ts timestamptz NOT NULL, sensor_id text NOT NULL,
  metric_type text NOT NULL, value float8 NOT NULL, humidity float8, battery float8',
  'ts', partition_interval => '1 hour', max_past => '3650 days', max_future => '1 day', retention => NULL);
SELECT iotstream.create_rule('it65_bursts', 'it65.tel', 'value', ARRAY['sensor_id'], 'threshold_count',
  '{"threshold": 100, "min_count": 5}', filter => 'metric_type = ''temperature''', lateness => '30 seconds');
SELECT iotstream.create_rule('it65_battery', 'it65.tel', 'battery', ARRAY['sensor_id'], 'threshold_count',
  '{"threshold": 0}', lateness => '30 seconds');
SELECT iotstream.create_rollup('it65.tel_1m', 'it65.tel', ARRAY['sensor_id', 'metric_type'], ARRAY['value'],
  bucket => '1 minute', lateness => '30 seconds');
SELECT iotstream.create_rollup('it65.humidity_1m', 'it65.tel', ARRAY['sensor_id'], ARRAY['humidity'],
  bucket => '1 minute', lateness => '30 seconds');
SELECT iotstream.create_source('it65', '$BROKERS', ARRAY['tel65'], 'it65.tel', '{"ts": "timestamp"}',
  '{"batch_ms": 50, "batch_size": 2000, "session.timeout.ms": "6000"}');
SELECT iotstream.start_source('it65');
SQL

# healthy: 00:00 to 00:04, every definition loaded by both workers
n1=$(sim p1 00:00 4800 651 --burst 3,2026-11-01T00:01:10Z)
wait_for "SELECT count(*) = $n1 FROM it65.tel" 60
wait_detected 'it65%'

# A. the rollup's column goes: the ALTER TABLE alone makes the workers
# reload (their relcache callback), so the next batch fails by name; then a
# new rule is created while the definitions are still broken
q "ALTER TABLE it65.tel DROP COLUMN humidity"
n2=$(sim p2 00:04 4800 652 --burst 7,2026-11-01T00:05:30Z --burst 12,2026-11-01T00:06:40Z \
  --burst 15,2026-11-01T00:06:00Z,4)
wait_for "SELECT last_error LIKE '%humidity%no longer has%' FROM iotstream.source_status WHERE source = 'it65'" 30
q "SELECT iotstream.create_rule('it65_late', 'it65.tel', 'value', ARRAY['sensor_id'], 'threshold_count',
     '{\"threshold\": 100, \"min_count\": 5}', filter => 'metric_type = ''temperature''', lateness => '30 seconds')" >/dev/null
wait_for "SELECT $(logged 'evaluating rules failed: rollup .it65.humidity_1m.') >= 2" 30
no_crash "rollup column dropped"
assert_eq "$(q "SELECT count(*) FROM it65.tel")" "$n1" "while the rollup is broken, no batch commits part of itself"
assert_eq "$(merged)" "$n1" "nor any rollup delta"
q "SELECT iotstream.drop_rollup('it65.humidity_1m')" >/dev/null
wait_for "SELECT count(*) = $n1 + $n2 FROM it65.tel" 60
wait_detected 'it65%'
no_crash "rollup dropped"

# B. after that healthy reload, the rule's column goes; a change makes the workers reload
q "ALTER TABLE it65.tel DROP COLUMN battery"
q "SELECT iotstream.alter_rule('it65_late', severity => 'critical')" >/dev/null
wait_for "SELECT $(logged 'evaluating rules failed: column .battery. does not exist') >= 2" 30
no_crash "rule column dropped"
q "SELECT iotstream.drop_rule('it65_battery')" >/dev/null
n3=$(sim p3 00:08 2400 653 --burst 9,2026-11-01T00:08:20Z)
wait_for "SELECT count(*) = $n1 + $n2 + $n3 FROM it65.tel" 60
wait_detected 'it65%'
no_crash "rule dropped"

# C. the rollup's value column changes type (float8 to float4): nothing
# fails to load, but the workers must reload the type they cached, or the
# rollup reads the new values as float8
q "ALTER TABLE it65.tel ALTER COLUMN value TYPE float4"
n4=$(sim p4 00:10 2400 654)
wait_for "SELECT count(*) = $n1 + $n2 + $n3 + $n4 FROM it65.tel" 60
wait_detected 'it65%'
no_crash "value column retyped"

total=$((n1 + n2 + n3 + n4))
assert_eq "$(q "SELECT count(DISTINCT (sensor_id, ts, value)) FROM it65.tel")" "$total" "every reading stored once"
assert_eq "$(merged)" "$total" "the rollup merged every row once"
assert_eq "$(q "SELECT count(*) FROM (SELECT sensor_id, metric_type, date_bin('1 minute', ts, '2000-01-01') b,
                  count(*) n, min(value) lo, max(value) hi FROM it65.tel GROUP BY 1, 2, 3) g
                FULL JOIN it65.tel_1m r ON r.sensor_id = g.sensor_id AND r.metric_type = g.metric_type
                 AND r.bucket_start = g.b
                WHERE g.n IS DISTINCT FROM iotstream.count(r.value) OR g.lo::float4 IS DISTINCT FROM iotstream.min(r.value)::float4
                   OR g.hi::float4 IS DISTINCT FROM iotstream.max(r.value)::float4")" 0 "the rollup equals GROUP BY over the table"
assert_eq "$(found it65_bursts)" "$(bursts p1 p2 p3)" "the first rule found exactly the bursts of all three runs"
assert_eq "$(found it65_late)" "$(bursts p2 p3)" "the rule created while broken found exactly those since its start"
assert_eq "$(q "SELECT count(*) - count(DISTINCT (rule, key, window_start)) FROM iotstream.anomalies
                WHERE rule LIKE 'it65%'")" 0 "no anomaly stored twice"
assert_eq "$(q "SELECT sum(late_rows) FROM iotstream.rule_status WHERE rule LIKE 'it65%'")" 0 "no late rows"

q "SELECT iotstream.drop_source('it65')" >/dev/null
echo "ok"

#!/usr/bin/env bash
# Continuous detection through the real broker, from the simulator's
# seed-004 telemetry with injected anomalies:
#  - the seed-004 rule (threshold_count {"threshold":100,"min_count":5})
#    finds exactly the injected bursts of 6 readings (sensor and minute),
#    not the burst of 4 below min_count, nothing else;
#  - spike_dip and mad find exactly the injected spike;
#  - an ordered and a shuffled stream give the same anomalies and rollups;
#  - rows past the lateness are counted (rules and rollup), and
#    refresh_rollup merges them; rollups equal GROUP BY over the raw table;
#  - a level shift is found by cusum, change_point, ewma and zscore;
#  - a LISTEN client receives every anomaly's NOTIFY payload.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
W=$IOTSTREAM_WORK
rm -f "$W/stop_listen"
trap 'touch "$W/stop_listen"; _lib_cleanup' EXIT

# one partition per topic: event-time order within a topic is what the
# test controls (--shuffle), not the interleaving of partitions
start_broker --topic ordered:1 --topic shuffled:1 --topic shift:1

fresh_schema it60
psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
DO \$\$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['ordered', 'shuffled', 'shift'] LOOP
    PERFORM iotstream.create_stream_table('it60.' || t,
      'ts timestamptz NOT NULL, sensor_id text NOT NULL, metric_type text NOT NULL, value float8 NOT NULL',
      'ts', partition_interval => '1 hour', max_past => '3650 days', max_future => '1 day', retention => NULL);
  END LOOP;
  FOREACH t IN ARRAY ARRAY['ordered', 'shuffled'] LOOP
    PERFORM iotstream.create_rule('it60_seed004_' || t, ('it60.' || t)::regclass, 'value', ARRAY['sensor_id'],
      'threshold_count', '{"threshold": 100, "min_count": 5}', filter => 'metric_type = ''temperature''',
      lateness => '2 minutes');
    PERFORM iotstream.create_rule('it60_spike_' || t, ('it60.' || t)::regclass, 'value', ARRAY['sensor_id'],
      'spike_dip', '{"confidence": 99.9, "history_size": 60, "mode": "spikes"}',
      filter => 'metric_type = ''temperature''', lateness => '2 minutes');
    PERFORM iotstream.create_rule('it60_mad_' || t, ('it60.' || t)::regclass, 'value', ARRAY['sensor_id'],
      'mad', '{"threshold": 6}', filter => 'metric_type = ''temperature''', lateness => '2 minutes');
    PERFORM iotstream.create_rollup('it60.' || t || '_1m', ('it60.' || t)::regclass,
      ARRAY['sensor_id', 'metric_type'], ARRAY['value'], bucket => '1 minute', lateness => '2 minutes');
  END LOOP;
END \$\$;
SELECT iotstream.create_rule('it60_cusum', 'it60.shift', 'value', ARRAY['sensor_id'], 'cusum',
  '{"target": 65, "k": 10, "h": 150}', filter => 'metric_type = ''temperature''', lateness => '1 minute');
SELECT iotstream.create_rule('it60_change', 'it60.shift', 'value', ARRAY['sensor_id'], 'change_point',
  '{"confidence": 99, "history_size": 100}', filter => 'metric_type = ''temperature''', lateness => '1 minute');
SELECT iotstream.create_rule('it60_ewma', 'it60.shift', 'value', ARRAY['sensor_id'], 'ewma',
  '{"lambda": 0.2, "L": 4, "warmup": 30}', filter => 'metric_type = ''temperature''', lateness => '1 minute');
SELECT iotstream.create_rule('it60_zscore', 'it60.shift', 'value', ARRAY['sensor_id'], 'zscore',
  '{"threshold": 5, "history": 5}', filter => 'metric_type = ''temperature''', lateness => '1 minute');
SELECT iotstream.create_source('it60_' || t, '$BROKERS', ARRAY[t], ('it60.' || t)::regclass,
  '{"ts": "timestamp"}', '{"batch_ms": 50, "batch_size": 2000}')
  FROM unnest(ARRAY['ordered', 'shuffled', 'shift']) t;
SQL

# a LISTEN client, polling so that psql prints what arrives
( echo "LISTEN iotstream_anomaly;"
  while [ ! -e "$W/stop_listen" ]; do echo "SELECT 1;"; sleep 0.2; done ) |
  psql -X -q -At >"$W/notify.log" 2>&1 &
listener=$!
echo "$listener" >>"$IOTSTREAM_PIDS"
q "SELECT iotstream.start_source('it60_' || t) FROM unnest(ARRAY['ordered', 'shuffled', 'shift']) t" >/dev/null

# 20 sensors, one reading a second each, 20 minutes; temperature every third
common=(--format telemetry --count 24000 --devices 20 --seed 60 --start-time 2026-11-01T00:00:00Z
  --burst 3,2026-11-01T00:05:10Z --burst 7,2026-11-01T00:12:30Z --burst 12,2026-11-01T00:12:40Z
  --burst 15,2026-11-01T00:09:00Z,4 --spike 5,2026-11-01T00:08:00Z --no-per-device)
"$IOTSTREAM_SIM" --brokers "$BROKERS" --topic ordered "${common[@]}" >"$W/ordered.json"
"$IOTSTREAM_SIM" --brokers "$BROKERS" --topic shuffled --shuffle 500 "${common[@]}" >"$W/shuffled.json"
"$IOTSTREAM_SIM" --brokers "$BROKERS" --topic shift --format telemetry --count 16000 --devices 20 --seed 61 \
  --start-time 2026-11-01T00:00:00Z --level-shift 9,2026-11-01T00:07:00Z,100 --no-per-device >"$W/shift.json"
s=$(cat "$W/ordered.json")
good=$(json_get "$s" good)
for t in ordered shuffled; do
  wait_for "SELECT count(*) = $good FROM it60.$t" 60
done
wait_for "SELECT count(*) = $(json_get "$(cat "$W/shift.json")" good) FROM it60.shift" 60
# every window (row, for row detectors) up to the watermark - lateness is
# evaluated, and every batch is folded into the rollups
wait_detected 'it60%'

# the seed-004 rule: exactly the bursts with at least 5 readings
expected=$(q "SELECT string_agg(format('%s@%s', b->>'device', (b->>'minute')::timestamptz), ' ' ORDER BY b->>'device', b->>'minute')
              FROM jsonb_array_elements('$s'::jsonb->'bursts') b WHERE (b->>'count')::int >= 5")
for t in ordered shuffled; do
  assert_eq "$(q "SELECT string_agg(format('%s@%s', key->>'sensor_id', window_start), ' ' ORDER BY key->>'sensor_id', window_start)
                  FROM iotstream.anomalies WHERE rule = 'it60_seed004_$t'")" "$expected" \
    "$t: the seed-004 rule finds exactly the injected bursts"
done
assert_eq "$(q "SELECT count(*) FROM iotstream.anomalies WHERE rule = 'it60_seed004_ordered' AND value >= 6
                AND window_end = window_start + interval '1 minute' AND detector = 'threshold_count'
                AND source = 'it60_ordered' AND jsonb_array_length(source_offsets) = 1")" 3 \
  "anomaly rows carry count, window, detector, source and offsets"

# mad finds exactly the injected spike; spike_dip finds it and otherwise
# only burst readings (above 100, the range the other values never leave)
spike=$(q "SELECT format('%s@%s', b->>'device', (b->>'time')::timestamptz)
           FROM jsonb_array_elements('$s'::jsonb->'spikes') b")
for t in ordered shuffled; do
  assert_eq "$(q "SELECT string_agg(format('%s@%s', key->>'sensor_id', event_time), ' ')
                  FROM iotstream.anomalies WHERE rule = 'it60_mad_$t'")" "$spike" "$t: mad finds exactly the spike"
  assert_eq "$(q "SELECT count(*) FILTER (WHERE format('%s@%s', key->>'sensor_id', event_time) = '$spike') || ' '
                         || count(*) FILTER (WHERE value <= 100)
                  FROM iotstream.anomalies WHERE rule = 'it60_spike_$t'")" "1 0" \
    "$t: spike_dip finds the spike, and nothing that was not injected"
done

# ordered and shuffled streams: the same anomalies and the same rollups
anoms() {
  q "SELECT md5(string_agg(a, ',' ORDER BY a)) FROM (SELECT format('%s %s %s %s %s %s', split_part(rule, '_', 2), key,
                                  window_start, window_end, event_time, round(value::numeric, 6)) a
       FROM iotstream.anomalies WHERE rule LIKE 'it60\_%\_$1' ESCAPE '\\') x"
}
assert_eq "$(anoms shuffled)" "$(anoms ordered)" "shuffled and ordered streams raise the same anomalies"
rollup_sql() {
  echo "SELECT md5(string_agg(format('%s %s %s %s %s %s', sensor_id, metric_type, bucket_start,
                                     iotstream.count(value), iotstream.min(value), iotstream.max(value)), ','
                              ORDER BY sensor_id, metric_type, bucket_start)) FROM it60.$1_1m"
}
assert_eq "$(q "$(rollup_sql shuffled)")" "$(q "$(rollup_sql ordered)")" "shuffled and ordered rollups are equal"
groupby_diff() {
  q "SELECT count(*) FROM (SELECT sensor_id, metric_type, date_bin('1 minute', ts, '2000-01-01') b,
            count(*) n, avg(value) m, stddev_samp(value) sd, min(value) lo, max(value) hi
       FROM it60.$1 GROUP BY 1, 2, 3) g
     FULL JOIN it60.$1_1m r ON r.sensor_id = g.sensor_id AND r.metric_type = g.metric_type AND r.bucket_start = g.b
     WHERE g.n IS DISTINCT FROM iotstream.count(r.value) OR g.lo IS DISTINCT FROM iotstream.min(r.value)
        OR g.hi IS DISTINCT FROM iotstream.max(r.value) OR abs(g.m - iotstream.mean(r.value)) > 1e-9 * abs(g.m)
        OR abs(coalesce(g.sd, 0) - coalesce(iotstream.stddev(r.value), 0)) > 1e-9 * (1 + coalesce(g.sd, 0))"
}
for t in ordered shuffled; do
  assert_eq "$(groupby_diff $t)" 0 "$t: the rollup equals GROUP BY over the raw table"
  assert_eq "$(q "SELECT late_rows FROM iotstream.rule_status WHERE rule = 'it60_seed004_$t'")" 0 "$t: no late rows"
done

# rows past the lateness: counted by every rule and the rollup, merged by refresh_rollup
before=$(q "SELECT count(*) FROM iotstream.anomalies WHERE rule LIKE 'it60%'")
for i in 1 2 3; do
  printf '{"sensor_id":"sensor-0001","timestamp":"2026-11-01T00:03:0%s.000Z","metric_type":"temperature","value":120}\n' "$i"
done | kcat -P -b "$BROKERS" -t shuffled 2>/dev/null
wait_for "SELECT count(*) = $good + 3 FROM it60.shuffled" 30
for r in seed004 spike mad; do
  assert_eq "$(q "SELECT late_rows FROM iotstream.rule_status WHERE rule = 'it60_${r}_shuffled'")" 3 \
    "late rows counted by rule $r"
done
assert_eq "$(q "SELECT late_rows FROM iotstream.rollup_status WHERE rollup = 'it60.shuffled_1m'")" 3 \
  "late rows counted by the rollup"
assert_eq "$(groupby_diff shuffled)" 1 "late rows are not merged into a closed bucket"
assert_eq "$(q "SELECT iotstream.refresh_rollup('it60.shuffled_1m', '2026-11-01 00:03', '2026-11-01 00:04')")" 60 \
  "refresh_rollup recomputes the minute's buckets"
assert_eq "$(groupby_diff shuffled)" 0 "after refresh_rollup the rollup equals GROUP BY again"
assert_eq "$(q "SELECT count(*) FROM iotstream.anomalies WHERE rule LIKE 'it60%'")" "$before" \
  "late rows raise nothing in windows already evaluated"

# a level shift of +100 on sensor-0009 from 00:07: every shift detector finds it
# within three minutes, and none flags that sensor before it
for r in cusum change ewma zscore; do
  first=$(q "SELECT min(coalesce(event_time, window_start)) FROM iotstream.anomalies
             WHERE rule = 'it60_$r' AND key->>'sensor_id' = 'sensor-0009'")
  assert_eq "$(q "SELECT '$first' >= '2026-11-01 00:07' AND '$first' < '2026-11-01 00:10'")" t \
    "$r finds the level shift (first at $first)"
done
assert_eq "$(q "SELECT count(*) FROM iotstream.anomalies WHERE rule = 'it60_cusum'")" 1 \
  "cusum raises the shift once, nothing else"

# backtest: the same code path over stored rows gives the rule's anomalies
assert_eq "$(q "SELECT string_agg(format('%s@%s', key->>'sensor_id', window_start), ' ' ORDER BY key->>'sensor_id', window_start)
                FROM iotstream.backtest_rule('it60_seed004_ordered', '2026-11-01', '2026-11-01 00:18')")" \
  "$expected" "backtest_rule finds the same bursts"
assert_eq "$(q "SELECT count(*) FROM iotstream.backtest_rule('it60_cusum', '2026-11-01', '2026-11-01 00:11')")" 1 \
  "backtest_rule runs row detectors"

# NOTIFY: every anomaly's payload reached the listener, once
total=$(q "SELECT count(*) FROM iotstream.anomalies WHERE rule LIKE 'it60%'")
for i in $(seq 1 50); do
  [ "$(grep -c 'iotstream_anomaly' "$W/notify.log" || true)" -ge "$total" ] && break
  sleep 0.1
done
touch "$W/stop_listen"
wait "$listener" 2>/dev/null || true
ids=$(grep 'Asynchronous notification "iotstream_anomaly"' "$W/notify.log" | grep -o '"id": [0-9]*' |
  grep -o '[0-9]*$' | sort -n | tr '\n' ' ')
assert_eq "$ids" "$(q "SELECT string_agg(id::text, ' ' ORDER BY id) || ' ' FROM iotstream.anomalies WHERE rule LIKE 'it60%'")" \
  "the listener received each anomaly's NOTIFY, with its id"

# idle keys age out of a rule's state (iotstream.rule_state_idle, 7 days):
# a key last seen 8 days ago leaves iotstream.rule_state at the rule's next
# evaluation; the sensors, which sent within it, keep theirs
ewma=$(q "SELECT rule_id FROM iotstream.rules WHERE name = 'it60_ewma'")
assert_eq "$(q "SELECT count(*) FROM iotstream.rule_state WHERE rule_id = $ewma")" 20 \
  "ewma keeps a state for each of the 20 sensors"
q "INSERT INTO iotstream.rule_state (rule_id, key, state, seen_at)
   SELECT rule_id, '{\"sensor_id\": \"ghost\"}', state, now() - interval '8 days'
     FROM iotstream.rule_state WHERE rule_id = $ewma LIMIT 1" >/dev/null
until0=$(q "SELECT evaluated_until FROM iotstream.rule_progress WHERE rule_id = $ewma")
for m in 30 31 32 33; do
  echo "{\"timestamp\": \"2026-11-01T00:$m:00Z\", \"sensor_id\": \"sensor-0002\", \"metric_type\": \"temperature\", \"value\": 65}"
done | kcat -P -b "$BROKERS" -t shift
wait_for "SELECT evaluated_until > '$until0' FROM iotstream.rule_progress WHERE rule_id = $ewma" 60
assert_eq "$(q "SELECT count(*), count(*) FILTER (WHERE key->>'sensor_id' = 'ghost')
                  FROM iotstream.rule_state WHERE rule_id = $ewma")" "20|0" \
  "an idle key leaves the rule's state; the sensors keep theirs"

q "SELECT iotstream.drop_source('it60_' || t) FROM unnest(ARRAY['ordered', 'shuffled', 'shift']) t" >/dev/null
echo "ok"

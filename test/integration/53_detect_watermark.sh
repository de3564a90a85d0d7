#!/usr/bin/env bash
# The watermark is made of the partitions': a partition whose rows come in
# later than the others' does not find them late.  Two partitions with the
# same 30 minutes of readings, one sensor each; partition 1's leader answers
# 3 s late (the broker's rtt command), so partition 0 is read whole before
# partition 1's first fetch returns.  With the watermark taken as the
# newest event time ingested, partition 1's rows would all be late for a
# rule and a rollup with a lateness of 1 minute; they must be none.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

start_broker --brokers 2 --topic wm63:2
broker_cmd "leader wm63 0 1"
broker_cmd "leader wm63 1 2"

fresh_schema it63
psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
SELECT iotstream.create_stream_table('it63.tel', 'ts timestamptz NOT NULL, sensor_id text NOT NULL, value float8',
  'ts', partition_interval => '1 day', max_past => '3650 days', retention => NULL);
SELECT iotstream.create_rule('it63_count', 'it63.tel', 'value', ARRAY['sensor_id'], 'threshold_count',
  '{"threshold": 100, "min_count": 5}', lateness => '1 minute');
SELECT iotstream.create_rollup('it63.tel_1m', 'it63.tel', ARRAY['sensor_id'], ARRAY['value'],
  bucket => '1 minute', lateness => '1 minute');
SQL

# 181 readings per sensor, 00:00 to 00:30 every 10 s; sensor b's at 120
# from 00:20 on (a burst the rule must find, in the late partition)
for p in 0 1; do
  for i in $(seq 0 180); do
    v=20; [ "$p" = 1 ] && [ "$i" -ge 120 ] && [ "$i" -lt 126 ] && v=120
    printf '{"ts":"%s","sensor_id":"%s","value":%s}\n' \
      "$(date -u -d "2026-11-01 00:00:00 UTC + $((i * 10)) seconds" +%Y-%m-%dT%H:%M:%SZ)" \
      "$([ "$p" = 0 ] && echo a || echo b)" "$v"
  done | kcat -P -b "$BROKERS" -t wm63 -p "$p" 2>/dev/null
done

broker_cmd "rtt 2 3000"
q "SELECT iotstream.create_source('it63', '$BROKERS', ARRAY['wm63'], 'it63.tel', '{\"ts\": \"ts\"}',
     '{\"batch_ms\": 20, \"batch_size\": 50}')" >/dev/null
q "SELECT iotstream.start_source('it63')" >/dev/null
wait_for "SELECT count(*) = 181 FROM it63.tel WHERE sensor_id = 'a'" 60
assert_eq "$(q "SELECT count(*) FROM it63.tel WHERE sensor_id = 'b'")" 0 "partition 0 was read before partition 1"
broker_cmd "rtt 2 0"
wait_for "SELECT count(*) = 362 FROM it63.tel" 60
wait_detected 'it63%'

assert_eq "$(q "SELECT late_rows FROM iotstream.rule_status WHERE rule = 'it63_count'")" 0 \
  "no row of the late partition is late for the rule"
assert_eq "$(q "SELECT late_rows || ' ' || rows_merged FROM iotstream.rollup_status WHERE rollup = 'it63.tel_1m'")" "0 362" \
  "no row of the late partition is late for the rollup"
assert_eq "$(q "SELECT string_agg(format('%s@%s', key->>'sensor_id', window_start), ' ') FROM iotstream.anomalies
                WHERE rule = 'it63_count'")" "b@2026-11-01 00:20:00+00" "the burst in the late partition is found"
assert_eq "$(q "SELECT count(*) FROM (SELECT sensor_id, date_bin('1 minute', ts, '2000-01-01') b, count(*) n FROM it63.tel
                GROUP BY 1, 2) g FULL JOIN it63.tel_1m r ON r.sensor_id = g.sensor_id AND r.bucket_start = g.b
                WHERE g.n IS DISTINCT FROM iotstream.count(r.value)")" 0 "the rollup equals GROUP BY over both partitions"
q "SELECT iotstream.drop_source('it63')" >/dev/null
echo ok

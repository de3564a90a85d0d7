#!/usr/bin/env bash
# While a table's sources drain a backlog (they commit full batches with
# more waiting behind them), its detection worker waits, up to
# iotstream.detection_yield at a time, and then catches up from the stored
# rows: nothing is skipped.  A source with batches of 5 works through
# 12,000 messages produced beforehand (several seconds of commits); a sixth
# of the way in, no window may have been evaluated yet (with the yield set
# to an hour), though the watermark has sealed many of them, and the worker
# shows that it waits.  Once the backlog is stored, every window is
# evaluated and the injected burst is found.  A live stream that fills the
# same small batches but keeps up with them is evaluated while it runs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

start_broker --brokers 1 --topic y64:1
reset_yield() { psql -X -q -c "ALTER SYSTEM RESET iotstream.detection_yield" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true; }
trap 'reset_yield; _lib_cleanup' EXIT	# the cluster is shared with the other tests
# seed004_table TABLE RULE SOURCE TOPIC: stream table it64.TABLE with the
# seed-004 rule, fed from TOPIC in batches of 5, started
seed004_table() {
  psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
SELECT iotstream.create_stream_table('it64.$1',
  'ts timestamptz NOT NULL, sensor_id text NOT NULL, metric_type text NOT NULL, value float8',
  'ts', partition_interval => '1 day', max_past => '3650 days', retention => NULL);
SELECT iotstream.create_rule('$2', 'it64.$1', 'value', ARRAY['sensor_id'], 'threshold_count',
  '{"threshold": 100, "min_count": 5}', filter => 'metric_type = ''temperature''', lateness => '1 minute');
SELECT iotstream.create_source('$3', '$BROKERS', ARRAY['$4'], 'it64.$1', '{"ts": "timestamp"}',
  '{"batch_size": 5, "batch_ms": 1000}');
SELECT iotstream.start_source('$3');
SQL
}

fresh_schema it64
psql -X -q -c "ALTER SYSTEM SET iotstream.detection_yield = '1h'" -c "SELECT pg_reload_conf()" >/dev/null
assert_eq "$(q "SHOW iotstream.detection_yield")" 1h "the yield is set"

W=$IOTSTREAM_WORK
# 12,000 readings of 10 sensors every 15 s (5 hours), a burst at 03:30
"$IOTSTREAM_SIM" --brokers "$BROKERS" --topic y64 --format telemetry --count 12000 --devices 10 \
  --time-step 15s --seed 64 --start-time 2026-11-01T00:00:00Z --burst 3,2026-11-01T03:30:00Z \
  --no-per-device >"$W/y64.json"
good=$(json_get "$(cat "$W/y64.json")" good)
seed004_table tel it64_seed004 it64 y64

wait_for "SELECT count(*) >= $good / 6 FROM it64.tel" 120
read -r stored evaluated watermark <<<"$(q "SELECT (SELECT count(*) FROM it64.tel), windows_evaluated, watermark > '2026-11-01 00:30+00'
                                            FROM iotstream.rule_status WHERE rule = 'it64_seed004'" | tr '|' ' ')"
assert_eq "$([ "$stored" -lt "$good" ] && echo draining)" draining "the backlog is still being stored ($stored of $good)"
assert_eq "$watermark" t "the watermark has passed many windows"
assert_eq "$evaluated" 0 "no window evaluated while the source drains the backlog"
assert_eq "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'iotstream detection of tel'
                 AND query = 'waiting while the sources drain a backlog'")" 1 "the detection worker shows that it waits"

wait_for "SELECT count(*) >= $good FROM it64.tel" 120
wait_detected 'it64%' 60
assert_eq "$(q "SELECT windows_evaluated > 250 FROM iotstream.rule_status WHERE rule = 'it64_seed004'")" t \
  "every window is evaluated once the backlog is stored"
assert_eq "$(q "SELECT string_agg(format('%s@%s', key->>'sensor_id', window_start), ' ') FROM iotstream.anomalies
                WHERE rule = 'it64_seed004'")" "sensor-0003@2026-11-01 03:30:00+00" "the burst is found"
q "SELECT iotstream.drop_source('it64')" >/dev/null

# live: 200 msg/s of 10 sensors every second (event time runs 20x the wall
# clock), batches of 5 full in 25 ms, the source keeping up
broker_cmd "create y64live 1"
seed004_table live it64_live it64_live y64live
"$IOTSTREAM_SIM" --brokers "$BROKERS" --topic y64live --format telemetry --rate 200 --duration 30 --devices 10 \
  --time-step 1s --seed 65 --start-time 2026-11-02T00:00:00Z --no-per-device >"$W/live.json" &
sim=$!
wait_for "SELECT windows_evaluated > 0 FROM iotstream.rule_status WHERE rule = 'it64_live'" 60
assert_eq "$(kill -0 "$sim" 2>/dev/null && echo running)" running "the live stream is still being produced"
assert_eq "$(q "SELECT max(n) FROM (SELECT count(*) n FROM it64.live GROUP BY xmin::text) b")" 5 "its batches are full"
wait "$sim"
q "SELECT iotstream.drop_source('it64_live')" >/dev/null
echo ok

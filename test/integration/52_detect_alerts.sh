#!/usr/bin/env bash
# Alert topics: every anomaly of a rule with alert_topic is produced to that
# topic once, keyed by its id, with its JSON as the value, and marked as
# sent (alerted_at) only after the broker acknowledged it.  Read back with
# kcat.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
W=$IOTSTREAM_WORK

start_broker --topic tel62:1 --topic alerts62:1

fresh_schema it62
psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
SELECT iotstream.create_stream_table('it62.tel',
  'ts timestamptz NOT NULL, sensor_id text NOT NULL, metric_type text NOT NULL, value float8 NOT NULL',
  'ts', partition_interval => '1 hour', max_past => '3650 days', max_future => '1 day', retention => NULL);
SELECT iotstream.create_rule('it62_seed004', 'it62.tel', 'value', ARRAY['sensor_id'], 'threshold_count',
  '{"threshold": 100, "min_count": 5}', filter => 'metric_type = ''temperature''', lateness => '1 minute',
  severity => 'critical', alert_topic => 'alerts62');
SELECT iotstream.create_rule('it62_spike', 'it62.tel', 'value', ARRAY['sensor_id'], 'spike_dip',
  '{"confidence": 99.9, "history_size": 60}', filter => 'metric_type = ''temperature''', lateness => '1 minute');
SELECT iotstream.create_source('it62', '$BROKERS', ARRAY['tel62'], 'it62.tel', '{"ts": "timestamp"}',
  '{"batch_ms": 50, "batch_size": 1000}');
SELECT iotstream.start_source('it62');
SQL

"$IOTSTREAM_SIM" --brokers "$BROKERS" --topic tel62 --format telemetry --count 12000 --devices 20 --seed 62 \
  --start-time 2026-11-01T00:00:00Z --burst 1,2026-11-01T00:02:00Z --burst 2,2026-11-01T00:03:00Z \
  --burst 3,2026-11-01T00:05:00Z --burst 4,2026-11-01T00:05:00Z --burst 5,2026-11-01T00:07:00Z \
  --spike 6,2026-11-01T00:04:00Z --no-per-device >"$W/tel62.json"
good=$(json_get "$(cat "$W/tel62.json")" good)
wait_for "SELECT count(*) = $good FROM it62.tel" 60
wait_for "SELECT count(*) = 5 FROM iotstream.anomalies WHERE rule = 'it62_seed004'" 30
wait_for "SELECT count(*) = 0 FROM iotstream.anomalies WHERE rule = 'it62_seed004' AND alerted_at IS NULL" 30
assert_eq "$(q "SELECT count(*) FROM iotstream.anomalies WHERE rule = 'it62_spike' AND alerted_at IS NOT NULL")" 0 \
  "a rule without alert_topic produces nothing"

kcat -C -b "$BROKERS" -t alerts62 -o beginning -e -q -f '%k\t%s\n' >"$W/alerts.tsv" 2>/dev/null
assert_eq "$(cut -f1 "$W/alerts.tsv" | sort -n | tr '\n' ' ')" \
  "$(q "SELECT string_agg(id::text, ' ' ORDER BY id) || ' ' FROM iotstream.anomalies WHERE rule = 'it62_seed004'")" \
  "the alert topic holds each anomaly once, keyed by its id"
bad=0
while IFS=$'\t' read -r key value; do
  [ "$(json_get "$value" id)" = "$key" ] && [ "$(json_get "$value" rule)" = it62_seed004 ] &&
    [ "$(json_get "$value" severity)" = critical ] || bad=$((bad + 1))
done <"$W/alerts.tsv"
assert_eq "$bad" 0 "each alert's value is the anomaly's JSON"

q "SELECT iotstream.drop_source('it62')" >/dev/null
echo "ok"

#!/usr/bin/env bash
# Rows of one batch that belong to different partitions land in the right
# ones.  The messages are produced first, over 16 Kafka partitions, so every
# batch the worker reads mixes both hours of data, and the two hourly
# partitions grow side by side, often reaching the same block number at the
# same time (which a bulk-insert state shared across partitions would mix
# up).  Every row must sit in the partition whose range holds its time.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

start_broker --topic spread:16
psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS it44 CASCADE;
CREATE SCHEMA it44;
SELECT iotstream.create_stream_table('it44.t',
  'ts timestamptz NOT NULL, sensor_id text NOT NULL, metric_type text NOT NULL, value float8 NOT NULL',
  'ts', partition_interval => '1 hour', max_past => '3650 days', retention => NULL);
SQL
W=$IOTSTREAM_WORK
# 60000 readings from 200 sensors, 24 s apart per sensor: two hours of data
"$IOTSTREAM_SIM" --brokers "$BROKERS" --topic spread --format telemetry --count 60000 --devices 200 \
  --time-step 24s --seed 44 --start-time 2026-11-01T00:00:00Z --no-per-device >"$W/spread.json"
q "SELECT iotstream.create_source('it44', '$BROKERS', ARRAY['spread'], 'it44.t', '{\"ts\": \"timestamp\"}',
     '{\"batch_size\": 5000, \"batch_ms\": 100}')" >/dev/null
q "SELECT iotstream.start_source('it44')" >/dev/null
s=$(cat "$W/spread.json")
good=$(json_get "$s" good)
wait_for "SELECT (SELECT count(*) FROM it44.t) + (SELECT count(*) FROM iotstream.dead_letters WHERE source = 'it44') >= $good" 120

assert_eq "$(q "SELECT count(*) FROM iotstream.dead_letters WHERE source = 'it44'")" 0 "no dead letters"
assert_eq "$(q "SELECT count(*) FROM it44.t")" "$good" "every reading stored"
assert_eq "$(q "SELECT count(*) FROM iotstream.partitions('it44.t') p
                 WHERE p.range_start < '2026-11-01 02:00+00' AND p.range_end > '2026-11-01 00:00+00'")" 2 \
  "the data spans two partitions"
assert_eq "$(q "SELECT count(*) FROM it44.t t JOIN iotstream.partitions('it44.t') p ON p.partition = t.tableoid
                 WHERE NOT (t.ts >= p.range_start AND t.ts < p.range_end)")" 0 "every row is in its own partition"
assert_eq "$(q "SELECT min(c) > 20000 FROM (SELECT count(*) c FROM it44.t GROUP BY tableoid) x")" t \
  "both partitions got many rows"
start_ms=$(json_get "$s" start_ms)
assert_eq "$(q "SELECT sum(round(value::float8 * 100)::bigint + ((extract(epoch FROM ts) * 1000)::bigint - $start_ms))
                 FROM it44.t")" "$(json_get "$s" checksum)" "checksum"
q "SELECT iotstream.drop_source('it44')" >/dev/null
echo "ok"

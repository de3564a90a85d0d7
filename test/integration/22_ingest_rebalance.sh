#!/usr/bin/env bash
# Two workers of one source share a consumer group.  While events stream,
# one worker is terminated (its partitions move to the other), then the
# launcher restarts it (they are split again).  Each rebalance hands
# partitions over at the offsets stored with the rows: nothing is lost or
# stored twice.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

start_broker --topic rebal:8

psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS it42 CASCADE;
CREATE SCHEMA it42;
SELECT iotstream.create_stream_table('it42.events',
  'event_id uuid NOT NULL, value float8, device_id text NOT NULL,
   device_sequence_number bigint, created_at timestamptz NOT NULL, kafka_partition int',
  'created_at', max_past => '3650 days', max_future => '1 day', retention => NULL);
SELECT iotstream.create_source('it42', '$BROKERS', ARRAY['rebal'], 'it42.events',
  '{"kafka_partition": "\$partition"}',
  -- long batches: a rebalance then usually lands while a batch is pending
  '{"workers": 2, "batch_size": 5000, "batch_ms": 400, "session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}');
SELECT iotstream.start_source('it42');
SQL

W=$IOTSTREAM_WORK
total=30000
"$IOTSTREAM_SIM" --brokers "$BROKERS" --topic rebal --format event --count $total --rate 1500 \
  --devices 64 --seed 42 --start-time 2026-11-01T00:00:00Z --no-per-device >"$W/rebal.json" &
sim=$!
echo "$sim" >>"$IOTSTREAM_PIDS"

wait_for "SELECT cardinality(pids) = 2 FROM iotstream.source_status WHERE source = 'it42'" 30
# both workers store rows: the group split the partitions between them
wait_for "SELECT count(*) = 2 FROM iotstream._worker_stats()
          WHERE source_id = (SELECT source_id FROM iotstream.sources WHERE name = 'it42') AND rows > 0" 60
echo "two workers are storing rows"

victim=$(q "SELECT pids[1] FROM iotstream.source_status WHERE source = 'it42'")
q "SELECT pg_terminate_backend($victim)" >/dev/null
echo "terminated worker $victim"
before=$(q "SELECT count(*) FROM it42.events")
wait_for "SELECT count(*) > $before + 2000 FROM it42.events" 60
echo "the other worker carries on"
wait_for "SELECT cardinality(pids) = 2 AND NOT $victim = ANY(pids) FROM iotstream.source_status WHERE source = 'it42'" 60
echo "the launcher restarted the terminated worker"

wait "$sim" || fail "the simulator could not deliver every message"
s=$(cat "$W/rebal.json")
good=$(json_get "$s" good)
wait_for "SELECT count(*) >= $good FROM it42.events" 120
wait_for "SELECT lag = 0 FROM iotstream.source_status WHERE source = 'it42'" 60
start_ms=$(json_get "$s" start_ms)
assert_eq "$(q "SELECT count(*) FROM it42.events")" "$good" "every event stored"
assert_eq "$(q "SELECT count(DISTINCT event_id) FROM it42.events")" "$good" "no event stored twice"
assert_eq "$(q "SELECT sum(device_sequence_number + round(value * 100)::bigint
                 + ((extract(epoch FROM created_at) * 1000)::bigint - $start_ms)) FROM it42.events")" \
  "$(json_get "$s" checksum)" "checksum"
assert_eq "$(q "SELECT count(DISTINCT kafka_partition) FROM it42.events")" 8 "all partitions consumed"
q "SELECT iotstream.drop_source('it42')" >/dev/null
echo "ok"

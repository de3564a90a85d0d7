#!/usr/bin/env bash
# Exactly once under failures: while the simulator streams seed-002 events,
#  1. kill -9 the source worker in the middle of batches,
#  2. pg_ctl stop -m immediate, then start again,
#  3. take brokers down and up inside the broker process.
# Afterwards the table holds every event exactly once, with the simulator's
# checksum, and the running source came back by itself after the restart.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

# 16 partitions: the broker keeps ~5 MiB per partition, and nothing may be
# evicted while the consumer is down
start_broker --topic crash:16

psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS it41 CASCADE;
CREATE SCHEMA it41;
SELECT iotstream.create_stream_table('it41.events',
  'event_id uuid NOT NULL, value float8, device_id text NOT NULL,
   device_sequence_number bigint, type text, created_at timestamptz NOT NULL',
  'created_at', partition_interval => '1 hour', max_past => '3650 days', max_future => '1 day', retention => NULL);
SELECT iotstream.create_source('it41', '$BROKERS', ARRAY['crash'], 'it41.events', NULL,
  '{"batch_size": 500, "batch_ms": 20, "session.timeout.ms": "6000"}');
SELECT iotstream.start_source('it41');
SQL

W=$IOTSTREAM_WORK
total=40000
# 2,000 msg/s for 20 s: the failures below land in the middle of the stream
"$IOTSTREAM_SIM" --brokers "$BROKERS" --topic crash --format event --count $total --rate 2000 \
  --devices 100 --seed 41 --start-time 2026-11-01T00:00:00Z --no-per-device >"$W/crash.json" &
sim=$!
echo "$sim" >>"$IOTSTREAM_PIDS"

# 1. kill -9 the worker while it is storing batches
wait_for "SELECT count(*) > 5000 FROM it41.events" 60
pid=$(q "SELECT pids[1] FROM iotstream.source_status WHERE source = 'it41'")
kill -9 "$pid"
echo "killed worker $pid"
# the postmaster restarts every backend after a crash; the launcher brings the source back
wait_for "SELECT count(*) > 0 FROM iotstream.source_status WHERE source = 'it41' AND state = 'running' AND NOT $pid = ANY(pids)" 60
before=$(q "SELECT count(*) FROM it41.events")
wait_for "SELECT count(*) > $before + 3000 FROM it41.events" 60

# 2. immediate shutdown mid-stream, then a restart: running sources come back
as_pg "$PGBIN/pg_ctl" -D "$CLUSTER_DATA" -m immediate -w stop >/dev/null
echo "immediate shutdown"
as_pg "$PGBIN/pg_ctl" -D "$CLUSTER_DATA" -l "$CLUSTER_DATA/server.log" -w start >/dev/null
wait_for "SELECT state = 'running' FROM iotstream.source_status WHERE source = 'it41'" 60
before=$(q "SELECT count(*) FROM it41.events")
wait_for "SELECT count(*) > $before + 3000 FROM it41.events" 60

# 3. brokers down and up inside the broker process
broker_cmd "down 1"
broker_cmd "down 2"
echo "brokers 1 and 2 down"
wait_for "SELECT last_error ~ 'TRANSPORT|refused' FROM iotstream.source_status WHERE source = 'it41'" 30
echo "status shows: $(q "SELECT last_error FROM iotstream.source_status WHERE source = 'it41'")"
broker_cmd "up 1"
broker_cmd "up 2"
echo "brokers up"

wait "$sim" || fail "the simulator could not deliver every message"
s=$(cat "$W/crash.json")
good=$(json_get "$s" good)
assert_eq "$(json_get "$s" delivered)" "$total" "the simulator delivered every message"
wait_for "SELECT count(*) >= $good FROM it41.events" 120
# a little longer: anything duplicated would arrive now
wait_for "SELECT lag = 0 FROM iotstream.source_status WHERE source = 'it41'" 60
start_ms=$(json_get "$s" start_ms)
assert_eq "$(q "SELECT count(*) FROM it41.events")" "$good" "every event stored"
assert_eq "$(q "SELECT count(DISTINCT (device_id, device_sequence_number)) FROM it41.events")" "$good" "no event stored twice"
assert_eq "$(q "SELECT sum(device_sequence_number + round(value * 100)::bigint
                 + ((extract(epoch FROM created_at) * 1000)::bigint - $start_ms)) FROM it41.events")" \
  "$(json_get "$s" checksum)" "checksum"
assert_eq "$(q "SELECT count(*) FROM iotstream.dead_letters WHERE source = 'it41'")" 0 "no dead letters"
q "SELECT iotstream.drop_source('it41')" >/dev/null
echo "ok"

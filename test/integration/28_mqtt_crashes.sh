#!/usr/bin/env bash
# MQTT exactly once under failures (issue 19), QoS 2, and QoS 1 with a dedup
# key, against mosquitto with persistence:
#  1. kill -9 of the source worker while devices publish,
#  2. an immediate shutdown of Postgres, then a start,
#  3. the broker stopped for 30 s with messages in flight, then started
#     again from its persistence file: source_status shows the outage, the
#     source reconnects, resumes its session and loses nothing.
# Each device publishes its sequence numbers 1..N as bare integers: the
# tables must hold each exactly once (count, distinct count and sum).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

start_mosquitto

psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
SELECT iotstream.drop_source(name) FROM iotstream.sources WHERE name LIKE 'it28%';
DROP SCHEMA IF EXISTS it28 CASCADE;
CREATE SCHEMA it28;
SELECT iotstream.create_stream_table('it28.q2', 'ts timestamptz NOT NULL, dev text NOT NULL, seq int NOT NULL',
  'ts', max_past => '1 day', max_future => '1 day', retention => NULL);
SELECT iotstream.create_stream_table('it28.q1', 'ts timestamptz NOT NULL, dev text NOT NULL, seq int NOT NULL',
  'ts', max_past => '1 day', max_future => '1 day', retention => NULL);
SELECT iotstream.create_mqtt_source('it28_q2', '$MQTT_URL', ARRAY['crash/+'], 'it28.q2',
  '{"ts": "\$timestamp", "dev": "\$topic[1]", "seq": "\$payload"}',
  '{"qos": 2, "batch_size": 200, "batch_ms": 20, "keepalive": 5}');
SELECT iotstream.create_mqtt_source('it28_q1', '$MQTT_URL', ARRAY['crash1/+'], 'it28.q1',
  '{"ts": "\$timestamp", "dev": "\$topic[1]", "seq": "\$payload"}',
  '{"qos": 1, "batch_size": 200, "batch_ms": 20, "keepalive": 5,
    "dedup_key": ["dev", "seq"], "dedup_horizon": "1 hour"}');
SELECT iotstream.start_source('it28_q2');
SELECT iotstream.start_source('it28_q1');
SQL
wait_for "SELECT count(*) = 2 FROM iotstream.source_status WHERE source LIKE 'it28%' AND state = 'running'" 30
# both subscribed (a first connection subscribes after CONNACK)
echo 0 | mqtt_pub crash/probe -q 2
echo 0 | mqtt_pub crash1/probe -q 1
wait_for "SELECT (SELECT count(*) FROM it28.q2) = 1 AND (SELECT count(*) FROM it28.q1) = 1" 30
q "DELETE FROM it28.q2; DELETE FROM it28.q1" >/dev/null

show() {
  q "SELECT 'q2', dev, count(*), count(DISTINCT seq), min(seq), max(seq) FROM it28.q2 GROUP BY dev
     UNION ALL SELECT 'q1', dev, count(*), count(DISTINCT seq), min(seq), max(seq) FROM it28.q1 GROUP BY dev ORDER BY 1, 2" >&2
  q "SELECT source, state, messages, rows, duplicates, dead_letters, last_error FROM iotstream.source_status WHERE source LIKE 'it28%'" >&2
}
until_true() { (wait_for "$@") || { show; exit 1; }; }

# publish FROM..TO to TOPIC at QoS, paced at about 400 messages/s
publish() {
  seq "$1" "$2" | awk '{ print; if (NR % 20 == 0) { fflush(); system("sleep 0.05") } }' | mqtt_pub "$3" -q "$4"
}
N=4000
pubs=()
for d in d1 d2 d3 d4; do publish 1 $N "crash/$d" 2 & pubs+=($!); done
for d in d1 d2; do publish 1 $N "crash1/$d" 1 & pubs+=($!); done

# 1. kill -9 the worker while it stores batches
until_true "SELECT count(*) > 2000 FROM it28.q2" 60
pid=$(q "SELECT pids[1] FROM iotstream.source_status WHERE source = 'it28_q2'")
kill -9 "$pid"
echo "killed worker $pid"
until_true "SELECT count(*) = 2 FROM iotstream.source_status WHERE source LIKE 'it28%' AND state = 'running' AND NOT $pid = ANY(pids)" 60
before=$(q "SELECT count(*) FROM it28.q2")
until_true "SELECT count(*) > $before + 1000 FROM it28.q2" 60

# 2. immediate shutdown mid-stream, then a start: the sources come back
as_pg "$PGBIN/pg_ctl" -D "$CLUSTER_DATA" -m immediate -w stop >/dev/null
echo "immediate shutdown at $before+ rows"
as_pg "$PGBIN/pg_ctl" -D "$CLUSTER_DATA" -l "$CLUSTER_DATA/server.log" -w start >/dev/null
until_true "SELECT count(*) = 2 FROM iotstream.source_status WHERE source LIKE 'it28%' AND state = 'running'" 60
wait "${pubs[@]}"
until_true "SELECT count(*) >= 4 * $N FROM it28.q2" 60
until_true "SELECT count(*) >= 2 * $N FROM it28.q1" 60

check() {
  assert_eq "$(q "SELECT count(*) || ' ' || count(DISTINCT (dev, seq)) || ' ' || sum(seq) FROM it28.q2")" \
    "$((4 * $1)) $((4 * $1)) $((4 * $1 * ($1 + 1) / 2))" "QoS 2 $2: each message once (rows, distinct, sum)"
  assert_eq "$(q "SELECT count(*) || ' ' || count(DISTINCT (dev, seq)) || ' ' || sum(seq) FROM it28.q1")" \
    "$((2 * $1)) $((2 * $1)) $((2 * $1 * ($1 + 1) / 2))" "QoS 1 with a dedup key $2: nothing lost, no duplicate row"
}
# give a late duplicate the time of a few batches to show up
sleep 1
check $N "across kill -9 and an immediate shutdown"
echo "   QoS 1 redeliveries removed by the dedup key so far: $(q "SELECT coalesce(sum(duplicates), 0) FROM iotstream.source_status WHERE source = 'it28_q1'") (since the last start)"

# 3. the broker stops for 30 s while the sources work through a backlog
q "SELECT iotstream.stop_source('it28_q2'), iotstream.stop_source('it28_q1')" >/dev/null
wait_for "SELECT count(*) = 2 FROM iotstream.source_status WHERE source LIKE 'it28%' AND pids IS NULL" 30
M=8000
pubs=()
for d in d1 d2 d3 d4; do seq $((N + 1)) $M | mqtt_pub "crash/$d" -q 2 & pubs+=($!); done
for d in d1 d2; do seq $((N + 1)) $M | mqtt_pub "crash1/$d" -q 1 & pubs+=($!); done
wait "${pubs[@]}"
q "SELECT iotstream.start_source('it28_q2'), iotstream.start_source('it28_q1')" >/dev/null
until_true "SELECT count(*) > 4 * $N FROM it28.q2" 60
echo "broker stopped at $(q "SELECT count(*) FROM it28.q2") rows of $((4 * M))"
outage=0
MQTT_WHILE_DOWN='[ "$(q "SELECT count(*) FROM iotstream.source_status WHERE source LIKE '"'it28%'"' AND state = '"'disconnected'"' AND last_error ~ '"'connect'"'")" = 2 ] && outage=1'
restart_mosquitto 30
MQTT_WHILE_DOWN=
assert_eq "$outage" 1 "source_status showed the outage (state disconnected, last_error)"
echo "   $(q "SELECT last_error FROM iotstream.source_status WHERE source = 'it28_q2'")"
until_true "SELECT count(*) >= 4 * $M FROM it28.q2" 90
until_true "SELECT count(*) >= 2 * $M FROM it28.q1" 90
until_true "SELECT count(*) = 2 FROM iotstream.source_status WHERE source LIKE 'it28%' AND state = 'running'" 30
sleep 1
check $M "across a 30 s broker outage and restart"
assert_eq "$(q "SELECT next_offset FROM iotstream.source_offsets WHERE topic = '\$mqtt/iotstream-it28_q2'")" \
  "$((4 * M + 1))" "the stored message count of it28_q2 (probe included)"
echo "   QoS 2 receiver state rows: $(q "SELECT count(*) FROM iotstream.source_offsets WHERE topic = '\$mqtt/iotstream-it28_q2/qos2'")"

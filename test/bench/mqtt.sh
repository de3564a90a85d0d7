#!/usr/bin/env bash
# MQTT source throughput and latency (issue 19), against what is measured in
# this run on the same mosquitto, with narrow seed-004 telemetry published by
# iotstream-sim on per-measurement topics (bench/<sensor>/<metric>):
#   iotstream  an MQTT source: broker -> decode -> partitions -> commit -> ack
#   peer       mosquitto_sub -v | psql COPY into a staging table, then
#              INSERT ... SELECT into the stream table (what users would build)
#   broker     mosquitto_sub > /dev/null: the broker's own delivery rate, the limit
# at QoS 1 and QoS 2.  Each contender has its own persistent session,
# subscribed before the messages are published: the publication fills the
# backlogs, then each drains its own, alone, in turn.
# The broker setting that decides these rates, max_inflight_messages, is
# set for each as suits it: 65535 for iotstream (as docs/sources.md says;
# at 20, mosquitto's default, every batch would hold 20 messages), and
# PEER_INFLIGHT_Q1 (20) and PEER_INFLIGHT_Q2 (2048) for mosquitto_sub, on a
# second mosquitto: libmosquitto acknowledges on arrival, and mosquitto
# 2.0.11 slows down badly at QoS 2 with tens of thousands in flight.  Then
# produce-to-commit latency at a steady LAT_RATE msg/s: the simulator's
# event times are the times it sends at (--start-time now), the commit time
# is the row's (track_commit_timestamp, which make bench turns on).
#   N=60000 ROUNDS=3 LAT_RATE=5000 LAT_SECONDS=20 test/bench/mqtt.sh  (make bench)
#   ROUNDS=0: latency only; LAT_SECONDS=0: throughput only; QOS_LEVELS=2: one QoS
#
# A backlog stays below 65536 messages a session: mosquitto numbers queued
# messages when it queues them, and a larger backlog reuses packet ids that
# are still in flight, which no receiver can tell from a resend.  N above
# 60000 is refused; ROUNDS repeats the drain instead.
set -euo pipefail
. "$(dirname "$0")/../integration/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

N=${N:-60000}
ROUNDS=${ROUNDS:-3}
LAT_RATE=${LAT_RATE:-5000}
LAT_SECONDS=${LAT_SECONDS:-20}
QOS_LEVELS=${QOS_LEVELS:-1 2}
declare -A PEER_INFLIGHT=([1]=${PEER_INFLIGHT_Q1:-20} [2]=${PEER_INFLIGHT_Q2:-2048})
[ "$N" -le 60000 ] || fail "N=$N: a backlog above 65535 messages makes mosquitto reuse packet ids in flight"

start_mosquitto
DATA=$(mktemp -d /tmp/iotstream-bench-mqtt.XXXXXX)
trap 'rm -rf "$DATA"; _lib_cleanup' EXIT
sub() { mosquitto_sub -h 127.0.0.1 -p "$PEER_PORT" "$@"; }

# The peers' mosquitto: the same as start_mosquitto's, but max_inflight_messages
start_peer_broker() {
  PEER_DIR=$DATA/peer$1
  PEER_PORT=$(free_port)
  mkdir -p "$PEER_DIR" && chmod 777 "$PEER_DIR"
  sed -e "s/^listener .*/listener $PEER_PORT 127.0.0.1/" -e "s/^max_inflight_messages .*/max_inflight_messages $1/" \
      -e "s|^persistence_location .*|persistence_location $PEER_DIR/|" -e "s|^log_dest .*|log_dest file $PEER_DIR/log|" \
      "$MQTT_DIR/mosquitto.conf" >"$PEER_DIR/mosquitto.conf"
  /usr/sbin/mosquitto -c "$PEER_DIR/mosquitto.conf" >"$PEER_DIR/out" 2>&1 &
  PEER_PID=$!
  _lib_record_pid "$PEER_PID"
  for i in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PEER_PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  fail "the peers' mosquitto did not listen"
}

psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
SELECT iotstream.drop_source(name) FROM iotstream.sources WHERE name LIKE 'bench_mqtt%';
DROP SCHEMA IF EXISTS bench_mqtt CASCADE;
CREATE SCHEMA bench_mqtt;
SELECT iotstream.create_stream_table('bench_mqtt.narrow',
  'ts timestamptz NOT NULL, sensor_id text NOT NULL, metric_type text NOT NULL, value float8',
  'ts', max_past => '3650 days', retention => NULL);
SELECT iotstream.ensure_partitions('bench_mqtt.narrow', '2026-11-01', '2026-11-03');
SELECT iotstream.create_stream_table('bench_mqtt.latency',
  'ts timestamptz NOT NULL, sensor_id text NOT NULL, metric_type text NOT NULL, value float8',
  'ts', max_past => '1 day', retention => NULL);
CREATE UNLOGGED TABLE bench_mqtt.staging (topic text, doc jsonb);
SQL

# A source is subscribed once a probe is stored; it has stored every probe
# (none is left in its session) once its count reaches the probes sent.
probe_until_stored() {
  local probes=0 i
  for i in $(seq 1 100); do
    [ "$(q "$stored")" -gt 0 ] && break
    mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q "$1" -t "$2" \
      -m "{\"timestamp\": \"$(date -u +%FT%TZ)\", \"sensor_id\": \"probe\", \"metric_type\": \"probe\", \"value\": 0}"
    probes=$((probes + 1))
    sleep 0.2
  done
  wait_for "SELECT ($stored) >= $probes" 60
}

declare -A ours wall peer limit
for qos in $( [ "$ROUNDS" -gt 0 ] && echo "$QOS_LEVELS"); do
  src=bench_mqtt_q$qos
  stored="SELECT coalesce(max(next_offset), 0) FROM iotstream.source_offsets WHERE topic = '\$mqtt/iotstream-$src'"
  q "SELECT iotstream.create_mqtt_source('$src', '$MQTT_URL', ARRAY['bench/+/+', 'probe/#'], 'bench_mqtt.narrow',
       '{\"ts\": \"timestamp\"}', '{\"qos\": $qos}')" >/dev/null
  # the sessions: the source's (started until a probe is stored), the peer's and the broker's
  q "SELECT iotstream.start_source('$src')" >/dev/null
  wait_for "SELECT state = 'running' FROM iotstream.source_status WHERE source = '$src'" 60
  probe_until_stored "$qos" probe/x
  q "SELECT iotstream.stop_source('$src')" >/dev/null
  wait_for "SELECT coalesce(cardinality(pids), 0) = 0 FROM iotstream.source_status WHERE source = '$src'" 60
  start_peer_broker "${PEER_INFLIGHT[$qos]}"
  sub -c -i "bench-peer-q$qos" -q "$qos" -t 'bench/+/+' -E
  sub -c -i "bench-limit-q$qos" -q "$qos" -t 'bench/+/+' -E

  t_ours=0 n_ours=0 t_wall=0 t_peer=0 t_limit=0
  for round in $(seq 1 "$ROUNDS"); do
    echo "== QoS $qos, round $round: $N messages into the backlogs"
    q "TRUNCATE bench_mqtt.narrow, bench_mqtt.staging"
    for url in "$MQTT_URL" "mqtt://127.0.0.1:$PEER_PORT"; do
      # at QoS 2, mosquitto drops a publisher with more in flight than its maximum
      window=1000
      [ "$url" = "$MQTT_URL" ] || [ "${PEER_INFLIGHT[$qos]}" -ge 1000 ] || window=${PEER_INFLIGHT[$qos]}
      "$IOTSTREAM_SIM" --mqtt "$url" --qos "$qos" --window "$window" --topic 'bench/{device}/{metric}' --format telemetry \
        --count "$N" --devices 1000 --time-step "$(( 172800000 * 1000 / N ))ms" --seed "$round" \
        --start-time 2026-11-01T00:00:00Z --no-per-device >"$DATA/sim.json"
      S=$(cat "$DATA/sim.json")
      assert_eq "$(json_get "$S" delivered) $(json_get "$S" failed)" "$N 0" "the simulator published every message to $url"
    done

    # iotstream: throughput from its first commit to its last (commit
    # timestamps); the wall time from start_source is shown too
    base=$(q "$stored")
    q "CHECKPOINT"
    t0=$(now_ms)
    q "SELECT iotstream.start_source('$src')" >/dev/null
    wait_for "SELECT ($stored) >= $base + $N" 300
    q "SELECT iotstream.stop_source('$src')" >/dev/null
    # the clock stops at the last commit, not at the poll that saw it
    t1=$(q "SELECT (extract(epoch FROM max(pg_xact_commit_timestamp(xmin))) * 1000)::bigint FROM bench_mqtt.narrow")
    assert_eq "$(q "SELECT count(*) || ' ' || sum(round(value * 100)::bigint + ((extract(epoch FROM ts) * 1000)::bigint - $(json_get "$S" start_ms)))
                    FROM bench_mqtt.narrow")" "$N $(json_get "$S" checksum)" "iotstream stored each message once (count, checksum)"
    read -r after_first span_ms <<<"$(q "SELECT count(*) FILTER (WHERE c > f), round(extract(epoch FROM max(c) - min(c)) * 1000)
      FROM (SELECT c, min(c) OVER () AS f FROM (SELECT pg_xact_commit_timestamp(xmin) AS c FROM bench_mqtt.narrow) x) y" | tr '|' ' ')"
    [ "$span_ms" -gt 0 ] || fail "one commit for $N messages: raise N"
    t_ours=$((t_ours + span_ms)) n_ours=$((n_ours + after_first)) t_wall=$((t_wall + t1 - t0))
    wait_for "SELECT coalesce(cardinality(pids), 0) = 0 FROM iotstream.source_status WHERE source = '$src'" 60

    # the peer: mosquitto_sub -v | psql COPY, then INSERT ... SELECT
    q "TRUNCATE bench_mqtt.narrow"
    q "CHECKPOINT"
    t0=$(now_ms)
    sub -c -i "bench-peer-q$qos" -q "$qos" -v -t 'bench/+/+' -C "$N" |
      psql -X -q -v ON_ERROR_STOP=1 -c "COPY bench_mqtt.staging (topic, doc) FROM STDIN (FORMAT text, DELIMITER ' ')"
    q "INSERT INTO bench_mqtt.narrow SELECT (doc->>'timestamp')::timestamptz, doc->>'sensor_id', doc->>'metric_type',
         (doc->>'value')::float8 FROM bench_mqtt.staging"
    t1=$(now_ms)
    t_peer=$((t_peer + t1 - t0))
    assert_eq "$(q "SELECT count(*) FROM bench_mqtt.narrow")" "$N" "the peer stored every message"

    # the broker's delivery rate to a client that does nothing with them
    t0=$(now_ms)
    sub -c -i "bench-limit-q$qos" -q "$qos" -t 'bench/+/+' -C "$N" >/dev/null
    t1=$(now_ms)
    t_limit=$((t_limit + t1 - t0))
    echo "   iotstream $((after_first * 1000 / span_ms)) rows/s (wall $((N * 1000 / (t_wall - ${t_wall_prev:-0})))), peer $((N * 1000 / (t_peer - ${t_peer_prev:-0}))), broker $((N * 1000 / (t_limit - ${t_limit_prev:-0})))"
    t_wall_prev=$t_wall t_peer_prev=$t_peer t_limit_prev=$t_limit
  done
  unset t_wall_prev t_peer_prev t_limit_prev
  kill "$PEER_PID" && wait_gone "$PEER_PID" 100
  ours[$qos]=$((n_ours * 1000 / t_ours))
  wall[$qos]=$((N * ROUNDS * 1000 / t_wall))
  peer[$qos]=$((N * ROUNDS * 1000 / t_peer))
  limit[$qos]=$((N * ROUNDS * 1000 / t_limit))
  q "SELECT iotstream.drop_source('$src')" >/dev/null
done

declare -A p50 p99 pmax lat_n
if [ "$LAT_SECONDS" -gt 0 ]; then
  for qos in $QOS_LEVELS; do
    src=bench_mqtt_lat$qos
    echo "== latency at QoS $qos: $LAT_RATE msg/s for $LAT_SECONDS s (batch_ms 50)"
    q "TRUNCATE bench_mqtt.latency"
    q "SELECT iotstream.create_mqtt_source('$src', '$MQTT_URL', ARRAY['lat/+/+'], 'bench_mqtt.latency',
         '{\"ts\": \"timestamp\"}', '{\"qos\": $qos, \"batch_ms\": 50}')" >/dev/null
    q "SELECT iotstream.start_source('$src')" >/dev/null
    stored="SELECT coalesce(max(next_offset), 0) FROM iotstream.source_offsets WHERE topic = '\$mqtt/iotstream-$src'"
    probe_until_stored "$qos" lat/probe/x
    q "TRUNCATE bench_mqtt.latency"
    q "CHECKPOINT"	# not one started by the throughput runs' writes
    base=$(q "$stored")
    # one reading per sensor per second; event time = the time it is due
    "$IOTSTREAM_SIM" --mqtt "$MQTT_URL" --qos "$qos" --window 1000 --topic 'lat/{device}/{metric}' --format telemetry \
      --rate "$LAT_RATE" --devices "$LAT_RATE" --time-step 1s --duration "$LAT_SECONDS" --start-time now \
      --seed 10 --no-per-device >"$DATA/lat.json"
    lat_n[$qos]=$(json_get "$(cat "$DATA/lat.json")" good)
    wait_for "SELECT ($stored) >= $base + ${lat_n[$qos]}" 60
    assert_eq "$(q "SELECT count(*) FROM bench_mqtt.latency")" "${lat_n[$qos]}" "iotstream stored every latency message"
    read -r p50[$qos] p99[$qos] pmax[$qos] <<<"$(q "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY l)),
        round(percentile_cont(0.99) WITHIN GROUP (ORDER BY l)), round(max(l))
      FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin) - ts) * 1000 AS l FROM bench_mqtt.latency) x" | tr '|' ' ')"
    q "SELECT iotstream.drop_source('$src')" >/dev/null
  done
fi

ratio() { awk "BEGIN {printf \"%.2fx\", $1 / $2}"; }
echo
[ "$ROUNDS" -gt 0 ] && echo "narrow telemetry, $N messages x $ROUNDS rounds a QoS, per-measurement topics" &&
printf '%-5s %12s %14s %12s %12s %9s %10s\n' QoS "iotstream" "(from start)" "peer" "broker" "vs peer" "vs broker"
for qos in $( [ "$ROUNDS" -gt 0 ] && echo "$QOS_LEVELS"); do
  printf '%-5s %12d %14d %12d %12d %9s %10s\n' "$qos" "${ours[$qos]}" "${wall[$qos]}" "${peer[$qos]}" "${limit[$qos]}" \
    "$(ratio "${ours[$qos]}" "${peer[$qos]}")" "$(ratio "${ours[$qos]}" "${limit[$qos]}")"
done
[ "$ROUNDS" -gt 0 ] && echo "(rows/s; iotstream from its first commit to its last, (from start) from start_source; peer:"
[ "$ROUNDS" -gt 0 ] && echo " mosquitto_sub -v | psql COPY + INSERT ... SELECT; broker: mosquitto_sub > /dev/null, with" &&
  echo " max_inflight_messages ${PEER_INFLIGHT[1]} at QoS 1 and ${PEER_INFLIGHT[2]} at QoS 2; iotstream's broker 65535)"
if [ "$LAT_SECONDS" -gt 0 ]; then
  for qos in $QOS_LEVELS; do
    echo "produce-to-commit latency at $LAT_RATE msg/s, QoS $qos, ${lat_n[$qos]} messages: p50 ${p50[$qos]} ms, p99 ${p99[$qos]} ms, max ${pmax[$qos]} ms"
  done
fi

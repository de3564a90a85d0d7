#!/usr/bin/env bash
# The tools the other integration tests stand on: iotstream-broker,
# iotstream-sim and Azurite.  Everything the simulator claims in its summary
# is checked against what kcat reads back from the broker, recomputed in
# PostgreSQL with the SQL documented in tools/README.md.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

W=$IOTSTREAM_WORK/20_tools
mkdir -p "$W"
T0=2026-01-01T00:00:00Z
# scratch tables live in their own schema, dropped at the start and the end
psql_q() {
  PGOPTIONS='-c client_min_messages=warning -c search_path=tools_test' \
    psql -X -A -t -q -v ON_ERROR_STOP=1 "$@"
}
psql_q -c "DROP SCHEMA IF EXISTS tools_test CASCADE; CREATE SCHEMA tools_test"

start_broker --brokers 3 --topic events:8 --topic telemetry:4 --topic ordered:4
echo "broker at $BROKERS"

# --- broker commands --------------------------------------------------------
broker_cmd ping
broker_cmd "create extra 2"
if broker_cmd "down 9" 2>/dev/null; then fail "down 9 (no such broker) was accepted"; fi
if broker_cmd "frobnicate" 2>/dev/null; then fail "an unknown command was accepted"; fi
kcat -b "$BROKERS" -L -t extra -J >"$W/meta.json"
assert_eq "$(json_get "$(cat "$W/meta.json")" topics.0.partitions.length)" 2 \
  "partitions of a topic created by command"

# consume a topic and load its good messages (no "_bad" marker) into a table
# of jsonb; every payload line is kept in $W/<topic>.out
load_topic() {
  local topic=$1 table=$2
  kcat -b "$BROKERS" -C -e -q -o beginning -t "$topic" -f '%s\n' >"$W/$topic.out"
  psql_q -c "DROP TABLE IF EXISTS $table; CREATE TABLE $table (j jsonb)"
  grep -a -v '"_bad"' "$W/$topic.out" |
    psql_q -c "COPY $table FROM STDIN WITH (FORMAT csv, QUOTE e'\x01', DELIMITER e'\x02')"
}

# --- seed-002 events with duplicates and every kind of bad message ---------
S=$("$IOTSTREAM_SIM" --brokers "$BROKERS" --topic events --format event --count 4000 \
  --devices 25 --start-time $T0 --time-step 1s --seed 42 --duplicates 0.01 --bad 0.03)
g() { json_get "$S" "$1"; }
assert_eq "$(g failed)" 0 "events: failed deliveries"
assert_eq "$(g good)" 4000 "events: good messages"
assert_eq "$(g delivered)" "$(( $(g good) + $(g duplicates) + $(g bad) ))" \
  "events: delivered = good + duplicates + bad"
[ "$(g duplicates)" -gt 10 ] || fail "events: too few duplicates: $(g duplicates)"
load_topic events ev
assert_eq "$(wc -l <"$W/events.out")" "$(g produced)" "events: messages read back with kcat"
for kind in not_json truncated wrong_type missing_field bad_time invalid_utf8 nul_byte; do
  n=$(grep -a -c "\"_bad\":\"$kind\"" "$W/events.out" || true)
  [ "$n" -gt 0 ] || fail "events: no bad message of kind $kind"
  assert_eq "$n" "$(g bad_kinds.$kind)" "events: bad messages of kind $kind"
done
assert_eq "$(psql_q -c "SELECT count(*) - count(DISTINCT j->>'eventId') FROM ev")" \
  "$(g duplicates)" "events: duplicates are re-sent eventIds"
# the checksum of tools/README.md, over distinct events
psql_q -c "CREATE VIEW ev_rows AS
  SELECT DISTINCT ON (j->>'eventId')
         j->>'deviceId' AS device_id,
         (j->>'deviceSequenceNumber')::bigint AS device_sequence_number,
         (j->>'value')::float8 AS value,
         (j->>'createdAt')::timestamptz AS created_at
  FROM ev"
assert_eq "$(psql_q -c "SELECT count(*) || ' ' || sum(device_sequence_number
      + round(value * 100)::bigint
      + ((extract(epoch FROM created_at) * 1000)::bigint - $(g start_ms)))
  FROM ev_rows")" "$(g good) $(g checksum)" "events: count and checksum recomputed in SQL"
assert_eq "$(psql_q -c "SELECT jsonb_object_agg(device_id, jsonb_build_array(n, c)) = '$(g per_device)'::jsonb
  FROM (SELECT device_id, count(*) AS n, sum(device_sequence_number + round(value * 100)::bigint
               + ((extract(epoch FROM created_at) * 1000)::bigint - $(g start_ms))) AS c
        FROM ev_rows GROUP BY device_id) d")" t "events: per-device counts and checksums"
assert_eq "$(psql_q -c "SELECT count(*) FROM ev_rows
  WHERE created_at <> '$T0'::timestamptz + device_sequence_number * interval '1 s'
                       + (substr(device_id, 19)::int * 1000 / 25) * interval '1 ms'")" 0 \
  "events: event time = start + seq * step + device * step / devices"

# --- seed-004 telemetry: shuffled, with bursts, checked against an ordered run
BURSTS=(--burst 3,2026-01-01T00:05:20Z --burst 7,2026-01-01T00:12:00Z,8
        --spike 5,2026-01-01T00:20:00Z --level-shift sensor-0009,2026-01-01T00:30:00Z,-20)
S=$("$IOTSTREAM_SIM" --brokers "$BROKERS" --topic telemetry --format telemetry --count 6000 \
  --devices 20 --start-time $T0 --time-step 10s --seed 9 --duplicates 0.01 --bad 0.02 \
  --shuffle 50 "${BURSTS[@]}")
O=$("$IOTSTREAM_SIM" --brokers "$BROKERS" --topic ordered --format telemetry --count 6000 \
  --devices 20 --start-time $T0 --time-step 10s --seed 9 "${BURSTS[@]}")
assert_eq "$(g failed) $(json_get "$O" failed)" "0 0" "telemetry: failed deliveries"
assert_eq "$(g good)" 6014 "telemetry: good messages (6000 + 6 + 8 burst readings)"
assert_eq "$(g checksum)" "$(json_get "$O" checksum)" "telemetry: shuffled and ordered checksums"
load_topic telemetry tel
load_topic ordered ord
assert_eq "$(wc -l <"$W/telemetry.out")" "$(g produced)" "telemetry: messages read back"
assert_eq "$(psql_q -c "SELECT count(*) FROM ((SELECT DISTINCT j FROM tel EXCEPT SELECT j FROM ord)
                          UNION ALL (SELECT j FROM ord EXCEPT SELECT j FROM tel)) x")" 0 \
  "telemetry: shuffled run holds the same distinct messages as the ordered run"
# per sensor (one sensor, one partition), readings older than the one before
backwards() {
  psql_q -c "SELECT count(*) FILTER (WHERE t < prev) FROM (
      SELECT t, lag(t) OVER (PARTITION BY s ORDER BY n) AS prev
      FROM (SELECT j->>'sensor_id' AS s, (j->>'timestamp')::timestamptz AS t,
                   row_number() OVER () AS n FROM $1) r) x"
}
shuffled=$(backwards tel) ordered=$(backwards ord)
[ "$shuffled" -gt 500 ] && [ "$ordered" -le 2 ] ||
  fail "telemetry: $shuffled readings out of order when shuffled, $ordered when ordered"
echo "ok - telemetry: $shuffled readings out of order when shuffled, $ordered when ordered (bursts)"
psql_q -c "CREATE VIEW tel_rows AS SELECT DISTINCT j->>'sensor_id' AS sensor_id,
    (j->>'timestamp')::timestamptz AS ts, j->>'metric_type' AS metric_type,
    (j->>'value')::real AS value FROM tel"
assert_eq "$(psql_q -c "SELECT count(*) || ' ' || sum(round(value::float8 * 100)::bigint
      + ((extract(epoch FROM ts) * 1000)::bigint - $(g start_ms))) FROM tel_rows")" \
  "$(g good) $(g checksum)" "telemetry: count and checksum recomputed in SQL (value as real)"
# seed-004's rule: temperature > 100 more than 5 times in a minute per sensor
assert_eq "$(psql_q -c "SELECT string_agg(sensor_id || '@' || to_char(m, 'HH24:MI') || 'x' || n, ' ' ORDER BY m)
  FROM (SELECT sensor_id, date_trunc('minute', ts) AS m, count(*) AS n FROM tel_rows
        WHERE metric_type = 'temperature' AND value > 100 GROUP BY 1, 2 HAVING count(*) > 5) a")" \
  "sensor-0003@00:05x6 sensor-0007@00:12x8" "telemetry: the seed-004 rule finds exactly the bursts"

assert_eq "$(psql_q -c "SELECT sensor_id || '@' || ts || '=' || value FROM tel_rows WHERE metric_type = 'temperature' AND value > 200")" \
  "sensor-0005@$(psql_q -c "SELECT '$(g spikes.0.time)'::timestamptz")=250" "telemetry: the one spike"
assert_eq "$(psql_q -c "SELECT count(*) FILTER (WHERE ts < '2026-01-01T00:30:00Z' AND value < 40)
    || ' ' || count(*) FILTER (WHERE ts >= '2026-01-01T00:30:00Z' AND value >= 70)
    || ' ' || (count(*) FILTER (WHERE ts >= '2026-01-01T00:30:00Z' AND value < 40) > 10)
  FROM tel_rows WHERE sensor_id = 'sensor-0009' AND metric_type = 'temperature'")" "0 0 true" \
  "telemetry: the level shift moves temperatures from [40, 90) to [20, 70)"

# --- epoch times: the checksum counts the time as written (whole seconds)
broker_cmd "create epoch 2"
S=$("$IOTSTREAM_SIM" --brokers "$BROKERS" --topic epoch --format telemetry --count 500 \
  --devices 7 --start-time $T0 --time-step 250ms --time-format epoch_s --seed 3)
load_topic epoch ep
assert_eq "$(psql_q -c "SELECT count(*) || ' ' || sum(round((j->>'value')::float8 * 100)::bigint
      + (j->>'timestamp')::bigint * 1000 - $(g start_ms)) FROM ep
  WHERE jsonb_typeof(j->'timestamp') = 'number'")" "500 $(g checksum)" \
  "epoch_s: count and checksum recomputed in SQL"

# --- an outage inside the broker: production completes, nothing lost or doubled
# both partitions of "extra" are led by the brokers that go down
broker_cmd "leader extra 0 1"
broker_cmd "leader extra 1 2"
"$IOTSTREAM_SIM" --brokers "$BROKERS" --topic extra --format telemetry --count 4000 \
  --rate 2000 --devices 10 --start-time $T0 --seed 5 >"$W/outage.json" 2>"$W/outage.err" &
sim=$!
broker_cmd "down 1"
broker_cmd "down 2"
sleep 1.5 # the length of the simulated outage, not a wait for a condition
broker_cmd "up 1"
broker_cmd "up 2"
wait $sim || fail "the simulator failed across a broker outage: $(cat "$W/outage.json" "$W/outage.err")"
grep -q 'Connection refused' "$W/outage.err" || fail "the simulator did not see the outage"
S=$(cat "$W/outage.json")
assert_eq "$(g delivered) $(g failed)" "4000 0" "outage: delivered and failed"
assert_eq "$(kcat -b "$BROKERS" -C -e -q -o beginning -t extra -f '%s\n' | sort -u | wc -l)" 4000 \
  "outage: distinct messages in the topic"
assert_eq "$(kcat -b "$BROKERS" -C -e -q -o beginning -t extra -f '%s\n' | wc -l)" 4000 \
  "outage: messages in the topic (no duplicate from retries)"

pid=$BROKER_PID
stop_broker
if kill -0 "$pid" 2>/dev/null; then fail "the broker still runs after stop_broker"; fi
echo "ok - broker stopped"

# --- iotstream-sim --mqtt: per-measurement topics at QoS 0, 1 and 2 -----------
# what a subscriber receives is checked against the summary: the count,
# each topic against its payload, and the checksum recomputed in SQL
start_mosquitto
# mqtt_listen FILE: a subscriber to sim/# writing FILE, once it is subscribed
# (a probe on sim/probe came back); mqtt_received FILE N: wait for N
# messages besides probes, then stop it
mqtt_listen() {
  mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -q 2 -v -t 'sim/#' >"$1" &
  MQTT_SUB=$!
  _lib_record_pid "$MQTT_SUB"
  for i in $(seq 1 100); do
    mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -t sim/probe -m x
    sleep 0.1
    [ -s "$1" ] && return 0
  done
  fail "the subscriber did not subscribe"
}
mqtt_received() {
  for i in $(seq 1 300); do
    [ "$(grep -vc '^sim/probe ' "$1")" -ge "$2" ] && break
    sleep 0.2
  done
  sleep 0.3   # a message more than announced would show now
  kill "$MQTT_SUB"
  wait "$MQTT_SUB" 2>/dev/null || true
  grep -v '^sim/probe ' "$1" >"$1.msgs" || true
}
psql_q -c "CREATE TABLE mqtt_lines (line text)"
for qos in 0 1 2; do
  n=3000
  mqtt_listen "$W/mqtt$qos.txt"
  "$IOTSTREAM_SIM" --mqtt "$MQTT_URL" --qos $qos --topic 'sim/{device}/{metric}' --format telemetry \
    --count $n --devices 7 --metrics temperature,humidity,distance,motion --seed $((qos + 5)) \
    --start-time $T0 --no-per-device >"$W/mqtt$qos.json"
  mqtt_received "$W/mqtt$qos.txt" $n
  S=$(cat "$W/mqtt$qos.json")
  assert_eq "$(g qos) $(g delivered) $(g failed)" "$qos $n 0" "mqtt QoS $qos: summary"
  psql_q -c "TRUNCATE mqtt_lines" -c "\copy mqtt_lines FROM '$W/mqtt$qos.txt.msgs' (FORMAT text)"
  assert_eq "$(psql_q -c "SELECT count(*), count(*) FILTER (WHERE split_part(line, ' ', 1) = 'sim/' || (d->>'sensor_id') || '/' || (d->>'metric_type')),
      sum(round((d->>'value')::float8 * 100)::bigint + ((extract(epoch FROM (d->>'timestamp')::timestamptz) * 1000)::bigint - $(g start_ms)))
      FROM (SELECT line, substr(line, strpos(line, ' ') + 1)::jsonb AS d FROM mqtt_lines) x")" \
    "$n|$n|$(g checksum)" "mqtt QoS $qos: messages, topics and checksum as the summary says"
done
# bare values: the measurement is in the topic, the payload is the value
mqtt_listen "$W/mqttv.txt"
"$IOTSTREAM_SIM" --mqtt "$MQTT_URL" --qos 1 --topic 'sim/{device}/{metric}' --format telemetry --count 40 \
  --devices 2 --metrics distance,motion --payload value --start-time $T0 --no-per-device >"$W/mqttv.json"
mqtt_received "$W/mqttv.txt" 40
S=$(cat "$W/mqttv.json")
assert_eq "$(grep -c '^sim/sensor-000[01]/\(distance\|motion\) [0-9]*\.[0-9][0-9]$' "$W/mqttv.txt.msgs") $(awk '{ s += $2 * 100 } END { printf "%.0f", s }' "$W/mqttv.txt.msgs")" \
  "40 $(g sum_value_x100)" "mqtt --payload value: bare values on their topics, summing as the summary says"
psql_q -c "DROP TABLE mqtt_lines"

# --- Azurite -----------------------------------------------------------------
start_azurite
r=$(azurite_request PUT "/tools-test?restype=container")
assert_eq "$(tail -n 1 <<<"$r")" 201 "azurite: create a container with SharedKey"
head -c 100000 "$W/events.out" >"$W/blob.bin"
r=$(azurite_request PUT /tools-test/a/b.bin "$W/blob.bin")
assert_eq "$(tail -n 1 <<<"$r")" 201 "azurite: put a blob"
azurite_request GET /tools-test/a/b.bin | head -c 100000 >"$W/blob.back"
assert_eq "$(cmp -s "$W/blob.bin" "$W/blob.back" && echo same)" same "azurite: blob read back"
r=$(AZURITE_KEY=$(head -c 64 /dev/zero | base64 -w0) azurite_request GET /tools-test/a/b.bin)
assert_eq "$(tail -n 1 <<<"$r")" 403 "azurite: a wrong key is refused"
port=$AZURITE_PORT
stop_azurite
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then fail "azurite still listens after stop"; fi
echo "ok - azurite stopped"
psql_q -c "DROP SCHEMA tools_test CASCADE"

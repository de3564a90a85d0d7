#!/usr/bin/env bash
# MQTT sources (issue 19), against Debian's mosquitto with persistence:
#  1. topic filters with + and #, topic levels into columns ($topic[n]),
#     JSON and bare-scalar payloads, a corpus of bad payloads in the dead
#     letters, a topic no filter matches, retained messages skipped;
#  2. option checks, a non-superuser refused, the password masked.
# Counts and sums are compared with what was published.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

start_mosquitto

psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
SELECT iotstream.drop_source(name) FROM iotstream.sources WHERE name LIKE 'it27%';
DROP SCHEMA IF EXISTS it27 CASCADE;
CREATE SCHEMA it27;
SELECT iotstream.create_stream_table('it27.readings',
  'ts timestamptz NOT NULL, site text NOT NULL, sensor text NOT NULL, value float8,
   topic text, qos int, retained boolean',
  'ts', max_past => '1 day', max_future => '1 day', retention => NULL);
-- JSON payloads: the measurement is a key, the site and sensor are levels
SELECT iotstream.create_mqtt_source('it27_json', '$MQTT_URL', ARRAY['arduino/+/dht11', 'arduino/+/sonar'],
  'it27.readings',
  '{"ts": "\$timestamp", "site": "\$topic[1]", "sensor": "\$topic[2]", "value": "value",
    "topic": "\$topic", "qos": "\$qos", "retained": "\$retain"}',
  '{"qos": 2, "batch_ms": 50, "retained": "skip"}');
-- bare scalars: the payload is the value
SELECT iotstream.create_mqtt_source('it27_bare', '$MQTT_URL', ARRAY['plant/#'], 'it27.readings',
  '{"ts": "\$timestamp", "site": "\$topic[1]", "sensor": "\$topic[2]", "value": "\$payload",
    "topic": "\$topic", "qos": "\$qos", "retained": "\$retain"}',
  '{"qos": 1, "batch_ms": 50, "password": "hunter2-secret", "username": "iot"}');
SQL
# retained messages, there before the sources subscribe: it27_json skips
# them ("retained": "skip"), it27_bare stores them with \$retain true
echo '{"value": 1000}' | mqtt_pub arduino/old/dht11 -q 1 -r
echo '7' | mqtt_pub plant/kept/temp -q 1 -r
q "SELECT iotstream.start_source('it27_json'), iotstream.start_source('it27_bare')" >/dev/null
wait_for "SELECT count(*) = 2 FROM iotstream.source_status WHERE source LIKE 'it27%' AND state = 'running'" 30
# subscribed: a message published now reaches the source
echo '{"value": 0}' | mqtt_pub arduino/probe/dht11 -q 2
wait_for "SELECT count(*) = 1 FROM it27.readings WHERE site = 'probe'" 30


pubs=()
# 3 sites x 2 sensors x 500 JSON messages; the values sum to a known total
for site in s1 s2 s3; do
  for sensor in dht11 sonar; do
    seq 1 500 | awk '{ printf "{\"value\": %d.5, \"humidity\": 40}\n", $1 }' | mqtt_pub "arduino/$site/$sensor" -q 2 &
    pubs+=($!)
  done
done
# bare scalars at QoS 1, two levels under plant/
seq 1 700 | awk '{ printf "%d.25\n", $1 }' | mqtt_pub plant/p1/temp -q 1 &
pubs+=($!)
seq 1 300 | mqtt_pub plant/p2/pressure/raw -q 1 &
pubs+=($!)
# not matched by any filter
seq 1 50 | awk '{ printf "{\"value\": 1}\n" }' | mqtt_pub arduino/s1/pir -q 2 &
pubs+=($!)
wait "${pubs[@]}"

# bad payloads: one message each (mosquitto_pub -m, -n for an empty one)
bad() { mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t plant/bad/x "$@"; }
bad -m 'abc'
bad -m '{"value": 1}'
bad -m '[1, 2]'
bad -n
bad -m '12 13'
bad -m 'true'

show() {
  q "SELECT topic, count(*), sum(value) FROM it27.readings GROUP BY 1 ORDER BY 1" >&2
  q "SELECT source, state, messages, rows, dead_letters, last_error FROM iotstream.source_status" >&2
}
# waits, and shows what was stored if it times out
until_stored() { (wait_for "$@") || { show; exit 1; }; }
json_total=$((3 * 2 * 500))
bare_total=$((700 + 300))
until_stored "SELECT count(*) = $json_total + 1 FROM it27.readings WHERE topic LIKE 'arduino/%'" 60
until_stored "SELECT count(*) = $bare_total + 1 FROM it27.readings WHERE topic LIKE 'plant/%'" 60
until_stored "SELECT count(*) = 6 FROM iotstream.dead_letters WHERE source = 'it27_bare'" 60

assert_eq "$(q "SELECT count(*) FROM it27.readings WHERE site IN ('s1','s2','s3')")" "$json_total" "JSON messages stored once"
assert_eq "$(q "SELECT sum(value) FROM it27.readings WHERE site IN ('s1','s2','s3')")" \
  "$((6 * (500 * 501 / 2) + 6 * 250))" "JSON values sum"
assert_eq "$(q "SELECT string_agg(site || '/' || sensor || '=' || n, ' ' ORDER BY site, sensor)
                  FROM (SELECT site, sensor, count(*) n FROM it27.readings WHERE site LIKE 's_' GROUP BY 1, 2) x")" \
  "s1/dht11=500 s1/sonar=500 s2/dht11=500 s2/sonar=500 s3/dht11=500 s3/sonar=500" "topic levels into site and sensor"
assert_eq "$(q "SELECT count(*) FROM it27.readings WHERE sensor = 'pir' OR site = 'old'")" 0 \
  "no unmatched topic, no retained message (retained: skip)"
assert_eq "$(q "SELECT value || ' ' || retained FROM it27.readings WHERE site = 'kept'")" "7 true" \
  "a retained message stored (retained: store)"
assert_eq "$(q "SELECT string_agg(DISTINCT qos || ':' || retained, ',') FROM it27.readings WHERE site LIKE 's_'")" \
  "2:false" "\$qos and \$retain"
assert_eq "$(q "SELECT count(*) || ' ' || sum(value) FROM it27.readings WHERE topic = 'plant/p1/temp'")" \
  "700 $((700 * 701 / 2 + 700 / 4))" "bare scalars: count and sum"
assert_eq "$(q "SELECT count(*) || ' ' || sum(value) || ' ' || min(sensor) FROM it27.readings WHERE topic = 'plant/p2/pressure/raw'")" \
  "300 $((300 * 301 / 2)) pressure" "bare integers under #, level 2 of four"
q "SELECT coalesce(convert_from(payload, 'UTF8'), '(none)') || ' => ' || reason FROM iotstream.dead_letters WHERE source = 'it27_bare' ORDER BY id" | sed 's/^/   /'

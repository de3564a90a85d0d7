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

# TLS: a CA and a certificate for localhost, made here; a second listener
TLS_DIR=$IOTSTREAM_WORK/tls
mkdir -p "$TLS_DIR"
(
  cd "$TLS_DIR"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=it27-ca -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=it27-other -keyout other.key -out other.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=DNS:localhost\n' >san.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.crt 2>/dev/null
)
chmod 755 "$TLS_DIR" && chmod 644 "$TLS_DIR"/*
TLS_PORT=$(free_port)
start_mosquitto "listener $TLS_PORT 127.0.0.1" "cafile $TLS_DIR/ca.crt" "certfile $TLS_DIR/server.crt" "keyfile $TLS_DIR/server.key"

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
assert_eq "$(q "SELECT string_agg(convert_from(payload, 'UTF8') || ' => ' || reason, ' | ' ORDER BY id)
                  FROM iotstream.dead_letters WHERE source = 'it27_bare'")" \
  'abc => invalid JSON: unexpected character at byte 0 | {"value": 1} => column "value": expected a number, got an object | [1, 2] => column "value": expected a number, got an array |  => invalid JSON: unexpected end of input at byte 0 | 12 13 => invalid JSON: garbage after the value at byte 3 | true => column "value": expected a number, got true' \
  "bad payloads in the dead letters, with their reasons"

# --- options, privileges, secrets
err() { psql -X -q -At -c "$1" 2>&1 | sed -n 's/^ERROR:  //p' | head -1; }
assert_eq "$(err "SELECT iotstream.create_mqtt_source('it27_x', 'http://h:1', ARRAY['a'], 'it27.readings')")" \
  "invalid MQTT broker 'http://h:1'" "a broker that is not mqtt:// or mqtts://"
assert_eq "$(err "SELECT iotstream.create_mqtt_source('it27_x', '$MQTT_URL', ARRAY['a/b+'], 'it27.readings')")" \
  "invalid MQTT topic filter 'a/b+'" "+ inside a level"
assert_eq "$(err "SELECT iotstream.create_mqtt_source('it27_x', '$MQTT_URL', ARRAY['a/#/b'], 'it27.readings')")" \
  "invalid MQTT topic filter 'a/#/b'" "# before the last level"
assert_eq "$(err "SELECT iotstream.create_mqtt_source('it27_x', '$MQTT_URL', ARRAY['a'], 'it27.readings', NULL, '{\"qos\": 0}')")" \
  "option qos must be 1 or 2, not 0" "qos 0"
assert_eq "$(err "SELECT iotstream.create_mqtt_source('it27_x', '$MQTT_URL', ARRAY['a'], 'it27.readings', NULL, '{\"workers\": 2}')")" \
  "several workers need MQTT 5" "workers without MQTT 5"
assert_eq "$(err "SELECT iotstream.create_mqtt_source('it27_x', '$MQTT_URL', ARRAY['a'], 'it27.readings', NULL, '{\"group.id\": \"g\"}')")" \
  "option group.id is managed by iotstream" "a librdkafka property"
assert_eq "$(err "SELECT iotstream.create_mqtt_source('it27_x', '$MQTT_URL', ARRAY['a'], 'it27.readings', NULL, '{\"client.id\": \"g\"}')")" \
  "unknown MQTT source option 'client.id'" "an unknown option"
assert_eq "$(err "SELECT iotstream.create_mqtt_source('it27_x', '$MQTT_URL', ARRAY['a'], 'it27.readings', '{\"site\": \"\$topic[x]\"}')")" \
  'invalid topic level "$topic[x]" for column "site"' "a bad topic level"
psql -X -q -c "SET client_min_messages = warning; DROP ROLE IF EXISTS it27_user; CREATE ROLE it27_user LOGIN; GRANT USAGE ON SCHEMA it27 TO it27_user" >/dev/null
assert_eq "$(psql -X -q -At -U it27_user -c "SELECT iotstream.create_mqtt_source('it27_x', '$MQTT_URL', ARRAY['a'], 'it27.readings')" 2>&1 | sed -n 's/^ERROR:  //p')" \
  "permission denied to create a source" "a non-superuser cannot create an MQTT source"
assert_eq "$(q "SELECT value FROM iotstream.source_config('it27_bare') WHERE property = 'password'")" "********" \
  "the password is masked in source_config"
assert_eq "$(q "SELECT count(*) FROM iotstream.sources WHERE options::text LIKE '%hunter2%'")" 0 "the password is not in iotstream.sources"
assert_eq "$(grep -c hunter2 "$CLUSTER_DATA/server.log" || true)" 0 "the password is not in the server log"

# alter_source runs create_mqtt_source's checks (on it27_bare: MQTT 3.1.1,
# qos 1); a refused change leaves the source as it was
alter_err() {
  psql -X -q -At -v VERBOSITY=verbose -c "SELECT iotstream.alter_source('it27_bare', $1)" 2>&1 |
    sed -n 's/^ERROR:  \([0-9A-Z]*\): /\1 /p; s/^HINT:  /hint: /p' | paste -sd '|'
}
assert_eq "$(alter_err "brokers => 'http://h:1'")" \
  "22023 invalid MQTT broker 'http://h:1'|hint: Pass mqtt://host:1883, or mqtts://host:8883 for TLS." "alter: a bad broker"
assert_eq "$(alter_err "topics => ARRAY['a/#/b']")" \
  "22023 invalid MQTT topic filter 'a/#/b'|hint: + stands for one whole level (a/+/c) and # for all remaining levels, last (a/#)." \
  "alter: a bad topic filter"
assert_eq "$(alter_err "topics => ARRAY['\$share/g/plant/#']")" \
  "22023 the shared subscription '\$share/g/plant/#' needs MQTT 5|hint: Add \"protocol\": \"5\" to the options; with \"workers\" above 1 the filters are shared for you." \
  "alter: a shared subscription on MQTT 3.1.1"
assert_eq "$(alter_err "options => '{\"qos\": 3}'")" \
  "22023 option qos must be 1 or 2, not 3|hint: QoS 2 stores each message exactly once; QoS 1 at least once (set a dedup_key to drop redeliveries)." \
  "alter: qos 3"
assert_eq "$(alter_err "options => '{\"workers\": 2}'")" \
  "22023 several workers need MQTT 5|hint: Add \"protocol\": \"5\" to the options, or use one worker." "alter: workers on MQTT 3.1.1"
assert_eq "$(alter_err "options => '{\"client.id\": \"x\"}'" | cut -d'|' -f1)" \
  "22023 unknown MQTT source option 'client.id'" "alter: a librdkafka-style option"
assert_eq "$(alter_err "options => '{\"retained\": \"keep\"}'" | cut -d'|' -f1)" \
  "22023 option retained must be \"store\" or \"skip\", not \"keep\"" "alter: retained"
assert_eq "$(alter_err "options => '{\"topic_template\": \"plant/{site\"}'" | cut -d'|' -f1)" \
  "22023 invalid level '{site' of topic_template 'plant/{site'" "alter: a bad topic_template"
assert_eq "$(alter_err "options => '{\"password\": \"\"}'" | cut -d'|' -f1)" \
  "22023 option password must be a non-empty string" "alter: an empty password"
assert_eq "$(q "SELECT brokers || ' ' || topics::text || ' ' || (options->>'qos') || ' ' || (options ? 'workers') FROM iotstream.sources WHERE name = 'it27_bare'")" \
  "$MQTT_URL {plant/#} 1 false" "refused alters changed nothing"
# the options as a whole: workers with MQTT 5 given at once is accepted
q "SELECT iotstream.alter_source('it27_bare', options => '{\"protocol\": \"5\", \"workers\": 1, \"batch_ms\": 60}')" >/dev/null
assert_eq "$(alter_err "options => '{\"protocol\": \"3.1.1\", \"workers\": 2}'" | cut -d'|' -f1)" \
  "22023 several workers need MQTT 5" "alter: the merged options are checked (workers 2 with protocol 3.1.1)"
assert_eq "$(q "SELECT (options->>'protocol') || ' ' || (options->>'batch_ms') FROM iotstream.sources WHERE name = 'it27_bare'")" \
  "5 60" "alter: accepted MQTT options are stored"

# --- MQTT 5: two workers on a shared subscription; user properties as $headers
psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
SELECT iotstream.create_stream_table('it27.fleet', 'ts timestamptz NOT NULL, dev text NOT NULL, seq int NOT NULL, headers jsonb',
  'ts', max_past => '1 day', max_future => '1 day', retention => NULL);
SELECT iotstream.create_mqtt_source('it27_shared', '$MQTT_URL', ARRAY['fleet/+/seq'], 'it27.fleet',
  '{"ts": "\$timestamp", "dev": "\$topic[1]", "seq": "\$payload", "headers": "\$headers"}',
  '{"protocol": "5", "workers": 2, "qos": 2, "batch_ms": 50}');
SELECT iotstream.start_source('it27_shared');
SQL
wait_for "SELECT cardinality(pids) = 2 AND state = 'running' FROM iotstream.source_status WHERE source = 'it27_shared'" 30
# both workers subscribed: probes until each stored one (round robin between them)
for i in $(seq 1 50); do
  [ "$(q "SELECT count(DISTINCT topic) FROM iotstream.source_offsets WHERE topic LIKE '\$mqtt/iotstream-it27_shared-_' AND next_offset > 0")" = 2 ] && break
  echo 0 | mqtt_pub fleet/probe/seq -q 2 -V mqttv5
  sleep 0.2
done
q "DELETE FROM it27.fleet" >/dev/null
pubs=()
for d in f1 f2 f3 f4; do
  seq 1 2000 | mqtt_pub "fleet/$d/seq" -q 2 -V mqttv5 -D publish user-property src "$d" &
  pubs+=($!)
done
wait "${pubs[@]}"
until_stored "SELECT count(*) >= 8000 FROM it27.fleet" 60
assert_eq "$(q "SELECT count(*) || ' ' || count(DISTINCT (dev, seq)) || ' ' || sum(seq) FROM it27.fleet")" \
  "8000 8000 $((4 * 2000 * 2001 / 2))" "a shared subscription: each message once"
assert_eq "$(q "SELECT count(*) FROM it27.fleet WHERE headers->>'src' = dev")" 8000 "MQTT 5 user properties as \$headers"
assert_eq "$(q "SELECT count(*) FROM iotstream.source_offsets WHERE topic LIKE '\$mqtt/iotstream-it27_shared-_' AND next_offset > 100")" \
  2 "both workers stored messages"

# --- TLS: mqtts:// with the test's CA; with another CA the handshake fails
psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
SELECT iotstream.create_mqtt_source('it27_tls', 'mqtts://localhost:$TLS_PORT', ARRAY['secure/+'], 'it27.fleet',
  '{"ts": "\$timestamp", "dev": "\$topic[1]", "seq": "\$payload", "headers": null}',
  '{"tls_ca": "$TLS_DIR/ca.crt", "batch_ms": 50}');
SELECT iotstream.create_mqtt_source('it27_tls_bad', 'mqtts://localhost:$TLS_PORT', ARRAY['secure/+'], 'it27.fleet',
  '{"ts": "\$timestamp", "dev": "\$topic[1]", "seq": "\$payload", "headers": null}',
  '{"tls_ca": "$TLS_DIR/other.crt", "client_id": "it27-bad"}');
SELECT iotstream.start_source('it27_tls'), iotstream.start_source('it27_tls_bad');
SQL
wait_for "SELECT state = 'running' FROM iotstream.source_status WHERE source = 'it27_tls'" 30
for i in $(seq 1 50); do
  [ "$(q "SELECT count(*) FROM it27.fleet WHERE dev = 'probe'")" -gt 0 ] && break
  echo 0 | mqtt_pub secure/probe -q 2
  sleep 0.2
done
seq 1 500 | mqtt_pub secure/t1 -q 2
until_stored "SELECT count(*) = 500 FROM it27.fleet WHERE dev = 't1'" 30
assert_eq "$(q "SELECT sum(seq) FROM it27.fleet WHERE dev = 't1'")" 125250 "mqtts:// with tls_ca: every message"
wait_for "SELECT last_error ~ 'certificate verify failed' FROM iotstream.source_status WHERE source = 'it27_tls_bad'" 30
assert_eq "$(q "SELECT state || ': ' || last_error FROM iotstream.source_status WHERE source = 'it27_tls_bad'")" \
  "disconnected: TLS handshake with the broker failed: certificate verify failed: self-signed certificate in certificate chain" \
  "a broker certificate from another CA is refused"

# --- a topic template: {site} and {sensor} levels into columns, and the filter
q "SELECT iotstream.create_mqtt_source('it27_tmpl', '$MQTT_URL', NULL, 'it27.readings',
     '{\"ts\": \"\$timestamp\", \"value\": \"\$payload\", \"topic\": null, \"qos\": null, \"retained\": null}',
     '{\"topic_template\": \"farm/{site}/{sensor}\", \"qos\": 1, \"batch_ms\": 50}')" >/dev/null
assert_eq "$(q "SELECT topics::text || ' ' || (mapping->>'site') || ' ' || (mapping->>'sensor') FROM iotstream.sources
                 WHERE name = 'it27_tmpl'")" '{farm/+/+} $topic[1] $topic[2]' "topic_template: the filter and the mapping it makes"
q "SELECT iotstream.start_source('it27_tmpl')" >/dev/null
wait_for "SELECT state = 'running' FROM iotstream.source_status WHERE source = 'it27_tmpl'" 30
for i in $(seq 1 50); do
  [ "$(q "SELECT count(*) FROM it27.readings WHERE site = 'probe-t'")" -gt 0 ] && break
  echo 0 | mqtt_pub farm/probe-t/x -q 1
  sleep 0.2
done
seq 1 200 | mqtt_pub farm/f1/soil -q 1
seq 1 100 | mqtt_pub farm/f2/air -q 1
until_stored "SELECT count(*) = 300 FROM it27.readings WHERE site IN ('f1', 'f2')" 30
assert_eq "$(q "SELECT string_agg(site || '/' || sensor || ':' || count || ':' || sum, ' ' ORDER BY site)
                 FROM (SELECT site, sensor, count(*), sum(value) FROM it27.readings WHERE site IN ('f1', 'f2')
                        GROUP BY 1, 2) x")" "f1/soil:200:20100 f2/air:100:5050" "topic_template: levels into columns"
if q "SELECT iotstream.create_mqtt_source('it27_tmpl_bad', '$MQTT_URL', NULL, 'it27.readings', NULL,
        '{\"topic_template\": \"farm/{site}/x{sensor}\"}')" 2>"$IOTSTREAM_WORK/tmpl.err"; then
  fail "a template level that is not a whole {column} was accepted"
fi
grep -q "invalid level 'x{sensor}'" "$IOTSTREAM_WORK/tmpl.err" || fail "unexpected error: $(cat "$IOTSTREAM_WORK/tmpl.err")"
echo "ok - topic_template: a level that is not a whole {column} is refused"
# alter: a new template swaps its levels in the mapping, and the filter made from the old one
q "SELECT iotstream.alter_source('it27_tmpl', options => '{\"topic_template\": \"farm2/{sensor}/{site}\"}')" >/dev/null
assert_eq "$(q "SELECT topics::text || ' ' || (mapping->>'site') || ' ' || (mapping->>'sensor') || ' ' || (mapping->>'value')
                 FROM iotstream.sources WHERE name = 'it27_tmpl'")" '{farm2/+/+} $topic[2] $topic[1] $payload' \
  "alter: a new topic_template, its filter and its mapping"
assert_eq "$(psql -X -q -At -c "SELECT iotstream.alter_source('it27_tmpl', options => '{\"topic_template\": \"farm2/{nosuch}/x\"}')" 2>&1 |
             sed -n 's/^ERROR:  //p')" 'mapping names column "nosuch", which table "readings" does not have' "alter: a template level naming no column"
q "SELECT iotstream.drop_source('it27_tmpl')" >/dev/null

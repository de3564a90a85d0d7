#!/usr/bin/env bash
# make demo / make demo-stop: the pipeline on this machine, kept running.
#   tools/demo.sh start   install what is missing; start a cluster, the local
#                         broker and the simulator; a source feeds the stream
#                         table `telemetry`; detection queries to try; sealed
#                         hours exported as Parquet to a local lake folder;
#                         an MQTT path: mosquitto, simulated Arduino sensors
#                         on per-measurement topics, an MQTT source, a rule
#   tools/demo.sh stop    stop all of it
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=$(pwd)/.tmp/demo
. tools/cluster.sh

# Stops the process of a pid file and waits until it is gone: the simulator
# delivers what it has queued before it exits, so the broker must outlive it
# (stopped with the broker already gone, it would wait out --flush-timeout).
stop_pidfile() {
  local f=$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill "$pid" 2>/dev/null && ! wait_gone "$pid" 150; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

case "${1:-start}" in
stop)
  stop_pidfile "$DEMO/sim.pid"
  stop_pidfile "$DEMO/sim_mqtt.pid"
  stop_pidfile "$DEMO/broker.pid"
  stop_pidfile "$DEMO/mosquitto.pid"
  cluster_stop "$DEMO/cluster"
  echo "demo stopped"
  exit 0
  ;;
start) ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac

tools/install-deps.sh --no-npm
mkdir -p "$DEMO"
# the demo's data is throwaway: a cluster built with another version of the
# extension (there are no upgrade scripts before the first release) starts over
script_sum=$(cat sql/iotstream--*.sql | md5sum | cut -d' ' -f1)
if [ -e "$DEMO/cluster/env" ] && . "$DEMO/cluster/env" && psql -X -q -c 'SELECT 1' >/dev/null 2>&1 &&
   [ "$(cat "$DEMO/extension.md5" 2>/dev/null)" = "$script_sum" ]; then
  echo "== the demo cluster is already running"
else
  stop_pidfile "$DEMO/sim.pid"
  cluster_stop "$DEMO/cluster" 2>/dev/null || true
  rm -rf "$DEMO/cluster"
  cluster_start "$DEMO/cluster" iotstream
  echo "$script_sum" >"$DEMO/extension.md5"
fi

if [ -f "$DEMO/broker.pid" ] && kill -0 "$(cat "$DEMO/broker.pid")" 2>/dev/null; then
  echo "== the broker is already running"
else
  echo "== starting the local broker (librdkafka's mock cluster: in memory, ~5 MiB per partition)"
  rm -f "$DEMO/brokers"
  nohup tools/bin/iotstream-broker --no-stdin --topic telemetry:4 --bootstrap-file "$DEMO/brokers" \
    >"$DEMO/broker.log" 2>&1 &
  echo $! >"$DEMO/broker.pid"
  for _ in $(seq 1 50); do [ -s "$DEMO/brokers" ] && break; sleep 0.1; done
fi
BROKERS=$(cat "$DEMO/brokers")

echo "== stream table telemetry, source demo (seed-004 sensor readings)"
psql -X -q -v ON_ERROR_STOP=1 <<SQL
SET client_min_messages = warning;
SELECT iotstream.create_stream_table('telemetry',
    'ts timestamptz NOT NULL, sensor_id text NOT NULL, metric_type text NOT NULL, value float8 NOT NULL',
    'ts', partition_interval => '1 hour', premake => 3, retention => '7 days')
 WHERE to_regclass('telemetry') IS NULL;
SELECT iotstream.schedule_maintenance('*/10 * * * *');
SELECT iotstream.drop_source('demo') FROM iotstream.sources WHERE name = 'demo';
SELECT iotstream.create_source('demo', '$BROKERS', ARRAY['telemetry'], 'telemetry',
    '{"ts": "timestamp"}', '{"batch_ms": 100}');
-- the seed-004 rule and a 1-minute rollup, evaluated as the rows arrive
SELECT iotstream.drop_rule(name) FROM iotstream.rules WHERE name = 'overheat';
SELECT iotstream.drop_rollup(name) FROM iotstream.rollups WHERE name = 'telemetry_1m';
SELECT iotstream.create_rule('overheat', 'telemetry', 'value', ARRAY['sensor_id'], 'threshold_count',
    '{"threshold": 100, "min_count": 5}', filter => 'metric_type = ''temperature''',
    lateness => '30 seconds', severity => 'critical');
SELECT iotstream.create_rollup('telemetry_1m', 'telemetry', ARRAY['sensor_id', 'metric_type'], ARRAY['value'],
    bucket => '1 minute', lateness => '5 minutes');
SELECT iotstream.start_source('demo');
SQL

stop_pidfile "$DEMO/sim.pid"
start=$(date -u -d '-6 hours' +%Y-%m-%dT%H:%M:00Z)
burst=$(date -u -d '-2 hours' +%Y-%m-%dT%H:%M:00Z)
echo "== simulator: six hours of history from 20 sensors, with a threshold burst at $burst"
tools/bin/iotstream-sim --brokers "$BROKERS" --topic telemetry --format telemetry --devices 20 \
  --count 7200 --time-step 60s --start-time "$start" --burst "3,$burst" --bad 0.005 \
  --no-per-device >"$DEMO/backfill.json"
live_burst=$(date -u -d '+2 minutes' +%Y-%m-%dT%H:%M:00Z)
echo "== simulator: a live stream of 20 sensors at 40 msg/s, a burst at $live_burst (stops with make demo-stop)"
nohup tools/bin/iotstream-sim --brokers "$BROKERS" --topic telemetry --format telemetry --devices 20 \
  --rate 40 --duration 86400 --time-step 500ms --seed 7 --burst "5,$live_burst" \
  --no-per-device >"$DEMO/sim.log" 2>&1 &
echo $! >"$DEMO/sim.pid"

for _ in $(seq 1 100); do
  [ "$(psql -X -At -c "SELECT count(*) >= 7200 FROM telemetry")" = t ] && break
  sleep 0.2
done
psql -X -c "SELECT source, state, lag, round(messages_per_sec) AS msg_per_s, messages, rows, dead_letters FROM iotstream.source_status"
psql -X -c "SELECT stream_table, partition_interval, retention, partitions, oldest_partition, newest_partition, total_size FROM iotstream.stream_tables"
echo "== the seed-004 rule 'overheat': windows with at least 5 temperatures above 100, found as the rows arrived"
for _ in $(seq 1 100); do
  [ "$(psql -X -At -c "SELECT count(*) > 0 FROM iotstream.anomalies WHERE rule = 'overheat'")" = t ] && break
  sleep 0.2
done
psql -X -c "SELECT id, key->>'sensor_id' AS sensor, window_start, value AS above, detected_at FROM iotstream.anomalies
             WHERE rule = 'overheat' ORDER BY id"
psql -X -c "SELECT rule, watermark, evaluated_until, windows_evaluated, anomalies, late_rows FROM iotstream.rule_status"

# the server writes the lake: below a project the postgres user cannot
# reach (under /root, say) it goes to /tmp instead
LAKE=$DEMO/lake
mkdir -p "$LAKE"
chown postgres: "$LAKE" 2>/dev/null || chmod 777 "$LAKE"
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -w "$LAKE"; then
  LAKE=/tmp/iotstream-demo-lake
  mkdir -p "$LAKE" && chown postgres: "$LAKE"
fi
echo "== export: sealed hours of telemetry as Parquet in $LAKE (pg_cron runs it every 5 minutes)"
psql -X -q -v ON_ERROR_STOP=1 <<SQL
SET client_min_messages = warning;
SELECT iotstream.drop_export(name) FROM iotstream.exports WHERE name IN ('demo_lake', 'demo_azurite');
SELECT iotstream.create_export('demo_lake', 'telemetry', 'file://$LAKE', lateness => '5 minutes');
SQL
# AZURITE_BLOB_URL=http://127.0.0.1:10000/devstoreaccount1 (a running Azurite
# with a container "lake") adds an export there, signed with its well-known key
if [ -n "${AZURITE_BLOB_URL:-}" ] && curl -s -o /dev/null "$AZURITE_BLOB_URL?comp=list"; then
  psql -X -q -v ON_ERROR_STOP=1 <<SQL
SET client_min_messages = warning;
DELETE FROM iotstream.storage_credentials WHERE name = 'demo_azurite';
SELECT iotstream.create_storage_credential('demo_azurite', 'shared_key', account => 'devstoreaccount1',
    key => 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==');
SELECT iotstream.create_export('demo_azurite', 'telemetry', '$AZURITE_BLOB_URL/lake/demo', lateness => '5 minutes',
    credential => 'demo_azurite');
SQL
  psql -X -c "SELECT period_start, files, rows, status FROM iotstream.run_export('demo_azurite') WHERE rows > 0"
fi
psql -X -c "SELECT period_start, files, rows, bytes, status FROM iotstream.run_export('demo_lake') WHERE rows > 0"
psql -X -c "SELECT export, period_start, version, rows, bytes, status, cardinality(files) AS files FROM iotstream.export_log WHERE rows > 0 ORDER BY export, period_start"
find "$LAKE" -name '*.parquet' | sort | head -8

# Event Hubs Capture files (issue 20): a file source reads the Avro files
# dropped under $LAKE/capture, laid out as Capture lays them out; avsc (the
# npm package make test installs in test/node) writes them
CAPTURE=$LAKE/capture
mkdir -p "$CAPTURE" && chmod 755 "$CAPTURE"
echo "== file source demo_capture: Event Hubs Capture files dropped into $CAPTURE"
psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
SELECT iotstream.drop_source(name) FROM iotstream.sources WHERE name = 'demo_capture';
SELECT iotstream.create_stream_table('capture_events',
    'ts timestamptz NOT NULL, device_id text NOT NULL, value float8, meta jsonb',
    'ts', partition_interval => '1 day', max_past => '3650 days', retention => NULL)
  WHERE to_regclass('capture_events') IS NULL;
SELECT iotstream.create_file_source('demo_capture', 'file://$CAPTURE', 'capture_events', 'avro',
    '{"meta": "\$headers"}', '{"pattern": "**/*.avro", "poll_ms": 200}');
SELECT iotstream.start_source('demo_capture');
SQL
if [ -d test/node/node_modules/avsc ] && command -v node >/dev/null; then
  for part in 0 1; do
    f=$CAPTURE/demo-ns/telemetry/$part/$(date -u +%Y/%m/%d/%H/%M/%S).avro
    mkdir -p "$(dirname "$f")" && chmod -R 755 "$CAPTURE/demo-ns"
    node test/integration/capture_gen.cjs "$f.tmp" $((part * 1000 + 1)) 1000 65536 deflate
    chmod 644 "$f.tmp" && mv "$f.tmp" "$f"
  done
  for i in $(seq 1 100); do
    [ "$(psql -X -At -c "SELECT count(*) FILTER (WHERE state = 'done') FROM iotstream.source_files f
                          JOIN iotstream.sources s USING (source_id) WHERE s.name = 'demo_capture'")" = 2 ] && break
    sleep 0.2
  done
  psql -X -c "SELECT path, rows, state FROM iotstream.source_files f JOIN iotstream.sources s USING (source_id)
              WHERE s.name = 'demo_capture' ORDER BY path" \
       -c "SELECT count(*) AS events, count(DISTINCT device_id) AS devices, min(meta->>'SequenceNumber') AS first_seq,
                  max((meta->>'SequenceNumber')::bigint) AS last_seq FROM capture_events"
else
  echo "   (run make test once to install avsc, then make demo again to drop Capture files here)"
fi

# MQTT (issue 19): simulated Arduino sensors (seed 003: a DHT11 for
# temperature and humidity, a sonar, a PIR) publish one topic per
# measurement, arduino/<device>/<measurement>, to Debian's mosquitto; an
# MQTT source at QoS 2 stores them, its topic template filling the device
# and measurement columns
# each make demo starts the MQTT part over: a fresh broker, table and source
stop_pidfile "$DEMO/sim_mqtt.pid"
stop_pidfile "$DEMO/mosquitto.pid"
MQTT_DIR=$DEMO/mosquitto
rm -rf "$MQTT_DIR"
mkdir -p "$MQTT_DIR" && chmod 777 "$MQTT_DIR"
echo "== starting mosquitto (persistence in $MQTT_DIR)"
MQTT_PORT=$(free_port)
cat >"$MQTT_DIR/mosquitto.conf" <<CONF
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
persistence true
persistence_location $MQTT_DIR/
max_inflight_messages 65535
max_queued_messages 0
log_dest file $MQTT_DIR/log
CONF
touch "$MQTT_DIR/log" && chmod 666 "$MQTT_DIR/log"
nohup /usr/sbin/mosquitto -c "$MQTT_DIR/mosquitto.conf" >"$MQTT_DIR/out" 2>&1 &
echo $! >"$DEMO/mosquitto.pid"
echo "$MQTT_PORT" >"$DEMO/mosquitto.port"
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT") 2>/dev/null && break; sleep 0.1; done
MQTT_URL=mqtt://127.0.0.1:$(cat "$DEMO/mosquitto.port")
echo "== stream table arduino, MQTT source demo_mqtt on $MQTT_URL (arduino/{device}/{measurement}, QoS 2)"
mqtt_start=$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:00Z)
# the demo's data starts over: the table goes with its rule and source
psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
SELECT iotstream.drop_rule(name) FROM iotstream.rules WHERE name = 'arduino_overheat';
SELECT iotstream.drop_source(name) FROM iotstream.sources WHERE name = 'demo_mqtt';
SELECT iotstream.drop_stream_table(to_regclass('arduino'), drop_table => true) WHERE to_regclass('arduino') IS NOT NULL;
SELECT iotstream.create_stream_table('arduino',
    'ts timestamptz NOT NULL, device text NOT NULL, measurement text NOT NULL, value float8 NOT NULL',
    'ts', partition_interval => '1 hour', premake => 3, retention => '7 days');
SELECT iotstream.create_mqtt_source('demo_mqtt', '$MQTT_URL', NULL, 'arduino',
    '{"ts": "timestamp", "value": "value"}',
    '{"topic_template": "arduino/{device}/{measurement}", "qos": 2, "batch_ms": 100}');
SELECT iotstream.create_rule('arduino_overheat', 'arduino', 'value', ARRAY['device'], 'threshold_count',
    '{"threshold": 100, "min_count": 5}', filter => 'measurement = ''temperature''',
    lateness => '10 seconds', severity => 'critical');
SELECT iotstream.start_source('demo_mqtt');
SQL
# subscribed once a probe comes through (timed at the start of the history,
# not to move the rule's watermark past it): then the source's persistent
# session keeps whatever is published for it
for _ in $(seq 1 100); do
  [ "$(psql -X -At -c "SELECT count(*) > 0 FROM arduino WHERE device = 'probe'")" = t ] && break
  mosquitto_pub -p "${MQTT_URL##*:}" -q 2 -t arduino/probe/probe -m "{\"timestamp\": \"$mqtt_start\", \"value\": 0}"
  sleep 0.2
done
mqtt_burst=$(date -u -d '-20 minutes' +%Y-%m-%dT%H:%M:00Z)
echo "== Arduino sensors: an hour of history from 4 boards (QoS 1), a temperature burst at $mqtt_burst"
tools/bin/iotstream-sim --mqtt "$MQTT_URL" --qos 1 --topic 'arduino/{device}/{metric}' --format telemetry \
  --devices 4 --metrics temperature,humidity,distance,motion --count 1440 --time-step 10s \
  --start-time "$mqtt_start" --burst "2,$mqtt_burst" --seed 3 --no-per-device >"$DEMO/mqtt_backfill.json"
echo "== Arduino sensors: live, 4 boards, 2 readings a second each (QoS 2; stops with make demo-stop)"
nohup tools/bin/iotstream-sim --mqtt "$MQTT_URL" --qos 2 --topic 'arduino/{device}/{metric}' --format telemetry \
  --devices 4 --metrics temperature,humidity,distance,motion --rate 8 --time-step 500ms --start-time now \
  --duration 86400 --seed 4 --no-per-device >"$DEMO/sim_mqtt.log" 2>&1 &
echo $! >"$DEMO/sim_mqtt.pid"
mqtt_good=$(sed -n 's/.*"good":\([0-9]*\).*/\1/p' "$DEMO/mqtt_backfill.json")
for _ in $(seq 1 150); do
  [ "$(psql -X -At -c "SELECT count(*) >= $mqtt_good FROM arduino WHERE ts < '$mqtt_start'::timestamptz + interval '1 hour'
                         AND device <> 'probe'")" = t ] && break
  sleep 0.2
done
psql -X -c "SELECT source, kind, state, round(messages_per_sec) AS msg_per_s, messages, rows, dead_letters
             FROM iotstream.source_status WHERE source = 'demo_mqtt'" \
     -c "SELECT measurement, count(*) AS readings, count(DISTINCT device) AS devices, round(min(value)::numeric, 2) AS min,
                round(max(value)::numeric, 2) AS max FROM arduino WHERE device <> 'probe' GROUP BY 1 ORDER BY 1"
echo "== the rule 'arduino_overheat': at least 5 temperatures above 100 in a minute"
for _ in $(seq 1 150); do
  [ "$(psql -X -At -c "SELECT count(*) > 0 FROM iotstream.anomalies WHERE rule = 'arduino_overheat'")" = t ] && break
  sleep 0.2
done
psql -X -c "SELECT id, key->>'device' AS device, window_start, value AS above, detected_at FROM iotstream.anomalies
             WHERE rule = 'arduino_overheat' ORDER BY id"

cat <<MSG
== the demo is running
   connect:  psql "host=$PGHOST port=$PGPORT user=$PGUSER dbname=$PGDATABASE"
   watch:    SELECT source, state, lag, messages_per_sec, rows, dead_letters FROM iotstream.source_status; \\watch 1
   live:     LISTEN iotstream_anomaly;   -- the burst at $live_burst arrives about a minute after it
             SELECT * FROM iotstream.anomalies ORDER BY id DESC;
             SELECT sensor_id, iotstream.mean(value), iotstream.max(value) FROM telemetry_1m
               WHERE metric_type = 'temperature' AND bucket_start > now() - interval '10 minutes' GROUP BY 1;
   lake:     $LAKE; SELECT * FROM iotstream.export_status;
   capture:  drop Capture .avro files under $CAPTURE; SELECT source, files FROM iotstream.source_status;
   mqtt:     mosquitto_sub -p ${MQTT_URL##*:} -t 'arduino/#' -v   # the Arduino readings
             SELECT measurement, count(*), max(ts) FROM arduino GROUP BY 1;
   try:      SELECT sensor_id, iotstream.stats_agg(value) FROM telemetry
               WHERE metric_type = 'temperature' GROUP BY 1;
             SELECT reason, count(*) FROM iotstream.dead_letters GROUP BY 1;
   stop:     make demo-stop
MSG

#!/usr/bin/env bash
# make demo / make demo-stop: a local iotstream cluster that keeps running.
#   tools/demo.sh start   install what is missing, start the cluster in
#                         .tmp/demo, create a sample stream table
#   tools/demo.sh stop    stop it
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=.tmp/demo

case "${1:-start}" in
stop)
  . tools/cluster.sh
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

tools/install-deps.sh
. tools/cluster.sh
if [ -e "$DEMO/cluster/env" ] && . "$DEMO/cluster/env" && psql -X -q -c 'SELECT 1' >/dev/null 2>&1; then
  echo "== the demo cluster is already running"
else
  cluster_start "$DEMO/cluster" iotstream
fi

echo "== sample stream table: telemetry (seed-004 sensor readings)"
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
SET client_min_messages = warning;
SELECT iotstream.create_stream_table('telemetry',
    'ts timestamptz NOT NULL, sensor_id text NOT NULL, metric_type text NOT NULL, value float8',
    'ts', partition_interval => '1 hour', premake => 3, retention => '7 days')
 WHERE to_regclass('telemetry') IS NULL;
SELECT iotstream.schedule_maintenance('*/10 * * * *');
-- one day of readings from 20 sensors, one a minute; partitions first: a
-- statement cannot attach partitions to a table it is inserting into
SELECT iotstream.ensure_partitions('telemetry', now() - interval '1 day', now());
INSERT INTO telemetry
SELECT t, 'sensor-' || s, 'temperature', 60 + 10 * sin(extract(epoch FROM t) / 3600) + random()
  FROM generate_series(date_trunc('minute', now()) - interval '1 day', now(), interval '1 minute') t,
       generate_series(1, 20) s
 WHERE NOT EXISTS (SELECT 1 FROM telemetry);
SQL
psql -X -c "SELECT stream_table, partition_interval, retention, partitions, oldest_partition, newest_partition, total_size, row_estimate FROM iotstream.stream_tables"

cat <<MSG
== the demo is running
   connect:  psql "host=$PGHOST port=$PGPORT user=$PGUSER dbname=$PGDATABASE"
   try:      SELECT * FROM iotstream.stream_tables;
             SELECT date_bin('1 minute', ts, 'epoch'), sensor_id, count(*) FILTER (WHERE value > 100)
               FROM telemetry GROUP BY 1, 2 ORDER BY 1 DESC LIMIT 10;
   stop:     make demo-stop
MSG

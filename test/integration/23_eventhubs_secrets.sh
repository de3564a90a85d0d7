#!/usr/bin/env bash
# An Event Hubs source runs with the configuration derived from its
# connection string (SASL_SSL, PLAIN, $ConnectionString), and its key shows
# up nowhere: not in the server log, not in the views, not in
# pg_stat_activity.  The local broker has no SASL, so the endpoint here is
# a loopback address where nothing listens: the worker tries, fails, and
# reports the failure without the secret.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

key="TopSecretKey$RANDOM$RANDOM="
port=$(free_port)
psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS it43 CASCADE;
CREATE SCHEMA it43;
SELECT iotstream.create_stream_table('it43.t', 'ts timestamptz NOT NULL, v float8', 'ts');
SELECT iotstream.create_eventhubs_source('it43_eh',
  'Endpoint=sb://127.0.0.1/;SharedAccessKeyName=listen;SharedAccessKey=$key;EntityPath=hub',
  'it43.t', '{"ts": "timestamp"}', options => '{"socket.connection.setup.timeout.ms": "1000"}');
-- the derived endpoint uses port 9093; point it at a port where nothing listens
SELECT iotstream.alter_source('it43_eh', brokers => '127.0.0.1:$port');
SELECT iotstream.start_source('it43_eh');
SQL

assert_eq "$(q "SELECT value FROM iotstream.source_config('it43_eh') WHERE property = 'security.protocol'")" SASL_SSL \
  "the worker is configured for SASL_SSL"
assert_eq "$(q "SELECT value FROM iotstream.source_config('it43_eh') WHERE property = 'sasl.username'")" '$ConnectionString' \
  "with the Event Hubs user name"
wait_for "SELECT last_error IS NOT NULL FROM iotstream.source_status WHERE source = 'it43_eh'" 60
echo "the worker reports: $(q "SELECT last_error FROM iotstream.source_status WHERE source = 'it43_eh'")"
q "SELECT iotstream.stop_source('it43_eh')" >/dev/null
wait_for "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'it43_eh'" 10

assert_eq "$(grep -c -F "$key" "$CLUSTER_DATA/server.log" || true)" 0 "the key is not in the server log"
assert_eq "$(q "SELECT count(*) FROM iotstream.source_status s WHERE s::text LIKE '%$key%'")" 0 "nor in source_status"
assert_eq "$(q "SELECT count(*) FROM iotstream.source_config('it43_eh') c WHERE c::text LIKE '%$key%'")" 0 "nor in source_config"
assert_eq "$(q "SELECT count(*) FROM pg_stat_activity a WHERE a::text LIKE '%$key%' AND pid <> pg_backend_pid()")" 0 \
  "nor in pg_stat_activity"
q "SELECT iotstream.drop_source('it43_eh')" >/dev/null
echo "ok"

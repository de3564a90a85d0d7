#!/usr/bin/env bash
# Ingestion through the real broker, from the simulator's messages:
#  - seed-002 events with 0.1% duplicates, deduplicated by eventId;
#  - seed-004 telemetry with a corpus of every kind of bad message;
#  - one source with two topics and a second source into the same table;
#  - a dedup key is only remembered for a row that was stored;
#  - a dedup key may name the JSON key the mapping reads ("timestamp" for ts).
# Every count and checksum is compared with what the simulator produced.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

start_broker --topic events:4 --topic telemetry:4 --topic site1.temperature:2 \
  --topic site1.humidity:2 --topic site2.temperature:2 --topic checked:1 --topic hdrs:1 --topic unbounded:1

psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS it40 CASCADE;
CREATE SCHEMA it40;
SELECT iotstream.create_stream_table('it40.events',
  'event_id uuid NOT NULL, complex_data jsonb, value float8, device_id text NOT NULL,
   device_sequence_number bigint, type text, created_at timestamptz NOT NULL',
  'created_at', partition_interval => '1 day', max_past => '3650 days', max_future => '1 day', retention => NULL);
SELECT iotstream.create_stream_table('it40.telemetry',
  'ts timestamptz NOT NULL, sensor_id text NOT NULL, metric_type text NOT NULL, value float8 NOT NULL,
   topic text, kafka_partition int, kafka_offset bigint,
   ingested_at timestamptz NOT NULL DEFAULT now(), id bigserial',
  'ts', partition_interval => '1 hour', max_past => '3650 days', max_future => '1 day', retention => NULL);
SELECT iotstream.create_stream_table('it40.env',
  'ts timestamptz NOT NULL, sensor_id text NOT NULL, metric_type text, value float8, topic text',
  'ts', max_past => '3650 days', max_future => '1 day', retention => NULL);
SELECT iotstream.create_source('it40_events', '$BROKERS', ARRAY['events'], 'it40.events', NULL,
  '{"batch_ms": 50, "dedup_key": "eventId", "dedup_horizon": "1 hour", "session.timeout.ms": "6000"}');
SELECT iotstream.create_source('it40_tel', '$BROKERS', ARRAY['telemetry'], 'it40.telemetry',
  '{"ts": "timestamp", "topic": "\$topic", "kafka_partition": "\$partition", "kafka_offset": "\$offset"}',
  '{"batch_ms": 50, "max_message_bytes": 8192, "dedup_key": ["sensor_id", "metric_type", "timestamp"]}');
SELECT iotstream.create_source('it40_site1', '$BROKERS', ARRAY['site1.temperature', 'site1.humidity'], 'it40.env',
  '{"ts": "timestamp", "topic": "\$topic"}', '{"batch_ms": 50}');
SELECT iotstream.create_source('it40_site2', '$BROKERS', ARRAY['site2.temperature'], 'it40.env',
  '{"ts": "timestamp", "topic": "\$topic"}', '{"batch_ms": 50}');
SELECT iotstream.start_source(s) FROM unnest(ARRAY['it40_events', 'it40_tel', 'it40_site1', 'it40_site2']) s;
SQL

W=$IOTSTREAM_WORK
"$IOTSTREAM_SIM" --brokers "$BROKERS" --topic events --format event --count 20000 --devices 50 \
  --seed 2 --duplicates 0.001 --start-time 2026-11-01T00:00:00Z --no-per-device >"$W/ev.json"
"$IOTSTREAM_SIM" --brokers "$BROKERS" --topic telemetry --format telemetry --count 20000 --devices 20 \
  --seed 4 --bad 0.02 --bad-kinds all --oversize-bytes 20000 --duplicates 0.002 --start-time 2026-11-01T00:00:00Z \
  --no-per-device >"$W/tel.json"
for t in site1.temperature:11 site1.humidity:12 site2.temperature:13; do
  "$IOTSTREAM_SIM" --brokers "$BROKERS" --topic "${t%:*}" --format telemetry --count 3000 --devices 5 \
    --seed "${t#*:}" --start-time 2026-11-01T00:00:00Z --no-per-device >"$W/${t%:*}.json"
done

ev=$(cat "$W/ev.json")
tel=$(cat "$W/tel.json")
ev_good=$(json_get "$ev" good)
ev_dups=$(json_get "$ev" duplicates)
tel_good=$(json_get "$tel" good)
tel_bad=$(json_get "$tel" bad)
assert_eq "$((ev_dups > 0))" 1 "the event stream carries duplicates"

wait_for "SELECT (SELECT count(*) FROM it40.events) + (SELECT duplicates FROM iotstream.source_status WHERE source = 'it40_events') >= $(json_get "$ev" produced)" 60
wait_for "SELECT (SELECT count(*) FROM it40.telemetry) + (SELECT count(*) FROM iotstream.dead_letters WHERE source = 'it40_tel')
                + (SELECT duplicates FROM iotstream.source_status WHERE source = 'it40_tel') >= $(json_get "$tel" produced)" 60
wait_for "SELECT count(*) >= 9000 FROM it40.env" 60

# events: exactly the good ones, once each, with the simulator's checksum
start_ms=$(json_get "$ev" start_ms)
assert_eq "$(q "SELECT count(*) FROM it40.events")" "$ev_good" "events: every good event stored once"
assert_eq "$(q "SELECT count(DISTINCT event_id) FROM it40.events")" "$ev_good" "events: no duplicate eventId"
assert_eq "$(q "SELECT sum(device_sequence_number + round(value * 100)::bigint
                 + ((extract(epoch FROM created_at) * 1000)::bigint - $start_ms)) FROM it40.events")" \
  "$(json_get "$ev" checksum)" "events: checksum"
assert_eq "$(q "SELECT duplicates FROM iotstream.source_status WHERE source = 'it40_events'")" "$ev_dups" \
  "events: every duplicate was dropped and counted"
assert_eq "$(q "SELECT count(*) FROM it40.events WHERE complex_data ? 'moreData22'")" "$ev_good" \
  "events: complexData stored as jsonb"

# telemetry: the good rows, and every bad message in dead_letters with its kind
start_ms=$(json_get "$tel" start_ms)
assert_eq "$(q "SELECT count(*) FROM it40.telemetry")" "$tel_good" "telemetry: every good reading stored"
assert_eq "$(q "SELECT sum(round(value::float8 * 100)::bigint
                 + ((extract(epoch FROM ts) * 1000)::bigint - $start_ms)) FROM it40.telemetry")" \
  "$(json_get "$tel" checksum)" "telemetry: checksum"
# the dedup key names "timestamp", the JSON key the mapping reads into ts
assert_eq "$(q "SELECT duplicates FROM iotstream.source_status WHERE source = 'it40_tel'")" \
  "$(json_get "$tel" duplicates)" "telemetry: re-sent readings dropped by a dedup key on a mapped JSON key"
assert_eq "$(q "SELECT count(*) FROM iotstream.dead_letters WHERE source = 'it40_tel'")" "$tel_bad" \
  "telemetry: every bad message is a dead letter"
for kind in not_json truncated wrong_type missing_field bad_time invalid_utf8 nul_byte oversize; do
  assert_eq "$(q "SELECT count(*) FROM iotstream.dead_letters WHERE source = 'it40_tel'
                   AND position('\"_bad\":\"$kind\"'::bytea IN payload) > 0 AND reason <> ''")" \
    "$(json_get "$tel" "bad_kinds.$kind")" "telemetry: dead letters of kind $kind"
done
assert_eq "$(q "SELECT count(*) FROM iotstream.dead_letters WHERE source = 'it40_tel'
                 AND (topic <> 'telemetry' OR \"offset\" IS NULL OR key IS NULL)")" 0 \
  "telemetry: dead letters keep topic, offset and key"
assert_eq "$(q "SELECT count(DISTINCT id) FILTER (WHERE ingested_at > now() - interval '1 hour') FROM it40.telemetry")" \
  "$tel_good" "telemetry: columns the messages lack take their DEFAULT"
assert_eq "$(q "SELECT count(*) FROM (SELECT DISTINCT kafka_partition, kafka_offset FROM it40.telemetry) x")" \
  "$tel_good" "telemetry: Kafka metadata columns are filled"

# two topics in one source, and two sources into one table
for t in site1.temperature site1.humidity site2.temperature; do
  s=$(cat "$W/$t.json")
  sm=$(json_get "$s" start_ms)
  assert_eq "$(q "SELECT count(*) || ' ' || sum(round(value::float8 * 100)::bigint
                   + ((extract(epoch FROM ts) * 1000)::bigint - $sm)) FROM it40.env WHERE topic = '$t'")" \
    "$(json_get "$s" good) $(json_get "$s" checksum)" "env: topic $t complete"
done

# offsets stored with the rows: next offset = high watermark, lag 0
wait_for "SELECT lag = 0 FROM iotstream.source_status WHERE source = 'it40_tel'" 30
assert_eq "$(q "SELECT sum((p->>'next_offset')::bigint) FROM iotstream.source_status, jsonb_array_elements(partitions) p
                 WHERE source = 'it40_tel'")" "$(json_get "$tel" produced)" "telemetry: stored offsets cover every message"
assert_eq "$(q "SELECT state FROM iotstream.source_status WHERE source = 'it40_tel'")" running "status: running"
assert_eq "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'iotstream source worker'")" 4 \
  "one worker per source in pg_stat_activity"

# a row the table refuses (CHECK) is a dead letter, and its dedup key is not
# remembered: once the constraint is gone, a redelivery is stored
q "SELECT iotstream.create_stream_table('it40.checked',
     'ts timestamptz NOT NULL, event_id uuid NOT NULL, value float8 CONSTRAINT small CHECK (value < 1000)',
     'ts', max_past => '3650 days', max_future => '1 day', retention => NULL)" >/dev/null
q "SELECT iotstream.create_source('it40_checked', '$BROKERS', ARRAY['checked'], 'it40.checked',
     '{\"ts\": \"createdAt\", \"event_id\": \"eventId\"}',
     '{\"batch_ms\": 50, \"dedup_key\": \"eventId\", \"dedup_horizon\": \"1 hour\"}')" >/dev/null
q "SELECT iotstream.start_source('it40_checked')" >/dev/null
big='{"eventId":"00000000-0000-4000-8000-000000000001","value":5000,"createdAt":"2026-11-01T00:00:00Z"}'
ok='{"eventId":"00000000-0000-4000-8000-000000000002","value":5,"createdAt":"2026-11-01T00:00:01Z"}'
printf '%s\n%s\n' "$big" "$ok" | kcat -P -b "$BROKERS" -t checked
wait_for "SELECT count(*) = 1 FROM iotstream.dead_letters WHERE source = 'it40_checked'" 30
assert_eq "$(q "SELECT string_agg(event_id::text, ',') FROM it40.checked")" \
  "00000000-0000-4000-8000-000000000002" "checked: the good row is stored, the refused one is not"
q "ALTER TABLE it40.checked DROP CONSTRAINT small"
printf '%s\n%s\n' "$big" "$ok" | kcat -P -b "$BROKERS" -t checked
wait_for "SELECT sum((p->>'next_offset')::bigint) = 4 FROM iotstream.source_status, jsonb_array_elements(partitions) p
            WHERE source = 'it40_checked'" 30
assert_eq "$(q "SELECT count(*) || ' ' || sum(value) FROM it40.checked")" "2 5005" \
  "checked: the redelivered row is stored once the table accepts it; the other is a duplicate"
assert_eq "$(q "SELECT duplicates FROM iotstream.source_status WHERE source = 'it40_checked'")" 1 \
  "checked: only the row that was stored counts as seen"
q "SELECT iotstream.drop_source('it40_checked')" >/dev/null

# Kafka headers reach a $headers column (the consumer parses them only then)
q "SELECT iotstream.create_stream_table('it40.hdr', 'ts timestamptz NOT NULL, h jsonb', 'ts',
     max_past => '3650 days', max_future => '1 day', retention => NULL)" >/dev/null
q "SELECT iotstream.create_source('it40_hdr', '$BROKERS', ARRAY['hdrs'], 'it40.hdr',
     '{\"ts\": \"createdAt\", \"h\": \"\$headers\"}', '{\"batch_ms\": 50}')" >/dev/null
q "SELECT iotstream.start_source('it40_hdr')" >/dev/null
echo '{"createdAt":"2026-11-01T00:00:00Z"}' | kcat -P -b "$BROKERS" -t hdrs -H device=d-7 -H site=north
wait_for "SELECT count(*) = 1 FROM it40.hdr" 30
assert_eq "$(q "SELECT h->>'device' || ' ' || (h->>'site') FROM it40.hdr")" "d-7 north" "headers: stored as jsonb"
q "SELECT iotstream.drop_source('it40_hdr')" >/dev/null

# an event time no partition can hold (1 BC, 250 BC) in a table
# without bounds is a dead letter with its reason; the worker goes on
q "SELECT iotstream.create_stream_table('it40.unbounded', 'ts timestamptz NOT NULL, v int', 'ts',
     retention => NULL, max_future => '1000 years')" >/dev/null
q "SELECT iotstream.create_source('it40_unbounded', '$BROKERS', ARRAY['unbounded'], 'it40.unbounded',
     NULL, '{\"batch_ms\": 50}')" >/dev/null
q "SELECT iotstream.start_source('it40_unbounded')" >/dev/null
printf '%s\n%s\n%s\n' '{"ts": -62167219200, "v": 1}' '{"ts": -70000000000, "v": 2}' \
  '{"ts": "2026-11-01T00:00:00Z", "v": 3}' | kcat -P -b "$BROKERS" -t unbounded
wait_for "SELECT count(*) = 1 FROM it40.unbounded" 30
assert_eq "$(q "SELECT count(*) FILTER (WHERE reason ~ 'outside the years 1 to 9999') || ' of ' || count(*)
                 FROM iotstream.dead_letters WHERE source = 'it40_unbounded'")" "2 of 2" \
  "unbounded: the events of 1 BC and 250 BC are dead letters with their reason"
assert_eq "$(q "SELECT v FROM it40.unbounded")" 3 "unbounded: the good event behind them is stored"
q "SELECT iotstream.drop_source('it40_unbounded')" >/dev/null

# stop within a second
pid=$(q "SELECT pids[1] FROM iotstream.source_status WHERE source = 'it40_site2'")
t0=$(date +%s%N)
q "SELECT iotstream.stop_source('it40_site2')" >/dev/null
for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
kill -0 "$pid" 2>/dev/null && fail "the worker did not stop within 2 s"
echo "stop_source: worker gone after ${ms} ms"
[ "$ms" -lt 1000 ] || fail "the worker took ${ms} ms to stop"

q "SELECT iotstream.drop_source(s) FROM unnest(ARRAY['it40_events', 'it40_tel', 'it40_site1', 'it40_site2']) s" >/dev/null
wait_for "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'iotstream source worker'" 10
echo "ok"

#!/usr/bin/env bash
# Deduplication under a memory bound, exact by count:
#  - dedup_memory of 64kB holds about 955 keys exactly; 5,000 distinct events
#    overflow it, so duplicates of the later ones are found in
#    iotstream.source_dedup, not in memory;
#  - a restart of the worker rebuilds the bounded cache from the table;
#  - once the horizon has passed, an event seen before it is new again;
#  - source_status shows the keys held and the memory they take.
# Stored rows and counted duplicates are compared with what was produced.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

start_broker --topic dd:2

psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS it26 CASCADE;
CREATE SCHEMA it26;
SELECT iotstream.create_stream_table('it26.events', 'ts timestamptz NOT NULL, event_id text NOT NULL, n int',
  'ts', max_past => '1 day', max_future => '1 day', retention => NULL);
SELECT iotstream.create_source('it26_dd', '$BROKERS', ARRAY['dd'], 'it26.events', NULL,
  '{"batch_ms": 50, "batch_size": 500, "dedup_key": "event_id", "dedup_horizon": "45 seconds",
    "dedup_memory": "64kB", "session.timeout.ms": "6000", "heartbeat.interval.ms": "1000"}');
SELECT iotstream.start_source('it26_dd');
SQL

# events FROM..TO, each with its own event_id and n; now as event time
produce() {
  local ts
  ts=$(q "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
  seq "$1" "$2" | awk -v ts="$ts" '{ printf "{\"ts\": \"%s\", \"event_id\": \"e%d\", \"n\": %d}\n", ts, $1, $1 }' |
    kcat -P -b "$BROKERS" -t dd
}
stored() { q "SELECT count(*) FROM it26.events"; }
dups() { q "SELECT duplicates FROM iotstream.source_status WHERE source = 'it26_dd'"; }
# every message produced so far is consumed (committed with its offset)
consumed() {
  wait_for "SELECT coalesce(sum(next_offset), 0) >= $1 FROM iotstream.source_offsets o
              JOIN iotstream.sources s USING (source_id) WHERE s.name = 'it26_dd'" 60
}

produce 1 5000
consumed 5000
assert_eq "$(stored)" 5000 "5,000 distinct events are stored"
# source_status shows what the bound holds: every key, exactly or behind a
# filter, within 64kB; and the worker's private memory
wait_for "SELECT dedup_keys + dedup_filtered_keys = 5000 FROM iotstream.source_status WHERE source = 'it26_dd'" 30
assert_eq "$(q "SELECT dedup_keys BETWEEN 1 AND 955, dedup_filtered_keys >= 4000, dedup_bytes <= 65536,
                       memory_bytes > 1000000 FROM iotstream.source_status WHERE source = 'it26_dd'")" "t|t|t|t" \
  "source_status: keys held exactly and behind filters, within dedup_memory"

# duplicates of events the bounded cache cannot hold exactly (the last 955 or so
# fill it), in batches of their own
produce 3001 3500
consumed 5500
assert_eq "$(stored) $(dups)" "5000 500" "500 duplicates beyond the memory bound are dropped and counted"

# a new worker rebuilds its cache from the table, bounded again (a short
# session timeout: a worker killed without leaving the group holds its
# partitions until it expires, and the horizon must not pass meanwhile)
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'iotstream source worker'" >/dev/null
wait_for "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'iotstream source worker'" 60
produce 4001 4300
consumed 5800
assert_eq "$(stored)" 5000 "after a restart, 300 duplicates are dropped"

# past the horizon an event is new again, whether or not memory held it
wait_for "SELECT now() - max(seen_at) > interval '46 seconds' FROM iotstream.source_dedup d
            JOIN iotstream.sources s USING (source_id) WHERE s.name = 'it26_dd'" 90
produce 1 100
produce 4901 5000
consumed 6000
assert_eq "$(stored)" 5200 "200 events past the horizon are stored again"
assert_eq "$(q "SELECT count(*) FROM (SELECT event_id FROM it26.events GROUP BY 1 HAVING count(*) = 2) x")" 200 \
  "each of them twice, no other"
assert_eq "$(q "SELECT count(*) FROM iotstream.dead_letters WHERE source = 'it26_dd'")" 0 "no dead letter"

q "SELECT iotstream.drop_source('it26_dd')" >/dev/null

# The same key twice in one batch when memory cannot tell: 20,000 keys in
# 64kB overflow every filter, so the oldest answer "maybe" for any key and
# every key of a batch is looked up in the table. Each copy pair is
# consecutive on one partition, so both come in one batch; batches of 300
# fit the 64kB hash table at once, so new keys enter it as they are found
# (the path that has no per-batch key set).
stop_broker
start_broker --topic dd2:1
q "TRUNCATE it26.events"
q "SELECT iotstream.create_source('it26_dd2', '$BROKERS', ARRAY['dd2'], 'it26.events', NULL,
  '{\"batch_ms\": 50, \"batch_size\": 300, \"dedup_key\": \"event_id\", \"dedup_horizon\": \"1 hour\",
    \"dedup_memory\": \"64kB\"}')" >/dev/null
q "SELECT iotstream.start_source('it26_dd2')" >/dev/null
produce_twice() {
  local ts
  ts=$(q "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
  seq "$1" "$2" | awk -v ts="$ts" -v times="$3" '{ for (i = 0; i < times; i++)
    printf "{\"ts\": \"%s\", \"event_id\": \"e%d\", \"n\": %d}\n", ts, $1, $1 }' |
    kcat -P -b "$BROKERS" -t dd2
}
consumed2() {
  wait_for "SELECT coalesce(sum(next_offset), 0) >= $1 FROM iotstream.source_offsets o
              JOIN iotstream.sources s USING (source_id) WHERE s.name = 'it26_dd2'" 60
}
produce_twice 1 20000 1
consumed2 20000
assert_eq "$(stored)" 20000 "20,000 distinct events are stored"
wait_for "SELECT dedup_filtered_keys > 15000 FROM iotstream.source_status WHERE source = 'it26_dd2'" 30
# 300 stored events and 300 new ones, each twice in a row
produce_twice 101 400 2
produce_twice 30001 30300 2
consumed2 21200
assert_eq "$(stored) $(q "SELECT duplicates FROM iotstream.source_status WHERE source = 'it26_dd2'")" "20300 900" \
  "a key twice in a batch, behind an overflowed filter: stored once, or not at all if stored before"
assert_eq "$(q "SELECT count(*) FROM (SELECT event_id FROM it26.events GROUP BY 1 HAVING count(*) > 1) x")" 0 \
  "no event stored twice"
# keys stored by 0.2.0 kept 64 bits of hash: the upgrade gives them a second
# half of zeros, which matches any key with their first half. Stored keys
# made so, a restarted worker (which reloads them) still finds their events
q "UPDATE iotstream.source_dedup d SET keys = (
     SELECT string_agg(substr(d.keys, 16 * i + 1, 8) || '\\x0000000000000000'::bytea, ''::bytea ORDER BY i)
       FROM generate_series(0, length(d.keys) / 16 - 1) i)
    FROM iotstream.sources s WHERE s.source_id = d.source_id AND s.name = 'it26_dd2'" >/dev/null
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'iotstream source worker'" >/dev/null
wait_for "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'iotstream source worker'" 60
produce_twice 501 700 1
consumed2 21400
assert_eq "$(stored)" 20300 "keys stored with 64 bits (0.2.0) still find their events after a restart"

# both halves decide: a stored key that differs from an event's only in its
# second half does not make the event a duplicate (a 64-bit key would)
produce_twice 40001 40001 1
consumed2 21401
q "UPDATE iotstream.source_dedup d SET keys = set_byte(keys, 15, get_byte(keys, 15) # 1)
    FROM iotstream.sources s WHERE s.source_id = d.source_id AND s.name = 'it26_dd2'
     AND length(keys) = 16 AND seen_at = (SELECT max(seen_at) FROM iotstream.source_dedup WHERE source_id = s.source_id)" >/dev/null
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'iotstream source worker'" >/dev/null
wait_for "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'iotstream source worker'" 60
produce_twice 40001 40001 1
consumed2 21402
assert_eq "$(stored)" 20302 "a key equal in its first 64 bits only is another key"
q "SELECT iotstream.drop_source('it26_dd2')" >/dev/null
q "DROP SCHEMA it26 CASCADE" >/dev/null

#!/usr/bin/env bash
# The ingest worker maintains a minmax BRIN index with one insert per page
# range and batch (its smallest and largest row; index_batch.c).  The index
# must still cover every row: after a first load, a DELETE of half the rows
# and a VACUUM (which frees space in every page and summarizes the ranges),
# a second load with times both earlier and later than the first lands in
# those summarized ranges.  Each summary must then hold the times of all
# rows of its range, and queries through the index must find every row a
# sequential scan finds.  A table that also has a btree (maintained row by
# row) is loaded the same way as the reference.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

start_broker --topic brin1:1 --topic brin2:1
psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS it45 CASCADE;
CREATE SCHEMA it45;
CREATE EXTENSION IF NOT EXISTS pageinspect;
SELECT iotstream.create_stream_table('it45.' || t,
  'ts timestamptz NOT NULL, sensor_id text NOT NULL, metric_type text NOT NULL, value float8 NOT NULL',
  'ts', partition_interval => '1 day', max_past => '3650 days', retention => NULL)
  FROM unnest(ARRAY['batched', 'per_row']) t;
CREATE INDEX ON it45.batched USING brin (ts) WITH (pages_per_range = 2);
CREATE INDEX ON it45.per_row USING brin (ts) WITH (pages_per_range = 2);
CREATE INDEX ON it45.per_row (sensor_id);
SQL
W=$IOTSTREAM_WORK
# load 1: 10:00-11:40; load 2: 00:00-13:20, so it reaches past both ends;
# both out of order within blocks of a batch, so a range's extremes can be
# any of its rows
"$IOTSTREAM_SIM" --brokers "$BROKERS" --topic brin1 --format telemetry --count 6000 --devices 1 \
  --time-step 1s --shuffle 500 --seed 45 --start-time 2026-11-01T10:00:00Z --no-per-device >"$W/brin1.json"
"$IOTSTREAM_SIM" --brokers "$BROKERS" --topic brin2 --format telemetry --count 6000 --devices 1 \
  --time-step 8s --shuffle 500 --seed 46 --start-time 2026-11-01T00:00:00Z --no-per-device >"$W/brin2.json"
n1=$(json_get "$(cat "$W/brin1.json")" good)
n2=$(json_get "$(cat "$W/brin2.json")" good)

load() {
  local topic=$1 expect=$2 t
  for t in batched per_row; do
    q "SELECT iotstream.create_source('it45_${t}_$topic', '$BROKERS', ARRAY['$topic'], 'it45.$t', '{\"ts\": \"timestamp\"}',
         '{\"batch_size\": 500, \"batch_ms\": 50}')" >/dev/null
    q "SELECT iotstream.start_source('it45_${t}_$topic')" >/dev/null
  done
  for t in batched per_row; do
    wait_for "SELECT count(*) >= $expect FROM it45.$t" 120
    q "SELECT iotstream.drop_source('it45_${t}_$topic')" >/dev/null
  done
}

load brin1 "$n1"
for t in batched per_row; do
  q "DELETE FROM it45.$t WHERE extract(second FROM ts)::int % 2 = 0" >/dev/null
  q "VACUUM it45.$t" >/dev/null
done
left=$(q "SELECT count(*) FROM it45.batched")
load brin2 $((left + n2))

for t in batched per_row; do
  assert_eq "$(q "SELECT count(*) FROM it45.$t")" $((left + n2)) "$t: every row stored"
  part=$(q "SELECT partition FROM iotstream.partitions('it45.$t')
             WHERE range_start <= '2026-11-01 00:00+00' AND range_end > '2026-11-01 00:00+00'")
  idx=$(q "SELECT i.indexrelid::regclass FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = '$part'::regclass AND a.amname = 'brin'")
  # each range's rows (two heap blocks a range) against its summary
  read -r summarized shared uncovered <<<"$(q "
    WITH s AS (
      SELECT b.blknum / 2 AS r,
             split_part(btrim(b.value, '{}'), ' .. ', 1)::timestamptz AS lo,
             split_part(btrim(b.value, '{}'), ' .. ', 2)::timestamptz AS hi
        FROM generate_series(0, pg_relation_size('$idx') / 8192 - 1) pg,
             LATERAL (SELECT get_raw_page('$idx'::text, pg::int) AS raw) r,
             LATERAL brin_page_items(r.raw, '$idx'::regclass) b
       WHERE brin_page_type(r.raw) = 'regular' AND NOT b.placeholder AND b.value IS NOT NULL),
    rows AS (
      SELECT (ctid::text::point)[0]::bigint / 2 AS r, min(ts) AS lo, max(ts) AS hi,
             -- load 1 kept its odd seconds; load 2 is 8 s apart from midnight: even ones
             bool_or(extract(second FROM ts)::int % 2 = 1) AS from_load1,
             bool_or(extract(second FROM ts)::int % 2 = 0) AS from_load2
        FROM $part GROUP BY 1)
    SELECT count(*), count(*) FILTER (WHERE from_load1 AND from_load2),
           count(*) FILTER (WHERE rows.lo < s.lo OR rows.hi > s.hi)
      FROM s JOIN rows USING (r)" | tr '|' ' ')"
  assert_eq "$([ "$summarized" -gt 10 ] && echo yes)" yes "$t: many summarized ranges ($summarized)"
  assert_eq "$([ "$shared" -gt 10 ] && echo yes)" yes "$t: many summarized ranges got rows of both loads ($shared)"
  assert_eq "$uncovered" 0 "$t: every summary covers the times of its rows"
  for range in "ts < '2026-11-01 10:00+00'" "ts >= '2026-11-01 11:40+00'" \
               "ts >= '2026-11-01 10:30+00' AND ts < '2026-11-01 10:31+00'"; do
    seq=$(q "SET enable_indexscan = off; SET enable_bitmapscan = off; SELECT count(*) FROM it45.$t WHERE $range")
    plan=$(q "SET enable_seqscan = off; SET enable_indexscan = off; EXPLAIN SELECT count(*) FROM it45.$t WHERE $range")
    brin=$(q "SET enable_seqscan = off; SET enable_indexscan = off; SELECT count(*) FROM it45.$t WHERE $range")
    assert_eq "$(grep -c 'Bitmap Index Scan' <<<"$plan" | awk '{print ($1 > 0)}')" 1 "$t: $range is read through the BRIN index"
    assert_eq "$brin" "$seq" "$t: the index finds every row of $range"
  done
done
echo "ok"

#!/usr/bin/env bash
# COPY into a stream table (through the COPY hook, src/ingest/copy_route.c)
# against COPY into a plain partitioned table with the same partitions and
# indexes (the peer: PostgreSQL's own COPY), for the same CSV file, in the
# same run.  Both tables exist with every partition up front, so the figure
# is the price of the hook's batching and routing; then the stream table
# is loaded again into no partitions at all (history), which creates them.
#   ROWS=1000000 REPEAT=3 test/bench/copy.sh   (run by make bench)
# Prints ours, the peer's and the ratio (issue 20 asks for >= 0.9).
set -euo pipefail
. "$(dirname "$0")/../integration/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

ROWS=${ROWS:-1000000}
REPEAT=${REPEAT:-3}
DATA=$(mktemp -d /tmp/iotstream-bench.XXXXXX)
chmod 777 "$DATA"
trap 'rm -rf "$DATA"; _lib_cleanup' EXIT

psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bench_copy CASCADE;
CREATE SCHEMA bench_copy;
SELECT iotstream.create_stream_table('bench_copy.ours',
  'ts timestamptz NOT NULL, sensor_id text NOT NULL, metric_type text NOT NULL, value float8',
  'ts', partition_interval => '1 hour', premake => 0, max_past => '3650 days', retention => NULL);
SELECT iotstream.ensure_partitions('bench_copy.ours', '2026-11-01', '2026-11-02 23:59');
-- the peer: the same columns, partitions and indexes, not a stream table
CREATE TABLE bench_copy.peer (LIKE bench_copy.ours INCLUDING ALL) PARTITION BY RANGE (ts);
SELECT format('CREATE TABLE bench_copy.peer_%s PARTITION OF bench_copy.peer FOR VALUES FROM (%L) TO (%L)',
              to_char(range_start AT TIME ZONE 'UTC', 'YYYYMMDDHH24'), range_start, range_end)
  FROM iotstream.partitions('bench_copy.ours') \gexec
SQL
# indexes of the stream table's partitions, on the peer's parent (cascading)
q "SELECT indexdef FROM pg_indexes WHERE schemaname = 'bench_copy' AND tablename = (SELECT c.relname FROM pg_inherits i
     JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'bench_copy.ours'::regclass LIMIT 1)" |
  sed -E "s/ON bench_copy\.ours_[a-z0-9_]+ /ON bench_copy.peer /; s/INDEX [a-z0-9_]+ ON/INDEX ON/" |
  while read -r ddl; do q "$ddl"; done

# two days of seed-004 telemetry, ROWS readings
q "COPY (SELECT to_char(timestamptz '2026-11-01 00:00+00' + i * (interval '2 days' / $ROWS), 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                'sensor-' || lpad((i % 200)::text, 4, '0'), (ARRAY['temperature', 'humidity', 'pressure'])[1 + i % 3],
                round((i % 1000)::numeric / 10, 1)
           FROM generate_series(0, $ROWS - 1) i) TO '$DATA/rows.csv' WITH (FORMAT csv)"

best_ours=0 best_peer=0
for r in $(seq 1 "$REPEAT"); do
  for who in peer ours; do
    q "TRUNCATE bench_copy.$who"
    q "CHECKPOINT"
    t0=$(now_ms)
    q "COPY bench_copy.$who FROM '$DATA/rows.csv' WITH (FORMAT csv)"
    ms=$(( $(now_ms) - t0 ))
    rate=$(( ROWS * 1000 / (ms > 0 ? ms : 1) ))
    echo "   run $r: $who $rate rows/s ($ms ms)"
    if [ $who = ours ]; then [ $rate -gt $best_ours ] && best_ours=$rate; else [ $rate -gt $best_peer ] && best_peer=$rate; fi
  done
done
[ "$(q "SELECT count(*) FROM bench_copy.ours")" = "$ROWS" ] || fail "the stream table lost rows"
[ "$(q "SELECT (SELECT sum(value::numeric) FROM bench_copy.ours) = (SELECT sum(value::numeric) FROM bench_copy.peer)")" = t ] || fail "checksums differ"

# history: the same file into a stream table with no partition yet
q "SELECT iotstream.create_stream_table('bench_copy.history',
     'ts timestamptz NOT NULL, sensor_id text NOT NULL, metric_type text NOT NULL, value float8',
     'ts', partition_interval => '1 hour', premake => 0, max_past => '3650 days', retention => NULL)" >/dev/null
q "CHECKPOINT"
t0=$(now_ms)
q "COPY bench_copy.history FROM '$DATA/rows.csv' WITH (FORMAT csv)"
ms=$(( $(now_ms) - t0 ))
hist=$(( ROWS * 1000 / (ms > 0 ? ms : 1) ))

printf '%-44s %12s %12s %7s\n' "COPY of $ROWS rows (best of $REPEAT)" "ours" "peer" "ratio"
printf '%-44s %12s %12s %7s\n' "stream table vs plain partitioned, rows/s" "$best_ours" "$best_peer" \
  "$(awk -v a="$best_ours" -v b="$best_peer" 'BEGIN { printf "%.2f", a / b }')"
printf '%-44s %12s %12s %7s\n' "history (48 partitions created), rows/s" "$hist" "$best_peer" \
  "$(awk -v a="$hist" -v b="$best_peer" 'BEGIN { printf "%.2f", a / b }')"
q "DROP SCHEMA bench_copy CASCADE" >/dev/null

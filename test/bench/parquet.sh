#!/usr/bin/env bash
# iotstream.write_parquet against DuckDB writing the same rows, same run.
#
#   test/bench/parquet.sh [rows]        (default 1000000)
#   PARQUET_RUNS=3: each contender writes each file that many times; the
#   best time of each counts (narrow rows take a tenth of a second, where
#   one run moves by a third)
#
# Data: seed-002-like events (1,000 devices over 2 days; complexData with 23
# doubles as jsonb), generated in SQL.  Wide rows have every column, narrow
# rows all but complex_data (copied into a table of their own).
# Our figure: SELECT iotstream.write_parquet(query, file, codec) from the
#   Postgres table, wall clock seen by psql (the query's scan, the jsonb to
#   text conversion and the final fsync included).  Both sides use zstd
#   level 3 (the default of each).
# The peer: DuckDB (2 threads) writing the same rows from its own memory
#   (loaded beforehand from our file, not timed) with COPY ... (FORMAT
#   parquet, COMPRESSION codec).
# For reference: COPY (query) TO a CSV file, the cost of reading the rows out.
# Uses the cluster of PGHOST/PGPORT if set, else starts a throwaway one.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
RUNS=${PARQUET_RUNS:-3}

[ -n "${PGPORT:-}" ] || { . tools/cluster.sh; bench_cluster_start parquet; }
OUT=$(mktemp -d /tmp/iotstream-bench-parquet.XXXXXX)
chown postgres: "$OUT" 2>/dev/null || chmod 777 "$OUT"
cleanup() {
  rm -rf "$OUT"
  [ -z "${BENCH_CLUSTER:-}" ] || bench_cluster_stop
}
trap cleanup EXIT

pg() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
now_ns() { date +%s%N; }
secs() { awk "BEGIN { printf \"%.2f\", ($2 - $1) / 1e9 }"; }
mib() { awk "BEGIN { printf \"%.1f\", $(stat -c %s "$1") / 1048576 }"; }

# 23 doubles between 40 and 50, written out so the row is built in one pass
cd_expr="'{'"
for k in $(seq 0 22); do
  [ "$k" -gt 0 ] && cd_expr="$cd_expr || ','"
  cd_expr="$cd_expr || '\"moreData$k\": ' || (40 + random() * 10)::text"
done
cd_expr="($cd_expr || '}')::jsonb"

echo "generating $N events ..."
pg <<SQL
SELECT setseed(0.2);
DROP TABLE IF EXISTS bench_events;
CREATE TABLE bench_events (
    event_id               uuid,
    complex_data           jsonb,
    value                  float8,
    device_id              text,
    device_sequence_number bigint,
    type                   text,
    created_at             timestamptz
);
INSERT INTO bench_events
SELECT md5(g::text)::uuid,
       $cd_expr,
       random() * 100,
       'contoso-device-id-' || lpad((g % 1000)::text, 6, '0'),
       g / 1000,
       CASE WHEN g % 2 = 1 THEN 'TEMP' ELSE 'CO2' END,
       timestamptz '2026-01-01 00:00:00+00' + (g / 1000) * (interval '2 days' / ($N / 1000))
FROM generate_series(0, $N - 1) g;
-- narrow rows live in their own table, as a narrow stream table would
DROP TABLE IF EXISTS bench_narrow;
CREATE TABLE bench_narrow AS
SELECT event_id, value, device_id, device_sequence_number, type, created_at FROM bench_events;
VACUUM ANALYZE bench_events;
VACUUM ANALYZE bench_narrow;
SQL

WIDE='SELECT event_id, complex_data, value, device_id, device_sequence_number, type, created_at FROM bench_events'
NARROW='SELECT event_id, value, device_id, device_sequence_number, type, created_at FROM bench_narrow'

# warm the cache the same way for everyone
pg -c "COPY ($WIDE) TO '$OUT/warm.csv' (FORMAT csv)" -c "COPY ($NARROW) TO '$OUT/warm.csv' (FORMAT csv)"
rm -f "$OUT/warm.csv"

echo "best of $RUNS runs of each write"
printf '%-7s %-7s %10s %10s %7s %10s %10s %7s %10s\n' \
  shape codec iotstream_s duckdb_s ratio iots_MiB duck_MiB ratio copy_csv_s
for shape in wide narrow; do
  if [ $shape = wide ]; then Q=$WIDE; else Q=$NARROW; fi
  a=$(now_ns)
  pg -c "COPY ($Q) TO '$OUT/$shape.csv' (FORMAT csv)"
  b=$(now_ns)
  csv_s=$(secs "$a" "$b")
  rm -f "$OUT/$shape.csv"
  for codec in zstd snappy; do
    f=$OUT/iot_${shape}_$codec.parquet
    # the statement's time as psql sees it, like DuckDB's below (neither
    # counts starting a process or connecting)
    ours_ms=
    for run in $(seq 1 "$RUNS"); do
      out=$(pg -c '\timing on' -c "SELECT rows FROM iotstream.write_parquet(\$q\$$Q\$q\$, '$f', '{\"compression\": \"$codec\"}')")
      rows=$(grep -v '^Time' <<<"$out" | grep -v '^Timing' | tail -1)
      [ "$rows" = "$N" ] || { echo "write_parquet wrote $rows of $N rows" >&2; exit 1; }
      ms=$(awk '/^Time:/ { print $2 }' <<<"$out")
      ours_ms=$(awk -v a="${ours_ms:-$ms}" -v b="$ms" 'BEGIN { print (b < a ? b : a) }')
    done
    ours_s=$(awk "BEGIN { printf \"%.3f\", $ours_ms / 1000 }")

    d=$OUT/duck_${shape}_$codec.parquet
    copies=()
    for run in $(seq 1 "$RUNS"); do copies+=("COPY t TO '$d' (FORMAT parquet, COMPRESSION $codec)"); done
    times=$(cd test/node && node read_parquet.mjs duckdb-write \
      "CREATE TABLE t AS SELECT * FROM read_parquet('$f')" "${copies[@]}")
    duck_ms=$(echo "$times" | tail -n "$RUNS" | sort -n | head -1)
    duck_s=$(awk "BEGIN { printf \"%.3f\", $duck_ms / 1000 }")
    got=$(cd test/node && node read_parquet.mjs duckdb "SELECT count(*) FROM '$d'")
    [ "$got" = "[\"$N\"]" ] || { echo "DuckDB wrote $got rows" >&2; exit 1; }

    printf '%-7s %-7s %10s %10s %7.2f %10s %10s %7.2f %10s\n' "$shape" "$codec" \
      "$ours_s" "$duck_s" "$(awk "BEGIN { print $ours_s / $duck_s }")" \
      "$(mib "$f")" "$(mib "$d")" "$(awk "BEGIN { print $(stat -c %s "$f") / $(stat -c %s "$d") }")" \
      "$csv_s"
    rm -f "$f" "$d"
  done
done
pg -c "DROP TABLE bench_events, bench_narrow"

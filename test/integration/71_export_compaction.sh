#!/usr/bin/env bash
# Compaction: telemetry at 1,000 messages/s, ingested in one-second
# transactions (small batches, as a stream arrives), is exported as a few
# large files per hour rather than one file per batch: every file but the
# last of a period reaches target_file_size, and a period has
# ceil(bytes / target_file_size) files (one fewer when row groups overshoot
# the target).  DuckDB reads back every row.
#
# EXPORT_SIM_HOURS (default 2) sets how much of the simulated day is
# ingested; 24 is the whole day (86.4 million rows, several minutes here).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
NODE_DIR=$IOTSTREAM_ROOT/test/node
pg() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
HOURS=${EXPORT_SIM_HOURS:-2}
TARGET_MB=4

LAKE=$(mktemp -d /tmp/iotstream-lake.XXXXXX)
chown postgres: "$LAKE" 2>/dev/null || chmod 777 "$LAKE"
trap 'rm -rf "$LAKE"; _lib_cleanup' EXIT

pg <<SQL >/dev/null
SELECT iotstream.drop_export(name) FROM iotstream.exports WHERE name = 'compaction';
DROP TABLE IF EXISTS sim_day;
SELECT iotstream.create_stream_table('sim_day', 'ts timestamptz NOT NULL, device int, temperature float8, status text',
                                     'ts', '1 day');
SELECT iotstream.ensure_partitions('sim_day', date_trunc('day', now()) - interval '1 day', now());
SQL

# one INSERT per simulated second: 1,000 messages from 200 devices
start=$(date +%s)
{
  for ((s = 0; s < HOURS * 3600; s++)); do
    echo "INSERT INTO sim_day SELECT date_trunc('day', now()) - interval '1 day' + interval '$s s' + g * interval '1 ms', g % 200, 20 + (g % 200) * 0.01 + random(), CASE WHEN g % 97 = 0 THEN 'alarm' ELSE 'ok' END FROM generate_series(0, 999) g;"
  done
} | psql -X -q -v ON_ERROR_STOP=1 >/dev/null
rows=$(pg -c "SELECT count(*) FROM sim_day")
assert_eq "$rows" $((HOURS * 3600 * 1000)) "ingested $HOURS h at 1,000 msg/s in $((HOURS * 3600)) transactions ($(($(date +%s) - start)) s)"

pg -c "SELECT iotstream.create_export('compaction', 'sim_day', 'file://$LAKE', target_file_size => '${TARGET_MB}MB', schedule => NULL, format => 'parquet', options => '{\"row_group_size\": \"2MB\"}')"
start=$(date +%s)
pg -c "SELECT count(*) FROM iotstream.run_export('compaction')" >/dev/null
echo "   exported in $(($(date +%s) - start)) s"

# per period: files, their sizes, and what the rule expects
target=$((TARGET_MB * 1024 * 1024))
bad=0
while IFS='|' read -r hour nfiles bytes; do
  expected=$(((bytes + target - 1) / target))
  sizes=$(pg -c "SELECT string_agg((pg_stat_file(substr(f, 8))).size::text, ' ' ORDER BY f) FROM iotstream.export_log, unnest(files) f
                  WHERE export = 'compaction' AND status = 'exported' AND to_char(period_start AT TIME ZONE 'UTC', 'HH24') = '$hour'")
  small=0
  i=0
  for sz in $sizes; do
    i=$((i + 1))
    [ "$i" -lt "$nfiles" ] && [ "$sz" -lt "$target" ] && small=$((small + 1))
  done
  echo "   hour $hour: $nfiles files, $bytes bytes, ceil(bytes/target) = $expected, sizes: $sizes"
  if [ "$small" -gt 0 ] || [ "$nfiles" -gt "$expected" ] || [ "$nfiles" -lt $((expected - 1)) ] || [ "$nfiles" -lt 2 ]; then
    bad=$((bad + 1))
  fi
done < <(pg -c "SELECT to_char(period_start AT TIME ZONE 'UTC', 'HH24'), cardinality(files), bytes FROM iotstream.export_log
                 WHERE export = 'compaction' AND status = 'exported' AND rows > 0 ORDER BY period_start")
assert_eq "$bad" 0 "periods whose files are not compacted to the target size"
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.export_log WHERE export = 'compaction' AND status = 'exported' AND rows > 0")" "$HOURS" "one ledger row per hour with data"
assert_eq "$(find "$LAKE" -name '*.parquet' | wc -l)" "$(pg -c "SELECT sum(cardinality(files)) FROM iotstream.export_log WHERE export = 'compaction'")" "files on disk are the ledger's"
assert_eq "$(find "$LAKE" -name '.*tmp*' | wc -l)" 0 "no temporary files left"

got=$(cd "$NODE_DIR" && node read_parquet.mjs duckdb "SELECT count(*) || ' ' || sum(device) || ' ' || count(*) FILTER (WHERE status = 'alarm') || ' ' || min(ts) FROM read_parquet('$LAKE/sim_day/*/*/*.parquet')" | tr -d '[]"')
want=$(pg -c "SELECT count(*) || ' ' || sum(device) || ' ' || count(*) FILTER (WHERE status = 'alarm') || ' ' || to_char(min(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00' FROM sim_day")
assert_eq "$got" "$want" "DuckDB reads every row of every file"
pg -c "SELECT iotstream.drop_export('compaction')" -c "DROP TABLE sim_day" >/dev/null
echo "ok - 51_export_compaction"

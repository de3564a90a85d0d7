#!/usr/bin/env bash
# What a Delta table costs an export, same run:
#
#   test/bench/export_delta.sh [rows]        (default 1000000)
#   DELTA_RUNS=5: rounds of (a); the median of each side counts
#
# (a) The commit's overhead: run_export of one hourly period of 20,000
#     narrow rows with format => 'delta' against format => 'parquet' (the
#     same rows, a fresh export each round, alternating), to a local folder
#     and to Azurite.  Ours: the delta run; the peer: the parquet run; the
#     difference is what the Delta log adds (statistics, reading the log,
#     _last_checkpoint, the put-if-absent commit).
# (a2) The same in the steady state: two exports (delta, parquet) that
#     have committed before, of a table partitioned by hour; each round adds
#     20,000 rows of a new hour and times each export's run_export of it
#     (alternating which goes first).
# (b) A checkpoint of 10,000 files: a table whose version 0 adds 10,000
#     files (realistic stats) and versions 1 to 10 one file each; ours:
#     iotstream._delta_checkpoint of version 10 (the log read and replayed in
#     SQL, encoded as nested Parquet, written with _last_checkpoint), then
#     of version 20 built from it (the steady state).  The peer: DuckDB (2
#     threads) writing the same rows (loaded from our checkpoint, not
#     timed) as Parquet; the target is 1 s.
# (c) Throughput: run_export of one hour of [rows] narrow rows as a Delta
#     table and as plain Parquet, against DuckDB writing the same rows
#     (loaded from our files, not timed) with zstd, as parquet.sh does.
# All times are the statement's as psql or DuckDB see it (\timing).
# Uses the cluster of PGHOST/PGPORT if set, else starts a throwaway one.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
RUNS=${DELTA_RUNS:-5}

[ -n "${PGPORT:-}" ] || { . tools/cluster.sh; bench_cluster_start export_delta; }
. test/integration/lib.sh
OUT=$(mktemp -d /tmp/iotstream-bench-delta.XXXXXX)
chown postgres: "$OUT" 2>/dev/null || chmod 777 "$OUT"
cleanup() {
  stop_azurite
  rm -rf "$OUT"
  [ -z "${BENCH_CLUSTER:-}" ] || bench_cluster_stop
}
trap cleanup EXIT

pg() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
# ms SQL: the statement's milliseconds as psql sees them
ms() { pg -c '\timing on' -c "$1" | awk '/^Time:/ { t = $2 } END { print t }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
fmt() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }

start_azurite
azurite_request PUT "/bench?restype=container" | tail -n 1 | grep -q 201 || fail "could not create the container"
pg <<SQL >/dev/null
SET client_min_messages = warning;
SELECT iotstream.drop_export(name) FROM iotstream.exports WHERE name LIKE 'bd\_%';
DELETE FROM iotstream.storage_credentials WHERE name = 'bench_delta_az';
SELECT iotstream.create_storage_credential('bench_delta_az', 'shared_key', account => '$AZURITE_ACCOUNT', key => '$AZURITE_KEY');
DROP TABLE IF EXISTS bench_delta_small, bench_delta_rows;
SELECT iotstream.create_stream_table(t, 'ts timestamptz NOT NULL, device int, temperature float8, status text', 'ts', '1 day')
  FROM unnest(ARRAY['bench_delta_small', 'bench_delta_rows']) t;
SELECT iotstream.ensure_partitions(t, date_trunc('day', now()) - interval '1 day', now())
  FROM unnest(ARRAY['bench_delta_small', 'bench_delta_rows']::regclass[]) t;
INSERT INTO bench_delta_small SELECT date_trunc('day', now()) - interval '1 day' + g * interval '180 ms', g % 1000,
       20 + (g % 1000) * 0.01, CASE WHEN g % 97 = 0 THEN 'alarm' ELSE 'ok' END FROM generate_series(0, 19999) g;
INSERT INTO bench_delta_rows SELECT date_trunc('day', now()) - interval '1 day' + g * (interval '1 hour' / $N), g % 1000,
       20 + (g % 1000) * 0.01, CASE WHEN g % 97 = 0 THEN 'alarm' ELSE 'ok' END FROM generate_series(0, $N - 1) g;
VACUUM ANALYZE bench_delta_small, bench_delta_rows;
SQL

# ------------------------------------------------------------ (a) the commit
printf '%-44s %10s %10s %8s %9s\n' "(a) run_export of 20,000 rows, median of $RUNS" "delta" "parquet" "ratio" "commit"
for where in local azurite; do
  : >"$OUT/a_delta" ; : >"$OUT/a_parquet"
  for r in $(seq 1 "$RUNS"); do
    for f in delta parquet; do
      if [ $where = local ]; then dest="file://$OUT/a_${f}_$r"; cred=NULL
      else dest="$AZURITE_BLOB_URL/bench/a_${f}_$r"; cred="'bench_delta_az'"; fi
      pg -c "SELECT iotstream.create_export('bd_a', 'bench_delta_small', '$dest', credential => $cred, schedule => NULL, format => '$f')" >/dev/null
      t=$(ms "SELECT count(*) FROM iotstream.run_export('bd_a') WHERE rows > 0")
      [ "$(pg -c "SELECT sum(rows) FROM iotstream.export_log WHERE export = 'bd_a' AND status = 'exported'")" = 20000 ] ||
        fail "(a) the $f export did not write 20,000 rows"
      pg -c "SELECT iotstream.drop_export('bd_a')" >/dev/null
      echo "$t" >>"$OUT/a_$f"
    done
  done
  d=$(median <"$OUT/a_delta"); p=$(median <"$OUT/a_parquet")
  printf '%-44s %7s ms %7s ms %7sx %+6s ms\n' "   to $where" "$(fmt "$d")" "$(fmt "$p")" "$(fmt "$d / $p" 2)" "$(fmt "$d - $p")"
done

# ------------------------------------------------------------ (a2) the commit, steady state
printf '%-44s %10s %10s %8s %9s\n' "(a2) the same, exports that committed before" "delta" "parquet" "ratio" "commit"
for where in local azurite; do
  pg <<SQL >/dev/null
SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_delta_steady;
-- hourly partitions: a round's rows move the change signal of its own hour only
SELECT iotstream.create_stream_table('bench_delta_steady', 'ts timestamptz NOT NULL, device int, temperature float8, status text', 'ts', '1 hour');
SELECT iotstream.ensure_partitions('bench_delta_steady', date_trunc('day', now()) - interval '1 day', now());
INSERT INTO bench_delta_steady SELECT ts, device, temperature, status FROM bench_delta_small;
SQL
  for f in delta parquet; do
    if [ $where = local ]; then dest="file://$OUT/a2_${f}"; cred=NULL
    else dest="$AZURITE_BLOB_URL/bench/a2_${f}"; cred="'bench_delta_az'"; fi
    pg -c "SELECT iotstream.create_export('bd_s_$f', 'bench_delta_steady', '$dest', credential => $cred, schedule => NULL, format => '$f')" >/dev/null
    pg -c "SELECT count(*) FROM iotstream.run_export('bd_s_$f')" >/dev/null
  done
  : >"$OUT/t2_delta" ; : >"$OUT/t2_parquet"
  for r in $(seq 1 "$RUNS"); do
    pg -c "INSERT INTO bench_delta_steady SELECT ts + interval '$r hours', device, temperature, status FROM bench_delta_small" >/dev/null
    # hint bits and statistics set here, not by whichever export reads the rows first
    pg -c "VACUUM ANALYZE bench_delta_steady" >/dev/null
    order="delta parquet"; [ $((r % 2)) = 0 ] && order="parquet delta"
    for f in $order; do
      t=$(ms "SELECT count(*) FROM iotstream.run_export('bd_s_$f') WHERE rows > 0")
      [ "$(pg -c "SELECT sum(rows) FROM iotstream.export_log WHERE export = 'bd_s_$f' AND status = 'exported'")" = $((20000 * (r + 1))) ] ||
        fail "(a2) the $f export did not write round $r's 20,000 rows"
      echo "$t" >>"$OUT/t2_$f"
    done
  done
  pg -c "SELECT iotstream.drop_export('bd_s_delta'), iotstream.drop_export('bd_s_parquet')" >/dev/null
  d=$(median <"$OUT/t2_delta"); p=$(median <"$OUT/t2_parquet")
  printf '%-44s %7s ms %7s ms %7sx %+6s ms\n' "   to $where" "$(fmt "$d")" "$(fmt "$p")" "$(fmt "$d / $p" 2)" "$(fmt "$d - $p")"
done

# ------------------------------------------------------------ (b) a checkpoint of 10,000 files
CPD=$OUT/cp
pg <<SQL >/dev/null
SELECT iotstream.create_export('bd_cp', 'bench_delta_rows', 'file://$CPD', schedule => NULL);
-- version 0: protocol, metaData and 10,000 adds with stats like an export's
SELECT iotstream._delta_create_commit('file://$CPD', 'bench_delta_rows', NULL, 0, (
  SELECT string_agg(x::text, E'\n') || E'\n' FROM (
    SELECT '{"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}'::jsonb AS x
    UNION ALL
    SELECT jsonb_build_object('metaData', jsonb_build_object('id', gen_random_uuid(),
             'format', '{"provider": "parquet", "options": {}}'::jsonb,
             'schemaString', '{"type":"struct","fields":[{"name":"ts","type":"timestamp","nullable":true,"metadata":{}},{"name":"device","type":"integer","nullable":true,"metadata":{}},{"name":"temperature","type":"double","nullable":true,"metadata":{}},{"name":"status","type":"string","nullable":true,"metadata":{}},{"name":"event_date","type":"date","nullable":true,"metadata":{}},{"name":"event_hour","type":"integer","nullable":true,"metadata":{}}]}',
             'partitionColumns', '["event_date", "event_hour"]'::jsonb, 'configuration', '{}'::jsonb, 'createdTime', 0))
    UNION ALL
    SELECT jsonb_build_object('add', jsonb_build_object(
             'path', format('event_date=%s/event_hour=%s/part-00000-%s.parquet', d::date, extract(hour FROM d), md5(g::text)::uuid),
             'partitionValues', jsonb_build_object('event_date', d::date::text, 'event_hour', extract(hour FROM d)::text),
             'size', 100000000 + g, 'modificationTime', 1700000000000 + g, 'dataChange', true,
             'stats', jsonb_build_object('numRecords', 1000000, 'minValues', jsonb_build_object('ts', d, 'device', 0, 'temperature', 20.0, 'status', 'alarm'),
                                         'maxValues', jsonb_build_object('ts', d + interval '59 minutes', 'device', 999, 'temperature', 29.99, 'status', 'ok'),
                                         'nullCount', jsonb_build_object('ts', 0, 'device', 0, 'temperature', 0, 'status', 0))::text,
             'tags', jsonb_build_object('iotstream.period_start', d, 'iotstream.version', '1')))
      FROM generate_series(1, 10000) g, LATERAL (SELECT timestamptz '2025-01-01' + g * interval '1 hour' AS d) p) y));
SQL
# versions FROM to TO: one add and one txn each
small_commits() {
  pg -c "SELECT iotstream._delta_create_commit('file://$CPD', 'bench_delta_rows', NULL, v,
           jsonb_build_object('txn', jsonb_build_object('appId', 'bench', 'version', v, 'lastUpdated', 0))::text || E'\n' ||
           jsonb_build_object('add', jsonb_build_object('path', 'event_date=2026-01-01/event_hour=0/part-' || v || '.parquet',
             'partitionValues', '{\"event_date\": \"2026-01-01\", \"event_hour\": \"0\"}'::jsonb, 'size', 1000, 'modificationTime', 0,
             'dataChange', true))::text || E'\n')
         FROM generate_series($1, $2) v" >/dev/null
}
checkpoint_ms() {
  local t
  t=$(ms "SELECT iotstream._delta_checkpoint(e, 'bench_delta_rows', $1) FROM iotstream.exports e WHERE e.name = 'bd_cp'")
  [ "$(node -e 'const o = JSON.parse(require("fs").readFileSync(process.argv[1])); console.log(o.version + " " + o.numOfAddFiles)' "$CPD/bench_delta_rows/_delta_log/_last_checkpoint")" = "$1 $((10000 + $1))" ] ||
    fail "(b) the checkpoint of version $1 is missing or wrong"
  echo "$t"
}
small_commits 1 10
cp_full=$(checkpoint_ms 10)
small_commits 11 20
cp_incr=$(checkpoint_ms 20)
CPF=$CPD/bench_delta_rows/_delta_log/00000000000000000020.checkpoint.parquet
times=$(cd test/node && node read_parquet.mjs duckdb-write \
  "CREATE TABLE t AS SELECT * FROM read_parquet('$CPF')" \
  "COPY t TO '$OUT/duck_cp.parquet' (FORMAT parquet)" "COPY t TO '$OUT/duck_cp.parquet' (FORMAT parquet)" "COPY t TO '$OUT/duck_cp.parquet' (FORMAT parquet)")
duck_cp=$(echo "$times" | tail -n 3 | sort -n | head -1)
printf '%-44s %10s %10s %8s\n' "(b) checkpoint of 10,000 files" "iotstream" "peer" "ratio"
printf '%-44s %7s ms %7s ms %7sx\n' "   version 10, replaying versions 0 to 10" "$(fmt "$cp_full")" "1000" "$(fmt "$cp_full / 1000" 2)"
printf '%-44s %7s ms %7s ms %7sx\n' "   version 20, from 10's state + 11 to 20" "$(fmt "$cp_incr")" "1000" "$(fmt "$cp_incr / 1000" 2)"
printf '%-44s %7s ms %7s ms %7sx\n' "   vs DuckDB writing the same rows" "$(fmt "$cp_incr")" "$(fmt "$duck_cp")" "$(fmt "$cp_incr / $duck_cp" 2)"
echo "   (peer 1000 ms: the target; checkpoint $(stat -c %s "$CPF") bytes)"

# ------------------------------------------------------------ (c) throughput
printf '%-44s %10s %10s %8s\n' "(c) one hour of $N narrow rows, best of 2" "iotstream" "DuckDB" "ratio"
for f in delta parquet; do
  best=
  for r in 1 2; do
    pg -c "SELECT iotstream.create_export('bd_c', 'bench_delta_rows', 'file://$OUT/c_${f}_$r', schedule => NULL, format => '$f')" >/dev/null
    t=$(ms "SELECT count(*) FROM iotstream.run_export('bd_c') WHERE rows > 0")
    [ "$(pg -c "SELECT sum(rows) FROM iotstream.export_log WHERE export = 'bd_c' AND status = 'exported'")" = "$N" ] ||
      fail "(c) the $f export did not write $N rows"
    pg -c "SELECT iotstream.drop_export('bd_c')" >/dev/null
    best=$(awk -v a="${best:-$t}" -v b="$t" 'BEGIN { print (b < a ? b : a) }')
  done
  eval "c_$f=$best"
done
times=$(cd test/node && node read_parquet.mjs duckdb-write \
  "CREATE TABLE t AS SELECT * FROM read_parquet('$OUT/c_parquet_1/bench_delta_rows/**/*.parquet')" \
  "COPY t TO '$OUT/duck_c.parquet' (FORMAT parquet, COMPRESSION zstd)" "COPY t TO '$OUT/duck_c.parquet' (FORMAT parquet, COMPRESSION zstd)")
duck_c=$(echo "$times" | tail -n 2 | sort -n | head -1)
got=$(cd test/node && node read_parquet.mjs duckdb "SELECT count(*) FROM '$OUT/duck_c.parquet'")
[ "$got" = "[\"$N\"]" ] || fail "DuckDB wrote $got rows"
printf '%-44s %7s ms %7s ms %7sx\n' "   run_export, format => 'delta'" "$(fmt "$c_delta")" "$(fmt "$duck_c")" "$(fmt "$c_delta / $duck_c" 2)"
printf '%-44s %7s ms %7s ms %7sx\n' "   run_export, format => 'parquet'" "$(fmt "$c_parquet")" "$(fmt "$duck_c")" "$(fmt "$c_parquet / $duck_c" 2)"
printf '%-44s %7s ms %7s ms %7sx\n' "   delta against parquet" "$(fmt "$c_delta")" "$(fmt "$c_parquet")" "$(fmt "$c_delta / $c_parquet" 2)"

pg <<SQL >/dev/null
SELECT iotstream.drop_export('bd_cp');
DROP TABLE bench_delta_small, bench_delta_rows, bench_delta_steady;
SELECT iotstream.drop_storage_credential('bench_delta_az');
SQL

#!/usr/bin/env bash
# Delta Lake exports end to end, in a local folder and in Azurite.  The
# table is read by test/node/delta_read.mjs, a reader written from
# PROTOCOL.md (it validates every action, replays the log and resolves the
# live files), and every live file by DuckDB and hyparquet (size, rows and
# per-file stats against the add action).  After inserts, late rows (a
# remove and an add), an added column, a retried run (the txn dedupes it)
# and a storage failure between the upload and the commit, the live table
# equals the stream table by count and checksums; removed files stay until
# their retention ends; a dropped column is refused with nothing committed;
# past 10 commits the checkpoint alone gives the same table; log cleanup
# deletes only commits a checkpoint covers, older than log_retention; two exports
# racing for one version both land, on contiguous versions, in one cluster
# and across two clusters (exports of the same name).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ROOT=$IOTSTREAM_ROOT
NODE_DIR=$ROOT/test/node
rnode() { (cd "$NODE_DIR" && node "$@"); }
pg() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
command -v zstd >/dev/null || fail "the zstd command is missing (hyparquet needs it): apt-get install zstd"

W=$(mktemp -d "$IOTSTREAM_WORK/delta.XXXXXX")
chmod 777 "$W"
OWN_PIDS=()
_delta_cleanup() {
  local p
  for p in "${OWN_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${C2:-}" ] && cluster_stop "$C2"
  _lib_cleanup
}
trap _delta_cleanup EXIT

# the reader's view of a table: delta ROOT [args]
delta() { rnode delta_read.mjs "$@"; }
# one field of the reader's JSON: dfield JSON EXPR (a JS expression on o)
dfield() { node -e 'const o = JSON.parse(process.argv[1]); const v = eval(process.argv[2]); process.stdout.write(typeof v === "string" ? v : JSON.stringify(v))' "$1" "$2"; }

# per-column checksums: Postgres over the stream table, DuckDB over the live files
PG_SUMS="count(*) || ' ' || sum(n) || ' ' || round(sum(v)::numeric, 3) || ' ' || count(v) || ' ' ||
  sum(length(device)) || ' ' || count(DISTINCT device) || ' ' || sum(extract(epoch FROM ts)::bigint) || ' ' ||
  count(*) FILTER (WHERE flag) || ' ' || sum(length(payload::text)) || ' ' || count(DISTINCT id) || ' ' ||
  sum(amount) || ' ' || sum((extract(epoch FROM local_ts) * 1000)::bigint) || ' ' || sum(d - date '1970-01-01') || ' ' || coalesce(sum(small), 0)"
DUCK_SUMS="count(*) || ' ' || sum(n) || ' ' || round(sum(v)::DECIMAL(38,3), 3) || ' ' || count(v) || ' ' ||
  sum(length(device)) || ' ' || count(DISTINCT device) || ' ' || sum(epoch(ts)::BIGINT) || ' ' ||
  count(*) FILTER (WHERE flag) || ' ' || sum(length(payload)) || ' ' || count(DISTINCT id) || ' ' ||
  sum(amount) || ' ' || sum(epoch_ms(local_ts)) || ' ' || sum(d - DATE '1970-01-01') || ' ' || coalesce(sum(small), 0)"
# rows whose partition values disagree with their event time
DUCK_PARTS="count(*) FILTER (WHERE event_date <> CAST(to_timestamp(epoch(ts)) AT TIME ZONE 'UTC' AS DATE) OR event_hour <> (epoch(ts)::BIGINT // 3600) % 24)"

# check_table ROOT 'PG SOURCE' WHAT: the live table equals the source rows
check_table() {
  local root=$1 src=$2 what=$3 out
  out=$(delta "$root" --files --sql "SELECT ($DUCK_SUMS)::VARCHAR, ($DUCK_PARTS)::VARCHAR FROM t") ||
    fail "$what: the delta reader refused the table: $out"
  assert_eq "$(dfield "$out" 'o.sql[0][0]')" "$(pg -c "SELECT $PG_SUMS FROM $src")" "$what: the live files hold the stream table's rows (count and checksums, DuckDB)"
  assert_eq "$(dfield "$out" 'o.sql[0][1]')" 0 "$what: every row's partition values are its event time's"
  assert_eq "$(dfield "$out" 'o.hyparquetRows')" "$(pg -c "SELECT count(*) FROM $src")" "$what: hyparquet reads as many rows"
  LAST=$out
}

# --- the source: three hours of yesterday, every type the Delta schema maps
pg <<SQL >/dev/null
SELECT iotstream.drop_export(name) FROM iotstream.exports WHERE name IN ('dl', 'az', 'wa', 'wb', 'drop1', 'cp', 'p15', 'pday');
DELETE FROM iotstream.storage_credentials WHERE name = 'dl_key';
DROP TABLE IF EXISTS dl_src, dl_ret2, dl_cp, dl_parts;
DROP SCHEMA IF EXISTS wa, wb CASCADE;
SELECT iotstream.create_stream_table('dl_src',
  'ts timestamptz NOT NULL, device text, n int8, v float8, flag bool, payload jsonb, id uuid,
   amount numeric(12,3), local_ts timestamp, d date, small int2', 'ts', '1 day');
SELECT iotstream.ensure_partitions('dl_src', date_trunc('day', now()) - interval '1 day', now());
INSERT INTO dl_src
SELECT date_trunc('day', now()) - interval '1 day' + g * interval '2 s',
       CASE WHEN g % 50 = 0 THEN NULL ELSE 'dev-' || (g % 37) || CASE WHEN g % 11 = 0 THEN ' é€' ELSE '' END END,
       g::int8 * 1000003, CASE WHEN g % 13 = 0 THEN NULL ELSE g * 0.25 END, g % 3 = 0,
       jsonb_build_object('g', g, 's', repeat('x', g % 7)), md5(g::text)::uuid,
       CASE WHEN g % 17 = 0 THEN NULL ELSE (g % 1000) * 1.125 - 400 END,
       timestamp '2024-03-01 00:00:00' + g * interval '1.5 s', date '2024-01-01' + g % 400, (g % 300 - 150)::int2
  FROM generate_series(0, 3 * 1800 - 1) g;
SELECT iotstream.create_storage_credential('dl_key', 'shared_key', account => '$AZURITE_ACCOUNT', key => '$AZURITE_KEY');
SQL
LAKE=$W/lake
T=$LAKE/dl_src

# --- the first run: one commit, version 0
pg -c "SELECT iotstream.create_export('dl', 'dl_src', 'file://$LAKE', schedule => NULL)"
assert_eq "$(pg -c "SELECT format FROM iotstream.exports WHERE name = 'dl'")" delta "delta is the default format"
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.run_export('dl') WHERE rows > 0")" 3 "the first run exports three periods"
assert_eq "$(ls "$T/_delta_log" | tr '\n' ' ')" "00000000000000000000.json " "the run is one commit"
err=$(pg -c "SELECT iotstream.alter_export('dl', destination => 'file://$W/elsewhere')" 2>&1 || true)
case "$err" in *"has committed periods to its delta table"*"HINT:  Drop the export"*) echo "ok - a Delta table's destination cannot move" ;; *) fail "alter_export moved a delta table: $err" ;; esac
err=$(pg -c "SELECT iotstream.alter_export('dl', format => 'parquet')" 2>&1 || true)
case "$err" in *"has exported periods as delta"*) echo "ok - nor can its format change" ;; *) fail "alter_export changed the format: $err" ;; esac
check_table "$T" dl_src "first run"
out=$LAST
assert_eq "$(dfield "$out" 'o.versions + " " + o.files.length + " " + o.tombstones.length')" "1 3 0" "version 0 adds three files"
assert_eq "$(dfield "$out" 'o.partitionColumns.join(",")')" "event_date,event_hour" "partition columns from event time"
assert_eq "$(dfield "$out" 'o.schema.join(", ")')" \
  "ts timestamp, device string, n long, v double, flag boolean, payload string, id string, amount decimal(12,3), local_ts timestamp_ntz, d date, small short, event_date date, event_hour integer" \
  "the Delta schema maps every column type"
assert_eq "$(dfield "$out" 'JSON.stringify(o.protocol, Object.keys(o.protocol).sort())')" \
  '{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["timestampNtz"],"writerFeatures":["timestampNtz"]}' \
  "a timestamp column needs the timestampNtz feature"
assert_eq "$(dfield "$out" 'Object.values(o.txn).join(",")')" 1 "the txn records run 1"
assert_eq "$(dfield "$out" '/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(o.id)')" true "the table id is a GUID"
assert_eq "$(dfield "$out" 'o.files.map(f => f.path.replace(/part-.*/, "")).sort().join(" ")')" \
  "$(pg -c "SELECT string_agg(format('event_date=%s/event_hour=%s/', to_char(now() - interval '1 day', 'YYYY-MM-DD'), h), ' ' ORDER BY h::text) FROM generate_series(0, 2) h")" \
  "files are in event_date=/event_hour= folders"
# the stats of one file, as the add action has them (the reader checked them against DuckDB)
stats=$(node -e '
  const fs = require("fs"), p = process.argv[1]
  for (const l of fs.readFileSync(p, "utf8").split("\n").filter(Boolean)) {
    const a = JSON.parse(l)
    if (a.add && a.add.partitionValues.event_hour === "1") {
      const s = JSON.parse(a.add.stats)
      console.log([s.numRecords, s.minValues.ts, s.maxValues.ts, s.minValues.amount, s.maxValues.amount,
        s.nullCount.device, s.nullCount.amount, s.minValues.local_ts, s.minValues.d, "flag" in s.minValues, "id" in s.maxValues, s.minValues.id].join(" "))
    }
  }' "$T/_delta_log/00000000000000000000.json")
assert_eq "$stats" "$(pg -c "SELECT concat_ws(' ', count(*), to_char(min(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
  to_char(max(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), min(amount)::float8, max(amount)::float8, count(*) - count(device),
  count(*) - count(amount), to_char(min(local_ts), 'YYYY-MM-DD\"T\"HH24:MI:SS.MS'), min(d), 'false', 'false', left(min(id::text), 32))
  FROM dl_src WHERE ts >= date_trunc('day', now()) - interval '23 hours' AND ts < date_trunc('day', now()) - interval '22 hours'")" \
  "per-file stats: numRecords, bounds, null counts (no bounds for booleans; a long string's prefix as its minimum, no maximum)"
f=$(ls "$T"/event_date=*/event_hour=1/part-*.parquet)
cmp_out=$(rnode read_parquet.mjs compare "$f" "SELECT * FROM dl_src WHERE ts >= date_trunc('day', now()) - interval '23 hours' AND ts < date_trunc('day', now()) - interval '22 hours' ORDER BY ts") ||
  fail "DuckDB or hyparquet differ from the source: $cmp_out"
echo "ok - hyparquet and DuckDB read hour 1 value by value: $cmp_out"

# --- a second run with nothing new commits nothing
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.run_export('dl') WHERE rows > 0")" 0 "rerun writes nothing"
assert_eq "$(ls "$T/_delta_log" | wc -l)" 1 "rerun commits nothing"

# --- late rows: one commit removes the period's file and adds its new one
old=$(ls "$T"/event_date=*/event_hour=1/part-*.parquet)
pg -c "INSERT INTO dl_src (ts, device, n, v, flag, payload, id, amount, local_ts, d, small)
       SELECT date_trunc('day', now()) - interval '23 hours' + g * interval '1 minute' + interval '1 s', 'late', g, 1, true, '{}', NULL, 1.5,
              timestamp '2020-01-01', date '2020-01-01', 7 FROM generate_series(1, 10) g" >/dev/null
pg -c "SELECT pg_stat_force_next_flush()" >/dev/null
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.run_export('dl') WHERE rows > 0")" 1 "late rows re-export one period"
check_table "$T" dl_src "late rows"
assert_eq "$(dfield "$LAST" 'o.versions + " " + o.files.length + " " + o.tombstones.length')" "2 3 1" "version 1 removes one file and adds one"
assert_eq "$(dfield "$LAST" 'o.tombstones[0]')" "${old#$T/}" "the tombstone is the period's old file"
[ -f "$old" ] || fail "the removed file is gone before its retention ended"
echo "ok - the removed file stays for readers of version 0 (retention 7 days)"
assert_eq "$(pg -c "SELECT files_pending_deletion || ' ' || table_version FROM iotstream.export_status WHERE name = 'dl'")" "1 1" "export_status: one file pending deletion, version 1"
v0=$(delta "$T" --version 0 --sql "SELECT count(*)::VARCHAR FROM t")
assert_eq "$(dfield "$v0" 'o.sql[0][0]')" 5400 "time travel: version 0 still reads its 5400 rows"

# --- an added column: a metaData update in the next commit
pg -c "ALTER TABLE dl_src ADD COLUMN extra int" >/dev/null
pg -c "INSERT INTO dl_src (ts, device, n, v, flag, payload, id, amount, local_ts, d, small, extra)
       SELECT date_trunc('day', now()) - interval '22 hours' + g * interval '1 minute' + interval '1 s', 'new', g, 2, false, '{}', NULL, 2.5,
              timestamp '2021-01-01', date '2021-01-01', 8, g FROM generate_series(1, 5) g" >/dev/null
pg -c "SELECT pg_stat_force_next_flush()" >/dev/null
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.run_export('dl') WHERE rows > 0")" 3 "the periods are re-exported with the new column (their row text changed)"
check_table "$T" dl_src "added column"
assert_eq "$(dfield "$LAST" 'o.versions + " " + o.schema.slice(-3).join(", ")')" "3 extra integer, event_date date, event_hour integer" "the schema gains the column"
assert_eq "$(grep -c '"metaData"' "$T/_delta_log/00000000000000000002.json")" 1 "version 2 carries the new metaData"
assert_eq "$(dfield "$(delta "$T" --sql "SELECT sum(extra)::VARCHAR FROM t")" 'o.sql[0][0]')" 15 "the new column's values are in the table"

# --- a retried run: the first attempt commits, then its transaction rolls back
pg -c "INSERT INTO dl_src (ts, device, n, v, flag, payload, amount, local_ts, d, small)
       VALUES (date_trunc('day', now()) - interval '1 day' + interval '30 minutes 1 second', 'retry', 1, 3, true, '{}', 3.5, timestamp '2022-01-01', date '2022-01-01', 9)" >/dev/null
pg -c "SELECT pg_stat_force_next_flush()" >/dev/null
pg -c "BEGIN; SELECT count(*) FROM iotstream.run_export('dl'); ROLLBACK;" >/dev/null
assert_eq "$(ls "$T/_delta_log" | wc -l)" 4 "the rolled-back attempt committed version 3"
assert_eq "$(pg -c "SELECT delta_runs || ' ' || (delta_state->>'version') FROM iotstream.exports WHERE name = 'dl'")" "3 2" "Postgres forgot the attempt"
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.run_export('dl') WHERE rows > 0")" 1 "the retry exports the period again"
assert_eq "$(ls "$T/_delta_log" | wc -l)" 4 "the retry finds its txn and does not commit twice"
assert_eq "$(pg -c "SELECT delta_runs || ' ' || (delta_state->>'version') FROM iotstream.exports WHERE name = 'dl'")" "4 3" "the export knows version 3 is its run 4"
check_table "$T" dl_src "retried run"
# rows that come between the attempt and its retry: the retry writes other
# bytes under the same names, and commits them again instead of nothing
pg -c "INSERT INTO dl_src (ts, device, n) VALUES (date_trunc('day', now()) - interval '1 day' + interval '31 minutes', 'retry2', 2)" >/dev/null
pg -c "SELECT pg_stat_force_next_flush()" >/dev/null
pg -c "BEGIN; SELECT count(*) FROM iotstream.run_export('dl'); ROLLBACK;" >/dev/null
pg -c "INSERT INTO dl_src (ts, device, n) VALUES (date_trunc('day', now()) - interval '1 day' + interval '32 minutes', 'retry3', 3)" >/dev/null
pg -c "SELECT pg_stat_force_next_flush()" >/dev/null
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.run_export('dl') WHERE rows > 0")" 1 "the retry with more rows exports the period"
assert_eq "$(ls "$T/_delta_log" | wc -l)" 6 "the attempt committed version 4; the retry corrects it in version 5"
assert_eq "$(grep -o '"version": [0-9]*' "$T/_delta_log/00000000000000000005.json" | head -1) $(grep -c '"add"' "$T/_delta_log/00000000000000000005.json")" \
  "$(grep -o '"version": [0-9]*' "$T/_delta_log/00000000000000000004.json" | head -1) 1" "version 5 carries the same txn and the file again"
check_table "$T" dl_src "retried run with rows between the attempts"

# --- refused: a dropped column needs column mapping; nothing is committed
pg -c "ALTER TABLE dl_src DROP COLUMN small" >/dev/null
pg -c "INSERT INTO dl_src (ts, device, n) VALUES (date_trunc('day', now()) - interval '1 day' + interval '40 minutes', 'drop', 1)" >/dev/null
pg -c "SELECT pg_stat_force_next_flush()" >/dev/null
err=$(pg -c "SELECT count(*) FROM iotstream.run_export('dl')" 2>&1 || true)
case "$err" in
  *"the stream table's columns no longer match its delta table"*"HINT:  Add columns at the end instead"*) echo "ok - a dropped column is refused with a hint" ;;
  *) fail "a dropped column was not refused: $err" ;;
esac
assert_eq "$(ls "$T/_delta_log" | wc -l)" 6 "the refused run committed nothing"
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.export_log WHERE export = 'dl' AND period_start = date_trunc('day', now()) - interval '1 day' AND status = 'exported'")" 1 "the refused run left the ledger alone"
pg -c "SELECT iotstream.drop_export('dl')" >/dev/null

# --- retention: files a commit removed go once it has passed
pg -c "SELECT iotstream.create_stream_table('dl_ret2', 'ts timestamptz NOT NULL, n int', 'ts', '1 day')" >/dev/null
pg -c "SELECT iotstream.ensure_partitions('dl_ret2', date_trunc('day', now()) - interval '1 day', now())" >/dev/null
pg -c "INSERT INTO dl_ret2 SELECT date_trunc('day', now()) - interval '1 day' + g * interval '1 minute', g FROM generate_series(0, 59) g" >/dev/null
pg -c "SELECT iotstream.create_export('drop1', 'dl_ret2', 'file://$LAKE', schedule => NULL, options => '{\"deleted_file_retention\": \"1 hour\"}')" >/dev/null
pg -c "SELECT count(*) FROM iotstream.run_export('drop1')" >/dev/null
r_old=$(ls "$LAKE"/dl_ret2/event_date=*/event_hour=0/part-*.parquet)
pg -c "INSERT INTO dl_ret2 VALUES (date_trunc('day', now()) - interval '1 day' + interval '30 s', -1)" >/dev/null
pg -c "SELECT pg_stat_force_next_flush()" >/dev/null
pg -c "SELECT count(*) FROM iotstream.run_export('drop1')" >/dev/null
pg -c "SELECT count(*) FROM iotstream.run_export('drop1')" >/dev/null
[ -f "$r_old" ] || fail "a removed file went before its retention of 1 hour"
echo "ok - a removed file stays while its retention lasts, across runs"
# an hour later (the removal moved back an hour): the next run deletes it
pg -c "UPDATE iotstream.export_log SET removed_at = removed_at - interval '61 minutes' WHERE export = 'drop1' AND status = 'replacing'" >/dev/null
pg -c "SELECT count(*) FROM iotstream.run_export('drop1')" >/dev/null
[ ! -e "$r_old" ] || fail "the removed file outlived its retention"
echo "ok - the next run after its retention deletes the removed file"
assert_eq "$(pg -c "SELECT status FROM iotstream.export_log WHERE export = 'drop1' AND version = 1 AND rows > 0")" replaced "the ledger records the deletion"
out=$(delta "$LAKE/dl_ret2" --files --sql "SELECT count(*)::VARCHAR, sum(n)::VARCHAR FROM t") || fail "reader: $out"
assert_eq "$(dfield "$out" 'o.sql[0].join(" ")')" "$(pg -c "SELECT count(*) || ' ' || sum(n) FROM dl_ret2")" "retention: the live table is whole"
assert_eq "$(dfield "$out" 'JSON.stringify(o.protocol, Object.keys(o.protocol).sort())')" '{"minReaderVersion":1,"minWriterVersion":2}' "a table without timestamp columns needs no table features"

# --- partition columns follow the period; a column of the table named
# event_date renames them
pg <<SQL >/dev/null
SELECT iotstream.create_stream_table('dl_parts', 'ts timestamptz NOT NULL, event_date text, n int', 'ts', '1 day');
SELECT iotstream.ensure_partitions('dl_parts', date_trunc('day', now()) - interval '1 day', now());
INSERT INTO dl_parts SELECT date_trunc('day', now()) - interval '1 day' + g * interval '1 minute', 'mine-' || g, g FROM generate_series(0, 59) g;
SELECT iotstream.create_export('p15', 'dl_parts', 'file://$W/p15', period => '15 minutes', schedule => NULL);
SELECT iotstream.create_export('pday', 'dl_parts', 'file://$W/pday', period => '1 day', schedule => NULL);
SQL
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.run_export('p15') WHERE rows > 0") $(pg -c "SELECT count(*) FROM iotstream.run_export('pday') WHERE rows > 0")" "4 1" "15-minute and daily periods"
out=$(delta "$W/p15/dl_parts" --files --sql "SELECT count(*)::VARCHAR, sum(n)::VARCHAR, count(DISTINCT event_date)::VARCHAR,
  count(*) FILTER (WHERE iotstream_event_minute <> (epoch(ts)::BIGINT // 900 % 4) * 15 OR iotstream_event_hour <> 0)::VARCHAR FROM t") || fail "reader: $out"
assert_eq "$(dfield "$out" 'o.partitionColumns.join(",") + " " + o.files.map(f => f.path.replace(/\/part-.*/, "").replace(/=[0-9-]{10}/, "=D")).sort().join(" ")')" \
  "iotstream_event_date,iotstream_event_hour,iotstream_event_minute iotstream_event_date=D/iotstream_event_hour=0/iotstream_event_minute=0 iotstream_event_date=D/iotstream_event_hour=0/iotstream_event_minute=15 iotstream_event_date=D/iotstream_event_hour=0/iotstream_event_minute=30 iotstream_event_date=D/iotstream_event_hour=0/iotstream_event_minute=45" \
  "periods under an hour add event_minute; the table's own event_date makes them iotstream_*"
assert_eq "$(dfield "$out" 'o.sql[0].join(" ")')" "60 1770 60 0" "15-minute periods: rows, the table's event_date column, partition values"
out=$(delta "$W/pday/dl_parts" --files --sql "SELECT count(*)::VARCHAR, sum(n)::VARCHAR FROM t") || fail "reader: $out"
assert_eq "$(dfield "$out" 'o.partitionColumns.join(",") + " " + o.files.length + " " + o.sql[0].join(" ")')" "iotstream_event_date 1 60 1770" "daily periods: the date alone"

# --- checkpoints: every 10 commits; the checkpoint alone gives the same table
pg <<SQL >/dev/null
SELECT iotstream.create_stream_table('dl_cp', 'ts timestamptz NOT NULL, n int, tag text', 'ts', '1 day');
SELECT iotstream.ensure_partitions('dl_cp', date_trunc('day', now()) - interval '1 day', now());
INSERT INTO dl_cp SELECT date_trunc('day', now()) - interval '1 day' + g * interval '1 minute', g, 't' || g % 5 FROM generate_series(0, 119) g;
SELECT iotstream.create_export('cp', 'dl_cp', 'file://$LAKE', schedule => NULL);
SQL
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.run_export('cp') WHERE rows > 0")" 2 "cp: version 0 exports two periods"
for i in $(seq 1 11); do
  pg -c "INSERT INTO dl_cp VALUES (date_trunc('day', now()) - interval '1 day' + interval '$((i % 2)) hours' + interval '$i s', -$i, 'late')" >/dev/null
  pg -c "SELECT pg_stat_force_next_flush()" >/dev/null
  [ "$(pg -c "SELECT count(*) FROM iotstream.run_export('cp') WHERE rows > 0")" = 1 ] || fail "cp: run $i did not re-export one period"
done
CP=$LAKE/dl_cp
assert_eq "$(ls "$CP/_delta_log" | grep -c '\.json$')" 12 "cp: versions 0 to 11"
assert_eq "$(ls "$CP/_delta_log" | grep checkpoint | tr '\n' ' ')" "00000000000000000010.checkpoint.parquet _last_checkpoint " "cp: one checkpoint, of version 10"
assert_eq "$(dfield "$(cat "$CP/_delta_log/_last_checkpoint")" 'o.version + " " + o.numOfAddFiles')" "10 2" "_last_checkpoint names version 10 and its two live files"
assert_eq "$(pg -c "SELECT table_version || ' ' || last_checkpoint FROM iotstream.export_status WHERE name = 'cp'")" "11 10" "export_status: version 11, last checkpoint 10"
SUMS="SELECT count(*)::VARCHAR, sum(n)::VARCHAR, count(DISTINCT tag)::VARCHAR FROM t"
full=$(delta "$CP" --no-checkpoint --files --sql "$SUMS") || fail "reader: $full"
withcp=$(delta "$CP" --files --sql "$SUMS") || fail "reader with the checkpoint: $withcp"
assert_eq "$(dfield "$withcp" 'o.checkpoint')" 10 "the reader starts from the checkpoint (hyparquet and DuckDB read it)"
pick='JSON.stringify([o.files.map(f => f.path + ":" + f.size + ":" + f.numRecords).sort(), o.tombstones, o.txn, o.schema, o.sql])'
assert_eq "$(dfield "$withcp" "$pick")" "$(dfield "$full" "$pick")" "checkpoint + later commits = every JSON commit: files, tombstones, txn, schema, rows"
assert_eq "$(dfield "$withcp" 'o.sql[0].join(" ")')" "$(pg -c "SELECT count(*) || ' ' || sum(n) || ' ' || count(DISTINCT tag) FROM dl_cp")" "cp: the table holds the stream table's rows"
# without the JSON it covers, the checkpoint alone still gives the table
cp -r "$CP" "$W/cponly"
rm "$W/cponly/_delta_log/"0000000000000000000*.json "$W/cponly/_delta_log/00000000000000000010.json"
only=$(delta "$W/cponly" --files --sql "$SUMS") || fail "reader without the early commits: $only"
assert_eq "$(dfield "$only" "$pick")" "$(dfield "$full" "$pick")" "the checkpoint alone, without versions 0 to 10, gives the same live files"
v10=$(delta "$W/cponly" --version 10 --sql "$SUMS") || fail "reader at version 10: $v10"
assert_eq "$(dfield "$v10" 'o.files.length + " " + o.tombstones.length')" "2 10" "version 10 from its checkpoint: two files, ten tombstones within their retention"

# --- log cleanup: commits older than log_retention go once a checkpoint
# covers them; the checkpoint they go below, and every commit after it, stay
pg <<SQL >/dev/null
SELECT iotstream.create_stream_table('dl_lc', 'ts timestamptz NOT NULL, n int', 'ts', '1 day');
SELECT iotstream.ensure_partitions('dl_lc', date_trunc('day', now()) - interval '1 day', now());
INSERT INTO dl_lc SELECT date_trunc('day', now()) - interval '1 day' + g * interval '1 minute', g FROM generate_series(0, 119) g;
SELECT iotstream.create_export('lc', 'dl_lc', 'file://$LAKE', schedule => NULL,
       options => '{"log_retention": "1 hour", "deleted_file_retention": "1 day"}');
SQL
err=$(pg -c "SELECT iotstream.alter_export('lc', options => '{\"log_retention\": \"soon\"}')" 2>&1) && fail "a bad log_retention was accepted"
case "$err" in *"invalid log_retention \"soon\""*"HINT:  Give an interval such as '30 days'"*) echo "ok - a bad log_retention is refused with a hint" ;; *) fail "log_retention: $err" ;; esac
# late rows make each run one commit: versions 0 to 11, a checkpoint at 10
lc_commits() {
  local i
  for i in $(seq "$1" "$2"); do
    pg -c "INSERT INTO dl_lc VALUES (date_trunc('day', now()) - interval '1 day' + interval '$((i % 2)) hours' + interval '$i s', -$i)" >/dev/null
    pg -c "SELECT pg_stat_force_next_flush()" >/dev/null
    [ "$(pg -c "SELECT count(*) FROM iotstream.run_export('lc') WHERE rows > 0")" = "$3" ] || fail "lc: run $i did not export $3 period(s)"
  done
}
lc_commits 0 0 2
lc_commits 1 11 1
LC=$LAKE/dl_lc
lc_json() { ls "$LC/_delta_log" | grep '\.json$' | sed 's/^0*\([0-9]\)/\1/; s/\.json$//' | tr '\n' ' '; }
assert_eq "$(pg -c "SELECT (delta_state->>'checkpoint') || ' ' || jsonb_array_length(delta_state->'checkpoints') FROM iotstream.exports WHERE name = 'lc'")" "10 1" "lc: a checkpoint at version 10"
before=$(delta "$LC" --no-checkpoint --files --sql "SELECT count(*)::VARCHAR, sum(n)::VARCHAR FROM t") || fail "reader: $before"
# a retention of 1 second only now: a slow machine's run of version 11 must not clean up first
pg -c "SELECT iotstream.alter_export('lc', options => '{\"log_retention\": \"1 second\", \"deleted_file_retention\": \"1 day\"}')" >/dev/null
# poll: each run cleans up once the checkpoint's commit is older than 1 second
wait_for "SELECT EXISTS (SELECT 1 FROM iotstream.export_log WHERE export = 'lc' AND status = 'log_cleaned')
          FROM (SELECT count(*) FROM iotstream.run_export('lc')) r" 30
assert_eq "$(lc_json)" "10 11 " "log cleanup deleted versions 0 to 9 and kept 10 (its checkpoint) and 11"
assert_eq "$(ls "$LC/_delta_log" | grep -c checkpoint)" 2 "the checkpoint of version 10 and _last_checkpoint stay"
assert_eq "$(pg -c "SELECT version || ' ' || cardinality(files) || ' ' || (files[1] = '00000000000000000000.json') || ' ' || (files[10] = '00000000000000000009.json') || ' ' || (period_end <= finished_at - interval '1 second')
                   FROM iotstream.export_log WHERE export = 'lc' AND status = 'log_cleaned'")" "10 10 true true true" \
  "the ledger records the cleanup: cut at version 10, the ten entries deleted, commits older than the retention"
after=$(delta "$LC" --files --sql "SELECT count(*)::VARCHAR, sum(n)::VARCHAR FROM t") || fail "reader after the cleanup: $after"
pick='JSON.stringify([o.files.map(f => f.path + ":" + f.size + ":" + f.numRecords).sort(), o.txn, o.schema, o.sql])'
assert_eq "$(dfield "$after" "$pick")" "$(dfield "$before" "$pick")" "after the cleanup, the checkpoint and version 11 give the table every JSON commit gave"
assert_eq "$(dfield "$after" 'o.sql[0].join(" ")')" "$(pg -c "SELECT count(*) || ' ' || sum(n) FROM dl_lc")" "lc: the table holds the stream table's rows"
assert_eq "$(pg -c "SELECT min(version) || ' ' || count(*) FROM iotstream.delta_history('lc')")" "10 2" "delta_history starts at the first version kept"
# the next checkpoint is built from the last one: versions 0 to 9 are gone
lc_commits 12 21 1
assert_eq "$(pg -c "SELECT last_checkpoint FROM iotstream.export_status WHERE name = 'lc'")" 20 "lc: a checkpoint at version 20, without versions 0 to 9"
at20=$(delta "$LC" --version 20 --files --sql "SELECT count(*)::VARCHAR, sum(n)::VARCHAR FROM t") || fail "reader at version 20: $at20"
assert_eq "$(dfield "$at20" 'o.checkpoint + " " + o.sql[0].join(" ")')" "20 $(pg -c "SELECT count(*) || ' ' || sum(n) FROM dl_lc WHERE n <> -21")" "the checkpoint of version 20 holds every row up to version 20"
wait_for "SELECT (SELECT count(*) FROM iotstream.export_log WHERE export = 'lc' AND status = 'log_cleaned') = 2
          FROM (SELECT count(*) FROM iotstream.run_export('lc')) r" 30
assert_eq "$(lc_json)" "20 21 " "the second cleanup cut at version 20"
assert_eq "$(ls "$LC/_delta_log" | grep checkpoint | tr '\n' ' ')" "00000000000000000020.checkpoint.parquet _last_checkpoint " "and deleted the checkpoint of version 10"
out=$(delta "$LC" --files --sql "SELECT count(*)::VARCHAR, sum(n)::VARCHAR FROM t") || fail "reader: $out"
assert_eq "$(dfield "$out" 'o.sql[0].join(" ")')" "$(pg -c "SELECT count(*) || ' ' || sum(n) FROM dl_lc")" "after two cleanups the table holds the stream table's rows"
# a writer that has not read the deleted versions joins from the checkpoint:
# _last_checkpoint names version 20, whose checkpoint (read back by the C
# reader) gives the table's metaData and protocol, and the commits after it
# the rest; it commits version 22 without rewriting any history
pg <<SQL >/dev/null
CREATE SCHEMA lcj;
SELECT iotstream.create_stream_table('lcj.dl_lc', 'ts timestamptz NOT NULL, n int', 'ts', '1 day');
SELECT iotstream.ensure_partitions('lcj.dl_lc', date_trunc('day', now()) - interval '1 day', now());
INSERT INTO lcj.dl_lc VALUES (date_trunc('day', now()) - interval '1 day' + interval '30 minutes', 1000);
SELECT iotstream.create_export('lcj', 'lcj.dl_lc', 'file://$LAKE', schedule => NULL);
SQL
id_before=$(dfield "$out" 'o.id')
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.run_export('lcj') WHERE rows > 0")" 1 "a writer joins a cleaned-up log from its checkpoint"
assert_eq "$(lc_json)" "20 21 22 " "and commits the next version, 22"
assert_eq "$(node -e 'const c = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8").split("\n")[0]).commitInfo; console.log(c.readVersion + " " + c.iotstream.export + " " + c.iotstream.attempt)' "$LC/_delta_log/00000000000000000022.json")" \
  "21 lcj 2" "it read version 21 after the checkpoint of 20 (its second attempt)"
assert_eq "$(grep -c metaData "$LC/_delta_log/00000000000000000022.json" || true)" 0 "the checkpoint's metaData is the table's: no schema change committed"
assert_eq "$(pg -c "SELECT table_version || ' ' || last_checkpoint FROM iotstream.export_status WHERE name = 'lcj'")" "22 20" "export_status: version 22, the checkpoint of 20"
assert_eq "$(pg -c "SELECT string_agg(version::text, ' ' ORDER BY version) FROM iotstream.delta_history('lcj')")" "20 21 22" "its history starts at the checkpoint"
# the first writer, on its next run, loses version 22 and takes 23
pg -c "INSERT INTO dl_lc VALUES (date_trunc('day', now()) - interval '1 day' + interval '40 minutes', -100)" >/dev/null
pg -c "SELECT pg_stat_force_next_flush()" >/dev/null
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.run_export('lc') WHERE rows > 0")" 1 "the first writer re-exports a period"
assert_eq "$(lc_json)" "20 21 22 23 " "and commits version 23 after the joiner's"
out=$(delta "$LC" --files --sql "SELECT count(*)::VARCHAR, sum(n)::VARCHAR FROM t") || fail "reader after the join: $out"
assert_eq "$(dfield "$out" 'o.sql[0].join(" ")')" "$(pg -c "SELECT count(*) || ' ' || sum(n) FROM (SELECT n FROM dl_lc UNION ALL SELECT n FROM lcj.dl_lc) u")" \
  "the table holds both writers' rows, none lost or doubled"
assert_eq "$(dfield "$out" 'o.id + " " + Object.keys(o.txn).length')" "$id_before 2" "the same table (its id), two writers"
# the joiner's own checkpoints build on the one it read
for i in $(seq 1 7); do
  pg -c "INSERT INTO lcj.dl_lc VALUES (date_trunc('day', now()) - interval '1 day' + interval '$((i % 2)) hours' + interval '$i s', $i)" >/dev/null
  pg -c "SELECT pg_stat_force_next_flush()" >/dev/null
  [ "$(pg -c "SELECT count(*) FROM iotstream.run_export('lcj') WHERE rows > 0")" = 1 ] || fail "lcj: run $i did not export one period"
done
assert_eq "$(pg -c "SELECT last_checkpoint FROM iotstream.export_status WHERE name = 'lcj'")" 30 "the joiner writes the checkpoint of version 30, from the one of 20 and the commits since"
at30=$(delta "$LC" --version 30 --files --sql "SELECT count(*)::VARCHAR, sum(n)::VARCHAR FROM t") || fail "reader at version 30: $at30"
assert_eq "$(dfield "$at30" 'o.checkpoint + " " + o.sql[0].join(" ")')" \
  "30 $(pg -c "SELECT count(*) || ' ' || sum(n) FROM (SELECT n FROM dl_lc UNION ALL SELECT n FROM lcj.dl_lc) u")" "the checkpoint of 30 holds every row"
# the checkpoint reader gives back exactly the actions the checkpoint was written from
assert_eq "$(pg -c "WITH r AS (SELECT jsonb_strip_nulls(a) a FROM unnest(iotstream._delta_read_checkpoint('file://$LAKE', 'dl_lc', NULL, 30)) a),
                        w AS (SELECT jsonb_strip_nulls(a) a FROM iotstream.export_delta_checkpoints c, unnest(c.actions) a WHERE c.export = 'lcj' AND c.version = 30)
                   SELECT (SELECT count(*) FROM r) || ' ' || ((SELECT count(*) FROM r) = (SELECT count(*) FROM w))
                          || ' ' || (SELECT count(*) FROM (SELECT a FROM r EXCEPT ALL SELECT a FROM w) x)")" \
  "$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).size + " true 0")' "$LC/_delta_log/_last_checkpoint")" \
  "the checkpoint reader reads back every action the checkpoint of 30 was written from"
# a damaged checkpoint is an error (data_corrupted), never a crash
mkdir -p "$W/bad/t/_delta_log"
cp30=$LC/_delta_log/00000000000000000030.checkpoint.parquet
size=$(stat -c %s "$cp30")
head -c $((size / 2)) "$cp30" >"$W/bad/t/_delta_log/00000000000000000001.checkpoint.parquet"
{ head -c $((size - 8)) "$cp30"; printf '\377\377\377\177PAR1'; } >"$W/bad/t/_delta_log/00000000000000000002.checkpoint.parquet"
{ head -c 200 "$cp30"; head -c 300 /dev/zero; tail -c +501 "$cp30"; } >"$W/bad/t/_delta_log/00000000000000000003.checkpoint.parquet"
chmod -R a+rX "$W/bad"
for v in 1 2 3; do
  err=$(pg -c "SELECT iotstream._delta_read_checkpoint('file://$W/bad', 't', NULL, $v)" 2>&1 || true)
  case "$err" in *"could not read a parquet file"*) ;; *) fail "damaged checkpoint $v: $err" ;; esac
done
assert_eq "$(pg -c "SELECT 'alive'")" alive "damaged checkpoints (cut, a footer length past the file, pages zeroed) are errors, and the server stays up"
pg -c "SELECT iotstream.drop_export('lcj')" >/dev/null

# --- two exports race for one version: both land, on contiguous versions
pg <<SQL >/dev/null
CREATE SCHEMA wa; CREATE SCHEMA wb;
SELECT iotstream.create_stream_table('wa.readings', 'ts timestamptz NOT NULL, site text, n int8', 'ts', '1 day');
SELECT iotstream.create_stream_table('wb.readings', 'ts timestamptz NOT NULL, site text, n int8', 'ts', '1 day');
SELECT iotstream.ensure_partitions(t, date_trunc('day', now()) - interval '1 day', now()) FROM unnest(ARRAY['wa.readings', 'wb.readings']::regclass[]) t;
INSERT INTO wa.readings SELECT date_trunc('day', now()) - interval '1 day' + g * interval '10 s', 'a', g FROM generate_series(0, 719) g;
INSERT INTO wb.readings SELECT date_trunc('day', now()) - interval '1 day' + g * interval '10 s', 'b', g * 2 FROM generate_series(0, 719) g;
SELECT iotstream.create_export('wa', 'wa.readings', 'file://$W/shared', schedule => NULL);
SELECT iotstream.create_export('wb', 'wb.readings', 'file://$W/shared', schedule => NULL);
SQL
# wb reads the log, then waits for its exports row, which a session holds
# (FOR NO KEY UPDATE: the ledger's foreign key checks still pass)
mkfifo "$W/hold.in"
psql -X -q -A -t <"$W/hold.in" >"$W/hold.out" 2>&1 &
HOLD=$!; OWN_PIDS+=($HOLD); _lib_record_pid $HOLD
exec 7>"$W/hold.in"
echo "BEGIN; SELECT 'held' FROM iotstream.exports WHERE name = 'wb' FOR NO KEY UPDATE;" >&7
wait_for "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE '%FOR NO KEY UPDATE;' AND state = 'idle in transaction')" 30
pg -c "SELECT count(*) FROM iotstream.run_export('wb') WHERE rows > 0" >"$W/wb.out" 2>&1 &
WB=$!; OWN_PIDS+=($WB)
wait_for "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE '%run_export(''wb'')%' AND wait_event_type = 'Lock')" 60
# meanwhile wa commits version 0, the version wb is about to create
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.run_export('wa') WHERE rows > 0")" 2 "wa exports its two periods"
echo "COMMIT;" >&7
exec 7>&-
wait $WB || fail "wb failed: $(cat "$W/wb.out")"
assert_eq "$(cat "$W/wb.out")" 2 "wb exports its two periods"
out=$(delta "$W/shared/readings" --files --sql "SELECT count(*)::VARCHAR, sum(n)::VARCHAR, count(DISTINCT site)::VARCHAR FROM t") || fail "reader: $out"
assert_eq "$(dfield "$out" 'o.versions + " " + o.files.length + " " + Object.keys(o.txn).length')" "2 4 2" "versions 0 and 1, four files, two writers"
assert_eq "$(dfield "$out" 'o.sql[0].join(" ")')" \
  "$(pg -c "SELECT count(*) || ' ' || sum(n) || ' ' || count(DISTINCT site) FROM (SELECT * FROM wa.readings UNION ALL SELECT * FROM wb.readings) u")" \
  "no file of either writer is lost or doubled"
attempts=$(node -e '
  const fs = require("fs"), d = process.argv[1]
  console.log(fs.readdirSync(d).sort().map(f => JSON.parse(fs.readFileSync(d + "/" + f, "utf8").split("\n")[0]).commitInfo.iotstream)
    .map(i => i.export + ":" + i.attempt).join(" "))' "$W/shared/readings/_delta_log")
assert_eq "$attempts" "wa:1 wb:2" "wb lost version 0 to wa, read it, and committed version 1 at its second attempt"
assert_eq "$(grep -c '"metaData"' "$W/shared/readings/_delta_log/00000000000000000001.json" || true)" 0 "the loser does not write metaData again"
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.delta_history('wb')")" 2 "delta_history lists both commits"
assert_eq "$(pg -c "SELECT string_agg(version || ':' || writer || ':' || files_added || ':' || rows_added, ' ' ORDER BY version) FROM iotstream.delta_history('wa')")" \
  "0:wa:2:720 1:wb:2:720" "delta_history: version, writer, files and rows"

# --- two servers, one table: exports of the same name in two clusters race
# freely (each round runs both at once), as servers that share the Kafka
# partitions would
C2=$W/c2
(cluster_start "$C2" delta_c2 >/dev/null 2>&1) || fail "could not start a second cluster"
pg2() { (. "$C2/env"; psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"); }
for q in pg pg2; do
  $q <<SQL >/dev/null
DROP TABLE IF EXISTS twin;
SELECT iotstream.create_stream_table('twin', 'ts timestamptz NOT NULL, n int8', 'ts', '1 day');
SELECT iotstream.ensure_partitions('twin', date_trunc('day', now()) - interval '1 day', now());
INSERT INTO twin SELECT date_trunc('day', now()) - interval '1 day' + g * interval '1 minute', g FROM generate_series(0, 179) g;
SELECT iotstream.create_export('lake', 'twin', 'file://$W/twoc', schedule => NULL);
SQL
done
rounds=8
for i in $(seq 1 $rounds); do
  # a late row for each server, then both runs at once
  pg -c "INSERT INTO twin VALUES (date_trunc('day', now()) - interval '1 day' + interval '$((i % 3)) hours' + interval '$i s', 1000 + $i); SELECT pg_stat_force_next_flush()" >/dev/null
  pg2 -c "INSERT INTO twin VALUES (date_trunc('day', now()) - interval '1 day' + interval '$(((i + 1) % 3)) hours' + interval '$i s', 2000 + $i); SELECT pg_stat_force_next_flush()" >/dev/null
  if [ $((i % 2)) = 1 ]; then
    # odd rounds are forced: server 2 reads the log, then waits (its exports
    # row is held) while server 1 commits the version it is about to take
    mkfifo "$W/h2.$i"
    (. "$C2/env"; exec psql -X -q -A -t <"$W/h2.$i" >"$W/h2.$i.out" 2>&1) &
    H=$!; OWN_PIDS+=($H)
    exec 8>"$W/h2.$i"
    echo "BEGIN; SELECT 'held' FROM iotstream.exports WHERE name = 'lake' FOR NO KEY UPDATE;" >&8
    (. "$C2/env"; wait_for "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE '%FOR NO KEY UPDATE;' AND state = 'idle in transaction')" 30)
    pg2 -c "SELECT count(*) FROM iotstream.run_export('lake') WHERE rows > 0" >"$W/r2.$i" 2>&1 &
    R2=$!
    (. "$C2/env"; wait_for "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE '%run_export(''lake'')%' AND wait_event_type = 'Lock')" 60)
    pg -c "SELECT count(*) FROM iotstream.run_export('lake') WHERE rows > 0" >"$W/r1.$i" 2>&1 || fail "cluster 1, round $i: $(cat "$W/r1.$i")"
    echo "COMMIT;" >&8
    exec 8>&-
    wait $R2 || fail "cluster 2, round $i: $(cat "$W/r2.$i")"
    wait $H || true
  else
    pg -c "SELECT count(*) FROM iotstream.run_export('lake') WHERE rows > 0" >"$W/r1.$i" 2>&1 &
    R1=$!
    pg2 -c "SELECT count(*) FROM iotstream.run_export('lake') WHERE rows > 0" >"$W/r2.$i" 2>&1 || fail "cluster 2, round $i: $(cat "$W/r2.$i")"
    wait $R1 || fail "cluster 1, round $i: $(cat "$W/r1.$i")"
  fi
done
out=$(delta "$W/twoc/twin" --no-checkpoint --files --sql "SELECT count(*)::VARCHAR, sum(n)::VARCHAR FROM t") || fail "reader: $out"
assert_eq "$(dfield "$out" 'o.version + " " + Object.keys(o.txn).length + " " + Object.values(o.txn).sort().join(",") + " " + o.files.length')" \
  "$((2 * rounds - 1)) 2 $rounds,$rounds 6" "two servers: versions 0 to $((2 * rounds - 1)) without a gap, each server's txn at run $rounds, three periods each"
assert_eq "$(dfield "$out" 'o.sql[0].join(" ")')" \
  "$(( $(pg -c "SELECT count(*) FROM twin") + $(pg2 -c "SELECT count(*) FROM twin") )) $(( $(pg -c "SELECT sum(n) FROM twin") + $(pg2 -c "SELECT sum(n) FROM twin") ))" \
  "two servers: the table holds both servers' rows, none lost or doubled"
lost=$(cat "$W"/twoc/twin/_delta_log/*.json | grep -c '"attempt": [2-9]' || true)
[ "$lost" -ge $((rounds / 2)) ] || fail "the forced rounds did not make server 2 lose a version: $lost"
echo "ok - two servers: $lost commits lost a version to the other server, read it and took the next ($((rounds / 2)) forced)"
cluster_stop "$C2"

# --- arrays as Delta arrays, composite types as structs: the schema, the
# stats (a struct's as nested objects, none for arrays) and every value
pg <<'SQL' >/dev/null
SELECT iotstream.drop_export(name) FROM iotstream.exports WHERE name = 'nest';
DROP TABLE IF EXISTS dl_nest;
DROP TYPE IF EXISTS dl_reading;
DROP TYPE IF EXISTS dl_probe;
CREATE TYPE dl_probe AS (k int, tags text[]);
CREATE TYPE dl_reading AS (unit text, value float8, probe dl_probe, samples int[]);
SELECT iotstream.create_stream_table('dl_nest',
  'ts timestamptz NOT NULL, ia int[], ta text[], fa float8[], r dl_reading, pa dl_probe[], ids uuid[]', 'ts', '1 day');
SELECT iotstream.ensure_partitions('dl_nest', date_trunc('day', now()) - interval '1 day', now());
INSERT INTO dl_nest
SELECT date_trunc('day', now()) - interval '1 day' + g * interval '3 s',
       CASE WHEN g % 7 = 0 THEN NULL WHEN g % 11 = 0 THEN '{}' ELSE
            (SELECT array_agg(CASE WHEN x % 5 = 0 THEN NULL ELSE g * x END) FROM generate_series(1, g % 6 + 1) x) END,
       CASE WHEN g % 13 = 0 THEN NULL ELSE
            (SELECT array_agg(CASE WHEN x % 4 = 0 THEN NULL ELSE 's' || (g * x) % 97 END) FROM generate_series(1, g % 5) x) END,
       CASE WHEN g % 3 = 0 THEN NULL ELSE ARRAY[g / 8.0, NULL, -g]::float8[] END,
       CASE WHEN g % 17 = 0 THEN NULL ELSE
            ROW(CASE WHEN g % 5 = 0 THEN NULL ELSE 'u' || g % 4 END, CASE WHEN g % 2 = 0 THEN NULL ELSE g * 0.5 END,
                CASE WHEN g % 19 = 0 THEN NULL ELSE ROW(g % 1000, ARRAY['t' || g % 9, NULL])::dl_probe END,
                CASE WHEN g % 23 = 0 THEN NULL WHEN g % 29 = 0 THEN '{}' ELSE ARRAY[g, g + 1] END)::dl_reading END,
       CASE WHEN g % 31 = 0 THEN NULL ELSE
            (SELECT array_agg(CASE WHEN x = 2 THEN NULL ELSE ROW(x, CASE WHEN x = 3 THEN '{}'::text[] ELSE ARRAY['e' || x] END)::dl_probe END)
               FROM generate_series(1, g % 4) x) END,
       CASE WHEN g % 37 = 0 THEN NULL ELSE ARRAY[md5(g::text)::uuid, NULL] END
  FROM generate_series(0, 3 * 1200 - 1) g;
SQL
NL=$LAKE/dl_nest
pg -c "SELECT iotstream.create_export('nest', 'dl_nest', 'file://$LAKE', schedule => NULL)" >/dev/null
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.run_export('nest') WHERE rows > 0")" 3 "nested: three periods exported"
out=$(delta "$NL" --files --sql "SELECT count(*)::VARCHAR, sum(list_sum(ia))::VARCHAR, sum(len(ta))::VARCHAR, count(r.probe.k)::VARCHAR,
  sum(r.probe.k)::VARCHAR, count(*) FILTER (WHERE pa = [])::VARCHAR, sum(len(r.samples))::VARCHAR, count(ids[1])::VARCHAR FROM t") ||
  fail "nested: the delta reader refused the table: $out"
assert_eq "$(dfield "$out" 'o.sql[0].join(" ")')" \
  "$(pg -c "SELECT concat_ws(' ', count(*), (SELECT sum(x) FROM dl_nest, unnest(ia) x), sum(cardinality(ta)), count((r).probe.k), sum((r).probe.k),
     count(*) FILTER (WHERE pa = '{}'), sum(cardinality((r).samples)), count(ids[1])) FROM dl_nest")" \
  "nested: the live files hold the stream table's arrays and composites (DuckDB)"
assert_eq "$(dfield "$out" 'o.schema.slice(1, 7).join(", ")')" \
  'ia {"type":"array","elementType":"integer","containsNull":true}, ta {"type":"array","elementType":"string","containsNull":true}, fa {"type":"array","elementType":"double","containsNull":true}, r {"type":"struct","fields":[{"name":"unit","type":"string","metadata":{},"nullable":true},{"name":"value","type":"double","metadata":{},"nullable":true},{"name":"probe","type":{"type":"struct","fields":[{"name":"k","type":"integer","metadata":{},"nullable":true},{"name":"tags","type":{"type":"array","elementType":"string","containsNull":true},"metadata":{},"nullable":true}]},"metadata":{},"nullable":true},{"name":"samples","type":{"type":"array","elementType":"integer","containsNull":true},"metadata":{},"nullable":true}]}, pa {"type":"array","elementType":{"type":"struct","fields":[{"name":"k","type":"integer","metadata":{},"nullable":true},{"name":"tags","type":{"type":"array","elementType":"string","containsNull":true},"metadata":{},"nullable":true}]},"containsNull":true}, ids {"type":"array","elementType":"string","containsNull":true}' \
  "nested: arrays are Delta arrays, composites structs, uuid[] an array of strings"
# one file's stats, as the add action has them: the struct's fields nested, no arrays
stats=$(node -e '
  const fs = require("fs"), p = process.argv[1]
  for (const l of fs.readFileSync(p, "utf8").split("\n").filter(Boolean)) {
    const a = JSON.parse(l)
    if (a.add && a.add.partitionValues.event_hour === "1") {
      const s = JSON.parse(a.add.stats)
      console.log([s.numRecords, s.minValues.r.unit, s.maxValues.r.value, s.minValues.r.probe.k, s.maxValues.r.probe.k,
        s.nullCount.r.unit, s.nullCount.r.probe.k, Object.keys(s.nullCount).join(","), Object.keys(s.nullCount.r).join(","),
        Object.keys(s.minValues.r.probe).join(",")].join(" "))
    }
  }' "$NL/_delta_log/00000000000000000000.json")
assert_eq "$stats" "$(pg -c "SELECT concat_ws(' ', count(*), min((r).unit), max((r).value), min((r).probe.k), max((r).probe.k),
  count(*) - count((r).unit), count(*) - count((r).probe.k), 'ts,r', 'unit,value,probe', 'k')
  FROM dl_nest WHERE ts >= date_trunc('day', now()) - interval '23 hours' AND ts < date_trunc('day', now()) - interval '22 hours'")" \
  "nested: per-file stats mirror the struct (nested objects of its fields' bounds and nulls), arrays have none"
# every live file, value by value with two readers (the source's rows in
# the file's order: a file follows the table's physical order)
for f in "$NL"/event_date=*/event_hour=*/part-*.parquet; do
  order=$(rnode read_parquet.mjs duckdb "SELECT string_agg(epoch_us(ts)::VARCHAR, ',') FROM read_parquet('$f')" | tr -d '[]"')
  [ -n "$order" ] || fail "nested: no rows in $f"
  cmp_out=$(rnode read_parquet.mjs compare "$f" "SELECT ts, ia, ta, fa, r, pa, ids::text[] AS ids FROM dl_nest
    JOIN unnest('{$order}'::bigint[]) WITH ORDINALITY u(us, i) ON (extract(epoch FROM ts) * 1000000)::bigint = u.us ORDER BY u.i") ||
    fail "nested: DuckDB or hyparquet differ from the source in $f: $cmp_out"
done
echo "ok - nested: hyparquet and DuckDB read every file value by value as Postgres has it"
# the reader checks the files against the schema: a file whose column type
# disagrees is refused (a copy of the table with one file rewritten)
cp -r "$NL" "$W/nest_bad"
f=$(ls "$W"/nest_bad/event_date=*/event_hour=0/part-*.parquet)
pg -c "SELECT rows FROM iotstream.write_parquet(\$\$SELECT ts, ia::text[] AS ia, ta, fa, r, pa, ids::text[] AS ids FROM dl_nest WHERE false\$\$, '$W/nest_bad.parquet')" >/dev/null
cp "$W/nest_bad.parquet" "$f"
err=$(delta "$W/nest_bad" --files 2>&1 || true)
case "$err" in *"column ia is VARCHAR[] in the file, INTEGER[] in the schema"*) echo "ok - nested: the reader refuses a file whose column disagrees with the schema" ;;
  *) fail "nested: the reader took a file of the wrong schema: $err" ;; esac
pg -c "SELECT iotstream.drop_export('nest')" >/dev/null

# --- Azurite: the log through Put Blob If-None-Match, and a failure between upload and commit
start_azurite
azurite_request PUT "/dlake?restype=container" | tail -n 1 | grep -q 201 || fail "could not create container dlake"
rm -f "$W/pxy.port"
touch "$W/reject"
(cd "$NODE_DIR" && exec node blob_proxy.mjs --port-file "$W/pxy.port" --log "$W/pxy.log" --upstream "$AZURITE_PORT" \
  --reject-put-while "$W/reject" --reject-put-path /_delta_log/ >"$W/pxy.out" 2>&1) &
PX=$!; OWN_PIDS+=($PX); _lib_record_pid $PX
for i in $(seq 1 100); do [ -s "$W/pxy.port" ] && break; sleep 0.1; done
[ -s "$W/pxy.port" ] || fail "blob_proxy did not start"
PP=$(cat "$W/pxy.port")
pg -c "SELECT iotstream.create_export('az', 'dl_src', 'http://127.0.0.1:$PP/$AZURITE_ACCOUNT/dlake/t', credential => 'dl_key', schedule => NULL, options => '{\"max_retries\": 0}')" >/dev/null
# the proxy refuses the commit: the files are uploaded, the log is not
pg -c "ALTER TABLE dl_src ADD COLUMN small int2" >/dev/null
err=$(pg -c "SELECT count(*) FROM iotstream.run_export('az')" 2>&1 || true)
case "$err" in *"answered 400 to put blob if absent"*) echo "ok - storage refusing the commit fails the run" ;; *) fail "the commit did not fail: $err" ;; esac
grep -q "PUT /$AZURITE_ACCOUNT/dlake/t/dl_src/event_date.* 201" "$W/pxy.log" || fail "no data file was uploaded before the commit"
assert_eq "$(azurite_request GET "/dlake?comp=list&restype=container&prefix=t/dl_src/_delta_log/" | head -n -1 | { grep -c '<Name>' || true; })" 0 "nothing is in the log after the failed commit"
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.export_log WHERE export = 'az'")" 0 "the ledger does not move"
rm -f "$W/reject"
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.run_export('az') WHERE rows > 0")" 3 "the next run exports the three periods"
# ten more commits: version 10 gets its checkpoint in the container
for i in $(seq 1 10); do
  pg -c "INSERT INTO dl_src (ts, device, n) VALUES (date_trunc('day', now()) - interval '1 day' + interval '$((i % 3)) hours' + interval '$i s', 'az', $i)" >/dev/null
  pg -c "SELECT pg_stat_force_next_flush()" >/dev/null
  [ "$(pg -c "SELECT count(*) FROM iotstream.run_export('az') WHERE rows > 0")" = 1 ] || fail "az: run $i did not re-export one period"
done
# download the table as it is in the container, keeping its paths
AZ=$W/az
for b in $(azurite_request GET "/dlake?comp=list&restype=container&prefix=t/" | head -n -1 | grep -o '<Name>[^<]*</Name>' | sed 's/<[^>]*>//g'); do
  mkdir -p "$AZ/$(dirname "${b#t/}")"
  # the body, without the status line azurite_request appends ("\n200\n")
  azurite_request GET "/dlake/$b" | head -c -5 >"$AZ/${b#t/}"
done
check_table "$AZ/dl_src" dl_src "azurite after a failed commit and ten more commits"
assert_eq "$(dfield "$LAST" 'o.versions + " " + o.checkpoint + " " + o.files.length')" "11 10 3" "versions 0 to 10, read from the checkpoint of version 10: three files"
azfull=$(delta "$AZ/dl_src" --no-checkpoint) || fail "reader: $azfull"
nosql='JSON.stringify([o.files.map(f => f.path + ":" + f.size + ":" + f.numRecords).sort(), o.tombstones, o.txn, o.schema])'
assert_eq "$(dfield "$LAST" "$nosql")" "$(dfield "$azfull" "$nosql")" "in the container too the checkpoint gives what the JSON commits give"
grep -q "PUT /$AZURITE_ACCOUNT/dlake/t/dl_src/_delta_log/00000000000000000000.json 201" "$W/pxy.log" || fail "the commit was not a Put Blob"
grep -q "PUT /$AZURITE_ACCOUNT/dlake/t/dl_src/_delta_log/00000000000000000010.checkpoint.parquet 201" "$W/pxy.log" || fail "the checkpoint was not uploaded"
# a version taken by another writer: 409 or 412, and the next version
pg -c "SELECT iotstream._delta_create_commit('http://127.0.0.1:$PP/$AZURITE_ACCOUNT/dlake/t', 'dl_src', 'dl_key', 0, '{}')" | grep -qx f ||
  fail "put-if-absent overwrote version 0"
echo "ok - Put Blob with If-None-Match: * does not overwrite a version"
assert_eq "$(grep -c "_delta_log/00000000000000000000.json 40[19]\|_delta_log/00000000000000000000.json 412" "$W/pxy.log")" 1 "the service answered 409 or 412"
# log cleanup in the container: versions 0 to 9 go with Delete Blob
pg -c "SELECT iotstream.alter_export('az', options => '{\"log_retention\": \"1 second\"}')" >/dev/null
wait_for "SELECT EXISTS (SELECT 1 FROM iotstream.export_log WHERE export = 'az' AND status = 'log_cleaned')
          FROM (SELECT count(*) FROM iotstream.run_export('az')) r" 30
assert_eq "$(azurite_request GET "/dlake?comp=list&restype=container&prefix=t/dl_src/_delta_log/" | head -n -1 | grep -o '<Name>[^<]*</Name>' | sed 's/<[^>]*>//g; s#.*/##' | tr '\n' ' ')" \
  "00000000000000000010.checkpoint.parquet 00000000000000000010.json _last_checkpoint " "in the container, log cleanup deleted versions 0 to 9 and kept the checkpoint of 10"
assert_eq "$(grep -c "DELETE /$AZURITE_ACCOUNT/dlake/t/dl_src/_delta_log/0000000000000000000[0-9].json 202" "$W/pxy.log")" 10 "with one Delete Blob per version"
pg -c "SELECT iotstream.drop_export('az')" >/dev/null

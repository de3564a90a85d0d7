#!/usr/bin/env bash
# File sources (issue 20), on a local folder: every file read exactly once.
#   1. files appear while the source runs (written aside, then renamed in),
#      CSV plain and gzip, nested folders, an empty file and a header-only
#      one; files seen again by every listing are not read again;
#   2. bad CSV lines are dead letters, the rest of their file is stored;
#   3. kill -9 of the worker in the middle of a large file: it resumes at
#      the stored position (held mid-file by an advisory lock, no timing);
#   4. a rewritten file: skipped (state rewritten, rows unchanged), or read
#      again with on_rewrite 'reingest', whose rows replace the earlier ones;
#   5. JSON lines through the decoder and a mapping;
#   6. date-laid folders (date_levels) listed from the newest date seen;
#   7. the ledger's memory: a folder of 3,000 files read once each, of
#      which the worker holds at most 2,048 in memory; a restarted worker
#      that lists them all again reads none of them again, and reads again
#      (on_rewrite 'reingest') one rewritten that memory does not hold.
# Every check counts rows and sums their values against the files written.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
W=$IOTSTREAM_WORK
LAKE=$W/lake28
rm -rf "$LAKE" "$W/stage28"
mkdir -p "$LAKE/data" "$W/stage28"
chmod 755 "$W" "$LAKE" "$LAKE/data"

fresh_schema it28
psql -X -q -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
SET client_min_messages = warning;
DELETE FROM iotstream.dead_letters WHERE source LIKE 'it28%';
SELECT iotstream.create_stream_table('it28.t',
  'ts timestamptz NOT NULL, sensor_id text NOT NULL, value int NOT NULL, file text NOT NULL, line bigint NOT NULL',
  'ts', partition_interval => '1 day', max_past => '3650 days', retention => NULL);
SQL

# a CSV file of n readings, values i * k, named by its path
make_csv() { # path n k [first day]
  local path=$1 n=$2 k=$3
  {
    echo "ts,sensor_id,value"
    awk -v n="$n" -v k="$k" 'BEGIN { for (i = 1; i <= n; i++)
      printf "2026-11-%02dT%02d:%02d:%02dZ,s-%d,%d\n", 1 + i % 28, i % 24, i % 60, (i * 7) % 60, i % 13, i * k }'
  } >"$W/stage28/f.tmp"
  mkdir -p "$(dirname "$LAKE/$path")"
  chmod 755 "$(dirname "$LAKE/$path")"
  chmod 644 "$W/stage28/f.tmp"
  mv "$W/stage28/f.tmp" "$LAKE/$path"
}
sum_of() { awk -v n="$1" -v k="$2" 'BEGIN { s = 0; for (i = 1; i <= n; i++) s += i * k; print s }'; }
file_stats() { q "SELECT count(*) || ' ' || coalesce(sum(value), 0) || ' ' || count(DISTINCT line) FROM it28.t WHERE file = '$1'"; }

q "SELECT iotstream.create_file_source('it28', 'file://$LAKE', 'it28.t', 'csv',
     '{\"file\": \"\$topic\", \"line\": \"\$offset\"}',
     '{\"pattern\": \"data/**/*.csv\", \"batch_size\": 500, \"batch_ms\": 20, \"poll_ms\": 50}')" >/dev/null
q "SELECT iotstream.start_source('it28')" >/dev/null
wait_for "SELECT state = 'running' FROM iotstream.source_status WHERE source = 'it28'" 60

# 1. files appear while the source runs
make_csv data/2026/11/a.csv 1000 1
make_csv data/2026/11/b.csv 2500 2
make_csv data/2026/12/deep/c.csv 10 3
make_csv data/top.csv 7 5
: >"$W/stage28/f.tmp" && chmod 644 "$W/stage28/f.tmp" && mv "$W/stage28/f.tmp" "$LAKE/data/empty.csv"
echo "ts,sensor_id,value" >"$W/stage28/f.tmp" && chmod 644 "$W/stage28/f.tmp" && mv "$W/stage28/f.tmp" "$LAKE/data/header_only.csv"
# made outside the lake: the running source must never see the plain file
LAKE="$W/stage28/plain" make_csv zipped.csv 3000 4
gzip -c "$W/stage28/plain/zipped.csv" >"$W/stage28/z.tmp"
chmod 644 "$W/stage28/z.tmp" && mv "$W/stage28/z.tmp" "$LAKE/data/2026/11/zipped.csv.gz"
echo "not,matched" >"$LAKE/data/ignored.txt"
wait_for "SELECT count(*) = 7 FROM iotstream.source_files f JOIN iotstream.sources s USING (source_id)
            WHERE s.name = 'it28' AND f.state = 'done'" 120
assert_eq "$(file_stats data/2026/11/a.csv)" "1000 $(sum_of 1000 1) 1000" "a.csv: rows, checksum, distinct lines"
assert_eq "$(file_stats data/2026/11/b.csv)" "2500 $(sum_of 2500 2) 2500" "b.csv, read in several batches"
assert_eq "$(file_stats data/2026/12/deep/c.csv)" "10 $(sum_of 10 3) 10" "a file two folders deeper"
assert_eq "$(file_stats data/top.csv)" "7 $(sum_of 7 5) 7" "a file right under data/ (** matches no folder too)"
assert_eq "$(file_stats data/2026/11/zipped.csv.gz)" "3000 $(sum_of 3000 4) 3000" "a gzip file"
assert_eq "$(q "SELECT string_agg(path || ':' || rows || ':' || state, ' ' ORDER BY path) FROM iotstream.source_files
                 WHERE path IN ('data/empty.csv', 'data/header_only.csv')")" \
  "data/empty.csv:0:done data/header_only.csv:0:done" "an empty file and a header-only file are done, with no rows"
assert_eq "$(q "SELECT count(*) FROM iotstream.source_files WHERE path LIKE '%ignored%'")" 0 "a file the pattern does not match"
assert_eq "$(q "SELECT min(line) || ' ' || max(line) FROM it28.t WHERE file = 'data/2026/11/a.csv'")" "2 1001" \
  "\$offset is the line number (the header is line 1)"

# 2. bad CSV lines: dead letters; the rest of the file is stored
{
  echo "ts,sensor_id,value"
  echo "2026-11-02T00:00:00Z,good,1"
  echo "2026-11-02T00:00:01Z,too,many,fields"
  echo "2026-11-02T00:00:02Z,good,2"
  echo "not a time,good,3"
  echo "\"2026-11-02T00:00:03Z\",\"quoted, with comma\",4"
  echo "2026-11-02T00:00:04Z,short"
  echo "2026-11-02T00:00:05Z,good,5"
  printf '2026-11-02T00:00:06Z,"never closed,6\n'
} >"$W/stage28/f.tmp"
chmod 644 "$W/stage28/f.tmp" && mv "$W/stage28/f.tmp" "$LAKE/data/bad.csv"
wait_for "SELECT state = 'done' FROM iotstream.source_files WHERE path = 'data/bad.csv'" 60
assert_eq "$(file_stats data/bad.csv)" "4 12 4" "bad.csv: the good rows (1, 2, 4, 5)"
assert_eq "$(q "SELECT string_agg(\"offset\"::text, ',' ORDER BY \"offset\") FROM iotstream.dead_letters
                 WHERE source = 'it28' AND topic = 'data/bad.csv'")" "3,5,7,9" "bad.csv: its bad lines are dead letters"
assert_eq "$(q "SELECT convert_from(payload, 'UTF8') FROM iotstream.dead_letters
                 WHERE source = 'it28' AND topic = 'data/bad.csv' AND \"offset\" = 3")" \
  "2026-11-02T00:00:01Z,too,many,fields" "a dead letter's payload is its line"
assert_eq "$(q "SELECT string_agg(\"offset\" || ': ' || reason, ' | ' ORDER BY \"offset\") FROM iotstream.dead_letters
                 WHERE source = 'it28' AND topic = 'data/bad.csv'")" \
  "3: the CSV record has 4 fields, the header 3 | 5: column \"ts\": not an ISO 8601 timestamp | 7: the CSV record has 2 fields, the header 3 | 9: the CSV record has a quote that never closes" \
  "bad.csv: each dead letter's reason names the CSV problem"
assert_eq "$(q "SELECT sensor_id FROM it28.t WHERE file = 'data/bad.csv' AND value = 4")" "quoted, with comma" "a quoted field"

# every file listed again and again since: nothing was read twice
assert_eq "$(q "SELECT count(*) || ' ' || count(DISTINCT (file, line)) FROM it28.t")" \
  "$((1000 + 2500 + 10 + 7 + 3000 + 4)) $((1000 + 2500 + 10 + 7 + 3000 + 4))" "no row stored twice"
assert_eq "$(q "SELECT files->>'done' || ' ' || (files->>'failed') FROM iotstream.source_status WHERE source = 'it28'")" \
  "8 0" "source_status counts the files by state"

# 3. kill -9 in the middle of a large file.  A trigger holds the worker at
#    line 20001 until the gate opens (a row in it28.gate_open): the batches
#    before it are stored, the one that holds it waits, and the worker is
#    killed there; after the restart it waits there again.
q "CREATE TABLE it28.gate_open (x int);
   CREATE FUNCTION it28.gate() RETURNS trigger LANGUAGE plpgsql AS \$\$
   BEGIN
     IF NEW.file = 'data/big.csv' AND NEW.line > 20001 THEN
       WHILE NOT EXISTS (SELECT 1 FROM it28.gate_open) LOOP PERFORM pg_sleep(0.02); END LOOP;
     END IF;
     RETURN NEW;
   END \$\$;
   CREATE TRIGGER gate BEFORE INSERT ON it28.t FOR EACH ROW EXECUTE FUNCTION it28.gate()"
held="SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'it28' AND wait_event = 'PgSleep'"
make_csv data/big.csv 60000 1
wait_for "$held" 120
size=$(stat -c %s "$LAKE/data/big.csv")
before=$(q "SELECT position FROM iotstream.source_files WHERE path = 'data/big.csv'")
[ "$before" -gt 0 ] && [ "$before" -lt "$size" ] || fail "not mid-file: position $before of $size"
assert_eq "$(q "SELECT count(*) FROM it28.t WHERE file = 'data/big.csv'")" \
  "$(q "SELECT lines - 1 FROM iotstream.source_files WHERE path = 'data/big.csv'")" "the rows stored are the lines the ledger has read"
pid=$(q "SELECT pids[1] FROM iotstream.source_status WHERE source = 'it28'")
kill -9 "$pid"
echo "killed worker $pid at position $before of $size"
wait_for "$held AND NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $pid)" 120
assert_eq "$(q "SELECT position FROM iotstream.source_files WHERE path = 'data/big.csv'")" "$before" \
  "after the crash the worker resumed at the stored position"
q "INSERT INTO it28.gate_open VALUES (1)"
wait_for "SELECT state = 'done' FROM iotstream.source_files WHERE path = 'data/big.csv'" 120
assert_eq "$(file_stats data/big.csv)" "60000 $(sum_of 60000 1) 60000" "big.csv: every row once after kill -9 mid-file"
q "DROP TRIGGER gate ON it28.t"

# 4a. a rewritten file is skipped by default
make_csv data/2026/11/a.csv 1200 7
wait_for "SELECT state = 'rewritten' FROM iotstream.source_files WHERE path = 'data/2026/11/a.csv'" 60
make_csv data/after_rewrite.csv 3 1
wait_for "SELECT state = 'done' FROM iotstream.source_files WHERE path = 'data/after_rewrite.csv'" 60
assert_eq "$(file_stats data/2026/11/a.csv)" "1000 $(sum_of 1000 1) 1000" "a skipped rewrite keeps the earlier rows"

# 4b. with on_rewrite 'reingest', the new version's rows replace the earlier ones
q "SELECT iotstream.create_stream_table('it28.r',
     'ts timestamptz NOT NULL, sensor_id text NOT NULL, value int NOT NULL, file text NOT NULL',
     'ts', partition_interval => '1 day', max_past => '3650 days', retention => NULL)" >/dev/null
mkdir -p "$LAKE/re" && chmod 755 "$LAKE/re"
q "SELECT iotstream.create_file_source('it28re', 'file://$LAKE/re', 'it28.r', 'csv', '{\"file\": \"\$topic\"}',
     '{\"on_rewrite\": \"reingest\", \"path_column\": \"file\", \"poll_ms\": 50, \"batch_size\": 100, \"batch_ms\": 20}')" >/dev/null
q "SELECT iotstream.start_source('it28re')" >/dev/null
make_csv re/x.csv 500 1
make_csv re/y.csv 50 1
wait_for "SELECT count(*) = 2 FROM iotstream.source_files WHERE path IN ('x.csv', 'y.csv') AND state = 'done'" 60
etag=$(q "SELECT etag FROM iotstream.source_files WHERE path = 'x.csv'")
mv "$LAKE/re/x.csv" "$W/stage28/x.old"
make_csv re/x.csv 321 3
wait_for "SELECT etag <> '$etag' AND state = 'done' FROM iotstream.source_files WHERE path = 'x.csv'" 60
assert_eq "$(q "SELECT count(*) || ' ' || sum(value) FROM it28.r WHERE file = 'x.csv'")" "321 $(sum_of 321 3)" \
  "reingest: only the new version's rows"
assert_eq "$(q "SELECT count(*) || ' ' || sum(value) FROM it28.r WHERE file = 'y.csv'")" "50 $(sum_of 50 1)" \
  "reingest: the other file's rows stay"
assert_eq "$(q "SELECT rows FROM iotstream.source_files WHERE path = 'x.csv'")" 321 "reingest: the ledger counts the new version"

# 5. JSON lines, through the decoder and a mapping
mkdir -p "$LAKE/json" && chmod 755 "$LAKE/json"
q "SELECT iotstream.create_file_source('it28js', 'file://$LAKE/json', 'it28.t', 'jsonl',
     '{\"ts\": \"timestamp\", \"sensor_id\": \"device.id\", \"file\": \"\$topic\", \"line\": \"\$offset\"}',
     '{\"poll_ms\": 50, \"batch_ms\": 20}')" >/dev/null
q "SELECT iotstream.start_source('it28js')" >/dev/null
awk 'BEGIN { for (i = 1; i <= 2000; i++) printf "{\"timestamp\": \"2026-11-03T00:00:%02dZ\", \"device\": {\"id\": \"j-%d\"}, \"value\": %d}\n", i % 60, i % 5, i;
             print ""; print "{broken" }' >"$W/stage28/f.tmp"
chmod 644 "$W/stage28/f.tmp" && mv "$W/stage28/f.tmp" "$LAKE/json/events.jsonl"
wait_for "SELECT state = 'done' FROM iotstream.source_files f JOIN iotstream.sources s USING (source_id)
            WHERE s.name = 'it28js' AND f.path = 'events.jsonl'" 60
assert_eq "$(q "SELECT count(*) || ' ' || sum(value) || ' ' || count(DISTINCT sensor_id) FROM it28.t WHERE file = 'events.jsonl'")" \
  "2000 $(sum_of 2000 1) 5" "jsonl: every line, by the mapping"
assert_eq "$(q "SELECT count(*) FROM iotstream.dead_letters WHERE source = 'it28js'")" 1 "jsonl: the broken line is a dead letter"

# 6. date-laid folders are listed from the newest date seen, not from the
#    root: once 2026/11 is read, a file dropped late into 2026/10 is not
#    listed (its folder is not read again), while files in 2026/11 and in
#    a newer 2026/12 are.  The late file is dropped before 2026/12 exists,
#    so any listing that finds 2026/12 would have found it from the root.
dl_done() { echo "SELECT count(*) = 1 FROM iotstream.source_files f JOIN iotstream.sources s USING (source_id)
                   WHERE s.name = 'it28dl' AND f.state = 'done' AND f.path = '$1'"; }
mkdir -p "$LAKE/dl" && chmod 755 "$LAKE/dl"
make_csv dl/2026/10/day_01.csv 10 1
make_csv dl/2026/11/day_01.csv 20 2
q "SELECT iotstream.create_file_source('it28dl', 'file://$LAKE/dl', 'it28.t', 'csv',
     '{\"file\": \"\$topic\", \"line\": \"\$offset\"}',
     '{\"pattern\": \"*/*/day_*.csv\", \"date_levels\": 2, \"poll_ms\": 20}')" >/dev/null
q "SELECT iotstream.start_source('it28dl')" >/dev/null
wait_for "SELECT count(*) = 2 FROM iotstream.source_files f JOIN iotstream.sources s USING (source_id)
            WHERE s.name = 'it28dl' AND f.state = 'done'" 60
make_csv dl/2026/11/day_02.csv 30 3
wait_for "$(dl_done 2026/11/day_02.csv)" 60
make_csv dl/2026/10/day_31.csv 40 4
make_csv dl/2026/11/day_03.csv 50 5
make_csv dl/2026/12/day_01.csv 60 6
wait_for "SELECT count(*) = 2 FROM iotstream.source_files f JOIN iotstream.sources s USING (source_id)
            WHERE s.name = 'it28dl' AND f.state = 'done' AND f.path IN ('2026/11/day_03.csv', '2026/12/day_01.csv')" 60
assert_eq "$(q "SELECT string_agg(path || ':' || rows, ' ' ORDER BY path) FROM iotstream.source_files f
                 JOIN iotstream.sources s USING (source_id) WHERE s.name = 'it28dl'")" \
  "2026/10/day_01.csv:10 2026/11/day_01.csv:20 2026/11/day_02.csv:30 2026/11/day_03.csv:50 2026/12/day_01.csv:60" \
  "date_levels: the newest month and a newer one are listed, the earlier month is not"
assert_eq "$(q "SELECT count(*) || ' ' || sum(value) FROM it28.t WHERE file LIKE '2026/1_/day_%'")" \
  "$((10 + 20 + 30 + 50 + 60)) $(( $(sum_of 10 1) + $(sum_of 20 2) + $(sum_of 30 3) + $(sum_of 50 5) + $(sum_of 60 6) ))" \
  "date_levels: the rows of every file listed, once"
# A restarted worker goes on from the dates of the ledger: the late file
# in 2026/10 stays unlisted, a new file in 2026/12 is read.
pid=$(q "SELECT pids[1] FROM iotstream.source_status WHERE source = 'it28dl'")
q "SELECT iotstream.stop_source('it28dl')" >/dev/null
wait_for "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $pid)" 60
q "SELECT iotstream.start_source('it28dl')" >/dev/null
make_csv dl/2026/12/day_02.csv 70 7
wait_for "$(dl_done 2026/12/day_02.csv)" 60
assert_eq "$(q "SELECT count(*) FROM iotstream.source_files f JOIN iotstream.sources s USING (source_id)
                 WHERE s.name = 'it28dl' AND f.path = '2026/10/day_31.csv'")" 0 \
  "date_levels: after a restart the late file in 2026/10 is still not listed"
if q "SELECT iotstream.create_file_source('it28bad', 'file://$LAKE/dl', 'it28.t', 'csv',
        options => '{\"pattern\": \"**/*.csv\", \"date_levels\": 2}')" 2>"$W/err"; then
  fail "date_levels with a ** pattern was accepted"
fi
grep -q 'option date_levels needs a pattern without "\*\*"' "$W/err" || fail "date_levels with **: $(cat "$W/err")"
echo "ok - date_levels with a ** pattern is refused"

# 7. The ledger's memory is bounded: of 3,000 files done, the worker holds
#    at most 2,048 (its cache of files done; none is left to read), and the
#    rest are looked up in iotstream.source_files when a listing names them.
#    The folder is made aside and renamed in whole.
nmany=3000
mkdir -p "$W/stage28/many"
awk -v n=$nmany -v d="$W/stage28/many" 'BEGIN { for (i = 1; i <= n; i++) {
    f = sprintf("%s/m%05d.csv", d, i)
    printf "ts,sensor_id,value\n2026-11-04T00:00:00Z,m-%d,%d\n", i % 7, i >f
    close(f) } }'
chmod 755 "$W/stage28/many" && chmod 644 "$W/stage28/many"/*.csv
mv "$W/stage28/many" "$LAKE/many"
q "SELECT iotstream.create_file_source('it28many', 'file://$LAKE/many', 'it28.t', 'csv',
     '{\"file\": \"\$topic\", \"line\": \"\$offset\"}',
     '{\"poll_ms\": 50, \"batch_ms\": 20, \"on_rewrite\": \"reingest\", \"path_column\": \"file\"}')" >/dev/null
q "SELECT iotstream.start_source('it28many')" >/dev/null
many_done="SELECT (files->>'done')::int FROM iotstream.source_status WHERE source = 'it28many'"
wait_for "SELECT ($many_done) = $nmany" 300
# the worker reports its memory once a second: wait for a report after the last file
wait_for "SELECT (files->>'cached')::int <= 2048 FROM iotstream.source_status WHERE source = 'it28many'" 60
echo "ok - the ledger holds $(q "SELECT files->>'cached' FROM iotstream.source_status WHERE source = 'it28many'") of $nmany files in memory"
many_stats="SELECT count(*) || ' ' || sum(value) || ' ' || count(DISTINCT file) FROM it28.t WHERE file LIKE 'm_____.csv'"
assert_eq "$(q "$many_stats")" "$nmany $(sum_of $nmany 1) $nmany" "$nmany files: each row once"
# a restarted worker holds none of them, lists them all, and reads only the new one
pid=$(q "SELECT pids[1] FROM iotstream.source_status WHERE source = 'it28many'")
q "SELECT iotstream.stop_source('it28many')" >/dev/null
wait_for "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $pid)" 60
q "SELECT iotstream.start_source('it28many')" >/dev/null
make_csv many/zz_new.csv 5 1
wait_for "SELECT state = 'done' FROM iotstream.source_files f JOIN iotstream.sources s USING (source_id)
            WHERE s.name = 'it28many' AND f.path = 'zz_new.csv'" 60
wait_for "SELECT (files->>'cached')::int <= 2048 FROM iotstream.source_status WHERE source = 'it28many'" 60
assert_eq "$(q "$many_stats")" "$nmany $(sum_of $nmany 1) $nmany" "after a restart and new listings, none of the $nmany files read again"
assert_eq "$(q "$many_done")" "$((nmany + 1))" "the new file is done"
# the last file listed is beyond the cache (which keeps the first 2,048
# a listing names): rewritten, its new rows replace its earlier one
make_csv many/m03000.csv 3 10
wait_for "SELECT rows = 3 AND state = 'done' FROM iotstream.source_files f JOIN iotstream.sources s USING (source_id)
            WHERE s.name = 'it28many' AND f.path = 'm03000.csv'" 60
assert_eq "$(file_stats m03000.csv)" "3 60 3" "a rewritten file memory did not hold: only its new rows"
assert_eq "$(q "$many_stats")" "$((nmany + 2)) $(( $(sum_of $((nmany - 1)) 1) + 60 )) $nmany" \
  "the other files' rows stay, once"

q "SELECT iotstream.drop_source(name) FROM iotstream.sources WHERE name LIKE 'it28%'" >/dev/null
echo "ok"

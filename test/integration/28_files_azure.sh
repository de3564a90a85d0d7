#!/usr/bin/env bash
# File sources on Azure Blob Storage (issue 20), against Azurite, with a
# SharedKey storage credential: blobs uploaded while the source runs (CSV,
# gzip, nested, empty, with bad lines) are each read once; listings page
# through List Blobs two names at a time (continuation markers) and see the
# same blobs again and again without reading them twice; a blob outside the
# location or the pattern is not read; a rewritten blob (a new ETag) is
# skipped; kill -9 in the middle of a blob resumes it where the last batch
# stored ended.  Counts and sums are checked against the files uploaded.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
W=$IOTSTREAM_WORK/az28
rm -rf "$W" && mkdir -p "$W"

start_azurite
azurite_request PUT "/lake28?restype=container" | tail -n 1 | grep -q 201 || fail "could not create container lake28"
put_blob() { # name file
  azurite_request PUT "/lake28/$1" "$2" | tail -n 1 | grep -q 201 || fail "could not upload $1"
}
make_csv() { # file n k
  {
    echo "ts,sensor_id,value"
    awk -v n="$2" -v k="$3" 'BEGIN { for (i = 1; i <= n; i++)
      printf "2026-11-%02dT%02d:%02d:00Z,s-%d,%d\n", 1 + i % 28, i % 24, i % 60, i % 11, i * k }'
  } >"$1"
}
sum_of() { awk -v n="$1" -v k="$2" 'BEGIN { s = 0; for (i = 1; i <= n; i++) s += i * k; print s }'; }
file_stats() { q "SELECT count(*) || ' ' || coalesce(sum(value), 0) || ' ' || count(DISTINCT line) FROM it28az.t WHERE file = '$1'"; }

fresh_schema it28az
psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
DELETE FROM iotstream.dead_letters WHERE source = 'it28az';
DELETE FROM iotstream.storage_credentials WHERE name = 'it28az_key';
SELECT iotstream.create_storage_credential('it28az_key', 'shared_key', account => '$AZURITE_ACCOUNT', key => '$AZURITE_KEY');
SELECT iotstream.create_stream_table('it28az.t',
  'ts timestamptz NOT NULL, sensor_id text NOT NULL, value int NOT NULL, file text NOT NULL, line bigint NOT NULL',
  'ts', partition_interval => '1 day', max_past => '3650 days', retention => NULL);
SQL
if q "SELECT iotstream.create_file_source('it28az', '$AZURITE_BLOB_URL/lake28/in', 'it28az.t', 'csv',
        options => '{\"credential\": \"nope\"}')" 2>"$W/err"; then fail "an unknown credential was accepted"; fi
grep -q 'storage credential "nope" does not exist' "$W/err" || fail "unknown credential: $(cat "$W/err")"
q "SELECT iotstream.create_file_source('it28az', '$AZURITE_BLOB_URL/lake28/in', 'it28az.t', 'csv',
     '{\"file\": \"\$topic\", \"line\": \"\$offset\"}',
     '{\"credential\": \"it28az_key\", \"pattern\": \"**/*.csv\", \"list_page\": 2, \"poll_ms\": 50,
       \"batch_size\": 300, \"batch_ms\": 20}')" >/dev/null
q "SELECT iotstream.start_source('it28az')" >/dev/null
wait_for "SELECT state = 'running' FROM iotstream.source_status WHERE source = 'it28az'" 60

# blobs uploaded while the source runs
make_csv "$W/a.csv" 1000 1 && put_blob in/a.csv "$W/a.csv"
make_csv "$W/b.csv" 700 2 && put_blob in/2026/11/b.csv "$W/b.csv"
make_csv "$W/z.csv" 900 3 && gzip -c "$W/z.csv" >"$W/z.csv.gz" && put_blob in/2026/11/z.csv.gz "$W/z.csv.gz"
: >"$W/empty.csv" && put_blob in/empty.csv "$W/empty.csv"
printf 'ts,sensor_id,value\n2026-11-05T00:00:00Z,x,1\nbroken,line\n2026-11-05T00:00:01Z,x,2\n' >"$W/bad.csv"
put_blob in/bad.csv "$W/bad.csv"
put_blob in/notes.txt "$W/a.csv"
put_blob out/a.csv "$W/a.csv"
wait_for "SELECT count(*) = 5 FROM iotstream.source_files f JOIN iotstream.sources s USING (source_id)
            WHERE s.name = 'it28az' AND f.state = 'done'" 120
assert_eq "$(file_stats a.csv)" "1000 $(sum_of 1000 1) 1000" "a.csv: rows, checksum, distinct lines"
assert_eq "$(file_stats 2026/11/b.csv)" "700 $(sum_of 700 2) 700" "a nested blob"
assert_eq "$(file_stats 2026/11/z.csv.gz)" "900 $(sum_of 900 3) 900" "a gzip blob"
assert_eq "$(file_stats bad.csv)" "2 3 2" "bad.csv: the good rows"
assert_eq "$(q "SELECT count(*) || ' ' || min(\"offset\") FROM iotstream.dead_letters WHERE source = 'it28az'")" "1 3" \
  "bad.csv: the bad line is a dead letter"
assert_eq "$(q "SELECT rows || ' ' || state FROM iotstream.source_files WHERE path = 'empty.csv'")" "0 done" "an empty blob"
assert_eq "$(q "SELECT count(*) FROM iotstream.source_files f JOIN iotstream.sources s USING (source_id)
                 WHERE s.name = 'it28az' AND (path LIKE '%notes%' OR path LIKE '%out/%')")" 0 \
  "blobs outside the pattern or the location are not read"
assert_eq "$(q "SELECT etag LIKE '0x%' FROM iotstream.source_files WHERE path = 'a.csv'")" t "the ledger keeps Azure's ETag"

# a rewritten blob: a new ETag, skipped; a later blob shows the listings went on
make_csv "$W/a2.csv" 1500 9 && put_blob in/a.csv "$W/a2.csv"
wait_for "SELECT state = 'rewritten' FROM iotstream.source_files WHERE path = 'a.csv'" 60
make_csv "$W/c.csv" 5 1 && put_blob in/c.csv "$W/c.csv"
wait_for "SELECT state = 'done' FROM iotstream.source_files WHERE path = 'c.csv'" 60
assert_eq "$(file_stats a.csv)" "1000 $(sum_of 1000 1) 1000" "the rewritten blob keeps its rows"
assert_eq "$(q "SELECT count(*) || ' ' || count(DISTINCT (file, line)) FROM it28az.t")" "2607 2607" \
  "listed again and again, no blob read twice"
assert_eq "$(q "SELECT last_error IS NULL FROM iotstream.source_status WHERE source = 'it28az'")" t "no listing failed"

# kill -9 in the middle of a blob, held there by a gate (see 28_files.sh):
# the worker fetches the blob again and resumes at the stored position
q "CREATE TABLE it28az.gate_open (x int);
   CREATE FUNCTION it28az.gate() RETURNS trigger LANGUAGE plpgsql AS \$\$
   BEGIN
     IF NEW.file = 'big.csv' AND NEW.line > 8001 THEN
       WHILE NOT EXISTS (SELECT 1 FROM it28az.gate_open) LOOP PERFORM pg_sleep(0.02); END LOOP;
     END IF;
     RETURN NEW;
   END \$\$;
   CREATE TRIGGER gate BEFORE INSERT ON it28az.t FOR EACH ROW EXECUTE FUNCTION it28az.gate()"
held="SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'it28az' AND wait_event = 'PgSleep'"
make_csv "$W/big.csv" 20000 1 && put_blob in/big.csv "$W/big.csv"
wait_for "$held" 120
before=$(q "SELECT position FROM iotstream.source_files WHERE path = 'big.csv'")
[ "$before" -gt 0 ] && [ "$before" -lt "$(stat -c %s "$W/big.csv")" ] || fail "not mid-blob: position $before"
pid=$(q "SELECT pids[1] FROM iotstream.source_status WHERE source = 'it28az'")
kill -9 "$pid"
echo "killed worker $pid at position $before"
wait_for "$held AND NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $pid)" 120
assert_eq "$(q "SELECT position FROM iotstream.source_files WHERE path = 'big.csv'")" "$before" \
  "after the crash the worker resumed the blob at the stored position"
q "INSERT INTO it28az.gate_open VALUES (1)"
wait_for "SELECT state = 'done' FROM iotstream.source_files WHERE path = 'big.csv'" 120
assert_eq "$(file_stats big.csv)" "20000 $(sum_of 20000 1) 20000" "big.csv: every row once after kill -9 mid-blob"

# date_levels on a container: once a group's newest date is known, the
# listing goes folder by folder (delimiter "/") from it.  Requests pass
# through test/node/blob_proxy.mjs, which logs each List Blobs' prefix:
# passes with nothing new list only dl/, dl/2026/ and dl/2026/11/, never
# dl/2026/10/; a blob dropped late into 2026/10 is not listed, blobs in
# 2026/11 and a newer 2026/12 are; after a restart too.
pf=$W/proxy.port
(cd "$IOTSTREAM_ROOT/test/node" && exec node blob_proxy.mjs --port-file "$pf" --log "$W/proxy.log" \
   --upstream "$AZURITE_PORT" --log-prefix 1 >"$W/proxy.out" 2>&1) &
_lib_record_pid $!
for i in $(seq 1 100); do [ -s "$pf" ] && break; sleep 0.1; done
[ -s "$pf" ] || fail "blob_proxy did not start"
PPORT=$(cat "$pf")
make_csv "$W/d1.csv" 10 1 && put_blob dl/2026/10/day_01.csv "$W/d1.csv"
make_csv "$W/d2.csv" 20 2 && put_blob dl/2026/11/day_01.csv "$W/d2.csv"
q "SELECT iotstream.create_file_source('it28azd', 'http://127.0.0.1:$PPORT/$AZURITE_ACCOUNT/lake28/dl', 'it28az.t', 'csv',
     '{\"file\": \"\$topic\", \"line\": \"\$offset\"}',
     '{\"credential\": \"it28az_key\", \"pattern\": \"*/*/day_*.csv\", \"date_levels\": 2, \"poll_ms\": 20}')" >/dev/null
q "SELECT iotstream.start_source('it28azd')" >/dev/null
azd_done() { echo "SELECT count(*) = $1 FROM iotstream.source_files f JOIN iotstream.sources s USING (source_id)
                    WHERE s.name = 'it28azd' AND f.state = 'done' ${2:-}"; }
wait_for "$(azd_done 2)" 60
make_csv "$W/d3.csv" 30 3 && put_blob dl/2026/11/day_02.csv "$W/d3.csv"
wait_for "$(azd_done 3)" 60
from=$(wc -l <"$W/proxy.log")
for i in $(seq 1 300); do # poll the log: three more listings
  [ "$(tail -n +$((from + 1)) "$W/proxy.log" | grep -c 'comp=list')" -ge 9 ] && break
  sleep 0.1
done
assert_eq "$(tail -n +$((from + 1)) "$W/proxy.log" | grep 'comp=list' | head -9 | sed 's/.* prefix=//; s/ .*//' | sort | uniq -c | awk '{ print $2 ":" $1 }' | paste -sd ' ')" \
  "dl/:3 dl/2026/:3 dl/2026/11/:3" "date_levels: three passes with nothing new list dl/, dl/2026/ and dl/2026/11/ only"
make_csv "$W/d4.csv" 40 4 && put_blob dl/2026/10/day_31.csv "$W/d4.csv"
make_csv "$W/d5.csv" 50 5 && put_blob dl/2026/11/day_03.csv "$W/d5.csv"
make_csv "$W/d6.csv" 60 6 && put_blob dl/2026/12/day_01.csv "$W/d6.csv"
wait_for "$(azd_done 2 "AND f.path IN ('2026/11/day_03.csv', '2026/12/day_01.csv')")" 60
assert_eq "$(q "SELECT string_agg(path || ':' || rows, ' ' ORDER BY path) FROM iotstream.source_files f
                 JOIN iotstream.sources s USING (source_id) WHERE s.name = 'it28azd'")" \
  "2026/10/day_01.csv:10 2026/11/day_01.csv:20 2026/11/day_02.csv:30 2026/11/day_03.csv:50 2026/12/day_01.csv:60" \
  "date_levels: the newest month and a newer one are listed, the earlier month is not"
assert_eq "$(q "SELECT count(*) || ' ' || sum(value) FROM it28az.t WHERE file LIKE '2026/1_/day_%'")" \
  "$((10 + 20 + 30 + 50 + 60)) $(( $(sum_of 10 1) + $(sum_of 20 2) + $(sum_of 30 3) + $(sum_of 50 5) + $(sum_of 60 6) ))" \
  "date_levels: the rows of every blob listed, once"
# A restarted worker goes on from the dates of the ledger, not from the
# root (a first listing of all names under dl/ would make three of dl/):
# its first two passes list dl/, dl/2026/ and dl/2026/12/ (the newest
# month now), and the late blob stays unlisted.
pid=$(q "SELECT pids[1] FROM iotstream.source_status WHERE source = 'it28azd'")
q "SELECT iotstream.stop_source('it28azd')" >/dev/null
wait_for "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $pid)" 60
from=$(wc -l <"$W/proxy.log")
q "SELECT iotstream.start_source('it28azd')" >/dev/null
for i in $(seq 1 300); do # poll the log: two listings
  [ "$(tail -n +$((from + 1)) "$W/proxy.log" | grep -c 'comp=list')" -ge 6 ] && break
  sleep 0.1
done
lists=$(tail -n +$((from + 1)) "$W/proxy.log" | grep 'comp=list' | head -6)
assert_eq "$(echo "$lists" | sed 's/.* prefix=//; s/ .*//' | sort | uniq -c | awk '{ print $2 ":" $1 }' | paste -sd ' ')" \
  "dl/:2 dl/2026/:2 dl/2026/12/:2" "date_levels: after a restart the passes list dl/, dl/2026/ and dl/2026/12/ only"
assert_eq "$(q "SELECT count(*) FROM iotstream.source_files f JOIN iotstream.sources s USING (source_id)
                 WHERE s.name = 'it28azd' AND f.path = '2026/10/day_31.csv'")" 0 \
  "date_levels: after a restart the late blob in 2026/10 is still not listed"
q "SELECT iotstream.drop_source('it28azd')" >/dev/null

q "SELECT iotstream.drop_source('it28az')" >/dev/null
echo "ok"

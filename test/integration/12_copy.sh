#!/usr/bin/env bash
# COPY into a stream table creates the partitions its rows need (issue 20).
# Three days of CSV history go into a fresh table that has only today's
# partition, through psql's \copy (STDIN), a server file and a program;
# every row must be stored, in the partition whose range holds its time,
# by count and checksum against the file.  Rows outside the bounds fail
# the COPY with the reason, or go to the dead letters with the option.  A
# role with INSERT alone loads rows and partitions appear, owned by the
# table's owner.  A plain INSERT into a missing period fails with a hint
# naming the exact call that creates the partition.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
W=$IOTSTREAM_WORK
chmod a+rx "$W"

psql -X -q -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS it12 CASCADE;
CREATE SCHEMA it12;
DELETE FROM iotstream.dead_letters WHERE source = 'copy' AND topic LIKE 'it12.%';
DROP ROLE IF EXISTS it12_loader;
DROP ROLE IF EXISTS it12_reader;
CREATE ROLE it12_loader LOGIN;
SELECT iotstream.create_stream_table('it12.hist',
  'ts timestamptz NOT NULL, sensor_id text NOT NULL, value int NOT NULL, note text DEFAULT ''none''',
  'ts', partition_interval => '1 hour', premake => 0, retention => '7 days');
SQL
assert_eq "$(q "SELECT count(*) FROM iotstream.partitions('it12.hist')")" 1 "a fresh table has today's partition only"

# 3 days of history, one reading every 10 s (25920 rows, past several batches),
# times as text in UTC, the values a pseudo-random walk
q "COPY (SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS ts,
                'sensor-' || (i % 7) AS sensor_id, (i * 7919) % 1000 AS value
           FROM generate_series(0, 25919) i,
                LATERAL (SELECT date_trunc('hour', now()) - interval '3 days' + i * interval '10 seconds' AS t) x)
     TO STDOUT WITH (FORMAT csv, HEADER)" >"$W/history.csv"
rows=$(($(wc -l <"$W/history.csv") - 1))
sum=$(awk -F, 'NR > 1 { s += $3 } END { print s }' "$W/history.csv")
hours=$(awk -F, 'NR > 1 { print substr($1, 1, 13) }' "$W/history.csv" | sort -u | wc -l)
assert_eq "$rows" 25920 "rows in the CSV"

psql -X -q -v ON_ERROR_STOP=1 -c "\\copy it12.hist (ts, sensor_id, value) FROM '$W/history.csv' WITH (FORMAT csv, HEADER)"
assert_eq "$(q "SELECT count(*) || ' ' || sum(value) FROM it12.hist")" "$rows $sum" "\\copy: every row, by count and checksum"
assert_eq "$(q "SELECT count(DISTINCT tableoid) FROM it12.hist")" "$hours" "\\copy: one partition per hour of the file"
assert_eq "$(q "SELECT count(*) FROM it12.hist h JOIN iotstream.partitions('it12.hist') p ON p.partition = h.tableoid
                 WHERE NOT (h.ts >= p.range_start AND h.ts < p.range_end)")" 0 "\\copy: every row in its own partition"
assert_eq "$(q "SELECT count(*) FROM it12.hist WHERE note = 'none'")" "$rows" "\\copy: the default of a column not copied"
# the checksum of the stored rows equals the file's, row for row
assert_eq "$(q "SELECT md5(string_agg(to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') || ',' || sensor_id || ',' || value, E'\n' ORDER BY ts))
                 FROM it12.hist")" "$(tail -n +2 "$W/history.csv" | sort | head -c -1 | md5sum | cut -d' ' -f1)" \
  "\\copy: the rows are the file's lines"
assert_eq "$(q "SELECT count(*) FROM iotstream.partitions('it12.hist')")" "$((hours + 1))" "the partitions of the file, and today's"

# A server file and a program, into a daily table
q "SELECT iotstream.create_stream_table('it12.daily', 'ts timestamptz NOT NULL, sensor_id text NOT NULL, value int NOT NULL',
     'ts', premake => 0, retention => '30 days')" >/dev/null
q "COPY it12.daily FROM '$W/history.csv' WITH (FORMAT csv, HEADER)"
q "COPY it12.daily FROM PROGRAM 'cat $W/history.csv' WITH (FORMAT csv, HEADER)"
days=$(awk -F, 'NR > 1 { print substr($1, 1, 10) }' "$W/history.csv" | sort -u | wc -l)
assert_eq "$(q "SELECT count(*) || ' ' || sum(value) || ' ' || count(DISTINCT tableoid) FROM it12.daily")" \
  "$((2 * rows)) $((2 * sum)) $days" "file and program: every row twice, one partition a day"
assert_eq "$(q "SELECT count(*) FROM it12.daily h JOIN iotstream.partitions('it12.daily') p ON p.partition = h.tableoid
                 WHERE NOT (h.ts >= p.range_start AND h.ts < p.range_end)")" 0 "file and program: every row in its own partition"

# Rows outside the bounds: 10 rows 40 days old among 100 good ones
{
  echo "ts,sensor_id,value"
  for i in $(seq 1 110); do
    if [ $((i % 11)) = 0 ]; then d=40; else d=1; fi
    echo "$(date -u -d "-$d days -$i minutes" +%Y-%m-%dT%H:%M:%SZ),s-$i,$i"
  done
} >"$W/bounds.csv"
good_sum=$(awk -F, 'NR > 1 && $3 % 11 != 0 { s += $3 } END { print s }' "$W/bounds.csv")
before=$(q "SELECT count(*) FROM it12.hist")
if out=$(psql -X -q -v ON_ERROR_STOP=1 -c "\\copy it12.hist (ts, sensor_id, value) FROM '$W/bounds.csv' WITH (FORMAT csv, HEADER)" 2>&1); then
  fail "a COPY with rows outside the bounds succeeded"
fi
echo "$out" | grep -q 'row of line 12 has event time .* outside the bounds of stream table "hist"' || fail "no reason: $out"
echo "$out" | grep -q "HINT:.*iotstream.ensure_partitions('it12.hist'" || fail "no hint: $out"
assert_eq "$(q "SELECT count(*) FROM it12.hist")" "$before" "out of bounds: the COPY stored nothing"
out=$(psql -X -q -v ON_ERROR_STOP=1 -c "\\copy it12.hist (ts, sensor_id, value) FROM '$W/bounds.csv' WITH (FORMAT csv, HEADER, out_of_bounds 'dead_letters')" 2>&1)
echo "$out" | grep -q "10 rows outside the bounds" || fail "no notice: $out"
assert_eq "$(q "SELECT count(*) - $before || ' ' || sum(value) FILTER (WHERE sensor_id LIKE 's-%') FROM it12.hist")" \
  "100 $good_sum" "out_of_bounds 'dead_letters': the good rows"
assert_eq "$(q "SELECT count(*) || ' ' || sum(\"offset\") || ' ' || bool_and(reason LIKE '%max_past%')
                   || ' ' || bool_and(convert_from(payload, 'UTF8') LIKE '%,s-' || (\"offset\" - 1) || ',' || (\"offset\" - 1))
                 FROM iotstream.dead_letters WHERE source = 'copy' AND topic = 'it12.hist'")" \
  "10 $((12 + 23 + 34 + 45 + 56 + 67 + 78 + 89 + 100 + 111)) true true" "the dead letters: line numbers, reasons and lines"
q "DROP ROLE IF EXISTS it12_reader; CREATE ROLE it12_reader LOGIN; GRANT USAGE ON SCHEMA it12 TO it12_reader;
   GRANT SELECT ON it12.hist TO it12_reader"
assert_eq "$(psql -X -q -At -U it12_reader -c "SELECT count(*) FROM iotstream.dead_letters WHERE source = 'copy'")" 10 \
  "the dead letters of a COPY are read by the table's readers"
assert_eq "$(psql -X -q -At -U it12_loader -c "SELECT count(*) FROM iotstream.dead_letters WHERE source = 'copy'")" 0 \
  "and not by others"
if q "COPY it12.hist FROM STDIN WITH (out_of_bounds 'maybe')" </dev/null 2>"$W/err"; then fail "a bad option passed"; fi
grep -q 'out_of_bounds must be "error" or "dead_letters"' "$W/err" || fail "bad option: $(cat "$W/err")"

# A role with INSERT alone: its rows go in, partitions appear as the owner's
q "GRANT USAGE ON SCHEMA it12 TO it12_loader; GRANT INSERT ON it12.hist TO it12_loader"
{
  echo "ts,sensor_id,value"
  for i in $(seq 1 50); do echo "$(date -u -d "-5 days -$i minutes" +%Y-%m-%dT%H:%M:%SZ),loader,$i"; done
} >"$W/loader.csv"
parts_before=$(q "SELECT count(*) FROM iotstream.partitions('it12.hist')")
psql -X -q -v ON_ERROR_STOP=1 -U it12_loader -c "\\copy it12.hist (ts, sensor_id, value) FROM '$W/loader.csv' WITH (FORMAT csv, HEADER)"
assert_eq "$(q "SELECT count(*) || ' ' || sum(value) FROM it12.hist WHERE sensor_id = 'loader'")" "50 1275" "INSERT alone: the rows"
assert_eq "$(q "SELECT count(*) > $parts_before FROM iotstream.partitions('it12.hist')")" t "INSERT alone: partitions created"
assert_eq "$(q "SELECT count(*) FROM iotstream.partitions('it12.hist') p JOIN pg_class c ON c.oid = p.partition
                 WHERE c.relowner <> (SELECT relowner FROM pg_class WHERE oid = 'it12.hist'::regclass)")" 0 \
  "INSERT alone: every partition is the table owner's"
if psql -X -q -At -U it12_loader -c "SELECT count(*) FROM it12.hist" >/dev/null 2>&1; then
  fail "the loader may read the table"
fi
if psql -X -q -At -U it12_loader -c "SELECT iotstream.ensure_partitions('it12.hist', now() - interval '20 days', now() - interval '20 days')" >/dev/null 2>&1; then
  fail "the loader may create partitions outside the bounds"
fi
if psql -X -q -At -U it12_loader -c "\\copy it12.daily FROM '$W/loader.csv' WITH (FORMAT csv, HEADER)" >/dev/null 2>&1; then
  fail "the loader may load a table it has no INSERT on"
fi

# A plain INSERT into a missing period: PostgreSQL's error, with the exact call
if out=$(psql -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose \
    -c "SET TimeZone = 'UTC'; INSERT INTO it12.hist VALUES ('$(date -u -d '-6 days' +%Y-%m-%d) 04:30:00+00', 'x', 1)" 2>&1); then
  fail "an INSERT into a missing period succeeded"
fi
echo "$out" | grep -q "ERROR:  23514: no partition of relation \"hist\" found for row" || fail "not PostgreSQL's error: $out"
call=$(echo "$out" | sed -n "s/^HINT:  Create the partition first: \(SELECT iotstream.ensure_partitions([^;]*)\);.*/\1/p")
assert_eq "$call" "SELECT iotstream.ensure_partitions('it12.hist', '$(date -u -d '-6 days' +%Y-%m-%d) 04:30:00+00', '$(date -u -d '-6 days' +%Y-%m-%d) 04:30:00+00')" "the hint's call"
q "SET TimeZone = 'UTC'; $call; INSERT INTO it12.hist VALUES ('$(date -u -d '-6 days' +%Y-%m-%d) 04:30:00+00', 'x', 1)" >/dev/null
assert_eq "$(q "SELECT count(*) FROM it12.hist WHERE sensor_id = 'x'")" 1 "the INSERT after the hinted call"
# other errors keep no hint
if out=$(psql -X -q -c "INSERT INTO it12.hist VALUES (now(), NULL, 1)" 2>&1); then fail "NULL accepted"; fi
if echo "$out" | grep -q HINT; then fail "a hint on another error: $out"; fi

psql -X -q -c "DROP SCHEMA it12 CASCADE" -c "DROP ROLE it12_loader" -c "DROP ROLE it12_reader" >/dev/null 2>&1 || true
echo "ok"

#!/usr/bin/env bash
# test/bench/decode.sh: the decoder against the peer, in the same run, on the
# same JSON lines (N seed-002 events, default 1,000,000) held in a table.
#
#   iotstream: iotstream._decode_count(target, NULL, line): the ingest
#              worker's DecodePlanCreate + DecodeMessage + heap_form_tuple per
#              message, camelCase keys mapped to snake_case columns.
#   peer:      what users write today: line::jsonb, then ->> and casts per
#              column, ROW(...)::target (also one composite tuple per row).
#
# Both run in one backend, without parallel query, best of 3, for the wide
# shape (complexData into jsonb) and the narrow one (complexData skipped).
#   N=200000 test/bench/decode.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-1000000}
ROOT=$(pwd)

. tools/cluster.sh
private_install >/dev/null
WORK=$ROOT/.tmp/bench-decode-$$
trap 'cluster_stop "$WORK/cluster"; rm -rf "$WORK" "$PRIVATE_PG"' EXIT
cluster_start "$WORK/cluster" iotstream_bench "shared_buffers = '1GB'" >/dev/null

# 23 moreData fields with random values, as the seed-002 simulator sends
md=$(for k in $(seq 0 22); do printf '"moreData%d":%%s,' "$k"; done)
md=${md%,}
args=$(for k in $(seq 0 22); do printf 'random()*100,'; done)
args=${args%,}

echo "== generating $N seed-002 events"
psql -X -q -v ON_ERROR_STOP=1 <<SQL
SET max_parallel_workers_per_gather = 0;
CREATE UNLOGGED TABLE staging AS
SELECT format('{"eventId":"%s","complexData":{%s},"value":%s,"deviceId":"contoso-device-id-%s","deviceSequenceNumber":%s,"type":"%s","createdAt":"%s"}',
              md5(i::text)::uuid, format('$md', $args), random() * 100,
              lpad((i % 1000)::text, 6, '0'), i / 1000,
              (ARRAY['CO2', 'TEMP', 'HUMIDITY'])[1 + i % 3],
              to_char(timestamp '2019-05-16' + i * interval '172800 microseconds',
                      'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')) AS line
FROM generate_series(1, $N) i;
VACUUM ANALYZE staging;
CREATE TABLE ev_wide (event_id uuid, complex_data jsonb, value float8,
                      device_id text NOT NULL, device_sequence_number bigint,
                      type text, created_at timestamptz NOT NULL);
CREATE TABLE ev_narrow (event_id uuid, value float8, device_id text NOT NULL,
                        device_sequence_number bigint, type text,
                        created_at timestamptz NOT NULL);
SQL
psql -X -qAt -c "SELECT 'average message: ' || avg(octet_length(line))::int || ' bytes' FROM staging"

# seconds for the best of 3 runs of a query returning a count that must be N
psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE FUNCTION best_of_3(q text) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz; n bigint; best float8 := 'Infinity';
BEGIN
    FOR i IN 1..3 LOOP
        t0 := clock_timestamp();
        EXECUTE q INTO n;
        best := least(best, extract(epoch FROM clock_timestamp() - t0));
        IF n <> $N THEN RAISE EXCEPTION 'expected % rows, got %: %', $N, n, q; END IF;
    END LOOP;
    RETURN best;
END \$\$;
SQL

run() {
  local shape=$1 ours=$2 peer=$3
  psql -X -qAt -v ON_ERROR_STOP=1 -F ' ' <<SQL
SET max_parallel_workers_per_gather = 0;
SET jit = off;
SELECT format('%-7s iotstream %8s rows/s (%s s)   peer %8s rows/s (%s s)   ratio %sx',
              '$shape', round($N / o), round(o::numeric, 2), round($N / p),
              round(p::numeric, 2), round((p / o)::numeric, 2))
FROM (SELECT best_of_3(\$q\$$ours\$q\$) AS o, best_of_3(\$q\$$peer\$q\$) AS p) t;
SQL
}

echo "== decoding $N messages (best of 3, one backend each)"
run wide "SELECT iotstream._decode_count('ev_wide', NULL, line) FROM staging" \
  "SELECT count(r) FROM (SELECT ROW((j->>'eventId')::uuid, j->'complexData', (j->>'value')::float8, j->>'deviceId', (j->>'deviceSequenceNumber')::bigint, j->>'type', (j->>'createdAt')::timestamptz)::ev_wide AS r FROM (SELECT line::jsonb AS j FROM staging OFFSET 0) s) x"
run narrow "SELECT iotstream._decode_count('ev_narrow', NULL, line) FROM staging" \
  "SELECT count(r) FROM (SELECT ROW((j->>'eventId')::uuid, (j->>'value')::float8, j->>'deviceId', (j->>'deviceSequenceNumber')::bigint, j->>'type', (j->>'createdAt')::timestamptz)::ev_narrow AS r FROM (SELECT line::jsonb AS j FROM staging OFFSET 0) s) x"

# The floor both share: reading the lines and calling a function per row.
psql -X -qAt -v ON_ERROR_STOP=1 <<SQL
SET max_parallel_workers_per_gather = 0;
SELECT format('scan    reading the lines alone: %s s', round(best_of_3('SELECT count(octet_length(line)) FROM staging')::numeric, 2));
SQL

# Same rows: the decoder and the peer agree on 1,000 lines, to the text of
# every value (numbers in complexData keep their digits and scale).
psql -X -qAt -v ON_ERROR_STOP=1 <<SQL
SELECT 'check   rows that differ between iotstream and the peer (of 1000): ' || count(*)
FROM (SELECT line FROM staging LIMIT 1000) s
WHERE iotstream.decode_preview('ev_wide', NULL, line)::text IS DISTINCT FROM
      to_jsonb(ROW((line::jsonb->>'eventId')::uuid, line::jsonb->'complexData',
                   (line::jsonb->>'value')::float8, line::jsonb->>'deviceId',
                   (line::jsonb->>'deviceSequenceNumber')::bigint, line::jsonb->>'type',
                   (line::jsonb->>'createdAt')::timestamptz)::ev_wide)::text;
SQL

#!/usr/bin/env bash
# Mutation fuzz of the decoder: 38,000 deterministic payloads (seeds, byte
# mutations, truncations, invalid UTF-8, broken escapes, NULs, deep nesting,
# huge numbers and strings, wrong types) through decode_preview(bytea) into a
# table of every decodable type and into seed-002 events. Asserts the server
# never restarts, every payload gives a row or an error (an ERROR is tolerated
# and counted), rows hold valid UTF-8 and their columns' types, the overloads
# agree, every decoded event time gets a partition (as the worker would ask)
# or a bounds rejection, and known payloads decode exactly.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
t0=$(date +%s)

W=$IOTSTREAM_WORK/fuzz31
mkdir -p "$W"
# the corpus (70 MB as hex) and its tables go at the end; the same seed
# makes the same corpus again
cleanup31() {
  psql -X -q -c "DROP SCHEMA IF EXISTS fz31 CASCADE" >/dev/null 2>&1 || true
  rm -f "$W/corpus.jsonl"
}
trap 'cleanup31; _lib_cleanup' EXIT
node "$IOTSTREAM_ROOT/test/node/decode_fuzz_corpus.mjs" "$W/corpus.jsonl" 31 2>"$W/corpus.txt"
head -n 1 "$W/corpus.txt"

fresh_schema fz31
psql -X -q -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
SET client_min_messages = warning;
SELECT iotstream.create_stream_table('fz31.t',
  'ts timestamptz NOT NULL, device_id text NOT NULL, n int4, big int8, value float8, amount numeric,
   price numeric(6,2), ok boolean, id uuid, data jsonb, raw bytea, day date, small int2, f4 real,
   lts timestamp, j json, note varchar(8), dotted text, deep text, "inner" text, topic text, k text,
   part int4, off int8, mts timestamptz, hdrs jsonb, whole bytea,
   ingested timestamptz NOT NULL DEFAULT now()',
  'ts', premake => 0, retention => NULL, max_future => '1000 years');
SELECT iotstream.create_stream_table('fz31.ev',
  'event_id uuid NOT NULL, complex_data jsonb, value float8, device_id text NOT NULL,
   device_sequence_number bigint, type text, created_at timestamptz NOT NULL',
  'created_at', premake => 0, retention => NULL, max_future => '1000 years');
-- t: an explicit mapping with nested paths and every $source; td: the same
-- table with the default rule; ev: seed-002 events with the default rule
CREATE TABLE fz31.mappings (config text PRIMARY KEY, target regclass NOT NULL, mapping jsonb);
INSERT INTO fz31.mappings VALUES
  ('t', 'fz31.t', '{"ts": "ts", "device_id": "deviceId", "n": "n", "big": "big", "value": "value",
               "amount": "amount", "price": "price", "ok": "ok", "id": "id", "data": "data", "raw": "raw",
               "day": "day", "small": "small", "f4": "f4", "lts": "lts", "j": "j", "note": "note",
               "dotted": "a\\.b", "deep": "nest.x.y", "inner": "data.a", "topic": "$topic", "k": "$key",
               "part": "$partition", "off": "$offset", "mts": "$timestamp", "hdrs": "$headers",
               "whole": "$payload"}'),
  ('td', 'fz31.t', NULL),
  ('ev', 'fz31.ev', NULL);
SELECT iotstream.validate_mapping(target, mapping) FROM fz31.mappings;

CREATE TABLE fz31.raw (line text);
CREATE TABLE fz31.corpus (id int PRIMARY KEY, config text, kind text, payload bytea, key text,
  topic text, part int, off bigint, ts timestamptz, headers jsonb, is_text boolean);
CREATE TABLE fz31.results (id int PRIMARY KEY, outcome text NOT NULL, sqlstate text, detail text,
  event_time text);

-- One statement decodes payloads lo..hi; an ERROR is caught per payload.
CREATE FUNCTION fz31.run(lo int, hi int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c record;
    m record;
    r jsonb;
    r2 jsonb;
    outcome text;
    detail text;
    st text;
BEGIN
    FOR c IN SELECT * FROM fz31.corpus WHERE id BETWEEN lo AND hi
              AND id NOT IN (SELECT id FROM fz31.results WHERE id BETWEEN lo AND hi) ORDER BY id LOOP
        SELECT * INTO m FROM fz31.mappings WHERE config = c.config;
        st := NULL;
        detail := NULL;
        BEGIN
            r := iotstream.decode_preview(m.target, m.mapping, c.payload, c.key, c.topic, c.part, c.off, c.ts, c.headers);
            IF r IS NULL THEN
                outcome := 'null';
            ELSIF r ? 'error' THEN
                outcome := 'error';
                detail := left(r->>'error', 300);
            ELSE
                outcome := 'row';
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, detail = MESSAGE_TEXT;
            outcome := 'raised';
            detail := left(detail, 300);
        END;
        IF outcome = 'row' THEN
            -- a row is valid UTF-8, fits the table's row type, and has its NOT NULL columns
            BEGIN
                PERFORM convert_from(textsend(r::text), 'UTF8');
                IF m.target = 'fz31.t'::regclass THEN
                    PERFORM jsonb_populate_record(NULL::fz31.t, r);
                    IF jsonb_typeof(r->'ts') IS DISTINCT FROM 'string' OR jsonb_typeof(r->'device_id') IS DISTINCT FROM 'string' THEN
                        RAISE EXCEPTION 'a NOT NULL column is null or missing: %', left(r::text, 200);
                    END IF;
                ELSE
                    PERFORM jsonb_populate_record(NULL::fz31.ev, r);
                    IF jsonb_typeof(r->'event_id') IS DISTINCT FROM 'string' OR jsonb_typeof(r->'device_id') IS DISTINCT FROM 'string'
                       OR jsonb_typeof(r->'created_at') IS DISTINCT FROM 'string' THEN
                        RAISE EXCEPTION 'a NOT NULL column is null or missing: %', left(r::text, 200);
                    END IF;
                END IF;
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, detail = MESSAGE_TEXT;
                outcome := 'bad_row';
                detail := left(detail, 300);
            END;
        END IF;
        IF c.is_text AND outcome IN ('row', 'error') THEN
            -- the text overload decodes the same bytes the same way
            BEGIN
                r2 := iotstream.decode_preview(m.target, m.mapping, convert_from(c.payload, 'UTF8'), c.key, c.topic, c.part,
                                               c.off, c.ts, c.headers);
                IF r2 IS DISTINCT FROM r THEN
                    outcome := 'mismatch';
                    detail := left(format('bytea: %s; text: %s', left(r::text, 140), left(r2::text, 140)), 300);
                END IF;
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, detail = MESSAGE_TEXT;
                outcome := 'mismatch';
                detail := left('the text overload raised: ' || detail, 300);
            END;
        END IF;
        INSERT INTO fz31.results VALUES (c.id, outcome, st, detail,
            CASE WHEN outcome = 'row' THEN coalesce(r->>'ts', r->>'created_at') END);
    END LOOP;
END $$;
SQL

psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
\copy fz31.raw FROM '$W/corpus.jsonl' WITH (FORMAT csv, QUOTE e'\x01', DELIMITER e'\x02')
INSERT INTO fz31.corpus
SELECT (l->>'id')::int, l->>'target',
       l->>'kind', decode(l->>'p', 'hex'), l->>'key', l->>'topic', (l->>'part')::int, (l->>'off')::bigint,
       (l->>'ts')::timestamptz, CASE WHEN jsonb_typeof(l->'h') = 'null' THEN NULL ELSE l->'h' END,
       (l->>'text')::boolean
  FROM (SELECT line::jsonb AS l FROM fz31.raw) x;
TRUNCATE fz31.raw;
SQL
n=$(q "SELECT count(*) FROM fz31.corpus")
[ "$n" -ge 20000 ] || fail "the corpus has only $n payloads"
echo "ok - corpus of $n payloads loaded ($(($(date +%s) - t0)) s)"

ckpt() { psql -X -A -t -q -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'" 2>/dev/null || true; }
ckpt0=$(ckpt)
[ -n "$ckpt0" ] || fail "no checkpointer in pg_stat_activity"
cur_ckpt=$ckpt0
crashed=()

# After a failed statement: the server crashed (it restarts: a new
# checkpointer), or the session died alone (FATAL); wait until it answers.
# Sets HOW.
after_failure() {
  local now
  wait_for "SELECT true" 120
  now=$(ckpt)
  if [ "$now" != "$cur_ckpt" ]; then
    cur_ckpt=$now
    HOW=crash
  else
    HOW=fatal
  fi
}

# Decodes payloads lo..hi in one statement; if that fails, again with one
# statement per payload, to name each payload that brings the server (or its
# session) down: the first one without a result.
run_chunk() {
  local lo=$1 hi=$2 next=$1 id
  PGOPTIONS="-c statement_timeout=120s" psql -X -q -v ON_ERROR_STOP=1 -c "SELECT fz31.run($lo, $hi)" \
    >/dev/null 2>"$W/chunk.err" && return 0
  after_failure
  echo "   payloads $lo..$hi: the statement failed ($HOW): $(head -c 300 "$W/chunk.err" | tr '\n' ' ')"
  while [ "$next" -le "$hi" ]; do
    if seq "$next" "$hi" | sed 's/.*/SELECT fz31.run(&, &);/' |
      PGOPTIONS="-c statement_timeout=30s" psql -X -q -v ON_ERROR_STOP=1 >/dev/null 2>"$W/one.err"; then
      return 0
    fi
    after_failure
    grep -q "statement timeout" "$W/one.err" && HOW=timeout
    id=$(q "SELECT min(id) FROM fz31.corpus WHERE id BETWEEN $next AND $hi AND id NOT IN (SELECT id FROM fz31.results)")
    [ -z "$id" ] && return 0
    psql -X -q -v ON_ERROR_STOP=1 -v how="$HOW" -v detail="$(head -c 300 "$W/one.err")" \
      <<<"INSERT INTO fz31.results VALUES ($id, :'how', NULL, :'detail')" >/dev/null
    crashed+=("$id")
    echo "   payload $id: $HOW: $(head -c 200 "$W/one.err" | tr '\n' ' ')"
    next=$((id + 1))
  done
}

chunk=1000
for ((lo = 1; lo <= n; lo += chunk)); do
  run_chunk "$lo" "$((lo + chunk - 1))"
done
t1=$(date +%s)
echo "   decoded in $((t1 - t0)) s"

echo "   outcomes by kind of payload (row: decoded; error: {\"error\": ...}; raised: an ERROR):"
psql -X -q -P footer=off -c "
  SELECT split_part(c.kind, ':', 1) AS kind, count(*) AS payloads,
         count(*) FILTER (WHERE r.outcome = 'row') AS row,
         count(*) FILTER (WHERE r.outcome = 'error') AS error,
         count(*) FILTER (WHERE r.outcome = 'raised') AS raised,
         count(*) FILTER (WHERE r.outcome NOT IN ('row', 'error', 'raised')) AS bad
    FROM fz31.corpus c LEFT JOIN fz31.results r USING (id) GROUP BY 1 ORDER BY 1" | sed 's/^/   /'

status=0
bad() { echo "not ok - $*"; status=1; }

# 1. the server never restarted
after=$(ckpt)
if [ "$after" = "$ckpt0" ] && [ ${#crashed[@]} = 0 ]; then
  echo "ok - the server did not restart (checkpointer $ckpt0)"
else
  bad "the server restarted or a session died: checkpointer $ckpt0 -> $after; payloads: ${crashed[*]:-}"
fi

# 2. every payload has an outcome, and only the expected ones
got=$(q "SELECT count(*) FROM fz31.results WHERE outcome IN ('row', 'error', 'raised')")
if [ "$got" = "$n" ]; then
  echo "ok - every payload gave a row, an error object or an ERROR: $got of $n"
else
  bad "$got of $n payloads gave a row, an error object or an ERROR; the others:"
  psql -X -q -P footer=off -c "
    SELECT c.id, c.kind, coalesce(r.outcome, 'no result') AS outcome, r.sqlstate, r.detail,
           length(c.payload) AS bytes, encode(substr(c.payload, 1, 60), 'escape') AS payload_start
      FROM fz31.corpus c LEFT JOIN fz31.results r USING (id)
     WHERE r.outcome IS DISTINCT FROM 'row' AND r.outcome IS DISTINCT FROM 'error' AND r.outcome IS DISTINCT FROM 'raised'
     ORDER BY c.id LIMIT 50" | sed 's/^/   /'
fi

# 3. ERRORs are tolerated, but listed (decode.c promises that decoding never
# raises one: a source would fail its whole batch on such a message)
raised=$(q "SELECT count(*) FROM fz31.results WHERE outcome = 'raised'")
if [ "$raised" != 0 ]; then
  echo "   $raised payloads raised an ERROR instead of giving {\"error\": ...}:"
  psql -X -q -P footer=off -c "
    SELECT r.sqlstate, left(r.detail, 90) AS message, count(*) AS payloads, min(c.id) AS first_id,
           string_agg(DISTINCT split_part(c.kind, ':', 1), ',') AS kinds
      FROM fz31.results r JOIN fz31.corpus c USING (id) WHERE r.outcome = 'raised'
     GROUP BY 1, 2 ORDER BY 3 DESC" | sed 's/^/   /'
  if q "SELECT count(*) FROM fz31.results WHERE outcome = 'raised' AND sqlstate = 'XX000'" | grep -qv '^0$'; then
    bad "payloads raised internal errors (XX000)"
  fi
  [ "${DECODE_FUZZ_STRICT:-0}" = 1 ] && bad "DECODE_FUZZ_STRICT=1: no payload may raise an ERROR"
else
  echo "ok - no payload raised an ERROR"
fi

# 4. every decoded event time gets its partition (what the source worker
# asks before it inserts, on these tables without a max_past bound), or is
# refused as outside the table's bounds; each try is rolled back
psql -X -q -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
CREATE TABLE fz31.partitioning (target regclass, event_time text, sqlstate text, message text);
DO $$
DECLARE
    x record;
    st text;
    msg text;
BEGIN
    FOR x IN SELECT DISTINCT m.target, r.event_time
               FROM fz31.results r JOIN fz31.corpus c USING (id) JOIN fz31.mappings m USING (config)
              WHERE r.outcome = 'row' LOOP
        BEGIN
            PERFORM iotstream.ensure_partition(x.target, x.event_time::timestamptz);
            RAISE SQLSTATE 'FZ000';
        EXCEPTION
            WHEN SQLSTATE 'FZ000' THEN
                st := NULL;
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        END;
        IF st IS NOT NULL THEN
            INSERT INTO fz31.partitioning VALUES (x.target, x.event_time, st, msg);
        END IF;
    END LOOP;
END $$;
SQL
times=$(q "SELECT count(DISTINCT event_time) FROM fz31.results WHERE outcome = 'row'")
unpartitioned=$(q "SELECT count(*) FROM fz31.partitioning WHERE message NOT LIKE '%is outside the bounds of stream table%'")
if [ "$unpartitioned" = 0 ]; then
  echo "ok - each of the $times decoded event times gets a partition or a bounds rejection"
else
  bad "$unpartitioned of $times decoded event times get neither a partition nor a bounds rejection (a source worker would fail its batch on them, again and again):"
  psql -X -q -P footer=off -c "
    SELECT p.target, p.event_time, p.sqlstate, left(p.message, 100) AS message,
           (SELECT min(r.id) FROM fz31.results r WHERE r.event_time = p.event_time) AS first_payload
      FROM fz31.partitioning p WHERE p.message NOT LIKE '%is outside the bounds of stream table%'
     ORDER BY 2 LIMIT 20" | sed 's/^/   /'
fi

# 5. known payloads decode exactly
probe() {
  # probe KIND: the decode_preview of the first payload of that kind
  q "SELECT iotstream.decode_preview(m.target, m.mapping, c.payload, c.key, c.topic, c.part, c.off, c.ts, c.headers)
       FROM fz31.corpus c JOIN fz31.mappings m USING (config) WHERE c.kind = '$1' ORDER BY c.id LIMIT 1"
}
# json_eq A B: t when both are JSON and equal as jsonb
json_eq() {
  psql -X -q -At -v a="$1" -v b="$2" <<<"SELECT :'a'::jsonb = :'b'::jsonb" 2>/dev/null || true
}
expect_row() {
  local kind=$1 expected=$2 got
  got=$(probe "$kind" 2>&1) || true
  if [ "$(json_eq "$got" "$expected")" = t ]; then
    echo "ok - $kind decodes exactly"
  else
    bad "$kind: got $got, expected $expected"
  fi
}
expect_error() {
  local kind=$1 got
  got=$(probe "$kind" 2>&1) || true
  if [ "$(psql -X -q -At -v a="$got" <<<"SELECT jsonb_typeof(:'a'::jsonb->'error') = 'string'" 2>/dev/null)" = t ]; then
    echo "ok - $kind gives an error object: $got"
  else
    bad "$kind: expected {\"error\": ...}, got: $(head -c 300 <<<"$got")"
  fi
}
expect_row seed "{\"ts\": \"2026-01-01T00:00:00+00:00\", \"device_id\": \"d1\", \"n\": 3, \"big\": 12345678901,
  \"value\": 21.5, \"amount\": 123.45, \"price\": 9.99, \"ok\": true, \"id\": \"6f1c2a9e-3b4d-4e5f-8a9b-0c1d2e3f4a5b\",
  \"data\": {\"a\": [1, 2, {\"b\": null}]}, \"raw\": \"\\\\x0102ff\", \"day\": \"2026-01-02\", \"small\": 7, \"f4\": 1.5,
  \"lts\": \"2026-01-01T12:30:00\", \"j\": {\"x\": [true, null]}, \"note\": \"TEMP\", \"dotted\": \"dotted\",
  \"deep\": \"deep\", \"inner\": \"[1,2,{\\\"b\\\":null}]\", \"topic\": \"t\", \"k\": \"k1\", \"part\": 3, \"off\": 42,
  \"mts\": \"2026-01-01T00:00:00+00:00\", \"hdrs\": {\"a\": \"b\"},
  \"whole\": \"\\\\x$(q "SELECT encode(payload, 'hex') FROM fz31.corpus WHERE id = 1")\"}"
expect_row_ev() {
  local got
  got=$(q "SELECT iotstream.decode_preview('fz31.ev', NULL, payload) FROM fz31.corpus WHERE id = 2")
  if [ "$(json_eq "$got" "$1")" = t ]; then
    echo "ok - the seed-002 event decodes exactly"
  else
    bad "the seed-002 event: got $got, expected $1"
  fi
}
expect_row_ev '{"event_id": "00000000-0000-4000-8000-000000000002", "complex_data": {"moreData0": 57.739726013343247, "moreData1": 40.5},
  "value": 49.94, "device_id": "device-7", "device_sequence_number": 42, "type": "TEMP", "created_at": "2026-11-01T00:00:00.123+00:00"}'
for k in utf8_in_text overlong_in_text surrogate_utf8_in_text lone_surrogate_escape nul_escape raw_nul int4_over \
    int8_over float_overflow numeric_typmod_overflow varchar_too_long missing_not_null empty whitespace \
    deep_array_10000 deep_object_100000 wrong_type_uuid; do
  expect_error "probe:$k"
done
field() { q "SELECT (iotstream.decode_preview(m.target, m.mapping, c.payload) ->> '$2')
               FROM fz31.corpus c JOIN fz31.mappings m USING (config) WHERE c.kind = 'probe:$1'"; }
assert_eq "$(field int4_max n)" 2147483647 "probe:int4_max keeps n exactly"
assert_eq "$(field int8_max big)" 9223372036854775807 "probe:int8_max keeps big exactly"
assert_eq "$(field epoch_ms ts)" "2026-01-01T00:00:00+00:00" "probe:epoch_ms reads milliseconds"
assert_eq "$(field epoch_bc ts)" "0250-10-15T19:33:20+00:00 BC" "probe:epoch_bc reads negative seconds"
assert_eq "$(field numeric_400_digits amount | sed 's/^9\{400\}$/400 nines/')" "400 nines" "probe:numeric_400_digits keeps all digits"
assert_eq "$(field duplicate_keys device_id)" b "probe:duplicate_keys: the last of equal keys wins"
for k in exact_first exact_last camel_first camel_last ci; do
  assert_eq "$(field "match_$k" device_id)" "$(sed 's/_.*//' <<<"$k")" "probe:match_$k: the best matching key wins"
done

echo "   $n payloads in $(($(date +%s) - t0)) s"
[ "$status" = 0 ] || fail "the decoder fuzz found problems (above)"
echo "ok"

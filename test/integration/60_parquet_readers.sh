#!/usr/bin/env bash
# write_parquet end to end: files written by the server are read back by two
# independent readers (DuckDB and hyparquet) and compared value by value with
# what Postgres returns for the same query; statistics, encodings, row groups,
# codecs, metadata, atomicity and permissions are checked on the files.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
NODE_DIR=$ROOT/test/node

fail=0
pass=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $*"; }
check() { # check DESCRIPTION GOT WANT
  if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1: got '$2', want '$3'"; fi
}
pg() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
rnode() { (cd "$NODE_DIR" && node read_parquet.mjs "$@"); }

# hyparquet has no zstd decoder of its own and Node 20 none either: the
# reader script decompresses zstd pages with the zstd command-line tool
# (Debian package zstd).
command -v zstd >/dev/null || { echo "not ok - the zstd command is missing: apt-get install zstd"; exit 1; }

# The server writes as the postgres user: a directory it owns, removed at exit.
OUT=$(mktemp -d /tmp/iotstream-parquet.XXXXXX)
chown postgres: "$OUT" 2>/dev/null || chmod 777 "$OUT"
trap 'rm -rf "$OUT"' EXIT

pg <<'SQL' || exit 1
DROP TABLE IF EXISTS pq_types;
CREATE TABLE pq_types (
    id      int PRIMARY KEY,
    b       bool,
    i2      int2,
    i4      int4,
    i8      int8,
    f4      float4,
    f8      float8,
    n9      numeric(9,3),
    n18     numeric(18,6),
    n38     numeric(38,10),
    nn      numeric,
    lo      text,
    hi      varchar(40),
    bp      char(4),
    u       uuid,
    tstz    timestamptz,
    ts      timestamp,
    d       date,
    jb      jsonb,
    js      json,
    by      bytea,
    iv      interval,
    arr     int[]
);
-- 5000 generated rows: every column NULL now and then, low- and
-- high-cardinality text, multi-byte UTF-8, negative values.
INSERT INTO pq_types
SELECT g,
       CASE WHEN g % 11 = 0 THEN NULL ELSE g % 3 = 0 END,
       CASE WHEN g % 13 = 0 THEN NULL ELSE ((g * 37) % 65536 - 32768)::int2 END,
       CASE WHEN g % 17 = 0 THEN NULL ELSE (g * 7919) % 2000003 - 1000000 END,
       CASE WHEN g % 19 = 0 THEN NULL ELSE (g::int8 * 1000003) * (CASE WHEN g % 2 = 0 THEN -1 ELSE 1 END) * 1000000 END,
       CASE WHEN g % 23 = 0 THEN NULL ELSE (g / 7.0)::float4 * (CASE WHEN g % 2 = 0 THEN -1 ELSE 1 END) END,
       CASE WHEN g % 29 = 0 THEN NULL ELSE sin(g) * 1e6 END,
       CASE WHEN g % 31 = 0 THEN NULL ELSE ((g * 12345) % 999999999 - 500000000) / 1000.0 END,
       CASE WHEN g % 37 = 0 THEN NULL ELSE (g::numeric * 98765432109) / 1000000 * (CASE WHEN g % 2 = 0 THEN -1 ELSE 1 END) END,
       CASE WHEN g % 41 = 0 THEN NULL ELSE (g::numeric * 1234567890123456789012345) / 10000000000 * (CASE WHEN g % 3 = 0 THEN -1 ELSE 1 END) END,
       CASE WHEN g % 43 = 0 THEN NULL ELSE round(g::numeric / 7, g % 20) END,
       CASE WHEN g % 47 = 0 THEN NULL ELSE (ARRAY['alpha', 'beta', 'gamma', 'délta', '', 'ζήτα'])[1 + g % 6] END,
       CASE WHEN g % 53 = 0 THEN NULL ELSE md5(g::text) || '€' END,
       CASE WHEN g % 59 = 0 THEN NULL ELSE (g % 100)::text END,
       CASE WHEN g % 61 = 0 THEN NULL ELSE md5('u' || g)::uuid END,
       CASE WHEN g % 67 = 0 THEN NULL ELSE timestamptz '2026-03-01 00:00:00+00' + g * interval '17 minutes 3.000123 seconds' END,
       CASE WHEN g % 71 = 0 THEN NULL ELSE timestamp '1969-12-31 23:00:00' + g * interval '1 hour 0.5 seconds' END,
       CASE WHEN g % 73 = 0 THEN NULL ELSE date '1960-01-01' + g * 3 END,
       CASE WHEN g % 79 = 0 THEN NULL
            -- past 32 entries a container stores some end offsets instead of
            -- lengths: objects of up to 45 keys and arrays of up to 70 elements
            WHEN g % 101 = 0 THEN (SELECT jsonb_object_agg('k' || j || repeat('é', j % 3) || CASE WHEN j % 7 = 0 THEN E'\t"' ELSE '' END,
                                                           CASE j % 6 WHEN 0 THEN to_jsonb(j * g / 7.0) WHEN 1 THEN to_jsonb(repeat('sé', j * g % 23) || (ARRAY['"', E'\\\\', chr(1), E'\\n', ''])[1 + j % 5] || repeat('t', j % 11))
                                                                      WHEN 2 THEN (SELECT jsonb_agg(CASE WHEN x % 4 = 0 THEN NULL ELSE to_jsonb(x - g) END) FROM generate_series(1, 70 - j) x)
                                                                      WHEN 3 THEN 'null'::jsonb WHEN 4 THEN to_jsonb(j % 2 = 0)
                                                                      ELSE jsonb_build_object('e', '{}'::jsonb, 'a', '[]'::jsonb, 'n', -j * 1e-9) END)
                                     FROM generate_series(1, 5 + g % 41) j)
            ELSE jsonb_build_object('device', 'dev-' || (g % 50), 'v', g / 3.0, 'tags', jsonb_build_array('a', g % 5), 'ü', true) END,
       CASE WHEN g % 83 = 0 THEN NULL ELSE ('{"raw": ' || g || ',  "keep": "spacing"}')::json END,
       CASE WHEN g % 89 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END,
       CASE WHEN g % 97 = 0 THEN NULL ELSE g * interval '1 minute 1 second' END,
       CASE WHEN g % 101 = 0 THEN NULL ELSE ARRAY[g, g + 1] END
FROM generate_series(1, 5000) g;
-- the edges: NaN, infinities, -0, empty strings, extreme times, wide decimals
INSERT INTO pq_types (id, b, i2, i4, i8, f4, f8, n9, n18, n38, nn, lo, hi, bp, tstz, ts, d, jb, js, by) VALUES
 (5001, true, 32767, 2147483647, 9223372036854775807, 'NaN', 'NaN', 999999.999, 999999999999.999999,
  9999999999999999999999999999.9999999999, 'NaN', '', '', '', '4713-01-01 00:00:00+00 BC', '4713-01-01 00:00:00 BC',
  '4713-01-01 BC', '{}', '[]', ''::bytea),
 (5002, false, -32768, -2147483648, -9223372036854775808, 'Infinity', 'Infinity', -999999.999, -999999999999.999999,
  -9999999999999999999999999999.9999999999, 'Infinity', '🦆 multi-byte ✓', 'Ω', 'x', '200000-12-31 23:59:59.999999+00',
  '200000-12-31 23:59:59.999999', '200000-12-31',
  '{"a": [1, -2.50, {"b": null}, [], {}], "k\"\u0001\n": "é\u005c\b\f\r\t/", "n": [0, -0.001, 1e30, 123456789.000100, -98765.4321e-10, 0.5]}',
  'null', '\x00ff'),
 (5003, NULL, 0, 0, 0, '-Infinity', '-Infinity', 0, 0.000001, 0.0000000001, '-Infinity', NULL, NULL, NULL,
  'infinity', '-infinity', 'infinity', 'null', '"s"', NULL),
 (5004, NULL, NULL, NULL, NULL, '-0', '-0', -0.001, -0.000001, -0.0000000001,
  '123456789012345678901234567890.123456789012345678901234567890', NULL, NULL, NULL,
  '-infinity', 'infinity', '-infinity', '-12.3400', NULL, NULL);
ANALYZE pq_types;
SQL

SRC='SELECT * FROM pq_types ORDER BY id'

# write FILE OPTIONS [QUERY] -> "rows|bytes|row_groups"
write() {
  local q=${3:-$SRC}
  pg -c "SELECT rows || '|' || bytes || '|' || row_groups FROM iotstream.write_parquet(\$q\$$q\$q\$, '$OUT/$1', '$2')"
}

# Every codec, both readers, every value.
for spec in 'none|{"compression": "none"}' 'snappy|{"compression": "snappy"}' \
  'gzip|{"compression": "gzip", "compression_level": 9}' 'zstd|{"compression": "zstd"}' \
  'zstd19|{"compression": "zstd", "compression_level": 19}' \
  'zstd1t|{"compression": "zstd", "compression_threads": 1}' \
  'snappy4t|{"compression": "snappy", "compression_threads": 4, "page_size": "8kB"}' \
  'zstdearly|{"compression": "zstd", "dictionary": false, "page_size": "8kB"}' \
  'gzipmixed|{"compression": "gzip", "dictionary_size": "4kB", "page_size": "8kB", "row_group_size": "128kB"}'; do
  name=${spec%%|*}
  opts=${spec#*|}
  res=$(write "types_$name.parquet" "$opts")
  check "$name: rows returned" "${res%%|*}" 5004
  size=$(stat -c %s "$OUT/types_$name.parquet")
  bytes=$(echo "$res" | cut -d'|' -f2)
  check "$name: bytes returned match the file size" "$bytes" "$size"
  if out=$(rnode compare "$OUT/types_$name.parquet" "$SRC"); then
    ok "$name: DuckDB and hyparquet read every value as Postgres has it"
  else
    not_ok "$name: readers disagree with Postgres: $out"
  fi
  codec=$(rnode duckdb "SELECT DISTINCT compression FROM parquet_metadata('$OUT/types_$name.parquet')")
  want=$(echo "$name" | tr a-z A-Z | sed 's/NONE/UNCOMPRESSED/; s/ZSTD19/ZSTD/; s/ZSTD1T/ZSTD/; s/SNAPPY4T/SNAPPY/; s/ZSTDEARLY/ZSTD/; s/GZIPMIXED/GZIP/')
  check "$name: column chunks are $want" "$codec" "[\"$want\"]"
done

F=$OUT/types_zstd.parquet
# The Parquet types chosen for each Postgres type.
schema=$(rnode duckdb "SELECT string_agg(name || ':' || type || ':' || coalesce(converted_type, '-') || ':' || coalesce(type_length::VARCHAR, '-'), ' ' ORDER BY name) FROM parquet_schema('$F') WHERE name <> 'schema'")
check "schema: physical and converted types" "$schema" \
  '["b:BOOLEAN:-:- bp:BYTE_ARRAY:UTF8:- by:BYTE_ARRAY:-:- d:INT32:DATE:- element:INT32:INT_32:- f4:FLOAT:-:- f8:DOUBLE:-:- hi:BYTE_ARRAY:UTF8:- i2:INT32:INT_16:- i4:INT32:INT_32:- i8:INT64:INT_64:- id:INT32:INT_32:- iv:BYTE_ARRAY:UTF8:- jb:BYTE_ARRAY:JSON:- js:BYTE_ARRAY:JSON:- lo:BYTE_ARRAY:UTF8:- n18:INT64:DECIMAL:- n38:FIXED_LEN_BYTE_ARRAY:DECIMAL:16 n9:INT32:DECIMAL:- nn:BYTE_ARRAY:UTF8:- ts:INT64:-:- tstz:INT64:TIMESTAMP_MICROS:- u:FIXED_LEN_BYTE_ARRAY:-:16"]'
ltypes=$(rnode duckdb "SELECT string_agg(name || '=' || logical_type, ' ' ORDER BY name) FROM parquet_schema('$F') WHERE name IN ('u', 'ts', 'tstz', 'n38')")
case "$ltypes" in
  *"n38=DecimalType(scale=10, precision=38)"*"ts=TimestampType(isAdjustedToUTC=0"*"tstz=TimestampType(isAdjustedToUTC=1"*"u=UUIDType()"*)
    ok "schema: logical types of decimal, timestamps and uuid" ;;
  *) not_ok "schema: logical types: $ltypes" ;;
esac
dtypes=$(rnode duckdb "SELECT string_agg(column_name || ':' || column_type, ' ' ORDER BY column_name) FROM (DESCRIBE SELECT tstz, ts, d, u, n38, jb FROM '$F')")
check "DuckDB sees the SQL types" "$dtypes" '["d:DATE jb:JSON n38:DECIMAL(38,10) ts:TIMESTAMP tstz:TIMESTAMP WITH TIME ZONE u:UUID"]'

# Statistics: null counts equal Postgres's; min/max equal the values read
# (which the comparison above tied to Postgres), NaN excluded.
for c in b i2 i4 i8 f4 f8 n9 n18 n38 lo hi u tstz ts d by; do
  want=$(pg -c "SELECT count(*) - count($c) FROM pq_types")
  got=$(rnode duckdb "SELECT stats_null_count FROM parquet_metadata('$F') WHERE path_in_schema = '$c'")
  check "stats: null_count of $c" "$got" "[\"$want\"]"
done
for c in b i2 i4 i8 n9 n18 n38 lo hi tstz ts d; do
  got=$(rnode duckdb "SELECT (SELECT stats_min_value FROM parquet_metadata('$F') WHERE path_in_schema = '$c') = min($c)::VARCHAR AND (SELECT stats_max_value FROM parquet_metadata('$F') WHERE path_in_schema = '$c') = max($c)::VARCHAR FROM '$F'")
  check "stats: min/max of $c" "$got" '[true]'
done
# Floats: NaN takes no part in min/max.  (DuckDB ignores float statistics
# that hold an infinity, so this file leaves the infinite rows out.)
write floats.parquet '{}' 'SELECT f4, f8 FROM pq_types WHERE id NOT IN (5002, 5003) ORDER BY id' >/dev/null
for c in f4 f8; do
  got=$(rnode duckdb "SELECT (SELECT stats_min_value FROM parquet_metadata('$OUT/floats.parquet') WHERE path_in_schema = '$c') = min($c)::VARCHAR AND (SELECT stats_max_value FROM parquet_metadata('$OUT/floats.parquet') WHERE path_in_schema = '$c') = max($c)::VARCHAR FROM '$OUT/floats.parquet' WHERE NOT isnan($c)")
  check "stats: min/max of $c without NaN" "$got" '[true]'
done
got=$(rnode duckdb "SELECT count(*) FROM '$OUT/floats.parquet' WHERE isnan(f8)")
check "stats: the NaN row is still in the data" "$got" '["1"]'
want=$(pg -c "SELECT min(i8) || ' ' || max(i8) FROM pq_types")
got=$(rnode duckdb "SELECT stats_min_value || ' ' || stats_max_value FROM parquet_metadata('$F') WHERE path_in_schema = 'i8'")
check "stats: signed int64 order" "$got" "[\"$want\"]"
want=$(pg -c "SELECT min(lo COLLATE \"C\") || '|' || max(lo COLLATE \"C\") FROM pq_types")
got=$(rnode duckdb "SELECT stats_min_value || '|' || stats_max_value FROM parquet_metadata('$F') WHERE path_in_schema = 'lo'")
check "stats: byte order of strings as Postgres's C collation" "$got" "[\"$want\"]"
# uuid (FIXED_LEN_BYTE_ARRAY) statistics in unsigned byte order: random
# values, then 100 that share their first 8 bytes and come in descending
# order, so that the minimum is decided on the last 8 bytes after the first
# 8 equal the minimum's; with and without a dictionary (PLAIN columns
# compare the values in batches, a dictionary its entries)
UQ="SELECT u FROM (SELECT md5('u' || g)::uuid AS u, g AS o FROM generate_series(1, 5000) g UNION ALL SELECT ('00000000-0000-0000-' || lpad(to_hex(g), 4, '0') || '-000000000000')::uuid, 6000 - g FROM generate_series(1, 100) g) q ORDER BY o"
want=$(pg -c "SELECT (SELECT u FROM ($UQ) q ORDER BY u LIMIT 1) || ' ' || (SELECT u FROM ($UQ) q ORDER BY u DESC LIMIT 1)")
for opts in '{}' '{"dictionary": false}'; do
  write uuid_stats.parquet "$opts" "$UQ" >/dev/null
  got=$(rnode duckdb "SELECT stats_min_value || ' ' || stats_max_value FROM parquet_metadata('$OUT/uuid_stats.parquet')")
  check "stats: uuid min/max in byte order ($opts)" "$got" "[\"$want\"]"
done
# pruning works: DuckDB skips the row group by its statistics
got=$(rnode duckdb "SELECT count(*) FROM '$F' WHERE i4 > 2147483646")
check "a filter on statistics finds the edge row" "$got" '["1"]'

# Key-value metadata.
res=$(write meta.parquet '{"metadata": {"iotstream.source_table": "public.pq_types", "iotstream.period": "2026-03-01T00:00:00Z/PT1H"}}')
got=$(rnode duckdb "SELECT string_agg(decode(key) || '=' || decode(value), ' ' ORDER BY key) FROM parquet_kv_metadata('$OUT/meta.parquet')")
version=$(psql -X -q -At -c "SELECT extversion FROM pg_extension WHERE extname = 'iotstream'")
check "key-value metadata" "$got" "[\"iotstream.period=2026-03-01T00:00:00Z/PT1H iotstream.source_table=public.pq_types iotstream.version=$version\"]"

# Dictionary and its fallback: low-cardinality columns stay dictionary
# encoded, high-cardinality ones fall back to PLAIN past dictionary_size.
write dict.parquet '{"dictionary_size": "4kB"}' >/dev/null
enc() { rnode duckdb "SELECT encodings FROM parquet_metadata('$1') WHERE path_in_schema = '$2'"; }
check "dictionary: low-cardinality text keeps its dictionary" "$(enc "$OUT/dict.parquet" lo)" '["PLAIN, RLE, RLE_DICTIONARY"]'
check "dictionary: high-cardinality text falls back to PLAIN" "$(enc "$OUT/dict.parquet" hi)" '["PLAIN, RLE"]'
check "dictionary: unique ids fall back to PLAIN" "$(enc "$OUT/dict.parquet" id)" '["PLAIN, RLE"]'
check "dictionary: booleans are PLAIN" "$(enc "$OUT/dict.parquet" b)" '["PLAIN, RLE"]'
if out=$(rnode compare "$OUT/dict.parquet" "$SRC"); then ok "dictionary fallback: every value read back"; else not_ok "dictionary fallback: $out"; fi
write nodict.parquet '{"dictionary": false, "compression": "snappy"}' >/dev/null
check "dictionary: off when asked" "$(enc "$OUT/nodict.parquet" lo)" '["PLAIN, RLE"]'
if out=$(rnode compare "$OUT/nodict.parquet" "$SRC"); then ok "no dictionary: every value read back"; else not_ok "no dictionary: $out"; fi

# A dictionary must pay for itself on a chunk's first values (entries plus
# bit-packed indices smaller than PLAIN), as parquet-mr judges: unique
# values are PLAIN even where the dictionary would fit in dictionary_size.
# Values in runs keep it past 256 and 65,536 entries, where the buffered
# indices widen from one byte to two, then four.  The first column, unique
# and so PLAIN, is written page by page while the row group is buffered;
# small pages and row groups make it do so many times.
pg <<'SQL' >/dev/null
DROP TABLE IF EXISTS pq_dict;
CREATE TABLE pq_dict AS
SELECT g AS uniq, (g / 8)::int4 AS runs, (g % 300)::int2 AS few,
       CASE WHEN g % 7 = 0 THEN NULL ELSE 'k' || (g / 50) END AS txt
  FROM generate_series(1, 600000) g;
SQL
DSRC='SELECT uniq, runs, few, txt FROM pq_dict ORDER BY uniq'
write pays.parquet '{"compression": "snappy"}' "SELECT uniq FROM pq_dict WHERE uniq <= 20000 ORDER BY uniq" >/dev/null
check "dictionary: 20,000 unique int8 (160 kB of 1 MB) do not pay: PLAIN" "$(enc "$OUT/pays.parquet" uniq)" '["PLAIN, RLE"]'
write wide_idx.parquet '{"compression": "zstd"}' "$DSRC" >/dev/null
check "dictionary: unique first column is PLAIN" "$(enc "$OUT/wide_idx.parquet" uniq)" '["PLAIN, RLE"]'
check "dictionary: 75,000 entries in runs keep the dictionary" "$(enc "$OUT/wide_idx.parquet" runs)" '["PLAIN, RLE, RLE_DICTIONARY"]'
check "dictionary: 300 entries keep the dictionary" "$(enc "$OUT/wide_idx.parquet" few)" '["PLAIN, RLE, RLE_DICTIONARY"]'
check "dictionary: 12,000 nullable strings in runs keep the dictionary" "$(enc "$OUT/wide_idx.parquet" txt)" '["PLAIN, RLE, RLE_DICTIONARY"]'
want=$(pg -c "SELECT count(*) || ' ' || sum(uniq) || ' ' || sum(runs) || ' ' || sum(few) || ' ' || count(txt) || ' ' || sum(length(txt)) || ' ' || count(DISTINCT runs) FROM pq_dict")
got=$(rnode duckdb "SELECT count(*) || ' ' || sum(uniq) || ' ' || sum(runs) || ' ' || sum(few) || ' ' || count(txt) || ' ' || sum(length(txt)) || ' ' || count(DISTINCT runs) FROM '$OUT/wide_idx.parquet'")
check "dictionary: DuckDB reads the sums of 600,000 rows" "$got" "[\"$want\"]"
if out=$(rnode compare "$OUT/wide_idx.parquet" "$DSRC"); then ok "dictionary: wide indices, every value read back"; else not_ok "dictionary wide indices: $out"; fi
res=$(write streamed.parquet '{"compression": "snappy", "row_group_size": "1MB", "page_size": "16kB"}' "$DSRC")
rgs=$(echo "$res" | cut -d'|' -f3)
[ "$rgs" -ge 5 ] && ok "streamed first column: $rgs row groups" || not_ok "streamed first column: only $rgs row groups"
got=$(rnode duckdb "WITH m AS (SELECT row_group_id, column_id, least(coalesce(nullif(dictionary_page_offset, 0), data_page_offset), data_page_offset) AS start, total_compressed_size AS len FROM parquet_metadata('$OUT/streamed.parquet')) SELECT count(*) FILTER (WHERE c0.start + c0.len <= c1.start) || '/' || count(*) FROM m c0 JOIN m c1 USING (row_group_id) WHERE c0.column_id = 0 AND c1.column_id = 1")
check "streamed first column: each chunk lies before the next column's" "$got" "[\"$rgs/$rgs\"]"
sz=$(echo "$res" | cut -d'|' -f2)
check "streamed first column: the bytes reported are the file's" "$sz" "$(stat -c %s "$OUT/streamed.parquet")"
if out=$(rnode compare "$OUT/streamed.parquet" "$DSRC"); then ok "streamed first column: every value read back"; else not_ok "streamed first column: $out"; fi
pg -c "DROP TABLE pq_dict"

# Row groups cut by bytes, and small pages: many of each.
res=$(write rg.parquet '{"row_group_size": "256kB", "page_size": "16kB", "compression": "zstd"}')
rgs=$(echo "$res" | cut -d'|' -f3)
got=$(rnode duckdb "SELECT count(DISTINCT row_group_id) FROM parquet_metadata('$OUT/rg.parquet')")
check "row groups: as many in the file as reported" "$got" "[\"$rgs\"]"
[ "$rgs" -ge 4 ] && ok "row groups: $rgs row groups of 256kB" || not_ok "row groups: only $rgs"
got=$(rnode duckdb "SELECT sum(row_group_num_rows) FROM (SELECT DISTINCT row_group_id, row_group_num_rows FROM parquet_metadata('$OUT/rg.parquet'))")
check "row groups: rows add up" "$got" '["5004"]'
if out=$(rnode compare "$OUT/rg.parquet" "$SRC"); then ok "row groups: every value read back"; else not_ok "row groups: $out"; fi
got=$(rnode duckdb "SELECT bool_and(stats_min_value::INT <= stats_max_value::INT) AND count(DISTINCT stats_min_value) = count(*) FROM parquet_metadata('$OUT/rg.parquet') WHERE path_in_schema = 'id'")
check "row groups: each has its own id range in its statistics" "$got" '[true]'

# An empty result is a valid file with the schema and no rows.
res=$(write empty.parquet '{}' 'SELECT * FROM pq_types WHERE false')
check "empty: zero rows" "$res" "0|$(stat -c %s "$OUT/empty.parquet")|0"
got=$(rnode duckdb "SELECT count(*) FROM '$OUT/empty.parquet'" "SELECT count(*) FROM parquet_schema('$OUT/empty.parquet')")
# 24 columns, the int[] a LIST of three elements (arr, list, element)
check "empty: DuckDB reads no rows and all 26 schema elements" "$(echo $got)" '["0"] ["26"]'
if out=$(rnode compare "$OUT/empty.parquet" 'SELECT * FROM pq_types WHERE false'); then ok "empty: hyparquet reads it too"; else not_ok "empty: $out"; fi

# Only NULLs in a column, a required-free single column, duplicate names.
res=$(write nulls.parquet '{}' 'SELECT g AS x, NULL::text AS x, NULL::int AS n FROM generate_series(1, 100) g ORDER BY g')
check "all-NULL columns" "${res%%|*}" 100
got=$(rnode duckdb "SELECT count(*), count(x_2), count(n) FROM '$OUT/nulls.parquet'")
check "all-NULL columns read as NULL; a duplicate name gets a suffix" "$got" '["100","0","0"]'

# Atomic: a query failing midway leaves neither the file nor a temporary one;
# an existing file is replaced only by a complete new one.
write atomic.parquet '{}' 'SELECT 1 AS one' >/dev/null
if pg -c "SELECT * FROM iotstream.write_parquet('SELECT g, 1 / (g - 3000) FROM generate_series(1, 5000) g', '$OUT/atomic.parquet', '{\"row_group_size\": \"1kB\"}')" 2>/dev/null; then
  not_ok "atomic: the failing query should fail"
else
  ok "atomic: the failing query fails"
fi
# the same while pages are being compressed in the background
if pg -c "SELECT * FROM iotstream.write_parquet('SELECT g, repeat(md5(g::text), 4) AS t, 1 / (g - 30000) FROM generate_series(1, 50000) g', '$OUT/atomic.parquet', '{\"dictionary\": false, \"page_size\": \"8kB\"}')" 2>/dev/null; then
  not_ok "atomic: the failing query should fail with compression under way"
else
  ok "atomic: the failing query fails with compression under way"
fi
check "atomic: the server is still up" "$(pg -c 'SELECT 1')" 1
# Failures caught in a PL/pgSQL block, one subtransaction each, with the
# file's writer thread holding a buffer: each leaves no descriptor behind
# (the file is ours, closed when the call's memory goes), and a file written
# after them in the same transaction is whole.
got=$(pg 2>&1 <<SQL
DO \$\$
DECLARE before int; after int; n int := -1;
BEGIN
  FOR i IN 0..20 LOOP
    -- counted after the first call, which opens what a backend keeps open
    IF i = 1 THEN
      SELECT count(*) INTO before FROM pg_ls_dir('/proc/self/fd');
    END IF;
    BEGIN
      PERFORM iotstream.write_parquet('SELECT g, repeat(md5(g::text), 8) AS t, 1 / (g - 40000) FROM generate_series(1, 50000) g',
                                      '$OUT/caught.parquet', '{"dictionary": false, "compression": "none"}');
    EXCEPTION WHEN division_by_zero THEN n := n + 1;
    END;
  END LOOP;
  SELECT count(*) INTO after FROM pg_ls_dir('/proc/self/fd');
  PERFORM iotstream.write_parquet('SELECT g, repeat(md5(g::text), 8) AS t FROM generate_series(1, 50000) g',
                                  '$OUT/caught.parquet', '{"dictionary": false, "compression": "none"}');
  RAISE NOTICE 'caught % of 20, descriptors % then %', n, before, after;
END
\$\$;
SQL
)
got=$(grep -o 'caught.*' <<<"$got")
fds=($(grep -o 'descriptors [0-9]* then [0-9]*' <<<"$got" | awk '{print $2, $4}'))
check "caught failures: every one raised" "${got%%,*}" "caught 20 of 20"
[ "${#fds[@]}" = 2 ] && [ "${fds[0]}" = "${fds[1]}" ] && ok "caught failures: no descriptor left open (${fds[0]} before, ${fds[1]} after)" ||
  not_ok "caught failures: descriptors ${fds[*]:-unknown}"
check "caught failures: no temporary file is left" "$(ls "$OUT" | grep -c '\.tmp\.')" 0
got=$(rnode duckdb "SELECT count(*), sum(g), sum(length(t)) FROM '$OUT/caught.parquet'")
check "caught failures: the file written after them is whole" "$got" '["50000","1250025000","12800000"]'
check "atomic: no temporary file is left" "$(ls "$OUT" | grep -c '\.tmp\.')" 0
got=$(rnode duckdb "SELECT count(*), sum(one) FROM '$OUT/atomic.parquet'")
check "atomic: the old file is intact" "$got" '["1","1"]'

# Arrays as LIST and composite types as STRUCT (3-level lists, nested
# groups), with NULLs at every level: a NULL array, an empty one, a NULL
# element, a NULL composite, a NULL field, an array of composites holding
# arrays.  Both readers, value by value, in one page and across many pages
# and row groups.
pg <<'SQL' || exit 1
DROP TABLE IF EXISTS pq_nested;
DROP TYPE IF EXISTS pq_outer;
DROP TYPE IF EXISTS pq_inner;
DROP TYPE IF EXISTS pq_when;
CREATE TYPE pq_inner AS (k int, tags text[]);
CREATE TYPE pq_outer AS (name text, score float8, inr pq_inner, vals int[], n numeric(10,2));
CREATE TYPE pq_when AS ("at" timestamptz);
CREATE TABLE pq_nested (id int, ia int[], ta text[], fa float8[], c pq_outer, ca pq_inner[], ba bool[], da date[], w pq_when);
INSERT INTO pq_nested VALUES
 (1, '{1,2,3}', '{a,b}', '{1.5,NaN,-Infinity}', ROW('x', 2.5, ROW(7, '{p,q}'), '{9}', 12.5),
     ARRAY[ROW(1, '{z}')::pq_inner, NULL, ROW(NULL, NULL)::pq_inner], '{t,NULL,f}', '{2026-01-02}', ROW('2026-03-01 10:00:00+00')),
 (2, NULL, '{}', '{NULL}', NULL, NULL, NULL, '{}', NULL),
 (3, '{}', '{NULL,c}', NULL, ROW(NULL, NULL, NULL, NULL, NULL), '{}', '{}', NULL, ROW(NULL)),
 (4, '{NULL,5}', NULL, '{-0,1e300}', ROW('y', NULL, ROW(NULL, '{}'), '{}', -0.01), ARRAY[ROW(2, '{NULL}')::pq_inner], '{NULL}', '{NULL}', NULL),
 (5, '{NULL}', '{"", "é ✓"}', '{}', ROW('', 0, NULL, '{NULL,NULL}', 0), ARRAY[NULL]::pq_inner[], NULL, NULL, NULL),
 (6, '[0:1]={10,11}', '{x}', NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO pq_nested
SELECT g,
       CASE WHEN g % 7 = 0 THEN NULL WHEN g % 11 = 0 THEN '{}' ELSE
            (SELECT array_agg(CASE WHEN x % 5 = 0 THEN NULL ELSE g * x END) FROM generate_series(1, g % 9 + 1) x) END,
       CASE WHEN g % 13 = 0 THEN NULL ELSE
            (SELECT array_agg(CASE WHEN x % 4 = 0 THEN NULL ELSE md5((g * x)::text) END) FROM generate_series(1, g % 5) x) END,
       CASE WHEN g % 3 = 0 THEN NULL ELSE ARRAY[g / 7.0, -g * 1e-3]::float8[] END,
       CASE WHEN g % 17 = 0 THEN NULL ELSE
            ROW('n' || g % 10, CASE WHEN g % 2 = 0 THEN NULL ELSE g * 0.25 END,
                CASE WHEN g % 19 = 0 THEN NULL ELSE ROW(g, ARRAY['t' || g, NULL])::pq_inner END,
                CASE WHEN g % 23 = 0 THEN NULL ELSE ARRAY[g, g + 1, g + 2] END,
                (g % 1000) / 8.0)::pq_outer END,
       CASE WHEN g % 29 = 0 THEN NULL ELSE
            (SELECT array_agg(CASE WHEN x = 2 THEN NULL ELSE ROW(x, CASE WHEN x = 3 THEN '{}'::text[] ELSE ARRAY['e' || x] END)::pq_inner END)
               FROM generate_series(1, g % 4) x) END,
       CASE WHEN g % 31 = 0 THEN NULL ELSE ARRAY[g % 2 = 0, NULL] END,
       CASE WHEN g % 37 = 0 THEN NULL ELSE ARRAY[date '2026-01-01' + g % 400] END,
       CASE WHEN g % 41 = 0 THEN NULL ELSE ROW(timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute 0.000001 seconds')::pq_when END
FROM generate_series(7, 6000) g;
SQL
# The readers write timestamps and dates in lists and structs each their
# own way: the value by value comparison leaves them out, and sums check them.
NSRC='SELECT id, ia, ta, fa, c, ca, ba FROM pq_nested ORDER BY id'
res=$(write nested.parquet '{}' "$NSRC")
check "nested: rows returned" "${res%%|*}" 6000
write nested_all.parquet '{}' 'SELECT * FROM pq_nested ORDER BY id' >/dev/null
got=$(rnode duckdb "SELECT sum(epoch_us(w.at))::VARCHAR || '|' || sum(list_sum(list_transform(da, d -> d - DATE '1970-01-01')))::VARCHAR || '|' || count(w.at) || '|' || sum(len(da)) FROM '$OUT/nested_all.parquet'")
want=$(pg -c "SELECT sum((extract(epoch FROM (w).at) * 1000000)::bigint) || '|' || (SELECT sum(d - date '1970-01-01') FROM pq_nested, unnest(da) d) || '|' || count((w).at) || '|' || sum(cardinality(da)) FROM pq_nested")
check "nested: timestamps in a struct and dates in a list" "$got" "[\"$want\"]"
got=$(rnode duckdb "SELECT string_agg(column_name || ' ' || column_type, ', ' ORDER BY column_name) FROM (DESCRIBE SELECT * FROM '$OUT/nested_all.parquet')")
check "nested: DuckDB sees lists and structs" "$got" '["ba BOOLEAN[], c STRUCT(\"name\" VARCHAR, score DOUBLE, inr STRUCT(k INTEGER, tags VARCHAR[]), vals INTEGER[], n DECIMAL(10,2)), ca STRUCT(k INTEGER, tags VARCHAR[])[], da DATE[], fa DOUBLE[], ia INTEGER[], id INTEGER, ta VARCHAR[], w STRUCT(\"at\" TIMESTAMP WITH TIME ZONE)"]'
got=$(rnode duckdb "SELECT string_agg(name || ':' || coalesce(repetition_type, '') || ':' || coalesce(converted_type, ''), ' ' ORDER BY rowid) FROM (SELECT row_number() OVER () AS rowid, * FROM parquet_schema('$OUT/nested.parquet')) WHERE name IN ('ia', 'list', 'element') AND rowid <= 5")
check "nested: the 3-level LIST layout" "$got" '["ia:OPTIONAL:LIST list:REPEATED: element:OPTIONAL:INT_32"]'
if out=$(rnode compare "$OUT/nested.parquet" "$NSRC"); then ok "nested: DuckDB and hyparquet read every value as Postgres has it"; else not_ok "nested: $out"; fi
# many pages (cut on rows) and row groups, PLAIN and dictionary pages
res=$(write nested_pages.parquet '{"page_size": "4kB", "row_group_size": "64kB", "dictionary": false, "compression": "snappy"}' "$NSRC")
rgs=$(echo "$res" | cut -d'|' -f3)
[ "$rgs" -ge 3 ] && ok "nested: $rgs row groups" || not_ok "nested: only $rgs row groups"
if out=$(rnode compare "$OUT/nested_pages.parquet" "$NSRC"); then ok "nested, small pages and row groups: every value read back"; else not_ok "nested pages: $out"; fi
res=$(write nested_dict.parquet '{"page_size": "4kB", "compression": "zstd"}' "$NSRC")
if out=$(rnode compare "$OUT/nested_dict.parquet" "$NSRC"); then ok "nested, dictionary pages: every value read back"; else not_ok "nested dictionary: $out"; fi
# the leaves' statistics: a struct field's min/max and its nulls (a NULL composite counts)
got=$(rnode duckdb "SELECT stats_min_value || '|' || stats_max_value || '|' || stats_null_count FROM parquet_metadata('$OUT/nested.parquet') WHERE path_in_schema = 'c, inr, k'")
want=$(pg -c "SELECT min((c).inr.k) || '|' || max((c).inr.k) || '|' || count(*) FILTER (WHERE (c).inr.k IS NULL) FROM pq_nested")
check "nested: a struct field's statistics" "$got" "[\"$want\"]"
# more than one dimension is refused with a hint
err=$(pg -c "SELECT * FROM iotstream.write_parquet('SELECT ARRAY[[1, 2], [3, 4]] AS m', '$OUT/multi.parquet')" 2>&1)
grep -q 'got an array of 2 dimensions' <<<"$err" && grep -q 'HINT:  Flatten the array' <<<"$err" &&
  ok "nested: a 2-dimensional array is refused with a hint" || not_ok "nested: 2-dimensional array: $err"
[ ! -e "$OUT/multi.parquet" ] && ok "nested: no file after the refusal" || not_ok "nested: a file after the refusal"

# A LATIN1 database: STRING columns are converted to UTF-8 on the way out.
pg -d postgres -c "DROP DATABASE IF EXISTS pq_latin1" -c "CREATE DATABASE pq_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" >/dev/null
pg -d pq_latin1 -c "CREATE EXTENSION iotstream" >/dev/null
res=$(PGCLIENTENCODING=UTF8 pg -d pq_latin1 -c "SELECT rows FROM iotstream.write_parquet(\$\$SELECT 'café ñ' AS t, 'Ä'::varchar AS v, '{\"k\": \"é\"}'::jsonb AS j\$\$, '$OUT/latin1.parquet')")
check "latin1: one row written" "$res" 1
got=$(rnode duckdb "SELECT t || '|' || v || '|' || j::VARCHAR FROM '$OUT/latin1.parquet'")
check "latin1: text arrives as UTF-8" "$got" '["café ñ|Ä|{\"k\": \"é\"}"]'
pg -d postgres -c "DROP DATABASE pq_latin1" >/dev/null

# A role granted pg_write_server_files may write; the file belongs to postgres.
pg <<'SQL' >/dev/null
DO $$BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'pq_writer') THEN
        DROP OWNED BY pq_writer;
        DROP ROLE pq_writer;
    END IF;
END$$;
CREATE ROLE pq_writer LOGIN;
GRANT pg_write_server_files TO pq_writer;
GRANT USAGE ON SCHEMA iotstream TO pq_writer;
GRANT SELECT ON pq_types TO pq_writer;
SQL
res=$(psql -X -q -A -t -U pq_writer -c "SELECT rows FROM iotstream.write_parquet('SELECT id FROM pq_types', '$OUT/granted.parquet')")
check "a pg_write_server_files member writes a file" "$res" 5004
check "the file is owned by the server's user" "$(stat -c %U "$OUT/granted.parquet")" postgres
pg -c "DROP OWNED BY pq_writer; DROP ROLE pq_writer" >/dev/null

echo "# $pass passed, $fail failed"
[ "$fail" = 0 ]

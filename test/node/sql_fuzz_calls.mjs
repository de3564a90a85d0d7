// Calls for test/integration/91_sql_fuzz.sh: every function of schema
// iotstream with arguments drawn from per-type pools.
//
//   node sql_fuzz_calls.mjs FUNCTIONS.json SCRATCH_DIR OUT.jsonl [seed]
//
// FUNCTIONS.json is an array of {sig, name, kind ('f', 'a' or 'w'), lang,
// combine, types: [format_type...], names: [argname or null...]} from
// pg_proc.  Each function gets a baseline call (arguments that work, so that
// a variation of one argument reaches deep), the all-NULL call, every value
// of each argument's pool with the others at baseline, pairs of arguments
// off baseline, and random combinations.  Functions in C and aggregates keep
// every single-argument variation and SQL_FUZZ_C_COMBOS (24) of the others;
// the rest keep SQL_FUZZ_CAP_OTHER (24) calls, single variations first, in a
// deterministic random order.  Aggregates are called plainly and as a moving
// window over fz16.agg_data (d.id, d.ts, d.v: ascending, finite), and
// plainly over fz16.agg_odd (NaN, infinities, NULLs, out of order); window
// functions over a window of each.
//
// Aggregates with a combine function also get two calls over fz16.par for
// a serial run and a forced parallel one (partial aggregation: the combine,
// serialize and deserialize functions, which take `internal`, run there);
// expect "same" marks those whose results must be identical.
//
// Placeholders the driver fills per role: {own} is the caller's stream
// table (fz.ok for the superuser, fzu.ok for the fuzzer), {own_schema} its
// schema.  Writes {id, fn, form, args, sql, expect} a line; expect is set
// for the probes at the end (see PROBES) and the parallel calls.
import { readFileSync, writeFileSync } from "node:fs";

const [fnFile, S, out, seedArg] = process.argv.slice(2);
if (!out) {
  console.error("usage: node sql_fuzz_calls.mjs FUNCTIONS.json SCRATCH_DIR OUT.jsonl [seed]");
  process.exit(2);
}
const CAP_C_COMBOS = Number(process.env.SQL_FUZZ_C_COMBOS || 24);
const CAP_OTHER = Number(process.env.SQL_FUZZ_CAP_OTHER || 24);
let state = Number(seedArg || 16) >>> 0;
function rnd() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const below = (n) => Math.floor(rnd() * n);
const pick = (a) => a[below(a.length)];
const lit = (s) => "'" + String(s).replace(/'/g, "''") + "'";

// A pool value: [label, sql expression]; a bare string is its own label.
const V = (sql, label) => [label || (sql.length > 60 ? sql.slice(0, 57) + "..." : sql), sql];
// Values that make ranges huge (a call with one of them may run into the
// timeout) are tried one argument at a time only, not in combinations.
const SOLO = new Set(["'1 microsecond'", "'00:00:00.5'", "'1970-01-01 00:00:00+00'", "'4713-11-24 00:00:00+00 BC'",
  "'294276-12-31 23:59:59.999999+00'", "'4713-11-24 00:00:00 BC'", "'294276-12-31 23:59:59.999999'"]);

// ---------------------------------------------------------------- type pools

const TS_POOL = ["NULL", "'infinity'", "'-infinity'", "now()", "now() - interval '1 year'", "'1970-01-01 00:00:00+00'",
  "'4713-11-24 00:00:00+00 BC'", "'294276-12-31 23:59:59.999999+00'", "now() - interval '1 day'"].map((s) => V(s));
const TYPE_POOLS = {
  integer: ["NULL", "0", "1", "-1", "2", "100000", "2147483647", "-2147483648"].map((s) => V(s)),
  bigint: ["NULL", "0", "1", "-1", "9223372036854775807", "-9223372036854775808"].map((s) => V(s)),
  "double precision": ["NULL", "0", "'-0'", "1", "-1", "'NaN'", "'Infinity'", "'-Infinity'", "1e308", "-1e308", "5e-324",
    "0.5", "99.999", "100", "1e9"].map((s) => V(s)),
  boolean: ["NULL", "true", "false"].map((s) => V(s)),
  text: [V("NULL"), V("''"), V("' '"), V("'x'"), V("repeat('x', 100000)", "text(100000)"), V("'../../etc/passwd'"),
    V("'%s%n%x%p'"), V("'%s%s%s%s%s%s%s%s'"), V("'é😀'"), V("E'a\\nb\\tc'"), V(`'"'`), V("''''"), V("'{}'"), V("'null'"), V("'-1'"),
    V("'NaN'"), V("'1e999999'")],
  name: ["NULL", "''", "'ts'", "'v'", "'nope'", "repeat('n', 200)", `'"Q"'`, "'../../etc/passwd'"].map((s) => V(s)),
  interval: ["NULL", "'0'", "'-1 day'", "'1 microsecond'", "'178000000 years'", "'-178000000 years'", "'1 month 1 day'",
    "'1 month'", "'1 minute'", "'1 hour'", "'1 day'", "'00:00:00.5'", "'2147483647 days'"].map((s) => V(s)),
  "timestamp with time zone": TS_POOL,
  "timestamp without time zone": ["NULL", "'infinity'", "'-infinity'", "localtimestamp", "localtimestamp - interval '1 year'",
    "'4713-11-24 00:00:00 BC'", "'294276-12-31 23:59:59.999999'"].map((s) => V(s)),
  jsonb: [V("NULL"), V("'{}'"), V("'[]'"), V("'null'"), V("'0'"), V(`'"x"'`), V("'[1,\"a\",null]'"),
    V("repeat('[', 5000) || repeat(']', 5000)", "[[[...5000]]]"),
    V(`repeat('{"a":', 5000) || '1' || repeat('}', 5000)`, '{"a":{"a":...5000}}'),
    V("(SELECT jsonb_object_agg('k' || g, g) FROM generate_series(1, 100000) g)", "object(100000 keys)"),
    V(`'{"history":0}'`), V(`'{"history":-1}'`), V(`'{"history":1e9}'`), V(`'{"threshold":"x"}'`),
    V(`'{"threshold":1e400}'`), V(`'{"":null}'`), V(`'{"a":{"b":[{}]}}'`)],
  "text[]": [V("NULL"), V("'{}'"), V("'{NULL}'"), V("(SELECT array_agg('x' || g) FROM generate_series(1, 100000) g)", "array(100000)"),
    V(`'{""}'`), V("'{v}'"), V("'{ts}'"), V("'{v,v}'"), V("'{nope}'"), V("'{NULL,v}'"), V("ARRAY['../../etc/passwd']"),
    V("'{{a,b},{c,d}}'", "2-D array"), V("'[5:6]={v,v}'", "array from 5")],
  bytea: [V("NULL"), V("'\\x'"), V("'\\x00'"), V("'\\xff'"), V("'\\xc080'"),
    V(`convert_to('{"ts":"2026-01-01T00:00:00Z","v":1}', 'UTF8')`, "json bytes"),
    V("decode(repeat('ab', 1048576), 'hex')", "bytea(1MB)")],
  regclass: [V("NULL"), V("'fz.ok'"), V("'fzu.ok'"), V("'fz.plain'"), V("'fz.view'"), V("'fz.listp'"), V("'fz.rangev'"),
    V("'fz.rangedef'"), V("'fz.range2'"), V("'fz.seq'"), V("0"), V("'fz.st_date'"), V("'fz.st_ts'"),
    V("(SELECT partition FROM iotstream.partitions('fz.ok') ORDER BY range_start LIMIT 1)", "a partition of fz.ok"),
    V("'fz.mv'"), V("'fz.idx'"), V("'fz.comp'"), V("'pg_catalog.pg_class'"), V("'iotstream.stream_table_settings'"),
    V("4294967295")],
  regtype: ["NULL", "'timestamptz'", "'date'", "'timestamp'", "'int4'", "0"].map((s) => V(s)),
  "iotstream.stats": [V("NULL"), V("'(n:0,sum:0,sxx:0,min:Infinity,max:-Infinity)'"), V("'(n:3,sum:6,sxx:2,min:1,max:3)'"),
    V("'(n:1,sum:NaN,sxx:0,min:NaN,max:NaN)'"), V("'(n:-1,sum:1,sxx:-1,min:5,max:1)'"),
    V("'(n:9223372036854775807,sum:1e308,sxx:1e308,min:-1e308,max:1e308)'"),
    V("'(n:2,sum:Infinity,sxx:Infinity,min:-Infinity,max:Infinity)'"),
    V("(SELECT iotstream.stats_agg(x) FROM (VALUES (1e308::float8), (-1e308), (1e308)) v(x))", "stats_agg(1e308,-1e308,1e308)")],
  cstring: [V("NULL"), V("''"), V("'('"), V("'(n:3,sum:6,sxx:2,min:1,max:3)'"), V("'(n:3,sum:6,sxx:2,min:1,max:3'"),
    V("'(n:-1,sum:0,sxx:0,min:0,max:0)'"), V("'(n:99999999999999999999,sum:0,sxx:0,min:0,max:0)'"),
    V("'(n:1,sum:1e999,sxx:0,min:0,max:0)'"), V("'(n:1,sum:1,sxx:0,min:0,max:0,extra:1)'"), V("'(sum:1,n:1,sxx:0,min:0,max:0)'"),
    V("'(n:1,n:1,sum:1,sxx:0,min:0,max:0)'"), V("'(n: 1 ,sum: 1 ,sxx: 0 ,min: 0 ,max: 0 )'"), V("'garbage'"),
    V("repeat('(n:1,', 30000)", "(n:1,(n:1,...")],
  "iotstream.exports": [V("NULL"), V("(SELECT e FROM iotstream.exports e WHERE e.name = 'fz_exp')", "export fz_exp"),
    V("jsonb_populate_record(NULL::iotstream.exports, '{}')", "row of NULLs"),
    V(`jsonb_populate_record(NULL::iotstream.exports, '{"name":"fz_x","source_table":"fz.ok","destination":"/nonexistent","period":"-1 day","lateness":"-1 day","target_file_size":0,"compression":"bogus","options":[]}')`, "bad export row")],
  "iotstream.export_log": [V("NULL"), V("jsonb_populate_record(NULL::iotstream.export_log, '{}')", "row of NULLs"),
    V(`jsonb_populate_record(NULL::iotstream.export_log, '{"id":-1,"export":"fz_exp","version":2147483647,"files":["../../etc/passwd"],"status":"exported"}')`, "odd ledger row")],
  "iotstream.anomalies": [V("NULL"), V("jsonb_populate_record(NULL::iotstream.anomalies, '{}')", "row of NULLs"),
    V(`jsonb_populate_record(NULL::iotstream.anomalies, '{"id":1,"rule":"r","key":{},"detector":"x","params":{},"severity":"info","value":"NaN","window_start":"infinity"}')`, "anomaly row")],
};

// ---------------------------------------------------------------- named pools
// By "argname type" (or argname alone): extra values and the baseline.

const SQLS = ["'SELECT 1'", "'SELECT * FROM {own}'", "'SELECT 1/0'", "'SELECT * FROM {own} WHERE false'", "'SELECT NULL'",
  "'VALUES (1), (2)'", "'SELECT 1; SELECT 2'", "'SELECT generate_series(1, 300000) AS n'",
  "'SELECT repeat(''x'', 10000000) AS big'", "'SELECT now() AS ts, ''NaN''::float8 AS value'", "'DELETE FROM {own}'",
  "'SELECT * FROM {own}) x; --'", "'SELECT ''infinity''::timestamptz, ''-infinity''::date, 1e400::numeric'",
  "'SELECT ''{}''::int[], ''(1,2)''::point, ''a''::\"char\", B''101''::bit varying'"].map((s) => V(s));
// what write_parquet encodes: every type path, odd numerics (PG 15 allows a
// negative scale and a scale above the precision), infinities, no columns
const PARQUET_SQLS = [
  "SELECT FROM generate_series(1, 3)", "SELECT 1 AS a, 2 AS a", `SELECT 1 AS "a.b", 2 AS "A.b"`, "SELECT 1 AS \"é😀 \"\"\"",
  "SELECT 12345::numeric(5,-2) AS n", "SELECT 0.00123::numeric(3,5) AS n", "SELECT 'NaN'::numeric(10,2) AS n",
  "SELECT 99999999999999999999999999999999999999::numeric(38,0) AS n", "SELECT -0.5::numeric(1,1) AS n",
  "SELECT x::numeric(39,2) AS n FROM (VALUES (1), (NULL)) v(x)", "SELECT 1e-130::numeric AS n, 1e130::numeric AS m",
  "SELECT x::numeric(18,18) AS n FROM (VALUES (0.999999999999999999), (-0.5)) v(x)",
  "SELECT 'infinity'::timestamptz AS a, '-infinity'::timestamp AS b, 'infinity'::date AS c, '-infinity'::date AS d",
  "SELECT '4713-11-24 BC'::date AS d, '294276-12-31 23:59:59.999999'::timestamp AS t, '5874897-12-31'::date AS e",
  "SELECT 'NaN'::float4 AS f, '-Infinity'::float8 AS g, '-0'::float8 AS h", "SELECT NULL AS n, NULL::int AS i",
  "SELECT '{1,NULL}'::int[] AS a, ROW(1, 'x') AS r, '(1,2)'::point AS p, '1 day'::interval AS i, 'a'::\"char\" AS c",
  "SELECT '12:00'::time AS t, '12:00+05'::timetz AS z, 1::money AS m, B'101'::varbit AS b, 'x'::name AS n",
  "SELECT gen_random_uuid() AS u, '\\x00ff'::bytea AS b, '{}'::jsonb AS j, '[]'::json AS k, 'x'::varchar(1) AS v, 'y'::char(3) AS c",
  "SELECT repeat('x', 50000000) AS big", "SELECT decode(repeat('00', 20000000), 'hex') AS big",
  "SELECT g AS i, g::text AS t FROM generate_series(1, 200000) g",
  "SELECT g::int2 AS a, g::int4 AS b, g::int8 AS c, g::float4 AS d, g::numeric(20,4) AS e, g % 2 = 0 AS f FROM generate_series(-32768, 32767, 97) g",
].map((q) => V(lit(q)));
const PATHS = [`'${S}/out.parquet'`, `'${S}'`, `'${S}/no/such/dir/x.parquet'`, "'relative.parquet'", "'/'", "'/dev/null'",
  "'/proc/self/mem'", `'${S}/' || repeat('p', 5000)`, `'${S}/x\nnl.parquet'`].map((s) => V(s));
// Destinations that are only parsed may name Azure; those that are written
// to or deleted from stay on this machine (127.0.0.1:1 refuses at once).
const DESTS_LOCAL = [`'file://${S}/exp'`, `'${S}/exp'`, "'file://relative'", "'file://'",
  "'http://127.0.0.1:1/devstoreaccount1/c/p'", "'http://127.0.0.1:1/devstoreaccount1'", "'http://127.0.0.1:1'",
  "'http://[::1'", "'https://'", "'ftp://x/y'", "'s3://b/k'", "'http://127.0.0.1:1/' || repeat('c', 5000)",
  "'http://127.0.0.1:1/a/c/' || repeat('../', 100)"].map((s) => V(s));
const DESTS = [...DESTS_LOCAL, ...["'abfss://c@acct.dfs.core.windows.net/p'", "'abfss://@.dfs.core.windows.net'",
  "'https://acct.blob.core.windows.net/c/p'", "'https://acct.blob.core.windows.net'",
  "'https://a.blob.core.windows.net/' || repeat('c', 5000)"].map((s) => V(s))];
const OPTS = [`'{"batch_ms":-1}'`, `'{"batch_size":1e30}'`, `'{"dedup_key":[]}'`, `'{"dedup_key":"a..b"}'`,
  `'{"dedup_key":["v","v"]}'`, `'{"dedup_horizon":"-1 day"}'`, `'{"dedup_horizon":"x"}'`, `'{"start":"middle"}'`,
  `'{"max_message_bytes":0}'`, `'{"compression":"bogus"}'`, `'{"compression":"gzip","compression_level":99}'`,
  `'{"compression_level":"x"}'`, `'{"row_group_size":0}'`, `'{"row_group_size":"-1MB"}'`, `'{"row_group_size":"9999999TB"}'`,
  `'{"page_size":1}'`, `'{"dictionary_size":-1}'`, `'{"compression_threads":1000}'`, `'{"compression_threads":0}'`,
  `'{"metadata":"x"}'`, `'{"metadata":{"a":1}}'`, `'{"dictionary":"yes"}'`, `'{"block_size":0}'`,
  `'{"block_size":"1TB"}'`, `'{"parallel_uploads":100000}'`, `'{"max_retries":-1}'`, `'{"request_timeout_ms":1e20}'`,
  `'{"target_file_size":"1kB"}'`, `'{"sasl.password":"s","group.id":"g"}'`, `'{"Bad Key":1}'`, `'{"workers":-1}'`].map((s) => V(s));
const MAPPINGS = [`'{"v":"a..b"}'`, `'{"v":"$nope"}'`, `'{"v":"$payload"}'`, `'{"v":"$headers"}'`, `'{"v":null}'`,
  `'{"ts":null}'`, `'{"nope":"x"}'`, `'{"v":3}'`, `'{"v":"\\\\"}'`, `'{"ts":"$timestamp","v":"$offset"}'`,
  `'{"v":"${"k".repeat(300)}"}'`, `'{"v":"a.b.c.d.e.f.g.h"}'`].map((s) => V(s));
const PARAMS = [`'{"threshold":100,"min_count":5}'`, `'{"threshold":"x"}'`, `'{"history":2147483647}'`,
  `'{"history_size":2147483647}'`, `'{"history_size":1.5}'`, `'{"confidence":1e-300}'`, `'{"confidence":"NaN"}'`,
  `'{"mode":"x"}'`, `'{"mode":1}'`, `'{"mu":1}'`, `'{"mu":1,"sigma":-1}'`, `'{"lambda":0}'`, `'{"L":"Infinity"}'`,
  `'{"warmup":1e9}'`, `'{"target":0,"k":0,"h":0}'`, `'{"min_count":0}'`, `'{"min_history":100000,"history":2}'`].map((s) => V(s));
const DEFS = [`'{"source_table":"fz.ok","value_column":"v","detector":"zscore"}'`,
  `'{"source_table":"fz.ok","value_column":"v","detector":"spike_dip","params":{"history_size":100000}}'`,
  `'{"source_table":"nope","value_column":"v","detector":"zscore"}'`,
  `'{"source_table":"fz.ok","value_column":"v","detector":"zscore","window":"-1 day"}'`,
  `'{"source_table":"fz.ok","value_column":"v","detector":"zscore","window":"x"}'`,
  `'{"source_table":"fz.ok","value_column":"v","detector":"mad","key_columns":"v"}'`,
  `'{"source_table":"fz.ok","value_column":"v","detector":"cusum","params":[]}'`,
  `'{"source_table":"fz.ok","value_column":"ts","detector":"zscore"}'`,
  `'{"source_table":1,"value_column":null,"detector":{}}'`].map((s) => V(s));
const CONN = ["'Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s;EntityPath=h'",
  "'Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s'", "'Endpoint=sb://;EntityPath='",
  "repeat('Endpoint=sb://a/;', 10000)"].map((s) => V(s));
const CRON = ["'*/5 * * * *'", "'bogus'", "'* * * * * * *'", "'61 25 32 13 8'", "'@reboot'", "'1 second'"].map((s) => V(s));
const NAMES = ["'fz_rule'", "'fz.roll'", "'fz_src'", "'fz_exp'", "'fz_cred'", "'bad name!'", "repeat('n', 64)",
  "'{\"source_table\":\"fz.ok\"}'"].map((s) => V(s));
const COLS = ["'ts timestamptz NOT NULL, v float8'", "'ts int'", "'v float8'", "'ts timestamptz, ts timestamptz'",
  "'ts timestamptz PRIMARY KEY, v float8'", "'ts timestamptz NOT NULL) PARTITION BY LIST (ts); --'",
  "'ts date NOT NULL'", "'ts timestamp NOT NULL'"].map((s) => V(s));

const named = {
  "target regclass": { base: "'{own}'" }, "stream_table regclass": { base: "'{own}'" },
  "source_table regclass": { base: "'{own}'" }, "tbl regclass": { base: "'{own}'" }, "relid regclass": { base: "'{own}'" },
  "for_table regclass": { base: "'{own}'" },
  "mapping jsonb": { base: "NULL", extra: MAPPINGS },
  "payload text": { base: `'{"ts":"2026-01-01T00:00:00Z","v":1.5}'`, extra: [V("'{\"ts\":\"x\"}'"), V("'[' || repeat('[', 100000)", "[[[...")] },
  "payload bytea": { base: `convert_to('{"ts":"2026-01-01T00:00:00Z","v":1.5}', 'UTF8')` },
  "key text": { base: "NULL" }, "topic text": { base: "'t'" }, "partition integer": { base: "0" }, "offset bigint": { base: "0" },
  "timestamp timestamp with time zone": { base: "NULL" },
  "headers jsonb": { base: "NULL", extra: [V(`'{"a":"b"}'`), V(`'{"a":1}'`), V(`'{"":""}'`)] },
  "ts timestamp with time zone": { base: "now()" }, "ts timestamp without time zone": { base: "localtimestamp" },
  "from timestamp with time zone": { base: "now()" }, "to timestamp with time zone": { base: "now() + interval '2 days'" },
  "from_time timestamp with time zone": { base: "now() - interval '1 day'" }, "to_time timestamp with time zone": { base: "now() + interval '1 day'" },
  "from_ts timestamp with time zone": { base: "now() - interval '1 day'" }, "to_ts timestamp with time zone": { base: "now()" },
  "time_column name": { base: "'ts'" }, "columns text": { base: "'ts timestamptz NOT NULL, v float8'", extra: COLS },
  "table_name text": { base: "'{own_schema}.new_st'", extra: [V("'a.b.c'"), V("'fz.ok'"), V("'pg_catalog.x'"), V(`'"we ird"'`), V("'.x'")] },
  "partition_interval interval": { base: "'1 day'" }, "premake integer": { base: "2", extra: [V("1001")] },
  "retention interval": { base: "'30 days'" }, "retention_mode text": { base: "'drop'", extra: [V("'detach'"), V("'DROP'")] },
  "max_past interval": { base: "NULL" }, "max_future interval": { base: "NULL" }, "keep_forever boolean": { base: "false" },
  "drop_table boolean": { base: "false" }, "keep_table boolean": { base: "false" }, "drop_offsets boolean": { base: "true" },
  "brokers text": { base: "'127.0.0.1:1'", extra: [V("','"), V("repeat('h:1,', 10000)")] },
  "topics text[]": { base: "'{t}'", extra: [V("'{\"bad topic\"}'"), V("ARRAY[repeat('t', 250)]")] },
  "options jsonb": { base: "'{}'", extra: OPTS },
  "writer_options jsonb": { base: "'{}'", extra: OPTS }, "upload_options jsonb": { base: "'{}'", extra: OPTS },
  "value_column text": { base: "'v'", extra: [V("'ts'")] }, "key_columns text[]": { base: "'{}'" },
  "value_columns text[]": { base: "'{v}'" }, "cols text[]": { base: "'{v}'" },
  "detector text": { base: "'zscore'", extra: ["threshold_count", "mad", "ewma", "cusum", "spike_dip", "change_point", "ZSCORE"].map((d) => V(lit(d))) },
  "params jsonb": { base: "'{}'", extra: PARAMS }, "window interval": { base: "'1 minute'" },
  "window_size interval": { base: "'1 minute'" }, "filter text": { base: "NULL", extra: [V("'v > 0'"), V("'v'"), V("'true) OR (true'"), V("'nope > 0'")] },
  "lateness interval": { base: "'30 seconds'" }, "severity text": { base: "'warning'", extra: [V("'critical'")] },
  "alert_topic text": { base: "NULL", extra: [V("'alerts'"), V("'bad topic'")] }, "bucket interval": { base: "'1 minute'" },
  "definition jsonb": { base: DEFS[0][1], extra: DEFS },
  "query text": { base: "'SELECT * FROM {own}'", extra: [...SQLS, ...PARQUET_SQLS] }, "eval_sql text": { base: "'SELECT 1'", extra: SQLS },
  "path text": { base: `'${S}/out.parquet'`, extra: PATHS },
  "destination text": { base: `'file://${S}/exp'`, extra: DESTS_LOCAL },
  "folder text": { base: "'f'", extra: [V("'../..'"), V("'/abs'")] }, "file_id text": { base: "'id1'", extra: [V("'../x'")] },
  "credential text": { base: "NULL", extra: [V("'fz_cred'"), V("'nope'")] },
  // Delta checkpoint rows: odd shapes and types for the nested Parquet writer
  "actions jsonb[]": { base: `ARRAY['{"txn": {"appId": "a", "version": 1}}'::jsonb]`,
    extra: [V("ARRAY['1'::jsonb]"), V(`ARRAY['{"add": {"partitionValues": [1, 2]}}'::jsonb]`),
      V(`ARRAY['{"protocol": {"minReaderVersion": 1e30}}'::jsonb]`), V(`ARRAY['{"add": {"dataChange": "yes", "size": "x"}}'::jsonb]`),
      V(`ARRAY['{"metaData": {"partitionColumns": {"a": 1}, "format": []}}'::jsonb, NULL]`)] },
  "period interval": { base: "'1 hour'", extra: [V("'7 minutes'"), V("'2 days'")] },
  "target_file_size text": { base: "'256 MB'", extra: [V("'1 kB'"), V("'1 PB'"), V("'-1 MB'"), V("'lots'")] },
  "compression text": { base: "'zstd'", extra: ["snappy", "gzip", "none", "ZSTD", "lz4"].map((c) => V(lit(c))) },
  "schedule text": { base: "NULL", extra: CRON }, "cron text": { base: "'*/10 * * * *'", extra: CRON },
  "unschedule boolean": { base: "false" },
  "url text": { base: "'http://127.0.0.1:1/devstoreaccount1/c/x'", extra: DESTS_LOCAL },
  "files text[]": { base: `ARRAY['${S}/nonexistent.parquet']`, extra: [V(`ARRAY['file://${S}/nonexistent.parquet']`), V("ARRAY['ftp://x/y']")] },
  "connection_string text": { base: CONN[0][1], extra: CONN }, "consumer_group text": { base: "'$Default'" },
  "kind text": { base: "'sas'", extra: ["shared_key", "service_principal", "managed_identity", "nope"].map((c) => V(lit(c))) },
  "account text": { base: "NULL", extra: [V("'devstoreaccount1'")] }, "token text": { base: "'sv=2020-08-04&sig=abc'" },
  "tenant text": { base: "NULL" }, "client_id text": { base: "NULL" }, "client_secret text": { base: "NULL" },
  "authority_host text": { base: "NULL", extra: [V("'http://127.0.0.1:1/'")] }, "endpoint text": { base: "NULL" },
  "federated_token_file text": { base: "NULL", extra: [V("'/etc/passwd'")] },
  "nsp name": { base: "'{own_schema}'", extra: [V("'fz'"), V("'pg_catalog'")] },
  "rel name": { base: "'plain'", extra: [V("'ok'"), V("'pg_class'")] },
  "id integer": { base: "(SELECT rollup_id FROM iotstream.rollups WHERE name = 'fz.roll')" },
  "version integer": { base: "1" }, "iv interval": { base: "'1 day'" }, "time_type regtype": { base: "'timestamptz'" },
  "v interval": { base: "'1 minute'" }, "allow_zero boolean": { base: "false" }, "numeric_only boolean": { base: "true" },
  "what text": { base: "'x'" }, "hint text": { base: "'h'" }, "source_name text": { base: "'fz_src'" },
  "dflt double precision": { base: "1" }, "lo double precision": { base: "0" }, "hi double precision": { base: "10" },
  "n integer": { base: "1" },
  "e iotstream.exports": { base: "(SELECT e FROM iotstream.exports e WHERE e.name = 'fz_exp')" },
  "old iotstream.export_log": { base: "NULL" },
  // aggregates and windows read fz16.agg_data d
  "value double precision": { base: "d.v", extra: [V("d.v * 1e300", "d.v * 1e300")] },
  "ts timestamp with time zone@agg": { base: "d.ts" },
  "confidence double precision": { base: "95", extra: [V("101"), V("1e-300")] },
  "history_size integer": { base: "5" }, "threshold double precision": { base: "3" }, "alpha double precision": { base: "0.3" },
  "lambda double precision": { base: "0.2" }, "l double precision": { base: "3" }, "mu double precision": { base: "NULL" },
  "sigma double precision": { base: "NULL" }, "warmup integer": { base: "5" }, "target double precision": { base: "0" },
  "k double precision": { base: "2" }, "h double precision": { base: "5" }, "mode text": { base: "'spikes'", extra: [V("'dips'"), V("'spikesanddips'"), V("'SPIKES'")] },
  "width interval": { base: "'1 hour'" }, "gap interval": { base: "'1 minute'" }, "size interval": { base: "'1 hour'" },
  "slide interval": { base: "'15 minutes'" },
  "origin timestamp with time zone": { base: "'2000-01-01 00:00:00+00'" },
  "origin timestamp without time zone": { base: "'2000-01-01 00:00:00'" },
  "x double precision": { base: "1" },
};

// name depends on the function
const NAME_BASE = {
  create_rule: "'fz_new_rule'", enable_rule: "'fz_rule'", disable_rule: "'fz_rule'", drop_rule: "'fz_rule'",
  alter_rule: "'fz_rule'", _rule: "'fz_rule'", backtest_rule: "'fz_rule'",
  create_rollup: "'{own_schema}.new_roll'", drop_rollup: "'fz.roll'", refresh_rollup: "'fz.roll'", _rollup: "'fz.roll'",
  create_source: "'fz_new_src'", start_source: "'fz_src'", stop_source: "'fz_src'", alter_source: "'fz_src'",
  drop_source: "'fz_src'", source_config: "'fz_src'", create_eventhubs_source: "'fz_new_eh'",
  create_export: "'fz_new_exp'", alter_export: "'fz_exp'", drop_export: "'fz_exp'", run_export: "'fz_exp'",
  _schedule_export: "'fz_exp'", create_storage_credential: "'fz_new_cred'", drop_storage_credential: "'fz_cred'",
};
// baselines (and extra values) that depend on the function
const RULE_SQL = (d, col) => `(SELECT ${col} FROM fz16.rule_sql WHERE detector = '${d}')`;
const DETECTORS = ["threshold_count", "zscore", "mad", "ewma", "cusum", "spike_dip", "change_point"];
// uploads to 127.0.0.1:1 fail at once unless an option asks for retries
const NO_RETRY = `'{"max_retries":0,"request_timeout_ms":2000}'`;
// (NULL and options that are no object mean the defaults, which retry: they go)
const noRetry = (sql) =>
  /^('\{|\(SELECT jsonb_object_agg|repeat\('\{)/.test(sql) ? `${NO_RETRY}::jsonb || (${sql})::jsonb` : null;
const FN_ARGS = {
  _export_upload_file: { path: { base: `'${S}/up.bin'` }, options: { base: NO_RETRY, extra: OPTS, wrap: noRetry } },
  _export_write_files: { upload_options: { base: NO_RETRY, extra: OPTS, wrap: noRetry } },
  // these only parse and check a destination: Azure names are fine
  parse_destination: { destination: { base: `'file://${S}/exp'`, extra: DESTS } },
  create_export: { destination: { base: `'file://${S}/exp'`, extra: DESTS } },
  alter_export: { destination: { base: "NULL", extra: DESTS } },
  _evaluate: {
    params: { base: RULE_SQL("zscore", "params"), extra: DETECTORS.map((d) => V(RULE_SQL(d, "params"), `params of ${d}`)) },
    eval_sql: { base: RULE_SQL("zscore", "eval_sql"), extra: DETECTORS.map((d) => V(RULE_SQL(d, "eval_sql"), `eval_sql of ${d}`)) },
  },
};
const TYPE_BASE = {
  integer: "1", bigint: "1", "double precision": "1", boolean: "false", text: "'x'", name: "'x'", interval: "'1 hour'",
  "timestamp with time zone": "now()", "timestamp without time zone": "localtimestamp", jsonb: "'{}'", "text[]": "'{}'",
  bytea: "'\\x7b7d'", regclass: "'{own}'", regtype: "'timestamptz'", "iotstream.stats": "'(n:3,sum:6,sxx:2,min:1,max:3)'",
  cstring: "'(n:3,sum:6,sxx:2,min:1,max:3)'", "iotstream.exports": "(SELECT e FROM iotstream.exports e WHERE e.name = 'fz_exp')",
  "iotstream.export_log": "NULL", "iotstream.anomalies": "jsonb_populate_record(NULL::iotstream.anomalies, '{}')",
  "bigint[]": "'{}'", "jsonb[]": `ARRAY['{"txn": {"appId": "a", "version": 1}}'::jsonb]`,
};

function argSpec(fn, i) {
  const type = fn.types[i];
  const an = fn.names[i];
  const agg = fn.kind !== "f";
  const short = fn.name.replace(/^iotstream\./, "");
  let spec = (FN_ARGS[short] && FN_ARGS[short][an]) || (agg && named[`${an} ${type}@agg`]) || named[`${an} ${type}`] || {};
  let base = spec.base;
  if (an === "name" && type === "text") base = NAME_BASE[short] || "'x'";
  if (base === undefined) base = TYPE_BASE[type];
  if (base === undefined) throw new Error(`no baseline for ${fn.sig} argument ${an} ${type}`);
  const pool = [...(TYPE_POOLS[type] || [V("NULL")])];
  if (an === "name" && type === "text") pool.push(...NAMES);
  for (const v of spec.extra || []) pool.push(v);
  if (agg && type === "double precision" && an === "value") pool.push(V("d.v"));
  if (agg && type === "timestamp with time zone" && an === "ts") pool.push(V("d.ts"));
  if (spec.wrap)
    return { type, base: V(base), pool: pool.map(([label, sql]) => [label, spec.wrap(sql)]).filter(([, sql]) => sql !== null) };
  return { type, base: V(base), pool };
}

// ---------------------------------------------------------------- calls

const fns = JSON.parse(readFileSync(fnFile, "utf8"));
const calls = [];
const perFn = [];
for (const fn of fns) {
  const specs = fn.types.map((_, i) => argSpec(fn, i));
  const forms = fn.kind === "a" ? ["agg", "moving", "agg_odd"] : fn.kind === "w" ? ["window", "window_odd"] : ["call"];
  const sqlOf = (form, args) => {
    const a = args.map((v, i) => `(${v[1]})::${specs[i].type}`).join(", ");
    const f = `${fn.name}(${a})`;
    switch (form) {
      case "agg":
        return `SELECT ${f} FROM fz16.agg_data d`;
      case "moving":
        return `SELECT ${f} OVER (ORDER BY d.id ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) FROM fz16.agg_data d`;
      case "agg_odd":
        return `SELECT ${f} FROM fz16.agg_odd d`;
      case "window":
        return `SELECT ${f} OVER (ORDER BY d.id) FROM fz16.agg_data d`;
      case "window_odd":
        return `SELECT ${f} OVER (ORDER BY d.id) FROM fz16.agg_odd d`;
      default:
        return `SELECT ${f}`;
    }
  };
  const variants = new Map();
  const addV = (form, args, prio) => {
    const sql = sqlOf(form, args);
    // the second and third forms of an aggregate (moving window, odd data)
    // get their baseline, all-NULL call and a sample of the rest
    if (form !== forms[0] && prio > 0) prio = 4;
    if (!variants.has(sql))
      variants.set(sql, { prio, fn: fn.sig, form, args: args.map((v) => v[0]).join(", "), sql });
  };
  const base = specs.map((s) => s.base);
  for (const form of forms) {
    addV(form, base, 0);
    addV(form, specs.map(() => V("NULL")), 0);
    specs.forEach((s, i) => {
      for (const v of s.pool) addV(form, base.map((b, j) => (j === i ? v : b)), 1);
    });
    // pairs: two arguments off baseline at once, then random combinations
    const combo = specs.map((s) => s.pool.filter(([, sql]) => !SOLO.has(sql)));
    for (let i = 0; i < specs.length; i++)
      for (let j = i + 1; j < specs.length; j++)
        for (let k = 0; k < 2; k++)
          addV(form, base.map((b, x) => (x === i ? pick(combo[i]) : x === j ? pick(combo[j]) : b)), 2);
    for (let k = 0; k < 3 * specs.length; k++)
      addV(form, specs.map((s, i) => (below(2) ? pick(combo[i]) : base[i])), 3);
  }
  let list = [...variants.values()];
  // keep baselines and the all-NULL calls, then single-argument variations
  // (all of them for C functions), pairs and random combinations, each kind
  // in a deterministic random order
  const keyed = list.map((c) => ({ c, r: c.prio + rnd() }));
  keyed.sort((a, b) => a.r - b.r);
  const isC = fn.lang === "c" || fn.kind !== "f";
  const n = isC ? keyed.filter((x) => x.c.prio <= 1).length + CAP_C_COMBOS : CAP_OTHER;
  list = keyed.slice(0, n).map((x) => x.c);
  // and for the other forms: 12 each
  for (const form of forms.slice(1)) list.push(...keyed.filter((x) => x.c.form === form && x.c.prio === 4).slice(0, 12).map((x) => x.c));
  perFn.push([fn.sig, variants.size, list.length]);
  for (const c of list) calls.push(c);
  if (fn.combine) {
    const a = base.map((v, i) => `(${v[1]})::${specs[i].type}`).join(", ");
    const exact = /\.(spike_dip_events|change_point_events|outliers|threshold_count)$/.test(fn.name) ? "same" : "similar";
    const args = base.map((v) => v[0]).join(", ");
    calls.push({ fn: fn.sig, form: "parallel", args, expect: exact,
      sql: `SELECT 0 AS k, ${fn.name}(${a}) AS x FROM fz16.par d` });
    calls.push({ fn: fn.sig, form: "parallel_grouped", args, expect: exact,
      sql: `SELECT d.k AS k, ${fn.name}(${a}) AS x FROM fz16.par d GROUP BY d.k` });
  }
}

// Probes with an expected outcome, for edges the pools do not combine:
// ok (returns; a single boolean result must be true), not-false (returns
// true or raises), error+hint, error:SQLSTATE, error~REGEX (on the message).
const TSTZ3 = "iotstream.ensure_partitions(regclass,timestamp with time zone,timestamp with time zone)";
const TSTZ2 = "iotstream.ensure_partition(regclass,timestamp with time zone)";
const HOP = "iotstream.hop(timestamp with time zone,interval,interval,timestamp with time zone)";
const HOP_TS = "iotstream.hop(timestamp without time zone,interval,interval,timestamp without time zone)";
const PROBES = [
  [TSTZ3, "'{own}', '4713-11-24 BC', '294276-12-31 23:59:59.999999' (to - from overflows)", "error:54000",
    "SELECT iotstream.ensure_partitions('{own}', '4713-11-24 00:00:00+00 BC', '294276-12-31 23:59:59.999999+00')"],
  [TSTZ3, "'{own}', '0001-01-01', '2000-01-01' (the message names both ends)", "error~2000-01-01",
    "SELECT iotstream.ensure_partitions('{own}', '0001-01-01 00:00:00+00', '2000-01-01 00:00:00+00')"],
  [TSTZ2, "'{own_schema}.forever' (unbounded), '0044-03-15 BC' (stream tables take the years 1 to 9999)", "error:22008",
    "SELECT iotstream.ensure_partition('{own_schema}.forever', '0044-03-15 00:00:00+00 BC')"],
  [TSTZ2, "'{own_schema}.forever' (unbounded), '1900-01-01'", "ok",
    "SELECT iotstream.ensure_partition('{own_schema}.forever', '1900-01-01 00:00:00+00')"],
  [TSTZ2, "'{own_schema}.forever' (unbounded), '294276-12-31 23:59:59'", "error+hint",
    "SELECT iotstream.ensure_partition('{own_schema}.forever', '294276-12-31 23:59:59+00')"],
  [TSTZ2, "'{own_schema}.far' (max_future 300000 years, accepted by create_stream_table), now()", "ok",
    "SELECT iotstream.ensure_partition('{own_schema}.far', now())"],
  // at the first timestamp there is (4714-11-24 BC), the windows that
  // would start before it are left out, not returned out of range
  [HOP, "'4714-11-24 BC', '2 hours', '1 hour', '2000-01-01': no window starts before the first valid timestamp", "not-false",
    "SELECT bool_and(h >= '4714-11-24 00:00:00+00 BC'::timestamptz) FROM iotstream.hop('4714-11-24 00:00:00+00 BC', '2 hours', '1 hour', '2000-01-01 00:00:00+00') h"],
  [HOP_TS, "'4714-11-24 BC', '2 hours', '1 hour', '2000-01-01': no window starts before the first valid timestamp", "not-false",
    "SELECT bool_and(h >= '4714-11-24 00:00:00 BC'::timestamp) FROM iotstream.hop('4714-11-24 00:00:00 BC', '2 hours', '1 hour', '2000-01-01 00:00:00') h"],
];
for (const [fn, args, expect, sql] of PROBES) calls.push({ fn, form: "probe", args, sql, expect });

writeFileSync(out, calls.map((c, i) => JSON.stringify({ id: i + 1, fn: c.fn, form: c.form, args: c.args, sql: c.sql, expect: c.expect || null })).join("\n") + "\n");
console.error(`${calls.length} calls of ${fns.length} functions`);

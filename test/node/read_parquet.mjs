// Reads Parquet files written by iotstream with two independent readers,
// DuckDB and hyparquet, for the tests and the benchmark.
//
//   node read_parquet.mjs compare FILE 'SOURCE QUERY'
//       Reads FILE with both readers and compares every value, row by row,
//       with what Postgres returns for SOURCE QUERY (run through psql, so
//       PGHOST etc. must be set; the query must ORDER BY so rows line up).
//       Values are compared in a canonical text form per Parquet type:
//       integers and decimals as digits, floats as their IEEE bits,
//       timestamps as microseconds since 1970, dates as days since 1970,
//       bytea as hex, everything else as its text; arrays and composites
//       (Parquet LIST and STRUCT columns) as their JSON, keys sorted,
//       numbers to 15 significant digits, a missing field as null.  hyparquet returns
//       decimals as JS numbers, so its decimals are compared within 1e-9
//       (relative).  Prints one JSON line; exits 1 on any difference.
//   node read_parquet.mjs duckdb 'SQL' ...
//       Runs each SQL statement in DuckDB and prints its rows as JSON.
//   node read_parquet.mjs duckdb-write 'SQL' ...
//       Same, printing the wall-clock milliseconds of each statement.
import { DuckDBInstance } from '@duckdb/node-api'
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet'
import { execFileSync } from 'node:child_process'
import { gunzipSync } from 'node:zlib'

const INT64_MAX = 9223372036854775807n
const INT32_MAX = 2147483647

async function duck() {
  const inst = await DuckDBInstance.create(':memory:', { threads: '2' })
  return inst.connect()
}

function floatHex(v) {
  const dv = new DataView(new ArrayBuffer(8))
  dv.setFloat64(0, Number(v))
  return Buffer.from(dv.buffer).toString('hex')
}

// The kind of a column, from the Parquet schema element.
function kindOf(el) {
  const lt = el.logical_type?.type
  if (el.converted_type === 'DECIMAL' || lt === 'DECIMAL') return 'decimal'
  if (lt === 'TIMESTAMP') return 'ts'
  if (lt === 'DATE' || el.converted_type === 'DATE') return 'date'
  if (lt === 'UUID') return 'uuid'
  if (el.type === 'FLOAT' || el.type === 'DOUBLE') return 'float'
  if (el.type === 'BOOLEAN') return 'bool'
  if (el.type === 'INT32' || el.type === 'INT64') return 'int'
  if (el.type === 'BYTE_ARRAY' && !lt && !el.converted_type) return 'bytea'
  return 'text'
}

const q = (name) => '"' + name.replace(/"/g, '""') + '"'

// A nested value in one canonical JSON text, whichever reader gave it.
function canonJson(v) {
  const canon = (x) => {
    if (x === null || x === undefined) return null
    if (typeof x === 'bigint') return Number(x)
    // Postgres's jsonb writes NaN and infinities as strings
    if (typeof x === 'number' && !Number.isFinite(x)) return String(x)
    // hyparquet turns decimals into doubles: 15 significant digits
    if (typeof x === 'number') return Number(x.toPrecision(15))
    if (Array.isArray(x)) return x.map(canon)
    if (typeof x === 'object') return Object.fromEntries(Object.keys(x).sort().map((k) => [k, canon(x[k])]))
    return x
  }
  return v === null || v === undefined ? null : JSON.stringify(canon(v))
}

// The top-level columns of a file: a group (LIST, STRUCT) is one nested column.
function topColumns(schema) {
  const cols = []
  let i = 1
  const skip = (k) => { const n = schema[k].num_children ?? 0; let j = k + 1; for (let c = 0; c < n; c++) j = skip(j); return j }
  while (i < schema.length) {
    const el = schema[i]
    cols.push({ name: el.name, kind: el.num_children ? 'nested' : kindOf(el) })
    i = skip(i)
  }
  return cols
}

function pgCanon(name, kind) {
  const c = 's.' + q(name)
  switch (kind) {
    case 'float': return `encode(float8send(${c}::float8), 'hex')`
    case 'ts': return `CASE WHEN isfinite(${c}) THEN ((extract(epoch FROM ${c}) * 1000000)::bigint)::text ELSE ${c}::text END`
    case 'date': return `CASE WHEN isfinite(${c}) THEN (${c} - date '1970-01-01')::text ELSE ${c}::text END`
    case 'bytea': return `encode(${c}, 'hex')`
    // concat() uses the type's output function: char(n) keeps its padding
    case 'text': return `CASE WHEN ${c} IS NULL THEN NULL ELSE concat(${c}) END`
    case 'nested': return `to_jsonb(${c})`
    default: return `${c}::text`
  }
}

function duckCanon(name, kind) {
  const c = q(name)
  switch (kind) {
    case 'float': return c
    case 'ts': return `CASE WHEN ${c} IS NULL THEN NULL WHEN isfinite(${c}) THEN epoch_us(${c})::VARCHAR WHEN ${c} > TIMESTAMP '2000-01-01' THEN 'infinity' ELSE '-infinity' END`
    case 'date': return `CASE WHEN ${c} IS NULL THEN NULL WHEN isfinite(${c}) THEN (${c} - DATE '1970-01-01')::VARCHAR WHEN ${c} > DATE '2000-01-01' THEN 'infinity' ELSE '-infinity' END`
    case 'bytea': return `lower(hex(${c}))`
    case 'nested': return `to_json(${c})::VARCHAR`
    default: return `${c}::VARCHAR`
  }
}

function hypCanon(v, kind) {
  if (v === null || v === undefined) return null
  switch (kind) {
    case 'float': return floatHex(v)
    case 'bool': return v ? 'true' : 'false'
    case 'bytea': return Buffer.from(v).toString('hex')
    case 'decimal': return v
    case 'nested': return canonJson(v)
    default: return String(v)
  }
}

const hypOptions = {
  utf8: false,
  compressors: {
    GZIP: (input) => new Uint8Array(gunzipSync(input)),
    // Node 20 has no zstd; the zstd command-line tool is a real decoder.
    ZSTD: (input) => new Uint8Array(execFileSync('zstd', ['-d', '-c', '-q'], { input, maxBuffer: 1 << 30 })),
  },
  parsers: {
    timestampFromMicroseconds: (us) => us === INT64_MAX ? 'infinity' : us === -INT64_MAX ? '-infinity' : String(us),
    dateFromDays: (d) => d === INT32_MAX ? 'infinity' : d === -INT32_MAX ? '-infinity' : String(d),
    jsonFromBytes: (b) => b && new TextDecoder().decode(b),
  },
}

function psqlJson(sql) {
  const out = execFileSync('psql', ['-XAtq', '-v', 'ON_ERROR_STOP=1', '-c', sql],
    { maxBuffer: 1 << 30, encoding: 'utf8' })
  return JSON.parse(out)
}

function same(a, b, kind) {
  if (a === null || b === null) return a === b
  if (kind === 'decimal' && typeof a === 'number') {
    const e = Number(b)
    return Math.abs(a - e) <= 1e-9 * Math.max(1, Math.abs(e))
  }
  return a === b
}

async function compare(file, source) {
  const buf = await asyncBufferFromFile(file)
  const meta = await parquetMetadataAsync(buf)
  const cols = topColumns(meta.schema)

  const pgSql = `SELECT coalesce(json_agg(json_build_array(${cols.map((c) => pgCanon(c.name, c.kind)).join(', ')})), '[]') FROM (${source}) s`
  const expected = psqlJson(pgSql).map((r) => r.map((v, j) => cols[j].kind === 'nested' ? canonJson(v) : v))

  const conn = await duck()
  const dr = await conn.runAndReadAll(`SELECT ${cols.map((c) => duckCanon(c.name, c.kind)).join(', ')} FROM read_parquet('${file.replace(/'/g, "''")}')`)
  const duckRows = dr.getRowsJS().map((r) => r.map((v, i) => (v === null ? null : cols[i].kind === 'float' ? floatHex(v)
    : cols[i].kind === 'nested' ? canonJson(JSON.parse(v.replace(/([[,:])(-?Infinity|NaN)(?=[,\]}])/g, '$1"$2"'))) : String(v))))

  const objs = await parquetReadObjects({ file: buf, ...hypOptions })
  const hypRows = objs.map((o) => cols.map((c) => hypCanon(o[c.name], c.kind)))

  const result = { file, rows: expected.length, duckdb_rows: duckRows.length, hyparquet_rows: hypRows.length, duckdb_mismatches: 0, hyparquet_mismatches: 0, examples: [] }
  for (const [reader, rows] of [['duckdb', duckRows], ['hyparquet', hypRows]]) {
    const n = Math.max(rows.length, expected.length)
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < cols.length; j++) {
        const got = rows[i]?.[j] ?? null
        const want = expected[i]?.[j] ?? null
        if (i >= rows.length || i >= expected.length || !same(got, want, cols[j].kind)) {
          result[reader + '_mismatches']++
          if (result.examples.length < 5) result.examples.push({ reader, row: i, column: cols[j].name, got, want })
        }
      }
    }
  }
  console.log(JSON.stringify(result))
  const ok = result.duckdb_rows === result.rows && result.hyparquet_rows === result.rows &&
    result.duckdb_mismatches === 0 && result.hyparquet_mismatches === 0
  process.exit(ok ? 0 : 1)
}

async function duckdbSql(statements, timed) {
  const conn = await duck()
  for (const sql of statements) {
    const t0 = performance.now()
    const r = await conn.runAndReadAll(sql)
    const ms = performance.now() - t0
    if (timed) console.log(ms.toFixed(1))
    else for (const row of r.getRowsJson()) console.log(JSON.stringify(row))
  }
}

const [cmd, ...args] = process.argv.slice(2)
if (cmd === 'compare') await compare(args[0], args[1])
else if (cmd === 'duckdb') await duckdbSql(args, false)
else if (cmd === 'duckdb-write') await duckdbSql(args, true)
else {
  console.error('usage: read_parquet.mjs compare FILE QUERY | duckdb SQL... | duckdb-write SQL...')
  process.exit(2)
}

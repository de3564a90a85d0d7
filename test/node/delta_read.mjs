// A Delta Lake reader for the tests, written from delta-io/delta PROTOCOL.md
// and independent of iotstream's C writer: it replays a table's JSON log,
// checks every action against the protocol, and resolves the live files,
// which DuckDB and hyparquet then read.
//
//   node delta_read.mjs ROOT [--version N] [--files] [--sql 'SELECT ... FROM t']
//
//   ROOT        the table's folder (holding _delta_log/)
//   --version N replay only up to version N (time travel)
//   --no-checkpoint  replay every JSON commit from version 0, ignoring
//               _last_checkpoint (by default the newest checkpoint at or
//               before the version is read first, with hyparquet and
//               DuckDB, and only the commits after it are replayed)
//   --files     read every live file with DuckDB and hyparquet: its size,
//               its row count and its min/max/null counts must be what its
//               add action says
//   --sql Q     runs Q in DuckDB over the view t of the live files, with the
//               partition columns from partitionValues; prints its rows
//
// Prints one JSON object: version, versions, protocol, partitionColumns,
// schema (the fields), txn ({appId: version}), files (live: path,
// partitionValues, size, numRecords), tombstones (removed paths),
// numRecords, and the --sql rows.  Exits 1 with a message when the log
// breaks the protocol.
import fs from 'node:fs'
import path from 'node:path'
import { DuckDBInstance } from '@duckdb/node-api'
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet'
import { execFileSync } from 'node:child_process'
import { gunzipSync } from 'node:zlib'

// hyparquet decodes snappy itself; gzip and zstd (the zstd command: Node 20 has none) here
const compressors = {
  GZIP: (input) => new Uint8Array(gunzipSync(input)),
  ZSTD: (input) => new Uint8Array(execFileSync('zstd', ['-d', '-c', '-q'], { input, maxBuffer: 1 << 30 })),
}

const argv = process.argv.slice(2)
const root = argv[0]
const opt = (name) => { const i = argv.indexOf(name); return i < 0 ? null : argv[i + 1] }
const upTo = opt('--version') === null ? Infinity : Number(opt('--version'))
const checkFiles = argv.includes('--files')
const sql = opt('--sql')
const noCheckpoint = argv.includes('--no-checkpoint')

function die(msg) {
  process.stderr.write('delta_read: ' + msg + '\n')
  process.exit(1)
}
const isInt = (v) => typeof v === 'number' && Number.isInteger(v)
const isStr = (v) => typeof v === 'string'
const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v)
const isStrMap = (v) => isObj(v) && Object.values(v).every((x) => x === null || isStr(x))
function need(cond, where, what) { if (!cond) die(`${where}: ${what}`) }

// The leaves of a stats object: [['a.b', value], ...], structs nested.
const statLeaves = (o, pre = '') => Object.entries(o ?? {}).flatMap(([k, v]) =>
  isObj(v) ? statLeaves(v, pre + k + '.') : [[pre + k, v]])
// The stats value at a path of statLeaves
const statAt = (o, p) => p.split('.').reduce((x, k) => x?.[k], o)

// A schema type (PROTOCOL.md, Schema Serialization Format): a primitive
// name, or an array, map or struct object, nested to any depth.
const PRIMITIVE = /^(string|long|integer|short|byte|float|double|boolean|binary|date|timestamp|timestamp_ntz|decimal\(\d+, ?\d+\))$/
function checkType(t, where) {
  if (isStr(t)) return need(PRIMITIVE.test(t), where, 'unknown primitive type ' + t)
  need(isObj(t), where, 'a type is a name or an object: ' + JSON.stringify(t))
  switch (t.type) {
    case 'array':
      need(typeof t.containsNull === 'boolean', where, 'an array type says containsNull')
      return checkType(t.elementType, where + '[]')
    case 'map':
      need(typeof t.valueContainsNull === 'boolean', where, 'a map type says valueContainsNull')
      checkType(t.keyType, where + '.key')
      return checkType(t.valueType, where + '.value')
    case 'struct':
      return checkFields(t.fields, where)
    default:
      die(`${where}: unknown type ${JSON.stringify(t)}`)
  }
}
function checkFields(fields, where) {
  need(Array.isArray(fields), where, 'a struct has fields')
  for (const f of fields) {
    need(isStr(f.name) && (isStr(f.type) || isObj(f.type)) && typeof f.nullable === 'boolean' && isObj(f.metadata), where, 'a struct field needs name, type, nullable and metadata: ' + JSON.stringify(f))
    checkType(f.type, `${where}.${f.name}`)
  }
  const names = fields.map((f) => f.name.toLowerCase())
  need(new Set(names).size === names.length, where, 'column names are unique (case-insensitively)')
}
// every primitive type in a type, nested ones included
const primitives = (t) => isStr(t) ? [t] : t.type === 'array' ? primitives(t.elementType)
  : t.type === 'map' ? [...primitives(t.keyType), ...primitives(t.valueType)] : t.fields.flatMap((f) => primitives(f.type))

// Required fields and their types, per action (PROTOCOL.md, Actions).
function checkAction(a, where) {
  const keys = Object.keys(a)
  need(keys.length === 1, where, 'an action is an object with one key, not ' + JSON.stringify(keys))
  const [kind] = keys
  const v = a[kind]
  need(isObj(v), where, `${kind} is not an object`)
  switch (kind) {
    case 'protocol':
      need(isInt(v.minReaderVersion) && isInt(v.minWriterVersion), where, 'protocol needs integer minReaderVersion and minWriterVersion')
      need(v.readerFeatures === undefined || (v.minReaderVersion === 3 && Array.isArray(v.readerFeatures) && v.readerFeatures.every(isStr)), where, 'readerFeatures only with reader version 3, as strings')
      need(v.writerFeatures === undefined || (v.minWriterVersion === 7 && Array.isArray(v.writerFeatures) && v.writerFeatures.every(isStr)), where, 'writerFeatures only with writer version 7, as strings')
      if (v.minReaderVersion === 3) {
        need(Array.isArray(v.readerFeatures), where, 'reader version 3 lists readerFeatures')
        for (const f of v.readerFeatures) need(['timestampNtz'].includes(f), where, 'this reader does not support reader feature ' + f)
      } else need(v.minReaderVersion === 1, where, 'this reader supports reader versions 1 and 3, not ' + v.minReaderVersion)
      if (v.minWriterVersion === 7) need(Array.isArray(v.writerFeatures), where, 'writer version 7 lists writerFeatures')
      if (v.readerFeatures) for (const f of v.readerFeatures) need(v.writerFeatures.includes(f), where, `reader feature ${f} must be a writer feature too`)
      break
    case 'metaData': {
      // a GUID says the protocol; Delta's own test tables have ids such as "testId"
      need(isStr(v.id) && v.id.length > 0, where, 'metaData.id is a string')
      need(isObj(v.format) && isStr(v.format.provider) && (v.format.options === undefined || isStrMap(v.format.options)), where, 'metaData.format needs provider (and string options)')
      need(v.format.provider === 'parquet', where, 'this reader reads parquet tables')
      need(isStr(v.schemaString), where, 'metaData.schemaString is a string')
      let schema
      try { schema = JSON.parse(v.schemaString) } catch (e) { die(`${where}: schemaString is not JSON: ${e.message}`) }
      need(schema.type === 'struct' && Array.isArray(schema.fields), where, 'the schema is a struct with fields')
      checkFields(schema.fields, where)
      const names = schema.fields.map((f) => f.name.toLowerCase())
      need(Array.isArray(v.partitionColumns) && v.partitionColumns.every((c) => names.includes(c.toLowerCase())), where, 'partitionColumns are columns of the schema')
      need(isStrMap(v.configuration), where, 'metaData.configuration is a map of strings')
      need(v.createdTime === undefined || v.createdTime === null || isInt(v.createdTime), where, 'createdTime is a long')
      break
    }
    case 'add':
      need(isStr(v.path) && v.path.length > 0, where, 'add.path is a string')
      need(isStrMap(v.partitionValues), where, 'add.partitionValues is a map of strings')
      need(isInt(v.size) && v.size >= 0, where, 'add.size is a long')
      need(isInt(v.modificationTime), where, 'add.modificationTime is a long')
      need(typeof v.dataChange === 'boolean', where, 'add.dataChange is a boolean')
      need(v.stats === undefined || v.stats === null || isStr(v.stats), where, 'add.stats is a JSON string')
      need(v.tags === undefined || v.tags === null || isStrMap(v.tags), where, 'add.tags is a map of strings')
      if (isStr(v.stats)) {
        let s
        try { s = JSON.parse(v.stats) } catch (e) { die(`${where}: stats are not JSON: ${e.message}`) }
        need(isInt(s.numRecords) && s.numRecords >= 0, where, 'stats.numRecords is a long')
        for (const k of ['minValues', 'maxValues', 'nullCount']) need(s[k] === undefined || isObj(s[k]), where, `stats.${k} is an object`)
        // a struct's statistics are objects of its fields'
        if (s.nullCount) for (const [c, n] of statLeaves(s.nullCount)) need(isInt(n) && n >= 0 && n <= s.numRecords, where, `nullCount of ${c} is within numRecords`)
      }
      break
    case 'remove':
      need(isStr(v.path) && v.path.length > 0, where, 'remove.path is a string')
      need(typeof v.dataChange === 'boolean', where, 'remove.dataChange is a boolean')
      need(v.deletionTimestamp === undefined || v.deletionTimestamp === null || isInt(v.deletionTimestamp), where, 'remove.deletionTimestamp is a long')
      if (v.extendedFileMetadata === true) need(isStrMap(v.partitionValues) && isInt(v.size), where, 'extendedFileMetadata promises partitionValues and size')
      break
    case 'txn':
      need(isStr(v.appId) && isInt(v.version), where, 'txn needs appId (string) and version (long)')
      need(v.lastUpdated === undefined || v.lastUpdated === null || isInt(v.lastUpdated), where, 'txn.lastUpdated is a long')
      break
    case 'commitInfo':
      break
    default:
      break // unknown actions are ignored, as the protocol says
  }
  return [kind, v]
}

// --- replay
const logDir = path.join(root, '_delta_log')
need(fs.existsSync(logDir), root, 'no _delta_log folder')
let protocol = null
let meta = null
const live = new Map()
const tombstones = new Map()
const txn = {}

// the checkpoint, if any: one action a row, in the checkpoint schema
let checkpoint = -1
const lastCp = path.join(logDir, '_last_checkpoint')
if (!noCheckpoint && fs.existsSync(lastCp)) {
  let lc
  try { lc = JSON.parse(fs.readFileSync(lastCp, 'utf8')) } catch (e) { die(`_last_checkpoint is not JSON: ${e.message}`) }
  need(isInt(lc.version) && isInt(lc.size), '_last_checkpoint', 'needs version and size')
  if (lc.version <= upTo) {
    checkpoint = lc.version
    const file = path.join(logDir, String(checkpoint).padStart(20, '0') + '.checkpoint.parquet')
    need(fs.existsSync(file), '_last_checkpoint', `names version ${checkpoint}, whose checkpoint is missing`)
    const num = (x) => typeof x === 'bigint' ? Number(x) : x
    const rows = await parquetReadObjects({ file: await asyncBufferFromFile(file), compressors })
    need(rows.length === lc.size, file, `${rows.length} actions, _last_checkpoint says ${lc.size}`)
    let adds = 0
    rows.forEach((row, i) => {
      // a row holds one action; absent fields of an action are null
      const kinds = Object.keys(row).filter((k) => row[k] !== null && row[k] !== undefined)
      need(kinds.length === 1, `checkpoint row ${i}`, 'holds exactly one action, not ' + JSON.stringify(kinds))
      const v = Object.fromEntries(Object.entries(row[kinds[0]]).filter(([, x]) => x !== null && x !== undefined).map(([k, x]) => [k, num(x)]))
      const [k, a] = checkAction({ [kinds[0]]: v }, `checkpoint row ${i}`)
      if (k === 'protocol') protocol = a
      if (k === 'metaData') meta = a
      if (k === 'txn') txn[a.appId] = a.version
      if (k === 'add') { live.set(a.path, a); adds++ }
      if (k === 'remove') tombstones.set(a.path, a)
    })
    need(protocol !== null && meta !== null, file, 'a checkpoint holds protocol and metaData')
    if (lc.numOfAddFiles !== undefined) need(lc.numOfAddFiles === adds, file, `${adds} adds, _last_checkpoint says ${lc.numOfAddFiles}`)
    // DuckDB reads the same nested file
    const dconn = await (await DuckDBInstance.create(':memory:', { threads: '1' })).connect()
    const [d] = (await dconn.runAndReadAll(`SELECT count(add)::INT, count(remove)::INT, count(txn)::INT, count(metaData)::INT, count(protocol)::INT, count(*)::INT FROM read_parquet('${file.replace(/'/g, "''")}')`)).getRowsJson()
    need(JSON.stringify(d) === JSON.stringify([adds, tombstones.size, Object.keys(txn).length, 1, 1, rows.length]), file,
      `DuckDB reads ${JSON.stringify(d)} actions, hyparquet ${JSON.stringify([adds, tombstones.size, Object.keys(txn).length, 1, 1, rows.length])}`)
  }
}

const versions = fs.readdirSync(logDir).filter((f) => /^\d{20}\.json$/.test(f)).map((f) => Number(f.slice(0, 20)))
  .sort((a, b) => a - b).filter((v) => v <= upTo && v > checkpoint)
need(versions.length > 0 || checkpoint >= 0, root, 'no commits')
versions.forEach((v, i) => need(v === checkpoint + 1 + i, root, `versions are contiguous from ${checkpoint + 1}: found ${v} at position ${i}`))

for (const v of versions) {
  const where = `version ${v}`
  const text = fs.readFileSync(path.join(logDir, String(v).padStart(20, '0') + '.json'), 'utf8')
  const actions = text.split('\n').filter((l) => l.trim() !== '').map((l, i) => {
    try { return JSON.parse(l) } catch (e) { die(`${where} line ${i + 1}: not JSON: ${e.message}`) }
  }).map((a, i) => checkAction(a, `${where} line ${i + 1}`))
  const metas = actions.filter(([k]) => k === 'metaData')
  need(metas.length <= 1, where, 'at most one metaData per version')
  need(actions.filter(([k]) => k === 'protocol').length <= 1, where, 'at most one protocol per version')
  if (v === 0) need(metas.length === 1 && actions.some(([k]) => k === 'protocol'), where, 'the first version has protocol and metaData')
  for (const k of ['add', 'remove']) {
    const ps = actions.filter(([x]) => x === k).map(([, a]) => a.path)
    need(new Set(ps).size === ps.length, where, `at most one ${k} per path`)
  }
  for (const [k, a] of actions) {
    if (k === 'protocol') protocol = a
    if (k === 'metaData') meta = a
    if (k === 'txn') txn[a.appId] = a.version
  }
  // a version's removes and adds never name the same path; removes first
  for (const [k, a] of actions) if (k === 'remove') { live.delete(a.path); tombstones.set(a.path, a) }
  for (const [k, a] of actions) if (k === 'add') { live.set(a.path, a); tombstones.delete(a.path) }
}
const schema = JSON.parse(meta.schemaString).fields
for (const [p, a] of live) {
  const keys = Object.keys(a.partitionValues).sort()
  need(JSON.stringify(keys) === JSON.stringify([...meta.partitionColumns].sort()), p, 'partitionValues name exactly the partition columns')
  if (schema.some((f) => primitives(f.type).includes('timestamp_ntz'))) need(protocol.readerFeatures?.includes('timestampNtz'), p, 'a timestamp_ntz column needs the timestampNtz feature')
}

const files = [...live.values()].map((a) => ({
  path: a.path, partitionValues: a.partitionValues, size: a.size,
  numRecords: a.stats ? JSON.parse(a.stats).numRecords : null, stats: a.stats ? JSON.parse(a.stats) : null,
}))
const fileOf = (p) => path.join(root, decodeURIComponent(p))
const out = {
  version: versions.length ? versions[versions.length - 1] : checkpoint, versions: versions.length + checkpoint + 1, checkpoint, protocol, id: meta.id,
  partitionColumns: meta.partitionColumns, schema: schema.map((f) => `${f.name} ${typeof f.type === 'string' ? f.type : JSON.stringify(f.type)}`),
  txn, files: files.map(({ stats, ...f }) => f), tombstones: [...tombstones.keys()].sort(),
  numRecords: files.reduce((s, f) => s + (f.numRecords ?? 0), 0),
}

// --- the files
// The type DuckDB gives a Parquet column written for a Delta type.
function duckType(t) {
  if (isStr(t)) {
    const m = /^decimal\((\d+), ?(\d+)\)$/.exec(t)
    if (m) return `DECIMAL(${m[1]},${m[2]})`
    return { string: 'VARCHAR', long: 'BIGINT', integer: 'INTEGER', short: 'SMALLINT', byte: 'TINYINT', float: 'FLOAT', double: 'DOUBLE',
      boolean: 'BOOLEAN', binary: 'BLOB', date: 'DATE', timestamp: 'TIMESTAMP WITH TIME ZONE', timestamp_ntz: 'TIMESTAMP' }[t]
  }
  if (t.type === 'array') return duckType(t.elementType) + '[]'
  if (t.type === 'map') return `MAP(${duckType(t.keyType)}, ${duckType(t.valueType)})`
  return `STRUCT(${t.fields.map((f) => `${f.name} ${duckType(f.type)}`).join(', ')})`
}
const conn = (files.length && (checkFiles || sql)) ? await (await DuckDBInstance.create(':memory:', { threads: '2' })).connect() : null
const rows = async (q) => (await conn.runAndReadAll(q)).getRowsJson()
const lit = (s) => "'" + s.replace(/'/g, "''") + "'"
const qi = (n) => '"' + n.replace(/"/g, '""') + '"'
if (checkFiles) {
  let hypRows = 0
  for (const f of files) {
    const file = fileOf(f.path)
    need(fs.existsSync(file), f.path, 'a live file is missing')
    // the file's columns are the schema's data columns, of the Delta types
    const dataFields = schema.filter((x) => !meta.partitionColumns.includes(x.name))
    const described = (await rows(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(${lit(file)}, hive_partitioning = false))`))
    need(JSON.stringify(described.map(([n]) => n)) === JSON.stringify(dataFields.map((x) => x.name)), f.path,
      `the file's columns ${JSON.stringify(described.map(([n]) => n))} are not the schema's ${JSON.stringify(dataFields.map((x) => x.name))}`)
    described.forEach(([n, t], i) => {
      const want = duckType(dataFields[i].type)
      need(t.replace(/"/g, '') === want || (want === 'VARCHAR' && t === 'JSON'), f.path, `column ${n} is ${t} in the file, ${want} in the schema`)
    })
    need(fs.statSync(file).size === f.size, f.path, `size ${fs.statSync(file).size} is not the add's ${f.size}`)
    const buf = await asyncBufferFromFile(file)
    const md = await parquetMetadataAsync(buf)
    const n = (await parquetReadObjects({ file: buf, compressors })).length
    hypRows += n
    need(n === Number(md.num_rows), f.path, `hyparquet reads ${n} rows of ${md.num_rows}`)
    if (!f.stats) continue
    need(Number(md.num_rows) === f.numRecords, f.path, `hyparquet counts ${md.num_rows} rows, the add says ${f.numRecords}`)
    // DuckDB: rows, and each column's bounds and nulls against the stats
    // a column's stats name a field of the schema; arrays and maps have none
    const cols = statLeaves(f.stats.nullCount).map(([c]) => c)
    const typeOf = (c) => c.split('.').reduce((t, k) => {
      const x = (t === null ? schema : t.fields).find((y) => y.name === k)
      need(x !== undefined, f.path, `stats name ${c}, which is not in the schema`)
      return x.type
    }, null)
    for (const c of cols) need(isStr(typeOf(c)), f.path, `stats of ${c}, which is not a primitive column`)
    const colExpr = (c) => c.split('.').map(qi).join('.')
    const agg = (fn, c) => /^timestamp/.test(typeOf(c)) ? `epoch_ms(${fn}(${colExpr(c)}))::VARCHAR` : `${fn}(${colExpr(c)})::VARCHAR`
    const parts = [`count(*)::VARCHAR`]
    for (const c of cols) parts.push(`(count(*) - count(${colExpr(c)}))::VARCHAR`, agg('min', c), agg('max', c))
    const [r] = await rows(`SELECT ${parts.join(', ')} FROM read_parquet(${lit(file)}, hive_partitioning = false)`)
    need(Number(r[0]) === f.numRecords, f.path, `DuckDB counts ${r[0]} rows, the add says ${f.numRecords}`)
    cols.forEach((c, i) => {
      const [nulls, mn, mx] = r.slice(1 + 3 * i, 4 + 3 * i)
      need(Number(nulls) === statAt(f.stats.nullCount, c), f.path, `column ${c} has ${nulls} nulls, the stats say ${statAt(f.stats.nullCount, c)}`)
      const type = typeOf(c)
      for (const [bound, stat, d] of [['min', statAt(f.stats.minValues, c), mn], ['max', statAt(f.stats.maxValues, c), mx]]) {
        if (stat === undefined || stat === null) continue
        need(d !== null, f.path, `column ${c} has a ${bound} in the stats but only nulls`)
        let ok
        if (/^(long|integer|short|byte)$/.test(type)) ok = BigInt(stat) === BigInt(d)
        else if (/^(float|double)$/.test(type)) ok = Number(stat) === Number(d)
        else if (type.startsWith('decimal')) ok = Math.abs(Number(stat) - Number(d)) <= 1e-12 * Math.max(1, Math.abs(Number(d)))
        else if (type === 'date') ok = stat === d
        // truncated down to milliseconds (ntz: no zone, read as UTC)
        else if (type === 'timestamp') ok = /Z$/.test(stat) && Date.parse(stat) === Number(d)
        else if (type === 'timestamp_ntz') ok = !/Z$/.test(stat) && Date.parse(stat + 'Z') === Number(d)
        // a string bound may be a prefix (a minimum only)
        else if (type === 'string') ok = stat === d || (bound === 'min' && d.startsWith(stat))
        else ok = false
        need(ok, f.path, `column ${c} (${type}): stats ${bound} ${JSON.stringify(stat)}, the file's is ${d}`)
      }
    })
  }
  out.hyparquetRows = hypRows
}
if (sql) {
  if (files.length === 0) {
    out.sql = null
  } else {
    const sel = files.map((f) => {
      const pcs = meta.partitionColumns.map((c) => {
        const t = schema.find((x) => x.name === c).type
        const v = f.partitionValues[c]
        return `${v === null || v === '' ? 'NULL' : lit(v)}::${t === 'date' ? 'DATE' : t === 'integer' ? 'INTEGER' : 'VARCHAR'} AS ${qi(c)}`
      })
      return `SELECT *${pcs.length ? ', ' + pcs.join(', ') : ''} FROM read_parquet(${lit(fileOf(f.path))}, hive_partitioning = false)`
    })
    await rows(`CREATE VIEW t AS ${sel.join(' UNION ALL BY NAME ')}`)
    out.sql = await rows(sql)
  }
}
process.stdout.write(JSON.stringify(out) + '\n')

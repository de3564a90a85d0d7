// Writes Event Hubs Capture files with avsc, an Avro implementation
// independent of iotstream's reader (avro-c): the Capture schema, each
// record's Body a JSON reading.  Used by 28_files_avro.sh.
//   node capture_gen.cjs FILE FIRST COUNT [BLOCK_BYTES] [CODEC] [CORRUPT_BLOCK] [HOW]
// CORRUPT_BLOCK n > 0: block n (from 1; -1: the last) is damaged, HOW:
//   sync      its sync marker is overwritten (the default)
//   flip      a run of bytes in the middle of its data is overwritten
//   truncate  the file ends in the middle of it
// and the SequenceNumbers of its records are printed, "first last": the
// block's record count is read with avsc's long type.
// Record i (FIRST <= i < FIRST + COUNT): SequenceNumber i, Offset "i*100",
// Body {"deviceId": "d-<i % 5>", "value": i, "ts": 2026-11-01 + i seconds}.
'use strict';
const path = require('path');
const avro = require(path.join(__dirname, '../node/node_modules/avsc'));

const schema = {
  type: 'record', name: 'EventData', namespace: 'Microsoft.ServiceBus.Messaging',
  fields: [
    {name: 'SequenceNumber', type: 'long'},
    {name: 'Offset', type: 'string'},
    {name: 'EnqueuedTimeUtc', type: 'string'},
    {name: 'SystemProperties', type: {type: 'map', values: ['long', 'double', 'string', 'bytes']}},
    {name: 'Properties', type: {type: 'map', values: ['long', 'double', 'string', 'bytes', 'null']}},
    {name: 'Body', type: ['null', 'bytes']},
  ],
};
const fs = require('fs');
const [file, first, count, blockBytes, codec, corrupt, how] = process.argv.slice(2);
const syncMarker = Buffer.from('iotstream-sync-!');
const type = avro.Type.forSchema(schema, {wrapUnions: true});
const enc = new avro.streams.BlockEncoder(type,
  {blockSize: Number(blockBytes || 65536), codec: codec || 'null', syncMarker});
const out = fs.createWriteStream(file);
enc.pipe(out);
// the file is whole once its stream closes (the encoder finishes before)
out.on('close', () => {
  if (!Number(corrupt)) return;
  const buf = fs.readFileSync(file);
  // occurrence 0 ends the header; occurrence k ends block k
  const ends = [];
  for (let at = buf.indexOf(syncMarker); at >= 0; at = buf.indexOf(syncMarker, at + 1)) ends.push(at);
  const n = Number(corrupt) < 0 ? ends.length - 1 : Number(corrupt);
  if (n < 1 || n >= ends.length) throw new Error('no such block');
  const long = avro.Type.forSchema('long');
  let seq = Number(first);
  for (let k = 1; k < n; k++) seq += long.decode(buf, ends[k - 1] + 16).value;
  const start = ends[n - 1] + 16;
  const head = long.decode(buf, start);
  const size = long.decode(buf, head.offset);
  const data = size.offset;  // the block's data: [data, data + size.value)
  console.log(`${seq} ${seq + head.value - 1}`);
  if ((how || 'sync') === 'sync') {
    buf.fill(0x5a, ends[n], ends[n] + 16);
    fs.writeFileSync(file, buf);
  } else if (how === 'flip') {
    const run = Math.min(300, Math.floor(size.value / 3));
    const at = data + Math.floor(size.value / 2) - Math.floor(run / 2);
    buf.fill(0xff, at, at + run);
    fs.writeFileSync(file, buf);
  } else if (how === 'truncate') {
    fs.writeFileSync(file, buf.subarray(0, data + Math.floor(size.value / 2)));
  } else throw new Error(`unknown damage ${how}`);
});
for (let i = Number(first); i < Number(first) + Number(count); i++) {
  // Capture writes a partition's events in the order they were enqueued
  const t = new Date(Date.UTC(2026, 10, 1) + i * 1000);
  const h = t.getUTCHours();
  const enqueued = `${t.getUTCMonth() + 1}/${t.getUTCDate()}/${t.getUTCFullYear()} ` +
    `${h % 12 === 0 ? 12 : h % 12}:${String(t.getUTCMinutes()).padStart(2, '0')}:` +
    `${String(t.getUTCSeconds()).padStart(2, '0')} ${h < 12 ? 'AM' : 'PM'}`;
  enc.write({
    SequenceNumber: i,
    Offset: String(i * 100),
    EnqueuedTimeUtc: enqueued,
    SystemProperties: {'x-opt-sequence-number': {long: i}},
    Properties: {source: {string: 'capture'}},
    Body: {bytes: Buffer.from(JSON.stringify({deviceId: `d-${i % 5}`, value: i, ts: t.toISOString()}))},
  });
}
enc.end();

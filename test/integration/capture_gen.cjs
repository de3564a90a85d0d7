// Writes Event Hubs Capture files with avsc, an Avro implementation
// independent of iotstream's reader (avro-c): the Capture schema, each
// record's Body a JSON reading.  Used by 28_files_avro.sh.
//   node capture_gen.cjs FILE FIRST COUNT [BLOCK_BYTES] [CODEC] [CORRUPT_SYNC]
// CORRUPT_SYNC n > 0: the file's nth block-ending sync marker is overwritten,
// as a torn or corrupted block would leave it.
// Record i (FIRST <= i < FIRST + COUNT): SequenceNumber i, Offset "i*100",
// Body {"deviceId": "d-<i % 5>", "value": i, "ts": <an ISO time>}.
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
const [file, first, count, blockBytes, codec, corrupt] = process.argv.slice(2);
const syncMarker = Buffer.from('iotstream-sync-!');
const type = avro.Type.forSchema(schema, {wrapUnions: true});
const enc = avro.createFileEncoder(file, type,
  {blockSize: Number(blockBytes || 65536), codec: codec || 'null', syncMarker});
enc.on('finish', () => {
  if (!Number(corrupt)) return;
  const buf = fs.readFileSync(file);
  // occurrence 0 ends the header; occurrence n ends block n
  let at = -1;
  for (let k = 0; k <= Number(corrupt); k++) at = buf.indexOf(syncMarker, at + 1);
  if (at < 0) throw new Error('no such block');
  buf.fill(0x5a, at, at + 16);
  fs.writeFileSync(file, buf);
});
for (let i = Number(first); i < Number(first) + Number(count); i++) {
  const t = new Date(Date.UTC(2026, 10, 1 + (i % 28), i % 24, i % 60, i % 60));
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

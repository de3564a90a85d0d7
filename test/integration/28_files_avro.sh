#!/usr/bin/env bash
# Avro file sources (issue 20): Event Hubs Capture files written by avsc
# (an Avro implementation independent of the avro-c reader iotstream uses),
# null and deflate codecs, several blocks a file.  Body is decoded as JSON
# by the mapping; SequenceNumber, Offset, EnqueuedTimeUtc, SystemProperties
# and Properties are $headers, EnqueuedTimeUtc also $timestamp.  A corrupt
# block (its sync marker overwritten, bytes of its data overwritten, under
# either codec, or the file cut in its last block) is one dead letter with
# its reason, and every other block's records are stored; a kill -9 in the
# middle of a file resumes at a block; an empty container file is done, a
# file that is not Avro failed; .avro.gz is read.  A second source without
# $headers (avro-c decodes a projection) reads Capture files, and a file of
# another schema as its JSON encoding.  Counts and sums against what was
# written.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
GEN=$(dirname "$0")/capture_gen.cjs
W=$IOTSTREAM_WORK/av28
LAKE=$W/lake
rm -rf "$W" && mkdir -p "$LAKE/ns/hub" "$W/stage"
chmod 755 "$IOTSTREAM_WORK" "$W" "$LAKE" "$LAKE/ns" "$LAKE/ns/hub"
put() { chmod 644 "$W/stage/$1" && mv "$W/stage/$1" "$LAKE/ns/hub/$1"; }
stats() { q "SELECT count(*) || ' ' || coalesce(sum(value), 0) || ' ' || count(DISTINCT seq) FROM it28av.t WHERE file = 'ns/hub/$1'"; }
sum_range() { echo $(( ($1 + $2) * ($2 - $1 + 1) / 2 )); }

fresh_schema it28av
q "DELETE FROM iotstream.dead_letters WHERE source = 'it28av'"
q "SELECT iotstream.create_stream_table('it28av.t',
     'ts timestamptz NOT NULL, device_id text NOT NULL, value bigint NOT NULL, seq bigint NOT NULL,
      meta jsonb, enqueued timestamptz, file text NOT NULL, rec bigint NOT NULL',
     'ts', partition_interval => '1 day', max_past => '3650 days', retention => NULL)" >/dev/null
q "SELECT iotstream.create_file_source('it28av', 'file://$LAKE', 'it28av.t', 'avro',
     '{\"seq\": \"value\", \"meta\": \"\$headers\", \"enqueued\": \"\$timestamp\", \"file\": \"\$topic\", \"rec\": \"\$offset\"}',
     '{\"poll_ms\": 50, \"batch_size\": 713, \"batch_ms\": 20}')" >/dev/null
q "SELECT iotstream.start_source('it28av')" >/dev/null
wait_for "SELECT state = 'running' FROM iotstream.source_status WHERE source = 'it28av'" 60

node "$GEN" "$W/stage/00.avro" 1 2000 4096 null && put 00.avro
node "$GEN" "$W/stage/01.avro" 2001 3000 4096 deflate && put 01.avro
# the damaged block's SequenceNumbers: "first last"
bad02=$(node "$GEN" "$W/stage/02.avro" 5001 3000 4096 null 3 sync) && put 02.avro
node "$GEN" "$W/stage/03.avro" 1 0 && put 03.avro
bad04=$(node "$GEN" "$W/stage/04.avro" 9001 3000 4096 deflate 2 flip) && put 04.avro
bad05=$(node "$GEN" "$W/stage/05.avro" 13001 3000 4096 null 4 flip) && put 05.avro
bad06=$(node "$GEN" "$W/stage/06.avro" 17001 3000 4096 null -1 truncate) && put 06.avro
node "$GEN" "$W/stage/08.avro" 40001 500 4096 deflate && gzip "$W/stage/08.avro" && put 08.avro.gz
echo '{"not": "avro"}' >"$W/stage/09.avro" && put 09.avro
wait_for "SELECT count(*) = 9 FROM iotstream.source_files f JOIN iotstream.sources s USING (source_id)
            WHERE s.name = 'it28av' AND f.state IN ('done', 'failed')" 120

assert_eq "$(stats 00.avro)" "2000 $(sum_range 1 2000) 2000" "a Capture file, null codec"
assert_eq "$(stats 01.avro)" "3000 $(sum_range 2001 5000) 3000" "a Capture file, deflate codec"
assert_eq "$(stats 08.avro.gz)" "500 $(sum_range 40001 40500) 500" "a gzip-compressed Capture file"
assert_eq "$(q "SELECT count(*) FILTER (WHERE (meta->>'SequenceNumber')::bigint = value AND (meta->>'Offset')::bigint = value * 100
                                        AND enqueued = ts AND meta ? 'EnqueuedTimeUtc' AND meta ? 'SystemProperties'
                                        AND meta->>'Properties' LIKE '%capture%')
                 FROM it28av.t WHERE file IN ('ns/hub/00.avro', 'ns/hub/01.avro')")" 5000 \
  "the Capture metadata of every record: \$headers and \$timestamp"
assert_eq "$(q "SELECT rows || ' ' || state FROM iotstream.source_files WHERE path = 'ns/hub/03.avro'")" "0 done" \
  "an empty container file is done"
assert_eq "$(q "SELECT rows || ' ' || state || ' ' || error FROM iotstream.source_files WHERE path = 'ns/hub/09.avro'")" \
  "0 failed not an Avro object container file: its first bytes are not Obj1" "a file that is not Avro is failed"

# A damaged file: the damaged block's records are missing, all others are
# there once, and one dead letter names the block, at the record number
# where it stands, with its reason.
damaged() { # file first count "bad_first bad_last" reason_like what
  local f=$1 first=$2 count=$3 lo hi reason
  read -r lo hi <<<"$4"
  local n=$((count - (hi - lo + 1)))
  [ "$lo" -gt "$first" ] && [ "$hi" -le $((first + count - 1)) ] || fail "$f: the damaged block is $lo..$hi"
  assert_eq "$(stats "$f")" "$n $(( $(sum_range "$first" $((first + count - 1))) - $(sum_range "$lo" "$hi") )) $n" \
    "$6: every record but the damaged block's ($lo..$hi) stored once"
  assert_eq "$(q "SELECT count(*) FROM it28av.t WHERE file = 'ns/hub/$f' AND value BETWEEN $lo AND $hi")" 0 \
    "$6: none of the damaged block's records"
  assert_eq "$(q "SELECT count(*) || ' ' || min(\"offset\") || ' ' || bool_and(reason LIKE 'corrupt Avro block at byte % $5 %')
                  || ' ' || bool_and(length(payload) > 0)
                  FROM iotstream.dead_letters WHERE source = 'it28av' AND topic = 'ns/hub/$f'")" \
    "1 $((lo - first + 1)) true true" "$6: one dead letter, at the block's place, with the reason"
  assert_eq "$(q "SELECT state || ' ' || rows FROM iotstream.source_files WHERE path = 'ns/hub/$f'")" \
    "done $((n + 1))" "$6: the file is done; its records and the dead letter read"
  echo "   $f: $(q "SELECT reason FROM iotstream.dead_letters WHERE source = 'it28av' AND topic = 'ns/hub/$f'")"
}
damaged 02.avro 5001 3000 "$bad02" "%sync marker does not follow it%" "a block whose sync marker is overwritten"
damaged 04.avro 9001 3000 "$bad04" "%deflate%" "deflate: bytes of a block overwritten"
damaged 05.avro 13001 3000 "$bad05" "%cannot be decoded%" "null codec: bytes of a block overwritten"
damaged 06.avro 17001 3000 "$bad06" "%truncated%" "the file cut in its last block"
read -r lo hi <<<"$bad06"
assert_eq "$hi" 20000 "06.avro was cut in its last block"

# kill -9 in the middle of a file.  A trigger holds the worker at record
# 30001 until the gate opens: the batches before it are stored, and the
# worker is killed in the one that holds it; the ledger's position is then
# a block's (the sync marker ends the 16 bytes before it), and after the
# restart the file is read on from there.
q "CREATE TABLE it28av.gate_open (x int);
   CREATE FUNCTION it28av.gate() RETURNS trigger LANGUAGE plpgsql AS \$\$
   BEGIN
     IF NEW.file = 'ns/hub/07.avro' AND NEW.value > 30000 THEN
       WHILE NOT EXISTS (SELECT 1 FROM it28av.gate_open) LOOP PERFORM pg_sleep(0.02); END LOOP;
     END IF;
     RETURN NEW;
   END \$\$;
   CREATE TRIGGER gate BEFORE INSERT ON it28av.t FOR EACH ROW EXECUTE FUNCTION it28av.gate()"
held="SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'it28av' AND wait_event = 'PgSleep'"
node "$GEN" "$W/stage/07.avro" 20001 20000 4096 null && put 07.avro
wait_for "$held" 120
read -r pos inblock rows <<<"$(q "SELECT position || ' ' || lines || ' ' || rows FROM iotstream.source_files WHERE path = 'ns/hub/07.avro'")"
size=$(stat -c %s "$LAKE/ns/hub/07.avro")
[ "$pos" -gt 0 ] && [ "$pos" -lt "$size" ] || fail "not mid-file: position $pos of $size"
# full batches of 713 records end inside blocks of some 28 (a batch cut
# short by batch_ms may end at a block's end: then it resumes at the next)
[ "$inblock" -gt 0 ] && [ "$inblock" -lt 28 ] || echo "   note: the batch ended at the end of a block"
assert_eq "$(dd if="$LAKE/ns/hub/07.avro" bs=1 skip=$((pos - 16)) count=16 2>/dev/null)" "iotstream-sync-!" \
  "the stored position is a block's"
assert_eq "$(stats 07.avro)" "$rows $(sum_range 20001 $((20000 + rows))) $rows" "the records stored are those the ledger has read"
pid=$(q "SELECT pids[1] FROM iotstream.source_status WHERE source = 'it28av'")
kill -9 "$pid"
echo "   killed worker $pid at block $pos (+$inblock records) of $size bytes, $rows records stored"
wait_for "$held AND NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $pid)" 120
assert_eq "$(q "SELECT position || ' ' || lines FROM iotstream.source_files WHERE path = 'ns/hub/07.avro'")" "$pos $inblock" \
  "after the crash the worker resumed at the stored block"
q "INSERT INTO it28av.gate_open VALUES (1)"
wait_for "SELECT state = 'done' FROM iotstream.source_files WHERE path = 'ns/hub/07.avro'" 120
assert_eq "$(stats 07.avro)" "20000 $(sum_range 20001 40000) 20000" "07.avro: every record once after kill -9 mid-file"
assert_eq "$(q "SELECT count(*) FROM it28av.t WHERE file = 'ns/hub/07.avro' AND rec = value - 20000")" 20000 \
  "07.avro: each row's \$offset is its record's number"
q "SELECT iotstream.drop_source('it28av')" >/dev/null

# A mapping without $headers: only Body and EnqueuedTimeUtc are decoded
# (a projection avro-c resolves the records into); the same rows result.
mkdir -p "$W/lake2" && chmod 755 "$W/lake2"
q "DROP TRIGGER gate ON it28av.t"
q "SELECT iotstream.create_file_source('it28av2', 'file://$W/lake2', 'it28av.t', 'avro',
     '{\"seq\": \"value\", \"enqueued\": \"\$timestamp\", \"file\": \"\$topic\", \"rec\": \"\$offset\"}',
     '{\"poll_ms\": 50, \"batch_size\": 713, \"batch_ms\": 20}')" >/dev/null
q "SELECT iotstream.start_source('it28av2')" >/dev/null
node "$GEN" "$W/stage/10.avro" 50001 3000 4096 deflate && chmod 644 "$W/stage/10.avro" && mv "$W/stage/10.avro" "$W/lake2/10.avro"
wait_for "SELECT state = 'done' FROM iotstream.source_files f JOIN iotstream.sources s USING (source_id)
            WHERE s.name = 'it28av2' AND f.path = '10.avro'" 120
assert_eq "$(q "SELECT count(*) || ' ' || sum(value) || ' ' || count(*) FILTER (WHERE enqueued = ts AND meta IS NULL AND rec = value - 50000)
                FROM it28av.t WHERE file = '10.avro'")" "3000 $(sum_range 50001 53000) 3000" \
  "without \$headers: every record, its time and number"
# A record of another schema (no Body) is the message as its JSON encoding.
node -e "
  const avro = require('$IOTSTREAM_ROOT/test/node/node_modules/avsc');
  const type = avro.Type.forSchema({type: 'record', name: 'Reading', fields: [
    {name: 'deviceId', type: 'string'}, {name: 'value', type: 'long'}, {name: 'ts', type: 'string'}]});
  const enc = avro.createFileEncoder('$W/stage/11.avro', type, {codec: 'deflate', blockSize: 2048});
  for (let i = 60001; i <= 61000; i++)
    enc.write({deviceId: 'd-' + (i % 5), value: i, ts: new Date(Date.UTC(2026, 10, 2) + i * 1000).toISOString()});
  enc.end();" && chmod 644 "$W/stage/11.avro" # node exits once the file is written
mv "$W/stage/11.avro" "$W/lake2/11.avro"
wait_for "SELECT state = 'done' FROM iotstream.source_files f JOIN iotstream.sources s USING (source_id)
            WHERE s.name = 'it28av2' AND f.path = '11.avro'" 120
assert_eq "$(q "SELECT count(*) || ' ' || sum(value) || ' ' || count(DISTINCT device_id) FROM it28av.t WHERE file = '11.avro'")" \
  "1000 $(sum_range 60001 61000) 5" "a record of another schema: its JSON encoding, decoded by the mapping"
q "SELECT iotstream.drop_source('it28av2')" >/dev/null
echo "ok"

#!/usr/bin/env bash
# Avro file sources (issue 20): Event Hubs Capture files written by avsc
# (an Avro implementation independent of the avro-c reader iotstream uses),
# null and deflate codecs, several blocks a file.  Body is decoded as JSON
# by the mapping; SequenceNumber, Offset, EnqueuedTimeUtc, SystemProperties
# and Properties are $headers, EnqueuedTimeUtc also $timestamp.  A file
# whose third block is corrupt keeps the records before it and is failed;
# an empty container file is done.  Counts and sums against what was written.
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
      meta jsonb, enqueued timestamptz, file text NOT NULL',
     'ts', partition_interval => '1 day', max_past => '3650 days', retention => NULL)" >/dev/null
q "SELECT iotstream.create_file_source('it28av', 'file://$LAKE', 'it28av.t', 'avro',
     '{\"seq\": \"value\", \"meta\": \"\$headers\", \"enqueued\": \"\$timestamp\", \"file\": \"\$topic\"}',
     '{\"poll_ms\": 50, \"batch_size\": 700, \"batch_ms\": 20}')" >/dev/null
q "SELECT iotstream.start_source('it28av')" >/dev/null
wait_for "SELECT state = 'running' FROM iotstream.source_status WHERE source = 'it28av'" 60

node "$GEN" "$W/stage/00.avro" 1 2000 4096 null && put 00.avro
node "$GEN" "$W/stage/01.avro" 2001 3000 4096 deflate && put 01.avro
node "$GEN" "$W/stage/02.avro" 5001 3000 4096 null 3 && put 02.avro
node "$GEN" "$W/stage/03.avro" 1 0 && put 03.avro
wait_for "SELECT count(*) = 4 FROM iotstream.source_files f JOIN iotstream.sources s USING (source_id)
            WHERE s.name = 'it28av' AND f.state IN ('done', 'failed')" 120

assert_eq "$(stats 00.avro)" "2000 $(sum_range 1 2000) 2000" "a Capture file, null codec"
assert_eq "$(stats 01.avro)" "3000 $(sum_range 2001 5000) 3000" "a Capture file, deflate codec"
assert_eq "$(q "SELECT count(*) FILTER (WHERE (meta->>'SequenceNumber')::bigint = value AND (meta->>'Offset')::bigint = value * 100
                                        AND enqueued = ts AND meta ? 'EnqueuedTimeUtc' AND meta ? 'SystemProperties'
                                        AND meta->>'Properties' LIKE '%capture%')
                 FROM it28av.t WHERE file IN ('ns/hub/00.avro', 'ns/hub/01.avro')")" 5000 \
  "the Capture metadata of every record: \$headers and \$timestamp"
assert_eq "$(q "SELECT rows || ' ' || state FROM iotstream.source_files WHERE path = 'ns/hub/03.avro'")" "0 done" \
  "an empty container file is done"
assert_eq "$(q "SELECT state || ' ' || (error LIKE '%sync%') FROM iotstream.source_files WHERE path = 'ns/hub/02.avro'")" \
  "failed true" "a file with a corrupt block is failed, with avro-c's reason"
read -r n lo hi <<<"$(q "SELECT count(*) || ' ' || min(value) || ' ' || max(value) FROM it28av.t WHERE file = 'ns/hub/02.avro'")"
[ "$n" -gt 0 ] && [ "$n" -lt 3000 ] || fail "the records before the corrupt block: $n of 3000"
assert_eq "$lo $hi" "5001 $((5000 + n))" "the records stored are those before the corrupt block, once each"
echo "   $n of 3000 records before the corrupt block stored: $(q "SELECT error FROM iotstream.source_files WHERE path = 'ns/hub/02.avro'")"
q "SELECT iotstream.drop_source('it28av')" >/dev/null
echo "ok"

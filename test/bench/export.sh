#!/usr/bin/env bash
# Upload throughput of the export path to Azurite against one curl Put Blob
# of the same bytes, same run.
#
#   test/bench/export.sh [MiB]        (default 256)
#
# Ours: iotstream._export_upload_file(file, url, credential), the block path
#   every export uses (16 MiB Put Block requests with Content-MD5, 4 in
#   parallel on kept-alive connections, then Put Block List), wall clock
#   seen by psql.
# The peer: one `curl` Put Blob of the same file (SharedKey signed), the
#   anchor FACTS.md gives (~137 MiB/s for 256 MiB here).
# A second peer speaks our protocol: `curl` Put Block of each 16 MiB piece in
#   turn, then Put Block List.  A streaming export sends a file with one
#   Put Blob only when it fits in one block (the length and Content-MD5 are
#   known only once it is complete); a 256 MiB file takes the block path.
# Each side runs twice, alternating; the best of each is reported.
# Then, for reference, run_export of 1,000,000 narrow rows (one hourly
# period) to a local folder and to Azurite.
# Uses the cluster of PGHOST/PGPORT if set, else starts a throwaway one.
set -euo pipefail
cd "$(dirname "$0")/../.."
MB=${1:-256}

[ -n "${PGPORT:-}" ] || { . tools/cluster.sh; bench_cluster_start export; }
. test/integration/lib.sh
OUT=$(mktemp -d /tmp/iotstream-bench-export.XXXXXX)
chown postgres: "$OUT" 2>/dev/null || chmod 777 "$OUT"
cleanup() {
  stop_azurite
  rm -rf "$OUT"
  [ -z "${BENCH_CLUSTER:-}" ] || bench_cluster_stop
}
trap cleanup EXIT

pg() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
now_ns() { date +%s%N; }
rate() { awk "BEGIN { printf \"%.1f\", $MB / (($2 - $1) / 1e9) }"; }

start_azurite
azurite_request PUT "/bench?restype=container" | tail -n 1 | grep -q 201 || fail "could not create the container"
head -c $((MB * 1024 * 1024)) /dev/urandom >"$OUT/data.bin"
chmod 644 "$OUT/data.bin"
pg <<SQL >/dev/null
DELETE FROM iotstream.storage_credentials WHERE name = 'bench_azurite';
SELECT iotstream.create_storage_credential('bench_azurite', 'shared_key', account => '$AZURITE_ACCOUNT', key => '$AZURITE_KEY');
SQL

split -b $((16 * 1024 * 1024)) -d -a 4 "$OUT/data.bin" "$OUT/piece."
# curl_blocks NAME: every piece with Put Block, then Put Block List
curl_blocks() {
  local name=$1 f id xml='<?xml version="1.0" encoding="utf-8"?><BlockList>'
  for f in "$OUT"/piece.*; do
    id=$(printf '%012d' $((10#${f##*.})) | base64)
    [ "$(azurite_request PUT "/bench/$name?blockid=$id&comp=block" "$f" | tail -n 1)" = 201 ] || fail "curl Put Block failed"
    xml="$xml<Latest>$id</Latest>"
  done
  echo "$xml</BlockList>" >"$OUT/list.xml"
  [ "$(azurite_request PUT "/bench/$name?comp=blocklist" "$OUT/list.xml" | tail -n 1)" = 201 ] || fail "curl Put Block List failed"
}

best_ours=0 best_peer=0 best_blocks=0
for round in 1 2; do
  t0=$(now_ns)
  pg -c "SELECT iotstream._export_upload_file('$OUT/data.bin', '$AZURITE_BLOB_URL/bench/ours-$round.bin', 'bench_azurite')" >/dev/null
  t1=$(now_ns)
  ours=$(rate "$t0" "$t1")
  t0=$(now_ns)
  status=$(azurite_request PUT "/bench/peer-$round.bin" "$OUT/data.bin" | tail -n 1)
  t1=$(now_ns)
  [ "$status" = 201 ] || fail "curl Put Blob answered $status"
  peer=$(rate "$t0" "$t1")
  t0=$(now_ns)
  curl_blocks "blocks-$round.bin"
  t1=$(now_ns)
  blocks=$(rate "$t0" "$t1")
  echo "   round $round: iotstream $ours MiB/s, curl Put Blob $peer MiB/s, curl Put Block x $(ls "$OUT"/piece.* | wc -l) + list $blocks MiB/s"
  best_ours=$(awk "BEGIN { print ($ours > $best_ours) ? $ours : $best_ours }")
  best_peer=$(awk "BEGIN { print ($peer > $best_peer) ? $peer : $best_peer }")
  best_blocks=$(awk "BEGIN { print ($blocks > $best_blocks) ? $blocks : $best_blocks }")
  # keep Azurite's memory in check between rounds
  for b in ours peer blocks; do azurite_request DELETE "/bench/$b-$round.bin" >/dev/null; done
done
printf '%-36s %11s %11s %7s\n' "upload of $MB MiB to Azurite" "iotstream" "peer" "ratio"
printf '%-36s %5s MiB/s %5s MiB/s %6sx\n' "vs one curl Put Blob" "$best_ours" "$best_peer" \
  "$(awk "BEGIN { printf \"%.2f\", $best_ours / $best_peer }")"
printf '%-36s %5s MiB/s %5s MiB/s %6sx\n' "vs curl Put Block in turn + list" "$best_ours" "$best_blocks" \
  "$(awk "BEGIN { printf \"%.2f\", $best_ours / $best_blocks }")"
echo "   (best of 2 each; ratio = ours / peer)"

# end to end, for reference: one hour of 1,000,000 narrow rows
pg <<SQL >/dev/null
SELECT iotstream.drop_export(name) FROM iotstream.exports WHERE name IN ('bench_local', 'bench_azurite');
DROP TABLE IF EXISTS bench_export_rows;
SELECT iotstream.create_stream_table('bench_export_rows', 'ts timestamptz NOT NULL, device int, temperature float8, status text', 'ts', '1 day');
SELECT iotstream.ensure_partitions('bench_export_rows', date_trunc('day', now()) - interval '1 day', now());
INSERT INTO bench_export_rows SELECT date_trunc('day', now()) - interval '1 day' + g * interval '3.6 ms', g % 1000,
       20 + (g % 1000) * 0.01, CASE WHEN g % 97 = 0 THEN 'alarm' ELSE 'ok' END FROM generate_series(0, 999999) g;
VACUUM ANALYZE bench_export_rows;
SELECT iotstream.create_export('bench_local', 'bench_export_rows', 'file://$OUT/lake', schedule => NULL);
SELECT iotstream.create_export('bench_azurite', 'bench_export_rows', '$AZURITE_BLOB_URL/bench/lake', credential => 'bench_azurite', schedule => NULL);
SQL
for e in bench_local bench_azurite; do
  t0=$(now_ns)
  r=$(pg -c "SELECT sum(rows) || ' rows, ' || sum(bytes) || ' bytes, ' || sum(files) || ' file(s)' FROM iotstream.run_export('$e') WHERE rows > 0")
  t1=$(now_ns)
  printf '   run_export %-14s %s in %.2f s\n' "$e:" "$r" "$(awk "BEGIN { print ($t1 - $t0) / 1e9 }")"
done
pg -c "SELECT iotstream.drop_export('bench_local')" -c "SELECT iotstream.drop_export('bench_azurite')" \
   -c "DROP TABLE bench_export_rows" -c "SELECT iotstream.drop_storage_credential('bench_azurite')" >/dev/null

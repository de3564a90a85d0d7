#!/usr/bin/env bash
# Ingestion throughput and latency, against the peers measured in this run:
#   COPY     COPY FROM a file holding the same rows (the limit)
#   peer     kcat -C ... | psql COPY into a jsonb staging table, then
#            INSERT ... SELECT into the stream table (what users write today)
#   iotstream  the source worker: broker -> decode -> partitions -> commit
# for wide seed-002 events (complexData as jsonb) and narrow seed-004
# telemetry; then produce-to-commit latency at a steady 10,000 msg/s, from
# each message's produce timestamp to its transaction's commit timestamp
# (track_commit_timestamp, which make bench turns on).
#   WIDE=200000 NARROW=1000000 test/bench/ingest.sh   (run by make bench)
#   WORKERS=2 ...: the source uses two workers in one consumer group
#   SHAPES=narrow, SOURCE_OPTS=', "fetch.wait.max.ms": "5"': one shape, more options
# With narrow, the stream is read again without and with a dedup key (the
# default dedup_memory and DEDUP_SMALL, 8MB), in DEDUP_ROUNDS rounds (3) of
# the three: dedup on against dedup off, the best of each, in the same run.
set -euo pipefail
. "$(dirname "$0")/../integration/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

WIDE=${WIDE:-200000}
NARROW=${NARROW:-1000000}
LAT_RATE=${LAT_RATE:-10000}
LAT_SECONDS=${LAT_SECONDS:-20}

# 64 partitions: the broker keeps ~5 MiB each, and everything is produced
# before the consumers start
start_broker --topic wide:64 --topic narrow:64 --topic latency:8
DATA=$(mktemp -d /tmp/iotstream-bench.XXXXXX)
chmod 777 "$DATA"
trap 'rm -rf "$DATA"; _lib_cleanup' EXIT

psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;
SELECT iotstream.create_stream_table('bench.wide',
  'event_id uuid NOT NULL, complex_data jsonb, value float8, device_id text NOT NULL,
   device_sequence_number bigint, type text, created_at timestamptz NOT NULL',
  'created_at', max_past => '3650 days', retention => NULL);
SELECT iotstream.create_stream_table('bench.narrow',
  'ts timestamptz NOT NULL, sensor_id text NOT NULL, metric_type text NOT NULL, value float8',
  'ts', max_past => '3650 days', retention => NULL);
SELECT iotstream.create_stream_table('bench.latency',
  'ts timestamptz NOT NULL, sensor_id text NOT NULL, metric_type text NOT NULL, value float8, produced_at timestamptz',
  'ts', max_past => '3650 days', retention => NULL);
-- two days of data, as in the anchor figures: the partitions exist up front for every contender
SELECT iotstream.ensure_partitions('bench.' || t, '2026-11-01', '2026-11-03') FROM unnest(ARRAY['wide', 'narrow']) t;
CREATE UNLOGGED TABLE bench.staging (doc jsonb);
SQL

declare -A rate_copy rate_peer rate_iot
SHAPES=${SHAPES:-wide narrow}
for shape in $SHAPES; do
  if [ $shape = wide ]; then
    n=$WIDE fmt=event devices=1000 step=$(( 172800000 * 1000 / WIDE ))ms
    cols="(doc->>'eventId')::uuid, doc->'complexData', (doc->>'value')::float8, doc->>'deviceId',
          (doc->>'deviceSequenceNumber')::bigint, doc->>'type', (doc->>'createdAt')::timestamptz"
    mapping=NULL
  else
    n=$NARROW fmt=telemetry devices=1000 step=$(( 172800000 * 1000 / NARROW ))ms
    cols="(doc->>'timestamp')::timestamptz, doc->>'sensor_id', doc->>'metric_type', (doc->>'value')::float8"
    mapping="'{\"ts\": \"timestamp\"}'"
  fi
  echo "== $shape: $n messages"
  "$IOTSTREAM_SIM" --brokers "$BROKERS" --topic $shape --format $fmt --count "$n" --devices $devices \
    --time-step "$step" --start-time 2026-11-01T00:00:00Z --no-per-device >"$DATA/$shape.json"

  # iotstream: from the first committed batch to the last row
  q "SELECT iotstream.create_source('bench_$shape', '$BROKERS', ARRAY['$shape'], 'bench.$shape', $mapping,
       '{\"batch_size\": 10000, \"batch_ms\": 100, \"workers\": ${WORKERS:-1}${SOURCE_OPTS:-}}')" >/dev/null
  q "SELECT iotstream.start_source('bench_$shape')" >/dev/null
  # progress from the stored offsets (the topic starts at offset 0): a
  # count(*) every 0.2 s would take CPU from the worker it measures
  consumed="SELECT coalesce(sum(o.next_offset), 0) FROM iotstream.source_offsets o
    JOIN iotstream.sources s USING (source_id) WHERE s.name = 'bench_$shape'"
  wait_for "SELECT ($consumed) > 0" 60
  t0=$(now_ms)
  c0=$(q "$consumed")
  wait_for "SELECT ($consumed) >= $n" 240
  t1=$(now_ms)
  q "SELECT iotstream.stop_source('bench_$shape')" >/dev/null
  assert_eq "$(q "SELECT count(*) FROM bench.$shape")" "$n" "iotstream stored every $shape message"
  rate_iot[$shape]=$(( (n - c0) * 1000 / (t1 - t0) ))

  # COPY FROM a file holding the same rows
  q "COPY (SELECT * FROM bench.$shape) TO '$DATA/$shape.csv' (FORMAT csv)"
  q "TRUNCATE bench.$shape"
  t0=$(now_ms)
  q "COPY bench.$shape FROM '$DATA/$shape.csv' (FORMAT csv)"
  t1=$(now_ms)
  rate_copy[$shape]=$(( n * 1000 / (t1 - t0) ))

  # the peer: kcat into a jsonb staging table, then INSERT ... SELECT
  q "TRUNCATE bench.$shape, bench.staging"
  t0=$(now_ms)
  kcat -C -b "$BROKERS" -t $shape -o beginning -e -q -f '%s\n' |
    psql -X -q -v ON_ERROR_STOP=1 -c "COPY bench.staging (doc) FROM STDIN (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')"
  q "INSERT INTO bench.$shape SELECT $cols FROM bench.staging"
  t1=$(now_ms)
  assert_eq "$(q "SELECT count(*) FROM bench.$shape")" "$n" "the peer stored every $shape message"
  rate_peer[$shape]=$(( n * 1000 / (t1 - t0) ))
  q "TRUNCATE bench.$shape, bench.staging"
done

# the narrow stream again, deduplicated on (sensor_id, metric_type, ts): with
# the default dedup_memory (64MB: 980,000 keys in the hash table, the rest
# behind a filter) and bounded below that (DEDUP_SMALL, so that most keys
# are behind filters); rounds of off, 64MB and DEDUP_SMALL, the best of each
declare -A rate_dd cpu_dd
# CPU time of a process in ms (utime + stime)
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$1/stat" 2>/dev/null || echo 0; }
DEDUP_SMALL=${DEDUP_SMALL:-8MB}
DEDUP_ROUNDS=${DEDUP_ROUNDS:-3}
case " $SHAPES " in *" narrow "*)
  runs=()
  for _ in $(seq "$DEDUP_ROUNDS"); do runs+=(off 64MB "$DEDUP_SMALL"); done
  for mem in "${runs[@]}"; do
    name=bench_dd_${mem//[^0-9A-Za-z]/}_$RANDOM
    case $mem in
      off*) opts= ;;
      *) opts=", \"dedup_key\": [\"sensor_id\", \"metric_type\", \"ts\"], \"dedup_horizon\": \"1 hour\", \"dedup_memory\": \"$mem\"" ;;
    esac
    echo "== narrow, dedup $mem"
    q "TRUNCATE bench.narrow"
    q "CHECKPOINT"
    q "SELECT iotstream.create_source('$name', '$BROKERS', ARRAY['narrow'], 'bench.narrow', '{\"ts\": \"timestamp\"}',
         '{\"batch_size\": 10000, \"batch_ms\": 100$opts}')" >/dev/null
    q "SELECT iotstream.start_source('$name')" >/dev/null
    consumed="SELECT coalesce(sum(o.next_offset), 0) FROM iotstream.source_offsets o
      JOIN iotstream.sources s USING (source_id) WHERE s.name = '$name'"
    wait_for "SELECT ($consumed) > 0" 60
    t0=$(now_ms)
    c0=$(q "$consumed")
    wpid=$(q "SELECT pids[1] FROM iotstream.source_status WHERE source = '$name'")
    w0=$(cpu_ms "$wpid")
    wait_for "SELECT ($consumed) >= $NARROW" 240
    t1=$(now_ms)
    w1=$(cpu_ms "$wpid")
    assert_eq "$(q "SELECT count(*) + (SELECT duplicates FROM iotstream.source_status WHERE source = '$name')
                      FROM bench.narrow")" "$NARROW" "dedup $mem: every narrow message stored or counted as a duplicate"
    r=$(( (NARROW - c0) * 1000 / (t1 - t0) ))
    k=$mem
    [ "${rate_dd[$k]:-0}" -ge "$r" ] || rate_dd[$k]=$r
    # the worker's CPU per million rows: what dedup costs, whatever else runs
    c=$(( (w1 - w0) * 1000000 / (NARROW - c0) ))
    [ -n "${cpu_dd[$k]:-}" ] && [ "${cpu_dd[$k]}" -le "$c" ] || cpu_dd[$k]=$c
    echo "   $r rows/s, worker CPU $c ms per million rows"
    q "SELECT iotstream.drop_source('$name')" >/dev/null
  done
  q "TRUNCATE bench.narrow"
  ;;
esac

if [ "$LAT_SECONDS" -gt 0 ]; then
  echo "== latency: $LAT_RATE msg/s for $LAT_SECONDS s (narrow, batch_ms 20)"
  q "SELECT iotstream.create_source('bench_latency', '$BROKERS', ARRAY['latency'], 'bench.latency',
       '{\"ts\": \"timestamp\", \"produced_at\": \"\$timestamp\"}', '{\"batch_size\": 10000, \"batch_ms\": 20${LAT_OPTS:-}}')" >/dev/null
  q "SELECT iotstream.start_source('bench_latency')" >/dev/null
  # the group join takes a few seconds: let it settle before the clock starts
  "$IOTSTREAM_SIM" --brokers "$BROKERS" --topic latency --format telemetry --count 100 --seed 9 >/dev/null
  wait_for "SELECT count(*) >= 100 FROM bench.latency" 60
  pid=$(q "SELECT pids[1] FROM iotstream.source_status WHERE source = 'bench_latency'")
  rss0=$(awk '/RssAnon/ {print $2}' /proc/$pid/status)
  q "TRUNCATE bench.latency"
  # one reading per sensor per second: event time follows the wall clock
  "$IOTSTREAM_SIM" --brokers "$BROKERS" --topic latency --format telemetry --rate "$LAT_RATE" \
    --devices "$LAT_RATE" --time-step 1s \
    --duration "$LAT_SECONDS" --seed 10 --no-per-device >"$DATA/latency.json" &
  sim=$!
  # the worker's resident memory every 10 s while the stream runs
  rss_samples=
  while kill -0 $sim 2>/dev/null; do
    rss_samples="$rss_samples $(awk '/RssAnon/ {print $2}' /proc/$pid/status)"
    for _ in $(seq 50); do kill -0 $sim 2>/dev/null || break; sleep 0.2; done
  done
  wait $sim
  total=$(json_get "$(cat "$DATA/latency.json")" good)
  wait_for "SELECT sum(o.next_offset) >= $total + 100 FROM iotstream.source_offsets o
    JOIN iotstream.sources s USING (source_id) WHERE s.name = 'bench_latency'" 60
  assert_eq "$(q "SELECT count(*) FROM bench.latency")" "$total" "iotstream stored every latency message"
  rss1=$(awk '/RssAnon/ {print $2}' /proc/$pid/status)
  read -r p50 p99 pmax <<<"$(q "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY l)), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY l)), round(max(l))
    FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin) - produced_at) * 1000 AS l FROM bench.latency) x" | tr '|' ' ')"
fi

printf '\n%-8s %14s %14s %14s %10s %10s\n' shape "COPY rows/s" "peer rows/s" "iotstream" "vs COPY" "vs peer"
for shape in $SHAPES; do
  printf '%-8s %14d %14d %14d %10s %10s\n' $shape "${rate_copy[$shape]}" "${rate_peer[$shape]}" "${rate_iot[$shape]}" \
    "$(awk "BEGIN {printf \"%.2fx\", ${rate_iot[$shape]} / ${rate_copy[$shape]}}")" \
    "$(awk "BEGIN {printf \"%.2fx\", ${rate_iot[$shape]} / ${rate_peer[$shape]}}")"
done
if [ -n "${rate_dd[off]:-}" ]; then
  printf '\nnarrow, dedup off (best of %d)         %10d rows/s  worker CPU %5d ms per million rows\n' \
    "$DEDUP_ROUNDS" "${rate_dd[off]}" "${cpu_dd[off]}"
  for mem in 64MB "$DEDUP_SMALL"; do
    printf 'narrow, dedup on, dedup_memory %-6s %10d rows/s  %sx of dedup off; CPU %5d ms, %sx of dedup off\n' \
      "$mem" "${rate_dd[$mem]}" "$(awk "BEGIN {printf \"%.2f\", ${rate_dd[$mem]} / ${rate_dd[off]}}")" \
      "${cpu_dd[$mem]}" "$(awk "BEGIN {printf \"%.2f\", ${cpu_dd[off]} / (${cpu_dd[$mem]} + 0.001)}")"
  done
fi
echo
if [ "$LAT_SECONDS" -gt 0 ]; then
  echo "latency at $LAT_RATE msg/s over $total messages: p50 ${p50} ms, p99 ${p99} ms, max ${pmax} ms"
  # RssAnon: the private memory; VmRSS also counts the shared buffers it touched
  echo "worker private memory (RssAnon): ${rss0} kB before, ${rss1} kB after $LAT_SECONDS s; every 10 s (kB):$rss_samples"
fi
q "SELECT iotstream.drop_source(s) FROM unnest(ARRAY['bench_wide', 'bench_narrow', 'bench_latency']) s
  WHERE s IN (SELECT name FROM iotstream.sources)" >/dev/null

#!/usr/bin/env bash
# Continuous detection, against the same ingestion without it, in this run:
#  1. ingest rate of the narrow seed-004 stream into a table with no rules
#     and into one with 3 rules (threshold_count, zscore, spike_dip) and 1
#     rollup, from the same topic, twice each in turn (no rules, rules, no
#     rules, rules: two tables with the same rules); prints every rate and
#     the ratio of the best with rules to the best without (target >= 0.85);
#  2. alert latency at a steady 10,000 msg/s: from the moment a window
#     became closable (the produce time of the first message whose event
#     time passes window end + lateness) to the commit of its anomaly row,
#     which is when NOTIFY is delivered (track_commit_timestamp, which
#     make bench turns on).
#   DETECT_N=1500000 LAT_RATE=10000 LAT_SECONDS=30 test/bench/detect.sh
# PERF_OUT=/tmp/p records perf profiles of the workers while they ingest
# (/tmp/p.plain: the source worker; /tmp/p.detect: it and the detection worker).
set -euo pipefail
. "$(dirname "$0")/../integration/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# The mock broker keeps about 5 MiB per partition (FACTS.md): 64 partitions
# hold 1.5M narrow messages, enough for a few seconds of ingest per contender
# (the 0.2 s polls that start and stop each clock then matter little).
N=${DETECT_N:-1500000}
DEVICES=${DETECT_DEVICES:-200}
LAT_RATE=${LAT_RATE:-10000}
LAT_SECONDS=${LAT_SECONDS:-30}
# which of the detection parts to run on the detect table (all by default)
PARTS=" ${DETECT_PARTS:-seed004 zscore spike rollup} "

start_broker --brokers 1 --topic dnarrow:${DETECT_PARTITIONS:-64} --topic dlatency:8
DATA=$(mktemp -d /tmp/iotstream-bench.XXXXXX)
trap 'rm -rf "$DATA"; _lib_cleanup' EXIT

fresh_schema dbench
psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
SELECT iotstream.create_stream_table('dbench.' || t,
  'ts timestamptz NOT NULL, sensor_id text NOT NULL, metric_type text NOT NULL, value float8, produced_at timestamptz',
  'ts', max_past => '3650 days', retention => NULL)
  FROM unnest(ARRAY['plain', 'detect', 'detect2', 'latency']) t;
SELECT iotstream.ensure_partitions('dbench.' || t, '2026-11-01', '2026-11-02')
  FROM unnest(ARRAY['plain', 'detect', 'detect2', 'latency']) t;
SQL
# part NAME SQL: one of the detection parts, on both tables with rules; in
# SQL, @t is the table (detect, detect2) and @s the suffix of names ('', _2)
part() {
  local t s
  case "$PARTS" in *" $1 "*) ;; *) return 0 ;; esac
  for t in detect detect2; do
    s=${t#detect}
    q "$(sed "s/@t/$t/g; s/@s/${s:+_$s}/g" <<<"$2")" >/dev/null
  done
}
part seed004 "SELECT iotstream.create_rule('dbench_seed004@s', 'dbench.@t', 'value', ARRAY['sensor_id'], 'threshold_count',
  '{\"threshold\": 100, \"min_count\": 5}', filter => 'metric_type = ''temperature''', lateness => '10 minutes')"
part zscore "SELECT iotstream.create_rule('dbench_zscore@s', 'dbench.@t', 'value', ARRAY['sensor_id'], 'zscore',
  '{\"threshold\": 5, \"history\": 10}', filter => 'metric_type = ''temperature''', lateness => '10 minutes')"
part spike "SELECT iotstream.create_rule('dbench_spike@s', 'dbench.@t', 'value', ARRAY['sensor_id'], 'spike_dip',
  '{\"confidence\": 99.9, \"history_size\": 100}', filter => 'metric_type = ''temperature''', lateness => '10 minutes')"
part rollup "SELECT iotstream.create_rollup('dbench.@t_1m', 'dbench.@t', ARRAY['sensor_id', 'metric_type'],
  ARRAY['value'], bucket => '1 minute', lateness => '10 minutes')"
q "SELECT iotstream.create_rule('dbench_latency', 'dbench.latency', 'value', ARRAY['sensor_id'], 'threshold_count',
  '{\"threshold\": 100, \"min_count\": 5}', filter => 'metric_type = ''temperature''', lateness => '5 seconds')" >/dev/null


echo "== ingest: $N narrow seed-004 messages, $DEVICES sensors at 1 s, bursts and spikes"
bursts=()
for m in 1 3 5 7; do bursts+=(--burst "$m,2026-11-01T00:0$m:00Z"); done
"$IOTSTREAM_SIM" --brokers "$BROKERS" --topic dnarrow --format telemetry --count "$N" --devices "$DEVICES" \
  --start-time 2026-11-01T00:00:00Z "${bursts[@]}" --spike 5,2026-11-01T00:04:00Z --no-per-device >"$DATA/narrow.json"
good=$(json_get "$(cat "$DATA/narrow.json")" good)

# One broker and small fetches per partition keep the 16 partitions' event
# times close together, as a live stream's are (a consumer that drains one
# partition's backlog first moves the watermark past the others and makes
# their rows late); both contenders use the same options.
# The table without rules is measured before and after the one with them.
# CPU time of a process in ms (utime + stime): what each worker costs,
# whatever else shares the two cores
cpu_ms() { [ -n "$1" ] && awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$1/stat" 2>/dev/null || echo 0; }
declare -A rate cpu dcpu
for run in plain detect plain2 detect2; do
  t=$run; [ "$run" = plain2 ] && t=plain
  [ "$run" = plain2 ] && q "TRUNCATE dbench.plain"
  # every run starts with no dirty buffers: a checkpoint forced by the runs
  # before would otherwise land in whichever run comes next
  q "CHECKPOINT"
  q "SELECT iotstream.create_source('dbench_$run', '$BROKERS', ARRAY['dnarrow'], 'dbench.$t', '{\"ts\": \"timestamp\"}',
       '{\"batch_size\": 10000, \"batch_ms\": 100, \"max.partition.fetch.bytes\": \"16384\"}')" >/dev/null
  q "SELECT iotstream.start_source('dbench_$run')" >/dev/null
  # progress from the stored offsets: a count(*) every 0.2 s would take
  # CPU from the worker it measures
  consumed="SELECT coalesce(sum(o.next_offset), 0) FROM iotstream.source_offsets o
    JOIN iotstream.sources s USING (source_id) WHERE s.name = 'dbench_$run'"
  wait_for "SELECT ($consumed) > 0" 60
  t0=$(now_ms)
  c0=$(q "$consumed")
  wpid=$(q "SELECT pids[1] FROM iotstream.source_status WHERE source = 'dbench_$run'")
  dpid=$(q "SELECT pid FROM pg_stat_activity WHERE application_name = 'iotstream detection of $t'")
  [ "$t" = plain ] && dpid=
  w0=$(cpu_ms "$wpid"); d0=$(cpu_ms "$dpid")
  if [ -n "${PERF_OUT:-}" ] && [ "$run" != plain2 ]; then
    perf record -q -g -p "$wpid${dpid:+,$dpid}" -o "$PERF_OUT.$run" >/dev/null 2>&1 & perf_pid=$!
  fi
  wait_for "SELECT ($consumed) >= $(json_get "$(cat "$DATA/narrow.json")" produced)" 300
  t1=$(now_ms)
  [ "$t" = plain ] || wait_detected 'dbench\_%' 120
  w1=$(cpu_ms "$wpid"); d1=$(cpu_ms "$dpid")
  if [ -n "${perf_pid:-}" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; perf_pid=; fi
  cpu[$run]=$(( (w1 - w0) * 100000 / (good - c0) ))
  dcpu[$run]=$(( (d1 - d0) * 100000 / (good - c0) ))
  q "SELECT iotstream.stop_source('dbench_$run')" >/dev/null
  stored=$(q "SELECT count(*) FROM dbench.$t")
  [ "$stored" = "$good" ] || q "SELECT 'dead letters: ' || reason || ': ' || count(*) FROM iotstream.dead_letters GROUP BY reason UNION ALL SELECT format('status: %s', s) FROM iotstream.source_status s WHERE source = 'dbench_$run' UNION ALL SELECT format('ts range %s %s', min(ts), max(ts)) FROM dbench.$t"
  assert_eq "$stored" "$good" "$run: every message stored"
  rate[$run]=$(( (good - c0) * 1000 / (t1 - t0) ))
done
best() { [ "$1" -ge "$2" ] && echo "$1" || echo "$2"; }
plain=$(best "${rate[plain]}" "${rate[plain2]}")
with=$(best "${rate[detect]}" "${rate[detect2]}")
echo "rules: $(q "SELECT string_agg(format('%s %s windows, %s anomalies, %s late', rule, windows_evaluated, anomalies, late_rows), '; ' ORDER BY rule)
                 FROM iotstream.rule_status WHERE rule LIKE 'dbench%' AND rule <> 'dbench_latency'")"
echo "rollups: $(q "SELECT string_agg(format('%s %s rows merged, %s late', rollup, rows_merged, late_rows), '; ' ORDER BY rollup)
                   FROM iotstream.rollup_status WHERE rollup LIKE 'dbench.detect%'")"

printf '\n%-40s %12s\n' "narrow seed-004 ingest, in turn" "rows/s"
printf '%-40s %12d\n' "1. no rules" "${rate[plain]}" "2. with:$PARTS" "${rate[detect]}" \
  "3. no rules" "${rate[plain2]}" "4. with:$PARTS" "${rate[detect2]}"
printf '%-40s %12s\n' "ratio, best with / best without" "$(awk "BEGIN {printf \"%.2fx\", $with / $plain}")" \
  "(target >= 0.85)" ""
echo "CPU per 100,000 rows: source worker ${cpu[plain]} / ${cpu[detect]} / ${cpu[plain2]} / ${cpu[detect2]} ms" \
  "(in the order above); detection worker ${dcpu[detect]} / ${dcpu[detect2]} ms"

if [ "$LAT_SECONDS" -gt 0 ]; then
  echo "== alert latency: $LAT_RATE msg/s for $LAT_SECONDS s, 1000 sensors at 1 s, window 1 minute, lateness 5 s"
  q "SELECT iotstream.create_source('dbench_latency', '$BROKERS', ARRAY['dlatency'], 'dbench.latency',
       '{\"ts\": \"timestamp\", \"produced_at\": \"\$timestamp\"}', '{\"batch_size\": 10000, \"batch_ms\": 20}')" >/dev/null
  q "SELECT iotstream.start_source('dbench_latency')" >/dev/null
  # the group join takes a few seconds: let it settle before the clock starts
  "$IOTSTREAM_SIM" --brokers "$BROKERS" --topic dlatency --format telemetry --count 100 --devices 1000 \
    --time-step 1s --start-time 2026-11-01T00:00:00Z --seed 9 >/dev/null
  wait_for "SELECT count(*) >= 100 FROM dbench.latency" 60
  # event time runs 10x the wall clock (1000 sensors every second at 10,000 msg/s): a window closes every 6 s
  bursts=()
  for m in 1 2 3 4; do for d in 11 22 33 44 55; do bursts+=(--burst "$d,2026-11-01T00:0$m:30Z"); done; done
  "$IOTSTREAM_SIM" --brokers "$BROKERS" --topic dlatency --format telemetry --rate "$LAT_RATE" \
    --duration "$LAT_SECONDS" --devices 1000 --time-step 1s --start-time 2026-11-01T00:00:10Z --seed 10 \
    "${bursts[@]}" --no-per-device >"$DATA/latency.json"
  total=$(json_get "$(cat "$DATA/latency.json")" good)
  wait_for "SELECT count(*) >= $total + 100 FROM dbench.latency" 60
  wait_for "SELECT evaluated_until >= '2026-11-01 00:05' FROM iotstream.rule_status WHERE rule = 'dbench_latency'" 30
  read -r nlat p50 p99 pmax <<<"$(q "
    SELECT count(*), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY l)), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY l)),
           round(max(l))
      FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(a.xmin) -
                   (SELECT min(produced_at) FROM dbench.latency t WHERE t.ts >= a.window_end + interval '5 seconds')) * 1000 AS l
              FROM iotstream.anomalies a WHERE rule = 'dbench_latency') x" | tr '|' ' ')"
  assert_eq "$nlat" 20 "every injected burst raised its anomaly"

  echo
  echo "alert latency (window closable -> anomaly committed and NOTIFY sent) at $LAT_RATE msg/s over $nlat windows:"
  echo "  p50 ${p50} ms, p99 ${p99} ms, max ${pmax} ms (target p99 < 1000 ms)"
fi
q "SELECT iotstream.drop_source(name) FROM iotstream.sources WHERE name LIKE 'dbench%'" >/dev/null

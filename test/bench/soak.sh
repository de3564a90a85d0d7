#!/usr/bin/env bash
# Memory soak: a live seed-004 stream at SOAK_RATE msg/s (10,000) for
# SOAK_SECONDS (600) with 0.1% duplicates and 0.05% bad messages, a dedup
# key on three columns, two rules and a rollup, once per dedup horizon in
# SOAK_HORIZONS ("10 minutes" and "1 minute").
#
# Every 30 s it samples the private memory (RssAnon) of every iotstream
# process (launcher, source worker, detection worker) and prints each
# series.  Flat means: every sample after the first 3 minutes within 10% of
# the one at 3 minutes.  Then it checks exactness against what the
# simulator sent: rows = good messages, dead letters = bad ones, counted
# duplicates = re-sent ones, and the rollup equal to GROUP BY.
#   SOAK_SECONDS=600 SOAK_RATE=10000 test/bench/soak.sh
set -euo pipefail
. "$(dirname "$0")/../integration/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

SECONDS_RUN=${SOAK_SECONDS:-600}
RATE=${SOAK_RATE:-10000}
SAMPLE=${SOAK_SAMPLE:-30}
IFS=',' read -r -a HORIZONS <<<"${SOAK_HORIZONS:-10 minutes,1 minute}"
DEVICES=$RATE            # one reading per device a second: event time keeps pace with the clock

DATA=$(mktemp -d /tmp/iotstream-soak.XXXXXX)
trap 'rm -rf "$DATA"; _lib_cleanup' EXIT

# RssAnon in kB of a pid, or - if it is gone
rss_kb() { awk '/^RssAnon:/ { print $2; found = 1 } END { if (!found) print "-" }' "/proc/$1/status" 2>/dev/null || echo -; }

run=0
for horizon in "${HORIZONS[@]}"; do
  run=$((run + 1))
  topic=soak$run
  start_broker --brokers 1 --topic "$topic:8"
  fresh_schema soak
  psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
SELECT iotstream.create_stream_table('soak.t',
  'ts timestamptz NOT NULL, sensor_id text NOT NULL, metric_type text NOT NULL, value float8',
  'ts', max_past => '1 day', retention => NULL);
SELECT iotstream.create_rule('soak_threshold', 'soak.t', 'value', ARRAY['sensor_id'], 'threshold_count',
  '{"threshold": 100, "min_count": 5}', filter => 'metric_type = ''temperature''', lateness => '30 seconds');
SELECT iotstream.create_rule('soak_zscore', 'soak.t', 'value', ARRAY['sensor_id'], 'zscore',
  '{"threshold": 5, "history": 10}', filter => 'metric_type = ''temperature''', lateness => '30 seconds');
SELECT iotstream.create_rollup('soak.t_1m', 'soak.t', ARRAY['sensor_id', 'metric_type'], ARRAY['value'],
  bucket => '1 minute', lateness => '30 seconds');
SELECT iotstream.create_source('soak$run', '$BROKERS', ARRAY['$topic'], 'soak.t', '{"ts": "timestamp"}',
  '{"batch_size": 10000, "batch_ms": 100, "dedup_key": ["sensor_id", "metric_type", "ts"],
    "dedup_horizon": "$horizon"}');
SELECT iotstream.start_source('soak$run');
SQL
  wait_for "SELECT count(*) = 1 FROM iotstream.source_status WHERE source = 'soak$run' AND state = 'running'" 60

  echo "== soak $run: $RATE msg/s for $SECONDS_RUN s, dedup_horizon $horizon"
  "$IOTSTREAM_SIM" --brokers "$BROKERS" --topic "$topic" --format telemetry --rate "$RATE" \
    --duration "$SECONDS_RUN" --devices "$DEVICES" --duplicates 0.001 --bad 0.0005 \
    --bad-kinds not_json,truncated,wrong_type,bad_time,invalid_utf8,nul_byte \
    --seed "$run" --no-per-device >"$DATA/sim.json" &
  sim=$!
  echo "$sim" >>"$IOTSTREAM_PIDS"

  # the samples: one line per process, one column per sample
  declare -A series=() names=()
  t0=$(date +%s)
  n=0
  while :; do
    while read -r pid name; do
      [ -n "$pid" ] || continue
      names[$pid]=$name
      series[$pid]="${series[$pid]:-} $(rss_kb "$pid")"
    done < <(q "SELECT pid, CASE WHEN backend_type = 'iotstream source worker' THEN 'source'
                                 WHEN application_name LIKE 'iotstream detection%' THEN 'detection'
                                 ELSE replace(backend_type, ' ', '_') END
                  FROM pg_stat_activity WHERE backend_type LIKE 'iotstream%'" | tr '|' ' ')
    n=$((n + 1))
    kill -0 "$sim" 2>/dev/null || break
    # the next sample at t0 + n * SAMPLE (a clock, not a synchronisation)
    while [ "$(date +%s)" -lt $((t0 + n * SAMPLE)) ] && kill -0 "$sim" 2>/dev/null; do
      sleep 1
    done
  done
  wait "$sim" || fail "the simulator failed: $(cat "$DATA/sim.json")"
  S=$(cat "$DATA/sim.json")
  good=$(json_get "$S" good); dups=$(json_get "$S" duplicates); bad=$(json_get "$S" bad)
  produced=$(json_get "$S" delivered)
  wait_for "SELECT coalesce(sum(o.next_offset), 0) >= $produced FROM iotstream.source_offsets o
              JOIN iotstream.sources s USING (source_id) WHERE s.name = 'soak$run'" 300
  status=$(q "SELECT format('%s kB dedup memory, %s keys exact, %s behind filters', dedup_bytes / 1024,
                            dedup_keys, dedup_filtered_keys) FROM iotstream.source_status WHERE source = 'soak$run'")

  echo "RssAnon every ${SAMPLE}s (kB), from the start; flat = within 10% of the sample at 3 minutes after it"
  at3=$((180 / SAMPLE))   # the sample at 3 minutes (index from 0)
  for pid in "${!series[@]}"; do
    read -r -a s <<<"${series[$pid]}"
    verdict="too short"
    if [ "${#s[@]}" -gt $((at3 + 1)) ] && [ "${s[$at3]}" != - ]; then
      verdict=flat
      for v in "${s[@]:$at3}"; do
        [ "$v" = - ] && continue
        awk -v v="$v" -v b="${s[$at3]}" 'BEGIN { exit !(v > b * 1.1 || v < b * 0.9) }' && verdict="NOT flat"
      done
    fi
    printf '  %-22s pid %-7s %s: %s\n' "${names[$pid]}" "$pid" "$verdict" "${series[$pid]# }"
  done
  echo "  dedup at the end: $status"

  stored=$(q "SELECT count(*) FROM soak.t")
  counted=$(q "SELECT duplicates FROM iotstream.source_status WHERE source = 'soak$run'")
  dead=$(q "SELECT count(*) FROM iotstream.dead_letters WHERE source = 'soak$run'")
  assert_eq "$stored" "$good" "soak $run: every good message stored once"
  assert_eq "$counted" "$dups" "soak $run: every re-sent message counted as a duplicate"
  assert_eq "$dead" "$bad" "soak $run: every bad message a dead letter"
  # the rollup, once detection has passed the stream's end
  wait_for "SELECT pending_batches = 0 FROM iotstream.rollup_status WHERE rollup = 'soak.t_1m'" 300
  q "SELECT iotstream.refresh_rollup('soak.t_1m', min(ts), max(ts) + interval '1 minute') FROM soak.t" >/dev/null
  assert_eq "$(q "SELECT count(*) FROM (SELECT sensor_id, metric_type, date_bin('1 minute', ts, '2000-01-01') b,
                         count(*) n, min(value) lo, max(value) hi FROM soak.t GROUP BY 1, 2, 3) g
                    FULL JOIN soak.t_1m r ON r.sensor_id = g.sensor_id AND r.metric_type = g.metric_type
                                         AND r.bucket_start = g.b
                   WHERE g.n IS DISTINCT FROM iotstream.count(r.value) OR g.lo IS DISTINCT FROM iotstream.min(r.value)
                      OR g.hi IS DISTINCT FROM iotstream.max(r.value)")" 0 \
    "soak $run: the rollup equals GROUP BY"
  q "SELECT iotstream.drop_source('soak$run')" >/dev/null
  q "SELECT iotstream.drop_rule(r) FROM unnest(ARRAY['soak_threshold', 'soak_zscore']) r" >/dev/null
  q "SELECT iotstream.drop_rollup('soak.t_1m')" >/dev/null
  stop_broker
  unset series names
done

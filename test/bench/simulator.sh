#!/usr/bin/env bash
# Throughput of iotstream-sim against iotstream-broker, next to kcat
# producing the very same messages from a file, in the same run.
#
#   test/bench/simulator.sh [count]      (default 500000 messages per shape)
#
# Our figure: iotstream-sim generating and producing N messages, including
# the final flush (all delivery reports in).  The peer: `kcat -P -l FILE`
# producing the same N key/payload lines, written beforehand by
# iotstream-sim --output-file (file generation not timed).  Both write to a
# fresh 16-partition topic of one broker process.
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s tools
. test/integration/lib.sh
N=${1:-500000}
W=$IOTSTREAM_WORK/bench-sim
mkdir -p "$W"

start_broker --brokers 3 --topic ev_sim:16 --topic ev_kcat:16 --topic tel_sim:16 --topic tel_kcat:16
now_ns() { date +%s%N; }
# sum of the end offsets of a topic's 16 partitions
high_watermarks() {
  local q=() p
  for p in $(seq 0 15); do q+=(-t "$1:$p:-1"); done
  kcat -Q -b "$BROKERS" "${q[@]}" | awk '{ s += $NF } END { print s }'
}

printf '%-10s %12s %12s %8s %10s\n' shape sim_msg/s kcat_msg/s ratio bytes/msg
for shape in event telemetry; do
  t=${shape:0:3}
  args=(--format "$shape" --count "$N" --devices 1000 --start-time 2026-01-01T00:00:00Z
        --seed 7 --no-per-device)
  "$IOTSTREAM_SIM" "${args[@]}" --output-file "$W/$t.txt" >/dev/null
  bytes=$(( $(stat -c %s "$W/$t.txt") / N ))

  a=$(now_ns)
  S=$("$IOTSTREAM_SIM" "${args[@]}" --brokers "$BROKERS" --topic "${t}_sim")
  b=$(now_ns)
  [ "$(json_get "$S" delivered)" = "$N" ] || fail "simulator delivered $(json_get "$S" delivered) of $N"
  sim_rate=$(( N * 1000000000 / (b - a) ))

  a=$(now_ns)
  kcat -P -b "$BROKERS" -t "${t}_kcat" -K $'\t' -l "$W/$t.txt"
  b=$(now_ns)
  kcat_rate=$(( N * 1000000000 / (b - a) ))
  # every message of kcat's run must be in the topic, or its figure means nothing
  got=$(high_watermarks "${t}_kcat")
  [ "$got" = "$N" ] || fail "kcat produced $got of $N messages"
  printf '%-10s %12d %12d %8.2f %10d\n' "$shape" "$sim_rate" "$kcat_rate" \
    "$(awk "BEGIN { print $sim_rate / $kcat_rate }")" "$bytes"
  rm -f "$W/$t.txt"
done
stop_broker

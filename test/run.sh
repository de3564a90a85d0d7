#!/usr/bin/env bash
# make test: install what is missing, build and install, start a throwaway
# cluster, run pg_regress, the pgTAP suites and the integration scripts,
# stop everything, and exit non-zero on any failure.
# make bench (test/run.sh bench): the same cluster, running test/bench/*.sh.
# make test TESTS=ingest, make bench TESTS=ingest: a subset (see selected).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

tools/install-deps.sh || exit 1
. tools/cluster.sh

export IOTSTREAM_WORK=$ROOT/.tmp/test-$$
mkdir -p "$IOTSTREAM_WORK"
# Integration scripts record the pids of what they start here.
export IOTSTREAM_PIDS=$IOTSTREAM_WORK/pids
: >"$IOTSTREAM_PIDS"

cleanup() {
  local pid
  while read -r pid; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
  done <"$IOTSTREAM_PIDS"
  cluster_stop "$IOTSTREAM_WORK/cluster"
  [ -n "${PRIVATE_PG:-}" ] && rm -rf "$PRIVATE_PG"
  # nothing of ours may outlive the run
  while read -r pid; do
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  done <"$IOTSTREAM_PIDS"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

echo "== installing this build into a private copy of PostgreSQL"
private_install || exit 1
echo "== starting a throwaway cluster"
extra=
if [ "${1:-}" = bench ]; then
  # benchmarks read commit times to measure produce-to-commit latency
  extra="track_commit_timestamp = on"
else
  # glibc fills freed memory with this byte, in the server and in everything
  # else the tests start: a read of freed memory (say, of SPI's memory after
  # SPI_finish) then sees garbage every time instead of stale bytes that
  # usually still look right
  export MALLOC_PERTURB_=165
fi
cluster_start "$IOTSTREAM_WORK/cluster" iotstream_test "$extra" || exit 1
psql -X -q -c "CREATE EXTENSION IF NOT EXISTS pgtap" || exit 1
echo "   postgres on $PGHOST:$PGPORT, data in $CLUSTER_DATA"

# TESTS="detect export" runs only the suites whose file names contain one
# of the words (pg_regress counts as "regress"; a number such as 50 picks a
# stage); unset, everything runs.  ONLY is the older name of the same.
TESTS=${TESTS:-${ONLY:-}}
selected() {
  local w
  [ -z "${TESTS:-}" ] && return 0
  for w in $TESTS; do
    case "$1" in *"$w"*) return 0 ;; esac
  done
  return 1
}

# The server log from byte $1 on: what a suite made the server say.
log_since() {
  tail -c +$(($1 + 1)) "$CLUSTER_DATA/server.log" 2>/dev/null
}

# A server process that died on a signal or a PANIC is a crash, and a crash
# fails the suite in which it happened, whatever the suite itself checked.
# kill -9 of a source worker is the one the crash tests do on purpose.
crashes() {
  grep -E "terminated by signal|terminated by exception|exited with exit code [2-9]|PANIC" |
    grep -v '"iotstream source worker" (PID [0-9]*) was terminated by signal 9: Killed'
}

# After a crash the server recovers on its own; the next suite waits for it
# rather than failing at its first connection.
wait_server() {
  local i
  for i in $(seq 1 600); do
    psql -X -q -At -c "SELECT 1" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "!! the server did not accept connections again within 120 s"
  return 1
}

passed=0 failed=0 failures=()
# The last lines of the output name what failed (CI shows only the end).
summary() {
  local f
  for f in "${failures[@]}"; do echo "!! failed: $f"; done
  echo "$passed passed, $failed failed"
}
suite() {
  local name=$1 log0 crash ok=1
  shift
  echo "== $name"
  log0=$(stat -c %s "$CLUSTER_DATA/server.log" 2>/dev/null || echo 0)
  "$@" || ok=0
  crash=$(log_since "$log0" | crashes | head -1)
  if [ -n "$crash" ]; then
    ok=0
    echo "!! the server crashed during $name; its log up to the crash:"
    log_since "$log0" | grep -B 20 -A 2 -m 1 -F -- "$crash"
    df -h "$CLUSTER_DATA" /tmp | sed 's/^/   /'
    free -m | sed 's/^/   /'
  elif [ $ok = 0 ]; then
    echo "   the server's errors during $name (last 15):"
    log_since "$log0" | grep -E "ERROR|FATAL|PANIC" | tail -15
  fi
  if [ $ok = 1 ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name${crash:+ (server crash: ${crash#* LOG:  })}")
    echo "!! $name failed"
    wait_server
  fi
}

if [ "${1:-}" = bench ]; then
  for b in test/bench/*.sh; do
    [ -e "$b" ] || continue
    selected "$(basename "$b")" || continue
    suite "bench: $(basename "$b")" bash "$b"
  done
  summary
  [ "$failed" = 0 ]
  exit
fi

regress() {
  make -s PG_CONFIG="$PGBIN/pg_config" installcheck || {
    [ -f .tmp/regress/regression.diffs ] && head -200 .tmp/regress/regression.diffs
    return 1
  }
}
selected regress && suite "pg_regress" regress
if [ -z "${TESTS:-}" ]; then
  suite "pgTAP" pg_prove --ext .sql -f test/pgtap/
else
  taps=()
  for t in test/pgtap/*.sql; do selected "$(basename "$t")" && taps+=("$t"); done
  [ ${#taps[@]} -gt 0 ] && suite "pgTAP" pg_prove --ext .sql -f "${taps[@]}"
fi
for t in test/integration/[0-9]*.sh; do
  [ -e "$t" ] || continue
  selected "$(basename "$t")" || continue
  suite "integration: $(basename "$t")" bash "$t"
done

summary
[ "$failed" = 0 ]

#!/usr/bin/env bash
# make test: install what is missing, build and install, start a throwaway
# cluster, run pg_regress, the pgTAP suites and the integration scripts,
# stop everything, and exit non-zero on any failure.
# make bench (test/run.sh bench): the same cluster, running test/bench/*.sh.
# ONLY=ingest test/run.sh bench, ONLY=40_ingest test/run.sh: a subset.
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
# benchmarks read commit times to measure produce-to-commit latency
[ "${1:-}" = bench ] && extra="track_commit_timestamp = on"
cluster_start "$IOTSTREAM_WORK/cluster" iotstream_test "$extra" || exit 1
psql -X -q -c "CREATE EXTENSION IF NOT EXISTS pgtap" || exit 1
echo "   postgres on $PGHOST:$PGPORT, data in $CLUSTER_DATA"

passed=0 failed=0
# ONLY=substring runs just the suites whose name contains it
suite() {
  local name=$1
  shift
  case "$name" in *"${ONLY:-}"*) ;; *) return 0 ;; esac
  echo "== $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "!! $name failed"
  fi
}

if [ "${1:-}" = bench ]; then
  for b in test/bench/*.sh; do
    [ -e "$b" ] || continue
    suite "bench: $(basename "$b")" bash "$b"
  done
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
  exit
fi

regress() {
  make -s PG_CONFIG="$PGBIN/pg_config" installcheck || {
    [ -f regression.diffs ] && head -200 regression.diffs
    return 1
  }
}
suite "pg_regress" regress
suite "pgTAP" pg_prove --ext .sql -f test/pgtap/
for t in test/integration/[0-9]*.sh; do
  [ -e "$t" ] || continue
  suite "integration: $(basename "$t")" bash "$t"
done

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]

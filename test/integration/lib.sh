# test/integration/lib.sh: helpers for integration scripts; source it.
#
#   . "$(dirname "$0")/lib.sh"
#
# Everything started here is recorded in $IOTSTREAM_PIDS (one pid a line),
# which test/run.sh kills at the end even if a script dies half-way; the
# helpers also stop what they started when the sourcing script exits.
# Scratch files go to $IOTSTREAM_WORK (set by test/run.sh; a fresh temporary
# directory otherwise).
#
#   start_broker [iotstream-broker args]   start a broker; exports BROKERS
#   broker_cmd "down 1"                    send a command; fails unless "ok"
#   stop_broker                            quit it (all its data is gone)
#   start_mosquitto [config lines...]      an MQTT broker (Debian's mosquitto) with
#                                          persistence; exports MQTT_URL, MQTT_PORT
#   restart_mosquitto [down_s]             SIGTERM (it saves its sessions), wait,
#                                          start again on the same port
#   stop_mosquitto
#   mqtt_pub TOPIC [mosquitto_pub args]    publish stdin's lines, one message each
#   start_azurite                          exports AZURITE_BLOB_URL, AZURITE_PORT
#   stop_azurite
#   azurite_request METHOD PATH [FILE]     SharedKey-signed curl to Azurite;
#                                          prints the body, then the HTTP status
#                                          on the last line
#   free_port                              print a free loopback TCP port
#   wait_for "<sql boolean>" [timeout_s]   poll psql every 0.2 s until true
#   assert_eq ACTUAL EXPECTED "message"    compare, print, fail on mismatch
#   json_get JSON KEY[.KEY...]             print a value from a JSON document
#   fail "message"                         print and exit 1
#
# The simulator and broker binaries are $IOTSTREAM_SIM and $IOTSTREAM_BROKER.

IOTSTREAM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IOTSTREAM_BROKER=${IOTSTREAM_BROKER:-$IOTSTREAM_ROOT/tools/bin/iotstream-broker}
IOTSTREAM_SIM=${IOTSTREAM_SIM:-$IOTSTREAM_ROOT/tools/bin/iotstream-sim}
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
AZURITE_ACCOUNT=devstoreaccount1

_LIB_OWN_WORK=
if [ -z "${IOTSTREAM_WORK:-}" ]; then
  IOTSTREAM_WORK=$(mktemp -d /tmp/iotstream-it.XXXXXX)
  _LIB_OWN_WORK=$IOTSTREAM_WORK
fi
export IOTSTREAM_WORK
mkdir -p "$IOTSTREAM_WORK"
: "${IOTSTREAM_PIDS:=$IOTSTREAM_WORK/pids}"
export IOTSTREAM_PIDS
touch "$IOTSTREAM_PIDS"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

_lib_record_pid() {
  echo "$1" >>"$IOTSTREAM_PIDS"
}

# free_port, as_pg and PGBIN come from the cluster helpers
. "$IOTSTREAM_ROOT/tools/cluster.sh"

assert_eq() {
  local actual=$1 expected=$2 msg=${3:-value}
  if [ "$actual" = "$expected" ]; then
    echo "ok - $msg: $actual"
  else
    echo "not ok - $msg: got '$actual', expected '$expected'" >&2
    exit 1
  fi
}

# json_get '{"a":{"b":1}}' a.b  -> 1 (strings unquoted, objects as JSON)
json_get() {
  node -e '
    let v = JSON.parse(process.argv[1]);
    for (const k of process.argv[2].split(".")) v = v == null ? undefined : v[k];
    if (v === undefined) process.exit(1);
    process.stdout.write(typeof v === "object" ? JSON.stringify(v) : String(v));
  ' "$1" "$2"
}

# wait_for "<sql returning boolean>" [timeout_s, default 30]
wait_for() {
  local sql=$1 timeout=${2:-30} deadline r
  deadline=$(($(date +%s%N) + timeout * 1000000000))
  while :; do
    # a failed connection (a restarting server) is an answer of "not yet"
    r=$(psql -X -A -t -q -c "$sql" 2>/dev/null) || r=
    [ "$r" = t ] && return 0
    if [ "$(date +%s%N)" -gt "$deadline" ]; then
      echo "FAIL: timed out after ${timeout}s waiting for: $sql (last answer: '$r')" >&2
      exit 1
    fi
    sleep 0.2
  done
}

# Drops what an earlier run of a test left (its sources, rules, rollups and
# anomalies, named PREFIX..., and schema PREFIX) and creates the schema anew.
fresh_schema() {
  local p=$1
  psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
SELECT iotstream.drop_source(name) FROM iotstream.sources WHERE name LIKE '$p%';
SELECT iotstream.drop_rule(name) FROM iotstream.rules WHERE name LIKE '$p%';
SELECT iotstream.drop_rollup(name) FROM iotstream.rollups WHERE name LIKE '$p%';
DELETE FROM iotstream.anomalies WHERE rule LIKE '$p%';
DROP SCHEMA IF EXISTS $p CASCADE;
CREATE SCHEMA $p;
SQL
}

# Waits until the detection worker has caught up with the watermark for the
# rules and rollups whose names match a LIKE pattern: every rule evaluated
# up to its horizon, every rollup's batch deltas folded in.
wait_detected() {
  local like=$1 timeout=${2:-30}
  wait_for "SELECT coalesce(bool_and(evaluated_until = CASE WHEN detector IN ('spike_dip', 'change_point', 'ewma', 'cusum')
                    THEN watermark - lateness ELSE date_bin(\"window\", watermark - lateness, '2000-01-01') END), true)
              FROM iotstream.rule_status WHERE rule LIKE '$like' AND enabled" "$timeout"
  wait_for "SELECT coalesce(sum(pending_batches), 0) = 0 FROM iotstream.rollup_status WHERE rollup LIKE '$like'" "$timeout"
}

# --- broker ---------------------------------------------------------------
# The broker reads commands on a FIFO that this shell keeps open on fd
# $BROKER_FD, and answers one line per command into $BROKER_DIR/out, whose
# first line is the bootstrap list.

start_broker() {
  local i
  [ -x "$IOTSTREAM_BROKER" ] || fail "$IOTSTREAM_BROKER is not built (make tools)"
  BROKER_DIR=$(mktemp -d "$IOTSTREAM_WORK/broker.XXXXXX")
  mkfifo "$BROKER_DIR/in"
  "$IOTSTREAM_BROKER" "$@" <"$BROKER_DIR/in" >"$BROKER_DIR/out" 2>"$BROKER_DIR/err" &
  BROKER_PID=$!
  _lib_record_pid "$BROKER_PID"
  # opening the write end waits for the broker to open the read end
  exec {BROKER_FD}>"$BROKER_DIR/in"
  for i in $(seq 1 100); do
    if [ -s "$BROKER_DIR/out" ]; then
      BROKERS=$(head -n 1 "$BROKER_DIR/out")
      case "$BROKERS" in *:*) export BROKERS; return 0 ;; esac
    fi
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$BROKER_DIR/err" >&2
  fail "iotstream-broker did not print its bootstrap servers"
}

# broker_cmd "down 1": returns 0 on "ok", prints the answer otherwise.
broker_cmd() {
  local before after i answer
  [ -n "${BROKER_FD:-}" ] || fail "broker_cmd: no broker started"
  before=$(wc -l <"$BROKER_DIR/out")
  echo "$*" >&"$BROKER_FD"
  for i in $(seq 1 100); do
    after=$(wc -l <"$BROKER_DIR/out")
    if [ "$after" -gt "$before" ]; then
      answer=$(sed -n "$((before + 1))p" "$BROKER_DIR/out")
      [ "$answer" = ok ] && return 0
      echo "broker_cmd '$*': $answer" >&2
      return 1
    fi
    sleep 0.05
  done
  fail "broker_cmd '$*': no answer within 5 s"
}

stop_broker() {
  [ -n "${BROKER_PID:-}" ] || return 0
  echo quit >&"$BROKER_FD" 2>/dev/null || true
  exec {BROKER_FD}>&-
  wait_gone "$BROKER_PID" 50 || kill "$BROKER_PID" 2>/dev/null || true
  wait "$BROKER_PID" 2>/dev/null || true
  unset BROKER_PID BROKER_FD BROKERS
}

# --- Azurite (Azure Blob Storage emulator) --------------------------------

start_azurite() {
  local bin i try
  bin=$IOTSTREAM_ROOT/test/node/node_modules/azurite/dist/src/blob/main.js
  [ -f "$bin" ] || fail "azurite is not installed (tools/install-deps.sh)"
  AZURITE_DIR=$(mktemp -d "$IOTSTREAM_WORK/azurite.XXXXXX")
  # the port picked may be taken before Azurite binds it: another one then
  for try in 1 2 3; do
    AZURITE_PORT=$(free_port)
    (cd "$AZURITE_DIR" && exec node "$bin" --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" --inMemoryPersistence \
      --disableTelemetry --silent --skipApiVersionCheck >"$AZURITE_DIR/log" 2>&1) &
    AZURITE_PID=$!
    _lib_record_pid "$AZURITE_PID"
    AZURITE_BLOB_URL=http://127.0.0.1:$AZURITE_PORT/$AZURITE_ACCOUNT
    export AZURITE_PORT AZURITE_BLOB_URL AZURITE_KEY AZURITE_ACCOUNT
    for i in $(seq 1 150); do
      kill -0 "$AZURITE_PID" 2>/dev/null || break
      # our Azurite answering, not whatever else may listen there
      if curl -s -D - -o /dev/null "$AZURITE_BLOB_URL?comp=list" 2>/dev/null | grep -qi '^server: azurite' &&
          kill -0 "$AZURITE_PID" 2>/dev/null; then
        return 0
      fi
      sleep 0.2
    done
    grep -q EADDRINUSE "$AZURITE_DIR/log" || break
    kill "$AZURITE_PID" 2>/dev/null; wait "$AZURITE_PID" 2>/dev/null || true
  done
  cat "$AZURITE_DIR/log" >&2
  fail "azurite did not answer on port $AZURITE_PORT"
}

stop_azurite() {
  [ -n "${AZURITE_PID:-}" ] || return 0
  kill "$AZURITE_PID" 2>/dev/null || true
  wait "$AZURITE_PID" 2>/dev/null || true
  unset AZURITE_PID AZURITE_BLOB_URL
}

# azurite_request PUT "/cont?restype=container"; azurite_request PUT /cont/blob FILE
# PATH starts with the container; the query string, if any, is signed too.
azurite_request() {
  local method=$1 path=$2 file=${3:-} date version=2021-08-06 len= ctype= res q sig
  local -a extra=()
  date=$(LC_ALL=C TZ=GMT date '+%a, %d %b %Y %H:%M:%S GMT')
  res="/$AZURITE_ACCOUNT/$AZURITE_ACCOUNT${path%%\?*}"
  if [ "$path" != "${path#*\?}" ]; then
    q=${path#*\?}
    # canonicalized query: name:value lines sorted by name
    res="$res"$'\n'"$(tr '&' '\n' <<<"$q" | sed 's/=/:/' | LC_ALL=C sort)"
  fi
  if [ -n "$file" ]; then
    len=$(stat -c %s "$file")
    [ "$len" = 0 ] && len=
    ctype=application/octet-stream
    extra=(--data-binary "@$file" -H "Content-Type: $ctype" -H "x-ms-blob-type: BlockBlob")
  fi
  local hdrs="x-ms-date:$date"$'\n'"x-ms-version:$version"
  [ -n "$file" ] && hdrs="x-ms-blob-type:BlockBlob"$'\n'"$hdrs"
  sig=$(printf '%s\n\n\n%s\n\n%s\n\n\n\n\n\n\n%s\n%s' "$method" "$len" "$ctype" "$hdrs" "$res" |
    openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(base64 -d <<<"$AZURITE_KEY" | od -An -v -tx1 | tr -d ' \n')" -binary |
    base64 -w0)
  curl -s -X "$method" -w '\n%{http_code}\n' "${extra[@]}" \
    -H "x-ms-date: $date" -H "x-ms-version: $version" \
    -H "Authorization: SharedKey $AZURITE_ACCOUNT:$sig" "$AZURITE_BLOB_URL$path"
}

_lib_cleanup() {
  stop_broker
  stop_azurite
  stop_mosquitto
  # a work directory we made ourselves (run outside test/run.sh) goes too
  [ -n "$_LIB_OWN_WORK" ] && rm -rf "$_LIB_OWN_WORK"
  return 0
}
trap _lib_cleanup EXIT

# Run directly (test/run.sh runs every test/integration/*.sh), this file
# checks its own helpers; sourced, it stops here.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  p=$(free_port)
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then fail "free_port gave a port in use"; fi
  assert_eq "$(json_get '{"a":{"b":[1,"x"]}}' a.b.1)" x "json_get"
  if (assert_eq 1 2 "a mismatch" 2>/dev/null); then fail "assert_eq accepted 1 = 2"; fi
  start_broker --brokers 2 --topic lib:2
  assert_eq "$(tr ',' '\n' <<<"$BROKERS" | grep -c '^127\.0\.0\.1:[0-9]*$')" 2 "start_broker exports BROKERS"
  broker_cmd ping
  if broker_cmd "down 3" 2>/dev/null; then fail "broker_cmd returned 0 on an error answer"; fi
  pid=$BROKER_PID
  stop_broker
  if kill -0 "$pid" 2>/dev/null; then fail "stop_broker left the broker running"; fi
  wait_for "SELECT true" 5
  if (wait_for "SELECT false" 1 2>/dev/null); then fail "wait_for returned on false"; fi
  echo "ok - lib.sh helpers"
fi

# --- mosquitto (MQTT) --------------------------------------------------------
# One mosquitto per script, on a free loopback port, with persistence in
# $MQTT_DIR: a restart keeps the sessions and what they had not acknowledged.
# max_inflight_messages: mosquitto sends a client at most 20 unacknowledged
# QoS 1/2 messages by default, which would cap every batch at 20; and on a
# restart it restores at most that many in flight with their packet ids (it
# resends the others under new ids, which look new to a QoS 2 receiver).

start_mosquitto() {
  local line
  MQTT_DIR=${MQTT_DIR:-$(mktemp -d "$IOTSTREAM_WORK/mosquitto.XXXXXX")}
  MQTT_PORT=${MQTT_PORT:-$(free_port)}
  {
    echo "listener $MQTT_PORT 127.0.0.1"
    echo "allow_anonymous true"
    echo "persistence true"
    echo "persistence_location $MQTT_DIR/"
    echo "max_inflight_messages 65535"
    echo "max_queued_messages 0"
    echo "log_dest file $MQTT_DIR/log"
    echo "log_type error"
    echo "log_type warning"
    echo "log_type notice"
    for line in "$@"; do echo "$line"; done
  } >"$MQTT_DIR/mosquitto.conf"
  chmod 777 "$MQTT_DIR"
  touch "$MQTT_DIR/log" && chmod 666 "$MQTT_DIR/log"
  _mosquitto_run
  MQTT_URL=mqtt://127.0.0.1:$MQTT_PORT
  export MQTT_DIR MQTT_PORT MQTT_URL
}

_mosquitto_run() {
  local i
  /usr/sbin/mosquitto -c "$MQTT_DIR/mosquitto.conf" >>"$MQTT_DIR/out" 2>&1 &
  MQTT_PID=$!
  _lib_record_pid "$MQTT_PID"
  for i in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT") 2>/dev/null; then return 0; fi
    kill -0 "$MQTT_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$MQTT_DIR/out" "$MQTT_DIR/log" >&2
  fail "mosquitto did not listen on port $MQTT_PORT"
}

# restart_mosquitto [seconds down]: a graceful stop writes the persistence file
restart_mosquitto() {
  local down=${1:-0} until
  kill -TERM "$MQTT_PID"
  wait_gone "$MQTT_PID" 100 || fail "mosquitto did not stop"
  wait "$MQTT_PID" 2>/dev/null || true
  if [ "$down" -gt 0 ]; then
    until=$(($(date +%s) + down))
    # poll, and run what the caller passed in MQTT_WHILE_DOWN (a check)
    while [ "$(date +%s)" -lt "$until" ]; do
      if [ -n "${MQTT_WHILE_DOWN:-}" ]; then eval "$MQTT_WHILE_DOWN" || true; fi
      sleep 0.5
    done
  fi
  _mosquitto_run
}

stop_mosquitto() {
  [ -n "${MQTT_PID:-}" ] || return 0
  kill -TERM "$MQTT_PID" 2>/dev/null || true
  wait_gone "$MQTT_PID" 50 || kill -9 "$MQTT_PID" 2>/dev/null || true
  wait "$MQTT_PID" 2>/dev/null || true
  unset MQTT_PID
}

# mqtt_pub TOPIC [args]: each line of stdin is a message (mosquitto_pub -l)
mqtt_pub() {
  local topic=$1
  shift
  mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -t "$topic" -l "$@"
}

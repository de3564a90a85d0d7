# tools/cluster.sh: start and stop a PostgreSQL 15 cluster for iotstream.
# Sourced by test/run.sh and tools/demo.sh.  The cluster runs as the
# `postgres` user when we are root (initdb refuses root), listens on a free
# loopback port, and preloads iotstream and pg_cron.
#
#   cluster_start DIR DBNAME [extra postgresql.conf lines]
#       sets CLUSTER_DIR, PGHOST, PGPORT, PGUSER, PGDATABASE and writes them
#       to DIR/env; creates DBNAME with pg_cron and iotstream installed
#   cluster_stop DIR
#   private_install       copy PostgreSQL to a private directory, install this
#                         build there, and point PGBIN at it (see below)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

# PostgreSQL finds its libraries and share files relative to its binary, so
# a copy of the installation (50 MB, under a second) with this build in it
# lets runs of different builds share the machine without ever seeing each
# other's extension files.  It lives in /tmp: the postgres user must read it.
private_install() {
  PRIVATE_PG=$(mktemp -d /tmp/iotstream-pg.XXXXXX)
  chmod 755 "$PRIVATE_PG"
  mkdir -p "$PRIVATE_PG/usr/lib/postgresql" "$PRIVATE_PG/usr/share/postgresql"
  cp -a /usr/lib/postgresql/15 "$PRIVATE_PG/usr/lib/postgresql/" &&
    cp -a /usr/share/postgresql/15 "$PRIVATE_PG/usr/share/postgresql/" || return 1
  # build against the real headers, install into the copy
  make -s PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config all >/dev/null || return 1
  PGBIN=$PRIVATE_PG/usr/lib/postgresql/15/bin
  export PGBIN				# PRIVATE_PG stays ours: children must not remove it
  make -s PG_CONFIG="$PGBIN/pg_config" install >/dev/null
}

# wait_gone PID TENTHS: polls until PID is gone, for up to TENTHS tenths of
# a second; 0 when it is gone, 1 when it still runs.
wait_gone() {
  local pid=$1 i
  for i in $(seq 1 "$2"); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  ! kill -0 "$pid" 2>/dev/null
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A loopback port nobody uses. It is picked below the kernel's ephemeral
# range, where no outgoing connection can hold it as its local port (a
# listener cannot bind such a port: EADDRINUSE), and no socket in any state
# may have it. A caller that starts a server still retries on another port:
# other runs share the machine.
free_port() {
  local p i lo=32768 hi=60999
  read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  for i in $(seq 1 100); do
    if [ "$lo" -gt 12000 ]; then
      p=$((10000 + RANDOM % (lo - 10000)))
    else
      p=$((hi + 1 + RANDOM % (65000 - hi)))
    fi
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
    if command -v ss >/dev/null && [ -n "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]; then
      continue
    fi
    echo "$p"
    return 0
  done
  return 1
}

# DIR must be reachable by the postgres user; a project below /root is not,
# so the data then lives in /tmp and DIR/data is a link to it.
_cluster_data_dir() {
  local dir=$1 data
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
    if ! runuser -u postgres -- test -w "$dir"; then
      data=$(mktemp -d /tmp/iotstream-cluster.XXXXXX)
      chown postgres: "$data"
      ln -sfn "$data" "$dir/data"
      echo "$data"
      return
    fi
  fi
  echo "$dir/data"
}

cluster_start() {
  local dir=$1 db=$2 extra=${3:-} data port tries=0
  mkdir -p "$dir" && dir=$(cd "$dir" && pwd)
  data=$(_cluster_data_dir "$dir")
  if [ ! -e "$data/PG_VERSION" ]; then
    as_pg "$PGBIN/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        --no-sync >"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2
      return 1
    }
    # pg_cron's launcher gives up for good if its database is missing at
    # startup, so the database exists before the first start.
    echo "CREATE DATABASE \"$db\"" | as_pg "$PGBIN/postgres" --single -D "$data" postgres \
        >>"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2
      return 1
    }
  fi
  while :; do
    port=$(free_port)
    cat >"$data/postgresql.auto.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$data'
shared_preload_libraries = 'iotstream,pg_cron'
cron.database_name = '$db'
iotstream.database = '$db'
cron.use_background_workers = on
max_worker_processes = 32
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %b '
$extra
CONF
    if as_pg "$PGBIN/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null; then
      break
    fi
    tries=$((tries + 1))
    if [ $tries -ge 3 ]; then
      tail -20 "$data/server.log" >&2
      return 1
    fi
  done
  CLUSTER_DIR=$dir
  export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=$db
  cat >"$dir/env" <<ENV
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=$db
export CLUSTER_DATA=$data
ENV
  export CLUSTER_DATA=$data
  psql -X -q -v ON_ERROR_STOP=1 -d "$db" \
    -c "CREATE EXTENSION IF NOT EXISTS pg_cron" \
    -c "CREATE EXTENSION IF NOT EXISTS iotstream"
}

cluster_stop() {
  local dir=$1 data pid
  data=$dir/data
  [ -e "$data/postmaster.pid" ] || return 0
  as_pg "$PGBIN/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 && return 0
  as_pg "$PGBIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 && return 0
  # without pg_ctl (its binaries removed, say) signal the postmaster itself:
  # a server must never outlive the run that started it
  pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null) || return 0
  kill -INT "$pid" 2>/dev/null || return 0
  wait_gone "$pid" 100 && return 0
  kill -QUIT "$pid" 2>/dev/null
  sleep 1
  kill -KILL "$pid" 2>/dev/null
  return 0
}

# For a benchmark run on its own (make bench gives it PGHOST/PGPORT): without
# PGPORT, install this build privately and start .tmp/bench-NAME; the stop
# undoes only what the start did (a runner's private copy holds its server).
bench_cluster_start() {
  [ -n "${PGPORT:-}" ] && return 0
  private_install >/dev/null
  OWN_PRIVATE_PG=$PRIVATE_PG
  BENCH_CLUSTER=$(pwd)/.tmp/bench-$1
  cluster_start "$BENCH_CLUSTER" iotstream_bench >/dev/null
}

bench_cluster_stop() {
  [ -n "${BENCH_CLUSTER:-}" ] && cluster_stop "$BENCH_CLUSTER"
  [ -n "${OWN_PRIVATE_PG:-}" ] && rm -rf "$OWN_PRIVATE_PG"
  return 0
}

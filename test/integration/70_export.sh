#!/usr/bin/env bash
# Exports end to end against Azurite: shared key and SAS through pg_cron, the
# files read back by DuckDB and hyparquet and compared with the source rows;
# rerun is a no-op; late rows cause exactly one re-export; a wrong key fails
# clearly without the key; injected 503s with Retry-After are retried;
# Azurite stopped mid-export commits nothing and the ledger does not move,
# and the export completes after a restart; service principal and managed
# identity tokens reach storage as bearer tokens.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ROOT=$IOTSTREAM_ROOT
NODE_DIR=$ROOT/test/node
rnode() { (cd "$NODE_DIR" && node "$@"); }
pg() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
command -v zstd >/dev/null || fail "the zstd command is missing (hyparquet needs it): apt-get install zstd"

W=$(mktemp -d "$IOTSTREAM_WORK/export.XXXXXX")
chmod 777 "$W"
# what this script starts besides Azurite goes at exit too
OWN_PIDS=()
_export_cleanup() {
  local p
  for p in "${OWN_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${FED:-}" ] && rm -rf "$FED"
  _lib_cleanup
}
trap _export_cleanup EXIT

# blob_proxy PORTFILE LOG [args]: start test/node/blob_proxy.mjs, print its port
blob_proxy() {
  local pf=$1 log=$2 i
  shift 2
  rm -f "$pf"
  (cd "$NODE_DIR" && exec node blob_proxy.mjs --port-file "$pf" --log "$log" "$@" >"$log.out" 2>&1) &
  PROXY_PID=$!
  _lib_record_pid $PROXY_PID
  OWN_PIDS+=($PROXY_PID)
  for i in $(seq 1 100); do [ -s "$pf" ] && break; sleep 0.1; done
  [ -s "$pf" ] || fail "blob_proxy did not start"
}

# blob names in a container (committed blobs only), one a line, sorted
list_blobs() {
  azurite_request GET "/$1?comp=list&restype=container" | head -n -1 |
    { grep -o '<Name>[^<]*</Name>' || true; } | sed 's/<[^>]*>//g' | LC_ALL=C sort
}

# download CONTAINER PREFIX DIR: every committed blob under PREFIX into DIR
download() {
  local c=$1 prefix=$2 dir=$3 b
  mkdir -p "$dir"
  for b in $(list_blobs "$c" | grep "^$prefix"); do
    curl -sf -o "$dir/$(echo "$b" | tr '/' '_')" "$AZURITE_BLOB_URL/$c/$b?$SAS" || fail "download of $b failed"
  done
}

# per-column checksums of the source rows in [from, to)
PG_SUMS="count(*) || ' ' || sum(n) || ' ' || round(sum(v)::numeric, 3) || ' ' || count(v) || ' ' ||
  sum(length(device)) || ' ' || count(DISTINCT device) || ' ' || sum(extract(epoch FROM ts)::bigint) || ' ' ||
  count(*) FILTER (WHERE flag) || ' ' || sum(length(payload::text)) || ' ' || count(DISTINCT id)"
DUCK_SUMS="count(*) || ' ' || sum(n) || ' ' || round(sum(v)::DECIMAL(38,3), 3) || ' ' || count(v) || ' ' ||
  sum(length(device)) || ' ' || count(DISTINCT device) || ' ' || sum(epoch(ts)::BIGINT) || ' ' ||
  count(*) FILTER (WHERE flag) || ' ' || sum(length(payload)) || ' ' || count(DISTINCT id)"
duck_sums() { rnode read_parquet.mjs duckdb "SELECT $DUCK_SUMS FROM read_parquet('$1/*.parquet')" | tr -d '[]"'; }

start_azurite
azurite_request PUT "/lake?restype=container" | tail -n 1 | grep -q 201 || fail "could not create container lake"

# an account SAS (version 2019-12-12: no encryption scope in the string to sign)
SE=2035-01-01T00:00:00Z
SIG=$(printf '%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n' "$AZURITE_ACCOUNT" rwdlac b sco "" "$SE" "" "" 2019-12-12 |
  openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(base64 -d <<<"$AZURITE_KEY" | od -An -v -tx1 | tr -d ' \n')" -binary |
  base64 -w0)
SAS="sv=2019-12-12&ss=b&srt=sco&sp=rwdlac&se=${SE//:/%3A}&sig=$(node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' "$SIG")"

# --- source: three hours of yesterday, one row every 2 s, every type kind
pg <<SQL >/dev/null
-- a rerun on the same cluster starts clean
SELECT iotstream.drop_export(name) FROM iotstream.exports WHERE name IN ('sk', 'sas', 'rb', 'bad', 'retry', 'multi', 'outage', 'sp', 'mi', 'wi');
DELETE FROM iotstream.storage_credentials WHERE name IN ('azurite_key', 'azurite_sas', 'wrong', 'sp', 'mi', 'wi');
DROP TABLE IF EXISTS exp_src;
SELECT iotstream.create_stream_table('exp_src',
  'ts timestamptz NOT NULL, device text, n int8, v float8, flag bool, payload jsonb, id uuid', 'ts', '1 day');
SELECT iotstream.ensure_partitions('exp_src', date_trunc('day', now()) - interval '1 day', now());
INSERT INTO exp_src
SELECT date_trunc('day', now()) - interval '1 day' + g * interval '2 s',
       CASE WHEN g % 50 = 0 THEN NULL ELSE 'dev-' || (g % 37) || CASE WHEN g % 11 = 0 THEN ' é€' ELSE '' END END,
       g::int8 * 1000003, CASE WHEN g % 13 = 0 THEN NULL ELSE g * 0.25 END, g % 3 = 0,
       jsonb_build_object('g', g, 's', repeat('x', g % 7)), md5(g::text)::uuid
  FROM generate_series(0, 3 * 1800 - 1) g;
SELECT iotstream.create_storage_credential('azurite_key', 'shared_key', account => '$AZURITE_ACCOUNT', key => '$AZURITE_KEY');
SELECT iotstream.create_storage_credential('azurite_sas', 'sas', token => '?$SAS');
SQL

# --- pg_cron runs both exports on its own (every minute, the finest pg_cron has)
pg -c "SELECT iotstream.create_export('sk', 'exp_src', '$AZURITE_BLOB_URL/lake/sk', credential => 'azurite_key', schedule => '* * * * *', format => 'parquet', options => '{\"block_size\": \"64kB\"}')"
pg -c "SELECT iotstream.create_export('sas', 'exp_src', '$AZURITE_BLOB_URL/lake/sas', credential => 'azurite_sas', compression => 'snappy', schedule => '* * * * *', format => 'parquet')"
assert_eq "$(pg -c "SELECT count(*) FROM cron.job WHERE jobname IN ('iotstream_export_sk', 'iotstream_export_sas')")" 2 "create_export registers pg_cron jobs"
wait_for "SELECT count(DISTINCT export) = 2 FROM iotstream.export_log WHERE status = 'exported' AND rows > 0 AND period_end <= date_trunc('day', now()) - interval '1 day' + interval '3 hours'" 150
wait_for "SELECT count(DISTINCT j.jobname) = 2 FROM cron.job_run_details d JOIN cron.job j USING (jobid) WHERE j.jobname LIKE 'iotstream_export_%' AND d.status = 'succeeded'" 30
# the job ran as a whole: every sealed period is in the ledger
for e in sk sas; do
  assert_eq "$(pg -c "SELECT count(*) FROM iotstream.export_log WHERE export = '$e' AND status = 'exported' AND rows > 0")" 3 "$e: three periods with rows exported by pg_cron"
  assert_eq "$(pg -c "SELECT count(*) FROM iotstream.export_log WHERE export = '$e' AND status <> 'exported'")" 0 "$e: no failed attempts"
done
pg -c "SELECT iotstream.alter_export('sk', unschedule => true)"
pg -c "SELECT iotstream.alter_export('sas', unschedule => true)"
assert_eq "$(pg -c "SELECT count(*) FROM cron.job WHERE jobname IN ('iotstream_export_sk', 'iotstream_export_sas')")" 0 "alter_export(unschedule) removes the jobs"

# the folder layout, by event time
day=$(pg -c "SELECT to_char(now() - interval '1 day', 'YYYY-MM-DD')")
assert_eq "$(list_blobs lake | grep '^sk/' | sed 's|/part-00000-[0-9a-f-]*\.parquet$||' | tr '\n' ' ')" \
  "sk/exp_src/date=$day/hour=00 sk/exp_src/date=$day/hour=01 sk/exp_src/date=$day/hour=02 " "blob layout"
assert_eq "$(pg -c "SELECT string_agg(f, ' ' ORDER BY f) FROM iotstream.export_log, unnest(files) f WHERE export = 'sk' AND status = 'exported'" | sed "s|$AZURITE_BLOB_URL/lake/||g")" \
  "$(list_blobs lake | grep '^sk/' | tr '\n' ' ' | sed 's/ $//')" "ledger files are the committed blobs"

# DuckDB reads every file: counts and per-column checksums equal the source
src=$(pg -c "SELECT $PG_SUMS FROM exp_src")
for e in sk sas; do
  download lake "$e/" "$W/$e"
  assert_eq "$(duck_sums "$W/$e")" "$src" "$e: DuckDB count and per-column checksums of all files"
done
# both readers, value by value, for one period
f=$(ls "$W/sk/"*hour=01_*.parquet)
out=$(rnode read_parquet.mjs compare "$f" "SELECT * FROM exp_src WHERE ts >= date_trunc('day', now()) - interval '23 hours' AND ts < date_trunc('day', now()) - interval '22 hours' ORDER BY ts") ||
  fail "DuckDB or hyparquet differ from the source: $out"
echo "ok - hyparquet and DuckDB read hour 01 value by value: $out"
meta=$(rnode read_parquet.mjs duckdb "SELECT string_agg(decode(key) || '=' || decode(value), ' ' ORDER BY key) FROM parquet_kv_metadata('$f') WHERE decode(key) IN ('iotstream.source_table', 'iotstream.period_start', 'iotstream.version', 'iotstream.export_version')" | tr -d '[]"')
version=$(psql -X -q -At -c "SELECT extversion FROM pg_extension WHERE extname = 'iotstream'")
assert_eq "$meta" "iotstream.export_version=1 iotstream.period_start=${day}T01:00:00Z iotstream.source_table=exp_src iotstream.version=$version" "key-value metadata"

# --- rerun is a no-op
before=$(pg -c "SELECT count(*) FROM iotstream.export_log")
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.run_export('sk')")" 0 "rerun writes nothing"
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.export_log")" "$before" "rerun leaves the ledger alone"
nblobs=$(list_blobs lake | wc -l)

# --- a run whose transaction rolls back after committing files (a cancelled
# or crashed job): the rerun overwrites them, nothing is duplicated
pg -c "SELECT iotstream.create_export('rb', 'exp_src', '$AZURITE_BLOB_URL/lake/rb', credential => 'azurite_key', schedule => NULL, format => 'parquet')"
pg -c "BEGIN" -c "SELECT count(*) FROM iotstream.run_export('rb')" -c "ROLLBACK" >/dev/null
assert_eq "$(list_blobs lake | grep -c '^rb/')" 3 "the rolled-back run had committed its files"
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.export_log WHERE export = 'rb'")" 0 "but the ledger knows nothing of them"
pg -c "SELECT count(*) FROM iotstream.run_export('rb')" >/dev/null
assert_eq "$(list_blobs lake | grep -c '^rb/')" 3 "the rerun overwrote them: no duplicates"
assert_eq "$(pg -c "SELECT string_agg(f, ' ' ORDER BY f) FROM iotstream.export_log, unnest(files) f WHERE export = 'rb'" | sed "s|$AZURITE_BLOB_URL/lake/||g")" \
  "$(list_blobs lake | grep '^rb/' | tr '\n' ' ' | sed 's/ $//')" "the ledger lists exactly the blobs"
pg -c "SELECT iotstream.drop_export('rb')"
nblobs=$(list_blobs lake | wc -l)

# --- late rows: exactly one re-export, old files deleted
pg <<SQL
INSERT INTO exp_src SELECT date_trunc('day', now()) - interval '1 day' + interval '1 hour 30 minutes 1 second' + g * interval '1 ms',
       'late', g, g, true, '{}', gen_random_uuid() FROM generate_series(1, 3) g;
SELECT pg_stat_force_next_flush();
SQL
got=$(pg -c "SELECT string_agg(to_char(period_start AT TIME ZONE 'UTC', 'HH24') || ' v' || version || ' ' || status, ',') FROM iotstream.run_export('sk')")
assert_eq "$got" "01 v2 exported" "late rows re-export their period once"
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.run_export('sk')")" 0 "and only once"
assert_eq "$(pg -c "SELECT string_agg(version || ':' || status, ' ' ORDER BY version) FROM iotstream.export_log WHERE export = 'sk' AND period_start = date_trunc('day', now()) - interval '23 hours'")" \
  "1:replaced 2:exported" "ledger versions of the re-exported period"
assert_eq "$(list_blobs lake | wc -l)" "$nblobs" "the old file was replaced, not kept"
rm -rf "$W/sk" && download lake "sk/" "$W/sk"
assert_eq "$(duck_sums "$W/sk")" "$(pg -c "SELECT $PG_SUMS FROM exp_src")" "after the re-export the files hold the late rows too"

# --- a wrong key: a clear error, no secret in it
BADKEY=$(head -c 64 /dev/urandom | base64 -w0)
pg -c "SELECT iotstream.create_storage_credential('wrong', 'shared_key', account => '$AZURITE_ACCOUNT', key => '$BADKEY')"
pg -c "SELECT iotstream.create_export('bad', 'exp_src', '$AZURITE_BLOB_URL/lake/bad', credential => 'wrong', schedule => NULL, format => 'parquet')"
out=$(pg -c "SELECT status FROM iotstream.run_export('bad')" 2>&1)
err=$(pg -c "SELECT error FROM iotstream.export_log WHERE export = 'bad' AND status = 'failed'")
echo "   error: $err"
case "$err" in *403*'"devstoreaccount1"'*'"lake"'*'"wrong"'*) echo "ok - the error names account, container and credential" ;;
  *) fail "unclear error for a wrong key: $err" ;; esac
case "$out$err" in *"$BADKEY"*|*"${BADKEY:0:20}"*) fail "the key appears in the error" ;; esac
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.export_log WHERE export = 'bad' AND status = 'exported'")" 0 "a failure advances nothing"
if grep -qF -- "${BADKEY:0:20}" "$CLUSTER_DATA/server.log" 2>/dev/null; then fail "the key appears in the server log"; fi
assert_eq "$(pg -c "SELECT secret FROM iotstream.storage_credential_info WHERE name = 'wrong'")" '{"key": "********"}' "the view masks the key"

# --- injected 503s with Retry-After: the export succeeds after retries
blob_proxy "$W/p503.port" "$W/p503.log" --upstream "$AZURITE_PORT" --fail-first 3 --retry-after 1
P503=$(cat "$W/p503.port")
pg -c "SELECT iotstream.create_export('retry', 'exp_src', 'http://127.0.0.1:$P503/$AZURITE_ACCOUNT/lake/retry', credential => 'azurite_key', schedule => NULL, format => 'parquet')"
t0=$(date +%s%N)
got=$(pg -c "SELECT count(*) FILTER (WHERE status = 'exported' AND rows > 0) || ' ' || count(*) FILTER (WHERE status = 'failed') FROM iotstream.run_export('retry')")
ms=$((($(date +%s%N) - t0) / 1000000))
assert_eq "$got" "3 0" "export through 503s succeeds"
assert_eq "$(grep -c ' 503$' "$W/p503.log")" 3 "the proxy answered 503 three times"
[ "$ms" -ge 1000 ] || fail "the retries did not wait for Retry-After (${ms} ms)"
echo "ok - Retry-After honoured (${ms} ms)"
assert_eq "$(list_blobs lake | grep -c '^retry/')" 3 "all files committed after retries"
# these files fit in one block: each is one Put Blob, no block and no list
assert_eq "$(grep -c '^PUT [^ ]*\.parquet 201$' "$W/p503.log")" 3 "a one-block file is sent with one Put Blob"
assert_eq "$(grep -c 'comp=block' "$W/p503.log" || true)" 0 "and no Put Block or Put Block List"

# --- a failure between the block lists of a multi-file period: the files
# already committed are deleted again, nothing of the attempt stays visible
pg <<SQL >/dev/null
DROP TABLE IF EXISTS exp_multi;
SELECT iotstream.create_stream_table('exp_multi', 'ts timestamptz NOT NULL, v float8, w float8', 'ts', '1 day');
SELECT iotstream.ensure_partitions('exp_multi', date_trunc('day', now()) - interval '1 day', now());
INSERT INTO exp_multi SELECT date_trunc('day', now()) - interval '1 day' + g * interval '10 ms', random(), random()
  FROM generate_series(0, 299999) g;
SQL
blob_proxy "$W/rej.port" "$W/rej.log" --upstream "$AZURITE_PORT" --reject-blocklist 2
PREJ=$(cat "$W/rej.port")
pg -c "SELECT iotstream.create_export('multi', 'exp_multi', 'http://127.0.0.1:$PREJ/$AZURITE_ACCOUNT/lake/multi', credential => 'azurite_key', target_file_size => '1MB', compression => 'none', schedule => NULL, format => 'parquet', options => '{\"row_group_size\": \"256kB\", \"block_size\": \"256kB\"}')"
got=$(pg -c "SELECT string_agg(status, ',') FROM iotstream.run_export('multi')" 2>/dev/null)
assert_eq "$got" "failed" "a rejected second block list fails the period"
assert_eq "$(grep -c 'comp=blocklist 201' "$W/rej.log")" 1 "the first file had been committed"
assert_eq "$(list_blobs lake | grep -c '^multi/' || true)" 0 "and was deleted again"
got=$(pg -c "SELECT files FROM iotstream.run_export('multi') WHERE rows > 0")
[ "$got" -ge 3 ] || fail "the period should be several files, got $got"
assert_eq "$(list_blobs lake | grep -c '^multi/')" "$got" "the next run commits all $got files"

# --- Azurite stopped mid-export: nothing committed, ledger unchanged; restart completes
AZ2_DIR=$W/az2 && mkdir -p "$AZ2_DIR"
AZ2_PORT=$(free_port)
# start_az2 [fixed]: a second Azurite that keeps its data on disk across a
# restart; the first start retries on another port if the one picked was
# taken meanwhile (other runs share the machine), a restart keeps its port
start_az2() {
  local try i
  for try in 1 2 3; do
    (cd "$AZ2_DIR" && exec node "$NODE_DIR/node_modules/azurite/dist/src/blob/main.js" --blobHost 127.0.0.1 \
      --blobPort "$AZ2_PORT" --location "$AZ2_DIR/data" --disableTelemetry --silent --skipApiVersionCheck \
      >>"$AZ2_DIR/log" 2>&1) &
    AZ2_PID=$!
    _lib_record_pid $AZ2_PID
    OWN_PIDS+=($AZ2_PID)
    for i in $(seq 1 150); do
      kill -0 "$AZ2_PID" 2>/dev/null || break
      # our Azurite, not whatever else may listen there
      curl -s -D - -o /dev/null "http://127.0.0.1:$AZ2_PORT/$AZURITE_ACCOUNT?comp=list" | grep -qi '^server: azurite' &&
        kill -0 "$AZ2_PID" 2>/dev/null && return 0
      sleep 0.2
    done
    [ "${1:-}" = fixed ] && break
    AZ2_PORT=$(free_port)
  done
  tail -5 "$AZ2_DIR/log" >&2
  fail "second azurite did not start"
}
start_az2
AZURITE_BLOB_URL=http://127.0.0.1:$AZ2_PORT/$AZURITE_ACCOUNT azurite_request PUT "/lake2?restype=container" | tail -n 1 | grep -q 201 ||
  fail "could not create container lake2"
blob_proxy "$W/slow.port" "$W/slow.log" --upstream "$AZ2_PORT" --delay-ms 300
PSLOW=$(cat "$W/slow.port")
pg -c "SELECT iotstream.create_export('outage', 'exp_src', 'http://127.0.0.1:$PSLOW/$AZURITE_ACCOUNT/lake2/o', period => '1 day', credential => 'azurite_key', compression => 'none', schedule => NULL, format => 'parquet', options => '{\"block_size\": \"64kB\", \"parallel_uploads\": 2, \"max_retries\": 2}')"
pg -c "SELECT status FROM iotstream.run_export('outage')" >"$W/outage.out" 2>&1 &
RUN_PID=$!
for i in $(seq 1 200); do
  [ "$(cat "$W/slow.log" 2>/dev/null | grep -c 'comp=block ')" -ge 2 ] && break
  sleep 0.1
done
[ "$(grep -c 'comp=block ' "$W/slow.log")" -ge 2 ] || fail "the export did not start uploading"
kill "$AZ2_PID"
wait "$AZ2_PID" 2>/dev/null || true
wait "$RUN_PID" || true
echo "   run_export during the outage: $(tr '\n' ' ' <"$W/outage.out")"
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.export_log WHERE export = 'outage' AND status = 'exported' AND rows > 0")" 0 "the ledger did not advance"
assert_eq "$(pg -c "SELECT count(*) FROM iotstream.export_log WHERE export = 'outage' AND status = 'failed'")" 1 "the failure is recorded"
start_az2 fixed
blobs=$(AZURITE_BLOB_URL=http://127.0.0.1:$AZ2_PORT/$AZURITE_ACCOUNT list_blobs lake2 | wc -l)
assert_eq "$blobs" 0 "no blob was committed"
assert_eq "$(pg -c "SELECT count(*) FILTER (WHERE status = 'exported' AND rows > 0) FROM iotstream.run_export('outage')")" 1 "after the restart the export completes"
assert_eq "$(AZURITE_BLOB_URL=http://127.0.0.1:$AZ2_PORT/$AZURITE_ACCOUNT list_blobs lake2 | wc -l)" 1 "and its file is committed"

# --- service principal and managed identity: OAuth2 tokens as bearer
blob_proxy "$W/oauth.port" "$W/oauth.log" --bearer tok-123
# the server reads the token file: a directory its user can reach
FED=$(mktemp -d /tmp/iotstream-fed.XXXXXX)
chmod 755 "$FED"
echo "fed-jwt-1" >"$FED/federated.jwt"
chmod 644 "$FED/federated.jwt"
PO=$(cat "$W/oauth.port")
pg <<SQL
SELECT iotstream.create_storage_credential('sp', 'service_principal', tenant => 'tenant-1', client_id => 'app-1',
       client_secret => 'sp-secret', authority_host => 'http://127.0.0.1:$PO');
SELECT iotstream.create_storage_credential('mi', 'managed_identity', client_id => 'mi-1',
       endpoint => 'http://127.0.0.1:$PO/metadata/identity/oauth2/token');
SELECT iotstream.create_storage_credential('wi', 'managed_identity', tenant => 'tenant-2', client_id => 'wi-app',
       authority_host => 'http://127.0.0.1:$PO', federated_token_file => '$FED/federated.jwt');
SELECT iotstream.create_export('wi', 'exp_src', 'http://127.0.0.1:$PO/$AZURITE_ACCOUNT/lake/wi', credential => 'wi', schedule => NULL, format => 'parquet');
SELECT iotstream.create_export('sp', 'exp_src', 'http://127.0.0.1:$PO/$AZURITE_ACCOUNT/lake/sp', credential => 'sp', schedule => NULL, format => 'parquet');
SELECT iotstream.create_export('mi', 'exp_src', 'http://127.0.0.1:$PO/$AZURITE_ACCOUNT/lake/mi', credential => 'mi', schedule => NULL, format => 'parquet');
SQL
got=$(pg -c "SELECT count(*) FILTER (WHERE status = 'exported' AND rows > 0) FROM iotstream.run_export('sp')" \
         -c "UPDATE exp_src SET n = n + 1 WHERE ts = (SELECT min(ts) FROM exp_src)" -c "SELECT pg_stat_force_next_flush()" \
         -c "SELECT count(*) FROM iotstream.run_export('sp')" \
         -c "SELECT count(*) FILTER (WHERE status = 'exported' AND rows > 0) FROM iotstream.run_export('mi')" | grep -v '^$' | tr '\n' ' ')
assert_eq "$got" "3 1 3 " "service principal and managed identity exports (and a re-export)"
assert_eq "$(grep -c 'oauth2/v2.0/token 200 grant_type=client_credentials scope=https://storage.azure.com/.default client_id=app-1 secret_ok=true' "$W/oauth.log")" 1 \
  "one client-credentials token request, cached for the next run"
assert_eq "$(grep -c 'GET /metadata/identity/oauth2/token 200 grant_type= scope=https://storage.azure.com/ client_id=mi-1 secret_ok=false metadata=true' "$W/oauth.log")" 1 \
  "one IMDS token request with the client id"
assert_eq "$(pg -c "SELECT count(*) FILTER (WHERE status = 'exported' AND rows > 0) FROM iotstream.run_export('wi')")" 3 "workload identity export"
assert_eq "$(grep -c 'POST /tenant-2/oauth2/v2.0/token 200 grant_type=client_credentials scope=https://storage.azure.com/.default client_id=wi-app secret_ok=false metadata= assertion=fed-jwt-1' "$W/oauth.log")" 1 \
  "one workload identity token request with the federated token as client assertion"
assert_eq "$(grep -c ' 403 ' "$W/oauth.log")" 0 "every storage request carried the bearer token"
assert_eq "$(grep -c 'DELETE .* 202 ' "$W/oauth.log")" 1 "the replaced file was deleted with the token"

pg -c "SELECT iotstream.drop_export(name) FROM iotstream.exports" >/dev/null
echo "ok - 50_export"

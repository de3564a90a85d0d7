#!/usr/bin/env bash
# Attacker suite (issue 16).  A tenant role, mallory, owns her stream tables
# and runs any SQL of her own; the superuser creates the sources, rules,
# rollups and exports on them.  Nothing she writes (triggers, defaults,
# constraints, index and generated expressions, views, casts, settings rows,
# table names) may run with the superuser's rights, crash the server or
# escape an export's folder.  Invariant after every attack: mallory is not
# superuser and in no new role, public.pwned stays empty, the checkpointer
# pid is unchanged, and refused calls fail with the intended SQLSTATE.
# Sections go on past a failure; the script exits 1 at the end if any failed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

pg() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
pgm() { PGUSER=mallory psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
# waitq "<sql boolean>" [timeout]: lib.sh's wait_for, returning 1 on timeout
# instead of ending the script
waitq() { (wait_for "$@") 2>&1; }
T0=$(date +%s)
FAILED=()
ok() { echo "ok - $1${2:+: $2}"; }
bad() {
  echo "not ok - $1: $2"
  FAILED+=("$1: $2")
}

# try ROLE SQL: "ok", "SQLSTATE: message", or "crash: ..." when the
# connection died under the statement (or could not be made)
try() {
  local out line
  out=$(PGUSER=$1 PGOPTIONS="-c statement_timeout=60s" psql -X -q -At -v ON_ERROR_STOP=1 \
    -v VERBOSITY=verbose -c "$2" 2>&1 >/dev/null) && { echo ok; return; }
  case "$out" in
    *"server closed the connection"* | *"connection to server"*"lost"* | *"terminating connection because of crash"* | \
      *"in recovery mode"* | *"Connection refused"* | *"could not connect"* | *"shutting down"*)
      echo "crash: $(tr '\n' ' ' <<<"$out" | cut -c1-200)"
      return
      ;;
  esac
  line=$(grep -m1 -oE '(ERROR|FATAL):  [0-9A-Z]{5}: .*' <<<"$out")
  if [ -n "$line" ]; then echo "${line#*:  }"; else echo "?????: $(tr '\n' ' ' <<<"$out")"; fi
}

# expect LABEL "CODES" RESULT: RESULT (from try) is an error with one of CODES
expect() {
  local label=$1 codes=$2 res=$3 c
  case "$res" in crash*)
    bad "$label" "the server crashed ($res)"
    server_up
    return 1
    ;;
  esac
  for c in $codes; do
    if [ "${res%%:*}" = "$c" ]; then
      ok "$label" "$res"
      return 0
    fi
  done
  if [ "$res" = ok ]; then
    bad "$label" "succeeded, expected an error with SQLSTATE ${codes// / or }"
  else
    bad "$label" "wrong error, expected SQLSTATE ${codes// / or }, got $res"
  fi
  return 1
}

server_up() { waitq "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'checkpointer'" 120 >/dev/null; }
checkpointer() { pg -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'" 2>/dev/null; }
memberships() {
  pg -c "SELECT coalesce(string_agg(roleid::regrole::text, ',' ORDER BY roleid::regrole::text), '')
           FROM pg_auth_members WHERE member = 'mallory'::regrole"
}

# attack_begin / attack_end LABEL: the invariants around one attack;
# attack_end reports, then undoes whatever mallory gained so that the next
# attack starts clean.
attack_begin() {
  server_up
  CKPT0=$(checkpointer)
  MEMB0=$(memberships)
}
attack_end() {
  local label=$1 sup memb pw ckpt problems=
  server_up
  ckpt=$(checkpointer)
  sup=$(pg -c "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'")
  memb=$(memberships)
  pw=$(pg -c "SELECT string_agg(DISTINCT format('%s ran as %s in %s', via, who, coalesce(backend, '?')), '; ') FROM public.pwned")
  [ "$sup" = f ] || problems+="mallory became superuser; "
  [ "$memb" = "$MEMB0" ] || problems+="mallory gained roles ($MEMB0 -> $memb); "
  [ -z "$pw" ] || problems+="escalate() wrote public.pwned ($pw); "
  [ "$ckpt" = "$CKPT0" ] || problems+="the server restarted (checkpointer $CKPT0 -> ${ckpt:-none}); "
  if [ -z "$problems" ]; then ok "$label" "not escalated, no restart"; else bad "$label" "${problems%; }"; fi
  reset_mallory
}
# via LABEL TAG: whether the payload tagged TAG ran with more rights than mallory's
via() {
  local pw
  pw=$(pg -c "SELECT string_agg(DISTINCT format('ran as %s in %s', who, coalesce(backend, '?')), '; ') FROM public.pwned WHERE via = '$2'")
  if [ -z "$pw" ]; then ok "$1" "its payload did not write public.pwned"; else bad "$1" "escalate() $pw"; fi
}
reset_mallory() {
  pg >/dev/null <<'SQL'
ALTER ROLE mallory NOSUPERUSER;
SELECT format('REVOKE %I FROM mallory', roleid::regrole) FROM pg_auth_members WHERE member = 'mallory'::regrole
\gexec
TRUNCATE public.pwned;
SQL
}

# JSON lines of N readings from START, one every STEP: device d<i%3>, value
# and raw i (raw for section 3's table; other tables ignore it)
readings() {
  pg -c "SELECT json_build_object('ts', to_char(('$1'::timestamptz + g * interval '$3') AT TIME ZONE 'UTC',
                                               'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                                  'device', 'd' || g % 3, 'value', g, 'raw', g)::text
           FROM generate_series(0, $2 - 1) g"
}
produce() { kcat -P -b "$BROKERS" -t "$1"; }

# everything of an earlier run (and of this one, at exit) goes
cleanup_all() {
  server_up
  # statement by statement: one failing must not keep the others from running
  psql -X -q -At >/dev/null 2>&1 <<'SQL'
SET client_min_messages = warning;
SELECT iotstream.drop_source(name) FROM iotstream.sources WHERE name LIKE 'lp\_%';
SELECT iotstream.drop_export(name) FROM iotstream.exports WHERE name LIKE 'lp\_%';
SELECT iotstream.drop_rule(name) FROM iotstream.rules WHERE name LIKE 'lp\_%';
SELECT iotstream.drop_rollup(name) FROM iotstream.rollups WHERE name LIKE 'mallory.%';
DELETE FROM iotstream.stream_table_settings WHERE relid::text LIKE 'mallory.%';
DELETE FROM iotstream.anomalies WHERE rule LIKE 'lp\_%';
DELETE FROM iotstream.dead_letters WHERE source LIKE 'lp\_%';
DROP TABLE IF EXISTS public.pwned, public.secret, public.p7;
DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'mallory') THEN
    EXECUTE 'DROP OWNED BY mallory CASCADE';
  END IF;
END $$;
DROP SCHEMA IF EXISTS mallory CASCADE;
DROP ROLE IF EXISTS mallory;
SQL
}
_lp_exit() {
  cleanup_all
  _lib_cleanup
}
trap _lp_exit EXIT
cleanup_all

# ---------------------------------------------------------------- setup
echo "== setup: role mallory, her payloads, her tables; the platform's sources and rules"
pg >/dev/null <<'SQL' || fail "setup as postgres failed"
CREATE ROLE mallory LOGIN;
GRANT USAGE ON SCHEMA iotstream TO mallory;
CREATE SCHEMA mallory AUTHORIZATION mallory;
-- the marker: only a role with more rights than mallory's can write here
CREATE TABLE public.pwned (who text, via text, backend text, at timestamptz DEFAULT clock_timestamp());
REVOKE ALL ON public.pwned FROM PUBLIC;
SQL

pgm >/dev/null <<'SQL' || fail "setup as mallory failed"
-- The payload.  via tags which path ran it; it swallows its own errors so
-- the hostile row still goes in: the point is that it runs with mallory's
-- rights only.
CREATE FUNCTION mallory.escalate(via text DEFAULT 'escalate') RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  BEGIN EXECUTE 'ALTER ROLE mallory SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
  BEGIN
    INSERT INTO public.pwned (who, via, backend)
    VALUES (current_user, via, (SELECT backend_type FROM pg_stat_activity WHERE pid = pg_backend_pid()));
  EXCEPTION WHEN OTHERS THEN NULL;
  END;
  RETURN true;
END $$;
-- the same, not swallowing: under mallory's rights this raises
CREATE FUNCTION mallory.escalate_strict(via text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE 'ALTER ROLE mallory SUPERUSER';
  INSERT INTO public.pwned (who, via, backend)
  VALUES (current_user, via, (SELECT backend_type FROM pg_stat_activity WHERE pid = pg_backend_pid()));
  RETURN true;
END $$;
-- declared IMMUTABLE, so that index and generated expressions accept it
CREATE FUNCTION mallory.escalate_imm(v float8, via text) RETURNS float8 LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN PERFORM mallory.escalate(via); RETURN v; END $$;
CREATE FUNCTION mallory.trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM mallory.escalate(TG_ARGV[0]); RETURN NEW; END $$;
CREATE FUNCTION mallory.trg_strict() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM mallory.escalate_strict(TG_ARGV[0]); RETURN NEW; END $$;

-- 1: every kind of table code the executor runs on insert
SELECT iotstream.create_stream_table('mallory.ingest', 'ts timestamptz NOT NULL, device text, value float8', 'ts', '1 hour');
CREATE TRIGGER a BEFORE INSERT ON mallory.ingest FOR EACH ROW EXECUTE FUNCTION mallory.trg('1a');
ALTER TABLE mallory.ingest ADD COLUMN b boolean DEFAULT mallory.escalate('1b');
ALTER TABLE mallory.ingest ADD CONSTRAINT c CHECK (mallory.escalate('1c'));
CREATE INDEX ingest_d ON mallory.ingest ((mallory.escalate_imm(value, '1d')));
ALTER TABLE mallory.ingest ADD COLUMN e float8 GENERATED ALWAYS AS (mallory.escalate_imm(value, '1e')) STORED;
CREATE CONSTRAINT TRIGGER f AFTER INSERT ON mallory.ingest DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW EXECUTE FUNCTION mallory.trg('1f');
SELECT iotstream.create_stream_table('mallory.strict', 'ts timestamptz NOT NULL, device text, value float8', 'ts', '1 hour');
CREATE TRIGGER s BEFORE INSERT ON mallory.strict FOR EACH ROW EXECUTE FUNCTION mallory.trg_strict('1s');

-- 2 and 3: tables that get a rule (and a rollup) from the platform
SELECT iotstream.create_stream_table('mallory.readings', 'ts timestamptz NOT NULL, device text, value float8', 'ts', '1 hour');
SELECT iotstream.create_stream_table('mallory.retyped', 'ts timestamptz NOT NULL, device text, value float8, raw float8', 'ts', '1 hour');
SQL

start_broker --topic lp_ingest:1 --topic lp_strict:1 --topic lp_readings:1 --topic lp_retyped:1 --topic lp_secret:1
OPTS='{"batch_ms": 50, "session.timeout.ms": "6000"}'
pg >/dev/null <<SQL || fail "setup of sources and rules failed"
SELECT iotstream.create_source('lp_ingest', '$BROKERS', ARRAY['lp_ingest'], 'mallory.ingest', NULL, '$OPTS');
SELECT iotstream.create_source('lp_strict', '$BROKERS', ARRAY['lp_strict'], 'mallory.strict', NULL, '$OPTS');
SELECT iotstream.create_source('lp_readings', '$BROKERS', ARRAY['lp_readings'], 'mallory.readings', NULL, '$OPTS');
SELECT iotstream.create_source('lp_retyped', '$BROKERS', ARRAY['lp_retyped'], 'mallory.retyped', NULL, '$OPTS');
SELECT iotstream.create_rule('lp_rule2', 'mallory.readings', 'value', ARRAY['device'], 'threshold_count',
  '{"threshold": 1000, "min_count": 1}', lateness => '0 seconds');
SELECT iotstream.create_rollup('mallory.readings_1m', 'mallory.readings', ARRAY['device'], ARRAY['value'],
  bucket => '1 minute', lateness => '0 seconds');
SELECT iotstream.create_rule('lp_rule3', 'mallory.retyped', 'value', ARRAY['device'], 'threshold_count',
  '{"threshold": 1000, "min_count": 1}', lateness => '0 seconds');
-- 9: the platform's own table and source, which mallory must not see
SELECT iotstream.create_stream_table('public.secret', 'ts timestamptz NOT NULL, v float8', 'ts', '1 hour');
SELECT iotstream.create_source('lp_secret', '$BROKERS', ARRAY['lp_secret'], 'public.secret', NULL, '$OPTS');
SQL

# 3, set up before the source starts: once the rule exists (on a float8
# column), value becomes a column of mallory's type whose cast to float8,
# which the rule's query applies (value::float8), is her function.  A
# generated column, so that messages (carrying raw) still decode.
pgm >/dev/null <<'SQL' || fail "setup of section 3 as mallory failed"
CREATE TYPE mallory.num AS (v float8);
CREATE FUNCTION mallory.num_f8(mallory.num) RETURNS float8 LANGUAGE plpgsql AS $$
BEGIN PERFORM mallory.escalate('3'); RETURN ($1).v; END $$;
CREATE CAST (mallory.num AS float8) WITH FUNCTION mallory.num_f8(mallory.num) AS IMPLICIT;
ALTER TABLE mallory.retyped DROP COLUMN value,
  ADD COLUMN value mallory.num GENERATED ALWAYS AS (ROW(raw)::mallory.num) STORED;
SQL
pg -c "SELECT iotstream.start_source(name) FROM iotstream.sources WHERE name LIKE 'lp\_%'" >/dev/null
reset_mallory
BASE=$(pg -c "SELECT date_trunc('minute', now()) - interval '40 minutes'")

# ---------------------------------------------------------------- 1
echo "== 1: ingest runs table code (trigger, default, check, index, generated column, deferred trigger)"
attack_begin
readings "$BASE" 50 '1 second' | produce lp_ingest
if waitq "SELECT (SELECT count(*) FROM mallory.ingest)
                 + (SELECT count(*) FROM iotstream.dead_letters WHERE source = 'lp_ingest') >= 50" 60; then
  echo "   stored $(pg -c "SELECT count(*) FROM mallory.ingest"), dead letters: $(pg -c "SELECT count(*) || ' ' || coalesce(min(reason), '') FROM iotstream.dead_letters WHERE source = 'lp_ingest'")"
  for v in 1a:"BEFORE INSERT row trigger" 1b:"column DEFAULT" 1c:"CHECK constraint" 1d:"expression index" \
    1e:"generated column" 1f:"deferred constraint trigger (fires at commit)"; do
    via "${v%%:*} ingest: ${v#*:}" "${v%%:*}"
  done
else
  bad "1 ingest" "the 50 messages were neither stored nor dead letters within 60 s"
fi
attack_end "1 ingest: mallory's rights and the server after the batches"

echo "== 1s: the payload that does not swallow its errors makes each message a dead letter"
attack_begin
readings "$BASE" 5 '1 second' | produce lp_strict
if waitq "SELECT (SELECT count(*) FROM mallory.strict)
                 + (SELECT count(*) FROM iotstream.dead_letters WHERE source = 'lp_strict') >= 5" 60; then
  got=$(pg -c "SELECT (SELECT count(*) FROM mallory.strict) || ' stored, '
                      || count(*) || ' dead letters, ' || count(*) FILTER (WHERE reason ~* 'permission denied|must be superuser|security-restricted')
                      || ' of them for permission denied' FROM iotstream.dead_letters WHERE source = 'lp_strict'")
  if [ "$got" = "0 stored, 5 dead letters, 5 of them for permission denied" ]; then
    ok "1s strict payload" "$got ($(pg -c "SELECT min(reason) FROM iotstream.dead_letters WHERE source = 'lp_strict'"))"
  else
    bad "1s strict payload" "$got, expected 0 stored, 5 dead letters for permission denied ($(pg -c "SELECT min(reason) FROM iotstream.dead_letters WHERE source = 'lp_strict'"))"
  fi
else
  bad "1s strict payload" "the 5 messages were neither stored nor dead letters within 60 s"
fi
attack_end "1s strict payload: mallory's rights and the server"

# ---------------------------------------------------------------- 2
echo "== 2: rule and rollup SQL re-resolve the table's name: mallory swaps in a view"
# first the pipeline as the platform set it up
readings "$BASE" 20 '3 seconds' | produce lp_readings
echo "{\"ts\": \"$(pg -c "SELECT to_char(('$BASE'::timestamptz + interval '2 minutes') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")\", \"device\": \"d0\", \"value\": 0}" | produce lp_readings
if ! waitq "SELECT evaluated_until >= '$BASE'::timestamptz + interval '2 minutes' FROM iotstream.rule_status WHERE rule = 'lp_rule2'" 60; then
  bad "2 setup" "the rule did not evaluate the first readings within 60 s: $(pg -c "SELECT row(r.*)::text FROM iotstream.rule_status r WHERE rule = 'lp_rule2'")"
fi
attack_begin
pgm >/dev/null <<'SQL' || bad "2 setup" "mallory could not rename her table and create the view"
ALTER TABLE mallory.readings RENAME TO readings_real;
CREATE VIEW mallory.readings AS SELECT * FROM mallory.readings_real WHERE mallory.escalate('2');
SQL
merged=$(pg -c "SELECT rows_merged FROM iotstream.rollup_status WHERE rollup = 'mallory.readings_1m'")
B2=$(pg -c "SELECT '$BASE'::timestamptz + interval '5 minutes'")
readings "$B2" 20 '3 seconds' | produce lp_readings
echo "{\"ts\": \"$(pg -c "SELECT to_char(('$B2'::timestamptz + interval '2 minutes') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")\", \"device\": \"d0\", \"value\": 0}" | produce lp_readings
if waitq "SELECT evaluated_until >= '$B2'::timestamptz + interval '2 minutes' FROM iotstream.rule_status WHERE rule = 'lp_rule2'" 30 >/dev/null; then
  echo "   the detection worker evaluated the rule past the new readings"
elif waitq "SELECT rows_merged >= $merged + 21 FROM iotstream.rollup_status WHERE rollup = 'mallory.readings_1m'" 5 >/dev/null; then
  echo "   note: the rule did not evaluate past the new readings, the rollup did (the worker ran)"
else
  bad "2 detection worker" "neither the rule nor the rollup moved past the new readings within 35 s"
fi
attack_end "2 detection worker reads the view"
attack_begin
res=$(try postgres "SELECT iotstream.refresh_rollup('mallory.readings_1m', '$BASE'::timestamptz - interval '1 hour', '$BASE'::timestamptz + interval '1 hour')")
echo "   refresh_rollup as postgres: $res"
attack_end "2 refresh_rollup as postgres reads the view"
attack_begin
res=$(try postgres "SELECT count(*) FROM iotstream.backtest_rule('lp_rule2', '$BASE'::timestamptz - interval '1 hour', '$BASE'::timestamptz + interval '1 hour')")
echo "   backtest_rule as postgres: $res"
attack_end "2 backtest_rule as postgres reads the view"

# ---------------------------------------------------------------- 3
echo "== 3: the rule's value column is of mallory's type; value::float8 is her cast"
attack_begin
readings "$BASE" 20 '3 seconds' | produce lp_retyped
echo "{\"ts\": \"$(pg -c "SELECT to_char(('$BASE'::timestamptz + interval '2 minutes') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")\", \"device\": \"d0\", \"raw\": 0}" | produce lp_retyped
if waitq "SELECT evaluated_until >= '$BASE'::timestamptz + interval '2 minutes' FROM iotstream.rule_status WHERE rule = 'lp_rule3'" 60 >/dev/null; then
  echo "   the detection worker evaluated the rule over $(pg -c "SELECT count(*) FROM mallory.retyped") rows"
else
  bad "3 retyped column" "the rule did not evaluate within 60 s: $(pg -c "SELECT count(*) || ' rows; ' || (SELECT row(r.*)::text FROM iotstream.rule_status r WHERE rule = 'lp_rule3') FROM mallory.retyped")"
fi
attack_end "3 detection worker applies mallory's cast"

# ---------------------------------------------------------------- 9
echo "== 9: mallory sees neither the platform's source nor its dead letters"
echo 'not json' | produce lp_secret
if ! waitq "SELECT count(*) >= 1 FROM iotstream.dead_letters WHERE source = 'lp_secret'" 60 >/dev/null; then
  bad "9 setup" "the secret source's bad message did not become a dead letter within 60 s"
fi
attack_begin
res=$(try mallory "SELECT 1/(count(*) = 0)::int FROM iotstream.source_status WHERE source = 'lp_secret'")
case "$res" in
  ok | 42501:*) ok "9a source_status" "mallory does not see lp_secret ($res)" ;;
  22012:*) bad "9a source_status" "mallory sees lp_secret: $(pgm -c "SELECT format('target %s, state %s, last_error %s', target, state, coalesce(last_error, 'NULL')) FROM iotstream.source_status WHERE source = 'lp_secret'")" ;;
  *) bad "9a source_status" "unexpected: $res" ;;
esac
res=$(try mallory "SELECT 1/(count(*) = 0)::int FROM iotstream.dead_letters WHERE source = 'lp_secret'")
case "$res" in
  ok | 42501:*) ok "9b dead_letters" "mallory reads no dead letter of lp_secret ($res)" ;;
  *) bad "9b dead_letters" "mallory reads lp_secret's dead letters ($res)" ;;
esac
attack_end "9 visibility"

# _worker_stats stays callable (source_status reads it as the caller) but
# shows a role only the workers of tables it may read
secret_id=$(pg -c "SELECT source_id FROM iotstream.sources WHERE name = 'lp_secret'")
seen_pg=$(pg -c "SELECT count(*) FROM iotstream._worker_stats() WHERE source_id = $secret_id")
seen_m=$(PGUSER=mallory pg -c "SELECT count(*) FROM iotstream._worker_stats() WHERE source_id = $secret_id" 2>&1)
if [ "$seen_pg" -ge 1 ] && [ "$seen_m" = 0 ]; then
  ok "9c _worker_stats as mallory" "postgres sees $seen_pg worker(s) of lp_secret, mallory $seen_m"
else
  bad "9c _worker_stats as mallory" "postgres sees '$seen_pg' worker(s) of lp_secret, mallory '$seen_m' (expected >= 1 and 0)"
fi
# the broker, sources and workers are done with; later sections may crash
# the server, and nothing should be consuming then
pg -c "SELECT iotstream.drop_source(name) FROM iotstream.sources WHERE name LIKE 'lp\_%'" >/dev/null
stop_broker

# ---------------------------------------------------------------- 5
echo "== 5: exports of mallory's table stay in their folder and run none of her code"
D=$(mktemp -d "$IOTSTREAM_WORK/lp_export.XXXXXX")
chmod 777 "$D"
DEST=$D/lake/dest
mkdir -p "$DEST" && chmod -R 777 "$D/lake"
pgm >/dev/null <<'SQL' || bad "5 setup" "mallory's export table could not be set up"
SELECT iotstream.create_stream_table('mallory.exp', 'ts timestamptz NOT NULL, device text, value float8', 'ts', '1 hour');
SELECT iotstream.ensure_partitions('mallory.exp', date_trunc('hour', now()) - interval '3 hours', date_trunc('hour', now()) - interval '2 hours');
INSERT INTO mallory.exp SELECT date_trunc('hour', now()) - interval '3 hours' + g * interval '1 minute', 'd' || g % 3, g
  FROM generate_series(0, 119) g;
SQL
pg -c "SELECT iotstream.create_export('lp_exp', 'mallory.exp', 'file://$DEST', period => '1 hour', lateness => '0', schedule => NULL)" >/dev/null ||
  bad "5 setup" "create_export failed"
# outside the folder: files or directories made after the marker, outside DEST
outside() {
  find "$D" -newer "$D/marker" ! -path "$D/marker" ! -path "$DEST" ! -path "$DEST/*" | sort |
    awk '{ n++; if (n <= 4) s = s $0 " " } END { if (n) printf("%d paths: %s%s", n, s, (n > 4) ? "..." : "") }'
}
# ledger files that are not under DEST once resolved
stray() {
  local f p
  for f in $(pg -c "SELECT f FROM iotstream.export_log, unnest(files) f WHERE export = 'lp_exp'"); do
    p=$(realpath -m "${f#file://}")
    case "$p" in "$DEST"/*) ;; *) echo -n "$f " ;; esac
  done
}

attack_begin
pgm -c 'ALTER TABLE mallory.exp RENAME TO "../../escape/x"' >/dev/null || bad "5a setup" "the rename failed"
touch "$D/marker"
res=$(try postgres "SELECT count(*) FROM iotstream.run_export('lp_exp')")
echo "   run_export as postgres: $res; ledger: $(pg -c "SELECT string_agg(status || ' ' || coalesce(cardinality(files), 0) || ' files', ', ') FROM iotstream.export_log WHERE export = 'lp_exp'")"
out=$(outside)
st=$(stray)
if [ -z "$out" ] && [ -z "$st" ]; then
  ok "5a table named ../../escape/x" "nothing written outside $DEST"
else
  bad "5a table named ../../escape/x" "written outside the destination: ${out:-none}; ledger files outside it: ${st:-none}"
fi
attack_end "5a export of a table named ../../escape/x"

attack_begin
pgm >/dev/null <<'SQL' || bad "5b setup" "mallory could not prepare her time column"
ALTER TABLE mallory."../../escape/x" RENAME TO exp;
CREATE TYPE mallory.ts_t AS (t timestamp);
CREATE FUNCTION mallory.ts_t_ts(mallory.ts_t) RETURNS timestamp LANGUAGE plpgsql AS $$
BEGIN PERFORM mallory.escalate('5b'); RETURN ($1).t; END $$;
CREATE CAST (mallory.ts_t AS timestamp) WITH FUNCTION mallory.ts_t_ts(mallory.ts_t) AS IMPLICIT;
ALTER TABLE mallory.exp ADD COLUMN evil mallory.ts_t;
UPDATE mallory.exp SET evil = ROW(ts AT TIME ZONE 'UTC');
SQL
res=$(try mallory "UPDATE iotstream.stream_table_settings SET time_column = 'evil' WHERE relid = 'mallory.exp'::regclass")
case "$res" in
  ok) bad "5b time_column of mallory's type" "the settings UPDATE was accepted" ;;
  crash*) bad "5b time_column of mallory's type" "the server crashed ($res)" ;;
  *) ok "5b time_column of mallory's type" "the settings UPDATE was refused ($res)" ;;
esac
# the UPDATE above moved the periods' change signal: run_export summarizes them again
waitq "SELECT sum(pg_stat_get_tuples_updated(partition)) >= 120 FROM iotstream.partitions('mallory.exp')" 30 >/dev/null
res=$(try postgres "SELECT count(*) FROM iotstream.run_export('lp_exp')")
echo "   run_export as postgres: $res; ledger: $(pg -c "SELECT string_agg(status, ', ' ORDER BY id) FROM iotstream.export_log WHERE export = 'lp_exp'")"
attack_end "5b export summarizes periods on mallory's time column"

# ---------------------------------------------------------------- 7
echo "== 7: ensure_partitions"
attack_begin
pgm -c "SELECT iotstream.create_stream_table('mallory.t7', 'ts timestamptz NOT NULL, device text, value float8', 'ts', '1 hour')" >/dev/null
n0=$(pg -c "SELECT count(*) FROM iotstream.partitions('mallory.t7')")
expect "7a ensure_partitions over a century on her own table" "22023 54000" \
  "$(try mallory "SELECT iotstream.ensure_partitions('mallory.t7', '2000-01-01', '2100-01-01')")"
assert_n=$(pg -c "SELECT count(*) FROM iotstream.partitions('mallory.t7')")
[ "$assert_n" = "$n0" ] && ok "7a no partition created" "$n0 partitions" || bad "7a no partition created" "$n0 -> $assert_n partitions"
pg >/dev/null <<'SQL'
SELECT iotstream.create_stream_table('public.p7', 'ts timestamptz NOT NULL, v float8', 'ts', '1 hour');
GRANT INSERT ON public.p7 TO mallory;
SQL
n0=$(pg -c "SELECT count(*) FROM iotstream.partitions('public.p7')")
expect "7b ensure_partitions on postgres's table with INSERT only" 42501 \
  "$(try mallory "SELECT iotstream.ensure_partitions('public.p7', now() + interval '1 day', now() + interval '2 days')")"
n1=$(pg -c "SELECT count(*) FROM iotstream.partitions('public.p7')")
[ "$n1" = "$n0" ] && ok "7b no partition created" "$n0 partitions" || bad "7b no partition created" "$n0 -> $n1 partitions"
attack_end "7 ensure_partitions"

# ---------------------------------------------------------------- 8
echo "== 8: rules, rollups, sources and exports are the superuser's"
attack_begin
expect "8a create_rule as mallory" 42501 \
  "$(try mallory "SELECT iotstream.create_rule('lp_m_rule', 'mallory.t7', 'value', '{}', 'threshold_count', '{\"threshold\": 1}')")"
expect "8b create_rollup as mallory" 42501 \
  "$(try mallory "SELECT iotstream.create_rollup('mallory.t7_1m', 'mallory.t7', '{}', ARRAY['value'])")"
expect "8c create_source as mallory" 42501 \
  "$(try mallory "SELECT iotstream.create_source('lp_m_source', '127.0.0.1:9', ARRAY['x'], 'mallory.t7')")"
expect "8d create_export as mallory" 42501 \
  "$(try mallory "SELECT iotstream.create_export('lp_m_export', 'mallory.t7', 'file://$D/m', schedule => NULL)")"
left=$(pg -c "SELECT (SELECT count(*) FROM iotstream.rules WHERE name = 'lp_m_rule') + (SELECT count(*) FROM iotstream.rollups WHERE name = 'mallory.t7_1m')
              + (SELECT count(*) FROM iotstream.sources WHERE name = 'lp_m_source') + (SELECT count(*) FROM iotstream.exports WHERE name = 'lp_m_export')")
[ "$left" = 0 ] && ok "8 nothing created" || bad "8 nothing created" "$left definitions exist"
attack_end "8 definitions as mallory"

# ---------------------------------------------------------------- 6
echo "== 6: internal functions"
attack_begin
expect "6a _evaluate as mallory" 42501 \
  "$(try mallory "SELECT count(*) FROM iotstream._evaluate('threshold_count', '{\"threshold\": 0, \"min_count\": 1}',
       'SELECT ''{}''::jsonb AS key, now() AS window_start, now() AS window_end, NULL::timestamptz AS event_time, 1::float8 AS value, 1::float8 AS score',
       '1 minute', now() - interval '1 hour', now(), 'mallory.t7')")"
expect "6b _validate_source as mallory" 42501 \
  "$(try mallory "SELECT iotstream._validate_source('mallory.t7', NULL, '{}')")"
expect "6d _wake_launcher as mallory" 42501 "$(try mallory "SELECT iotstream._wake_launcher()")"
attack_end "6a-d internal functions as mallory"
ROWS="SELECT g AS ts, 1::float8 AS value FROM generate_series(now() - interval ''10 minutes'', now(), interval ''1 minute'') g"
WINS="SELECT g AS grp, g + interval ''1 minute'' AS grp_end, 1::float8 AS value FROM generate_series(now() - interval ''10 minutes'', now(), interval ''1 minute'') g"
for v in "6e spike_dip history_size 0|spike_dip|{\"confidence\": 95, \"history_size\": 0}|$ROWS" \
  "6f spike_dip history_size -1|spike_dip|{\"confidence\": 95, \"history_size\": -1}|$ROWS" \
  "6g zscore history 0|zscore|{\"threshold\": 3, \"history\": 0}|$WINS" \
  "6h zscore history -1|zscore|{\"threshold\": 3, \"history\": -1}|$WINS"; do
  IFS='|' read -r label det params sql <<<"$v"
  attack_begin
  expect "$label (_evaluate as postgres)" 22023 \
    "$(try postgres "SELECT count(*) FROM iotstream._evaluate('$det', '$params', '$sql', '1 minute', now() - interval '1 hour', now(), 'public.secret')")"
  attack_end "$label: no restart"
done
# the brief's literal call: spike_dip reads history_size, not history, so
# this one may run; it must not crash
attack_begin
res=$(try postgres "SELECT count(*) FROM iotstream._evaluate('spike_dip', '{\"confidence\": 95, \"history\": 0}', 'SELECT now() AS ts, 1::float8 AS value', '1 minute', now() - interval '1 hour', now(), 'public.secret')")
case "$res" in crash*) bad "6i spike_dip {history: 0}" "the server crashed ($res)" ;; *) ok "6i spike_dip {history: 0}" "$res" ;; esac
attack_end "6i: no restart"

# ---------------------------------------------------------------- 4
echo "== 4: settings rows mallory writes cannot crash the server"
# probe TABLE: what reads the settings, as postgres and as mallory
probe() {
  local role q res
  for role in postgres mallory; do
    for q in "SELECT * FROM iotstream.stream_tables" "SELECT * FROM iotstream.run_maintenance()" \
      "SELECT * FROM iotstream.partitions('$1')" "$2"; do
      [ -n "$q" ] || continue
      res=$(try $role "$q")
      echo "   $role: $q -> $res"
      case "$res" in crash*)
        bad "$3 probe" "the server crashed on '$q' as $role"
        server_up
        ;;
      esac
    done
  done
}
forget() { pg -c "DELETE FROM iotstream.stream_table_settings WHERE relid = '$1'::regclass; DROP TABLE $1" >/dev/null 2>&1; }

attack_begin
pgm >/dev/null <<'SQL'
CREATE TABLE mallory.lst (ts timestamptz NOT NULL, k int) PARTITION BY LIST (k);
CREATE TABLE mallory.lst_1 PARTITION OF mallory.lst FOR VALUES IN (1);
CREATE TABLE mallory.lst_2 PARTITION OF mallory.lst FOR VALUES IN (2);
SQL
expect "4a settings row for a LIST-partitioned table" "42501 42P16 22023" \
  "$(try mallory "INSERT INTO iotstream.stream_table_settings (relid, time_column, partition_interval, premake) VALUES ('mallory.lst', 'ts', '1 hour', 1)")"
# the write API and a superuser's direct write meet the same check
expect "4a _settings_put for a LIST-partitioned table" "42P16" \
  "$(try mallory "SELECT iotstream._settings_put('mallory.lst', 'ts', '1 hour', 1, NULL, 'drop', NULL, NULL)")"
expect "4a a superuser's settings row for a LIST-partitioned table" "42P16" \
  "$(try postgres "INSERT INTO iotstream.stream_table_settings (relid, time_column, partition_interval, premake) VALUES ('mallory.lst', 'ts', '1 hour', 1)")"
probe mallory.lst "" 4a
forget mallory.lst
attack_end "4a LIST-partitioned table"

attack_begin
pgm -c "SELECT iotstream.create_stream_table('mallory.rng', 'ts timestamptz NOT NULL, v float8', 'ts', '1 hour')" >/dev/null
res=$(try mallory "CREATE TABLE mallory.rng_default PARTITION OF mallory.rng DEFAULT")
echo "   mallory attaches a DEFAULT partition: $res"
probe mallory.rng "SELECT iotstream.ensure_partitions('mallory.rng', now() + interval '1 day', now() + interval '1 day')" 4b
# refused, or else her table must not lock the platform out of the catalog view
case "$res" in
  42501:* | 42P16:* | 22023:* | 55000:*) ok "4b DEFAULT partition" "refused ($res)" ;;
  ok)
    res=$(try postgres "SELECT count(*) FROM iotstream.stream_tables")
    if [ "$res" = ok ]; then ok "4b DEFAULT partition" "accepted; stream_tables still reads"; else
      bad "4b DEFAULT partition" "accepted, and then iotstream.stream_tables fails for postgres: $res"; fi
    ;;
  *) bad "4b DEFAULT partition" "attaching it gave $res" ;;
esac
forget mallory.rng
attack_end "4b DEFAULT partition on a stream table"

attack_begin
pgm -c "SELECT iotstream.create_stream_table('mallory.zero', 'ts timestamptz NOT NULL, v float8', 'ts', '1 hour')" >/dev/null
expect "4c partition_interval = 0" "42501 42P16 22023 23514" \
  "$(try mallory "UPDATE iotstream.stream_table_settings SET partition_interval = '0' WHERE relid = 'mallory.zero'::regclass")"
expect "4c a superuser's partition_interval = 0" "22023" \
  "$(try postgres "UPDATE iotstream.stream_table_settings SET partition_interval = '0' WHERE relid = 'mallory.zero'::regclass")"
expect "4c a partition_interval of a second through the API" "22023" \
  "$(try mallory "SELECT iotstream._settings_put('mallory.zero', 'ts', '1 second', 1, NULL, 'drop', NULL, NULL)")"
probe mallory.zero "SELECT iotstream.ensure_partitions('mallory.zero', now() + interval '1 day', now() + interval '1 day')" 4c
forget mallory.zero
attack_end "4c partition_interval = 0"

attack_begin
pgm -c "SELECT iotstream.create_stream_table('mallory.tc', 'ts timestamptz NOT NULL, device text, v float8', 'ts', '1 hour')" >/dev/null
expect "4d time_column that is not the partition key" "42P16 22023 42703 42501" \
  "$(try mallory "UPDATE iotstream.stream_table_settings SET time_column = 'device' WHERE relid = 'mallory.tc'::regclass")"
expect "4d a superuser's time_column that is not the partition key" "42P16" \
  "$(try postgres "UPDATE iotstream.stream_table_settings SET time_column = 'device' WHERE relid = 'mallory.tc'::regclass")"
expect "4d _settings_put on another role's table" "42501" \
  "$(try mallory "SELECT iotstream._settings_put('public.p7', 'ts', '1 hour', 1, NULL, 'drop', NULL, NULL)")"
probe mallory.tc "SELECT iotstream.ensure_partitions('mallory.tc', now() + interval '1 day', now() + interval '1 day')" 4d
forget mallory.tc
attack_end "4d time_column not the partition key"

# ---------------------------------------------------------------- summary
echo "== 15_least_privilege: $(($(date +%s) - T0)) s"
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "${#FAILED[@]} attacks got through:"
  for f in "${FAILED[@]}"; do echo "not ok - $f"; done
  exit 1
fi
echo "ok - every attack failed"

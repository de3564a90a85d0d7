#!/usr/bin/env bash
# SQL-level fuzz: every function of schema iotstream (from pg_proc, but those
# taking `internal`) called with arguments from per-type pools (NULLs, extremes,
# infinities, huge arrays, deep JSON, relations of every wrong kind), as the
# superuser and as a plain login role, each call rolled back, 5 s timeout.
# Asserts the server never restarts and no call crashes, times out, raises
# XX000 or an internal-looking message, or misses a probe's expected outcome.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
t0=$(date +%s)
log0=$(stat -c %s "${CLUSTER_DATA:-/nonexistent}/server.log" 2>/dev/null || echo 0)

W=$IOTSTREAM_WORK/fuzz91
S=$W/scratch                    # where the server may write (write_parquet, exports)

# what the fuzz defined goes at the end, whatever happened (the calls
# themselves were all rolled back)
cleanup16() {
  psql -X -q <<'SQL' >/dev/null 2>&1 || true
SET client_min_messages = warning;
SELECT iotstream.drop_export(name) FROM iotstream.exports WHERE name LIKE 'fz%';
SELECT iotstream.drop_storage_credential(name) FROM iotstream.storage_credentials WHERE name LIKE 'fz%';
SELECT iotstream.drop_source(name) FROM iotstream.sources WHERE name LIKE 'fz%';
SELECT iotstream.drop_rule(name) FROM iotstream.rules WHERE name LIKE 'fz%';
SELECT iotstream.drop_rollup(name) FROM iotstream.rollups WHERE name LIKE 'fz%';
DROP SCHEMA IF EXISTS fz, fz16 CASCADE;
DROP OWNED BY fuzzer CASCADE;
DROP ROLE IF EXISTS fuzzer;
SQL
  rm -rf "$S"
}
trap 'cleanup16; _lib_cleanup' EXIT
mkdir -p "$S"
chmod 1777 "$S"
echo "a file to upload" >"$S/up.bin"
chmod 644 "$S/up.bin"

# ---------------------------------------------------------------- fixtures
fresh_schema fz
psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SET client_min_messages = warning;
SELECT iotstream.drop_export(name) FROM iotstream.exports WHERE name LIKE 'fz%';
SELECT iotstream.drop_storage_credential(name) FROM iotstream.storage_credentials WHERE name LIKE 'fz%';
DROP SCHEMA IF EXISTS fzu CASCADE;
DROP SCHEMA IF EXISTS fz16 CASCADE;
DO \$\$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fuzzer') THEN
    EXECUTE 'DROP OWNED BY fuzzer CASCADE';
    EXECUTE 'DROP ROLE fuzzer';
  END IF;
END \$\$;

-- every kind of relation a regclass argument can name
SELECT iotstream.create_stream_table('fz.ok', 'ts timestamptz NOT NULL, v float8', 'ts');
SELECT iotstream.ensure_partitions('fz.ok', now() - interval '1 day', now());
INSERT INTO fz.ok SELECT now() - g * interval '1 minute', g % 17 FROM generate_series(0, 300) g;
CREATE TABLE fz.plain (ts timestamptz NOT NULL, v float8);
INSERT INTO fz.plain SELECT now() - g * interval '1 minute', g FROM generate_series(0, 10) g;
CREATE INDEX idx ON fz.plain (ts);
CREATE VIEW fz.view AS SELECT * FROM fz.plain;
CREATE MATERIALIZED VIEW fz.mv AS SELECT * FROM fz.plain;
CREATE TABLE fz.listp (ts timestamptz NOT NULL, v float8, k text) PARTITION BY LIST (k);
CREATE TABLE fz.listp_a PARTITION OF fz.listp FOR VALUES IN ('a');
CREATE TABLE fz.listp_b PARTITION OF fz.listp FOR VALUES IN ('b');
CREATE TABLE fz.rangev (ts timestamptz NOT NULL, v float8) PARTITION BY RANGE (v);
CREATE TABLE fz.rangev_1 PARTITION OF fz.rangev FOR VALUES FROM (0) TO (10);
CREATE TABLE fz.rangedef (ts timestamptz NOT NULL, v float8) PARTITION BY RANGE (ts);
CREATE TABLE fz.rangedef_d PARTITION OF fz.rangedef DEFAULT;
CREATE TABLE fz.rangedef_1 PARTITION OF fz.rangedef FOR VALUES FROM ('2026-01-01') TO ('2026-01-02');
CREATE TABLE fz.range2 (ts timestamptz NOT NULL, v float8) PARTITION BY RANGE (ts, v);
CREATE SEQUENCE fz.seq;
CREATE TYPE fz.comp AS (ts timestamptz, v float8);
SELECT iotstream.create_stream_table('fz.st_date', 'ts date NOT NULL, v float8', 'ts');
SELECT iotstream.create_stream_table('fz.st_ts', 'ts timestamp NOT NULL, v float8', 'ts');
SELECT iotstream.create_stream_table('fz.forever', 'ts timestamptz NOT NULL, v float8', 'ts', retention => NULL);
SELECT iotstream.create_stream_table('fz.far', 'ts timestamptz NOT NULL, v float8', 'ts', max_future => '300000 years');
-- and a rule, a rollup, a source, a credential and an export to name
SELECT iotstream.create_rule('fz_rule', 'fz.ok', 'v', '{}', 'zscore');
SELECT iotstream.create_rollup('fz.roll', 'fz.ok', '{}', '{v}');
SELECT iotstream.create_source('fz_src', '127.0.0.1:1', '{t}', 'fz.ok');
SELECT iotstream.create_storage_credential('fz_cred', 'sas', token => 'sv=2020-08-04&sig=abc');
SELECT iotstream.create_export('fz_exp', 'fz.ok', 'file://$S/exp', schedule => NULL);

-- the non-superuser: its own schema and stream table, nothing of ours
CREATE ROLE fuzzer LOGIN;
GRANT USAGE ON SCHEMA iotstream TO fuzzer;
GRANT USAGE ON SCHEMA fz TO fuzzer;
CREATE SCHEMA fzu AUTHORIZATION fuzzer;

-- the driver
CREATE SCHEMA fz16;
GRANT USAGE ON SCHEMA fz16 TO fuzzer;
-- what aggregates and window functions read: ascending finite times, and odd rows
CREATE TABLE fz16.agg_data (id int PRIMARY KEY, ts timestamptz, v float8);
INSERT INTO fz16.agg_data
SELECT g, '2026-01-01'::timestamptz + g * interval '1 minute', CASE WHEN g = 35 THEN 500 ELSE 20 + (g % 7) END
  FROM generate_series(1, 40) g;
CREATE TABLE fz16.agg_odd (id int PRIMARY KEY, ts timestamptz, v float8);
INSERT INTO fz16.agg_odd SELECT * FROM fz16.agg_data WHERE id <= 30;
INSERT INTO fz16.agg_odd VALUES
  (31, '2026-01-01 00:31', 'NaN'), (32, '2026-01-01 00:32', 'Infinity'), (33, '2026-01-01 00:33', '-Infinity'),
  (34, '2026-01-01 00:34', NULL), (35, NULL, 5), (36, 'infinity', 5), (37, '-infinity', 5),
  (38, '2026-01-01 00:10', 1e308), (39, '2026-01-01 00:10', -1e308), (40, '2026-01-01 00:40', 5e-324),
  (41, '2026-01-01 00:41', '-0'), (42, '1970-01-01', 20), (43, '294276-12-31 23:59:59+00', 20),
  (44, '4713-11-24 00:00:00+00 BC', 20);
-- for parallel aggregation: distinct times (the detectors' order is then
-- defined), NaN, infinity and NULL values, NULL times
CREATE TABLE fz16.par AS
SELECT g AS id, g % 5 AS k,
       CASE WHEN g % 5001 = 0 THEN NULL ELSE '2026-01-01'::timestamptz + ((g * 7919) % 20011) * interval '1 second' END AS ts,
       CASE WHEN g % 1000 = 0 THEN 500 WHEN g % 3001 = 0 THEN 'NaN' WHEN g % 4001 = 0 THEN 'Infinity'
            WHEN g % 6007 = 0 THEN NULL ELSE (g % 97)::float8 END AS v
  FROM generate_series(1, 20000) g;
ANALYZE fz16.par;
CREATE TABLE fz16.calls (id int PRIMARY KEY, fn text NOT NULL, form text NOT NULL, args text NOT NULL, sql text NOT NULL,
  expect text);
-- whether a probe's outcome is the expected one (see sql_fuzz_calls.mjs)
CREATE FUNCTION fz16.meets(expect text, status text, sqlstate text, message text, has_hint boolean, result text)
RETURNS boolean LANGUAGE sql IMMUTABLE AS \$\$
    SELECT CASE WHEN expect = 'ok' THEN status = 'ok' AND coalesce(result, '') NOT LIKE '(f)%'
                WHEN expect = 'not-false' THEN status = 'error' OR (status = 'ok' AND coalesce(result, '') NOT LIKE '(f)%')
                WHEN expect = 'error+hint' THEN status = 'error' AND coalesce(has_hint, false)
                WHEN expect LIKE 'error:%' THEN status = 'error' AND sqlstate = substr(expect, 7)
                WHEN expect LIKE 'error~%' THEN status = 'error' AND message ~ substr(expect, 7)
                ELSE status = expect END
\$\$;
CREATE TABLE fz16.results (role name NOT NULL, id int NOT NULL, status text NOT NULL, sqlstate text, message text,
  has_hint boolean, result text, rows bigint, partitions bigint, ms numeric, alone text, PRIMARY KEY (role, id));
-- a rule of each detector, whose params and query _evaluate() takes
SELECT iotstream.create_rule('fz_r_' || d, 'fz.ok', 'v', '{}', d, p::jsonb)
  FROM (VALUES ('threshold_count', '{"threshold": 10}'), ('zscore', '{}'), ('mad', '{}'), ('ewma', '{}'),
               ('cusum', '{"target": 8, "k": 1, "h": 5}'), ('spike_dip', '{}'), ('change_point', '{}')) v(d, p);
CREATE TABLE fz16.rule_sql AS SELECT detector, params, eval_sql FROM iotstream.rules WHERE name LIKE 'fz\_r\_%';
GRANT SELECT ON fz16.agg_data, fz16.agg_odd, fz16.calls, fz16.rule_sql TO fuzzer;
GRANT INSERT ON fz16.results TO fuzzer;

-- Runs call id as the current user: in a subtransaction that is always
-- rolled back (nothing a call does stays), recording what it returned or
-- raised and how many partitions it created.
CREATE FUNCTION fz16.run(call_id int, record boolean DEFAULT true) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE
    c fz16.calls;
    own text := CASE WHEN current_user = 'fuzzer' THEN 'fzu' ELSE 'fz' END;
    q text;
    rec record;
    n bigint := 0;
    res text := '';
    parts0 bigint;
    parts1 bigint;
    status text;
    st text;
    msg text;
    hint text;
    t0 timestamptz := clock_timestamp();
BEGIN
    SELECT * INTO c FROM fz16.calls WHERE id = call_id;
    q := replace(replace(c.sql, '{own_schema}', own), '{own}', own || '.ok');
    SELECT count(*) INTO parts0 FROM pg_inherits i JOIN pg_class k ON k.oid = i.inhrelid WHERE k.relkind IN ('r', 'p');
    BEGIN
        FOR rec IN EXECUTE q LOOP
            n := n + 1;
            IF n <= 3 THEN
                res := res || left(rec::text, 100) || ' ';
            END IF;
        END LOOP;
        SELECT count(*) INTO parts1 FROM pg_inherits i JOIN pg_class k ON k.oid = i.inhrelid WHERE k.relkind IN ('r', 'p');
        RAISE SQLSTATE 'FZ000';         -- undo whatever the call did
    EXCEPTION
        WHEN SQLSTATE 'FZ000' THEN
            status := 'ok';
        WHEN query_canceled THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
            status := 'timeout';
        WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
            status := 'error';
    END;
    IF NOT record THEN
        RETURN;
    END IF;
    INSERT INTO fz16.results VALUES (current_user, call_id, status, st, left(msg, 500), coalesce(hint, '') <> '',
        left(res, 300), n, parts1 - parts0, round(extract(epoch FROM clock_timestamp() - t0) * 1000, 1))
        ON CONFLICT DO NOTHING;
END \$\$;
SQL
psql -X -q -v ON_ERROR_STOP=1 -U fuzzer <<'SQL' >/dev/null
SET client_min_messages = warning;
SELECT iotstream.create_stream_table('fzu.ok', 'ts timestamptz NOT NULL, v float8', 'ts');
SELECT iotstream.ensure_partitions('fzu.ok', now() - interval '1 day', now());
INSERT INTO fzu.ok SELECT now() - g * interval '1 minute', g % 17 FROM generate_series(0, 300) g;
SELECT iotstream.create_stream_table('fzu.forever', 'ts timestamptz NOT NULL, v float8', 'ts', retention => NULL);
SELECT iotstream.create_stream_table('fzu.far', 'ts timestamptz NOT NULL, v float8', 'ts', max_future => '300000 years');
SQL
echo "ok - fixtures: stream tables, 14 other relations, rules, a rollup, source, credential, export; role fuzzer"

# ---------------------------------------------------------------- calls
q "SELECT coalesce(json_agg(json_build_object(
       'sig', p.oid::regprocedure::text, 'name', 'iotstream.' || quote_ident(p.proname), 'kind', p.prokind,
       'lang', l.lanname,
       'combine', coalesce((SELECT a.aggcombinefn <> 0 FROM pg_aggregate a WHERE a.aggfnoid = p.oid), false),
       'types', (SELECT coalesce(json_agg(format_type(t, NULL) ORDER BY o), '[]') FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, o)),
       'names', (SELECT coalesce(json_agg(p.proargnames[o] ORDER BY o), '[]') FROM generate_series(1, p.pronargs) o))
       ORDER BY p.oid::regprocedure::text), '[]')
     FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
    WHERE p.pronamespace = 'iotstream'::regnamespace
      AND NOT 'internal'::regtype = ANY (p.proargtypes::regtype[])" >"$W/functions.json"
nfn=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).length)' "$W/functions.json")
skipped=$(q "SELECT count(*) FROM pg_proc WHERE pronamespace = 'iotstream'::regnamespace
               AND 'internal'::regtype = ANY (proargtypes::regtype[])")
node "$IOTSTREAM_ROOT/test/node/sql_fuzz_calls.mjs" "$W/functions.json" "$S" "$W/calls.jsonl" 16
psql -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
CREATE TEMP TABLE raw (line text);
\copy raw FROM '$W/calls.jsonl' WITH (FORMAT csv, QUOTE e'\x01', DELIMITER e'\x02')
INSERT INTO fz16.calls SELECT (l->>'id')::int, l->>'fn', l->>'form', l->>'args', l->>'sql', l->>'expect'
  FROM (SELECT line::jsonb AS l FROM raw) x;
SQL
ncalls=$(q "SELECT count(*) FROM fz16.calls WHERE form NOT LIKE 'parallel%'")
echo "ok - $ncalls calls of $nfn functions ($skipped taking internal are skipped), each as postgres and as fuzzer"

# ---------------------------------------------------------------- run
ckpt() { psql -X -A -t -q -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'" 2>/dev/null || true; }
ckpt0=$(ckpt)
[ -n "$ckpt0" ] || fail "no checkpointer in pg_stat_activity"
cur_ckpt=$ckpt0
restarts=0

# After psql failed: HOW is crash (the server restarted: a new checkpointer),
# fatal (the session alone died) or driver (an error outside the call).
after_failure() {
  local now
  if grep -qE "server closed the connection|connection to server was lost|terminating connection|no connection to the server" "$1"; then
    wait_for "SELECT true" 120
    now=$(ckpt)
    if [ "$now" != "$cur_ckpt" ]; then
      cur_ckpt=$now
      restarts=$((restarts + 1))
      HOW=crash
    else
      HOW=fatal
    fi
  else
    HOW=driver
  fi
}

# run_range ROLE LO HI: calls LO..HI, one statement each; when the session
# dies, the first call without a result is what killed it.
run_range() {
  local role=$1 lo=$2 hi=$3 next=$2 id
  while [ "$next" -le "$hi" ]; do
    if seq "$next" "$hi" | sed 's/.*/SELECT fz16.run(&);/' |
      PGOPTIONS="-c statement_timeout=5s -c lock_timeout=2s -c client_min_messages=error" \
        psql -X -q -U "$role" -v ON_ERROR_STOP=1 >/dev/null 2>"$W/psql.err"; then
      return 0
    fi
    after_failure "$W/psql.err"
    id=$(q "SELECT min(c.id) FROM fz16.calls c WHERE c.id BETWEEN $next AND $hi
              AND NOT EXISTS (SELECT 1 FROM fz16.results r WHERE r.id = c.id AND r.role = '$role')")
    if [ -z "$id" ]; then
      echo "   $role, calls $next..$hi: psql failed ($HOW) after the last call: $(head -c 200 "$W/psql.err")"
      return 0
    fi
    psql -X -q -v ON_ERROR_STOP=1 -v role="$role" -v how="$HOW" -v msg="$(head -c 500 "$W/psql.err")" \
      <<<"INSERT INTO fz16.results (role, id, status, message) VALUES (:'role', $id, :'how', :'msg')" >/dev/null
    echo "   $role, call $id: $HOW: $(q "SELECT fn || ' ' || args FROM fz16.calls WHERE id = $id" | head -c 300)"
    next=$((id + 1))
  done
}

batch_restarts=()
while IFS='|' read -r fn lo hi; do
  for role in postgres fuzzer; do
    run_range "$role" "$lo" "$hi"
  done
  # the checkpointer is the same after every batch, or we know why
  now=$(ckpt)
  if [ "$now" != "$cur_ckpt" ]; then
    batch_restarts+=("$fn")
    cur_ckpt=$now
    restarts=$((restarts + 1))
    echo "   the server restarted during the calls of $fn"
  fi
done < <(q "SELECT CASE WHEN form = 'probe' THEN 'the probes' ELSE fn END, min(id), max(id)
             FROM fz16.calls WHERE form NOT LIKE 'parallel%' GROUP BY 1 ORDER BY min(id)")

# Aggregates with a combine function, serial and with a forced parallel plan
# (partial aggregation in two workers): no crash, a parallel plan indeed, and
# the same result where it must be exact (or at least the same success).
psql -X -q -c "CREATE TABLE fz16.parallel_results (id int PRIMARY KEY, plan_parallel boolean, serial text, parallel text)" >/dev/null
PARALLEL="-c parallel_setup_cost=0 -c parallel_tuple_cost=0 -c min_parallel_table_scan_size=0 -c max_parallel_workers_per_gather=2"
while IFS=$'\t' read -r id sql; do
  wrapped="SELECT md5(string_agg(x::text, '|' ORDER BY k)) FROM ($sql) s"
  plan=$(PGOPTIONS="$PARALLEL" psql -X -At -c "EXPLAIN $wrapped" 2>&1 | grep -cE "Partial (Hash|Group)?Aggregate" || true)
  serial=$(PGOPTIONS="-c max_parallel_workers_per_gather=0 -c statement_timeout=30s" psql -X -At -c "$wrapped" 2>&1 | head -1) || true
  parallel=$(PGOPTIONS="$PARALLEL -c statement_timeout=30s" psql -X -At -c "$wrapped" 2>&1 | head -1) || true
  if [ "$(ckpt)" != "$cur_ckpt" ]; then
    wait_for "SELECT true" 120
    cur_ckpt=$(ckpt)
    restarts=$((restarts + 1))
    batch_restarts+=("parallel call $id")
    parallel="crash: $parallel"
  fi
  psql -X -q -v id="$id" -v plan="$plan" -v s="$serial" -v p="$parallel" \
    <<<"INSERT INTO fz16.parallel_results VALUES (:id, :'plan' <> '0', :'s', :'p')" >/dev/null
done < <(psql -X -At -F $'\t' -c "SELECT id, sql FROM fz16.calls WHERE form LIKE 'parallel%' ORDER BY id")
q "SELECT format('   parallel aggregation: %s calls of %s aggregates, %s with a partial plan, %s with the serial result (%s must be exact)',
            count(*), count(DISTINCT c.fn), count(*) FILTER (WHERE p.plan_parallel),
            count(*) FILTER (WHERE p.serial = p.parallel), count(*) FILTER (WHERE c.expect = 'same'))
     FROM fz16.parallel_results p JOIN fz16.calls c USING (id)"
t1=$(date +%s)

# ---------------------------------------------------------------- report
status=0
bad() { echo "not ok - $*"; status=1; }

echo "   outcomes per role:"
psql -X -q -P footer=off -c "
  SELECT role, count(*) AS calls, count(*) FILTER (WHERE status = 'ok') AS returned,
         count(*) FILTER (WHERE status = 'error') AS raised,
         count(*) FILTER (WHERE status NOT IN ('ok', 'error')) AS other,
         count(DISTINCT sqlstate) AS sqlstates, max(ms) AS slowest_ms
    FROM fz16.results GROUP BY role ORDER BY role" | sed 's/^/   /'

# crashes: does each happen again on its own, in a fresh session? (these
# restarts are not counted again)
while IFS='|' read -r role id; do
  if PGOPTIONS="-c statement_timeout=5s -c client_min_messages=error" \
    psql -X -q -U "$role" -v ON_ERROR_STOP=1 -c "SELECT fz16.run($id, false)" >/dev/null 2>"$W/psql.err"; then
    q "UPDATE fz16.results SET alone = 'no' WHERE role = '$role' AND id = $id" >/dev/null
  else
    r0=$restarts
    after_failure "$W/psql.err"
    restarts=$r0
    q "UPDATE fz16.results SET alone = '$HOW again' WHERE role = '$role' AND id = $id" >/dev/null
  fi
done < <(q "SELECT role, id FROM fz16.results WHERE status IN ('crash', 'fatal') ORDER BY id")

# What is wrong with a call, if anything. Failing: a crash, a session that
# died, a timeout (but for calls to the unreachable 127.0.0.1:1, which may
# retry past it), XX000, a probe without its expected outcome, thousands of
# partitions, or an internal-looking
# message (could not / cache lookup failed / unrecognized / unexpected)
# unless it has a proper SQLSTATE and a HINT. The exceptions are listed too.
classified="
  SELECT r.role, r.id, replace(replace(replace(c.fn, 'timestamp with time zone', 'timestamptz'),
           'timestamp without time zone', 'timestamp'), 'double precision', 'float8') AS fn,
         c.args, c.sql, r.status, r.sqlstate, r.message, r.alone,
         CASE WHEN r.status IN ('crash', 'fatal', 'driver') THEN r.status
              WHEN r.status = 'timeout' AND c.sql LIKE '%127.0.0.1:1/%' THEN 'timeout (network, listed only)'
              WHEN r.status = 'timeout' THEN 'timeout'
              WHEN r.sqlstate = 'XX000' THEN 'XX000'
              WHEN c.expect IS NOT NULL AND NOT fz16.meets(c.expect, r.status, r.sqlstate, r.message, r.has_hint, r.result)
                THEN 'probe: expected ' || c.expect
              WHEN c.fn LIKE 'iotstream.ensure_partition%' AND r.partitions > 1000 THEN 'partitions > 1000'
              WHEN r.message ~* '^(could not|cache lookup failed|unrecognized|unexpected)' AND r.has_hint
                THEN 'internal-style (with hint, listed only)'
              WHEN r.message ~* '^(could not|cache lookup failed|unrecognized|unexpected)' THEN 'internal-style, no hint'
         END AS problem
    FROM fz16.results r JOIN fz16.calls c USING (id)
   UNION ALL
  SELECT 'postgres', p.id, c.fn, c.form || ': ' || c.args, c.sql,
         CASE WHEN p.parallel LIKE 'crash:%' THEN 'crash' ELSE 'ok' END, NULL,
         'serial: ' || left(p.serial, 90) || '; parallel: ' || left(p.parallel, 90), NULL,
         CASE WHEN p.parallel LIKE 'crash:%' THEN 'crash'
              WHEN NOT p.plan_parallel THEN 'parallel: no partial aggregation planned'
              WHEN c.expect = 'same' AND p.serial IS DISTINCT FROM p.parallel THEN 'parallel: a different result'
              WHEN (p.serial ~ '^[0-9a-f]{32}$') <> (p.parallel ~ '^[0-9a-f]{32}$') THEN 'parallel: fails only one way'
         END
    FROM fz16.parallel_results p JOIN fz16.calls c USING (id)"
failing="problem IS NOT NULL AND problem NOT LIKE '%listed only%'"
noff=$(q "SELECT count(*) FROM ($classified) o WHERE $failing")
q "SELECT o.problem || ' | ' || o.role || ' | ' || o.fn || ' | ' || o.args || ' | ' || coalesce(o.sqlstate, '') || ' | ' ||
          coalesce(o.message, '') || coalesce(' | alone: ' || o.alone, '') || E'\n    ' || o.sql
     FROM ($classified) o WHERE o.problem IS NOT NULL ORDER BY o.problem, o.fn, o.role, o.id" >"$W/offenders.txt"

echo "   partitions created by ensure_partition(s) calls that returned (the most first):"
psql -X -q -P footer=off -c "
  SELECT r.role, c.fn, c.args, r.partitions, r.ms
    FROM fz16.results r JOIN fz16.calls c USING (id)
   WHERE c.fn LIKE 'iotstream.ensure_partition%' AND r.status = 'ok' AND r.partitions > 0
   ORDER BY r.partitions DESC LIMIT 5" | sed 's/^/   /'
q "SELECT 'timeouts of ensure_partitions (neither refused nor done in 5 s): ' || count(*)
     FROM fz16.results r JOIN fz16.calls c USING (id) WHERE c.fn LIKE 'iotstream.ensure_partition%' AND r.status = 'timeout'" |
  sed 's/^/   /'

echo "   errors without a HINT, from functions written in C (informational; the first of each kind):"
psql -X -q -P footer=off -c "
  SELECT c.fn, r.sqlstate,
         left(regexp_replace(regexp_replace(r.message, '\"[^\"]*\"', '\"...\"', 'g'), '[0-9]+', 'N', 'g'), 80) AS message,
         count(*) AS calls
    FROM fz16.results r JOIN fz16.calls c USING (id)
    JOIN pg_proc p ON p.oid = c.fn::regprocedure JOIN pg_language l ON l.oid = p.prolang
   WHERE r.status = 'error' AND NOT r.has_hint AND l.lanname = 'c' AND r.sqlstate NOT IN ('42501', '57014', '42601')
   GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 LIMIT 30" | sed 's/^/   /'

if [ "$(ckpt)" = "$ckpt0" ] && [ "$restarts" = 0 ]; then
  echo "ok - the server never restarted (checkpointer $ckpt0 before and after every batch)"
else
  bad "the server restarted $restarts times (checkpointer $ckpt0 -> $(ckpt))${batch_restarts[*]:+; unexplained, during: ${batch_restarts[*]}}"
fi
# a timeout is an ERROR too (57014); the offenders check below judges it
answered=$(q "SELECT count(*) FROM fz16.results WHERE status IN ('ok', 'error', 'timeout')")
if [ "$answered" = $((2 * ncalls)) ]; then
  echo "ok - every call returned or raised an ERROR: $answered of $((2 * ncalls))"
else
  bad "$answered of $((2 * ncalls)) calls returned or raised an ERROR; the others crashed the server or their session"
fi
nlisted=$(q "SELECT count(*) FROM ($classified) o WHERE o.problem IS NOT NULL")
if [ "$nlisted" != 0 ]; then
  echo "   offending calls, grouped (crashes first; one example of each; all of them in $W/offenders.txt):"
  psql -X -q -P footer=off -c "
    SELECT o.problem, o.fn AS function, string_agg(DISTINCT o.role, ',') AS roles, o.sqlstate,
           CASE WHEN o.status IN ('crash', 'fatal') THEN 'alone again: ' || coalesce(min(o.alone), '?')
                ELSE left(regexp_replace(regexp_replace(o.message, '\"[^\"]*\"', '\"...\"', 'g'), '[0-9]+', 'N', 'g'), 100)
           END AS message,
           count(*) AS calls, left((array_agg(o.args ORDER BY o.id))[1], 110) AS args_of_the_first
      FROM ($classified) o WHERE o.problem IS NOT NULL
     GROUP BY o.problem, o.fn, o.status, o.sqlstate,
              left(regexp_replace(regexp_replace(o.message, '\"[^\"]*\"', '\"...\"', 'g'), '[0-9]+', 'N', 'g'), 100)
     ORDER BY o.problem NOT IN ('crash', 'fatal', 'driver'), o.problem LIKE '%listed only%', o.problem, o.fn, 5" |
    sed 's/^/   /'
fi
if [ "$noff" = 0 ]; then
  echo "ok - no crash, timeout, XX000 or internal-looking error without a hint"
else
  bad "$noff offending calls (crash, session died, timeout, XX000, a probe without its outcome, partitions > 1000, or could not / cache lookup failed / unrecognized / unexpected without a hint)"
fi
if [ -n "${CLUSTER_DATA:-}" ] && [ -f "$CLUSTER_DATA/server.log" ]; then
  tail -c +$((log0 + 1)) "$CLUSTER_DATA/server.log" | grep -A 1 -E "terminated by signal|PANIC" | head -40 | sed 's/^/   log: /' || true
fi

echo "   $((2 * ncalls)) calls in $((t1 - t0)) s ($(($(date +%s) - t0)) s with setup and report)"
[ "$status" = 0 ] || fail "the SQL fuzz found problems (above)"
echo "ok"

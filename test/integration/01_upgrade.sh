#!/usr/bin/env bash
# Upgrade from the oldest released version (0.1.0) to the current one,
# through every released version between (sql/updates/ holds each step).
# Invariant: ALTER EXTENSION iotstream UPDATE leaves exactly the catalog that
# CREATE EXTENSION iotstream makes, and the definitions made with the old
# version work on with the new code.  Two fresh databases of the test
# cluster get the same stream tables (owned by a non-superuser role, it01),
# rules and rollups, rows and all:
#   it01_up     CREATE EXTENSION iotstream VERSION '0.1.0', the definitions,
#               then ALTER EXTENSION iotstream UPDATE TO the current version
#   it01_fresh  CREATE EXTENSION iotstream, then the definitions
# Their catalogs (schemas iotstream and it01: functions, relations, columns,
# constraints, indexes, triggers, policies, views, sequences, types,
# privileges, comments, extension members, event triggers, initial
# privileges) must be identical line for line, and so must the stored rule
# and rollup statements.  Then, on the upgraded database: the statements
# name their tables by placeholder, the rollup tables belong to the source
# table's owner, settings rows are unchanged, backtest_rule finds the
# injected bursts (and what the fresh database finds, for every rule),
# refresh_rollup and a batch's delta make the rollups equal GROUP BY, and
# all of it still works once the table is renamed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
W=$IOTSTREAM_WORK
OLD=0.1.0
NEW=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$IOTSTREAM_ROOT/iotstream.control")
UP=it01_up
FRESH=it01_fresh
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
qu() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$UP" -c "$1"; }
qf() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$FRESH" -c "$1"; }
# sql_in DBNAME SQL: its output
sql_in() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

# what an earlier run left
cleanup_dbs() {
  q "DROP DATABASE IF EXISTS $UP" >/dev/null
  q "DROP DATABASE IF EXISTS $FRESH" >/dev/null
  q "DROP ROLE IF EXISTS it01_owner" >/dev/null
}
cleanup_dbs 2>/dev/null || true
q "CREATE ROLE it01_owner NOLOGIN"
q "CREATE DATABASE $UP"
q "CREATE DATABASE $FRESH"

# ------------------------------------------------------------ the catalog
# One line per object, attribute and line of the value, sorted: a diff of
# two dumps names what differs.  OIDs never appear, only names.
cat >"$W/catalog.sql" <<'SQL'
WITH ns AS (
    SELECT oid, nspname FROM pg_namespace WHERE nspname IN ('iotstream', 'it01')
), rels AS (
    -- partitions are data: the partitions made for "now" depend on the hour
    SELECT c.*, format('%I.%I', n.nspname, c.relname) AS qn
      FROM pg_class c JOIN ns n ON n.oid = c.relnamespace
     WHERE NOT c.relispartition
), procs AS (
    SELECT p.*, format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) AS qn
      FROM pg_proc p JOIN ns n ON n.oid = p.pronamespace
), ext AS (
    SELECT oid FROM pg_extension WHERE extname = 'iotstream'
), items(k, a, v) AS (
    SELECT 'schema ' || n.nspname, 'owner', n.nspowner::regrole::text FROM pg_namespace n JOIN ns USING (oid)
    UNION ALL SELECT 'schema ' || n.nspname, 'acl', n.nspacl::text FROM pg_namespace n JOIN ns USING (oid)
    UNION ALL SELECT 'extension ' || e.extname, 'row',
           format('version=%s owner=%s schema=%s relocatable=%s', e.extversion, e.extowner::regrole,
                  e.extnamespace::regnamespace, e.extrelocatable)
      FROM pg_extension e JOIN ext USING (oid)
    UNION ALL SELECT 'extension ' || e.extname, 'config',
           (SELECT string_agg(format('%s where %L', c::regclass, w), E'\n' ORDER BY c::regclass::text)
              FROM unnest(e.extconfig, e.extcondition) u(c, w))
      FROM pg_extension e JOIN ext USING (oid)
    -- functions, procedures and aggregates
    UNION ALL SELECT 'function ' || p.qn, x.a, x.v
      FROM procs p CROSS JOIN LATERAL (VALUES
        ('kind', p.prokind::text),
        ('arguments', pg_get_function_arguments(p.oid)),
        ('result', pg_get_function_result(p.oid)),
        ('language', (SELECT lanname FROM pg_language WHERE oid = p.prolang)),
        ('prosrc', p.prosrc),
        ('probin', p.probin),
        ('attributes', format('volatile=%s strict=%s secdef=%s leakproof=%s parallel=%s retset=%s cost=%s rows=%s support=%s',
                              p.provolatile, p.proisstrict, p.prosecdef, p.proleakproof, p.proparallel,
                              p.proretset, p.procost, p.prorows, p.prosupport)),
        ('config', p.proconfig::text),
        ('owner', p.proowner::regrole::text),
        ('acl', p.proacl::text)) x(a, v)
    UNION ALL SELECT 'function ' || p.qn, 'aggregate',
           format('kind=%s nargs=%s trans=%s final=%s combine=%s serial=%s deserial=%s mtrans=%s minv=%s mfinal=%s '
                  'finalextra=%s mfinalextra=%s finalmodify=%s mfinalmodify=%s sortop=%s transtype=%s transspace=%s '
                  'mtranstype=%s mtransspace=%s init=%s minit=%s',
                  g.aggkind, g.aggnumdirectargs, g.aggtransfn, g.aggfinalfn, g.aggcombinefn, g.aggserialfn,
                  g.aggdeserialfn, g.aggmtransfn, g.aggminvtransfn, g.aggmfinalfn, g.aggfinalextra, g.aggmfinalextra,
                  g.aggfinalmodify, g.aggmfinalmodify, g.aggsortop::regoperator, g.aggtranstype::regtype,
                  g.aggtransspace, g.aggmtranstype::regtype, g.aggmtransspace, g.agginitval, g.aggminitval)
      FROM procs p JOIN pg_aggregate g ON g.aggfnoid = p.oid
    -- tables, views, sequences, indexes, composite types
    UNION ALL SELECT 'relation ' || r.qn, x.a, x.v
      FROM rels r CROSS JOIN LATERAL (VALUES
        ('row', format('kind=%s persistence=%s rowsecurity=%s forcerowsecurity=%s replident=%s options=%s partkey=%s am=%s',
                       r.relkind, r.relpersistence, r.relrowsecurity, r.relforcerowsecurity, r.relreplident,
                       r.reloptions, pg_get_partkeydef(r.oid), (SELECT amname FROM pg_am WHERE oid = r.relam))),
        ('owner', r.relowner::regrole::text),
        ('acl', r.relacl::text)) x(a, v)
    UNION ALL SELECT 'relation ' || r.qn, format('column %s', lpad(a.attnum::text, 3, '0')),
           format('%I %s%s%s%s%s%s collation=%s storage=%s compression=%s options=%s acl=%s', a.attname,
                  format_type(a.atttypid, a.atttypmod),
                  CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
                  CASE WHEN a.atthasdef THEN ' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid) ELSE '' END,
                  CASE WHEN a.attidentity <> '' THEN ' IDENTITY ' || a.attidentity::text ELSE '' END,
                  CASE WHEN a.attgenerated <> '' THEN ' GENERATED ' || a.attgenerated::text ELSE '' END,
                  CASE WHEN a.attisdropped THEN ' DROPPED' ELSE '' END,
                  a.attcollation::regcollation, a.attstorage, a.attcompression,
                  -- this server's pg_attver option differs between any two creations of a relation
                  array(SELECT o FROM unnest(a.attoptions) o WHERE o NOT LIKE 'pg\_attver=%'), a.attacl)
      FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    UNION ALL SELECT 'relation ' || r.qn, 'constraint ' || c.conname,
           format('%s deferrable=%s deferred=%s validated=%s', pg_get_constraintdef(c.oid), c.condeferrable,
                  c.condeferred, c.convalidated)
      FROM rels r JOIN pg_constraint c ON c.conrelid = r.oid
    UNION ALL SELECT 'relation ' || r.qn, 'index', pg_get_indexdef(r.oid) || format(' valid=%s', i.indisvalid)
      FROM rels r JOIN pg_index i ON i.indexrelid = r.oid
    UNION ALL SELECT 'relation ' || r.qn, 'trigger ' || t.tgname, pg_get_triggerdef(t.oid, true) || ' enabled=' || t.tgenabled::text
      FROM rels r JOIN pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
    UNION ALL SELECT 'relation ' || r.qn, 'policy ' || p.polname,
           format('cmd=%s permissive=%s roles=%s using=%s check=%s', p.polcmd, p.polpermissive,
                  (SELECT string_agg(CASE WHEN x = 0 THEN 'public' ELSE x::regrole::text END, ',' ORDER BY 1)
                     FROM unnest(p.polroles) x),
                  pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
      FROM rels r JOIN pg_policy p ON p.polrelid = r.oid
    UNION ALL SELECT 'relation ' || r.qn, 'view', pg_get_viewdef(r.oid, true)
      FROM rels r WHERE r.relkind IN ('v', 'm')
    UNION ALL SELECT 'relation ' || r.qn, 'rules', string_agg(w.rulename, ',' ORDER BY w.rulename)
      FROM rels r JOIN pg_rewrite w ON w.ev_class = r.oid WHERE w.rulename <> '_RETURN' GROUP BY r.qn
    UNION ALL SELECT 'relation ' || r.qn, 'sequence',
           format('type=%s start=%s increment=%s max=%s min=%s cache=%s cycle=%s owned_by=%s', s.seqtypid::regtype,
                  s.seqstart, s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle,
                  (SELECT format('%s.%I', d.refobjid::regclass, a.attname) FROM pg_depend d
                     JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = r.oid AND d.deptype IN ('a', 'i')
                      AND d.refclassid = 'pg_class'::regclass))
      FROM rels r JOIN pg_sequence s ON s.seqrelid = r.oid
    -- types, but not the row and array types that come with tables
    UNION ALL SELECT 'type ' || format_type(t.oid, NULL), 'row',
           format('type=%s category=%s len=%s byval=%s align=%s storage=%s in=%s out=%s recv=%s send=%s '
                  'modin=%s modout=%s analyze=%s subscript=%s elem=%s array=%s base=%s notnull=%s default=%s '
                  'collation=%s owner=%s acl=%s',
                  t.typtype, t.typcategory, t.typlen, t.typbyval, t.typalign, t.typstorage, t.typinput,
                  t.typoutput, t.typreceive, t.typsend, t.typmodin, t.typmodout, t.typanalyze, t.typsubscript,
                  t.typelem::regtype, t.typarray::regtype, t.typbasetype::regtype, t.typnotnull, t.typdefault,
                  t.typcollation, t.typowner::regrole, t.typacl)
      FROM pg_type t JOIN ns n ON n.oid = t.typnamespace
     WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c')
       AND NOT EXISTS (SELECT 1 FROM pg_type e JOIN pg_class c ON c.oid = e.typrelid
                        WHERE e.oid = t.typelem AND e.typarray = t.oid AND c.relkind <> 'c')
    UNION ALL SELECT 'type ' || format_type(t.oid, NULL), 'enum',
           (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid)
      FROM pg_type t JOIN ns n ON n.oid = t.typnamespace WHERE t.typtype = 'e'
    UNION ALL SELECT 'type ' || format_type(c.contypid, NULL), 'constraint ' || c.conname, pg_get_constraintdef(c.oid)
      FROM pg_constraint c JOIN ns n ON n.oid = c.connamespace WHERE c.contypid <> 0
    UNION ALL SELECT 'operator ' || o.oid::regoperator::text, 'row',
           format('proc=%s commutator=%s negator=%s restrict=%s join=%s merges=%s hashes=%s owner=%s',
                  o.oprcode, o.oprcom::regoperator, o.oprnegate::regoperator, o.oprrest, o.oprjoin,
                  o.oprcanmerge, o.oprcanhash, o.oprowner::regrole)
      FROM pg_operator o JOIN ns n ON n.oid = o.oprnamespace
    -- event triggers live outside any schema
    UNION ALL SELECT 'event trigger ' || e.evtname, 'row',
           format('event=%s function=%s enabled=%s tags=%s owner=%s', e.evtevent, e.evtfoid::regprocedure,
                  e.evtenabled, e.evttags, e.evtowner::regrole)
      FROM pg_event_trigger e
    -- what the extension owns, wherever it lives (casts, event triggers, ...)
    UNION ALL SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid), 'deptype', d.deptype::text
      FROM pg_depend d JOIN ext ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid
    -- the dependencies of and on the extension's objects (a view that still
    -- reads a dropped function's replacement by its old OID, say)
    UNION ALL SELECT 'depend ' || pg_describe_object(d.classid, d.objid, d.objsubid),
           'on ' || pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid), d.deptype::text
      FROM pg_depend d
     WHERE d.deptype <> 'e'
       AND NOT EXISTS (SELECT 1 FROM pg_class t WHERE d.classid = 'pg_class'::regclass AND t.oid = d.objid
                          AND t.relkind = 't')   -- named by OID
       AND EXISTS (SELECT 1 FROM pg_depend m JOIN ext ON m.refclassid = 'pg_extension'::regclass AND m.refobjid = ext.oid
                    WHERE (m.classid, m.objid) IN ((d.classid, d.objid), (d.refclassid, d.refobjid)))
    -- comments and initial privileges (what pg_dump compares privileges
    -- with) of everything that is not built in
    UNION ALL SELECT 'comment ' || pg_describe_object(d.classoid, d.objoid, d.objsubid), 'text', d.description
      FROM pg_description d WHERE d.objoid >= 16384
    UNION ALL SELECT 'init privs ' || pg_describe_object(i.classoid, i.objoid, i.objsubid), i.privtype::text,
           i.initprivs::text
      FROM pg_init_privs i WHERE i.objoid >= 16384
)
SELECT k || ' ' || a || ' | ' || l
  FROM items, LATERAL regexp_split_to_table(coalesce(v, '<NULL>'), E'\n') WITH ORDINALITY s(l, o)
 ORDER BY k COLLATE "C", a COLLATE "C", v COLLATE "C", o;
SQL
catalog() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -f "$W/catalog.sql"; }
# the stored rules and rollups: everything but ids and times
definitions() {
  sql_in "$1" "SELECT format(E'rule %s on %s: %s %s %s %s window=%s filter=%s lateness=%s\n  %s', name, source_table,
                             value_column, key_columns, detector, params, window_size, filter, lateness, eval_sql)
                 FROM iotstream.rules ORDER BY name"
  sql_in "$1" "SELECT format(E'rollup %s on %s: %s %s %s bucket=%s lateness=%s\n  %s\n  %s\n  %s', name, source_table,
                             rollup_table, key_columns, value_columns, bucket, lateness, delta_sql, upsert_sql, refresh_sql)
                 FROM iotstream.rollups ORDER BY name"
}
# same NAME FILE_A FILE_B: identical, or the diff and a failure
same() {
  if diff -u --label "$UP" --label "$FRESH" "$2" "$3" >"$W/diff"; then
    echo "ok - $1 ($(wc -l <"$2") lines)"
  else
    echo "not ok - $1; lines only in $UP (-) and only in $FRESH (+):" >&2
    head -300 "$W/diff" >&2
    fail "$1"
  fi
}

# ------------------------------------------------------------ definitions
# Two stream tables owned by it01_owner: plain names, and names that need
# quoting.  A superuser adopts them, defines rules and rollups (0.1.0 has
# no schema USAGE for other roles), and it01_owner inserts the rows:
#   it01.readings  ts, sensor_id, value: s1, s2, s3 and s9 every 10 s from
#                  00:00 to 00:30; bursts of 6 readings above 100 for s2 at
#                  00:05 and s3 at 00:12, one of 3 for s1 at 00:20 (below
#                  min_count), one of 6 for s9 at 00:08 (filtered out); a
#                  spike of 60 for s3 at 00:25:30
#   it01."Line 7"  "At", "kW": every 30 s from 00:00 to 01:00, a jump at 00:40
define() {
  psql -X -q -v ON_ERROR_STOP=1 -d "$1" <<'SQL' >/dev/null
SET client_min_messages = warning;
CREATE SCHEMA it01 AUTHORIZATION it01_owner;
SET ROLE it01_owner;
CREATE TABLE it01.readings (ts timestamptz NOT NULL, sensor_id text NOT NULL, value float8 NOT NULL)
    PARTITION BY RANGE (ts);
CREATE TABLE it01."Line 7" ("At" timestamptz NOT NULL, "kW" numeric NOT NULL) PARTITION BY RANGE ("At");
RESET ROLE;
SELECT iotstream.create_stream_table('it01.readings', NULL, 'ts', partition_interval => '1 hour', premake => 1,
                                     retention => NULL, max_past => '3650 days');
SELECT iotstream.create_stream_table('it01."Line 7"', NULL, 'At', partition_interval => '1 day', premake => 1,
                                     retention => NULL, max_past => '3650 days');
SELECT iotstream.ensure_partitions('it01.readings', '2026-11-01 00:00+00', '2026-11-01 00:59+00');
SELECT iotstream.ensure_partitions('it01."Line 7"', '2026-11-01 00:00+00', '2026-11-01 00:59+00');
SET ROLE it01_owner;
INSERT INTO it01.readings (ts, sensor_id, value)
SELECT t, s, CASE
        WHEN s = 's2' AND t >= '2026-11-01 00:05+00' AND t < '2026-11-01 00:06+00' THEN 120
        WHEN s = 's3' AND t >= '2026-11-01 00:12+00' AND t < '2026-11-01 00:13+00' THEN 130
        WHEN s = 's1' AND t >= '2026-11-01 00:20+00' AND t < '2026-11-01 00:20:30+00' THEN 150
        WHEN s = 's9' AND t >= '2026-11-01 00:08+00' AND t < '2026-11-01 00:09+00' THEN 140
        WHEN s = 's3' AND t = '2026-11-01 00:25:30+00' THEN 60
        ELSE 20 + (extract(epoch FROM t)::bigint / 10 * 7 % 5) END
  FROM generate_series(timestamptz '2026-11-01 00:00+00', '2026-11-01 00:29:50+00', '10 seconds') t,
       unnest(ARRAY['s1', 's2', 's3', 's9']) s;
INSERT INTO it01."Line 7"
SELECT t, CASE WHEN t >= '2026-11-01 00:40+00' AND t < '2026-11-01 00:45+00' THEN 500
               ELSE 50 + extract(epoch FROM t)::bigint / 30 % 3 END
  FROM generate_series(timestamptz '2026-11-01 00:00+00', '2026-11-01 00:59:30+00', '30 seconds') t;
RESET ROLE;
SELECT iotstream.create_rule('it01_burst', 'it01.readings', 'value', ARRAY['sensor_id'], 'threshold_count',
                             '{"threshold": 100, "min_count": 5}', filter => 'sensor_id <> ''s9''',
                             lateness => '1 minute');
SELECT iotstream.create_rule('it01_mad', 'it01.readings', 'value', ARRAY['sensor_id'], 'mad', '{"threshold": 6}');
SELECT iotstream.create_rule('it01_cusum', 'it01.readings', 'value', ARRAY['sensor_id'], 'cusum',
                             '{"target": 22, "k": 5, "h": 200}');
SELECT iotstream.create_rule('it01_line', 'it01."Line 7"', 'kW', '{}', 'zscore', '{"threshold": 3, "history": 5}',
                             "window" => '5 minutes');
SELECT iotstream.create_rollup('it01.readings_1m', 'it01.readings', ARRAY['sensor_id'], ARRAY['value'],
                               bucket => '1 minute', lateness => '1 minute');
SELECT iotstream.create_rollup('it01."Line 7 by 5m"', 'it01."Line 7"', '{}', ARRAY['kW'], bucket => '5 minutes');
SQL
}

# the fresh database, as CREATE EXTENSION makes it now
qf "CREATE EXTENSION iotstream"
assert_eq "$(qf "SELECT extversion FROM pg_extension WHERE extname = 'iotstream'")" "$NEW" "$FRESH: CREATE EXTENSION installs"
define "$FRESH"
catalog "$FRESH" >"$W/fresh.txt"
definitions "$FRESH" >"$W/fresh_definitions.txt"

# the old version, with the same definitions
qu "CREATE EXTENSION iotstream VERSION '$OLD'"
assert_eq "$(qu "SELECT extversion FROM pg_extension WHERE extname = 'iotstream'")" "$OLD" "$UP: CREATE EXTENSION installs"
define "$UP"
catalog "$UP" >"$W/old.txt"
# the comparison sees the versions apart (else it could not see a miss)
if diff -q "$W/old.txt" "$W/fresh.txt" >/dev/null; then
  fail "the catalogs of $OLD and $NEW compare equal: the comparison sees nothing"
fi
echo "ok - the catalogs of $OLD and $NEW differ in $(diff "$W/old.txt" "$W/fresh.txt" | grep -c '^[<>]') lines before the update"
assert_eq "$(qu "SELECT string_agg(DISTINCT c.relowner::regrole::text, ',') FROM iotstream.rollups r
                   JOIN pg_class c ON c.oid IN (r.rollup_table, r.delta_table)")" postgres \
  "$OLD: rollup tables belong to the superuser who created them"
assert_eq "$(qu "SELECT count(*) FROM iotstream.rules WHERE eval_sql LIKE '%it01.readings%'")" 3 \
  "$OLD: rule statements name their table"
settings0=$(qu "SELECT string_agg(s::text, ' ' ORDER BY relid::text) FROM iotstream.stream_table_settings s")
# dedup keys of a source, as the old version stored them (one 64-bit hash a
# row; replica mode skips the foreign key to a source this test lacks)
qu "SET session_replication_role = replica;
    INSERT INTO iotstream.source_dedup (source_id, key_hash, seen_at)
    VALUES (9001, 1, '2026-12-01 00:00+00'), (9001, -1, '2026-12-01 00:00+00'),
           (9001, x'0123456789abcdef'::bigint, '2026-12-01 00:00+00'), (9001, 7, '2026-12-01 00:01+00')" >/dev/null

# ------------------------------------------------------------ the update
# 0.1.0 ran rules as the superuser; 0.2.0 runs them as the table's owner.
# A rule whose filter reads what the owner may not (a superuser's table)
# stops the update, which then changes nothing; once it is dropped the
# update goes through.
qu "CREATE TABLE public.it01_sensors AS SELECT 's1'::text AS sensor_id;
    SELECT iotstream.create_rule('it01_forbidden', 'it01.readings', 'value', '{}', 'threshold_count',
                                 '{\"threshold\": 100}', filter => 'sensor_id IN (SELECT sensor_id FROM public.it01_sensors)')" >/dev/null
forbidden0=$(qu "SELECT md5(string_agg(r::text, ',' ORDER BY rule_id)) FROM iotstream.rules r")
if qu "ALTER EXTENSION iotstream UPDATE TO '$NEW'" >/dev/null 2>"$W/refused"; then
  fail "the update went through with a rule its table's owner cannot run"
fi
grep -q "rule 'it01_forbidden' cannot be rebuilt for iotstream 0.2.0: .*permission denied for table it01_sensors" "$W/refused" ||
  fail "unexpected error: $(cat "$W/refused")"
echo "ok - a rule its table's owner cannot run stops the update: $(head -1 "$W/refused")"
assert_eq "$(qu "SELECT extversion FROM pg_extension WHERE extname = 'iotstream'")" "$OLD" "the refused update changed nothing"
assert_eq "$(qu "SELECT md5(string_agg(r::text, ',' ORDER BY rule_id)) FROM iotstream.rules r")" "$forbidden0" \
  "the refused update left the rules as they were"
qu "SELECT iotstream.drop_rule('it01_forbidden'); DROP TABLE public.it01_sensors" >/dev/null

t0=$(date +%s%N)
qu "ALTER EXTENSION iotstream UPDATE TO '$NEW'"
echo "ok - ALTER EXTENSION iotstream UPDATE TO '$NEW' ($((($(date +%s%N) - t0) / 1000000)) ms)"
assert_eq "$(qu "SELECT extversion FROM pg_extension WHERE extname = 'iotstream'")" "$NEW" "$UP: updated"
# the old keys, moved to one row per batch and shard: 16 bytes each, the
# old hash first and a second half of zeros (which matches any key with
# that first half: src/ingest/dedup.c)
assert_eq "$(qu "SELECT string_agg(format('%s/%s/%s/%s', to_char(seen_at AT TIME ZONE 'UTC', 'HH24:MI'), shard,
                          encode(substr(keys, 16 * i + 1, 8), 'hex'), encode(substr(keys, 16 * i + 9, 8), 'hex')),
                          ' ' ORDER BY seen_at, shard, substr(keys, 16 * i + 1, 8))
                   FROM iotstream.source_dedup, generate_series(0, length(keys) / 16 - 1) i
                  WHERE source_id = 9001 AND length(keys) % 16 = 0")" \
  "00:00/0/0000000000000001/0000000000000000 00:00/0/0123456789abcdef/0000000000000000 00:00/31/ffffffffffffffff/0000000000000000 00:01/0/0000000000000007/0000000000000000" \
  "$UP: the old dedup keys are kept, by batch and shard, as 16-byte keys"

catalog "$UP" >"$W/up.txt"
same "the updated catalog is the one CREATE EXTENSION makes" "$W/up.txt" "$W/fresh.txt"
definitions "$UP" >"$W/up_definitions.txt"
same "the stored rules and rollups are the ones $NEW writes" "$W/up_definitions.txt" "$W/fresh_definitions.txt"

# ------------------------------------------------------------ definitions after the update
assert_eq "$(qu "SELECT string_agg(DISTINCT c.relowner::regrole::text, ',') FROM iotstream.rollups r
                   JOIN pg_class c ON c.oid IN (r.rollup_table, r.delta_table)")" it01_owner \
  "rollup and delta tables belong to the source table's owner"
assert_eq "$(qu "SELECT count(*) FILTER (WHERE eval_sql LIKE '%FROM \"@iotstream.source@\" WHERE%') || ' '
                        || count(*) FILTER (WHERE eval_sql ~ 'it01|readings|Line')
                   FROM iotstream.rules")" "4 0" "rule statements name their table by placeholder, and by nothing else"
assert_eq "$(qu "SELECT count(*) FILTER (WHERE delta_sql LIKE 'INSERT INTO \"@iotstream.delta@\" VALUES (%'
                                          AND upsert_sql LIKE 'WITH d AS (DELETE FROM \"@iotstream.delta@\" RETURNING *) INSERT INTO \"@iotstream.rollup@\" AS r %'
                                          AND refresh_sql LIKE 'INSERT INTO \"@iotstream.rollup@\" (%) FROM \"@iotstream.source@\" WHERE %') || ' '
                        || count(*) FILTER (WHERE concat(delta_sql, upsert_sql, refresh_sql) ~ 'it01|readings|Line|_rollup_delta_')
                   FROM iotstream.rollups")" "2 0" "rollup statements name their tables by placeholder, and by nothing else"
assert_eq "$(qu "SELECT string_agg(s::text, ' ' ORDER BY relid::text) FROM iotstream.stream_table_settings s")" \
  "$settings0" "settings rows are unchanged"

# ------------------------------------------------------------ they work with the new code
bursts() {
  sql_in "$1" "SELECT string_agg(format('%s@%s', key->>'sensor_id', to_char(window_start AT TIME ZONE 'UTC', 'HH24:MI')), ' '
                                 ORDER BY key->>'sensor_id', window_start)
                 FROM iotstream.backtest_rule('it01_burst', '2026-11-01 00:00+00', '2026-11-01 00:30+00')"
}
assert_eq "$(bursts "$UP")" "s2@00:05 s3@00:12" "backtest_rule finds exactly the injected bursts of 5 or more"
backtest() {
  sql_in "$1" "SELECT count(*) || ' ' || coalesce(md5(string_agg(b::text, ',' ORDER BY b::text)), '-')
                 FROM iotstream.backtest_rule('$2', '2026-11-01 00:00+00', '2026-11-01 01:00+00') b"
}
for r in it01_burst it01_mad it01_cusum it01_line; do
  got=$(backtest "$UP" $r)
  [ "${got%% *}" -gt 0 ] || fail "rule $r found nothing: the comparison would prove nothing"
  assert_eq "$got" "$(backtest "$FRESH" $r)" "rule $r finds what it finds in $FRESH (count, checksum)"
done

# a rollup against GROUP BY over its table: the rows that differ
groupby_diff() {
  qu "SELECT count(*) FROM (SELECT sensor_id, date_bin('1 minute', ts, '2000-01-01') b, count(*) n,
                                   avg(value) m, min(value) lo, max(value) hi
                              FROM it01.$1 GROUP BY 1, 2) g
        FULL JOIN it01.readings_1m r ON r.sensor_id = g.sensor_id AND r.bucket_start = g.b
       WHERE g.n IS DISTINCT FROM iotstream.count(r.value) OR g.lo IS DISTINCT FROM iotstream.min(r.value)
          OR g.hi IS DISTINCT FROM iotstream.max(r.value) OR abs(g.m - iotstream.mean(r.value)) > 1e-9 * abs(g.m)"
}
line_diff() {
  qu "SELECT count(*) FROM (SELECT date_bin('5 minutes', \"At\", '2000-01-01') b, count(*) n, sum(\"kW\") s
                              FROM it01.\"$1\" GROUP BY 1) g
        FULL JOIN it01.\"Line 7 by 5m\" r ON r.bucket_start = g.b
       WHERE g.n IS DISTINCT FROM iotstream.count(r.\"kW\")
          OR abs(g.s - iotstream.mean(r.\"kW\") * iotstream.count(r.\"kW\")) > 1e-6"
}
assert_eq "$(qu "SELECT iotstream.refresh_rollup('it01.readings_1m', '2026-11-01 00:00+00', '2026-11-01 00:30+00')")" 120 \
  "refresh_rollup writes the 120 buckets of 4 sensors and 30 minutes"
assert_eq "$(groupby_diff readings)" 0 "the rollup equals GROUP BY over its table"
assert_eq "$(qu "SELECT iotstream.refresh_rollup('it01.\"Line 7 by 5m\"', '2026-11-01 00:00+00', '2026-11-01 01:00+00')")" 12 \
  "refresh_rollup of the rollup without keys writes 12 buckets"
assert_eq "$(line_diff 'Line 7')" 0 "the rollup without keys equals GROUP BY over its table"

# a batch as a source worker writes it: rows, and their groups through the
# stored delta statement; the fold (the detection worker's step) merges them
batch() {
  qu "SET ROLE it01_owner;
      INSERT INTO it01.$1 SELECT t, s, 30 FROM generate_series(timestamptz '$2', '$2'::timestamptz + interval '50 seconds',
                                                              '10 seconds') t, unnest(ARRAY['s1', 's4']) s;
      RESET ROLE;
      DO \$\$
      DECLARE
          r iotstream.rollups := (SELECT x FROM iotstream.rollups x WHERE x.name = 'it01.readings_1m');
          k text[];
          b timestamptz[];
          st iotstream.stats[];
      BEGIN
          SELECT array_agg(sensor_id), array_agg(bucket), array_agg(stats) INTO k, b, st
            FROM (SELECT sensor_id, date_bin('1 minute', ts, '2000-01-01') bucket, iotstream.stats_agg(value) stats
                    FROM it01.$1 WHERE ts >= '$2' GROUP BY 1, 2) g;
          EXECUTE iotstream._named(r.delta_sql, r.source_table, r.rollup_table, r.delta_table) USING k, b, st;
      END \$\$;"
}
batch readings '2026-11-01 00:30+00'
assert_eq "$(qu "SELECT pending_batches FROM iotstream.rollup_status WHERE rollup = 'it01.readings_1m'")" 1 \
  "rollup_status counts the batch's delta"
assert_eq "$(qu "SELECT iotstream._rollup_apply(rollup_id) FROM iotstream.rollups WHERE name = 'it01.readings_1m'")" 2 \
  "the fold writes the batch's 2 groups"
assert_eq "$(groupby_diff readings)" 0 "after the batch the rollup equals GROUP BY again"

# the statements follow the tables' OIDs, not their names
qu "ALTER TABLE it01.readings RENAME TO readings_v2; ALTER TABLE it01.\"Line 7\" RENAME TO \"Line 7b\"" >/dev/null
assert_eq "$(bursts "$UP")" "s2@00:05 s3@00:12" "after a rename of the table backtest_rule finds the same bursts"
batch readings_v2 '2026-11-01 00:31+00'
assert_eq "$(qu "SELECT iotstream.refresh_rollup('it01.readings_1m', '2026-11-01 00:00+00', '2026-11-01 00:32+00')")" 124 \
  "after a rename refresh_rollup recomputes the 124 buckets"
assert_eq "$(groupby_diff readings_v2)" 0 "after a rename and a batch the rollup equals GROUP BY"
assert_eq "$(qu "SELECT iotstream.refresh_rollup('it01.\"Line 7 by 5m\"', '2026-11-01 00:00+00', '2026-11-01 01:00+00')")" 12 \
  "after a rename the rollup without keys recomputes"
assert_eq "$(line_diff 'Line 7b')" 0 "after a rename the rollup without keys equals GROUP BY"

cleanup_dbs
echo "ok"

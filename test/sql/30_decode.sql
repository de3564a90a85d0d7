-- Decoding messages into columns: every type, the default name rule with
-- camelCase, explicit paths, Kafka metadata, and every class of bad input
-- with its reason.  Everything goes through iotstream.decode_preview(),
-- which calls the same DecodePlanCreate/DecodeMessage as the ingest worker.
SET client_min_messages = warning;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
\set SHOW_CONTEXT never

-- dec_pv: the decoded row as "col=value" pairs (NULLs left out), or the error.
CREATE FUNCTION dec_pv(tab regclass, payload text, mapping jsonb DEFAULT NULL)
RETURNS text LANGUAGE sql AS $$
    SELECT CASE WHEN r ? 'error' THEN 'ERROR: ' || (r->>'error')
           ELSE coalesce((SELECT string_agg(key || '=' || value::text, ' ' ORDER BY key)
                          FROM jsonb_each(r) WHERE value <> 'null'), '(all null)') END
    FROM iotstream.decode_preview(tab, mapping, payload) r $$;

CREATE TABLE dec_types (t text, vc varchar(5), i2 int2, i4 int4, i8 int8, f4 float4,
                 f8 float8, n numeric, n52 numeric(5,2), b bool, tz timestamptz,
                 ts timestamp, d date, u uuid, jb jsonb, js json);

-- text and varchar
SELECT p, dec_pv('dec_types', p) FROM (VALUES
    ('{"t": "plain"}'),
    ('{"t": "esc \"q\" \\ \/ \n\t \u00e9 \ud83d\ude00"}'),
    ('{"t": "héllo wörld ✓"}'),
    ('{"t": 12.50}'), ('{"t": true}'), ('{"t": {"a": [1, 2]}}'),
    ('{"t": "nul \u0000 inside"}'),
    ('{"vc": "abcde"}'), ('{"vc": "äöüßé"}'), ('{"vc": "abcdef"}')) v(p);

-- integers
SELECT p, dec_pv('dec_types', p) FROM (VALUES
    ('{"i2": 32767, "i4": -2147483648, "i8": 9223372036854775807}'),
    ('{"i8": -9223372036854775808}'),
    ('{"i4": "42", "i8": 5.000}'),
    ('{"i2": 32768}'), ('{"i4": 2147483648}'), ('{"i8": 9223372036854775808}'),
    ('{"i8": 99999999999999999999999}'),
    ('{"i4": 1.5}'), ('{"i4": 1e3}'), ('{"i4": "abc"}'), ('{"i4": true}'),
    ('{"i4": [1]}'), ('{"i4": ""}')) v(p);

-- floats
SELECT p, dec_pv('dec_types', p) FROM (VALUES
    ('{"f8": 57.739726013343247, "f4": 1.5}'),
    ('{"f8": -1.5e-10, "f4": "3.25"}'),
    ('{"f8": "NaN", "f4": "-Infinity"}'),
    ('{"f8": 1e309}'), ('{"f8": 1e-400}'), ('{"f4": 1e39}'), ('{"f4": 1e-50}'),
    ('{"f8": "1,5"}'), ('{"f8": false}')) v(p);

-- numeric, with and without typmod (numeric(5,2) holds up to 999.99)
SELECT p, dec_pv('dec_types', p) FROM (VALUES
    ('{"n": 123456789012345678901234567890.123456789}'),
    ('{"n": "-0.000001", "n52": 999.994}'),
    ('{"n52": 999.995}'), ('{"n52": -1000}'), ('{"n52": 0.001}'),
    ('{"n52": 12.345e1}'), ('{"n52": 9.999e2}'),
    ('{"n": "NaN"}'), ('{"n": 1e5000}'), ('{"n": "12abc"}')) v(p);

-- numeric(5,2) agrees with numeric_in on the edge cases it accepts
SELECT x, (iotstream.decode_preview('dec_types', NULL, format('{"n52": %s}', x))->>'n52')::numeric
          = x::numeric(5,2) AS same
FROM unnest(ARRAY['999.994', '-999.994', '0.005', '-0.005', '99.9949', '1e2', '0.5e3']) x;

-- booleans
SELECT p, dec_pv('dec_types', p) FROM (VALUES
    ('{"b": true}'), ('{"b": false}'), ('{"b": 1}'), ('{"b": 0}'),
    ('{"b": "TRUE"}'), ('{"b": "f"}'), ('{"b": "yes"}'), ('{"b": 2}')) v(p);

-- timestamps: ISO 8601 with Z, offsets and fractions; epoch by magnitude
SELECT p, dec_pv('dec_types', p) FROM (VALUES
    ('{"tz": "2019-05-16T17:16:40.000003Z"}'),
    ('{"tz": "2019-05-16T19:16:40+02:00", "ts": "2019-05-16T19:16:40+02:00", "d": "2019-05-16T23:30:00-02:00"}'),
    ('{"tz": "2019-05-16 17:16:40.1234567", "ts": "2019-05-16T17:16", "d": "2019-05-16"}'),
    ('{"tz": "2019-05-16T17:16:40-0530"}'),
    ('{"tz": 1558027000, "ts": 1558027000.25}'),
    ('{"tz": 1558027000123, "ts": "1558027000123"}'),
    ('{"tz": 1558027000123456, "ts": 1558027000123456789}'),
    ('{"tz": 0, "d": -86401}'),
    ('{"tz": 1.558027e9}'),
    ('{"tz": "2020-02-29T00:00:00Z"}'),
    ('{"tz": "2019-02-29T00:00:00Z"}'), ('{"tz": "2019-05-16T24:00:00Z"}'),
    ('{"tz": "2019-05-16T17:16:40+25:00"}'), ('{"tz": "16/05/2019"}'),
    ('{"tz": "2019-05-16T17:16:40Zjunk"}'), ('{"tz": 1e30}'),
    ('{"tz": -300000000000000000}'), ('{"tz": true}'), ('{"d": {"y": 1}}')) v(p);

-- ISO strings decode to the same instant as PostgreSQL's own input
SELECT s, (iotstream.decode_preview('dec_types', NULL, format('{"tz": "%s"}', s))->>'tz')::timestamptz
          = s::timestamptz AS same
FROM unnest(ARRAY['2026-03-05T17:00:00Z', '1999-12-31T23:59:59.999999Z',
                  '2026-03-05T17:00:00.5+05:30', '0001-01-01T00:00:00Z',
                  '9999-12-31T23:59:59Z', '2024-02-29T12:00:00-08:00']) s;

-- uuid, jsonb, json
SELECT p, dec_pv('dec_types', p) FROM (VALUES
    ('{"u": "B81D241F-5187-40B0-AB2A-940FAF9757C0"}'),
    ('{"u": "b81d241f518740b0ab2a940faf9757c0"}'),
    ('{"u": "b81d241f-5187-40b0-ab2a-940faf9757c"}'), ('{"u": 12}'),
    ('{"jb": {"b": [1, {"c": null}], "a": "x"}, "js": {"b": 1,  "a": 2}}'),
    ('{"jb": "just a string", "js": 3.5}'), ('{"jb": [true, false]}'),
    ('{"jb": {"a": "\u0000"}}'), ('{"jb": [1e2000]}')) v(p);

-- JSON null and missing keys are NULL
SELECT dec_pv('dec_types', '{"t": null, "i4": null, "jb": null}'), dec_pv('dec_types', '{}');

-- The seed-002 event with the default rule: camelCase keys find snake_case
-- columns; a DEFAULT column a message lacks is left to its default
-- (left out of the preview).
CREATE TABLE dec_ev (event_id uuid, complex_data jsonb, value float8,
                 device_id text NOT NULL, device_sequence_number bigint,
                 type text, created_at timestamptz NOT NULL,
                 ingested_at timestamptz DEFAULT now(), note text DEFAULT 'none');
\set event '{"eventId": "b81d241f-5187-40b0-ab2a-940faf9757c0", "complexData": {"moreData0": 57.739726013343247, "moreData1": 52.230732688620829, "moreData22": 1.5}, "value": 49.02278128887753, "deviceId": "contoso-device-id-000154", "deviceSequenceNumber": 0, "type": "CO2", "createdAt": "2019-05-16T17:16:40.000003Z"}'
SELECT jsonb_pretty(iotstream.decode_preview('dec_ev', NULL, :'event'));
SELECT jsonb_pretty(iotstream.decode_preview('dec_ev', '{}', :'event'));

-- Match quality: exact beats camelCase beats case-insensitive, whatever
-- the key order; among equals the last key wins (as in jsonb).
CREATE TABLE dec_who (device_id text, deviceid text);
SELECT p, dec_pv('dec_who', p, '{"deviceid": null}') FROM (VALUES
    ('{"device_id": "exact", "deviceId": "camel", "DEVICE_ID": "ci"}'),
    ('{"DEVICE_ID": "ci", "deviceId": "camel", "device_id": "exact"}'),
    ('{"DEVICE_ID": "ci", "deviceId": "camel"}'),
    ('{"Device_Id": "ci"}'),
    ('{"deviceID": "camel acronym"}'),
    ('{"device_id": "first", "device_id": "last"}'),
    ('{"devic_eid": "no match", "deviceid": "no match either"}')) v(p);
-- with a column "deviceid" too, each column takes its best key
SELECT dec_pv('dec_who', '{"deviceId": "camel", "DEVICEID": "ci"}'),
       dec_pv('dec_who', '{"deviceid": "exact for deviceid", "device_id": "exact for device_id"}');

-- Explicit mapping: nested paths, metadata, null to leave out; unnamed
-- columns keep the default rule.
SELECT jsonb_pretty(iotstream.decode_preview('dec_ev',
    '{"value": "complexData.moreData22", "type": "$topic", "note": "$key",
      "device_sequence_number": "$offset", "event_id": null,
      "complex_data": "$headers"}',
    :'event', key => 'k-1', topic => 'events', "offset" => 123456789012,
    headers => '{"trace": "abc", "empty": null}'));
CREATE TABLE dec_meta (payload jsonb, payload_text text, payload_bytes bytea,
                   topic varchar(20), part int, off numeric, k text, kb bytea,
                   kn int8, msg_ts timestamptz, msg_ts_local timestamp,
                   msg_ms int8, headers jsonb, deep text, dotted text, dollar int);
SELECT jsonb_pretty(iotstream.decode_preview('dec_meta',
    '{"payload": "$payload", "payload_text": "$payload", "payload_bytes": "$payload",
      "topic": "$topic", "part": "$partition", "off": "$offset", "k": "$key",
      "kb": "$key", "kn": null, "msg_ts": "$timestamp", "msg_ts_local": "$timestamp",
      "msg_ms": "$timestamp", "headers": "$headers", "deep": "a.b.c.d",
      "dotted": "x\\.y", "dollar": "\\$amount"}',
    '{"a": {"b": {"c": {"d": "deep value"}}}, "x.y": "dotted key", "$amount": 7, "x": {"y": "not this"}}',
    key => '42', topic => 'iot.events', "partition" => 7, "offset" => 9000000000,
    "timestamp" => '2026-03-05 17:00:00.123+00', headers => '{"h1": "v1", "h2": null}'));
-- bytea from JSON takes bytea's hex form
SELECT dec_pv('dec_meta', '{"kb": "\\x00ff10"}'), dec_pv('dec_meta', '{"kb": "00ff"}');
-- a $key into an integer column; no key and no timestamp give NULL
SELECT dec_pv('dec_meta', '{}', '{"kn": "$key", "k": "$key", "msg_ts": "$timestamp"}'),
       iotstream.decode_preview('dec_meta', '{"kn": "$key"}', '{}', key => '-17')->'kn' AS kn,
       iotstream.decode_preview('dec_meta', '{"kn": "$key"}', '{}', key => 'x')->>'error' AS bad_key;
-- a path through a non-object value is a dead letter; through null, NULL
SELECT dec_pv('dec_meta', '{"a": {"b": "flat"}}', '{"deep": "a.b.c.d"}'),
       dec_pv('dec_meta', '{"a": [1]}', '{"deep": "a.b"}'),
       dec_pv('dec_meta', '{"a": {"b": null}}', '{"deep": "a.b.c"}');
-- only $payload and metadata: no JSON needed, any text payload is fine;
-- jsonb $payload needs JSON but not an object
CREATE TABLE dec_lines (line text, src text, off int8);
SELECT iotstream.decode_preview('dec_lines', '{"line": "$payload", "src": "$topic", "off": "$offset"}',
                                'not json at all', topic => 'raw', "offset" => 5);
CREATE TABLE dec_docs (doc jsonb);
SELECT iotstream.decode_preview('dec_docs', '{"doc": "$payload"}', '[1, "two", {"three": 3}]'),
       iotstream.decode_preview('dec_docs', '{"doc": "$payload"}', '[1, "two"'),
       iotstream.decode_preview('dec_docs', '{"doc": "$payload"}', NULL::text);
-- NOT NULL: a missing key or a null is a dead letter; a default fills in
SELECT dec_pv('dec_ev', '{"deviceId": "d", "createdAt": 0}'),
       dec_pv('dec_ev', '{"createdAt": 0}'),
       dec_pv('dec_ev', '{"deviceId": null, "createdAt": 0}'),
       dec_pv('dec_ev', '{"deviceId": "d"}', '{"created_at": "$timestamp"}'),
       dec_pv('dec_ev', '{"deviceId": "d", "createdAt": 0, "note": null}');
-- a source the message lacks also leaves a column with a default to it
SELECT iotstream.decode_preview('dec_ev', '{"ingested_at": "$timestamp", "note": "$key"}',
                                '{"deviceId": "d", "createdAt": 0}') AS defaults_apply,
       iotstream.decode_preview('dec_ev', '{"ingested_at": "$timestamp", "note": "$key"}',
                                '{"deviceId": "d", "createdAt": 0}', key => 'k',
                                "timestamp" => '2026-03-05 17:00+00') AS sources_present;
-- backslashes in paths: a\.b.c is the key "a.b", then "c"
SELECT dec_pv('dec_ev', '{"deviceId": "d", "createdAt": 0, "a.b": {"c": "one"}, "a": {"b.c": "two"}}',
              '{"type": "a\\.b.c", "note": "a.b\\.c"}');

-- Malformed input: each class with its reason; nothing raises an error.
SELECT p, dec_pv('dec_ev', p) FROM (VALUES
    (''), ('   '), ('not json'), ('{"deviceId": "d"'), ('{"deviceId" "d"}'),
    ('{"deviceId": "d",}'), ('{"deviceId": "d"} x'), ('{deviceId: 1}'),
    ('["deviceId", "d"]'), ('"just a string"'), ('42'), ('null'),
    ('{"a": tru}'), ('{"a": 01}'), ('{"a": 1.}'), ('{"a": -}'), ('{"a": 1e}'),
    ('{"a": "\x"}'), ('{"a": "\u12G4"}'), ('{"a": "\ud800"}'), ('{"a": "\udc00x"}'),
    (E'{"a": "tab\there"}'), ('{"a": [1, 2}'), ('{"a": {"b": 1]}'),
    (repeat('[', 300) || repeat(']', 300)),
    ('{"deviceId": "d", "createdAt": 0, "a": ' || repeat('[', 150) || repeat(']', 150) || '}')) v(p);
-- bytes that text cannot carry: invalid UTF-8, NUL bytes, a tombstone
SELECT p, iotstream.decode_preview('dec_ev', NULL, p)->>'error' AS reason FROM (VALUES
    ('\x7b226465766963654964223a2022ff227d'::bytea),
    ('\x7b226465766963654964223a2022c328227d'),
    ('\x7b226465766963654964223a2022eda080227d'),
    ('\x7b226465766963654964223a2022f4908080227d'),
    ('\x7b226465766963654964223a202264220020207d'),
    ('\x7b2264657669636549640022'),
    ('\x7b7d00')) v(p);
SELECT iotstream.decode_preview('dec_ev', NULL, NULL::text) AS tombstone;

-- Fuzz: 3000 random corruptions (truncation, byte flips, insertions) of
-- the event never raise an error, and every result is a row or a reason.
SELECT setseed(0.42);
SELECT count(*) AS messages,
       count(*) FILTER (WHERE r ? 'error') > 0 AS some_rejected,
       count(*) FILTER (WHERE r ? 'device_id') > 0 AS some_decoded,
       count(*) FILTER (WHERE NOT r ? 'error' AND NOT r ? 'device_id') AS neither
FROM (SELECT iotstream.decode_preview('dec_ev', NULL, m) AS r
      FROM (SELECT CASE i % 3
                     WHEN 0 THEN substring(e FROM 1 FOR (random() * length(e))::int)
                     WHEN 1 THEN set_byte(e, (random() * (length(e) - 1))::int, (random() * 255)::int)
                     ELSE overlay(e PLACING decode(lpad(to_hex((random() * 255)::int), 2, '0'), 'hex')
                                  FROM (random() * (length(e) - 1))::int + 1 FOR 0)
                   END AS m
            FROM generate_series(1, 3000) i,
                 (SELECT convert_to(:'event', 'UTF8') AS e) ev) f) d;

-- Differential: random number literals and ISO timestamps decode to what
-- PostgreSQL's own casts give, and are rejected exactly when those fail.
CREATE FUNCTION dec_cast(x text, typ text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    EXECUTE format('SELECT %L::%s::text', x, typ) INTO r;
    RETURN r;
EXCEPTION WHEN others THEN
    RETURN 'rejected';
END $$;
CREATE FUNCTION dec_same(ours text, theirs text, typ text) RETURNS bool LANGUAGE plpgsql AS $$
DECLARE r bool;
BEGIN
    IF ours = 'rejected' OR theirs = 'rejected' THEN
        RETURN ours = theirs;
    END IF;
    EXECUTE format('SELECT %L::%s = %L::%s', ours, typ, theirs, typ) INTO r;
    RETURN r;
END $$;
CREATE TABLE dec_diff (n73 numeric(7,3), n numeric, f8 float8, f4 float4, i4 int4, tz timestamptz);
SELECT setseed(0.1);
CREATE TABLE dec_lits AS
SELECT CASE i % 5
         WHEN 0 THEN ((random() * 2e10)::bigint - 1e10::bigint)::text
         WHEN 1 THEN round((random() * 20000 - 10000)::numeric, (random() * 6)::int)::text
         WHEN 2 THEN (random() * 1e6)::float8::text
         WHEN 3 THEN (random() * 10)::int::text || 'e' || ((random() * 12)::int - 6)::text
         ELSE '-0.' || lpad((random() * 99999)::int::text, 5, '0')
       END AS x,
       to_char(timestamptz '1990-01-01' + random() * interval '60 years', 'YYYY-MM-DD"T"HH24:MI:SS.US')
         || (ARRAY['Z', '+05:30', '-08:00', '+0100', '', '-03'])[1 + i % 6] AS iso
FROM generate_series(1, 2000) i;
SELECT col, count(*) AS literals,
       count(*) FILTER (WHERE NOT dec_same(ours, theirs, typ)) AS differ,
       count(*) FILTER (WHERE ours = 'rejected') AS rejected
FROM (SELECT c.col, c.typ, coalesce(iotstream.decode_preview('dec_diff', NULL,
                                 format('{"%s": %s}', c.col, CASE WHEN c.col = 'tz' THEN to_json(l.iso)::text ELSE l.x END))
                             ->>c.col, 'rejected') AS ours,
             CASE WHEN c.col = 'tz' THEN dec_cast(l.iso, 'timestamptz')
                  ELSE dec_cast(l.x, c.typ) END AS theirs
      FROM dec_lits l,
           (VALUES ('n73', 'numeric(7,3)'), ('n', 'numeric'), ('f8', 'float8'),
                   ('f4', 'float4'), ('i4', 'int4'), ('tz', 'timestamptz')) c(col, typ)
      WHERE c.col <> 'i4' OR l.x !~ '[.e]') d
GROUP BY col ORDER BY col;
-- (int4 skips fractions and exponents: '5.0' is an integer to the decoder only)

-- The decoded row really inserts: a round trip through the table.
CREATE TABLE dec_ev_rows (LIKE dec_ev);
INSERT INTO dec_ev_rows SELECT * FROM jsonb_populate_record(NULL::dec_ev_rows, iotstream.decode_preview('dec_ev', NULL, :'event'));
SELECT event_id, complex_data->'moreData1' AS md1, value, device_id,
       device_sequence_number, type, created_at FROM dec_ev_rows;

-- A stream table (partitioned) decodes against its own descriptor.
CREATE TABLE dec_readings (ts timestamptz NOT NULL, sensor_id text NOT NULL,
                       metric_type text, value float8) PARTITION BY RANGE (ts);
SELECT dec_pv('dec_readings', '{"sensor_id": "s-1", "timestamp": "2026-03-05T17:00:00Z", "metric_type": "temperature", "value": 101.5}',
          '{"ts": "timestamp"}');

-- Create-time errors (also in test/pgtap/30_decode.sql, with their codes).
SELECT iotstream.validate_mapping('dec_ev', '{"nope": "x"}');
SELECT iotstream.validate_mapping('dec_ev', '{"device_id": null}');
SELECT iotstream.validate_mapping('dec_ev', '{"value": "a..b"}');
SELECT iotstream.validate_mapping('dec_ev', '{"value": "$nope"}');
SELECT iotstream.validate_mapping('dec_ev', '{"value": 3}');
SELECT iotstream.validate_mapping('dec_ev', '["value"]');
SELECT iotstream.validate_mapping('dec_ev', '{"value": "$headers"}');
CREATE TABLE dec_odd (id int, spot point);
SELECT iotstream.validate_mapping('dec_odd', NULL);
SELECT iotstream.validate_mapping('dec_odd', '{"spot": null}');
SELECT iotstream.validate_mapping('dec_ev', '{"note": null, "value": "$payload"}');

DROP FUNCTION dec_pv(regclass, text, jsonb), dec_cast(text, text),
              dec_same(text, text, text);
DROP TABLE dec_types, dec_ev, dec_who, dec_meta, dec_lines, dec_docs, dec_ev_rows,
           dec_readings, dec_odd, dec_diff, dec_lits;

-- The decoder's SQL API and its create-time errors, with their SQLSTATEs.
BEGIN;
SELECT plan(24);

SELECT has_function('iotstream', 'decode_preview',
    ARRAY['regclass', 'jsonb', 'text', 'text', 'text', 'integer', 'bigint', 'timestamp with time zone', 'jsonb'],
    'decode_preview(text payload) exists');
SELECT has_function('iotstream', 'decode_preview',
    ARRAY['regclass', 'jsonb', 'bytea', 'text', 'text', 'integer', 'bigint', 'timestamp with time zone', 'jsonb'],
    'decode_preview(bytea payload) exists');
SELECT has_function('iotstream', 'validate_mapping', ARRAY['regclass', 'jsonb'],
    'validate_mapping exists');

CREATE TABLE tap_ev (event_id uuid, complex_data jsonb, value float8,
                     device_id text NOT NULL, created_at timestamptz NOT NULL,
                     ingested_at timestamptz NOT NULL DEFAULT now(),
                     total float8 GENERATED ALWAYS AS (value * 2) STORED);
CREATE TABLE tap_odd (id int, spot point);
CREATE VIEW tap_view AS SELECT 1 AS id;

SELECT lives_ok($$SELECT iotstream.validate_mapping('tap_ev', NULL)$$, 'no mapping: default rule');
SELECT lives_ok($$SELECT iotstream.validate_mapping('tap_ev', '{}')$$, 'empty mapping: default rule');
SELECT lives_ok($$SELECT iotstream.validate_mapping('tap_ev',
    '{"value": "complexData.moreData0", "complex_data": "$payload", "created_at": "$timestamp", "ingested_at": null, "event_id": "$key"}')$$,
    'paths, sources, and null for a column with a default');

SELECT throws_ok($$SELECT iotstream.validate_mapping('tap_ev', '{"nope": "x"}')$$,
    '42703', 'mapping names column "nope", which table "tap_ev" does not have',
    'an unknown column is undefined_column');
SELECT throws_ok($$SELECT iotstream.validate_mapping('tap_ev', '{"device_id": null}')$$,
    '23502', NULL, 'leaving out a NOT NULL column without default is not_null_violation');
SELECT throws_ok($$SELECT iotstream.validate_mapping('tap_ev', '{"value": "a..b"}')$$,
    '22023', 'invalid JSON path "a..b" for column "value"', 'an empty key in a path');
SELECT throws_ok($$SELECT iotstream.validate_mapping('tap_ev', '{"value": ".a"}')$$,
    '22023', NULL, 'a path starting with a dot');
SELECT throws_ok($$SELECT iotstream.validate_mapping('tap_ev', '{"value": ""}')$$,
    '22023', NULL, 'an empty path');
SELECT throws_ok(format($$SELECT iotstream.validate_mapping('tap_ev', '{"value": "%s"}')$$, repeat('k', 256)),
    '22023', NULL, 'a key longer than 255 bytes');
SELECT throws_ok($$SELECT iotstream.validate_mapping('tap_ev', '{"value": "$nope"}')$$,
    '22023', 'unknown source "$nope" for column "value"', 'an unknown $source');
SELECT throws_ok($$SELECT iotstream.validate_mapping('tap_ev', '{"value": 3}')$$,
    '22023', 'the mapping of column "value" must be a string or null', 'a number as a path');
SELECT throws_ok($$SELECT iotstream.validate_mapping('tap_ev', '["value"]')$$,
    '22023', 'a mapping must be a JSON object', 'an array as the mapping');
SELECT throws_ok($$SELECT iotstream.validate_mapping('tap_ev', '{"total": "value"}')$$,
    '22023', 'mapping names column "total", which is a generated column', 'a generated column');
SELECT throws_ok($$SELECT iotstream.validate_mapping('tap_ev', '{"value": "$headers"}')$$,
    '42804', 'column "value" of type double precision cannot take $headers', '$headers into float8');
SELECT throws_ok($$SELECT iotstream.validate_mapping('tap_ev', '{"device_id": "$partition", "value": "$topic"}')$$,
    '42804', NULL, '$topic into float8');
SELECT throws_ok($$SELECT iotstream.validate_mapping('tap_odd', NULL)$$,
    '0A000', 'column "spot" has type point, which messages cannot be decoded into',
    'a column type the decoder cannot fill');
SELECT lives_ok($$SELECT iotstream.validate_mapping('tap_odd', '{"spot": null}')$$,
    'an undecodable column mapped to null is left out');
SELECT throws_ok($$SELECT iotstream.validate_mapping('tap_view', NULL)$$,
    '42809', '"tap_view" is not a table', 'a view is no target');
SELECT is(iotstream.decode_preview('tap_ev', NULL, '{"deviceId": "d", "createdAt": "2026-03-05T17:00:00Z", "value": 2}'),
          '{"value": 2, "event_id": null, "device_id": "d", "created_at": "2026-03-05T17:00:00+00:00", "complex_data": null}'::jsonb,
          'the default rule decodes camelCase keys and leaves ingested_at to its default');

CREATE ROLE tap_decode_nobody;
GRANT USAGE ON SCHEMA iotstream TO tap_decode_nobody;
SET ROLE tap_decode_nobody;
SELECT throws_ok($$SELECT iotstream.decode_preview('tap_ev', NULL, '{}')$$,
    '42501', 'permission denied for table tap_ev', 'previewing needs INSERT or SELECT on the target');
RESET ROLE;
GRANT INSERT ON tap_ev TO tap_decode_nobody;
SET ROLE tap_decode_nobody;
SELECT is(iotstream.decode_preview('tap_ev', NULL, '{"deviceId": "d"}')->>'error',
          'column "created_at" is NOT NULL, but the message has no "created_at"',
          'with INSERT, the preview works and names the missing NOT NULL column');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;

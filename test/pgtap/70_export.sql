-- Exports and storage credentials: argument errors (errcode and hint),
-- secrets kept out of sight, destinations, the ledger's shape.
BEGIN;
SELECT plan(47);

-- SQLSTATE, message and hint of the error a statement raises.
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text;
    msg text;
    hint text;
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
    RETURN st || ': ' || msg || ' | ' || coalesce(hint, '');
END $$;

SELECT has_function('iotstream', 'create_export',
    ARRAY['text', 'regclass', 'text', 'interval', 'interval', 'text', 'text', 'text', 'text', 'jsonb', 'text']);
SELECT has_function('iotstream', 'run_export', ARRAY['text']);
SELECT has_function('iotstream', 'create_storage_credential',
    ARRAY['text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text']);

-- the ledger's shape
SELECT columns_are('iotstream', 'export_log', ARRAY['id', 'export', 'period_start', 'period_end', 'version',
    'files', 'rows', 'bytes', 'min_time', 'max_time', 'checksum', 'change_signal', 'status', 'started_at',
    'finished_at', 'error', 'removed_at', 'delta_files']);
SELECT col_type_is('iotstream', 'export_log', 'files', 'text[]', 'files is text[]');
SELECT col_type_is('iotstream', 'export_log', 'checksum', 'bigint', 'checksum is bigint');
SELECT has_index('iotstream', 'export_log', 'export_log_current', 'one current version per period');

-- credentials: arguments
SELECT alike(pg_temp.err($$SELECT iotstream.create_storage_credential('c', 'password')$$),
    '22023: unknown storage credential kind "password" | The kinds are shared_key%', 'unknown kind');
SELECT is(pg_temp.err($$SELECT iotstream.create_storage_credential('c', 'shared_key', account => 'a')$$),
    '22023: a shared_key storage credential needs key | Pass key => ... to iotstream.create_storage_credential().',
    'shared_key without key');
SELECT is(pg_temp.err($$SELECT iotstream.create_storage_credential('c', 'sas')$$),
    '22023: a sas storage credential needs token | Pass token => ... to iotstream.create_storage_credential().',
    'sas without token');
SELECT alike(pg_temp.err($$SELECT iotstream.create_storage_credential('c', 'service_principal', tenant => 't', client_id => 'x')$$),
    '22023: a service_principal storage credential needs client_secret | %', 'service principal without secret');

-- credentials: secrets stay secret
SELECT lives_ok($$SELECT iotstream.create_storage_credential('tap_key', 'shared_key', account => 'acct1', key => 'c2VjcmV0LWtleS1ieXRlcw==')$$,
    'a shared_key credential');
SELECT lives_ok($$SELECT iotstream.create_storage_credential('tap_sas', 'sas', token => '?sv=2021&sig=TOPSECRET')$$,
    'a sas credential');
SELECT lives_ok($$SELECT iotstream.create_storage_credential('tap_sp', 'service_principal', tenant => 'tn', client_id => 'ci', client_secret => 'sp-TOPSECRET')$$,
    'a service principal credential');
SELECT alike(pg_temp.err($$SELECT iotstream.create_storage_credential('tap_key', 'sas', token => 'x')$$),
    '42710: storage credential "tap_key" already exists | %', 'duplicate credential');
SELECT is((SELECT string_agg(name || '=' || secret::text, ' ' ORDER BY name) FROM iotstream.storage_credential_info WHERE name LIKE 'tap_%'),
    'tap_key={"key": "********"} tap_sas={"token": "********"} tap_sp={"client_secret": "********"}',
    'the view masks every secret');
SELECT is((SELECT count(*) FROM iotstream.storage_credential_info WHERE row_to_json(storage_credential_info)::text ~ 'TOPSECRET|c2VjcmV0'),
    0::bigint, 'no secret anywhere in the view');
SELECT ok(NOT has_table_privilege('public', 'iotstream.storage_credential_secrets', 'SELECT'),
    'PUBLIC cannot read the secrets');
CREATE ROLE iotstream_tap_export_user;
GRANT USAGE ON SCHEMA iotstream TO iotstream_tap_export_user;
SET ROLE iotstream_tap_export_user;
SELECT throws_ok($$SELECT * FROM iotstream.storage_credential_secrets$$, '42501', NULL,
    'an ordinary role cannot read the secrets table');
SELECT alike(pg_temp.err($$SELECT iotstream.create_storage_credential('x', 'sas', token => 'y')$$),
    '42501: permission denied to create storage credentials | %', 'only superusers create credentials');
SELECT alike(pg_temp.err($$SELECT * FROM iotstream.run_export('e')$$),
    '42501: permission denied to run exports | %', 'only superusers run exports');
RESET ROLE;

-- destinations
SELECT is((SELECT row(kind, endpoint, account, container, path)::text FROM iotstream.parse_destination('abfss://lake@acct1.dfs.core.windows.net/raw/iot/')),
    '(blob,https://acct1.blob.core.windows.net,acct1,lake,raw/iot)', 'abfss goes through the blob endpoint');
SELECT is((SELECT row(kind, endpoint, account, container, path)::text FROM iotstream.parse_destination('https://acct1.blob.core.windows.net/lake')),
    '(blob,https://acct1.blob.core.windows.net,acct1,lake,"")', 'https blob URL');
SELECT is((SELECT row(kind, endpoint, account, container, path)::text FROM iotstream.parse_destination('http://127.0.0.1:10000/devstoreaccount1/c/p/q')),
    '(blob,http://127.0.0.1:10000/devstoreaccount1,devstoreaccount1,c,p/q)', 'emulator endpoint');
SELECT is((SELECT row(kind, path)::text FROM iotstream.parse_destination('file:///var/lake')),
    '(file,/var/lake)', 'local folder');
SELECT alike(pg_temp.err($$SELECT iotstream.parse_destination('s3://bucket/x')$$),
    '22023: invalid export destination "s3://bucket/x" | Use file:///absolute/path, abfss://%', 'unknown scheme');
SELECT alike(pg_temp.err($$SELECT iotstream.parse_destination('file://relative')$$),
    '22023: invalid export destination "file://relative" | %', 'relative file path');

-- exports: arguments
SELECT iotstream.create_stream_table('tap_exp', 'ts timestamptz NOT NULL, v int', 'ts', '1 day');
CREATE TABLE tap_plain (ts timestamptz);
SELECT alike(pg_temp.err($$SELECT iotstream.create_export('e', 'tap_plain', 'file:///tmp/x', schedule => NULL)$$),
    '22023: tap_plain is not a stream table | Exports read stream tables; create one with iotstream.create_stream_table().',
    'a plain table is refused');
SELECT alike(pg_temp.err($$SELECT iotstream.create_export('e', 'tap_exp', 'file:///tmp/x', period => '7 minutes', schedule => NULL)$$),
    '22023: invalid export period "00:07:00" | A period divides a day evenly%', 'a period must divide a day');
SELECT alike(pg_temp.err($$SELECT iotstream.create_export('e', 'tap_exp', 'file:///tmp/x', compression => 'lz4', schedule => NULL)$$),
    '22023: unknown compression "lz4" | Use zstd, snappy, gzip or none.', 'unknown compression');
SELECT alike(pg_temp.err($$SELECT iotstream.create_export('e', 'tap_exp', 'file:///tmp/x', target_file_size => '10kB', schedule => NULL)$$),
    '22023: target_file_size must be at least 1MB | %', 'tiny target file size');
SELECT alike(pg_temp.err($$SELECT iotstream.create_export('e', 'tap_exp', 'https://acct1.blob.core.windows.net/lake', schedule => NULL)$$),
    '22023: destination "https://acct1.blob.core.windows.net/lake" needs a credential | Create one with%', 'a blob destination needs a credential');
SELECT alike(pg_temp.err($$SELECT iotstream.create_export('e', 'tap_exp', 'https://acct2.blob.core.windows.net/lake', credential => 'tap_key', schedule => NULL)$$),
    '22023: storage credential "tap_key" is for account "acct1", not "acct2" | %', 'a credential of another account');
SELECT alike(pg_temp.err($$SELECT iotstream.create_export('e', 'tap_exp', 'file:///tmp/x', credential => 'nope', schedule => NULL)$$),
    '42704: storage credential "nope" does not exist | Create it with iotstream.create_storage_credential().', 'an unknown credential');
SELECT alike(pg_temp.err($$SELECT iotstream.create_export('e', 'tap_exp', 'file:///tmp/x', schedule => NULL, options => '{"compresion_level": 3}')$$),
    '22023: invalid options for write_parquet | Valid options are %', 'a misspelt writer option');
SELECT alike(pg_temp.err($$SELECT iotstream.create_export('e', 'tap_exp', 'file:///tmp/x', schedule => NULL, options => '{"parallel_uploads": 0}')$$),
    '22023: invalid parallel_uploads "0" | parallel_uploads is 1 to 32%', 'an upload option out of range');
SELECT alike(pg_temp.err($$SELECT iotstream.create_export('e', 'tap_exp', 'file:///tmp/x', schedule => NULL, options => '{"compression": "zstd"}')$$),
    '22023: invalid export options | %compression and target_file_size are arguments of their own.', 'compression is an argument, not an option');
SELECT lives_ok($$SELECT iotstream.create_export('tap_e', 'tap_exp', 'abfss://lake@acct1.dfs.core.windows.net/raw', credential => 'tap_key', schedule => NULL)$$,
    'a valid export');
SELECT alike(pg_temp.err($$SELECT iotstream.create_export('tap_e', 'tap_exp', 'file:///tmp/x', schedule => NULL)$$),
    '42710: export "tap_e" already exists | Change it with iotstream.alter_export()%', 'duplicate export');
SELECT alike(pg_temp.err($$SELECT iotstream.drop_storage_credential('tap_key')$$),
    '2BP01: storage credential "tap_key" is used by an export | %', 'a credential in use cannot be dropped');
SELECT alike(pg_temp.err($$SELECT * FROM iotstream.run_export('nope')$$),
    '42704: export "nope" does not exist | Create it with iotstream.create_export().', 'run_export of an unknown export');

-- the pg_cron job follows the export
SELECT lives_ok($$SELECT iotstream.create_export('tap_cron', 'tap_exp', 'file:///tmp/x', schedule => '*/5 * * * *')$$,
    'an export with a schedule');
SELECT is((SELECT schedule || ' ' || command FROM cron.job WHERE jobname = 'iotstream_export_tap_cron'),
    '*/5 * * * * DO $iotstream_job$BEGIN IF to_regprocedure(''iotstream.run_export(text)'') IS NULL THEN '
    'PERFORM cron.unschedule(''iotstream_export_tap_cron''); ELSE PERFORM count(*) FROM iotstream.run_export(''tap_cron''); '
    'END IF; END$iotstream_job$', 'create_export registers the pg_cron job');
SELECT iotstream.alter_export('tap_cron', schedule => '0 * * * *');
SELECT is((SELECT schedule FROM cron.job WHERE jobname = 'iotstream_export_tap_cron'), '0 * * * *',
    'alter_export changes the schedule');
SELECT iotstream.drop_export('tap_cron');
SELECT is((SELECT count(*) FROM cron.job WHERE jobname = 'iotstream_export_tap_cron'), 0::bigint,
    'drop_export removes the job');

-- dropping the table drops its exports and their jobs
SELECT iotstream.create_stream_table('tap_gone', 'ts timestamptz NOT NULL, v int', 'ts', '1 day');
SELECT iotstream.create_export('tap_gone_x', 'tap_gone', 'file:///tmp/x', schedule => '*/5 * * * *');
DROP TABLE tap_gone;
SELECT is((SELECT count(*) FROM iotstream.exports WHERE name = 'tap_gone_x'), 0::bigint,
    'DROP TABLE removes the exports of the table');
SELECT is((SELECT count(*) FROM cron.job WHERE jobname = 'iotstream_export_tap_gone_x'), 0::bigint,
    'and their pg_cron jobs');

SELECT * FROM finish();
ROLLBACK;

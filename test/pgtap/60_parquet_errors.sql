-- write_parquet: who may call it, and how bad arguments fail.
BEGIN;
SELECT plan(20);

SELECT has_function('iotstream', 'write_parquet', ARRAY['text', 'text', 'jsonb']);

-- Only superusers and pg_write_server_files members.
CREATE ROLE iotstream_pq_nopriv;
CREATE ROLE iotstream_pq_writer;
GRANT pg_write_server_files TO iotstream_pq_writer;
GRANT USAGE ON SCHEMA iotstream TO iotstream_pq_nopriv, iotstream_pq_writer;
SET ROLE iotstream_pq_nopriv;
SELECT throws_ok($$SELECT iotstream.write_parquet('SELECT 1', '/tmp/x.parquet')$$,
    '42501', 'permission denied to write parquet files on the server',
    'a role without pg_write_server_files is refused');
RESET ROLE;
SET ROLE iotstream_pq_writer;
-- past the privilege check: the relative path is what fails now
SELECT throws_ok($$SELECT iotstream.write_parquet('SELECT 1', 'x.parquet')$$,
    '22023', 'parquet file path "x.parquet" is not an absolute file name',
    'a member of pg_write_server_files passes the privilege check');
RESET ROLE;

-- Paths.
SELECT throws_ok($$SELECT iotstream.write_parquet('SELECT 1', '/tmp/')$$,
    '22023', NULL, 'a directory is not a file name');
SELECT throws_like($$SELECT iotstream.write_parquet('SELECT 1', '/nonexistent-iotstream-dir/x.parquet')$$,
    'could not create file "/nonexistent-iotstream-dir/x.parquet.tmp.%": No such file or directory',
    'a missing directory is a clear error');

-- Options.
SELECT throws_ok($$SELECT iotstream.write_parquet('SELECT 1', '/tmp/x.parquet', '{"compresion": "zstd"}')$$,
    '22023', 'invalid options for write_parquet', 'an unknown option');
SELECT throws_ok($$SELECT iotstream.write_parquet('SELECT 1', '/tmp/x.parquet', '{"compression": "lz4"}')$$,
    '22023', 'invalid options for write_parquet', 'an unsupported codec');
SELECT throws_ok($$SELECT iotstream.write_parquet('SELECT 1', '/tmp/x.parquet', '{"compression": "zstd", "compression_level": 99}')$$,
    '22023', 'invalid options for write_parquet', 'a zstd level out of range');
SELECT throws_ok($$SELECT iotstream.write_parquet('SELECT 1', '/tmp/x.parquet', '{"compression": "snappy", "compression_level": 3}')$$,
    '22023', 'invalid options for write_parquet', 'snappy takes no level');
SELECT throws_ok($$SELECT iotstream.write_parquet('SELECT 1', '/tmp/x.parquet', '{"row_group_size": "12 parsecs"}')$$,
    '22023', 'invalid options for write_parquet', 'a size with an unknown unit');
SELECT throws_ok($$SELECT iotstream.write_parquet('SELECT 1', '/tmp/x.parquet', '{"row_group_size": -5}')$$,
    '22023', 'invalid options for write_parquet', 'a negative size');
SELECT throws_ok($$SELECT iotstream.write_parquet('SELECT 1', '/tmp/x.parquet', '{"metadata": {"k": 1}}')$$,
    '22023', 'invalid options for write_parquet', 'a metadata value that is not a string');
SELECT throws_ok($$SELECT iotstream.write_parquet('SELECT 1', '/tmp/x.parquet', '[1, 2]')$$,
    '22023', 'invalid options for write_parquet', 'options that are not an object');
SELECT throws_ok($$SELECT iotstream.write_parquet('SELECT 1', '/tmp/x.parquet', '{"dictionary": "yes"}')$$,
    '22023', 'invalid options for write_parquet', 'a dictionary flag that is not a boolean');

SELECT throws_ok($$SELECT iotstream.write_parquet('SELECT 1', '/tmp/x.parquet', '{"compression_threads": 0}')$$,
    '22023', 'invalid options for write_parquet', 'compression_threads out of range');

-- Queries.
SELECT throws_ok($$SELECT iotstream.write_parquet('CREATE TABLE nope (a int)', '/tmp/x.parquet')$$,
    '42809', 'write_parquet needs a query that returns rows', 'a statement that returns no rows');
SELECT throws_ok($$SELECT iotstream.write_parquet('SELECT FROM nowhere_at_all', '/tmp/x.parquet')$$,
    '42P01', NULL, 'a query that does not parse is reported as such');
-- Values a Parquet type cannot hold fail cleanly (and leave no file).
SELECT throws_ok($$SELECT iotstream.write_parquet('SELECT ''NaN''::numeric(10,2) AS n', '/tmp/iotstream-pgtap-nan.parquet')$$,
    '22003', 'cannot write numeric value "NaN" to parquet column "n"', 'NaN in a DECIMAL column');
SELECT throws_ok($$SELECT iotstream.write_parquet('SELECT timestamptz ''294276-12-31 23:00:00+00'' AS t', '/tmp/iotstream-pgtap-ts.parquet')$$,
    '22008', 'timestamp out of range for parquet column "t"', 'a timestamp past what 64-bit microseconds since 1970 hold');
SELECT is((SELECT rows FROM iotstream.write_parquet('SELECT 1', NULL)), NULL,
    'a NULL path gives NULL (the function is strict)');

SELECT * FROM finish();
ROLLBACK;

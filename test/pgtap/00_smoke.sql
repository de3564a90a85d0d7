BEGIN;
SELECT plan(2);
SELECT has_schema('iotstream');
SELECT has_function('iotstream', 'create_stream_table', 'create_stream_table exists');
SELECT * FROM finish();
ROLLBACK;

-- The source API: definitions, their errors, Event Hubs, and secrets.
BEGIN;
SELECT plan(38);
SET LOCAL client_min_messages = warning;

SELECT iotstream.create_stream_table('tap_src', 'ts timestamptz NOT NULL, sensor_id text NOT NULL, value float8', 'ts');
CREATE TABLE tap_plain (ts timestamptz, v int);

SELECT ok(iotstream.create_source('tap1', '127.0.0.1:9092', ARRAY['t1', 't2'], 'tap_src', '{"ts": "timestamp"}',
          '{"batch_size": 500, "batch_ms": 20, "fetch.max.bytes": "1048576", "sasl.password": "hunter2"}') > 0,
          'create_source');
SELECT is((SELECT group_id FROM iotstream.sources WHERE name = 'tap1'), 'iotstream-tap1', 'the consumer group is named after the source');
SELECT is((SELECT running FROM iotstream.sources WHERE name = 'tap1'), false, 'a new source is stopped');
SELECT ok(NOT (SELECT options ? 'sasl.password' FROM iotstream.sources WHERE name = 'tap1'), 'secrets are not kept with the options');
SELECT is((SELECT properties->>'sasl.password' FROM iotstream.source_secrets s JOIN iotstream.sources USING (source_id) WHERE name = 'tap1'),
          'hunter2', 'secrets are kept apart');
SELECT is((SELECT value FROM iotstream.source_config('tap1') WHERE property = 'sasl.password'), '********', 'source_config masks secrets');
SELECT is((SELECT value FROM iotstream.source_config('tap1') WHERE property = 'fetch.max.bytes'), '1048576', 'source_config shows the rest');
SELECT is((SELECT value FROM iotstream.source_config('tap1') WHERE property = 'bootstrap.servers'), '127.0.0.1:9092', 'and the brokers');
SELECT ok(NOT EXISTS (SELECT 1 FROM iotstream.source_status s WHERE s::text LIKE '%hunter2%'), 'source_status shows no secret');
SELECT is((SELECT state FROM iotstream.source_status WHERE source = 'tap1'), 'stopped', 'source_status lists the source');
SELECT ok(has_table_privilege('public', 'iotstream.source_secrets', 'SELECT') = false, 'PUBLIC cannot read secrets');

SELECT lives_ok($$SELECT iotstream.start_source('tap1')$$, 'start_source');
SELECT is((SELECT running FROM iotstream.sources WHERE name = 'tap1'), true, 'the source is running');
SELECT lives_ok($$SELECT iotstream.alter_source('tap1', topics => ARRAY['t3'], options => '{"batch_size": 1000}')$$, 'alter_source');
SELECT is((SELECT topics FROM iotstream.sources WHERE name = 'tap1'), ARRAY['t3'], 'topics changed');
SELECT is((SELECT options->>'batch_size' FROM iotstream.sources WHERE name = 'tap1'), '1000', 'options merged');
SELECT is((SELECT options->>'batch_ms' FROM iotstream.sources WHERE name = 'tap1'), '20', 'other options kept');
SELECT lives_ok($$SELECT iotstream.stop_source('tap1')$$, 'stop_source');

-- Event Hubs
SELECT is((SELECT row(brokers, topic)::text FROM iotstream.eventhubs_properties(
    'Endpoint=sb://contoso-ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=abc123=;EntityPath=telemetry')),
    '(contoso-ns.servicebus.windows.net:9093,telemetry)', 'Event Hubs: bootstrap and topic from the connection string');
SELECT is((SELECT properties - 'sasl.password' FROM iotstream.eventhubs_properties(
    'Endpoint=sb://contoso-ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=abc123=;EntityPath=telemetry')),
    '{"security.protocol": "SASL_SSL", "sasl.mechanisms": "PLAIN", "sasl.username": "$ConnectionString",
      "socket.keepalive.enable": "true", "metadata.max.age.ms": "180000", "connections.max.idle.ms": "180000",
      "socket.timeout.ms": "60000", "session.timeout.ms": "30000", "heartbeat.interval.ms": "3000",
      "request.timeout.ms": "60000"}'::jsonb, 'Event Hubs: SASL_SSL/PLAIN and the settings Azure recommends');
SELECT ok(iotstream.create_eventhubs_source('tap_eh',
    'Endpoint=sb://contoso-ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=abc123=;EntityPath=telemetry',
    'tap_src', '{"ts": "timestamp"}', consumer_group => 'iotstream') > 0, 'create_eventhubs_source');
SELECT is((SELECT value FROM iotstream.source_config('tap_eh') WHERE property = 'sasl.password'), '********',
          'the connection string is masked');
SELECT is((SELECT group_id FROM iotstream.sources WHERE name = 'tap_eh'), 'iotstream', 'the consumer group is the hub''s');
SELECT ok(NOT EXISTS (SELECT 1 FROM iotstream.sources s WHERE s::text LIKE '%abc123%'), 'the key is only in source_secrets');
SELECT throws_ok($$SELECT iotstream.eventhubs_properties('Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=a;SharedAccessKey=b')$$,
                 '22023', 'the Event Hubs connection string has no EntityPath', 'no EntityPath');
SELECT throws_ok($$SELECT iotstream.eventhubs_properties('HostName=hub.azure-devices.net;SharedAccessKey=b')$$,
                 '22023', 'invalid Event Hubs connection string', 'not an Event Hubs connection string');

-- errors
SELECT throws_ok($$SELECT iotstream.create_source('tap1', 'b:9092', ARRAY['t'], 'tap_src')$$, '42710', NULL, 'duplicate name');
SELECT throws_ok($$SELECT iotstream.create_source('bad name!', 'b:9092', ARRAY['t'], 'tap_src')$$, '42602', NULL, 'bad name');
SELECT throws_ok($$SELECT iotstream.create_source('tap2', '', ARRAY['t'], 'tap_src')$$, '22023', NULL, 'no brokers');
SELECT throws_ok($$SELECT iotstream.create_source('tap2', 'b:9092', ARRAY[]::text[], 'tap_src')$$, '22023', NULL, 'no topics');
SELECT throws_ok($$SELECT iotstream.create_source('tap2', 'b:9092', ARRAY['t'], 'tap_plain')$$, '42809', NULL, 'target not a stream table');
SELECT throws_ok($$SELECT iotstream.create_source('tap2', 'b:9092', ARRAY['t'], 'tap_src', NULL, '{"batch_size": -1}')$$,
                 '22023', NULL, 'bad batch_size');
SELECT throws_ok($$SELECT iotstream.create_source('tap2', 'b:9092', ARRAY['t'], 'tap_src', NULL, '{"enable.auto.commit": "true"}')$$,
                 '22023', NULL, 'offsets are ours');
SELECT throws_ok($$SELECT iotstream.create_source('tap2', 'b:9092', ARRAY['t'], 'tap_src', NULL, '{"dedup_key": "nope"}')$$,
                 '42703', NULL, 'dedup key without a column');
SELECT lives_ok($$SELECT iotstream.create_source('tap4', 'b:9092', ARRAY['t'], 'tap_src', '{"ts": "timestamp"}',
                                                 '{"dedup_key": ["sensorId", "timestamp"]}')$$,
                'a dedup key names the JSON key the mapping reads');
SELECT throws_ok($$SELECT iotstream.create_source('tap5', 'b:9092', ARRAY['t'], 'tap_src',
                                                  '{"ts": "timestamp", "value": "timestamp"}', '{"dedup_key": "timestamp"}')$$,
                 '42702', NULL, 'a dedup key read into two columns is ambiguous');
SELECT throws_ok($$SELECT iotstream.start_source('nope')$$, '42704', NULL, 'unknown source');
CREATE ROLE tap_src_user;
SET LOCAL ROLE tap_src_user;
SELECT throws_ok($$SELECT iotstream.create_source('tap3', 'b:9092', ARRAY['t'], 'tap_src')$$, '42501', NULL,
                 'only superusers define sources');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;

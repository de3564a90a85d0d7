-- Maintenance through pg_cron: the job is registered, runs, and has an effect.
-- Not in a transaction: pg_cron must see the committed job and table.
SELECT plan(5);
SET TimeZone = 'UTC';

SELECT iotstream.create_stream_table('tap_cron', 'ts timestamptz NOT NULL, v int', 'ts',
    premake => 3, retention => '1 day', max_past => '30 days') IS NOT NULL AS created;
SELECT iotstream.ensure_partitions('tap_cron', now() - interval '5 days', now()) > 0 AS history;
-- remove the premade future so the job has to recreate it
DO $$ DECLARE p record; BEGIN
    FOR p IN SELECT partition FROM iotstream.partitions('tap_cron') WHERE range_start > now() LOOP
        EXECUTE format('DROP TABLE %s', p.partition); END LOOP; END $$;

SELECT ok(iotstream.schedule_maintenance('* * * * *') > 0, 'schedule_maintenance registers a job');
SELECT is((SELECT command FROM cron.job WHERE jobname = 'iotstream_maintenance'),
          'SELECT count(*) FROM iotstream.run_maintenance()', 'the job runs run_maintenance');

-- pg_cron runs jobs at minute boundaries: poll for up to 150 s.
CREATE FUNCTION pg_temp.wait_for_job() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..750 LOOP
        IF EXISTS (SELECT 1 FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                    WHERE j.jobname = 'iotstream_maintenance' AND d.status IN ('succeeded', 'failed')) THEN
            RETURN NOT EXISTS (SELECT 1 FROM cron.job_run_details WHERE status = 'failed');
        END IF;
        PERFORM pg_sleep(0.2);
    END LOOP;
    RETURN false;
END $$;
SELECT ok(pg_temp.wait_for_job(), 'the job ran and succeeded');
SELECT is((SELECT count(*)::int FROM iotstream.partitions('tap_cron') WHERE range_start > now()), 3,
          'the job premade the future partitions');
SELECT is((SELECT count(*)::int FROM iotstream.partitions('tap_cron') WHERE range_end <= now() - interval '1 day'), 0,
          'the job applied retention');

SELECT iotstream.unschedule_maintenance();
SELECT iotstream.drop_stream_table('tap_cron', drop_table => true);
SELECT * FROM finish();

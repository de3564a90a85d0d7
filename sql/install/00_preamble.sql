-- iotstream install script, assembled by the Makefile from sql/install/*.sql.
\echo Use "CREATE EXTENSION iotstream" to load this file. \quit

COMMENT ON SCHEMA iotstream IS 'iotstream: Kafka/Event Hubs ingestion, anomaly detection and Parquet export for time-partitioned stream tables';

-- Raises a clear error when pg_cron, which scheduling functions need, is
-- missing from this database.
CREATE FUNCTION iotstream._require_pg_cron() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION USING
            ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = 'pg_cron is not installed in this database',
            DETAIL = 'Scheduled jobs in iotstream run through pg_cron.',
            HINT = format('Add pg_cron to shared_preload_libraries, set cron.database_name = %L, restart, and run CREATE EXTENSION pg_cron. Or call the function you wanted to schedule from your own scheduler.',
                          current_database());
    END IF;
END $$;
COMMENT ON FUNCTION iotstream._require_pg_cron() IS 'Internal: errors with a hint when pg_cron is not installed in this database.';

-- Every role may call the public API: its functions check who may do what
-- (see README.md, "Privileges"); internal functions (named _*) are revoked
-- from PUBLIC at the end of the script (90_privileges.sql).
GRANT USAGE ON SCHEMA iotstream TO PUBLIC;

-- Privileges: internal functions (named _*) are not for PUBLIC.  The few
-- that the public API, views and row policies reach as the calling role
-- are granted back.  The model is described in README.md, "Privileges".
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'iotstream'::regnamespace AND p.proname LIKE '\_%' AND p.prokind = 'f'
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END $$;

GRANT EXECUTE ON FUNCTION
    iotstream._check_partition_interval(interval, regtype),   -- create_stream_table
    iotstream._convert_to_partitioned(name, name, name),      -- create_stream_table (adoption)
    iotstream._settings_put(regclass, name, interval, int, interval, text, interval, interval),
    iotstream._settings_delete(regclass),                     -- they check the caller owns the table
    iotstream._require_pg_cron(),                             -- schedule_maintenance
    iotstream._require_superuser(text),                       -- the errors of superuser-only functions
    iotstream._export_require_superuser(text),
    iotstream._partitions_or_none(regclass),                  -- the stream_tables view
    iotstream._worker_stats(),                                -- source_status: filtered by the caller's rights
    iotstream._may_read_source(text, name),                   -- the dead letters' row policy
    iotstream._may_read_copied_table(text, name)              -- the same, for COPY's dead letters
TO PUBLIC;

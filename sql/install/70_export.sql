-- Exports: sealed periods of a stream table as compacted Parquet files in a
-- local folder, Azure Blob Storage or ADLS Gen2, with a ledger.
--
-- Which periods, the ledger and re-exports are decided here; the bytes are
-- written by C (_export_write_files: Parquet encoding, block uploads, all
-- files of a period committed only at the end).

-- Storage credentials: the kind and its non-secret settings.  Secrets live
-- in storage_credential_secrets, which only superusers can read.
CREATE TABLE iotstream.storage_credentials (
    name        text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('shared_key', 'sas', 'service_principal', 'managed_identity')),
    account     text,
    options     jsonb NOT NULL DEFAULT '{}',   -- tenant, client_id, authority_host, endpoint
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE iotstream.storage_credentials IS 'Credentials for export destinations, without their secrets (see iotstream.storage_credential_secrets).';

CREATE TABLE iotstream.storage_credential_secrets (
    name    text PRIMARY KEY REFERENCES iotstream.storage_credentials ON DELETE CASCADE ON UPDATE CASCADE,
    secret  jsonb NOT NULL                      -- key, token or client_secret
);
COMMENT ON TABLE iotstream.storage_credential_secrets IS 'The secret of each storage credential; readable by superusers only, never shown in views, logs or errors.';
REVOKE ALL ON iotstream.storage_credentials, iotstream.storage_credential_secrets FROM PUBLIC;
GRANT SELECT ON iotstream.storage_credentials TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('iotstream.storage_credentials', '');
SELECT pg_catalog.pg_extension_config_dump('iotstream.storage_credential_secrets', '');

CREATE TABLE iotstream.exports (
    name              text PRIMARY KEY,
    source_table      regclass NOT NULL,
    destination       text NOT NULL,
    period            interval NOT NULL,
    lateness          interval NOT NULL,
    target_file_size  bigint NOT NULL,
    compression       text NOT NULL,
    credential        text REFERENCES iotstream.storage_credentials ON UPDATE CASCADE,
    schedule          text,
    options           jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    format            text NOT NULL DEFAULT 'delta' CHECK (format IN ('delta', 'parquet')),
    delta_runs        bigint NOT NULL DEFAULT 0,     -- runs committed: the txn version of the last
    delta_state       jsonb NOT NULL DEFAULT '{}'    -- the table's log as last read: version, metaData, protocol
);
COMMENT ON TABLE iotstream.exports IS 'Exports of stream tables to Delta tables or Parquet folders; see iotstream.create_export().';
SELECT pg_catalog.pg_extension_config_dump('iotstream.exports', '');

-- The ledger: one row per attempt.  A period's current files are those of
-- its one 'exported' row; 'replacing' rows are older versions whose files
-- are still to be deleted, 'replaced' rows older versions already deleted,
-- 'failed' rows attempts that committed nothing; 'log_cleaned' rows are a
-- Delta table's log cleanups (version: the checkpoint they cut at, files:
-- the log entries deleted, period: the commit times those span).
CREATE TABLE iotstream.export_log (
    id             bigserial PRIMARY KEY,
    export         text NOT NULL REFERENCES iotstream.exports ON DELETE CASCADE ON UPDATE CASCADE,
    period_start   timestamptz NOT NULL,
    period_end     timestamptz NOT NULL,
    version        int NOT NULL,
    files          text[] NOT NULL DEFAULT '{}',
    rows           bigint,
    bytes          bigint,
    min_time       timestamptz,
    max_time       timestamptz,
    checksum       bigint,
    change_signal  bigint,
    status         text NOT NULL CHECK (status IN ('exported', 'replacing', 'replaced', 'failed', 'log_cleaned')),
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz,
    error          text,
    removed_at     timestamptz,     -- when a re-export replaced this version
    delta_files    jsonb            -- delta: {"fields": schema fields, "add": add actions}
);
CREATE UNIQUE INDEX export_log_current ON iotstream.export_log (export, period_start) WHERE status = 'exported';
CREATE INDEX export_log_export ON iotstream.export_log (export, period_start);
COMMENT ON TABLE iotstream.export_log IS
    'The export ledger: per export and period, each version''s files, rows, bytes, event-time range, content checksum, status (exported, replacing, replaced, failed, log_cleaned), timings and error; for Delta tables, when a version was removed and its add actions, and the log cleanups (log_cleaned: the checkpoint version cut at and the log entries deleted).';
SELECT pg_catalog.pg_extension_config_dump('iotstream.export_log', '');
SELECT pg_catalog.pg_extension_config_dump('iotstream.export_log_id_seq', '');
REVOKE ALL ON iotstream.exports, iotstream.export_log FROM PUBLIC;
GRANT SELECT ON iotstream.exports, iotstream.export_log TO PUBLIC;

CREATE FUNCTION iotstream._export_write_files(
    query text, destination text, folder text, file_id text, credential text,
    writer_options jsonb, upload_options jsonb, source_table regclass,
    OUT files text[], OUT rows bigint, OUT bytes bigint, OUT sizes bigint[], OUT file_rows bigint[],
    OUT stats text[], OUT schema text)
AS 'MODULE_PATHNAME', 'export_write_files' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iotstream._export_write_files(text, text, text, text, text, jsonb, jsonb, regclass) IS
    'Internal: writes the rows of query, run as the owner of source_table, as Parquet files folder/part-NNNNN-file_id.parquet under destination, cut at target_file_size; all become visible only at the end. folder and file_id must stay below destination. Returns per file its size, rows and Delta statistics, and the files'' columns as Delta schema fields.';

-- One component of an export path from a name its owner chose (a table
-- name may hold "/" or be ".."): bytes outside [A-Za-z0-9_.-], and a
-- leading dot, become %XX, so the result is one safe folder name.
CREATE FUNCTION iotstream._path_component(name text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    out text := '';
    c text;
    b bytea;
    i int := 0;
BEGIN
    FOREACH c IN ARRAY regexp_split_to_array(name, '') LOOP
        i := i + 1;
        IF c ~ '^[A-Za-z0-9_-]$' OR (c = '.' AND i > 1) THEN
            out := out || c;
        ELSE
            b := convert_to(c, 'UTF8');
            FOR j IN 0 .. length(b) - 1 LOOP
                out := out || '%' || upper(lpad(to_hex(get_byte(b, j)), 2, '0'));
            END LOOP;
        END IF;
    END LOOP;
    RETURN out;
END $$;
COMMENT ON FUNCTION iotstream._path_component(text) IS 'Internal: a name as one path component that cannot leave its folder (percent-encoded).';

CREATE FUNCTION iotstream._export_delete_files(files text[], credential text) RETURNS int
AS 'MODULE_PATHNAME', 'export_delete_files' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iotstream._export_delete_files(text[], text) IS 'Internal: deletes exported files (already gone counts as deleted).';

CREATE FUNCTION iotstream._export_upload_file(path text, url text, credential text, options jsonb DEFAULT '{}')
RETURNS bigint AS 'MODULE_PATHNAME', 'export_upload_file' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iotstream._export_upload_file(text, text, text, jsonb) IS
    'Internal: uploads a server file to a blob URL through the export upload path (Put Block + Put Block List); for benchmarks and tests. Superusers only.';

CREATE FUNCTION iotstream.parse_destination(destination text,
    OUT kind text, OUT endpoint text, OUT account text, OUT container text, OUT path text)
AS 'MODULE_PATHNAME', 'parse_destination' LANGUAGE C IMMUTABLE STRICT;
COMMENT ON FUNCTION iotstream.parse_destination(text) IS
    'How an export destination is read: kind (file or blob), blob endpoint, account, container and folder path.';
REVOKE ALL ON FUNCTION iotstream._export_write_files(text, text, text, text, text, jsonb, jsonb, regclass),
    iotstream._export_delete_files(text[], text), iotstream._export_upload_file(text, text, text, jsonb) FROM PUBLIC;

CREATE FUNCTION iotstream._export_require_superuser(what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'insufficient_privilege',
            MESSAGE = format('permission denied to %s', what),
            DETAIL = 'Storage credentials and exports are managed by superusers.',
            HINT = 'Ask a superuser to run it.';
    END IF;
END $$;
COMMENT ON FUNCTION iotstream._export_require_superuser(text) IS 'Internal: errors unless the current user is a superuser.';

CREATE FUNCTION iotstream.create_storage_credential(
    name text, kind text, account text DEFAULT NULL, key text DEFAULT NULL, token text DEFAULT NULL,
    tenant text DEFAULT NULL, client_id text DEFAULT NULL, client_secret text DEFAULT NULL,
    authority_host text DEFAULT NULL, endpoint text DEFAULT NULL, federated_token_file text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    secret jsonb;
    opts jsonb := jsonb_strip_nulls(jsonb_build_object('tenant', tenant, 'client_id', client_id,
                                    'authority_host', rtrim(authority_host, '/'), 'endpoint', endpoint,
                                    'federated_token_file', federated_token_file));
    missing text;
BEGIN
    PERFORM iotstream._export_require_superuser('create storage credentials');
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'a storage credential needs a name',
            HINT = 'Pass name => ''lake''.';
    END IF;
    CASE kind
    WHEN 'shared_key' THEN
        missing := CASE WHEN account IS NULL THEN 'account' WHEN key IS NULL THEN 'key' END;
        secret := jsonb_build_object('key', key);
    WHEN 'sas' THEN
        missing := CASE WHEN token IS NULL THEN 'token' END;
        secret := jsonb_build_object('token', ltrim(token, '?'));
    WHEN 'service_principal' THEN
        missing := CASE WHEN tenant IS NULL THEN 'tenant' WHEN client_id IS NULL THEN 'client_id'
                        WHEN client_secret IS NULL THEN 'client_secret' END;
        secret := jsonb_build_object('client_secret', client_secret);
    WHEN 'managed_identity' THEN
        secret := '{}';
    ELSE
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('unknown storage credential kind "%s"', kind),
            HINT = 'The kinds are shared_key (account, key), sas (token), service_principal (tenant, client_id, client_secret) and managed_identity (optional client_id).';
    END CASE;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('a %s storage credential needs %s', kind, missing),
            HINT = format('Pass %s => ... to iotstream.create_storage_credential().', missing);
    END IF;
    IF EXISTS (SELECT 1 FROM iotstream.storage_credentials c WHERE c.name = create_storage_credential.name) THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('storage credential "%s" already exists', name),
            HINT = 'Drop it with iotstream.drop_storage_credential() first, or pick another name.';
    END IF;
    INSERT INTO iotstream.storage_credentials (name, kind, account, options) VALUES (name, kind, account, opts);
    INSERT INTO iotstream.storage_credential_secrets (name, secret) VALUES (name, secret);
END $$;
COMMENT ON FUNCTION iotstream.create_storage_credential(text, text, text, text, text, text, text, text, text, text, text) IS
    'Creates a storage credential for exports: shared_key (account, key), sas (token), service_principal (tenant, client_id, client_secret; authority_host overrides https://login.microsoftonline.com) or managed_identity (IMDS with optional client_id and endpoint; workload identity with federated_token_file, tenant and client_id, or AZURE_FEDERATED_TOKEN_FILE, AZURE_TENANT_ID and AZURE_CLIENT_ID in the server''s environment). The secret is readable by superusers only.';

CREATE FUNCTION iotstream.drop_storage_credential(name text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM iotstream._export_require_superuser('drop storage credentials');
    IF EXISTS (SELECT 1 FROM iotstream.exports e WHERE e.credential = drop_storage_credential.name) THEN
        RAISE EXCEPTION USING ERRCODE = 'dependent_objects_still_exist',
            MESSAGE = format('storage credential "%s" is used by an export', name),
            HINT = 'Drop the export or give it another credential with iotstream.alter_export() first.';
    END IF;
    DELETE FROM iotstream.storage_credentials c WHERE c.name = drop_storage_credential.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('storage credential "%s" does not exist', name),
            HINT = 'See iotstream.storage_credential_info for the credentials that exist.';
    END IF;
END $$;
COMMENT ON FUNCTION iotstream.drop_storage_credential(text) IS 'Removes a storage credential and its secret.';

CREATE VIEW iotstream.storage_credential_info AS
SELECT c.name, c.kind, c.account, c.options,
       CASE c.kind WHEN 'shared_key' THEN '{"key": "********"}'::jsonb
                   WHEN 'sas' THEN '{"token": "********"}'::jsonb
                   WHEN 'service_principal' THEN '{"client_secret": "********"}'::jsonb
                   ELSE '{}'::jsonb END AS secret,
       c.created_at
  FROM iotstream.storage_credentials c;
COMMENT ON VIEW iotstream.storage_credential_info IS 'Each storage credential with its secret masked as ********.';
GRANT SELECT ON iotstream.storage_credential_info TO PUBLIC;

-- Options of an export that go to the uploader; the rest but the table
-- settings (_export_table_keys) go to the writer.
CREATE FUNCTION iotstream._export_upload_keys() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY['block_size', 'parallel_uploads', 'max_retries', 'request_timeout_ms'] $$;
COMMENT ON FUNCTION iotstream._export_upload_keys() IS 'Internal: the export options that configure uploads.';

CREATE FUNCTION iotstream._export_table_keys() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY['deleted_file_retention', 'log_retention'] $$;
COMMENT ON FUNCTION iotstream._export_table_keys() IS 'Internal: the export options that configure the Delta table, not the writer.';

CREATE FUNCTION iotstream._export_check_options(writer_options jsonb, upload_options jsonb) RETURNS void
AS 'MODULE_PATHNAME', 'export_check_options' LANGUAGE C STRICT;
COMMENT ON FUNCTION iotstream._export_check_options(jsonb, jsonb) IS 'Internal: validates export options before they are stored.';

CREATE FUNCTION iotstream._check_export(e iotstream.exports) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    d record;
    cred iotstream.storage_credentials;
    secs numeric := extract(epoch FROM e.period);
    retention interval;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM iotstream.stream_table_settings s WHERE s.relid = e.source_table) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s is not a stream table', e.source_table),
            HINT = 'Exports read stream tables; create one with iotstream.create_stream_table().';
    END IF;
    IF e.period IS NULL OR secs <= 0 OR secs > 86400 OR 86400 % secs <> 0
       OR extract(month FROM e.period) <> 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid export period "%s"', e.period),
            HINT = 'A period divides a day evenly: ''15 minutes'', ''1 hour'', ''6 hours'' or ''1 day''.';
    END IF;
    IF e.lateness IS NULL OR e.lateness < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid export lateness "%s"', e.lateness),
            HINT = 'Lateness is how long after its end a period is sealed, such as ''10 minutes''.';
    END IF;
    IF e.target_file_size IS NULL OR e.target_file_size < 1024 * 1024 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'target_file_size must be at least 1MB',
            HINT = 'Data lakes read best with files of 128MB to 1GB; the default is 256MB.';
    END IF;
    IF e.compression NOT IN ('zstd', 'snappy', 'gzip', 'none') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('unknown compression "%s"', e.compression),
            HINT = 'Use zstd, snappy, gzip or none.';
    END IF;
    IF jsonb_typeof(e.options) <> 'object' OR e.options ? 'compression' OR e.options ? 'target_file_size' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'invalid export options',
            HINT = 'Options are a JSON object; compression and target_file_size are arguments of their own.';
    END IF;
    IF e.format IS NULL OR e.format NOT IN ('delta', 'parquet') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('unknown export format "%s"', e.format),
            HINT = 'Use delta (a Delta Lake table, the default) or parquet (Hive-style Parquet folders without a log).';
    END IF;
    IF e.options ? 'deleted_file_retention' THEN
        BEGIN
            retention := (e.options->>'deleted_file_retention')::interval;
        EXCEPTION WHEN OTHERS THEN
            retention := NULL;
        END;
        IF jsonb_typeof(e.options->'deleted_file_retention') <> 'string' OR retention IS NULL
           OR retention < interval '0' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('invalid deleted_file_retention %s', e.options->'deleted_file_retention'),
                HINT = 'Give an interval such as ''7 days'': how long files a commit removed stay for readers and time travel.';
        END IF;
    END IF;
    IF e.options ? 'log_retention' THEN
        BEGIN
            retention := (e.options->>'log_retention')::interval;
        EXCEPTION WHEN OTHERS THEN
            retention := NULL;
        END;
        IF jsonb_typeof(e.options->'log_retention') <> 'string' OR retention IS NULL
           OR retention < interval '0' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('invalid log_retention %s', e.options->'log_retention'),
                HINT = 'Give an interval such as ''30 days'': how long the Delta log keeps commits for history and time travel once a checkpoint covers them.';
        END IF;
    END IF;
    PERFORM iotstream._export_check_options(
        (SELECT coalesce(jsonb_object_agg(key, value), '{}') FROM jsonb_each(e.options)
          WHERE key <> ALL (iotstream._export_upload_keys() || iotstream._export_table_keys())),
        (SELECT coalesce(jsonb_object_agg(key, value), '{}') FROM jsonb_each(e.options)
          WHERE key = ANY (iotstream._export_upload_keys())));
    d := iotstream.parse_destination(e.destination);
    IF e.credential IS NOT NULL THEN
        SELECT * INTO cred FROM iotstream.storage_credentials c WHERE c.name = e.credential;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_object',
                MESSAGE = format('storage credential "%s" does not exist', e.credential),
                HINT = 'Create it with iotstream.create_storage_credential().';
        END IF;
        IF cred.account IS NOT NULL AND d.account IS NOT NULL AND cred.account <> d.account THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('storage credential "%s" is for account "%s", not "%s"', e.credential, cred.account, d.account),
                HINT = 'Use a credential of the destination''s storage account.';
        END IF;
    ELSIF d.kind = 'blob' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('destination "%s" needs a credential', e.destination),
            HINT = 'Create one with iotstream.create_storage_credential() and pass credential => its name.';
    END IF;
END $$;
COMMENT ON FUNCTION iotstream._check_export(iotstream.exports) IS 'Internal: validates an export''s settings with actionable errors.';

CREATE FUNCTION iotstream._schedule_export(name text, schedule text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF schedule IS NULL THEN
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
            EXECUTE 'SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = $1' USING 'iotstream_export_' || name;
        END IF;
        RETURN;
    END IF;
    PERFORM iotstream._require_pg_cron();
    -- DROP EXTENSION cannot reach pg_cron's table, so the job cleans up
    -- after it: once iotstream is gone, its next run unschedules it
    -- (PL/pgSQL parses the run_export call only when it runs)
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
      USING 'iotstream_export_' || name, schedule,
            format('DO $iotstream_job$BEGIN IF to_regprocedure(%L) IS NULL THEN PERFORM cron.unschedule(%L); '
                   'ELSE PERFORM count(*) FROM iotstream.run_export(%L); END IF; END$iotstream_job$',
                   'iotstream.run_export(text)', 'iotstream_export_' || name, name);
END $$;
COMMENT ON FUNCTION iotstream._schedule_export(text, text) IS 'Internal: registers (or with NULL removes) the pg_cron job iotstream_export_<name>, which unschedules itself once the extension is dropped.';

CREATE FUNCTION iotstream.create_export(
    name text, source_table regclass, destination text,
    period interval DEFAULT '1 hour', lateness interval DEFAULT '10 minutes',
    target_file_size text DEFAULT '256 MB', compression text DEFAULT 'zstd',
    credential text DEFAULT NULL, schedule text DEFAULT '*/5 * * * *', options jsonb DEFAULT '{}',
    format text DEFAULT 'delta')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    e iotstream.exports;
BEGIN
    PERFORM iotstream._export_require_superuser('create exports');
    IF name IS NULL OR name !~ '^[A-Za-z0-9_.-]+$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid export name "%s"', name),
            HINT = 'Use letters, digits, underscores, dots and hyphens.';
    END IF;
    IF EXISTS (SELECT 1 FROM iotstream.exports x WHERE x.name = create_export.name) THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('export "%s" already exists', name),
            HINT = 'Change it with iotstream.alter_export(), or drop it with iotstream.drop_export().';
    END IF;
    e := ROW(name, source_table, destination, period, lateness, pg_catalog.pg_size_bytes(target_file_size),
             lower(compression), credential, schedule, coalesce(options, '{}'), now(), lower(format), 0, '{}');
    PERFORM iotstream._check_export(e);
    INSERT INTO iotstream.exports SELECT e.*;
    PERFORM iotstream._schedule_export(name, schedule);
END $$;
COMMENT ON FUNCTION iotstream.create_export(text, regclass, text, interval, interval, text, text, text, text, jsonb, text) IS
    'Creates an export of a stream table: every sealed period (end + lateness < now()) becomes about ceil(bytes / target_file_size) Parquet files, by event time. format delta (the default): a Delta Lake table at destination/<table>, files in event_date=YYYY-MM-DD/event_hour=H/, one log commit per run; format parquet: destination/<table>/date=YYYY-MM-DD/hour=HH/part-NNNNN-<uuid>.parquet without a log. Registers the pg_cron job iotstream_export_<name> running iotstream.run_export(name) (schedule => NULL: none). Options: the writer options of write_parquet (compression_level, row_group_size, ...), block_size (16MB), parallel_uploads (4), max_retries (6), request_timeout_ms (120000), and for delta deleted_file_retention (7 days) and log_retention (30 days).';

CREATE FUNCTION iotstream.alter_export(
    name text, destination text DEFAULT NULL, lateness interval DEFAULT NULL,
    target_file_size text DEFAULT NULL, compression text DEFAULT NULL, credential text DEFAULT NULL,
    schedule text DEFAULT NULL, options jsonb DEFAULT NULL, unschedule boolean DEFAULT false,
    format text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    e iotstream.exports;
BEGIN
    PERFORM iotstream._export_require_superuser('alter exports');
    SELECT * INTO e FROM iotstream.exports x WHERE x.name = alter_export.name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object', MESSAGE = format('export "%s" does not exist', name),
            HINT = 'Create it with iotstream.create_export().';
    END IF;
    e.destination := coalesce(destination, e.destination);
    e.lateness := coalesce(lateness, e.lateness);
    e.target_file_size := coalesce(pg_catalog.pg_size_bytes(target_file_size), e.target_file_size);
    e.compression := coalesce(lower(compression), e.compression);
    e.credential := coalesce(credential, e.credential);
    e.schedule := CASE WHEN unschedule THEN NULL ELSE coalesce(schedule, e.schedule) END;
    e.options := e.options || coalesce(options, '{}');
    IF lower(format) IS DISTINCT FROM e.format AND format IS NOT NULL THEN
        -- the files already written are laid out, and logged, for the old format
        IF EXISTS (SELECT 1 FROM iotstream.export_log l WHERE l.export = e.name AND l.status <> 'failed') THEN
            RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
                MESSAGE = format('export "%s" has exported periods as %s', e.name, e.format),
                DETAIL = 'The format decides the folder layout and whether a Delta log lists the files.',
                HINT = 'Drop the export and create it again with the new format (and a new destination).';
        END IF;
        e.format := lower(format);
    END IF;
    IF e.format = 'delta' AND e.destination IS DISTINCT FROM (SELECT x.destination FROM iotstream.exports x WHERE x.name = e.name)
       AND EXISTS (SELECT 1 FROM iotstream.export_log l WHERE l.export = e.name AND l.status <> 'failed') THEN
        -- the Delta table's log, and the files later commits replace, are at the old place
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('export "%s" has committed periods to its delta table', e.name),
            DETAIL = 'A Delta table cannot move: its log lists the files at its destination.',
            HINT = 'Drop the export and create it again with the new destination.';
    END IF;
    PERFORM iotstream._check_export(e);
    UPDATE iotstream.exports x SET destination = e.destination, lateness = e.lateness,
        target_file_size = e.target_file_size, compression = e.compression, credential = e.credential,
        schedule = e.schedule, options = e.options, format = e.format
     WHERE x.name = e.name;
    PERFORM iotstream._schedule_export(e.name, e.schedule);
END $$;
COMMENT ON FUNCTION iotstream.alter_export(text, text, interval, text, text, text, text, jsonb, boolean, text) IS
    'Changes an export; NULL keeps a setting, options are merged, unschedule => true removes the pg_cron job. The period cannot change: it names the files already written (drop and create the export instead); neither can the format once periods were exported, nor the destination of a Delta table. New settings apply to periods exported from then on.';

CREATE FUNCTION iotstream.drop_export(name text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM iotstream._export_require_superuser('drop exports');
    IF NOT EXISTS (SELECT 1 FROM iotstream.exports x WHERE x.name = drop_export.name) THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object', MESSAGE = format('export "%s" does not exist', name),
            HINT = 'See iotstream.exports for the exports that exist.';
    END IF;
    PERFORM iotstream._schedule_export(name, NULL);
    DELETE FROM iotstream.exports x WHERE x.name = drop_export.name;
END $$;
COMMENT ON FUNCTION iotstream.drop_export(text) IS
    'Removes an export, its ledger and its pg_cron job. Files already exported stay where they are.';

-- Exports name their table by OID: when the table goes, so do its exports
-- and their pg_cron jobs (which would otherwise fail every few minutes).
CREATE FUNCTION iotstream._export_on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM iotstream.drop_export(e.name)
       FROM iotstream.exports e, pg_event_trigger_dropped_objects() d
      WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND d.objid = e.source_table::oid;
END $$;
COMMENT ON FUNCTION iotstream._export_on_sql_drop() IS 'Internal: drops the exports (and their pg_cron jobs) of dropped tables.';
CREATE EVENT TRIGGER iotstream_export_sql_drop ON sql_drop EXECUTE FUNCTION iotstream._export_on_sql_drop();

-- The change signal of [from_ts, to_ts): inserted + updated + deleted tuples
-- of the partitions overlapping it, from the cumulative statistics.  NULL
-- when partitions do not cover the whole range (dropped or detached by
-- retention): such a period is never re-exported.
CREATE FUNCTION iotstream._change_signal(relid regclass, from_ts timestamptz, to_ts timestamptz)
RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN sum(least(p.range_end, to_ts) - greatest(p.range_start, from_ts)) >= to_ts - from_ts
                THEN sum(pg_catalog.pg_stat_get_tuples_inserted(p.partition)
                         + pg_catalog.pg_stat_get_tuples_updated(p.partition)
                         + pg_catalog.pg_stat_get_tuples_deleted(p.partition))::bigint END
      FROM iotstream.partitions(relid) p
     WHERE p.range_start < to_ts AND p.range_end > from_ts
$$;
COMMENT ON FUNCTION iotstream._change_signal(regclass, timestamptz, timestamptz) IS
    'Internal: the cumulative insert/update/delete count of the partitions under a period; a change means the period may have late rows.';

-- A WHERE clause selecting [from_ts, to_ts) on the table's time column.
CREATE FUNCTION iotstream._export_range(relid regclass, time_column name, from_ts timestamptz, to_ts timestamptz)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN a.atttypid = 'timestamptz'::regtype
                THEN format('%I >= %L::timestamptz AND %I < %L::timestamptz', time_column, from_ts, time_column, to_ts)
                ELSE format('%I >= (%L::timestamptz AT TIME ZONE ''UTC'') AND %I < (%L::timestamptz AT TIME ZONE ''UTC'')',
                            time_column, from_ts, time_column, to_ts) END
      FROM pg_catalog.pg_attribute a WHERE a.attrelid = relid AND a.attname = time_column
$$;
COMMENT ON FUNCTION iotstream._export_range(regclass, name, timestamptz, timestamptz) IS
    'Internal: the WHERE clause of a period on a time column (timestamp and date columns read as UTC).';

-- Row count, checksum and time range of a period: what the ledger compares.
CREATE FUNCTION iotstream._period_summary(relid regclass, time_column name, from_ts timestamptz, to_ts timestamptz,
    OUT rows bigint, OUT checksum bigint, OUT min_time timestamptz, OUT max_time timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    tc text;
    j jsonb;
BEGIN
    -- a sum of row hashes (numeric, folded into bigint): independent of row
    -- order, changed by any insert, update or delete
    -- timestamp and date columns hold UTC wall-clock times
    IF (SELECT a.atttypid FROM pg_catalog.pg_attribute a WHERE a.attrelid = relid AND a.attname = time_column)
       = 'timestamptz'::regtype THEN
        tc := format('%I', time_column);
    ELSE
        tc := format('(%I::timestamp AT TIME ZONE ''UTC'')', time_column);
    END IF;
    -- the table's code (casts, output functions) runs as its owner
    j := iotstream._as_owner(relid,
        format('SELECT jsonb_build_object(''rows'', count(*), ''checksum'', coalesce(sum(hashtextextended(t::text, 0)) %% 9223372036854775807, 0)::bigint, '
               '''min_time'', min(%s), ''max_time'', max(%s)) FROM %s t WHERE %s',
               tc, tc, relid, iotstream._export_range(relid, time_column, from_ts, to_ts)));
    rows := (j->>'rows')::bigint;
    checksum := (j->>'checksum')::bigint;
    min_time := (j->>'min_time')::timestamptz;
    max_time := (j->>'max_time')::timestamptz;
END $$;
COMMENT ON FUNCTION iotstream._period_summary(regclass, name, timestamptz, timestamptz) IS
    'Internal: row count, content checksum (sum of row hashes) and event-time range of one period.';

-- Exports one period as version `version`; replaces the files of `old`.
CREATE FUNCTION iotstream._export_period(e iotstream.exports, time_column name, from_ts timestamptz,
    to_ts timestamptz, version int, old iotstream.export_log)
RETURNS iotstream.export_log LANGUAGE plpgsql AS $$
DECLARE
    l iotstream.export_log;
    sig bigint;
    folder text;
    w record;
    upload_keys text[] := iotstream._export_upload_keys();
    writer_opts jsonb;
    upload_opts jsonb;
    tbl text;
    pcols text[];
    pvals jsonb;
    file_id text;
    now_ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
BEGIN
    l.export := e.name;
    l.period_start := from_ts;
    l.period_end := to_ts;
    l.version := version;
    l.started_at := clock_timestamp();
    -- the signal is read before the rows: a change after it is seen next time
    sig := iotstream._change_signal(e.source_table, from_ts, to_ts);
    SELECT * INTO l.rows, l.checksum, l.min_time, l.max_time
      FROM iotstream._period_summary(e.source_table, time_column, from_ts, to_ts);
    l.change_signal := sig;
    l.files := '{}';
    l.bytes := 0;
    IF l.rows > 0 THEN
        tbl := iotstream._path_component((SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid = e.source_table));
        IF e.format = 'delta' THEN
            -- partition columns derived from event time: in the log's
            -- partitionValues and in the folder names, not in the files
            pcols := iotstream._delta_partition_columns(e.source_table, e.period);
            pvals := jsonb_build_object(pcols[1], to_char(from_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD'));
            IF cardinality(pcols) > 1 THEN
                pvals := pvals || jsonb_build_object(pcols[2], extract(hour FROM from_ts AT TIME ZONE 'UTC')::int::text);
            END IF;
            IF cardinality(pcols) > 2 THEN
                pvals := pvals || jsonb_build_object(pcols[3], extract(minute FROM from_ts AT TIME ZONE 'UTC')::int::text);
            END IF;
            folder := tbl;
            FOR i IN 1 .. cardinality(pcols) LOOP
                folder := folder || '/' || pcols[i] || '=' || (pvals->>pcols[i]);
            END LOOP;
            -- another server's export of the same name writes other names
            file_id := md5(format('%s|%s|%s', iotstream._delta_app_id(e), from_ts, version))::uuid::text;
        ELSE
            folder := format('%s/date=%s', tbl, to_char(from_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD'));
            IF to_ts - from_ts < interval '1 day' THEN
                folder := folder || to_char(from_ts AT TIME ZONE 'UTC', '/"hour="HH24');
            END IF;
            IF to_ts - from_ts < interval '1 hour' THEN
                folder := folder || to_char(from_ts AT TIME ZONE 'UTC', '/"minute="MI');
            END IF;
            file_id := md5(format('%s|%s|%s', e.name, from_ts, version))::uuid::text;
        END IF;
        SELECT coalesce(jsonb_object_agg(key, value), '{}') INTO writer_opts
          FROM jsonb_each(e.options) WHERE key <> ALL (upload_keys || iotstream._export_table_keys());
        SELECT coalesce(jsonb_object_agg(key, value), '{}') INTO upload_opts
          FROM jsonb_each(e.options) WHERE key = ANY (upload_keys);
        writer_opts := writer_opts || jsonb_build_object('compression', e.compression,
            'metadata', coalesce(writer_opts->'metadata', '{}') || jsonb_build_object(
                'iotstream.source_table', e.source_table::text,
                'iotstream.export', e.name,
                'iotstream.period_start', to_char(from_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                'iotstream.period_end', to_char(to_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                'iotstream.export_version', version::text));
        upload_opts := upload_opts || jsonb_build_object('target_file_size', e.target_file_size);
        SELECT * INTO w FROM iotstream._export_write_files(
            format('SELECT %s FROM %s WHERE %s',
                   CASE WHEN e.format = 'delta' THEN iotstream._delta_select_list(e.source_table) ELSE '*' END,
                   e.source_table,
                   iotstream._export_range(e.source_table, time_column, from_ts, to_ts)),
            -- named by export, period and version: a rerun of a rolled-back
            -- attempt overwrites its files instead of duplicating them
            e.destination, folder, file_id, e.credential, writer_opts, upload_opts, e.source_table);
        l.files := w.files;
        l.rows := w.rows;
        l.bytes := w.bytes;
        IF e.format = 'delta' THEN
            -- the add actions of the run's commit (paths relative to the table)
            SELECT jsonb_build_object('fields', w.schema::jsonb, 'add', coalesce(jsonb_agg(jsonb_build_object(
                       'path', substr(f.url, length(rtrim(e.destination, '/')) + length(tbl) + 3),
                       'partitionValues', pvals, 'size', w.sizes[f.i], 'modificationTime', now_ms,
                       'dataChange', true, 'stats', w.stats[f.i],
                       'tags', jsonb_build_object('iotstream.period_start', to_char(from_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                                                  'iotstream.version', version::text)) ORDER BY f.i), '[]'))
              INTO l.delta_files
              FROM unnest(w.files) WITH ORDINALITY AS f(url, i);
        END IF;
    END IF;
    l.status := 'exported';
    l.finished_at := clock_timestamp();
    IF old.id IS NOT NULL THEN
        UPDATE iotstream.export_log x SET status = 'replacing', removed_at = now() WHERE x.id = old.id;
    END IF;
    INSERT INTO iotstream.export_log (export, period_start, period_end, version, files, rows, bytes, min_time,
                                      max_time, checksum, change_signal, status, started_at, finished_at,
                                      delta_files)
    VALUES (l.export, l.period_start, l.period_end, l.version, l.files, l.rows, l.bytes, l.min_time,
            l.max_time, l.checksum, l.change_signal, l.status, l.started_at, l.finished_at, l.delta_files)
    RETURNING * INTO l;
    RETURN l;
END $$;
COMMENT ON FUNCTION iotstream._export_period(iotstream.exports, name, timestamptz, timestamptz, int, iotstream.export_log) IS
    'Internal: writes one period''s files and records the new version in the ledger.';

-- Deletes the files of replaced versions; a failure leaves them for the next run.
CREATE FUNCTION iotstream._export_delete_replaced(e iotstream.exports) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r iotstream.export_log;
    msg text;
BEGIN
    -- a Delta table's removed files stay for readers of older versions
    -- until deleted_file_retention has passed since the commit removed them
    FOR r IN SELECT * FROM iotstream.export_log x
              WHERE x.export = e.name AND x.status = 'replacing'
                AND (e.format <> 'delta' OR x.removed_at <= now() - coalesce((e.options->>'deleted_file_retention')::interval, interval '7 days'))
              ORDER BY x.id LOOP
        BEGIN
            PERFORM iotstream._export_delete_files(r.files, e.credential);
            UPDATE iotstream.export_log x SET status = 'replaced', error = NULL WHERE x.id = r.id;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
            UPDATE iotstream.export_log x SET error = 'deleting the replaced files failed: ' || msg WHERE x.id = r.id;
            RAISE WARNING 'export %: could not delete the replaced files of period %: %', e.name, r.period_start, msg;
            RETURN;
        END;
    END LOOP;
END $$;
COMMENT ON FUNCTION iotstream._export_delete_replaced(iotstream.exports) IS
    'Internal: deletes the files of versions replaced by a re-export (for a Delta table once deleted_file_retention has passed since their removal); retried on the next run if storage fails.';

CREATE FUNCTION iotstream.run_export(name text)
RETURNS TABLE (period_start timestamptz, period_end timestamptz, version int, files int, rows bigint,
               bytes bigint, status text)
LANGUAGE plpgsql AS $$
DECLARE
    e iotstream.exports;
    tcol name;
    cutoff timestamptz;
    todo record;
    l iotstream.export_log;
    msg text;
    detail text;
    cur record;
    added bigint[] := '{}';      -- ledger rows of this run: its Delta commit
    removed bigint[] := '{}';
BEGIN
    PERFORM iotstream._export_require_superuser('run exports');
    SELECT * INTO e FROM iotstream.exports x WHERE x.name = run_export.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object', MESSAGE = format('export "%s" does not exist', name),
            HINT = 'Create it with iotstream.create_export().';
    END IF;
    -- one run at a time per export (the cron job and a manual call)
    IF NOT pg_try_advisory_xact_lock(hashtext('iotstream.run_export'), hashtext(e.name)) THEN
        RAISE NOTICE 'export % is already running', e.name;
        RETURN;
    END IF;
    SELECT s.time_column INTO tcol FROM iotstream.stream_table_settings s WHERE s.relid = e.source_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s is no longer a stream table', e.source_table),
            HINT = 'Drop the export, or register the table again with iotstream.create_stream_table().';
    END IF;
    cutoff := now() - e.lateness;

    PERFORM iotstream._export_delete_replaced(e);

    -- Work: periods exported whose change signal moved and whose content
    -- differs (late rows), then sealed periods never exported.
    FOR todo IN
        WITH parts AS (
            -- statistics are read once per run and cached for the transaction
            SELECT p.range_start, p.range_end,
                   pg_catalog.pg_stat_get_tuples_inserted(p.partition)
                   + pg_catalog.pg_stat_get_tuples_updated(p.partition)
                   + pg_catalog.pg_stat_get_tuples_deleted(p.partition) AS sig
              FROM iotstream.partitions(e.source_table) p),
        periods AS (
            SELECT DISTINCT g AS ps
              FROM parts, generate_series(date_bin(e.period, parts.range_start, 'epoch'),
                                          parts.range_end - interval '1 microsecond', e.period) g
             WHERE parts.range_start < cutoff AND g + e.period <= cutoff),
        exported AS (
            -- as _change_signal(): NULL unless partitions cover the whole period
            SELECT x, x.period_start AS ps,
                   (SELECT CASE WHEN sum(least(pp.range_end, x.period_end) - greatest(pp.range_start, x.period_start))
                                     >= x.period_end - x.period_start
                                THEN sum(pp.sig)::bigint END
                      FROM parts pp WHERE pp.range_start < x.period_end AND pp.range_end > x.period_start) AS sig
              FROM iotstream.export_log x
             WHERE x.export = e.name AND x.status = 'exported')
        SELECT exported.x AS old, exported.ps FROM exported
         WHERE exported.sig IS NOT NULL AND exported.sig IS DISTINCT FROM (exported.x).change_signal
        UNION ALL
        SELECT NULL, periods.ps FROM periods
         WHERE NOT EXISTS (SELECT 1 FROM iotstream.export_log x
                            WHERE x.export = e.name AND x.period_start = periods.ps AND x.status = 'exported')
        ORDER BY 2
    LOOP
        l := NULL;
        BEGIN
            IF (todo.old).id IS NOT NULL THEN
                -- the signal moved: re-export only if the content changed
                SELECT * INTO cur FROM iotstream._period_summary(e.source_table, tcol, todo.ps, todo.ps + e.period);
                IF cur.rows = (todo.old).rows AND cur.checksum = (todo.old).checksum THEN
                    UPDATE iotstream.export_log x
                       SET change_signal = iotstream._change_signal(e.source_table, x.period_start, x.period_end)
                     WHERE x.id = (todo.old).id;
                    CONTINUE;
                END IF;
                l := iotstream._export_period(e, tcol, todo.ps, todo.ps + e.period, (todo.old).version + 1, todo.old);
            ELSE
                l := iotstream._export_period(e, tcol, todo.ps, todo.ps + e.period,
                        coalesce((SELECT max(x.version) FROM iotstream.export_log x
                                   WHERE x.export = e.name AND x.period_start = todo.ps AND x.status NOT IN ('failed', 'log_cleaned')), 0) + 1,
                        NULL);
            END IF;
        EXCEPTION WHEN OTHERS THEN
            -- nothing of this attempt is visible; the ledger keeps the old version
            GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
            INSERT INTO iotstream.export_log (export, period_start, period_end, version, status, started_at,
                                              finished_at, error)
            VALUES (e.name, todo.ps, todo.ps + e.period, coalesce((todo.old).version, 0) + 1, 'failed',
                    now(), clock_timestamp(), msg || coalesce(' ' || detail, ''));
            RAISE WARNING 'export % of period % failed: %', e.name, todo.ps, msg;
            period_start := todo.ps;
            period_end := todo.ps + e.period;
            version := coalesce((todo.old).version, 0) + 1;
            files := 0;
            rows := NULL;
            bytes := NULL;
            status := 'failed';
            RETURN NEXT;
            -- storage is likely down: the next run resumes here (what was
            -- written before the failure is still committed below)
            EXIT;
        END;
        added := added || l.id;
        IF (todo.old).id IS NOT NULL THEN
            removed := removed || (todo.old).id;
        END IF;
        period_start := l.period_start;
        period_end := l.period_end;
        version := l.version;
        files := cardinality(l.files);
        rows := l.rows;
        bytes := l.bytes;
        status := l.status;
        RETURN NEXT;
    END LOOP;

    IF e.format = 'delta' THEN
        -- one Delta commit for everything this run wrote and replaced
        PERFORM iotstream._delta_commit(e, added, removed);
        SELECT * INTO e FROM iotstream.exports x WHERE x.name = run_export.name;
        PERFORM iotstream._delta_clean_log(e);
    END IF;
    PERFORM iotstream._export_delete_replaced(e);
END $$;
COMMENT ON FUNCTION iotstream.run_export(text) IS
    'Exports every sealed period of the export not exported yet, and re-exports periods that got late rows (their change signal moved and their row count or checksum differs), replacing their files. For a Delta table, everything a run writes and replaces is one commit to its log. Returns one row per period written. Idempotent: a second run writes nothing. A failure is recorded as a failed ledger row and stops the run; the next run resumes.';

CREATE VIEW iotstream.export_status AS
SELECT e.name, e.source_table, e.destination, e.period, e.lateness, e.target_file_size, e.compression,
       e.credential, e.schedule,
       (SELECT max(l.period_end) FROM iotstream.export_log l WHERE l.export = e.name AND l.status = 'exported') AS exported_until,
       (SELECT count(*) FROM iotstream.export_log l WHERE l.export = e.name AND l.status = 'exported') AS periods,
       (SELECT sum(cardinality(l.files)) FROM iotstream.export_log l WHERE l.export = e.name AND l.status = 'exported') AS files,
       (SELECT sum(l.rows) FROM iotstream.export_log l WHERE l.export = e.name AND l.status = 'exported') AS rows,
       (SELECT sum(l.bytes) FROM iotstream.export_log l WHERE l.export = e.name AND l.status = 'exported') AS bytes,
       (SELECT count(*) FROM iotstream.export_log l WHERE l.export = e.name AND l.version > 1 AND l.status = 'exported') AS reexported_periods,
       f.finished_at AS last_error_at, f.error AS last_error,
       e.format,
       (e.delta_state->>'version')::bigint AS table_version,
       (e.delta_state->>'checkpoint')::bigint AS last_checkpoint,
       (SELECT coalesce(sum(cardinality(l.files)), 0) FROM iotstream.export_log l
         WHERE l.export = e.name AND l.status = 'replacing') AS files_pending_deletion
  FROM iotstream.exports e
  LEFT JOIN LATERAL (SELECT l.finished_at, l.error FROM iotstream.export_log l
                      WHERE l.export = e.name AND l.status = 'failed' ORDER BY l.id DESC LIMIT 1) f ON true;
COMMENT ON VIEW iotstream.export_status IS 'Per export: settings, how far it has exported, periods, files, rows and bytes, re-exported periods, the last failure, and for Delta tables the table version, the last checkpoint it wrote and the files removed but not yet deleted. No secrets.';
GRANT SELECT ON iotstream.export_status TO PUBLIC;

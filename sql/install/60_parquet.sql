-- Parquet: write the result of any query to a local Parquet file.

CREATE FUNCTION iotstream.write_parquet(
    query text,
    path text,
    options jsonb DEFAULT '{}',
    OUT rows bigint,
    OUT bytes bigint,
    OUT row_groups int)
RETURNS record
AS 'MODULE_PATHNAME', 'write_parquet' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION iotstream.write_parquet(text, text, jsonb) IS
$$Writes the rows of query to the Parquet file path (absolute; replaced atomically through a temporary file in the same directory) and returns the rows, bytes and row groups written. Options: compression ("zstd" default, "snappy", "gzip", "none"), compression_level (zstd -7..22, default 3; gzip 1..9), compression_threads (1..8, default 2: pages are compressed on helper threads, in parallel and while rows are still being read; 1 keeps everything on the backend), row_group_size (bytes or "128MB", default 128MB, measured as plain-encoded bytes), page_size (default "1MB"), dictionary (default true), dictionary_size (per column chunk, then PLAIN; default "1MB"), metadata (object of strings, stored as key-value metadata next to iotstream.version). Types: bool BOOLEAN; int2/int4 INT32 INT(16/32); int8 INT64; float4 FLOAT; float8 DOUBLE; numeric(p,s) with p <= 38 and 0 <= s <= p DECIMAL (INT32, INT64 or FIXED_LEN_BYTE_ARRAY by precision; NaN is an error); numeric without a typmod STRING (exact text); text/varchar/bpchar/name STRING; json/jsonb STRING with JSON; uuid FIXED_LEN_BYTE_ARRAY(16) UUID; bytea BYTE_ARRAY; timestamptz INT64 TIMESTAMP(MICROS, UTC); timestamp INT64 TIMESTAMP(MICROS, local); date DATE (infinite values become the extreme values DuckDB reads as infinity); any other type STRING with its text output. Only superusers and members of pg_write_server_files may call it.$$;

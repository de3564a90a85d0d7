-- Decoding Kafka messages into the columns of a table: preview and checks.
-- The ingest worker uses the same C decoder (src/decode.c).

CREATE FUNCTION iotstream.decode_preview(target regclass, mapping jsonb, payload text,
                                         key text DEFAULT NULL, topic text DEFAULT 't',
                                         "partition" int DEFAULT 0, "offset" bigint DEFAULT 0,
                                         "timestamp" timestamptz DEFAULT NULL,
                                         headers jsonb DEFAULT NULL)
RETURNS jsonb AS 'MODULE_PATHNAME', 'decode_preview' LANGUAGE C STABLE;
COMMENT ON FUNCTION iotstream.decode_preview(regclass, jsonb, text, text, text, int, bigint, timestamptz, jsonb) IS
$$The row a source with this mapping would insert into target for one message, as a jsonb object (columns that would take their DEFAULT are left out), or {"error": reason} for a message that would go to the dead letters.
Mapping: NULL or {} maps each column to the top-level key of its name; a key in camelCase also matches a snake_case column (deviceId -> device_id), then any key equal ignoring case; the best match wins. {"column": "a.b.c"} reads a nested key ("\." is a literal dot); "$payload" (jsonb, json, text, varchar, bytea), "$topic" (text), "$partition" and "$offset" (integers, numeric, text), "$key" (text, bytea, integers, numeric, uuid), "$timestamp" (timestamptz, timestamp, or bigint milliseconds), "$headers" (jsonb); null leaves the column out. Columns the mapping does not name keep the default rule.
Types: text/varchar take strings, or other values as JSON text; integers take integral numbers or strings of them; real/double/numeric take numbers, numeric strings, NaN; boolean takes true/false, 0/1, "true"/"false"/"t"/"f"; timestamptz/timestamp/date take ISO 8601 (UTC when no offset) or epoch numbers, whose unit is told by magnitude: < 1e11 seconds, < 1e14 milliseconds, < 1e17 microseconds, else nanoseconds; uuid takes 32 hex digits with or without hyphens; jsonb/json take any value; bytea takes a "\\x..." hex string. JSON null and missing keys give NULL (a missing key gives the DEFAULT when the column has one); NULL in a NOT NULL column is an error.$$;

CREATE FUNCTION iotstream.validate_mapping(target regclass, mapping jsonb)
RETURNS void AS 'MODULE_PATHNAME', 'validate_mapping' LANGUAGE C STABLE;
COMMENT ON FUNCTION iotstream.validate_mapping(regclass, jsonb) IS
'Raises the error a source would get at create time for this mapping and target: a mapping that is not an object, an unknown or generated column, a malformed path or unknown $source, a source the column type cannot take, a column type the decoder cannot fill (map it to null), or a NOT NULL column without default that the mapping leaves out. Keys cannot be known in advance: a NOT NULL column whose key a message lacks makes that message a dead letter.';

CREATE FUNCTION iotstream._decode_count_transfn(internal, regclass, jsonb, text)
RETURNS internal AS 'MODULE_PATHNAME', 'decode_count_transfn' LANGUAGE C;
COMMENT ON FUNCTION iotstream._decode_count_transfn(internal, regclass, jsonb, text) IS
'Internal: transition function of iotstream._decode_count.';
CREATE FUNCTION iotstream._decode_count_finalfn(internal)
RETURNS bigint AS 'MODULE_PATHNAME', 'decode_count_finalfn' LANGUAGE C;
COMMENT ON FUNCTION iotstream._decode_count_finalfn(internal) IS
'Internal: final function of iotstream._decode_count.';
CREATE AGGREGATE iotstream._decode_count(target regclass, mapping jsonb, payload text) (
    SFUNC = iotstream._decode_count_transfn,
    STYPE = internal,
    FINALFUNC = iotstream._decode_count_finalfn
);
COMMENT ON AGGREGATE iotstream._decode_count(regclass, jsonb, text) IS
'Internal, for test/bench/decode.sh: decodes each payload into a row of target as the ingest worker would and counts the rows decoded without error.';

CREATE FUNCTION iotstream.decode_preview(target regclass, mapping jsonb, payload bytea,
                                         key text DEFAULT NULL, topic text DEFAULT 't',
                                         "partition" int DEFAULT 0, "offset" bigint DEFAULT 0,
                                         "timestamp" timestamptz DEFAULT NULL,
                                         headers jsonb DEFAULT NULL)
RETURNS jsonb AS 'MODULE_PATHNAME', 'decode_preview' LANGUAGE C STABLE;
COMMENT ON FUNCTION iotstream.decode_preview(regclass, jsonb, bytea, text, text, int, bigint, timestamptz, jsonb) IS
'decode_preview for a payload given as raw bytes, which may be anything a Kafka message can hold (invalid UTF-8, NUL bytes).';

/*-------------------------------------------------------------------------
 * decode.c
 *		Kafka messages to the columns of one target table.
 *
 * DecodePlanCreate() compiles a mapping against a table's tuple descriptor
 * once per source worker (a worker whose table's columns change starts
 * again: IngestBatch checks them each batch); DecodeMessage()
 * then turns each message into values/nulls for that descriptor with one
 * pass of json_scan.c over the payload and no catalog access.
 *
 * Mapping rules (also in the README and the comments of the SQL functions):
 *  - Without a mapping (NULL or {}), every column takes the top-level key of
 *    its own name.  A key also matches when written in camelCase for a
 *    snake_case column (deviceId -> device_id), and then case-insensitively;
 *    when several keys match one column, the better match wins (exact, then
 *    camelCase, then case-insensitive), and among equals the last one.
 *  - An explicit mapping {"column": "source"} names, for some columns, a key
 *    path (complexData.moreData0: dots separate keys; a backslash makes the
 *    next character part of the key, as in "\." or a leading "\$")
 *    or one of $payload, $topic, $partition, $offset, $key, $timestamp,
 *    $headers, or null to leave the column out.  MQTT messages add
 *    $topic[n] (level n of the topic, counted from 0), $qos and $retain;
 *    $payload into a column of another type than jsonb, json, text,
 *    varchar and bytea takes a bare scalar payload (21.5, true, "open").  Columns it does not name
 *    keep the default rule.
 *  - A missing key or a JSON null gives SQL NULL.  A missing key (or an
 *    absent $key or $timestamp) in a column with a DEFAULT, and a column
 *    the mapping leaves out, ask the ingest path to use the default instead
 *    (DecodeUseDefault); an explicit JSON null stays NULL, as in INSERT.
 *    A NULL in a NOT NULL column makes the message a dead letter, as does
 *    every value that does not convert (decode_value.c lists what each
 *    type accepts, json_scalar.c the timestamp and epoch rules).
 *  - The payload must be JSON (and an object, if any column reads keys)
 *    unless only $payload as text/varchar/bytea and metadata are mapped; a
 *    tombstone (no payload) is then a dead letter.  $headers gives a jsonb
 *    object of strings, "\x<hex>" for values that are not UTF-8.
 *
 * At create time we reject: a mapping that is not an object, names an
 * unknown or generated column, or has a malformed path or unknown source; a
 * source the column's type cannot take; a column of a type we cannot decode
 * that the mapping does not leave out; and a NOT NULL column without a
 * default that the mapping leaves out.  Whether a key will be present we
 * can only know per message: a NOT NULL column left to a JSON key that a
 * message lacks is a dead letter, not a create-time error.
 *
 * The invariant: DecodeMessage never raises an error on any input.  Every
 * PostgreSQL input function it calls gets text that was validated first.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/source.h"
#include "decode/decode_int.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/tupdesc.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/float.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/uuid.h"

/* Unix epoch in PostgreSQL microseconds. */
#define UNIX_TO_PG_USECS \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)

/* Largest payload or key we decode. */
#define DECODE_MAX_BYTES	((size_t) 256 * 1024 * 1024)

static const char *const kind_names[] = {
	"text", "varchar", "smallint", "integer", "bigint", "real",
	"double precision", "numeric", "boolean", "timestamptz", "timestamp",
	"date", "uuid", "jsonb", "json", "bytea"
};

static const char *const expect_names[] = {
	"a string", "a string", "an integer", "an integer", "an integer",
	"a number", "a number", "a number", "a boolean", "a timestamp",
	"a timestamp", "a date", "a uuid", "a JSON value", "a JSON value",
	"a \\x hex string"
};

static const char *const token_names[] = {
	"nothing", "null", "false", "true", "a number", "a string", "an object",
	"an array", "bytes", "a non-object"
};

static DecodeKind
kind_of_type(Oid typid)
{
	switch (typid)
	{
		case TEXTOID:
			return DK_TEXT;
		case VARCHAROID:
			return DK_VARCHAR;
		case INT2OID:
			return DK_INT2;
		case INT4OID:
			return DK_INT4;
		case INT8OID:
			return DK_INT8;
		case FLOAT4OID:
			return DK_FLOAT4;
		case FLOAT8OID:
			return DK_FLOAT8;
		case NUMERICOID:
			return DK_NUMERIC;
		case BOOLOID:
			return DK_BOOL;
		case TIMESTAMPTZOID:
			return DK_TIMESTAMPTZ;
		case TIMESTAMPOID:
			return DK_TIMESTAMP;
		case DATEOID:
			return DK_DATE;
		case UUIDOID:
			return DK_UUID;
		case JSONBOID:
			return DK_JSONB;
		case JSONOID:
			return DK_JSON;
		case BYTEAOID:
			return DK_BYTEA;
		default:
			return DK_UNSUPPORTED;
	}
}

/* Which column kinds each special source can fill. */
static bool
source_accepts(DecodeSource source, DecodeKind kind)
{
	switch (source)
	{
		case DS_JSON:
			return true;
		case DS_PAYLOAD:
			/* other kinds take a bare scalar payload such as 21.5 or true */
			return kind != DK_UNSUPPORTED;
		case DS_TOPIC:
		case DS_TOPIC_LEVEL:
			return kind == DK_TEXT || kind == DK_VARCHAR;
		case DS_QOS:
			return kind == DK_INT2 || kind == DK_INT4 || kind == DK_INT8 ||
				kind == DK_NUMERIC || kind == DK_TEXT || kind == DK_VARCHAR;
		case DS_RETAIN:
			return kind == DK_BOOL || kind == DK_TEXT || kind == DK_VARCHAR;
		case DS_PARTITION:
		case DS_OFFSET:
			return kind == DK_INT2 || kind == DK_INT4 || kind == DK_INT8 ||
				kind == DK_NUMERIC || kind == DK_TEXT || kind == DK_VARCHAR;
		case DS_KEY:
			return kind == DK_TEXT || kind == DK_VARCHAR || kind == DK_BYTEA ||
				kind == DK_INT2 || kind == DK_INT4 || kind == DK_INT8 ||
				kind == DK_NUMERIC || kind == DK_UUID;
		case DS_TIMESTAMP:
			return kind == DK_TIMESTAMPTZ || kind == DK_TIMESTAMP ||
				kind == DK_INT8;
		case DS_HEADERS:
			return kind == DK_JSONB;
		case DS_NONE:
			return true;
	}
	return false;
}

static const char *
source_types_hint(DecodeSource source)
{
	switch (source)
	{
		case DS_PAYLOAD:
			return "$payload fills jsonb, json, text, varchar and bytea columns, and a column of another type with a bare scalar payload.";
		case DS_TOPIC:
			return "$topic fills text and varchar columns.";
		case DS_TOPIC_LEVEL:
			return "$topic[n] fills text and varchar columns.";
		case DS_QOS:
			return "$qos fills smallint, integer, bigint, numeric, text and varchar columns.";
		case DS_RETAIN:
			return "$retain fills boolean, text and varchar columns.";
		case DS_PARTITION:
		case DS_OFFSET:
			return "$partition and $offset fill smallint, integer, bigint, numeric, text and varchar columns.";
		case DS_KEY:
			return "$key fills text, varchar, bytea, smallint, integer, bigint, numeric and uuid columns.";
		case DS_TIMESTAMP:
			return "$timestamp fills timestamptz, timestamp and bigint (milliseconds) columns.";
		case DS_HEADERS:
			return "$headers fills jsonb columns.";
		default:
			return "Change the column's type or the mapping.";
	}
}

static const struct
{
	const char *name;
	DecodeSource source;
}			special_sources[] = {
	{"$payload", DS_PAYLOAD},
	{"$topic", DS_TOPIC},
	{"$partition", DS_PARTITION},
	{"$offset", DS_OFFSET},
	{"$key", DS_KEY},
	{"$timestamp", DS_TIMESTAMP},
	{"$headers", DS_HEADERS},
	{"$qos", DS_QOS},
	{"$retain", DS_RETAIN},
};

static JsonKeyEntry *
node_entry(JsonKeyNode *node, const char *name, int len, bool fuzzy)
{
	JsonKeyEntry *e;
	int			i;

	for (i = 0; i < node->nentries; i++)
	{
		e = &node->entries[i];
		if (e->fuzzy == fuzzy && e->len == len && memcmp(e->name, name, len) == 0)
			return e;
	}
	if (node->entries == NULL)
		node->entries = palloc(sizeof(JsonKeyEntry));
	else
		node->entries = repalloc(node->entries,
								 sizeof(JsonKeyEntry) * (node->nentries + 1));
	e = &node->entries[node->nentries++];
	memset(e, 0, sizeof(*e));
	e->name = pnstrdup(name, len);
	e->len = len;
	e->fuzzy = fuzzy;
	return e;
}

static void
entry_add_col(JsonKeyEntry *e, int col)
{
	if (e->cols == NULL)
		e->cols = palloc(sizeof(int));
	else
		e->cols = repalloc(e->cols, sizeof(int) * (e->ncols + 1));
	e->cols[e->ncols++] = col;
}

/*
 * Split a path at unescaped dots into the tree under root, binding its last
 * key to column col.
 */
static void
add_path(JsonKeyNode *root, const char *path, int col, const char *colname)
{
	JsonKeyNode *node = root;
	const char *p = path;
	char	   *seg = palloc(strlen(path) + 1);

	for (;;)
	{
		int			len = 0;
		JsonKeyEntry *e;

		while (*p && *p != '.')
		{
			if (*p == '\\' && p[1] != '\0')
				p++;
			seg[len++] = *p++;
		}
		if (len == 0 || len > 255)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid JSON path \"%s\" for column \"%s\"",
							path, colname),
					 errdetail(len == 0 ? "The path has an empty key."
							   : "A key of the path is longer than 255 bytes."),
					 errhint("Write keys separated by dots, such as \"complexData.moreData0\"; a backslash makes the next character part of the key (\"\\.\" for a dot).")));
		e = node_entry(node, seg, len, false);
		if (*p == '\0')
		{
			entry_add_col(e, col);
			break;
		}
		p++;
		if (e->child == NULL)
			e->child = palloc0(sizeof(JsonKeyNode));
		node = e->child;
	}
	pfree(seg);
}

static char *
column_list(TupleDesc desc)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		if (buf.len > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfoString(&buf, quote_identifier(NameStr(att->attname)));
	}
	return buf.data;
}

/* Apply one "column": value pair of an explicit mapping. */
static void
map_column(DecodePlan *plan, TupleDesc desc, const char *relname,
		   const char *colname, JsonbValue *v, bool *explicit)
{
	DecodeColumn *col = NULL;
	int			i;

	for (i = 0; i < plan->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), colname) == 0)
		{
			col = &plan->cols[i];
			break;
		}
	}
	if (col == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("mapping names column \"%s\", which table \"%s\" does not have",
						colname, relname),
				 errhint("The columns of \"%s\" are: %s.", relname, column_list(desc))));
	if (TupleDescAttr(desc, i)->attgenerated)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("mapping names column \"%s\", which is a generated column",
						colname),
				 errhint("Remove \"%s\" from the mapping: PostgreSQL computes it.", colname)));
	explicit[i] = true;
	if (v->type == jbvNull)
	{
		col->source = DS_NONE;
		col->path = "null";
		return;
	}
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the mapping of column \"%s\" must be a string or null",
						colname),
				 errhint("Write a JSON path such as \"complexData.moreData0\", a source such as \"$topic\", or null to leave the column out.")));
	col->path = pnstrdup(v->val.string.val, v->val.string.len);
	if (strlen(col->path) != v->val.string.len)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid JSON path for column \"%s\"", colname),
				 errdetail("The path contains a NUL character.")));
	if (strncmp(col->path, "$topic[", 7) == 0)
	{
		char	   *end;
		long		level = strtol(col->path + 7, &end, 10);

		if (end == col->path + 7 || strcmp(end, "]") != 0 || level < 0 || level > 1000)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid topic level \"%s\" for column \"%s\"",
							col->path, colname),
					 errhint("Write $topic[n] with n counted from 0: in \"arduino/site-1/dht11\", $topic[1] is \"site-1\".")));
		col->source = DS_TOPIC_LEVEL;
		col->level = (int) level;
		return;
	}
	if (col->path[0] == '$')
	{
		for (i = 0; i < lengthof(special_sources); i++)
			if (strcmp(col->path, special_sources[i].name) == 0)
				break;
		if (i == lengthof(special_sources))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown source \"%s\" for column \"%s\"",
							col->path, colname),
					 errhint("The sources are $payload, $topic, $topic[n], $partition, $offset, $key, $timestamp, $headers, $qos and $retain; write \"\\$\" for a key that starts with a dollar sign.")));
		col->source = special_sources[i].source;
		return;
	}
	col->source = DS_JSON;
	add_path(plan->root, col->path, col - plan->cols, colname);
}

DecodePlan *
DecodePlanCreate(Oid relid, Jsonb *mapping, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Relation	rel;
	TupleDesc	desc;
	DecodePlan *plan;
	bool	   *explicit;
	const char *relname;
	int			i;

	if (GetDatabaseEncoding() != PG_UTF8)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("decoding messages needs a UTF8 database"),
				 errdetail("This database uses the encoding \"%s\".",
						   GetDatabaseEncodingName()),
				 errhint("Create the database with ENCODING 'UTF8'.")));

	rel = relation_open(relid, AccessShareLock);
	relname = pstrdup(RelationGetRelationName(rel));
	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", relname),
				 errhint("Messages can only be decoded into a table or a stream table.")));
	desc = RelationGetDescr(rel);

	plan = palloc0(sizeof(DecodePlan));
	plan->relid = relid;
	plan->natts = desc->natts;
	plan->cols = palloc0(sizeof(DecodeColumn) * desc->natts);
	plan->slots = palloc0(sizeof(JsonScanSlot) * desc->natts);
	plan->use_default = palloc0(sizeof(bool) * desc->natts);
	plan->root = palloc0(sizeof(JsonKeyNode));
	explicit = palloc0(sizeof(bool) * desc->natts);

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		DecodeColumn *col = &plan->cols[i];

		col->name = pstrdup(NameStr(att->attname));
		col->typid = att->atttypid;
		col->typmod = att->atttypmod;
		col->kind = kind_of_type(att->atttypid);
		col->notnull = att->attnotnull;
		col->hasdefault = att->atthasdef || att->attidentity != '\0';
		col->source = DS_JSON;
		if (att->attisdropped || att->attgenerated)
		{
			/* the executor computes generated columns; never a default */
			col->source = DS_NONE;
			col->notnull = col->hasdefault = false;
			explicit[i] = true;
		}
	}

	if (mapping != NULL)
	{
		JsonbIterator *it;
		JsonbValue	v;
		JsonbIteratorToken r;
		char	   *colname = NULL;

		if (!JB_ROOT_IS_OBJECT(mapping) || JB_ROOT_IS_SCALAR(mapping))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a mapping must be a JSON object"),
					 errhint("Write it as {\"column\": \"json.path\"}, or pass NULL to map keys to columns by name.")));
		it = JsonbIteratorInit(&mapping->root);
		while ((r = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (r == WJB_KEY)
				colname = pnstrdup(v.val.string.val, v.val.string.len);
			else if (r == WJB_VALUE)
				map_column(plan, desc, relname, colname, &v, explicit);
		}
	}

	for (i = 0; i < desc->natts; i++)
	{
		DecodeColumn *col = &plan->cols[i];
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->attgenerated)
			continue;
		if (!explicit[i])
		{
			col->path = col->name;
			entry_add_col(node_entry(plan->root, col->name, strlen(col->name), true), i);
		}
		if (col->source == DS_NONE)
		{
			if (col->notnull && !col->hasdefault)
				ereport(ERROR,
						(errcode(ERRCODE_NOT_NULL_VIOLATION),
						 errmsg("the mapping leaves out column \"%s\", which is NOT NULL and has no default",
								col->name),
						 errhint("Map \"%s\" to a JSON key or a source such as \"$timestamp\", or give it a default.",
								 col->name)));
			continue;
		}
		if (col->kind == DK_UNSUPPORTED)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("column \"%s\" has type %s, which messages cannot be decoded into",
							col->name, format_type_with_typemod(col->typid, col->typmod)),
					 errhint("Use one of text, varchar, smallint, integer, bigint, real, double precision, numeric, boolean, timestamptz, timestamp, date, uuid, jsonb, json or bytea, or map the column to null in the mapping to leave it out.")));
		if (!source_accepts(col->source, col->kind))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of type %s cannot take %s",
							col->name, kind_names[col->kind],
							col->source == DS_JSON ? "a JSON value" : col->path),
					 errhint("%s", source_types_hint(col->source))));
		if (col->source == DS_JSON)
			plan->scan = true;
		else if (col->source == DS_PAYLOAD && col->kind != DK_TEXT &&
				 col->kind != DK_VARCHAR && col->kind != DK_BYTEA)
			plan->scan = true;	/* jsonb, json, or a bare scalar */
	}
	if (plan->root->nentries == 0)
		plan->root = NULL;
	else
		JsonKeyNodeFinish(plan->root);

	relation_close(rel, AccessShareLock);
	MemoryContextSwitchTo(old);
	return plan;
}

const bool *
DecodeUseDefault(const DecodePlan *plan)
{
	return plan->use_default;
}

/* Whether a column takes $headers: the consumer parses headers only then. */
bool
DecodeNeedsHeaders(const DecodePlan *plan)
{
	for (int i = 0; i < plan->natts; i++)
		if (plan->cols[i].source == DS_HEADERS)
			return true;
	return false;
}

static char *
column_reason(const DecodeColumn *col, const char *why)
{
	return psprintf("column \"%s\": %s", col->name, why);
}

/*
 * One column's value from a message's metadata; false with *reason set if
 * the message's data does not fit.  tok_out gets a token for the converter
 * when the value goes through DecodeValue.
 */
static bool
metadata_token(const DecodeColumn *col, const SourceMessage *msg,
			   char *numbuf, JsonToken *tok, Datum *value, bool *done,
			   const char **reason)
{
	*done = false;
	memset(tok, 0, sizeof(*tok));
	switch (col->source)
	{
		case DS_TOPIC:
			if (msg->topic == NULL)
				return true;	/* JTOK_NONE: NULL */
			tok->type = JTOK_RAW;
			tok->start = msg->topic;
			tok->len = strlen(msg->topic);
			if (!pg_verify_mbstr(PG_UTF8, tok->start, tok->len, true))
			{
				*reason = column_reason(col, "the topic name is not valid UTF-8");
				return false;
			}
			break;
		case DS_KEY:
			if (msg->key == NULL)
				return true;
			tok->type = JTOK_RAW;
			tok->start = msg->key;
			tok->len = msg->key_len;
			if (col->kind != DK_BYTEA &&
				!pg_verify_mbstr(PG_UTF8, msg->key, msg->key_len, true))
			{
				*reason = column_reason(col, "the message key is not valid UTF-8 or holds a NUL byte");
				return false;
			}
			break;
		case DS_PARTITION:
		case DS_OFFSET:
			tok->type = JTOK_NUMBER;
			tok->flags = JTOK_F_INTEGRAL;
			tok->start = numbuf;
			tok->len = snprintf(numbuf, 32, INT64_FORMAT,
								col->source == DS_OFFSET ? msg->offset :
								(int64) msg->partition);
			break;
		case DS_TIMESTAMP:
			if (msg->timestamp_ms < 0)
				return true;
			if (col->kind == DK_INT8)
				*value = Int64GetDatum(msg->timestamp_ms);
			else
			{
				int64		ts = msg->timestamp_ms * 1000 - UNIX_TO_PG_USECS;

				if (msg->timestamp_ms > PG_INT64_MAX / 1000 ||
					!IS_VALID_TIMESTAMP(ts))
				{
					*reason = column_reason(col, "the message timestamp is out of range");
					return false;
				}
				*value = Int64GetDatum(ts);
			}
			*done = true;
			break;
		case DS_HEADERS:
			*value = DecodeHeaders(msg);
			*done = true;
			break;
		case DS_TOPIC_LEVEL:
			{
				const char *p = msg->topic;

				/* level n: after n slashes, up to the next; absent: NULL */
				for (int n = col->level; p && n > 0; n--)
					if ((p = strchr(p, '/')) != NULL)
						p++;
				if (p == NULL)
					return true;
				tok->type = JTOK_RAW;
				tok->start = p;
				tok->len = strchrnul(p, '/') - p;
				if (!pg_verify_mbstr(PG_UTF8, tok->start, tok->len, true))
				{
					*reason = column_reason(col, "the topic name is not valid UTF-8");
					return false;
				}
				break;
			}
		case DS_QOS:
			tok->type = JTOK_NUMBER;
			tok->flags = JTOK_F_INTEGRAL;
			tok->start = numbuf;
			tok->len = snprintf(numbuf, 32, "%d", (int) msg->qos);
			break;
		case DS_RETAIN:
			tok->type = msg->retain ? JTOK_TRUE : JTOK_FALSE;
			tok->start = msg->retain ? "true" : "false";
			tok->len = strlen(tok->start);
			break;
		default:
			elog(ERROR, "unexpected decode source %d", col->source);
	}
	return true;
}

bool
DecodeMessage(DecodePlan *plan, const SourceMessage *msg,
			  Datum *values, bool *nulls, const char **reason)
{
	JsonToken	whole;

	memset(&whole, 0, sizeof(whole));
	*reason = NULL;
	if (msg->error)
	{
		*reason = msg->error;
		return false;
	}
	if (msg->fields)
		return DecodeFields(plan, msg, values, nulls, reason);
	/* a safety net below palloc's limit; the ingest path has its own */
	if (msg->payload_len > DECODE_MAX_BYTES || msg->key_len > DECODE_MAX_BYTES)
	{
		*reason = "the message is larger than the decoder's limit of 256 MB";
		return false;
	}
	if (plan->scan)
	{
		const char *error;
		size_t		error_at;

		if (msg->payload == NULL)
		{
			*reason = "the message has no payload (a tombstone)";
			return false;
		}
		memset(plan->slots, 0, sizeof(JsonScanSlot) * plan->natts);
		if (!JsonScan(msg->payload, msg->payload_len, plan->root, plan->slots,
					  &whole, &error, &error_at))
		{
			*reason = strncmp(error, "the payload", 11) == 0 ? error :
				psprintf("%s at byte %zu", error, error_at);
			return false;
		}
	}

	return DecodeColumns(plan, msg, &whole, values, nulls, reason);
}

/*
 * The columns' values from the tokens in plan->slots (DS_JSON columns) and
 * the message's metadata; whole is the payload as a JSON value.
 */
bool
DecodeColumns(DecodePlan *plan, const SourceMessage *msg, const JsonToken *whole,
			  Datum *values, bool *nulls, const char **reason)
{
	int			i;

	for (i = 0; i < plan->natts; i++)
	{
		const DecodeColumn *col = &plan->cols[i];
		JsonToken	mtok;
		const JsonToken *tok = &mtok;
		char		numbuf[32];
		bool		done = false;
		const char *why;

		values[i] = (Datum) 0;
		nulls[i] = true;
		plan->use_default[i] = false;
		switch (col->source)
		{
			case DS_NONE:
				plan->use_default[i] = col->hasdefault;
				continue;
			case DS_JSON:
				tok = &plan->slots[i].tok;
				break;
			case DS_PAYLOAD:
				memset(&mtok, 0, sizeof(mtok));
				if (msg->payload == NULL)
					break;
				if (col->kind == DK_JSONB || col->kind == DK_JSON)
					tok = whole;
				else if (col->kind != DK_TEXT && col->kind != DK_VARCHAR &&
						 col->kind != DK_BYTEA)
				{
					/* a bare scalar: an object or array does not convert */
					tok = whole;
				}
				else
				{
					mtok.type = JTOK_RAW;
					mtok.start = msg->payload;
					mtok.len = msg->payload_len;
					if (col->kind != DK_BYTEA && !plan->scan &&
						!pg_verify_mbstr(PG_UTF8, msg->payload, msg->payload_len, true))
					{
						*reason = column_reason(col, "the payload is not valid UTF-8 or holds a NUL byte");
						return false;
					}
				}
				break;
			default:
				if (!metadata_token(col, msg, numbuf, &mtok, &values[i], &done,
									reason))
					return false;
				if (done)
				{
					nulls[i] = false;
					continue;
				}
		}

		switch (tok->type)
		{
			case JTOK_NONE:
				if (col->hasdefault)
				{
					plan->use_default[i] = true;
					continue;
				}
				if (col->notnull)
				{
					*reason = col->source == DS_JSON ?
						psprintf("column \"%s\" is NOT NULL, but the message has no \"%s\"",
								 col->name, col->path) :
						psprintf("column \"%s\" is NOT NULL, but the message has no %s",
								 col->name, col->path + 1);
					return false;
				}
				continue;
			case JTOK_NULL:
				if (col->notnull)
				{
					*reason = psprintf("column \"%s\" is NOT NULL, but \"%s\" is null",
									   col->name, col->path);
					return false;
				}
				continue;
			case JTOK_BADSHAPE:
				*reason = psprintf("column \"%s\": the path \"%s\" goes through %s",
								   col->name, col->path,
								   token_names[tok->flags < JTOK_BADSHAPE ? tok->flags : JTOK_BADSHAPE]);
				return false;
			default:
				break;
		}
		if (!DecodeValue(col->kind, col->typmod, tok, &values[i], &why))
		{
			*reason = why ? column_reason(col, why) :
				psprintf("column \"%s\": expected %s, got %s", col->name,
						 expect_names[col->kind], token_names[tok->type]);
			return false;
		}
		nulls[i] = false;
	}
	return true;
}

/*-------------------------------------------------------------------------
 * decode_sql.c
 *		SQL entry points of the decoder: iotstream.decode_preview(),
 *		iotstream.validate_mapping() and the benchmark aggregate
 *		iotstream._decode_count().
 *
 * They go through exactly the interface the ingest worker uses
 * (DecodePlanCreate, DecodeMessage, DecodeUseDefault), so what a user sees
 * in a preview is what a source would insert.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/source.h"
#include "decode/decode.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/float.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/datetime.h"
#include "utils/uuid.h"

PG_FUNCTION_INFO_V1(decode_preview);
PG_FUNCTION_INFO_V1(validate_mapping);
PG_FUNCTION_INFO_V1(decode_count_transfn);
PG_FUNCTION_INFO_V1(decode_count_finalfn);

/* Previewing needs INSERT or SELECT on the target, as a source would. */
static void
check_target_access(Oid relid)
{
	if (pg_class_aclcheck(relid, GetUserId(), ACL_INSERT | ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s",
						get_rel_name(relid) ? get_rel_name(relid) : "?"),
				 errhint("Decoding into a table requires INSERT or SELECT on it.")));
}

/* A number (as the text of a float) or, for NaN and infinities, a string. */
static void
float_value(JsonbValue *v, char *s)
{
	if (strcmp(s, "NaN") == 0 || strcmp(s, "Infinity") == 0 ||
		strcmp(s, "-Infinity") == 0)
	{
		v->type = jbvString;
		v->val.string.val = s;
		v->val.string.len = strlen(s);
		return;
	}
	v->type = jbvNumeric;
	v->val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
														 CStringGetDatum(s),
														 ObjectIdGetDatum(InvalidOid),
														 Int32GetDatum(-1)));
}

static void
string_value(JsonbValue *v, char *s)
{
	v->type = jbvString;
	v->val.string.val = s;
	v->val.string.len = strlen(s);
}

/* Push one column's value, much as to_jsonb() would write it. */
typedef struct JsonAsJsonb
{
	const char *text;
	Datum		result;
} JsonAsJsonb;

static void
json_to_jsonb(void *arg)
{
	JsonAsJsonb *j = arg;

	j->result = DirectFunctionCall1(jsonb_in, CStringGetDatum(j->text));
}

/* json text as jsonb, or 0 if jsonb cannot hold it. */
static Datum
json_as_jsonb(const char *text)
{
	JsonAsJsonb j = {text, (Datum) 0};

	return CatchError(json_to_jsonb, &j) ? (Datum) 0 : j.result;
}

static void
push_value(JsonbParseState **state, Oid typid, Datum d)
{
	JsonbValue	v;
	char		buf[MAXDATELEN + 1];

	switch (typid)
	{
		case INT2OID:
			v.type = jbvNumeric;
			v.val.numeric = DatumGetNumeric(DirectFunctionCall1(int2_numeric, d));
			break;
		case INT4OID:
			v.type = jbvNumeric;
			v.val.numeric = DatumGetNumeric(DirectFunctionCall1(int4_numeric, d));
			break;
		case INT8OID:
			v.type = jbvNumeric;
			v.val.numeric = DatumGetNumeric(DirectFunctionCall1(int8_numeric, d));
			break;
		case FLOAT4OID:
			float_value(&v, DatumGetCString(DirectFunctionCall1(float4out, d)));
			break;
		case FLOAT8OID:
			float_value(&v, float8out_internal(DatumGetFloat8(d)));
			break;
		case NUMERICOID:
			if (numeric_is_nan(DatumGetNumeric(d)))
				string_value(&v, "NaN");
			else
			{
				v.type = jbvNumeric;
				v.val.numeric = DatumGetNumeric(d);
			}
			break;
		case BOOLOID:
			v.type = jbvBool;
			v.val.boolean = DatumGetBool(d);
			break;
		case TIMESTAMPTZOID:
		case TIMESTAMPOID:
		case DATEOID:
			string_value(&v, pstrdup(JsonEncodeDateTime(buf, d, typid, NULL)));
			break;
		case UUIDOID:
			string_value(&v, DatumGetCString(DirectFunctionCall1(uuid_out, d)));
			break;
		case BYTEAOID:
			string_value(&v, DatumGetCString(DirectFunctionCall1(byteaout, d)));
			break;
		case JSONOID:
			{
				/*
				 * json holds what jsonb cannot (\u0000, 1e999999): such a
				 * value, which the worker stores as it is, shows as its text
				 */
				char	   *str = TextDatumGetCString(d);
				Datum		jb = json_as_jsonb(str);

				if (jb == (Datum) 0)
				{
					string_value(&v, str);
					break;
				}
				d = jb;
			}
			/* FALLTHROUGH */
		case JSONBOID:
			{
				Jsonb	   *jb = DatumGetJsonbP(d);

				if (JB_ROOT_IS_SCALAR(jb))
					JsonbExtractScalar(&jb->root, &v);
				else
				{
					v.type = jbvBinary;
					v.val.binary.data = &jb->root;
					v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
				}
			}
			break;
		default:				/* text, varchar */
			string_value(&v, TextDatumGetCString(d));
	}
	pushJsonbValue(state, WJB_VALUE, &v);
}

/* Headers as the preview takes them: a jsonb object of strings (or null). */
static SourceHeader *
headers_from_jsonb(Jsonb *jb, int *n)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken r;
	SourceHeader *headers;
	int			count = 0;

	*n = 0;
	if (jb == NULL || !JB_ROOT_IS_OBJECT(jb))
		return NULL;
	headers = palloc0(sizeof(SourceHeader) * JB_ROOT_COUNT(jb));
	it = JsonbIteratorInit(&jb->root);
	while ((r = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (r == WJB_KEY)
			headers[count].name = pnstrdup(v.val.string.val, v.val.string.len);
		else if (r == WJB_VALUE)
		{
			if (v.type == jbvString)
			{
				headers[count].value = pnstrdup(v.val.string.val, v.val.string.len);
				headers[count].len = v.val.string.len;
			}
			count++;
		}
	}
	*n = count;
	return headers;
}

/*
 * decode_preview(target, mapping, payload, key, topic, partition, offset,
 * timestamp, headers): the row a source would insert, as a jsonb object
 * without the columns that would take their default, or {"error": reason}.
 */
Datum
decode_preview(PG_FUNCTION_ARGS)
{
	Oid			relid;
	Jsonb	   *mapping = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);
	text	   *payload = PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2);
	text	   *key = PG_ARGISNULL(3) ? NULL : PG_GETARG_TEXT_PP(3);
	SourceMessage msg;
	DecodePlan *plan;
	Relation	rel;
	TupleDesc	desc;
	Datum	   *values;
	bool	   *nulls;
	const char *reason;
	JsonbParseState *state = NULL;
	JsonbValue	k;
	JsonbValue *result;
	int			i;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	relid = PG_GETARG_OID(0);
	check_target_access(relid);
	plan = DecodePlanCreate(relid, mapping, CurrentMemoryContext);

	memset(&msg, 0, sizeof(msg));
	if (payload)
	{
		msg.payload = VARDATA_ANY(payload);
		msg.payload_len = VARSIZE_ANY_EXHDR(payload);
	}
	if (key)
	{
		msg.key = VARDATA_ANY(key);
		msg.key_len = VARSIZE_ANY_EXHDR(key);
	}
	msg.topic = PG_ARGISNULL(4) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(4));
	msg.partition = PG_ARGISNULL(5) ? 0 : PG_GETARG_INT32(5);
	msg.offset = PG_ARGISNULL(6) ? 0 : PG_GETARG_INT64(6);
	msg.timestamp_ms = -1;
	if (!PG_ARGISNULL(7))
	{
		TimestampTz ts = PG_GETARG_TIMESTAMPTZ(7);

		if (!TIMESTAMP_NOT_FINITE(ts))
			msg.timestamp_ms = (ts + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY) / 1000;
	}
	msg.headers = headers_from_jsonb(PG_ARGISNULL(8) ? NULL : PG_GETARG_JSONB_P(8),
									 &msg.nheaders);

	rel = relation_open(relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	values = palloc(sizeof(Datum) * desc->natts);
	nulls = palloc(sizeof(bool) * desc->natts);

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	k.type = jbvString;
	if (!DecodeMessage(plan, &msg, values, nulls, &reason))
	{
		k.val.string.val = "error";
		k.val.string.len = 5;
		pushJsonbValue(&state, WJB_KEY, &k);
		string_value(&k, (char *) reason);
		pushJsonbValue(&state, WJB_VALUE, &k);
	}
	else
	{
		const bool *use_default = DecodeUseDefault(plan);

		for (i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (att->attisdropped || att->attgenerated || use_default[i])
				continue;
			string_value(&k, NameStr(att->attname));
			pushJsonbValue(&state, WJB_KEY, &k);
			if (nulls[i])
			{
				JsonbValue	null;

				null.type = jbvNull;
				pushJsonbValue(&state, WJB_VALUE, &null);
			}
			else
				push_value(&state, att->atttypid, values[i]);
		}
	}
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	relation_close(rel, AccessShareLock);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(result));
}

/* validate_mapping(target, mapping): raises what create_source would. */
Datum
validate_mapping(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "iotstream validate_mapping",
											  ALLOCSET_SMALL_SIZES);

	if (PG_ARGISNULL(0))
		PG_RETURN_VOID();
	check_target_access(PG_GETARG_OID(0));
	DecodePlanCreate(PG_GETARG_OID(0), PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1),
					 cxt);
	MemoryContextDelete(cxt);
	PG_RETURN_VOID();
}

/*
 * The benchmark aggregate: decodes each payload as the ingest worker would
 * (a batch context reset every 1000 messages, a heap tuple formed per row)
 * and counts the rows decoded.
 */
typedef struct DecodeCountState
{
	DecodePlan *plan;
	TupleDesc	desc;
	MemoryContext batch;
	Datum	   *values;
	bool	   *nulls;
	int64		ok;
	int64		n;
} DecodeCountState;

Datum
decode_count_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	DecodeCountState *st;
	SourceMessage msg;
	const char *reason;
	MemoryContext old;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "decode_count_transfn called in non-aggregate context");
	if (PG_ARGISNULL(0))
	{
		Relation	rel;

		check_target_access(PG_GETARG_OID(1));
		rel = relation_open(PG_GETARG_OID(1), AccessShareLock);

		old = MemoryContextSwitchTo(aggcxt);
		st = palloc0(sizeof(DecodeCountState));
		st->desc = CreateTupleDescCopy(RelationGetDescr(rel));
		st->plan = DecodePlanCreate(PG_GETARG_OID(1),
									PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2),
									aggcxt);
		st->batch = AllocSetContextCreate(aggcxt, "iotstream decode batch",
										  ALLOCSET_DEFAULT_SIZES);
		st->values = palloc(sizeof(Datum) * st->desc->natts);
		st->nulls = palloc(sizeof(bool) * st->desc->natts);
		MemoryContextSwitchTo(old);
		relation_close(rel, AccessShareLock);
	}
	else
		st = (DecodeCountState *) PG_GETARG_POINTER(0);

	memset(&msg, 0, sizeof(msg));
	if (!PG_ARGISNULL(3))
	{
		text	   *payload = PG_GETARG_TEXT_PP(3);

		msg.payload = VARDATA_ANY(payload);
		msg.payload_len = VARSIZE_ANY_EXHDR(payload);
	}
	msg.topic = "bench";
	msg.offset = st->n;
	msg.timestamp_ms = -1;

	if (st->n++ % 1000 == 0)
		MemoryContextReset(st->batch);
	old = MemoryContextSwitchTo(st->batch);
	if (DecodeMessage(st->plan, &msg, st->values, st->nulls, &reason))
	{
		heap_form_tuple(st->desc, st->values, st->nulls);
		st->ok++;
	}
	MemoryContextSwitchTo(old);
	PG_RETURN_POINTER(st);
}

Datum
decode_count_finalfn(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_INT64(0);
	PG_RETURN_INT64(((DecodeCountState *) PG_GETARG_POINTER(0))->ok);
}

/*-------------------------------------------------------------------------
 * parquet_nested.c
 *		Nested Parquet from JSON rows: each row an object whose keys are the
 *		top-level fields of a schema of structs, lists and maps of strings,
 *		integers and booleans.  What a Delta checkpoint needs; not the hot
 *		path: the rows' levels and values are kept in memory and handed to
 *		the main writer (parquet_writer.c) at once, in the schema of
 *		parquet_schema.c.
 *
 * The invariant: each leaf column receives exactly one (repetition level,
 * definition level) pair per value slot, as the Dremel encoding defines
 * them: a missing or null optional node emits, for every leaf below it, the
 * definition level of its parent; an empty list or map emits the level of
 * the list or map itself; the first element of a list or map repeats at
 * the parent's repetition level and the others at the list's own.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "parquet/parquet_int.h"

#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

struct ParquetNestedWriter
{
	MemoryContext cxt;
	ParquetSchema *schema;
	ParquetLeafBatch *cols;		/* by leaf number */
	int64		nrows;
};

/*
 * A writer of rows with the given top-level fields (all optional).  List
 * elements and map values must be leaves.
 */
ParquetNestedWriter *
ParquetNestedCreate(const ParquetNode *fields, int nfields)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "iotstream nested parquet",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	ParquetNestedWriter *w = palloc0(sizeof(ParquetNestedWriter));
	int			i;

	w->cxt = cxt;
	w->schema = ParquetSchemaBuild(cxt, fields, nfields);
	w->cols = palloc0(sizeof(ParquetLeafBatch) * Max(w->schema->nleaves, 1));
	for (i = 0; i < w->schema->nleaves; i++)
		w->cols[i].repeated = w->schema->leaves[i]->rep > 0;
	MemoryContextSwitchTo(old);
	return w;
}

static void
slot(ParquetNestedWriter *w, ParquetLeafBatch *c, int r, int d)
{
	uint8		rr = (uint8) r;
	uint8		dd = (uint8) d;

	if (c->repeated)
		ParquetBufAppend(w->cxt, &c->reps, &rr, 1);
	ParquetBufAppend(w->cxt, &c->defs, &dd, 1);
}

/* Every leaf below n gets an empty slot at (r, d). */
static void
nulls(ParquetNestedWriter *w, ParquetSchemaNode *n, int r, int d)
{
	int			i;

	if (n->logical == PARQUET_NODE_LEAF)
	{
		slot(w, &w->cols[n->leaf], r, d);
		return;
	}
	for (i = 0; i < n->nchildren; i++)
		nulls(w, &n->children[i], r, d);
}

static int64
value_int(JsonbValue *v)
{
	if (v->type == jbvNumeric)
		return DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v->val.numeric)));
	if (v->type == jbvString)
		return DatumGetInt64(DirectFunctionCall1(int8in,
												 CStringGetDatum(pnstrdup(v->val.string.val, v->val.string.len))));
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("a nested Parquet integer column got a JSON value of another type")));
	return 0;
}

/* One present leaf value at (r, n->def). */
static void
leaf(ParquetNestedWriter *w, ParquetSchemaNode *n, JsonbValue *v, int r)
{
	ParquetLeafBatch *c = &w->cols[n->leaf];

	slot(w, c, r, n->def);
	c->nvalues++;
	switch (n->spec.type)
	{
		case PARQUET_BYTE_ARRAY:
			{
				const char *s;
				uint32		len;

				if (v->type == jbvString)
				{
					s = v->val.string.val;
					len = v->val.string.len;
				}
				else if (v->type == jbvBool)
				{
					s = v->val.boolean ? "true" : "false";
					len = strlen(s);
				}
				else if (v->type == jbvNumeric)
				{
					s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
					len = strlen(s);
				}
				else
				{
					s = JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
					len = strlen(s);
				}
				ParquetBufAppend(w->cxt, &c->plain, &len, 4);
				ParquetBufAppend(w->cxt, &c->plain, s, len);
				break;
			}
		case PARQUET_INT64:
			{
				int64		i = value_int(v);

				ParquetBufAppend(w->cxt, &c->plain, &i, 8);
				break;
			}
		case PARQUET_INT32:
			{
				int64		i = value_int(v);
				int32		i32 = (int32) i;

				if (i != i32)
					ereport(ERROR,
							(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
							 errmsg("value " INT64_FORMAT " is out of range for a nested Parquet int column", i)));
				ParquetBufAppend(w->cxt, &c->plain, &i32, 4);
				break;
			}
		case PARQUET_BOOLEAN:
			{
				uint8		b;

				if (v->type != jbvBool)
					ereport(ERROR,
							(errcode(ERRCODE_DATATYPE_MISMATCH),
							 errmsg("a nested Parquet boolean column got a JSON value of another type")));
				b = v->val.boolean ? 1 : 0;
				ParquetBufAppend(w->cxt, &c->plain, &b, 1);
				break;
			}
		default:
			elog(ERROR, "nested parquet leaf of an unexpected type");
	}
}

static void shred(ParquetNestedWriter *w, ParquetSchemaNode *n, JsonbValue *v, int r, int pdef);

/* The elements of a JSON array, or the pairs of an object, one at a time. */
static void
shred_repeated(ParquetNestedWriter *w, ParquetSchemaNode *n, JsonbValue *v, int r)
{
	ParquetSchemaNode *rep = &n->children[0];
	bool		is_map = rep->nchildren == 2;
	JsonbIterator *it;
	JsonbValue	x;
	JsonbIteratorToken tok;
	int			i = 0;

	if (v->type != jbvBinary || (is_map ? !JsonContainerIsObject(v->val.binary.data)
								 : !JsonContainerIsArray(v->val.binary.data)))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("nested Parquet column \"%s\" needs a JSON %s", n->name, is_map ? "object" : "array")));
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &x, true)) != WJB_DONE)
	{
		int			rr = i == 0 ? r : rep->rep;

		if (tok == WJB_ELEM)
		{
			shred(w, &rep->children[0], &x, rr, rep->def);
			i++;
		}
		else if (tok == WJB_KEY)
		{
			JsonbValue	val;

			leaf(w, &rep->children[0], &x, rr);
			(void) JsonbIteratorNext(&it, &val, true);
			shred(w, &rep->children[1], &val, rr, rep->def);
			i++;
		}
	}
	if (i == 0)
		nulls(w, rep, r, n->def);	/* an empty list or map */
}

/* Node n's value v (NULL: absent) at repetition level r, below a parent defined to pdef. */
static void
shred(ParquetNestedWriter *w, ParquetSchemaNode *n, JsonbValue *v, int r, int pdef)
{
	int			i;

	if (v == NULL || v->type == jbvNull)
	{
		if (n->repetition == PARQUET_REQUIRED)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("nested Parquet column \"%s\" is required", n->name)));
		nulls(w, n, r, pdef);
		return;
	}
	if (n->logical == PARQUET_NODE_LEAF)
	{
		leaf(w, n, v, r);
		return;
	}
	if (n->logical == PARQUET_NODE_LIST || n->logical == PARQUET_NODE_MAP)
	{
		shred_repeated(w, n, v, r);
		return;
	}
	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("nested Parquet column \"%s\" needs a JSON object", n->name)));
	for (i = 0; i < n->nchildren; i++)
	{
		JsonbValue	field;
		JsonbValue *f = getKeyJsonValueFromContainer(v->val.binary.data, n->children[i].name,
													 strlen(n->children[i].name), &field);

		shred(w, &n->children[i], f, r, n->def);
	}
}

/* Adds one row: a JSON object with (some of) the top-level fields. */
void
ParquetNestedAddRow(ParquetNestedWriter *w, Jsonb *row)
{
	JsonbValue	v;

	v.type = jbvBinary;
	v.val.binary.data = &row->root;
	v.val.binary.len = VARSIZE(row) - VARHDRSZ;
	shred(w, &w->schema->root, &v, 0, 0);
	w->nrows++;
}

/*
 * Writes the whole file (snappy, one row group); returns its size.  The
 * writer is then spent.
 */
int64
ParquetNestedWrite(ParquetNestedWriter *w, ParquetWriteFn write, void *arg)
{
	MemoryContext old = MemoryContextSwitchTo(w->cxt);
	ParquetWriterOptions opts;
	ParquetWriter *pw;
	int64		bytes;
	int			i;

	ParquetWriterDefaults(&opts);
	opts.codec = PARQUET_CODEC_SNAPPY;
	opts.threads = 1;
	opts.row_group_bytes = PG_INT64_MAX;
	pw = ParquetWriterCreateSchema(w->schema, &opts, write, arg);
	for (i = 0; i < w->schema->nleaves; i++)
	{
		ParquetLeafBatch *c = &w->cols[i];

		ParquetWriteLeaf(pw, i, c->plain.data, c->plain.len, c->nvalues,
						 (const uint8 *) c->defs.data,
						 c->repeated ? (const uint8 *) c->reps.data : NULL,
						 (int64) c->defs.len);
	}
	ParquetEndRows(pw, w->nrows);
	ParquetWriterFinish(pw);
	bytes = ParquetWriterBytes(pw);
	ParquetWriterDestroy(pw);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(w->cxt);
	return bytes;
}

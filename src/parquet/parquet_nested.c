/*-------------------------------------------------------------------------
 * parquet_nested.c
 *		A small writer of nested Parquet (struct, list, map of strings,
 *		integers and booleans) from JSON rows: what a Delta checkpoint
 *		needs.  It is not the hot path: one row group, one PLAIN page per
 *		column, snappy-compressed, the whole file built in memory.
 *
 * The invariant: each leaf column receives exactly one (repetition level,
 * definition level) pair per value slot, as the Dremel encoding defines
 * them: a missing or null optional node emits, for every leaf below it, the
 * definition level of its parent; an empty list or map emits the level of
 * the list or map itself; the first element of a list or map repeats at
 * the parent's repetition level and the others at the list's own.  Lists
 * and maps use the three-level layouts of the Parquet spec (LIST:
 * <name> { repeated group list { optional element } }; MAP: <name> {
 * repeated group key_value { required key; optional value } }).
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "parquet/parquet_int.h"

#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#define REP_REQUIRED 0
#define REP_OPTIONAL 1
#define REP_REPEATED 2

/* The physical schema: the caller's nodes plus the LIST and MAP groups. */
typedef struct PqnNode
{
	const char *name;
	ParquetNodeKind kind;		/* leaves: their type; groups: STRUCT */
	ParquetNodeKind logical;	/* LIST, MAP or STRUCT for groups */
	int			repetition;
	int			def;			/* definition level when present */
	int			rep;			/* repetition level of its values */
	int			nchildren;
	struct PqnNode *children;
	int			leaf;			/* leaves: their column number */
} PqnNode;

typedef struct PqnColumn
{
	PqnNode    *node;
	char	  **path;
	int			depth;
	ParquetBuf	reps;
	ParquetBuf	defs;
	ParquetBuf	values;
	int64		nslots;
	int64		nbools;			/* booleans: values holds one byte each */
} PqnColumn;

struct ParquetNestedWriter
{
	MemoryContext cxt;
	PqnNode		root;
	int			ncols;
	PqnColumn  *cols;
	int64		nrows;
	int			nelements;		/* schema elements, root included */
};

static void
build(ParquetNestedWriter *w, PqnNode *n, const ParquetNode *spec, int repetition,
	  int pdef, int prep, char **path, int depth);

static PqnNode *
group(int n)
{
	return palloc0(sizeof(PqnNode) * n);
}

/* Adds a leaf column for n, whose path from the root is path[0..depth]. */
static void
add_leaf(ParquetNestedWriter *w, PqnNode *n, char **path, int depth)
{
	PqnColumn  *c;

	w->cols = w->cols ? repalloc(w->cols, sizeof(PqnColumn) * (w->ncols + 1))
		: palloc(sizeof(PqnColumn));
	c = &w->cols[w->ncols];
	memset(c, 0, sizeof(PqnColumn));
	c->node = n;
	c->depth = depth + 1;
	c->path = palloc(sizeof(char *) * c->depth);
	memcpy(c->path, path, sizeof(char *) * c->depth);
	n->leaf = w->ncols++;
}

static void
init_node(ParquetNestedWriter *w, PqnNode *n, const char *name, int repetition, int pdef, int prep,
		  char **path, int depth)
{
	n->name = name;
	n->repetition = repetition;
	n->def = pdef + (repetition != REP_REQUIRED ? 1 : 0);
	n->rep = prep + (repetition == REP_REPEATED ? 1 : 0);
	path[depth] = (char *) name;
	w->nelements++;
}

static void
build(ParquetNestedWriter *w, PqnNode *n, const ParquetNode *spec, int repetition,
	  int pdef, int prep, char **path, int depth)
{
	int			i;
	ParquetNode element;

	if (depth >= 30)
		elog(ERROR, "nested Parquet schema too deep");
	init_node(w, n, spec->name, repetition, pdef, prep, path, depth);
	n->kind = spec->kind;
	n->logical = spec->kind;
	switch (spec->kind)
	{
		case PARQUET_NODE_STRUCT:
			n->nchildren = spec->nchildren;
			n->children = group(spec->nchildren);
			for (i = 0; i < spec->nchildren; i++)
				build(w, &n->children[i], &spec->children[i], REP_OPTIONAL, n->def, n->rep,
					  path, depth + 1);
			break;
		case PARQUET_NODE_LIST:
			{
				PqnNode    *list = group(1);

				n->kind = PARQUET_NODE_STRUCT;
				n->nchildren = 1;
				n->children = list;
				init_node(w, list, "list", REP_REPEATED, n->def, n->rep, path, depth + 1);
				list->kind = list->logical = PARQUET_NODE_STRUCT;
				list->nchildren = 1;
				list->children = group(1);
				element = spec->children[0];
				element.name = "element";
				build(w, &list->children[0], &element, REP_OPTIONAL, list->def, list->rep,
					  path, depth + 2);
				break;
			}
		case PARQUET_NODE_MAP:
			{
				PqnNode    *kv = group(1);

				n->kind = PARQUET_NODE_STRUCT;
				n->nchildren = 1;
				n->children = kv;
				init_node(w, kv, "key_value", REP_REPEATED, n->def, n->rep, path, depth + 1);
				kv->kind = kv->logical = PARQUET_NODE_STRUCT;
				kv->nchildren = 2;
				kv->children = group(2);
				init_node(w, &kv->children[0], "key", REP_REQUIRED, kv->def, kv->rep, path, depth + 2);
				kv->children[0].kind = kv->children[0].logical = PARQUET_NODE_STRING;
				add_leaf(w, &kv->children[0], path, depth + 2);
				element = spec->children[0];
				element.name = "value";
				build(w, &kv->children[1], &element, REP_OPTIONAL, kv->def, kv->rep,
					  path, depth + 2);
				break;
			}
		default:
			add_leaf(w, n, path, depth);
			break;
	}
}

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
	char	   *path[32];
	int			i;

	w->cxt = cxt;
	w->root.kind = w->root.logical = PARQUET_NODE_STRUCT;
	w->root.name = "schema";
	w->root.nchildren = nfields;
	w->root.children = group(nfields);
	w->nelements = 1;
	for (i = 0; i < nfields; i++)
		build(w, &w->root.children[i], &fields[i], REP_OPTIONAL, 0, 0, path, 0);
	MemoryContextSwitchTo(old);
	return w;
}

static void
slot(ParquetNestedWriter *w, PqnColumn *c, int r, int d)
{
	uint8		rr = (uint8) r;
	uint8		dd = (uint8) d;

	ParquetBufAppend(w->cxt, &c->reps, &rr, 1);
	ParquetBufAppend(w->cxt, &c->defs, &dd, 1);
	c->nslots++;
}

/* Every leaf below n gets an empty slot at (r, d). */
static void
nulls(ParquetNestedWriter *w, PqnNode *n, int r, int d)
{
	int			i;

	if (n->nchildren == 0)
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
leaf(ParquetNestedWriter *w, PqnNode *n, JsonbValue *v, int r)
{
	PqnColumn  *c = &w->cols[n->leaf];

	slot(w, c, r, n->def);
	switch (n->kind)
	{
		case PARQUET_NODE_STRING:
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
				ParquetBufAppend(w->cxt, &c->values, &len, 4);
				ParquetBufAppend(w->cxt, &c->values, s, len);
				break;
			}
		case PARQUET_NODE_INT64:
			{
				int64		i = value_int(v);

				ParquetBufAppend(w->cxt, &c->values, &i, 8);
				break;
			}
		case PARQUET_NODE_INT32:
			{
				int64		i = value_int(v);
				int32		i32 = (int32) i;

				if (i != i32)
					ereport(ERROR,
							(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
							 errmsg("value " INT64_FORMAT " is out of range for a nested Parquet int column", i)));
				ParquetBufAppend(w->cxt, &c->values, &i32, 4);
				break;
			}
		case PARQUET_NODE_BOOLEAN:
			{
				uint8		b;

				if (v->type != jbvBool)
					ereport(ERROR,
							(errcode(ERRCODE_DATATYPE_MISMATCH),
							 errmsg("a nested Parquet boolean column got a JSON value of another type")));
				b = v->val.boolean ? 1 : 0;
				ParquetBufAppend(w->cxt, &c->values, &b, 1);
				c->nbools++;
				break;
			}
		default:
			elog(ERROR, "not a leaf");
	}
}

static void shred(ParquetNestedWriter *w, PqnNode *n, JsonbValue *v, int r, int pdef);

/* The elements of a JSON array, or the pairs of an object, one at a time. */
static void
shred_repeated(ParquetNestedWriter *w, PqnNode *n, JsonbValue *v, int r)
{
	PqnNode    *rep = &n->children[0];
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
shred(ParquetNestedWriter *w, PqnNode *n, JsonbValue *v, int r, int pdef)
{
	int			i;

	if (v == NULL || v->type == jbvNull)
	{
		if (n->repetition == REP_REQUIRED)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("nested Parquet column \"%s\" is required", n->name)));
		nulls(w, n, r, pdef);
		return;
	}
	if (n->nchildren == 0)
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
	shred(w, &w->root, &v, 0, 0);
	w->nrows++;
}

static void
schema_elements(ThriftBuf *t, PqnNode *n, bool is_root)
{
	int			i;

	ThriftListStructBegin(t);
	if (n->nchildren == 0)
	{
		ThriftFieldI32(t, 1, n->kind == PARQUET_NODE_STRING ? PARQUET_BYTE_ARRAY :
					   n->kind == PARQUET_NODE_INT64 ? PARQUET_INT64 :
					   n->kind == PARQUET_NODE_INT32 ? PARQUET_INT32 : PARQUET_BOOLEAN);
		ThriftFieldI32(t, 3, n->repetition);
		ThriftFieldString(t, 4, n->name);
		if (n->kind == PARQUET_NODE_STRING)
		{
			ThriftFieldI32(t, 6, 0);	/* UTF8 */
			ThriftStructBegin(t, 10);
			ThriftStructBegin(t, 1);	/* STRING */
			ThriftStructEnd(t);
			ThriftStructEnd(t);
		}
		ThriftStructEnd(t);
		return;
	}
	if (!is_root)
		ThriftFieldI32(t, 3, n->repetition);
	ThriftFieldString(t, 4, n->name);
	ThriftFieldI32(t, 5, n->nchildren);
	if (n->logical == PARQUET_NODE_LIST || n->logical == PARQUET_NODE_MAP)
	{
		ThriftFieldI32(t, 6, n->logical == PARQUET_NODE_LIST ? 3 : 1);
		ThriftStructBegin(t, 10);
		ThriftStructBegin(t, n->logical == PARQUET_NODE_LIST ? 3 : 2);
		ThriftStructEnd(t);
		ThriftStructEnd(t);
	}
	ThriftStructEnd(t);
	for (i = 0; i < n->nchildren; i++)
		schema_elements(t, &n->children[i], false);
}

static int
max_def(PqnColumn *c)
{
	return c->node->def;
}

static int
max_rep(PqnColumn *c)
{
	return c->node->rep;
}

/* Writes the whole file; returns its size.  The writer is then spent. */
int64
ParquetNestedWrite(ParquetNestedWriter *w, ParquetWriteFn write, void *arg)
{
	MemoryContext old = MemoryContextSwitchTo(w->cxt);
	int64	   *offsets = palloc(sizeof(int64) * Max(w->ncols, 1));
	int64	   *usizes = palloc(sizeof(int64) * Max(w->ncols, 1));
	int64	   *csizes = palloc(sizeof(int64) * Max(w->ncols, 1));
	int64		offset = 4;
	int64		total_u = 0,
				total_c = 0;
	ThriftBuf	t;
	ParquetBuf	page = {0};
	ParquetBuf	comp = {0};
	uint32		len32;
	int			i;

	write(arg, "PAR1", 4);
	ThriftInit(&t, w->cxt);
	for (i = 0; i < w->ncols; i++)
	{
		PqnColumn  *c = &w->cols[i];
		size_t		clen;

		page.len = 0;
		if (max_rep(c) > 0)
		{
			size_t		at = page.len;

			ParquetBufAppend(w->cxt, &page, "\0\0\0\0", 4);
			ParquetRleEncode(w->cxt, &page, c->reps.data, 1, c->nslots, ParquetBitWidth(max_rep(c)));
			len32 = (uint32) (page.len - at - 4);
			memcpy(page.data + at, &len32, 4);
		}
		if (max_def(c) > 0)
		{
			size_t		at = page.len;

			ParquetBufAppend(w->cxt, &page, "\0\0\0\0", 4);
			ParquetRleEncode(w->cxt, &page, c->defs.data, 1, c->nslots, ParquetBitWidth(max_def(c)));
			len32 = (uint32) (page.len - at - 4);
			memcpy(page.data + at, &len32, 4);
		}
		if (c->node->kind == PARQUET_NODE_BOOLEAN)
		{
			/* PLAIN booleans: bit-packed, least significant bit first */
			int64		k;

			for (k = 0; k < c->nbools; k += 8)
			{
				uint8		b = 0;
				int			j;

				for (j = 0; j < 8 && k + j < c->nbools; j++)
					b |= (c->values.data[k + j] & 1) << j;
				ParquetBufAppend(w->cxt, &page, &b, 1);
			}
		}
		else if (c->values.len > 0)
			ParquetBufAppend(w->cxt, &page, c->values.data, c->values.len);

		ParquetBufReserve(w->cxt, &comp, ParquetCompressBound(PARQUET_CODEC_SNAPPY, page.len) + 16);
		clen = ParquetCompressRaw(PARQUET_CODEC_SNAPPY, 0, NULL, page.data, page.len,
								  comp.data, comp.cap);
		ThriftReset(&t);
		ThriftFieldI32(&t, 1, 0);	/* DATA_PAGE */
		ThriftFieldI32(&t, 2, (int32) page.len);
		ThriftFieldI32(&t, 3, (int32) clen);
		ThriftStructBegin(&t, 5);
		ThriftFieldI32(&t, 1, (int32) c->nslots);
		ThriftFieldI32(&t, 2, 0);	/* PLAIN */
		ThriftFieldI32(&t, 3, 3);	/* RLE */
		ThriftFieldI32(&t, 4, 3);
		ThriftStructEnd(&t);
		ThriftStructEnd(&t);
		offsets[i] = offset;
		write(arg, t.data, t.len);
		write(arg, comp.data, clen);
		usizes[i] = t.len + page.len;
		csizes[i] = t.len + clen;
		offset += t.len + clen;
		total_u += usizes[i];
		total_c += csizes[i];
	}

	/* the footer: FileMetaData */
	ThriftReset(&t);
	ThriftFieldI32(&t, 1, 1);
	ThriftFieldListBegin(&t, 2, THRIFT_ELEM_STRUCT, w->nelements);
	schema_elements(&t, &w->root, true);
	ThriftFieldI64(&t, 3, w->nrows);
	ThriftFieldListBegin(&t, 4, THRIFT_ELEM_STRUCT, 1);
	ThriftListStructBegin(&t);
	ThriftFieldListBegin(&t, 1, THRIFT_ELEM_STRUCT, w->ncols);
	for (i = 0; i < w->ncols; i++)
	{
		PqnColumn  *c = &w->cols[i];
		int			k;
		PqnNode    *n = c->node;

		ThriftListStructBegin(&t);
		ThriftFieldI64(&t, 2, offsets[i]);
		ThriftStructBegin(&t, 3);
		ThriftFieldI32(&t, 1, n->kind == PARQUET_NODE_STRING ? PARQUET_BYTE_ARRAY :
					   n->kind == PARQUET_NODE_INT64 ? PARQUET_INT64 :
					   n->kind == PARQUET_NODE_INT32 ? PARQUET_INT32 : PARQUET_BOOLEAN);
		ThriftFieldListBegin(&t, 2, THRIFT_ELEM_I32, 2);
		ThriftListI32(&t, 0);	/* PLAIN */
		ThriftListI32(&t, 3);	/* RLE */
		ThriftFieldListBegin(&t, 3, THRIFT_ELEM_BINARY, c->depth);
		for (k = 0; k < c->depth; k++)
			ThriftListBinary(&t, c->path[k], strlen(c->path[k]));
		ThriftFieldI32(&t, 4, PARQUET_CODEC_SNAPPY);
		ThriftFieldI64(&t, 5, c->nslots);
		ThriftFieldI64(&t, 6, usizes[i]);
		ThriftFieldI64(&t, 7, csizes[i]);
		ThriftFieldI64(&t, 9, offsets[i]);
		ThriftStructEnd(&t);
		ThriftStructEnd(&t);
	}
	ThriftFieldI64(&t, 2, total_u);
	ThriftFieldI64(&t, 3, w->nrows);
	ThriftFieldI64(&t, 5, 4);
	ThriftFieldI64(&t, 6, total_c);
	ThriftStructEnd(&t);
	ThriftFieldString(&t, 6, "iotstream version " IOTSTREAM_VERSION);
	ThriftStructEnd(&t);
	write(arg, t.data, t.len);
	len32 = (uint32) t.len;
	write(arg, &len32, 4);
	write(arg, "PAR1", 4);
	offset += t.len + 8;
	MemoryContextSwitchTo(old);
	MemoryContextDelete(w->cxt);
	return offset;
}

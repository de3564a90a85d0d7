/*-------------------------------------------------------------------------
 * parquet_shred.c
 *		PostgreSQL arrays and composite types as nested Parquet columns:
 *		an array is a LIST, a composite a STRUCT of its attributes, nested
 *		to any depth, and each value is shredded into the definition and
 *		repetition levels and values of its leaf columns.
 *
 * Everything about a column's type (element types, attributes, the leaves'
 * conversions) is looked up once, when the query's result is described
 * (ParquetShredPlan); shredding a value only follows that plan and the
 * levels of the shared schema (parquet_schema.c), with no catalog lookup
 * and no allocation but a detoasted value, which the caller's per-batch
 * context holds.
 *
 * The invariant: every leaf below a column receives one slot per value
 * position, as Dremel defines them.  A NULL array or composite gives every
 * leaf below it its parent's definition level; an empty array gives them
 * the array's own level; a NULL element or attribute the level of its
 * parent group; the first element of an array repeats at the array's
 * parent's repetition level and the next ones at the array's.  An array of
 * more than one dimension is refused (a Parquet list has one): flatten it
 * or cast it to text in the query.  Array lower bounds are not kept.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "parquet/parquet_int.h"

#include "access/htup_details.h"
#include "access/tupdesc.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/arrayaccess.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#define SHRED_BATCH_BYTES (4 * 1024 * 1024)
#define SHRED_MAX_DEPTH 10

typedef enum ShredKind
{
	SHRED_LEAF,
	SHRED_LIST,
	SHRED_STRUCT
} ShredKind;

typedef struct ShredNode
{
	ShredKind	kind;
	const char *name;
	int			def;			/* definition level when present */
	ParquetLeafBatch *lo;		/* the leaves below it, contiguous */
	int			nleaves;

	/* SHRED_LIST */
	int			rep;			/* repetition level of its elements */
	int			list_def;		/* level of a NULL element */
	int16		elmlen;
	bool		elmbyval;
	char		elmalign;
	struct ShredNode *element;

	/* SHRED_STRUCT */
	TupleDesc	tupdesc;
	int			nfields;
	struct ShredNode *fields;
	int		   *attnos;			/* the attribute (0-based) of each field */
	Datum	   *values;
	bool	   *isnull;

	/* SHRED_LEAF */
	ParquetLeafBatch *batch;
	ParquetColumnSpec spec;
	ColumnConv	conv;
} ShredNode;

struct ParquetShred
{
	MemoryContext cxt;			/* where the batches grow */
	ShredNode	root;
	bool		full;			/* a leaf's batch holds SHRED_BATCH_BYTES */
	bool		convert;
	StringInfo	scratch;
};

/* Arrays and composite types (not anonymous records) are nested. */
bool
ParquetTypeIsNested(Oid typid, int32 typmod)
{
	Oid			base = getBaseTypeAndTypmod(typid, &typmod);

	if (OidIsValid(get_element_type(base)))
		return true;
	return base != RECORDOID && type_is_rowtype(base);
}

static void
plan(ShredNode *sn, Oid typid, int32 typmod, const char *name, ParquetNode *node, int depth)
{
	int32		btypmod = typmod;
	Oid			base = getBaseTypeAndTypmod(typid, &btypmod);
	Oid			elem = get_element_type(base);

	if (depth > SHRED_MAX_DEPTH)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("parquet column \"%s\" is nested more than %d levels deep", name, SHRED_MAX_DEPTH),
				 errhint("Cast the column to text or jsonb in the query.")));
	sn->name = pstrdup(name);
	node->name = sn->name;
	if (OidIsValid(elem))
	{
		ParquetNode *child = palloc0(sizeof(ParquetNode));

		sn->kind = SHRED_LIST;
		get_typlenbyvalalign(elem, &sn->elmlen, &sn->elmbyval, &sn->elmalign);
		sn->element = palloc0(sizeof(ShredNode));
		node->kind = PARQUET_NODE_LIST;
		node->nchildren = 1;
		node->children = child;
		/* an array's typmod is its elements' */
		plan(sn->element, elem, btypmod, "element", child, depth + 1);
		return;
	}
	if (base != RECORDOID && type_is_rowtype(base))
	{
		ParquetNode *children;
		int			i;

		sn->kind = SHRED_STRUCT;
		sn->tupdesc = lookup_rowtype_tupdesc_copy(base, btypmod);
		sn->values = palloc(sizeof(Datum) * Max(sn->tupdesc->natts, 1));
		sn->isnull = palloc(sizeof(bool) * Max(sn->tupdesc->natts, 1));
		sn->fields = palloc0(sizeof(ShredNode) * Max(sn->tupdesc->natts, 1));
		sn->attnos = palloc(sizeof(int) * Max(sn->tupdesc->natts, 1));
		children = palloc0(sizeof(ParquetNode) * Max(sn->tupdesc->natts, 1));
		for (i = 0; i < sn->tupdesc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(sn->tupdesc, i);

			if (att->attisdropped)
				continue;
			sn->attnos[sn->nfields] = i;
			plan(&sn->fields[sn->nfields], att->atttypid, att->atttypmod, NameStr(att->attname),
				 &children[sn->nfields], depth + 1);
			sn->nfields++;
		}
		if (sn->nfields == 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("parquet column \"%s\" is of a composite type without attributes", name),
					 errdetail("A Parquet struct needs at least one field."),
					 errhint("Leave the column out of the query, or cast it to text.")));
		node->kind = PARQUET_NODE_STRUCT;
		node->nchildren = sn->nfields;
		node->children = children;
		return;
	}
	sn->kind = SHRED_LEAF;
	ParquetMapType(typid, typmod, &sn->spec, &sn->conv);
	sn->spec.name = sn->name;
	sn->spec.nullable = true;
	node->kind = PARQUET_NODE_LEAF;
	node->spec = &sn->spec;
}

/*
 * The plan of a result column of an array or composite type: fills node,
 * the column's nested schema, and returns what shreds its values.
 */
ParquetShred *
ParquetShredPlan(Oid typid, int32 typmod, const char *name, ParquetNode *node)
{
	ParquetShred *sh = palloc0(sizeof(ParquetShred));

	sh->cxt = CurrentMemoryContext;
	memset(node, 0, sizeof(ParquetNode));
	plan(&sh->root, typid, typmod, name, node, 0);
	return sh;
}

/* Binds sn to its node of the built schema; returns its first leaf. */
static int
bind(ShredNode *sn, const ParquetSchemaNode *node, ParquetLeafBatch *leaves)
{
	int			first = -1;
	int			i;

	sn->def = node->def;
	switch (sn->kind)
	{
		case SHRED_LEAF:
			if (node->logical != PARQUET_NODE_LEAF)
				elog(ERROR, "parquet schema does not match column \"%s\"", sn->name);
			sn->batch = &leaves[node->leaf];
			sn->batch->repeated = node->rep > 0;
			sn->lo = sn->batch;
			sn->nleaves = 1;
			return node->leaf;
		case SHRED_LIST:
			{
				const ParquetSchemaNode *list = &node->children[0];

				if (node->logical != PARQUET_NODE_LIST)
					elog(ERROR, "parquet schema does not match column \"%s\"", sn->name);
				sn->rep = list->rep;
				sn->list_def = list->def;
				first = bind(sn->element, &list->children[0], leaves);
				sn->lo = &leaves[first];
				sn->nleaves = sn->element->nleaves;
				return first;
			}
		case SHRED_STRUCT:
			if (node->logical != PARQUET_NODE_STRUCT || node->nchildren != sn->nfields)
				elog(ERROR, "parquet schema does not match column \"%s\"", sn->name);
			for (i = 0; i < sn->nfields; i++)
			{
				int			f = bind(&sn->fields[i], &node->children[i], leaves);

				if (i == 0)
					first = f;
				sn->nleaves += sn->fields[i].nleaves;
			}
			sn->lo = &leaves[first];
			return first;
	}
	return first;
}

/* Binds the plan to the column's node in the built schema and its leaf batches. */
void
ParquetShredBind(ParquetShred *sh, const ParquetSchemaNode *node, ParquetLeafBatch *leaves)
{
	(void) bind(&sh->root, node, leaves);
}

static pg_attribute_always_inline void
level(MemoryContext cxt, ParquetLeafBatch *b, int r, int d)
{
	uint8		dd = (uint8) d;

	ParquetBufAppend(cxt, &b->defs, &dd, 1);
	if (b->repeated)
	{
		uint8		rr = (uint8) r;

		ParquetBufAppend(cxt, &b->reps, &rr, 1);
	}
}

/* Every leaf below n gets an empty slot at (r, d). */
static void
nulls(ParquetShred *sh, ShredNode *n, int r, int d)
{
	int			i;

	for (i = 0; i < n->nleaves; i++)
		level(sh->cxt, &n->lo[i], r, d);
}

static void
shred(ParquetShred *sh, ShredNode *n, Datum d, bool isnull, int r, int pdef)
{
	if (isnull)
	{
		nulls(sh, n, r, pdef);
		return;
	}
	switch (n->kind)
	{
		case SHRED_LEAF:
			{
				ParquetLeafBatch *b = n->batch;

				level(sh->cxt, b, r, n->def);
				ParquetWriteValue(sh->cxt, &b->plain, n->conv.kind, &n->spec, &n->conv, d,
								  sh->convert, sh->scratch);
				b->nvalues++;
				if (b->plain.len >= SHRED_BATCH_BYTES)
					sh->full = true;
				break;
			}
		case SHRED_LIST:
			{
				AnyArrayType *a = DatumGetAnyArrayP(d);
				int			ndim = AARR_NDIM(a);
				int			nitems;
				array_iter	it;
				int			i;

				if (ndim > 1)
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("parquet column \"%s\" got an array of %d dimensions", n->name, ndim),
							 errdetail("Arrays are written as Parquet lists, which have one dimension."),
							 errhint("Flatten the array in the query (for example with unnest), or cast the column to text.")));
				nitems = ndim == 0 ? 0 : ArrayGetNItems(ndim, AARR_DIMS(a));
				if (nitems == 0)
				{
					/* an empty list: defined to the list itself */
					nulls(sh, n->element, r, n->def);
					break;
				}
				array_iter_setup(&it, a);
				for (i = 0; i < nitems; i++)
				{
					bool		enull;
					Datum		e = array_iter_next(&it, &enull, i, n->elmlen, n->elmbyval,
													n->elmalign);

					shred(sh, n->element, e, enull, i == 0 ? r : n->rep, n->list_def);
				}
				break;
			}
		case SHRED_STRUCT:
			{
				HeapTupleHeader th = DatumGetHeapTupleHeader(d);
				HeapTupleData tup;
				int			i;

				tup.t_len = HeapTupleHeaderGetDatumLength(th);
				ItemPointerSetInvalid(&tup.t_self);
				tup.t_tableOid = InvalidOid;
				tup.t_data = th;
				heap_deform_tuple(&tup, n->tupdesc, n->values, n->isnull);
				for (i = 0; i < n->nfields; i++)
					shred(sh, &n->fields[i], n->values[n->attnos[i]], n->isnull[n->attnos[i]],
						  r, n->def);
				break;
			}
	}
}

/*
 * Shreds one row's value of the column into its leaf batches; true when a
 * batch has grown big enough to hand over now.
 */
bool
ParquetShredValue(ParquetShred *sh, Datum d, bool isnull, bool convert, StringInfo scratch)
{
	bool		full;

	sh->convert = convert;
	sh->scratch = scratch;
	shred(sh, &sh->root, d, isnull, 0, 0);
	full = sh->full;
	sh->full = false;
	return full;
}

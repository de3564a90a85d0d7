/*-------------------------------------------------------------------------
 * parquet_schema.c
 *		A Parquet schema of nested nodes (struct, list, map, leaves): the
 *		definition and repetition levels of every node, the leaf columns in
 *		depth-first order with their paths, and the schema elements of the
 *		footer.  Both the main writer (flat columns, PostgreSQL arrays and
 *		composites) and the checkpoint writer (JSON rows) build on it.
 *
 * The invariant: a node's definition level counts the optional and
 * repeated nodes from the root down to it, included; its repetition level
 * counts the repeated ones.  Lists and maps use the three-level layouts of
 * the Parquet spec (LogicalTypes.md): LIST is <name> { repeated group list
 * { optional element } }, MAP is <name> { repeated group key_value {
 * required key; optional value } }.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "parquet/parquet_int.h"

#define MAX_DEPTH 30

typedef struct SchemaBuild
{
	ParquetSchema *s;
	int			cap;
	const char *path[MAX_DEPTH + 2];
} SchemaBuild;

static ParquetSchemaNode *
group(int n)
{
	return palloc0(sizeof(ParquetSchemaNode) * Max(n, 1));
}

static void
init_node(SchemaBuild *b, ParquetSchemaNode *n, const char *name, int repetition,
		  int pdef, int prep, int depth)
{
	n->name = pstrdup(name);
	n->repetition = repetition;
	n->def = pdef + (repetition != PARQUET_REQUIRED ? 1 : 0);
	n->rep = prep + (repetition == PARQUET_REPEATED ? 1 : 0);
	n->leaf = -1;
	b->path[depth] = n->name;
	b->s->nelements++;
}

/* Makes n, whose path from the root is path[0..depth], a leaf column. */
static void
add_leaf(SchemaBuild *b, ParquetSchemaNode *n, int depth)
{
	ParquetSchema *s = b->s;

	if (s->nleaves >= b->cap)
	{
		b->cap = Max(b->cap * 2, 16);
		s->leaves = s->leaves ? repalloc(s->leaves, sizeof(ParquetSchemaNode *) * b->cap)
			: palloc(sizeof(ParquetSchemaNode *) * b->cap);
		s->paths = s->paths ? repalloc(s->paths, sizeof(char **) * b->cap)
			: palloc(sizeof(char **) * b->cap);
		s->depths = s->depths ? repalloc(s->depths, sizeof(int) * b->cap)
			: palloc(sizeof(int) * b->cap);
	}
	n->logical = PARQUET_NODE_LEAF;
	n->leaf = s->nleaves;
	s->leaves[s->nleaves] = n;
	s->depths[s->nleaves] = depth + 1;
	s->paths[s->nleaves] = palloc(sizeof(char *) * (depth + 1));
	memcpy(s->paths[s->nleaves], b->path, sizeof(char *) * (depth + 1));
	s->nleaves++;
}

/* The column spec of a leaf node. */
static void
leaf_spec(const ParquetNode *spec, ParquetColumnSpec *out)
{
	memset(out, 0, sizeof(ParquetColumnSpec));
	out->nullable = true;
	switch (spec->kind)
	{
		case PARQUET_NODE_STRING:
			out->type = PARQUET_BYTE_ARRAY;
			out->logical = PARQUET_LOGICAL_STRING;
			break;
		case PARQUET_NODE_INT64:
			out->type = PARQUET_INT64;
			break;
		case PARQUET_NODE_INT32:
			out->type = PARQUET_INT32;
			break;
		case PARQUET_NODE_BOOLEAN:
			out->type = PARQUET_BOOLEAN;
			break;
		case PARQUET_NODE_LEAF:
			*out = *spec->spec;
			break;
		default:
			elog(ERROR, "parquet schema node \"%s\" is not a leaf", spec->name);
	}
	out->name = spec->name;
}

static void
build(SchemaBuild *b, ParquetSchemaNode *n, const ParquetNode *spec, int repetition,
	  int pdef, int prep, int depth)
{
	int			i;
	ParquetNode element;

	if (depth >= MAX_DEPTH)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("parquet column \"%s\" is nested too deep", spec->name),
				 errhint("A Parquet schema here is at most %d levels deep; cast the column to text.", MAX_DEPTH / 3)));
	init_node(b, n, spec->name, repetition, pdef, prep, depth);
	n->logical = spec->kind;
	switch (spec->kind)
	{
		case PARQUET_NODE_STRUCT:
			n->nchildren = spec->nchildren;
			n->children = group(spec->nchildren);
			for (i = 0; i < spec->nchildren; i++)
				build(b, &n->children[i], &spec->children[i], PARQUET_OPTIONAL, n->def, n->rep,
					  depth + 1);
			break;
		case PARQUET_NODE_LIST:
			{
				ParquetSchemaNode *list = group(1);

				n->nchildren = 1;
				n->children = list;
				init_node(b, list, "list", PARQUET_REPEATED, n->def, n->rep, depth + 1);
				list->logical = PARQUET_NODE_STRUCT;
				list->nchildren = 1;
				list->children = group(1);
				element = spec->children[0];
				element.name = "element";
				build(b, &list->children[0], &element, PARQUET_OPTIONAL, list->def, list->rep,
					  depth + 2);
				break;
			}
		case PARQUET_NODE_MAP:
			{
				ParquetSchemaNode *kv = group(1);
				ParquetNode key = {"key", PARQUET_NODE_STRING, 0, NULL, NULL};

				n->nchildren = 1;
				n->children = kv;
				init_node(b, kv, "key_value", PARQUET_REPEATED, n->def, n->rep, depth + 1);
				kv->logical = PARQUET_NODE_STRUCT;
				kv->nchildren = 2;
				kv->children = group(2);
				init_node(b, &kv->children[0], "key", PARQUET_REQUIRED, kv->def, kv->rep, depth + 2);
				leaf_spec(&key, &kv->children[0].spec);
				kv->children[0].spec.nullable = false;
				add_leaf(b, &kv->children[0], depth + 2);
				element = spec->children[0];
				element.name = "value";
				build(b, &kv->children[1], &element, PARQUET_OPTIONAL, kv->def, kv->rep,
					  depth + 2);
				break;
			}
		default:
			leaf_spec(spec, &n->spec);
			n->spec.name = n->name;
			if (!n->spec.nullable && repetition == PARQUET_OPTIONAL && depth == 0)
			{
				/* a required top-level column (flat writers declare them) */
				n->repetition = PARQUET_REQUIRED;
				n->def = pdef;
			}
			add_leaf(b, n, depth);
			break;
	}
}

/* A deep copy of nodes, in the current memory context. */
static ParquetNode *
copy_nodes(const ParquetNode *nodes, int n)
{
	ParquetNode *out = palloc0(sizeof(ParquetNode) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
	{
		out[i] = nodes[i];
		out[i].name = pstrdup(nodes[i].name);
		if (nodes[i].nchildren > 0)
			out[i].children = copy_nodes(nodes[i].children, nodes[i].nchildren);
		if (nodes[i].spec)
		{
			ParquetColumnSpec *sp = palloc(sizeof(ParquetColumnSpec));

			*sp = *nodes[i].spec;
			sp->name = out[i].name;
			out[i].spec = sp;
		}
	}
	return out;
}

/* The schema of rows with the given top-level fields, allocated in cxt. */
ParquetSchema *
ParquetSchemaBuild(MemoryContext cxt, const ParquetNode *fields, int nfields)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	SchemaBuild b;
	ParquetSchema *s = palloc0(sizeof(ParquetSchema));
	int			i;

	memset(&b, 0, sizeof(b));
	b.s = s;
	s->fields = copy_nodes(fields, nfields);
	s->nfields = nfields;
	s->root.name = "schema";
	s->root.logical = PARQUET_NODE_STRUCT;
	s->root.nchildren = nfields;
	s->root.children = group(nfields);
	s->root.leaf = -1;
	s->nelements = 1;
	for (i = 0; i < nfields; i++)
		build(&b, &s->root.children[i], &s->fields[i], PARQUET_OPTIONAL, 0, 0, 0);
	MemoryContextSwitchTo(old);
	return s;
}

/* ---- the footer's schema elements ---- */

static void
write_logical_type(ThriftBuf *t, const ParquetColumnSpec *s)
{
	int16		id;

	switch (s->logical)
	{
		case PARQUET_LOGICAL_NONE:
			return;
		case PARQUET_LOGICAL_STRING:
			id = 1;
			break;
		case PARQUET_LOGICAL_DECIMAL:
			id = 5;
			break;
		case PARQUET_LOGICAL_DATE:
			id = 6;
			break;
		case PARQUET_LOGICAL_TIMESTAMP_UTC:
		case PARQUET_LOGICAL_TIMESTAMP_LOCAL:
			id = 8;
			break;
		case PARQUET_LOGICAL_INT16:
		case PARQUET_LOGICAL_INT32:
		case PARQUET_LOGICAL_INT64:
			id = 10;
			break;
		case PARQUET_LOGICAL_JSON:
			id = 12;
			break;
		case PARQUET_LOGICAL_UUID:
			id = 14;
			break;
		default:
			return;
	}
	ThriftStructBegin(t, 10);
	ThriftStructBegin(t, id);
	switch (s->logical)
	{
		case PARQUET_LOGICAL_DECIMAL:
			ThriftFieldI32(t, 1, s->scale);
			ThriftFieldI32(t, 2, s->precision);
			break;
		case PARQUET_LOGICAL_TIMESTAMP_UTC:
		case PARQUET_LOGICAL_TIMESTAMP_LOCAL:
			ThriftFieldBool(t, 1, s->logical == PARQUET_LOGICAL_TIMESTAMP_UTC);
			ThriftStructBegin(t, 2);	/* TimeUnit */
			ThriftStructBegin(t, 2);	/* MICROS */
			ThriftStructEnd(t);
			ThriftStructEnd(t);
			break;
		case PARQUET_LOGICAL_INT16:
		case PARQUET_LOGICAL_INT32:
		case PARQUET_LOGICAL_INT64:
			ThriftFieldI8(t, 1, s->logical == PARQUET_LOGICAL_INT16 ? 16 :
						  s->logical == PARQUET_LOGICAL_INT32 ? 32 : 64);
			ThriftFieldBool(t, 2, true);
			break;
		default:
			break;
	}
	ThriftStructEnd(t);
	ThriftStructEnd(t);
}

/* The ConvertedType matching a logical type, or -1 for none. */
static int32
converted_type(ParquetLogicalType l)
{
	switch (l)
	{
		case PARQUET_LOGICAL_STRING:
			return 0;			/* UTF8 */
		case PARQUET_LOGICAL_DECIMAL:
			return 5;
		case PARQUET_LOGICAL_DATE:
			return 6;
		case PARQUET_LOGICAL_TIMESTAMP_UTC:
			return 10;			/* TIMESTAMP_MICROS */
		case PARQUET_LOGICAL_INT16:
			return 16;
		case PARQUET_LOGICAL_INT32:
			return 17;
		case PARQUET_LOGICAL_INT64:
			return 18;
		case PARQUET_LOGICAL_JSON:
			return 19;
		default:
			return -1;
	}
}

static void
encode_node(ThriftBuf *t, const ParquetSchemaNode *n, bool is_root)
{
	int			i;

	ThriftListStructBegin(t);
	if (n->logical == PARQUET_NODE_LEAF)
	{
		const ParquetColumnSpec *s = &n->spec;
		int32		conv = converted_type(s->logical);

		ThriftFieldI32(t, 1, s->type);
		if (s->type == PARQUET_FIXED_LEN_BYTE_ARRAY)
			ThriftFieldI32(t, 2, s->type_length);
		ThriftFieldI32(t, 3, n->repetition);
		ThriftFieldString(t, 4, n->name);
		if (conv >= 0)
			ThriftFieldI32(t, 6, conv);
		if (s->logical == PARQUET_LOGICAL_DECIMAL)
		{
			ThriftFieldI32(t, 7, s->scale);
			ThriftFieldI32(t, 8, s->precision);
		}
		write_logical_type(t, s);
		ThriftStructEnd(t);
		return;
	}
	if (!is_root)
		ThriftFieldI32(t, 3, n->repetition);
	ThriftFieldString(t, 4, n->name);
	ThriftFieldI32(t, 5, n->nchildren);
	if (n->logical == PARQUET_NODE_LIST || n->logical == PARQUET_NODE_MAP)
	{
		/* ConvertedType LIST (3) or MAP (1), LogicalType LIST (3) or MAP (2) */
		ThriftFieldI32(t, 6, n->logical == PARQUET_NODE_LIST ? 3 : 1);
		ThriftStructBegin(t, 10);
		ThriftStructBegin(t, n->logical == PARQUET_NODE_LIST ? 3 : 2);
		ThriftStructEnd(t);
		ThriftStructEnd(t);
	}
	ThriftStructEnd(t);
	for (i = 0; i < n->nchildren; i++)
		encode_node(t, &n->children[i], false);
}

/* FileMetaData's field 2: the schema elements, depth-first from the root. */
void
ParquetSchemaEncode(ThriftBuf *t, const ParquetSchema *s)
{
	ThriftFieldListBegin(t, 2, THRIFT_ELEM_STRUCT, s->nelements);
	encode_node(t, &s->root, true);
}

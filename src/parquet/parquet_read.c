/*-------------------------------------------------------------------------
 * parquet_read.c
 *		A reader of small nested Parquet files held in memory, each row
 *		returned as the JSON text of an object: what joining a Delta table
 *		from its checkpoint needs (the file's structs, lists and maps of
 *		strings, integers, floats and booleans).  It is not a general
 *		reader: every column is decoded whole.
 *
 * The footer is parquet_read_footer.c's.  It reads what Delta writers put
 * in checkpoints: data pages v1 and v2, PLAIN and dictionary encodings,
 * RLE/bit-packed levels, and snappy, gzip, zstd or no compression.
 * Anything else (DELTA_* encodings, INT96, fixed-length values, two-level
 * lists) is refused with an error.
 *
 * The invariant of the assembly: the slots of every leaf below a node are
 * consumed in step, one slot per instance of that node, as the Dremel
 * encoding wrote them: an absent node (its definition level not reached)
 * takes one slot of each leaf below it, and a repeated group goes on while
 * its first leaf's next slot repeats at the group's level.  Struct fields
 * that are null are left out of their object, as in a Delta log's JSON.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "parquet/parquet_int.h"

#include <math.h>

#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include "miscadmin.h"
#include "utils/json.h"

/* ---- the schema as a tree with levels ---- */

typedef struct RNode
{
	PqrSchema  *el;
	int			def;
	int			rep;
	int			nchildren;
	struct RNode *children;
	int			leaf;			/* leaves: their column, else -1 */
	int			first_leaf;
	int			nleaves;
} RNode;

typedef struct RLeaf
{
	int			type;
	int			max_def;
	int			max_rep;
	int64		nslots;
	uint8	   *defs;
	uint8	   *reps;
	/* values of the slots defined to max_def */
	int64		nvalues;
	const uint8 **ptr;			/* byte arrays: start, len in lens */
	int32	   *lens;
	int64	   *ints;			/* INT32, INT64, BOOLEAN */
	double	   *dbls;			/* FLOAT, DOUBLE */
	/* the assembly's cursors */
	int64		slot;
	int64		value;
} RLeaf;

static int
build_tree(PqrFile *f, int at, RNode *n, int pdef, int prep, int *leafno)
{
	PqrSchema    *el = &f->schema[at];
	int			next = at + 1;
	int			i;

	n->el = el;
	/* the root is no level of its own */
	n->def = at == 0 ? 0 : pdef + (el->repetition != PARQUET_REQUIRED ? 1 : 0);
	n->rep = at == 0 ? 0 : prep + (el->repetition == PARQUET_REPEATED ? 1 : 0);
	n->first_leaf = *leafno;
	if (el->type >= 0)
	{
		n->leaf = (*leafno)++;
		n->nleaves = 1;
		return next;
	}
	n->leaf = -1;
	n->nchildren = el->nchildren;
	n->children = palloc0(sizeof(RNode) * Max(el->nchildren, 1));
	for (i = 0; i < el->nchildren; i++)
	{
		if (next >= f->nschema)
			ParquetReadCorrupt("schema ends early");
		next = build_tree(f, next, &n->children[i], n->def, n->rep, leafno);
	}
	n->nleaves = *leafno - n->first_leaf;
	return next;
}

static void
set_leaf_levels(RNode *n, RLeaf *leaves)
{
	int			i;

	if (n->leaf >= 0)
	{
		leaves[n->leaf].type = n->el->type;
		leaves[n->leaf].max_def = n->def;
		leaves[n->leaf].max_rep = n->rep;
		return;
	}
	for (i = 0; i < n->nchildren; i++)
		set_leaf_levels(&n->children[i], leaves);
}

/* ---- pages ---- */

/* Decodes n RLE/bit-packed hybrid values of bit width bw from [p, end). */
static void
decode_hybrid(const uint8 *p, const uint8 *end, int bw, int64 n, uint32 *out)
{
	int64		k = 0;
	int			bytes = (bw + 7) / 8;

	while (k < n)
	{
		ThriftReader		r = {p, end};
		uint64		hdr = ThriftReadVarint(&r);

		p = r.p;
		if (hdr & 1)
		{
			/* bit-packed: (hdr >> 1) groups of 8 values */
			int64		count = (int64) (hdr >> 1) * 8;
			int64		i;
			uint64		buf = 0;
			int			have = 0;

			if ((int64) (end - p) < (count * bw + 7) / 8)
				ParquetReadCorrupt("truncated bit-packed run");
			for (i = 0; i < count; i++)
			{
				uint32		v;

				while (have < bw)
				{
					buf |= (uint64) (*p++) << have;
					have += 8;
				}
				v = (uint32) (buf & ((bw == 32) ? 0xFFFFFFFFu : ((1u << bw) - 1)));
				buf >>= bw;
				have -= bw;
				if (k < n)
					out[k++] = v;
			}
		}
		else
		{
			int64		count = (int64) (hdr >> 1);
			uint32		v = 0;
			int			i;

			if (end - p < bytes)
				ParquetReadCorrupt("truncated RLE run");
			for (i = 0; i < bytes; i++)
				v |= (uint32) p[i] << (8 * i);
			p += bytes;
			while (count-- > 0 && k < n)
				out[k++] = v;
		}
	}
}

/* Levels of a v1 page (4-byte length first); returns what follows them. */
static const uint8 *
read_levels(const uint8 *p, const uint8 *end, int max, int64 n, uint8 *out, bool v1, int32 v2len)
{
	uint32		len;
	uint32	   *tmp;
	int64		i;

	if (max == 0)
	{
		memset(out, 0, n);
		return p;
	}
	if (v1)
	{
		if (end - p < 4)
			ParquetReadCorrupt("truncated levels");
		memcpy(&len, p, 4);
		p += 4;
	}
	else
		len = (uint32) v2len;
	if (len > (uint32) (end - p))
		ParquetReadCorrupt("truncated levels");
	tmp = palloc(sizeof(uint32) * Max(n, 1));
	decode_hybrid(p, p + len, ParquetBitWidth((uint32) max), n, tmp);
	for (i = 0; i < n; i++)
		out[i] = (uint8) tmp[i];
	pfree(tmp);
	return p + len;
}

static char *
decompress(int codec, const uint8 *in, size_t len, size_t ulen)
{
	char	   *out = palloc(Max(ulen, 1));

	switch (codec)
	{
		case PARQUET_CODEC_NONE:
			if (len != ulen)
				ParquetReadCorrupt("page sizes disagree");
			memcpy(out, in, len);
			break;
		case PARQUET_CODEC_SNAPPY:
			{
				size_t		outlen = ulen;

				if (snappy_uncompress((const char *) in, len, out, &outlen) != SNAPPY_OK || outlen != ulen)
					ParquetReadCorrupt("bad snappy page");
				break;
			}
		case PARQUET_CODEC_ZSTD:
			if (ZSTD_decompress(out, ulen, in, len) != ulen)
				ParquetReadCorrupt("bad zstd page");
			break;
		case PARQUET_CODEC_GZIP:
			{
				z_stream	zs;

				memset(&zs, 0, sizeof(zs));
				if (inflateInit2(&zs, 15 + 32) != Z_OK)
					ParquetReadCorrupt("bad gzip page");
				zs.next_in = (Bytef *) in;
				zs.avail_in = len;
				zs.next_out = (Bytef *) out;
				zs.avail_out = ulen;
				if (inflate(&zs, Z_FINISH) != Z_STREAM_END || zs.total_out != ulen)
				{
					inflateEnd(&zs);
					ParquetReadCorrupt("bad gzip page");
				}
				inflateEnd(&zs);
				break;
			}
		default:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("could not read a parquet file: compression codec %d is not supported", codec)));
	}
	return out;
}

typedef struct RDict
{
	int64		n;
	const uint8 **ptr;
	int32	   *lens;
	int64	   *ints;
	double	   *dbls;
} RDict;

static void
grow_values(RLeaf *l, int64 n)
{
	int64		cap = l->nvalues + n;

	l->ptr = l->ptr ? repalloc_huge(l->ptr, sizeof(uint8 *) * Max(cap, 1)) : palloc_extended(sizeof(uint8 *) * Max(cap, 1), MCXT_ALLOC_HUGE);
	l->lens = l->lens ? repalloc_huge(l->lens, sizeof(int32) * Max(cap, 1)) : palloc_extended(sizeof(int32) * Max(cap, 1), MCXT_ALLOC_HUGE);
	l->ints = l->ints ? repalloc_huge(l->ints, sizeof(int64) * Max(cap, 1)) : palloc_extended(sizeof(int64) * Max(cap, 1), MCXT_ALLOC_HUGE);
	l->dbls = l->dbls ? repalloc_huge(l->dbls, sizeof(double) * Max(cap, 1)) : palloc_extended(sizeof(double) * Max(cap, 1), MCXT_ALLOC_HUGE);
}

/* n PLAIN values of type from [p, end) into the arrays at index at. */
static const uint8 *
plain_values(int type, const uint8 *p, const uint8 *end, int64 n, const uint8 **ptr,
			 int32 *lens, int64 *ints, double *dbls)
{
	int64		i;

	for (i = 0; i < n; i++)
	{
		switch (type)
		{
			case PARQUET_BOOLEAN:
				if (p + i / 8 >= end)
					ParquetReadCorrupt("truncated booleans");
				ints[i] = (p[i / 8] >> (i % 8)) & 1;
				break;
			case PARQUET_INT32:
				{
					int32		v;

					if (end - p < 4)
						ParquetReadCorrupt("truncated int32");
					memcpy(&v, p, 4);
					p += 4;
					ints[i] = v;
					break;
				}
			case PARQUET_INT64:
				if (end - p < 8)
					ParquetReadCorrupt("truncated int64");
				memcpy(&ints[i], p, 8);
				p += 8;
				break;
			case PARQUET_FLOAT:
				{
					float		v;

					if (end - p < 4)
						ParquetReadCorrupt("truncated float");
					memcpy(&v, p, 4);
					p += 4;
					dbls[i] = v;
					break;
				}
			case PARQUET_DOUBLE:
				if (end - p < 8)
					ParquetReadCorrupt("truncated double");
				memcpy(&dbls[i], p, 8);
				p += 8;
				break;
			case PARQUET_BYTE_ARRAY:
				{
					uint32		len;

					if (end - p < 4)
						ParquetReadCorrupt("truncated byte array");
					memcpy(&len, p, 4);
					p += 4;
					if (len > (uint32) (end - p))
						ParquetReadCorrupt("truncated byte array");
					ptr[i] = p;
					lens[i] = (int32) len;
					p += len;
					break;
				}
			default:
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("could not read a parquet file: physical type %d is not supported", type)));
		}
	}
	if (type == PARQUET_BOOLEAN)
		p += (n + 7) / 8;
	return p;
}

/* Reads one column chunk's pages into leaf l. */
static void
read_chunk(const uint8 *data, size_t len, PqrChunk *c, RLeaf *l)
{
	int64		start = (c->dict_offset >= 0 && c->dict_offset < c->data_offset) ? c->dict_offset : c->data_offset;
	const uint8 *p = data + start;
	const uint8 *end = p + c->compressed;
	RDict		dict = {0};
	int64		done = 0;

	if (start < 4 || c->compressed < 0 || (size_t) (start + c->compressed) > len - 8)
		ParquetReadCorrupt("column chunk out of the file");
	while (p < end && done < c->num_values)
	{
		ThriftReader		r = {p, end};
		int16		id = 0;
		int			t;
		int			ptype = -1;
		int32		usize = 0,
					csize = 0,
					nvals = 0,
					enc = 0,
					deflen = 0,
					replen = 0;
		bool		v2 = false,
					compressed = true;
		const uint8 *body;
		const char *page;
		const uint8 *pp,
				   *pend;
		int64		k,
					ndef = 0;

		while ((t = ThriftReadField(&r, &id)) != 0)
		{
			if (id == 1 && t == 5)
				ptype = (int) ThriftReadZigzag(&r);
			else if (id == 2 && t == 5)
				usize = (int32) ThriftReadZigzag(&r);
			else if (id == 3 && t == 5)
				csize = (int32) ThriftReadZigzag(&r);
			else if ((id == 5 || id == 7 || id == 8) && t == 12)
			{
				int16		hid = 0;
				int			ht;

				v2 = id == 8;
				while ((ht = ThriftReadField(&r, &hid)) != 0)
				{
					if (hid == 1 && ht == 5)
						nvals = (int32) ThriftReadZigzag(&r);
					else if (hid == 2 && ht == 5 && id != 8)
						enc = (int32) ThriftReadZigzag(&r);
					else if (hid == 4 && ht == 5 && id == 8)
						enc = (int32) ThriftReadZigzag(&r);
					else if (hid == 5 && ht == 5 && id == 8)
						deflen = (int32) ThriftReadZigzag(&r);
					else if (hid == 6 && ht == 5 && id == 8)
						replen = (int32) ThriftReadZigzag(&r);
					else if (hid == 7 && id == 8 && (ht == 1 || ht == 2))
						compressed = ht == 1;
					else
						ThriftSkip(&r, ht);
				}
			}
			else
				ThriftSkip(&r, t);
		}
		body = r.p;
		if (csize < 0 || usize < 0 || csize > end - body)
			ParquetReadCorrupt("page out of its chunk");
		p = body + csize;
		if (nvals < 0 || (ptype == 2 ? nvals > usize : nvals > c->num_values - done))
			ParquetReadCorrupt("a page holds more values than its chunk");
		if (ptype == 2)
		{
			/* the dictionary: PLAIN values */
			page = decompress(c->codec, body, csize, usize);
			dict.n = nvals;
			dict.ptr = palloc(sizeof(uint8 *) * Max(nvals, 1));
			dict.lens = palloc(sizeof(int32) * Max(nvals, 1));
			dict.ints = palloc(sizeof(int64) * Max(nvals, 1));
			dict.dbls = palloc(sizeof(double) * Max(nvals, 1));
			(void) plain_values(l->type, (const uint8 *) page, (const uint8 *) page + usize, nvals,
								dict.ptr, dict.lens, dict.ints, dict.dbls);
			continue;
		}
		if (ptype != 0 && ptype != 3)
			continue;			/* an index page */
		l->defs = l->defs ? repalloc_huge(l->defs, l->nslots + nvals) : palloc_extended(Max(nvals, 1), MCXT_ALLOC_HUGE);
		l->reps = l->reps ? repalloc_huge(l->reps, l->nslots + nvals) : palloc_extended(Max(nvals, 1), MCXT_ALLOC_HUGE);
		if (v2)
		{
			/* levels are never compressed in a v2 page */
			char	   *rest;

			if (replen + deflen > csize)
				ParquetReadCorrupt("v2 levels out of their page");
			pp = read_levels(body, body + replen, l->max_rep, nvals, l->reps + l->nslots, false, replen);
			pp = read_levels(body + replen, body + replen + deflen, l->max_def, nvals, l->defs + l->nslots, false, deflen);
			if (compressed)
				rest = decompress(c->codec, body + replen + deflen, csize - replen - deflen, usize - replen - deflen);
			else
				rest = decompress(PARQUET_CODEC_NONE, body + replen + deflen, csize - replen - deflen, csize - replen - deflen);
			pp = (const uint8 *) rest;
			pend = pp + (compressed ? usize - replen - deflen : csize - replen - deflen);
		}
		else
		{
			page = decompress(c->codec, body, csize, usize);
			pp = (const uint8 *) page;
			pend = pp + usize;
			pp = read_levels(pp, pend, l->max_rep, nvals, l->reps + l->nslots, true, 0);
			pp = read_levels(pp, pend, l->max_def, nvals, l->defs + l->nslots, true, 0);
		}
		for (k = 0; k < nvals; k++)
			ndef += l->defs[l->nslots + k] == l->max_def;
		grow_values(l, ndef);
		if (enc == 0)
			(void) plain_values(l->type, pp, pend, ndef, l->ptr + l->nvalues, l->lens + l->nvalues,
								l->ints + l->nvalues, l->dbls + l->nvalues);
		else if (enc == 2 || enc == 8)
		{
			uint32	   *idx = palloc(sizeof(uint32) * Max(ndef, 1));

			if (pp >= pend && ndef > 0)
				ParquetReadCorrupt("truncated dictionary indices");
			if (ndef > 0)
				decode_hybrid(pp + 1, pend, pp[0], ndef, idx);
			for (k = 0; k < ndef; k++)
			{
				int64		at = l->nvalues + k;

				if (idx[k] >= (uint32) dict.n)
					ParquetReadCorrupt("dictionary index out of range");
				if (dict.ptr)
				{
					l->ptr[at] = dict.ptr[idx[k]];
					l->lens[at] = dict.lens[idx[k]];
					l->ints[at] = dict.ints[idx[k]];
					l->dbls[at] = dict.dbls[idx[k]];
				}
			}
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("could not read a parquet file: encoding %d is not supported", enc)));
		l->nslots += nvals;
		l->nvalues += ndef;
		done += nvals;
	}
}

/* ---- assembly ---- */

static void
skip_node(RNode *n, RLeaf *leaves)
{
	int			i;

	/* one slot of each leaf below n */
	for (i = n->first_leaf; i < n->first_leaf + n->nleaves; i++)
	{
		RLeaf	   *l = &leaves[i];

		if (l->slot >= l->nslots)
			ParquetReadCorrupt("a leaf has too few levels");
		if (l->defs[l->slot] == l->max_def)
			l->value++;
		l->slot++;
	}
}

static void
append_leaf(StringInfo out, RLeaf *l)
{
	int64		v = l->value++;

	l->slot++;
	switch (l->type)
	{
		case PARQUET_BOOLEAN:
			appendStringInfoString(out, l->ints[v] ? "true" : "false");
			break;
		case PARQUET_INT32:
		case PARQUET_INT64:
			appendStringInfo(out, INT64_FORMAT, l->ints[v]);
			break;
		case PARQUET_FLOAT:
		case PARQUET_DOUBLE:
			if (isnan(l->dbls[v]) || isinf(l->dbls[v]))
				appendStringInfoString(out, "null");
			else
				appendStringInfo(out, "%.17g", l->dbls[v]);
			break;
		default:
			{
				char	   *s = pnstrdup((const char *) l->ptr[v], l->lens[v]);

				escape_json(out, s);
				pfree(s);
			}
	}
}

/* Node n's value at the leaves' cursors, or false (nothing written) for null. */
static bool
assemble(StringInfo out, RNode *n, RLeaf *leaves)
{
	RLeaf	   *first = &leaves[n->first_leaf];
	int			i;

	if (n->nleaves == 0)
		return false;
	if (first->slot >= first->nslots)
		ParquetReadCorrupt("a leaf has too few levels");
	if (first->defs[first->slot] < n->def)
	{
		skip_node(n, leaves);
		return false;
	}
	if (n->leaf >= 0)
	{
		append_leaf(out, first);
		return true;
	}
	if ((n->el->is_list || n->el->is_map) && n->nchildren == 1 &&
		n->children[0].el->repetition == PARQUET_REPEATED)
	{
		RNode	   *g = &n->children[0];
		bool		map = n->el->is_map && g->nchildren == 2;
		int			k = 0;

		appendStringInfoChar(out, map ? '{' : '[');
		if (first->defs[first->slot] < g->def)
			skip_node(n, leaves);	/* empty */
		else
			do
			{
				if (k++ > 0)
					appendStringInfoChar(out, ',');
				if (map)
				{
					StringInfoData key;

					initStringInfo(&key);
					if (!assemble(&key, &g->children[0], leaves))
						appendStringInfoString(&key, "\"\"");
					appendBinaryStringInfo(out, key.data, key.len);
					appendStringInfoChar(out, ':');
					pfree(key.data);
					if (!assemble(out, &g->children[1], leaves))
						appendStringInfoString(out, "null");
				}
				else if (g->nchildren == 1 && g->children[0].el->repetition != PARQUET_REPEATED)
				{
					if (!assemble(out, &g->children[0], leaves))
						appendStringInfoString(out, "null");
				}
				else
					ParquetReadCorrupt("an unsupported list layout");
			} while (first->slot < first->nslots && first->reps[first->slot] == g->rep);
		appendStringInfoChar(out, map ? '}' : ']');
		return true;
	}
	if (n->el->repetition == PARQUET_REPEATED && n->leaf < 0)
		ParquetReadCorrupt("an unsupported repeated group");
	/* a struct: its non-null fields */
	{
		int			k = 0;

		appendStringInfoChar(out, '{');
		for (i = 0; i < n->nchildren; i++)
		{
			StringInfoData v;

			initStringInfo(&v);
			if (assemble(&v, &n->children[i], leaves))
			{
				if (k++ > 0)
					appendStringInfoChar(out, ',');
				escape_json(out, n->children[i].el->name);
				appendStringInfoChar(out, ':');
				appendBinaryStringInfo(out, v.data, v.len);
			}
			pfree(v.data);
		}
		appendStringInfoChar(out, '}');
	}
	return true;
}

/*
 * The rows of the Parquet file data[0..len) as JSON objects of their
 * non-null top-level fields; *nrows gets their number.
 */
char	  **
ParquetReadJsonRows(const char *data, size_t len, int64 *nrows)
{
	const uint8 *d = (const uint8 *) data;
	PqrFile		f;
	RNode		root;
	RLeaf	   *leaves;
	int			leafno = 0;
	char	  **rows;
	int64		row = 0;
	int			g,
				i;

	ParquetReadFooter(d, len, &f);
	(void) build_tree(&f, 0, &root, 0, 0, &leafno);
	if (leafno != f.nleaves)
		ParquetReadCorrupt("the schema's leaves do not add up");
	leaves = palloc0(sizeof(RLeaf) * Max(f.nleaves, 1));
	set_leaf_levels(&root, leaves);
	for (g = 0; g < f.nrowgroups; g++)
		for (i = 0; i < f.nleaves; i++)
			read_chunk(d, len, &f.chunks[g * f.nleaves + i], &leaves[i]);
	rows = palloc(sizeof(char *) * Max(f.num_rows, 1));
	for (row = 0; row < f.num_rows; row++)
	{
		StringInfoData out;
		int			k = 0;

		CHECK_FOR_INTERRUPTS();
		initStringInfo(&out);
		appendStringInfoChar(&out, '{');
		for (i = 0; i < root.nchildren; i++)
		{
			StringInfoData v;

			initStringInfo(&v);
			if (assemble(&v, &root.children[i], leaves))
			{
				if (k++ > 0)
					appendStringInfoChar(&out, ',');
				escape_json(&out, root.children[i].el->name);
				appendStringInfoChar(&out, ':');
				appendBinaryStringInfo(&out, v.data, v.len);
			}
			pfree(v.data);
		}
		appendStringInfoChar(&out, '}');
		rows[row] = out.data;
	}
	*nrows = f.num_rows;
	return rows;
}

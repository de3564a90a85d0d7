/*-------------------------------------------------------------------------
 * delta_stats.c
 *		What the Delta log says of one written Parquet file: its columns as
 *		Delta schema fields, and its per-file statistics (numRecords,
 *		minValues, maxValues, nullCount), from the writer's column specs and
 *		its merged chunk statistics.
 *
 * The invariant: every bound written is a true bound of the file's values
 * (PROTOCOL.md, Per-file Statistics).  Timestamps are truncated down to
 * milliseconds as the protocol says; a string longer than the prefix Delta
 * keeps gets its prefix as minimum and no maximum; values JSON cannot hold
 * (infinities, out-of-range dates) and types Delta keeps no bounds for
 * (boolean, binary) get none.  Statistics cover the first
 * DELTA_STATS_COLUMNS columns, as delta.dataSkippingNumIndexedCols says by
 * default; a struct's are nested objects of its fields, and arrays have
 * none (PROTOCOL.md, Per-file Statistics).
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "parquet/parquet.h"
#include "export/export_int.h"

#include <math.h>

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/json.h"

#define DELTA_STATS_COLUMNS 32
#define DELTA_STRING_PREFIX 32

/* The Delta type name of a column as the writer writes it. */
static const char *
delta_type(const ParquetColumnSpec *s)
{
	if (s->logical == PARQUET_LOGICAL_DECIMAL)
		return psprintf("decimal(%d,%d)", s->precision, s->scale);
	switch (s->type)
	{
		case PARQUET_BOOLEAN:
			return "boolean";
		case PARQUET_INT32:
			if (s->logical == PARQUET_LOGICAL_INT16)
				return "short";
			if (s->logical == PARQUET_LOGICAL_DATE)
				return "date";
			return "integer";
		case PARQUET_INT64:
			if (s->logical == PARQUET_LOGICAL_TIMESTAMP_UTC)
				return "timestamp";
			if (s->logical == PARQUET_LOGICAL_TIMESTAMP_LOCAL)
				return "timestamp_ntz";
			return "long";
		case PARQUET_FLOAT:
			return "float";
		case PARQUET_DOUBLE:
			return "double";
		case PARQUET_BYTE_ARRAY:
			if (s->logical == PARQUET_LOGICAL_STRING || s->logical == PARQUET_LOGICAL_JSON)
				return "string";
			return "binary";
		case PARQUET_FIXED_LEN_BYTE_ARRAY:
			return "binary";
	}
	return "binary";
}

static void append_fields(StringInfo out, const ParquetNode *nodes, int n);

/* A field's Delta type: a name, or an array, struct or map object. */
static void
append_type(StringInfo out, const ParquetNode *n)
{
	switch (n->kind)
	{
		case PARQUET_NODE_LIST:
			appendStringInfoString(out, "{\"type\":\"array\",\"elementType\":");
			append_type(out, &n->children[0]);
			appendStringInfoString(out, ",\"containsNull\":true}");
			break;
		case PARQUET_NODE_MAP:
			appendStringInfoString(out, "{\"type\":\"map\",\"keyType\":\"string\",\"valueType\":");
			append_type(out, &n->children[0]);
			appendStringInfoString(out, ",\"valueContainsNull\":true}");
			break;
		case PARQUET_NODE_STRUCT:
			appendStringInfoString(out, "{\"type\":\"struct\",\"fields\":");
			append_fields(out, n->children, n->nchildren);
			appendStringInfoChar(out, '}');
			break;
		case PARQUET_NODE_LEAF:
			appendStringInfo(out, "\"%s\"", delta_type(n->spec));
			break;
		default:
			elog(ERROR, "delta schema: unexpected parquet node kind %d", (int) n->kind);
	}
}

static void
append_fields(StringInfo out, const ParquetNode *nodes, int n)
{
	int			i;

	appendStringInfoChar(out, '[');
	for (i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoChar(out, ',');
		appendStringInfoString(out, "{\"name\":");
		escape_json(out, nodes[i].name);
		appendStringInfoString(out, ",\"type\":");
		append_type(out, &nodes[i]);
		/* always nullable: NOT NULL added or dropped later is no schema change */
		appendStringInfoString(out, ",\"nullable\":true,\"metadata\":{}}");
	}
	appendStringInfoChar(out, ']');
}

/*
 * The Delta schema fields of the file's columns, a JSON array: arrays as
 * {"type": "array", ...}, composites as {"type": "struct", ...}.
 */
char *
DeltaSchemaFields(ParquetWriter *w)
{
	int			nfields;
	const ParquetNode *fields = ParquetWriterFields(w, &nfields);
	StringInfoData out;

	initStringInfo(&out);
	append_fields(&out, fields, nfields);
	return out.data;
}

/* Microseconds since the Unix epoch as ISO 8601, truncated to milliseconds. */
static bool
append_timestamp(StringInfo out, int64 us, bool utc)
{
	struct pg_tm tm;
	fsec_t		fsec;
	Timestamp	ts;
	int64		ms = us >= 0 ? us / 1000 : -((-us + 999) / 1000);

	ts = ms * 1000 - ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY);
	if (!IS_VALID_TIMESTAMP(ts) || timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0 ||
		tm.tm_year < 1 || tm.tm_year > 9999)
		return false;
	appendStringInfo(out, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03d%s\"",
					 tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
					 (int) (fsec / 1000), utc ? "Z" : "");
	return true;
}

/* An unscaled decimal as a JSON number. */
static void
append_decimal(StringInfo out, int128 v, int scale)
{
	char		digits[48];
	int			n = 0;
	bool		neg = v < 0;
	uint128		u = neg ? -(uint128) v : (uint128) v;

	do
	{
		digits[n++] = '0' + (int) (u % 10);
		u /= 10;
	} while (u > 0);
	while (n <= scale)
		digits[n++] = '0';
	if (neg)
		appendStringInfoChar(out, '-');
	while (n > 0)
	{
		if (n == scale)
			appendStringInfoChar(out, '.');
		appendStringInfoChar(out, digits[--n]);
	}
}

/*
 * One bound as a JSON value; false when none can be written.  For a string
 * longer than the prefix, a minimum is its prefix and a maximum is left out.
 */
static bool
append_bound(StringInfo out, const ParquetColumnSpec *s, const char *p, int32 len, bool is_max)
{
	switch (s->type)
	{
		case PARQUET_BOOLEAN:
			return false;
		case PARQUET_INT32:
			{
				int32		v;

				memcpy(&v, p, 4);
				if (s->logical == PARQUET_LOGICAL_DECIMAL)
					append_decimal(out, v, s->scale);
				else if (s->logical == PARQUET_LOGICAL_DATE)
				{
					int			y,
								m,
								d;

					if (v < -700000 || v > 2900000)
						return false;
					j2date(v + UNIX_EPOCH_JDATE, &y, &m, &d);
					if (y < 1 || y > 9999)
						return false;
					appendStringInfo(out, "\"%04d-%02d-%02d\"", y, m, d);
				}
				else
					appendStringInfo(out, "%d", v);
				return true;
			}
		case PARQUET_INT64:
			{
				int64		v;

				memcpy(&v, p, 8);
				if (s->logical == PARQUET_LOGICAL_DECIMAL)
					append_decimal(out, v, s->scale);
				else if (s->logical == PARQUET_LOGICAL_TIMESTAMP_UTC ||
						 s->logical == PARQUET_LOGICAL_TIMESTAMP_LOCAL)
					return append_timestamp(out, v, s->logical == PARQUET_LOGICAL_TIMESTAMP_UTC);
				else
					appendStringInfo(out, INT64_FORMAT, v);
				return true;
			}
		case PARQUET_FLOAT:
			{
				float4		f;

				memcpy(&f, p, 4);
				if (isinf(f) || isnan(f))
					return false;
				appendStringInfo(out, "%.9g", (double) f);
				return true;
			}
		case PARQUET_DOUBLE:
			{
				double		d;

				memcpy(&d, p, 8);
				if (isinf(d) || isnan(d))
					return false;
				appendStringInfo(out, "%.17g", d);
				return true;
			}
		case PARQUET_BYTE_ARRAY:
		case PARQUET_FIXED_LEN_BYTE_ARRAY:
			if (s->logical == PARQUET_LOGICAL_DECIMAL)
			{
				int128		v = (int8) p[0] < 0 ? -1 : 0;
				int			i;

				if (len > 16)
					return false;
				for (i = 0; i < len; i++)
					v = (int128) (((uint128) v << 8) | (uint8) p[i]);
				append_decimal(out, v, s->scale);
				return true;
			}
			if (s->logical == PARQUET_LOGICAL_STRING || s->logical == PARQUET_LOGICAL_JSON)
			{
				int			chars = 0;
				int			cut = 0;
				char	   *str;

				/* the prefix of DELTA_STRING_PREFIX characters (UTF-8) */
				while (cut < len && chars < DELTA_STRING_PREFIX)
				{
					int			l = pg_utf_mblen((const unsigned char *) p + cut);

					if (cut + l > len)
						return false;
					cut += l;
					chars++;
				}
				if (cut < len && is_max)
					return false;
				str = pnstrdup(p, cut);
				if (strlen(str) != (size_t) cut)
					return false;	/* a NUL byte: no text bound */
				escape_json(out, str);
				return true;
			}
			return false;
	}
	return false;
}

/* What DeltaFileStats walks: the leaves' statistics, in depth-first order. */
typedef struct StatsWalk
{
	ParquetFileColumnStats *st;
	int			leaf;			/* the next leaf */
	int			budget;			/* indexed columns left */
	StringInfoData one;
} StatsWalk;

static int
count_leaves(const ParquetNode *n)
{
	int			i,
				k = 0;

	if (n->nchildren == 0)
		return 1;
	for (i = 0; i < n->nchildren; i++)
		k += count_leaves(&n->children[i]);
	return k;
}

/*
 * Appends the members of one of minValues (pass 0), maxValues (1) or
 * nullCount (2) for nodes, mirroring the schema: a struct is an object of
 * its fields; arrays and maps have no statistics.  Returns the members
 * written.
 */
static int
append_stats(StringInfo out, StatsWalk *sw, const ParquetNode *nodes, int n, int pass)
{
	int			written = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		const ParquetNode *f = &nodes[i];
		ParquetFileColumnStats *st;

		if (sw->budget <= 0)
			break;
		if (f->kind == PARQUET_NODE_STRUCT)
		{
			StringInfoData sub;

			initStringInfo(&sub);
			if (append_stats(&sub, sw, f->children, f->nchildren, pass) > 0)
			{
				if (written++ > 0)
					appendStringInfoChar(out, ',');
				escape_json(out, f->name);
				appendStringInfo(out, ":{%s}", sub.data);
			}
			pfree(sub.data);
			continue;
		}
		if (f->kind != PARQUET_NODE_LEAF)
		{
			/* an array or map: one indexed column, without statistics */
			sw->leaf += count_leaves(f);
			sw->budget--;
			continue;
		}
		st = &sw->st[sw->leaf++];
		sw->budget--;
		resetStringInfo(&sw->one);
		if (pass == 2)
			appendStringInfo(&sw->one, INT64_FORMAT, st->null_count);
		else if (!st->has_minmax ||
				 !append_bound(&sw->one, f->spec, pass == 0 ? st->min : st->max,
							   pass == 0 ? st->minlen : st->maxlen, pass == 1))
			continue;
		if (written++ > 0)
			appendStringInfoChar(out, ',');
		escape_json(out, f->name);
		appendStringInfoChar(out, ':');
		appendBinaryStringInfo(out, sw->one.data, sw->one.len);
	}
	return written;
}

/*
 * The Delta statistics of a finished file, as the JSON text that goes into
 * its add action's "stats" string.  The first DELTA_STATS_COLUMNS columns
 * are indexed, a struct's fields each counting as one, an array or map as
 * one without statistics.
 */
char *
DeltaFileStats(ParquetWriter *w)
{
	int			nleaves;
	int			nfields;
	const ParquetNode *fields = ParquetWriterFields(w, &nfields);
	StatsWalk	sw;
	StringInfoData out;
	int			pass;
	int			i;

	(void) ParquetWriterColumns(w, &nleaves);
	memset(&sw, 0, sizeof(sw));
	sw.st = palloc0(sizeof(ParquetFileColumnStats) * Max(nleaves, 1));
	for (i = 0; i < nleaves; i++)
		ParquetWriterColumnStats(w, i, &sw.st[i]);
	initStringInfo(&sw.one);
	initStringInfo(&out);
	appendStringInfo(&out, "{\"numRecords\":" INT64_FORMAT, ParquetWriterRows(w));
	for (pass = 0; pass < 3; pass++)
	{
		static const char *const names[] = {"minValues", "maxValues", "nullCount"};

		sw.leaf = 0;
		sw.budget = DELTA_STATS_COLUMNS;
		appendStringInfo(&out, ",\"%s\":{", names[pass]);
		(void) append_stats(&out, &sw, fields, nfields, pass);
		appendStringInfoChar(&out, '}');
	}
	appendStringInfoChar(&out, '}');
	return out.data;
}

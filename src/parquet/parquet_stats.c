/*-------------------------------------------------------------------------
 * parquet_stats.c
 *		Column chunk statistics (min, max) in the orders the Parquet spec
 *		defines for each type.
 *
 * Signed integers compare signed; floats compare as numbers with NaN left
 * out, and a zero minimum is written -0.0 and a zero maximum +0.0 (readers
 * may not know which zero they saw); byte arrays compare unsigned bytewise,
 * except FIXED_LEN_BYTE_ARRAY decimals, which compare as big-endian two's
 * complement.  Byte arrays longer than STATS_MAX_BYTES switch min/max off
 * for the chunk rather than be copied on every change or truncated.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "parquet/parquet_int.h"

#include <math.h>

#include "port/pg_bswap.h"

#define STATS_MAX_BYTES 512

void
ParquetStatsInit(ParquetStats *c, const ParquetColumnSpec *spec, MemoryContext cxt)
{
	memset(c, 0, sizeof(ParquetStats));
	c->type = spec->type;
	c->logical = spec->logical;
	c->cxt = cxt;
	/* room for the longest tracked min and max: ParquetStatsAdd never allocates */
	if (c->type == PARQUET_BYTE_ARRAY || c->type == PARQUET_FIXED_LEN_BYTE_ARRAY)
	{
		ParquetBufReserve(cxt, &c->minb, STATS_MAX_BYTES);
		ParquetBufReserve(cxt, &c->maxb, STATS_MAX_BYTES);
	}
}

void
ParquetStatsReset(ParquetStats *c)
{
	c->has_minmax = false;
	c->stats_off = false;
	c->prefix_ok = false;
}

static int
compare_bytes(ParquetStats *c, const char *a, size_t alen, const char *b, size_t blen)
{
	int			r;

	if (c->type == PARQUET_FIXED_LEN_BYTE_ARRAY &&
		c->logical == PARQUET_LOGICAL_DECIMAL)
	{
		/* big-endian two's complement: the sign byte compares signed */
		if ((int8) a[0] != (int8) b[0])
			return (int8) a[0] < (int8) b[0] ? -1 : 1;
		return memcmp(a + 1, b + 1, alen - 1);
	}
	if (alen >= 8 && blen >= 8)
	{
		/* most values differ in their first 8 bytes: one compare decides */
		uint64		x,
					y;

		memcpy(&x, a, 8);
		memcpy(&y, b, 8);
		if (x != y)
			return pg_ntoh64(x) < pg_ntoh64(y) ? -1 : 1;
	}
	r = memcmp(a, b, Min(alen, blen));
	if (r != 0)
		return r;
	return alen < blen ? -1 : (alen > blen ? 1 : 0);
}

static inline uint64
first8(const char *p)
{
	uint64		x;

	memcpy(&x, p, 8);
	return pg_ntoh64(x);
}

/* After min or max changed: their first 8 bytes, when both have 8. */
static void
stats_prefixes(ParquetStats *c)
{
	c->prefix_ok = c->logical != PARQUET_LOGICAL_DECIMAL &&
		c->minb.len >= 8 && c->maxb.len >= 8;
	if (c->prefix_ok)
	{
		c->min8 = first8(c->minb.data);
		c->max8 = first8(c->maxb.data);
	}
}

static void
stats_bytes(ParquetStats *c, const char *p, size_t len)
{
	if (c->stats_off)
		return;
	if (len > STATS_MAX_BYTES)
	{
		c->stats_off = true;
		c->has_minmax = false;
		return;
	}
	if (!c->has_minmax)
	{
		ParquetBufSet(c->cxt, &c->minb, p, len);
		ParquetBufSet(c->cxt, &c->maxb, p, len);
		c->has_minmax = true;
		stats_prefixes(c);
		return;
	}
	if (c->prefix_ok && len >= 8)
	{
		/* strictly between min and max by its first 8 bytes: neither changes */
		uint64		x = first8(p);

		if (x > c->min8 && x < c->max8)
			return;
	}
	if (compare_bytes(c, p, len, c->minb.data, c->minb.len) < 0)
	{
		ParquetBufSet(c->cxt, &c->minb, p, len);
		stats_prefixes(c);
	}
	else if (compare_bytes(c, p, len, c->maxb.data, c->maxb.len) > 0)
	{
		ParquetBufSet(c->cxt, &c->maxb, p, len);
		stats_prefixes(c);
	}
}

/*
 * Takes one non-null value (its bytes; no length prefix) into the
 * statistics.  It allocates nothing and touches no Postgres state, so the
 * writer's dictionary thread may call it.
 */
void
ParquetStatsAdd(ParquetStats *c, const char *p, size_t len)
{
	switch (c->type)
	{
		case PARQUET_BOOLEAN:
		case PARQUET_INT32:
		case PARQUET_INT64:
			{
				int64		v;

				if (c->type == PARQUET_INT64)
					memcpy(&v, p, 8);
				else if (c->type == PARQUET_INT32)
				{
					int32		v32;

					memcpy(&v32, p, 4);
					v = v32;
				}
				else
					v = *(const uint8 *) p;
				if (!c->has_minmax)
				{
					c->min.i = c->max.i = v;
					c->has_minmax = true;
				}
				else if (v < c->min.i)
					c->min.i = v;
				else if (v > c->max.i)
					c->max.i = v;
				break;
			}
		case PARQUET_FLOAT:
		case PARQUET_DOUBLE:
			{
				double		v;

				if (c->type == PARQUET_DOUBLE)
					memcpy(&v, p, 8);
				else
				{
					float4		f;

					memcpy(&f, p, 4);
					v = f;
				}
				if (isnan(v))
					break;		/* NaN takes no part in min/max */
				if (!c->has_minmax)
				{
					c->min.d = c->max.d = v;
					c->has_minmax = true;
				}
				else if (v < c->min.d)
					c->min.d = v;
				else if (v > c->max.d)
					c->max.d = v;
				break;
			}
		case PARQUET_BYTE_ARRAY:
		case PARQUET_FIXED_LEN_BYTE_ARRAY:
			stats_bytes(c, p, len);
			break;
	}
}

/*
 * Takes n non-null values in PLAIN form (len bytes) into the statistics:
 * numbers in a loop of their own type, byte arrays one by one.
 */
void
ParquetStatsAddPlain(ParquetStats *c, const char *plain, size_t len, int64 n)
{
	const char *p = plain;
	int64		i;

	if (n <= 0)
		return;
	if (c->type == PARQUET_INT64 || c->type == PARQUET_DOUBLE)
	{
		int64		k = 0;

		if (!c->has_minmax)
		{
			/* the first value that counts (not NaN) seeds min and max */
			for (; k < n && !c->has_minmax; k++)
				ParquetStatsAdd(c, p + k * 8, 8);
		}
		if (c->type == PARQUET_INT64)
		{
			int64		mn = c->min.i,
						mx = c->max.i;

			for (; k < n; k++)
			{
				int64		v;

				memcpy(&v, p + k * 8, 8);
				mn = v < mn ? v : mn;
				mx = v > mx ? v : mx;
			}
			c->min.i = mn;
			c->max.i = mx;
		}
		else
		{
			double		mn = c->min.d,
						mx = c->max.d;

			/* comparisons with NaN are false: NaN changes neither */
			for (; k < n; k++)
			{
				double		v;

				memcpy(&v, p + k * 8, 8);
				mn = v < mn ? v : mn;
				mx = v > mx ? v : mx;
			}
			c->min.d = mn;
			c->max.d = mx;
		}
		return;
	}
	if (c->type == PARQUET_FIXED_LEN_BYTE_ARRAY && len / n >= 8)
	{
		size_t		w = len / n;

		/*
		 * Most values lie strictly between min and max by their first 8
		 * bytes (stats_bytes's own test, without a call per value).
		 */
		for (i = 0; i < n; i++, p += w)
		{
			uint64		x;

			if (c->prefix_ok && c->has_minmax)
			{
				x = first8(p);
				if (x > c->min8 && x < c->max8)
					continue;
			}
			ParquetStatsAdd(c, p, w);
		}
		return;
	}
	for (i = 0; i < n; i++)
	{
		uint32		vlen;

		switch (c->type)
		{
			case PARQUET_BOOLEAN:
				vlen = 1;
				break;
			case PARQUET_INT32:
			case PARQUET_FLOAT:
				vlen = 4;
				break;
			case PARQUET_BYTE_ARRAY:
				memcpy(&vlen, p, 4);
				p += 4;
				break;
			default:
				vlen = (uint32) (len / n);	/* FIXED_LEN_BYTE_ARRAY */
				break;
		}
		ParquetStatsAdd(c, p, vlen);
		p += vlen;
	}
}

/* The PLAIN bytes of a min or max statistic. */
static char *
stat_bytes(ParquetStats *c, bool is_max, int32 *len)
{
	char	   *out;

	switch (c->type)
	{
		case PARQUET_BOOLEAN:
			out = MemoryContextAlloc(c->cxt, 1);
			out[0] = (is_max ? c->max.i : c->min.i) ? 1 : 0;
			*len = 1;
			return out;
		case PARQUET_INT32:
			{
				int32		v = (int32) (is_max ? c->max.i : c->min.i);

				*len = 4;
				return memcpy(MemoryContextAlloc(c->cxt, 4), &v, 4);
			}
		case PARQUET_INT64:
			*len = 8;
			return memcpy(MemoryContextAlloc(c->cxt, 8), is_max ? &c->max.i : &c->min.i, 8);
		case PARQUET_FLOAT:
		case PARQUET_DOUBLE:
			{
				double		d = is_max ? c->max.d : c->min.d;

				/* the spec: a zero minimum is written -0.0, a zero maximum +0.0 */
				if (d == 0)
					d = is_max ? 0.0 : -0.0;
				if (c->type == PARQUET_FLOAT)
				{
					float4		f = (float4) d;

					*len = 4;
					return memcpy(MemoryContextAlloc(c->cxt, 4), &f, 4);
				}
				*len = 8;
				return memcpy(MemoryContextAlloc(c->cxt, 8), &d, 8);
			}
		case PARQUET_BYTE_ARRAY:
		case PARQUET_FIXED_LEN_BYTE_ARRAY:
			{
				ParquetBuf	   *b = is_max ? &c->maxb : &c->minb;

				*len = (int32) b->len;
				out = MemoryContextAlloc(c->cxt, b->len + 1);
				memcpy(out, b->data, b->len);
				return out;
			}
	}
	return NULL;
}

/*
 * The PLAIN bytes of the min and max, allocated in the stats' context;
 * false when there are none (no non-NaN value, or too long a byte array).
 */
bool
ParquetStatsBytes(ParquetStats *c, MemoryContext cxt, char **min, int32 *minlen,
				  char **max, int32 *maxlen)
{
	if (!c->has_minmax || c->stats_off)
		return false;
	*min = stat_bytes(c, false, minlen);
	*max = stat_bytes(c, true, maxlen);
	return true;
}

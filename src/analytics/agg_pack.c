/*-------------------------------------------------------------------------
 * agg_pack.c
 *		Aggregate states that are a header and a few growing arrays
 *		(tumbling_summary, spike_dip_events): the arrays' memory, and the
 *		serialized form, the parts one after the other in one bytea, as
 *		they are in memory (parallel workers run on the same server, with
 *		the same byte order).
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "analytics/analytics_int.h"

#include "utils/memutils.h"

/* The error for a group that outgrew what one state holds. */
void
AggTooMany(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("too many values in one %s group", what),
			 errhint("Group by more keys, or restrict the time range with WHERE.")));
}

/* An array of cap elements of elem bytes in cxt; at most max elements. */
void *
AggArrayNew(MemoryContext cxt, int64 cap, Size elem, int64 max, const char *what)
{
	if (cap > max)
		AggTooMany(what);
	return MemoryContextAllocExtended(cxt, Max(cap, 1) * elem, MCXT_ALLOC_HUGE);
}

/*
 * An array of *cap elements grown, by doubling, to hold `need` (at most
 * max); may move.
 */
void *
AggArrayGrow(void *array, int64 *cap, int64 need, Size elem, int64 max, const char *what)
{
	int64		c = *cap;

	if (need <= c)
		return array;
	while (c < need)
		c *= 2;
	if (c > max)
		AggTooMany(what);
	*cap = c;
	return repalloc_huge(array, c * elem);
}

/* One bytea holding the parts in order; the first is the header. */
bytea *
StatePack(const PackPart *parts, int nparts)
{
	Size		len = 0;
	bytea	   *b;
	char	   *p;
	int			i;

	for (i = 0; i < nparts; i++)
		len += parts[i].len;
	b = palloc_extended(VARHDRSZ + len, MCXT_ALLOC_HUGE);
	SET_VARSIZE(b, VARHDRSZ + len);
	p = VARDATA(b);
	for (i = 0; i < nparts; i++)
	{
		memcpy(p, parts[i].data, parts[i].len);
		p += parts[i].len;
	}
	return b;
}

/*
 * Copies the header of a packed state into header (hlen bytes) and returns
 * the bytes after it, setting *rest to their length; the caller checks
 * them against the header.  `what` names the aggregate in the error.
 */
const char *
StateUnpack(bytea *b, void *header, Size hlen, Size *rest, const char *what)
{
	Size		len = VARSIZE_ANY_EXHDR(b);

	if (len < hlen)
		elog(ERROR, "invalid serialized %s state", what);
	memcpy(header, VARDATA_ANY(b), hlen);
	*rest = len - hlen;
	return VARDATA_ANY(b) + hlen;
}

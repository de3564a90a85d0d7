/*-------------------------------------------------------------------------
 * agg_pack.c
 *		The serialized form of an aggregate state that is a header and a
 *		few arrays (tumbling_summary, spike_dip_events): the parts one
 *		after the other in one bytea, as they are in memory (parallel
 *		workers run on the same server, with the same byte order).
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"

#include "utils/memutils.h"

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

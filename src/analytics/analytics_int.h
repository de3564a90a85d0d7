/*-------------------------------------------------------------------------
 * analytics/analytics_int.h
 *		The analytics' own declarations: windows and aggregate-state helpers.
 *
 * Nothing outside src/analytics/ includes it.
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_ANALYTICS_INT_H
#define ANALYTICS_ANALYTICS_INT_H

#include "analytics/analytics.h"

#include "fmgr.h"

/* in windows.c */
extern int64 PositiveWindowLength(const Interval *iv, const char *what);
extern int64 WindowStart(int64 ts, int64 origin, int64 width, const char *fname);
extern int	Int64PairCmp(const void *a, const void *b);

/* The memory context of the aggregate calling; `what` names it in the error. */
static inline MemoryContext
AggStateContext(FunctionCallInfo fcinfo, const char *what)
{
	MemoryContext cxt;

	if (!AggCheckCallContext(fcinfo, &cxt))
		elog(ERROR, "%s called in non-aggregate context", what);
	return cxt;
}

/* in agg_pack.c */
extern void AggTooMany(const char *what) pg_attribute_noreturn();
extern void *AggArrayNew(MemoryContext cxt, int64 cap, Size elem, int64 max,
						 const char *what);
extern void *AggArrayGrow(void *array, int64 *cap, int64 need, Size elem, int64 max,
						  const char *what);
typedef struct PackPart
{
	const void *data;
	Size		len;
} PackPart;
extern bytea *StatePack(const PackPart *parts, int nparts);
extern const char *StateUnpack(bytea *b, void *header, Size hlen, Size *rest,
							   const char *what);

/* in detector_aggs.c */
extern int64 OutlierSummaryRow(const float8 *v, int64 n, float8 k, Datum *values, bool *nulls);
struct TupleDescData;
typedef struct CompositeCache CompositeCache;
extern CompositeCache *CompositeCacheCreate(MemoryContext cxt, struct TupleDescData *tupdesc);
extern Datum CompositeForm(CompositeCache *cc, Datum *values, bool *nulls);
extern CompositeCache *CompositeArrayCache(FunctionCallInfo fcinfo, int natts, Oid *elemtype);

/* in detector_aggs.c */
extern KdeHistory *KdeHistoryFromArgs(FunctionCallInfo fcinfo, MemoryContext cxt,
									  int arg, bool spikes);

#endif							/* ANALYTICS_ANALYTICS_INT_H */

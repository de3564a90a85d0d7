/*-------------------------------------------------------------------------
 * window_summary.c
 *		tumbling_summary(ts, value, width, k [, origin]): per key, every
 *		tumbling window's (n, mean, stddev, min, max, outliers) in one
 *		aggregate.
 *
 * GROUP BY key, date_bin(width, ts, origin) with outlier_summary gives the
 * same rows, but PostgreSQL's hash grouping then does most of the work: a
 * projection, two hashes and an equality check of a (text, timestamptz) key
 * per row, over as many groups as there are windows (48,000 in the
 * benchmark), and in a parallel plan every process holds every window and
 * the leader combines them all again.  Grouping by the key alone leaves a
 * few hot groups, and the windows are found here: a key's rows usually come
 * in time order, so a row's window is almost always its predecessor's, which
 * costs two comparisons.
 *
 * The state keeps the key's values (as outliers does, for the count beyond
 * mean +/- k stddev) in arrival order, and a list of runs: consecutive values
 * of one window.  In-order input gives one run per window.  Otherwise the
 * final function sorts the runs by window (stably, so a window's values keep
 * their arrival order) and joins the runs of each window.  A window's
 * figures are exactly outlier_summary's over the same values in the same
 * order.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "analytics/analytics_int.h"

#include <math.h>

#include "catalog/pg_type_d.h"
#include "common/int.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

PG_FUNCTION_INFO_V1(tumbling_summary_transfn);
PG_FUNCTION_INFO_V1(tumbling_summary_combine);
PG_FUNCTION_INFO_V1(tumbling_summary_serialize);
PG_FUNCTION_INFO_V1(tumbling_summary_deserialize);
PG_FUNCTION_INFO_V1(tumbling_summary_finalfn);

/* start and first come first: runs sort with Int64PairCmp */
typedef struct WindowRun
{
	int64		start;			/* the window's start, microseconds */
	int64		first;			/* index of the run's first value */
	int64		count;
} WindowRun;

typedef struct TumbleState
{
	/* what a row in the newest window touches, first */
	int64		n;
	int64		cap;
	float8	   *values;
	int64		cur_start;		/* runs[nruns - 1].start */
	uint64		cur_width;		/* width, or 0 while there is no run */
	/* fixed on the group's first row */
	int64		width;
	int64		origin;
	float8		k;
	/* runs in arrival order; the newest one's count is n - first until closed */
	bool		sorted;			/* runs ascend by window, one run per window */
	int64		nruns;
	int64		runcap;
	WindowRun  *runs;
} TumbleState;

/* serialized: this header, the runs, the values */
typedef struct TumbleHeader
{
	int64		width;
	int64		origin;
	float8		k;
	int64		sorted;
	int64		n;
	int64		nruns;
} TumbleHeader;

#define TUMBLE_MAX_VALUES	((int64) (MaxAllocHugeSize / 2 / sizeof(float8)))
#define TUMBLE_MAX_RUNS		((int64) (MaxAllocHugeSize / 2 / sizeof(WindowRun)))

#define TUMBLE		"tumbling_summary()"

/* An empty state with room for n values and nruns runs, in cxt. */
static TumbleState *
tumble_new(MemoryContext cxt, int64 width, int64 origin, float8 k,
		   int64 n, int64 nruns)
{
	TumbleState *st = MemoryContextAlloc(cxt, sizeof(TumbleState));

	st->width = width;
	st->origin = origin;
	st->k = k;
	st->cur_start = 0;
	st->cur_width = 0;
	st->sorted = true;
	st->n = 0;
	st->nruns = 0;
	st->cap = Max(n, 64);
	st->runcap = Max(nruns, 8);
	st->values = AggArrayNew(cxt, st->cap, sizeof(float8), TUMBLE_MAX_VALUES, TUMBLE);
	st->runs = AggArrayNew(cxt, st->runcap, sizeof(WindowRun), TUMBLE_MAX_RUNS, TUMBLE);
	return st;
}

/* Room for `more` values and `moreruns` runs. */
static void
tumble_reserve(TumbleState *st, int64 more, int64 moreruns)
{
	st->values = AggArrayGrow(st->values, &st->cap, st->n + more, sizeof(float8),
							  TUMBLE_MAX_VALUES, TUMBLE);
	st->runs = AggArrayGrow(st->runs, &st->runcap, st->nruns + moreruns, sizeof(WindowRun),
							TUMBLE_MAX_RUNS, TUMBLE);
}

/* Sets the newest run's count (the values since its first). */
static inline void
tumble_close(TumbleState *st)
{
	if (st->nruns > 0)
		st->runs[st->nruns - 1].count = st->n - st->runs[st->nruns - 1].first;
}

/* A new run of window `start`, whose first value is the next one. */
static void
tumble_new_run(TumbleState *st, int64 start)
{
	WindowRun  *r;

	tumble_close(st);
	if (st->nruns > 0 && start <= st->cur_start)
		st->sorted = false;
	tumble_reserve(st, 0, 1);
	r = &st->runs[st->nruns++];
	r->start = start;
	r->first = st->n;
	r->count = 0;
	st->cur_start = start;
	st->cur_width = (uint64) st->width;
}

/*
 * A row that does not go to the newest run as it is: the group's first, one
 * with a NULL, one in another window, one that needs more room.
 */
static pg_noinline Datum
tumble_add_slow(FunctionCallInfo fcinfo)
{
	TumbleState *st = PG_ARGISNULL(0) ? NULL : (TumbleState *) PG_GETARG_POINTER(0);
	MemoryContext aggctx = AggStateContext(fcinfo, "tumbling_summary");
	int64		ts;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
	{
		if (st == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(st);
	}
	ts = PG_GETARG_TIMESTAMPTZ(1);
	if (st == NULL)
	{
		int64		width;
		int64		origin = 0;		/* 1970-01-01 00:00:00+00 */
		float8		k;

		if (PG_ARGISNULL(3) || PG_ARGISNULL(4) || (PG_NARGS() > 5 && PG_ARGISNULL(5)))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("width, k and origin of tumbling_summary must not be NULL"),
					 errhint("Pass a window width such as '1 hour' and k such as 3.")));
		width = PositiveWindowLength(PG_GETARG_INTERVAL_P(3), "window width");
		k = PG_GETARG_FLOAT8(4);
		if (!(k > 0.0) || isinf(k))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("k must be a positive number of standard deviations"),
					 errhint("Use 3 to count values beyond mean +/- 3 standard deviations.")));
		if (PG_NARGS() > 5)
			origin = PG_GETARG_TIMESTAMPTZ(5);
		st = tumble_new(aggctx, width, origin, k, 0, 0);
	}
	if (!(ts >= st->cur_start && (uint64) ts - (uint64) st->cur_start < st->cur_width))
		tumble_new_run(st, WindowStart(ts, st->origin, st->width, "tumbling_summary()"));
	tumble_reserve(st, 1, 0);
	st->values[st->n++] = PG_GETARG_FLOAT8(2);
	PG_RETURN_POINTER(st);
}

/*
 * tumbling_summary_transfn(state, ts, value, width, k [, origin]): rows with
 * a NULL time or value are skipped; width, k and origin are read on the
 * group's first row.  A row in the newest window with room to spare is
 * stored here, touching the state's first cache line and the values' end.
 */
Datum
tumbling_summary_transfn(PG_FUNCTION_ARGS)
{
	TumbleState *st;
	int64		ts;

	if (unlikely(PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2)))
		return tumble_add_slow(fcinfo);
	st = (TumbleState *) PG_GETARG_POINTER(0);
	ts = PG_GETARG_TIMESTAMPTZ(1);
	if (unlikely(ts < st->cur_start ||
				 (uint64) ts - (uint64) st->cur_start >= st->cur_width ||
				 st->n == st->cap))
		return tumble_add_slow(fcinfo);
	st->values[st->n++] = PG_GETARG_FLOAT8(2);
	PG_RETURN_POINTER(st);
}

/*
 * Appends b's values and runs to a (b is left as it is: it comes from
 * tumbling_summary_deserialize, in short-lived memory).  When b's first
 * window follows a's last one the runs stay sorted; when it is the same
 * window, the two runs are adjacent values and become one.
 */
Datum
tumbling_summary_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggctx = AggStateContext(fcinfo, "tumbling_summary");
	TumbleState *a = PG_ARGISNULL(0) ? NULL : (TumbleState *) PG_GETARG_POINTER(0);
	TumbleState *b = PG_ARGISNULL(1) ? NULL : (TumbleState *) PG_GETARG_POINTER(1);
	int64		skip = 0;
	int64		i;

	if (b == NULL || b->nruns == 0)
	{
		if (a == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(a);
	}
	if (a == NULL)
		a = tumble_new(aggctx, b->width, b->origin, b->k, b->n, b->nruns);
	tumble_close(a);
	tumble_close(b);
	tumble_reserve(a, b->n, b->nruns);
	if (a->nruns > 0)
	{
		WindowRun  *last = &a->runs[a->nruns - 1];

		if (b->runs[0].start == last->start)
		{
			last->count += b->runs[0].count;
			skip = 1;
		}
		else if (b->runs[0].start < last->start)
			a->sorted = false;
	}
	a->sorted = a->sorted && b->sorted;
	for (i = skip; i < b->nruns; i++)
	{
		WindowRun  *r = &a->runs[a->nruns++];

		r->start = b->runs[i].start;
		r->first = b->runs[i].first + a->n;
		r->count = b->runs[i].count;
	}
	memcpy(a->values + a->n, b->values, b->n * sizeof(float8));
	a->n += b->n;
	a->cur_start = a->runs[a->nruns - 1].start;
	a->cur_width = (uint64) a->width;
	PG_RETURN_POINTER(a);
}

Datum
tumbling_summary_serialize(PG_FUNCTION_ARGS)
{
	TumbleState *st = (TumbleState *) PG_GETARG_POINTER(0);
	TumbleHeader h;
	PackPart	parts[3];

	AggStateContext(fcinfo, "tumbling_summary");
	tumble_close(st);
	h.width = st->width;
	h.origin = st->origin;
	h.k = st->k;
	h.sorted = st->sorted;
	h.n = st->n;
	h.nruns = st->nruns;
	parts[0] = (PackPart) {&h, sizeof(h)};
	parts[1] = (PackPart) {st->runs, st->nruns * sizeof(WindowRun)};
	parts[2] = (PackPart) {st->values, st->n * sizeof(float8)};
	PG_RETURN_BYTEA_P(StatePack(parts, 3));
}

/* Into the current (per-tuple) memory: the combine function copies it. */
Datum
tumbling_summary_deserialize(PG_FUNCTION_ARGS)
{
	TumbleHeader h;
	Size		len;
	const char *p;
	TumbleState *st;

	AggStateContext(fcinfo, "tumbling_summary");
	p = StateUnpack(PG_GETARG_BYTEA_PP(0), &h, sizeof(h), &len, "tumbling_summary");
	if (h.n < 0 || h.nruns < 0 || h.n > TUMBLE_MAX_VALUES || h.nruns > TUMBLE_MAX_RUNS ||
		len != h.nruns * sizeof(WindowRun) + h.n * sizeof(float8))
		elog(ERROR, "invalid serialized tumbling_summary state");
	st = palloc(sizeof(TumbleState));
	st->width = h.width;
	st->origin = h.origin;
	st->k = h.k;
	st->sorted = h.sorted != 0;
	st->n = st->cap = h.n;
	st->nruns = st->runcap = h.nruns;
	st->runs = palloc_extended(Max(h.nruns, 1) * sizeof(WindowRun), MCXT_ALLOC_HUGE);
	st->values = palloc_extended(Max(h.n, 1) * sizeof(float8), MCXT_ALLOC_HUGE);
	memcpy(st->runs, p, h.nruns * sizeof(WindowRun));
	memcpy(st->values, p + h.nruns * sizeof(WindowRun), h.n * sizeof(float8));
	st->cur_start = h.nruns > 0 ? st->runs[h.nruns - 1].start : 0;
	st->cur_width = h.nruns > 0 ? (uint64) st->width : 0;
	PG_RETURN_POINTER(st);
}

/*
 * An array of iotstream.window_summary, one element per window that holds a
 * value, by window start: (window_start, n, mean, stddev, min, max,
 * outliers), as outlier_summary gives them.
 */
Datum
tumbling_summary_finalfn(PG_FUNCTION_ARGS)
{
	TumbleState *st;
	CompositeCache *rows;
	Oid			elemtype;
	Datum	   *elems;
	float8	   *scratch = NULL;
	int64		nwin = 0;
	int64		i,
				j;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (TumbleState *) PG_GETARG_POINTER(0);
	if (st->n == 0)
		PG_RETURN_NULL();
	rows = CompositeArrayCache(fcinfo, 7, &elemtype);
	tumble_close(st);

	/* the final function may run again on the same state: sort a copy */
	if (!st->sorted)
	{
		WindowRun  *runs = palloc_extended(st->nruns * sizeof(WindowRun), MCXT_ALLOC_HUGE);

		memcpy(runs, st->runs, st->nruns * sizeof(WindowRun));
		/* by window, then by arrival: a window's values keep their order */
		qsort(runs, st->nruns, sizeof(WindowRun), Int64PairCmp);
		st = memcpy(palloc(sizeof(TumbleState)), st, sizeof(TumbleState));
		st->runs = runs;
	}
	if (st->nruns > (int64) MaxArraySize)
		AggTooMany(TUMBLE);
	elems = palloc_extended(st->nruns * sizeof(Datum), MCXT_ALLOC_HUGE);
	for (i = 0; i < st->nruns; i = j)
	{
		const float8 *v = st->values + st->runs[i].first;
		int64		n = st->runs[i].count;
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, false, false, false};

		for (j = i + 1; j < st->nruns && st->runs[j].start == st->runs[i].start; j++)
			n += st->runs[j].count;
		if (j > i + 1)
		{
			/* the window's runs, joined in arrival order */
			int64		at = 0,
						r;

			scratch = scratch ? repalloc_huge(scratch, n * sizeof(float8))
				: palloc_extended(n * sizeof(float8), MCXT_ALLOC_HUGE);
			for (r = i; r < j; r++)
			{
				memcpy(scratch + at, st->values + st->runs[r].first,
					   st->runs[r].count * sizeof(float8));
				at += st->runs[r].count;
			}
			v = scratch;
		}
		values[0] = TimestampTzGetDatum(st->runs[i].start);
		OutlierSummaryRow(v, n, st->k, values + 1, nulls + 1);
		elems[nwin++] = CompositeForm(rows, values, nulls);
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, (int) nwin, elemtype, -1, false,
										  TYPALIGN_DOUBLE));
}

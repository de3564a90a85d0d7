/*-------------------------------------------------------------------------
 * detector_events.c
 *		spike_dip_events(ts, value, confidence, history_size [, mode]) and
 *		change_point_events(ts, value, confidence, history_size): per key,
 *		the rows spike_dip or change_point flag, in one aggregate.
 *
 * spike_dip(...) OVER (PARTITION BY key ORDER BY ts) gives every row its
 * verdict, but PostgreSQL first sorts all the rows by (key, ts), and that
 * sort, with its text comparisons, costs several times what the detector
 * does.  Grouping by the key alone lets a hash aggregate collect each key's
 * (ts, value) pairs, in parallel when the planner likes; the final function
 * orders a key's pairs by time (in-order input, the usual case, needs no
 * sort: the transition function notices) and runs the same detector as the
 * window form over them.  The result is an array of iotstream.detector_event
 * (ts, value, score, p_value, martingale), one element per flagged row, in
 * time order: the rows where the window form says is_anomaly, with the
 * same figures.  Rows with equal times keep their arrival order.
 *
 * Rows with a NULL value are skipped, as the window form skips them; so are
 * rows with a NULL time, which have no place in the series.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "analytics/analytics_int.h"

#include <math.h>

#include "catalog/pg_type_d.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(detector_events_spike_transfn);
PG_FUNCTION_INFO_V1(detector_events_change_transfn);
PG_FUNCTION_INFO_V1(detector_events_combine);
PG_FUNCTION_INFO_V1(detector_events_serialize);
PG_FUNCTION_INFO_V1(detector_events_deserialize);
PG_FUNCTION_INFO_V1(detector_events_finalfn);

typedef struct EventsState
{
	/* what a row touches, first */
	int64		n;
	int64		cap;
	int64	   *ts;
	float8	   *values;
	bool		sorted;			/* ts never went back */
	/* fixed on the group's first row */
	bool		change_point;	/* else spike_dip */
	KdeMode		mode;
	int32		size;			/* history_size */
	float8		confidence;
} EventsState;

/* serialized: this header, the times, the values */
typedef struct EventsHeader
{
	int64		n;
	int64		sorted;
	int64		change_point;
	int64		size;
	int64		mode;
	float8		confidence;
} EventsHeader;

#define EVENTS_MAX_VALUES	((int64) (MaxAllocHugeSize / 2 / sizeof(int64)))
#define EVENTS		"detector events"

/* An empty state with room for cap pairs, in cxt. */
static EventsState *
events_new(MemoryContext cxt, bool change_point, int32 size, float8 confidence,
		   KdeMode mode, int64 cap)
{
	EventsState *st = MemoryContextAlloc(cxt, sizeof(EventsState));

	st->n = 0;
	st->cap = Max(cap, 64);
	st->ts = AggArrayNew(cxt, st->cap, sizeof(int64), EVENTS_MAX_VALUES, EVENTS);
	st->values = AggArrayNew(cxt, st->cap, sizeof(float8), EVENTS_MAX_VALUES, EVENTS);
	st->sorted = true;
	st->change_point = change_point;
	st->mode = mode;
	st->size = size;
	st->confidence = confidence;
	return st;
}

/* Room for `more` pairs; may move the arrays. */
static void
events_reserve(EventsState *st, int64 more)
{
	int64		cap = st->cap;

	st->ts = AggArrayGrow(st->ts, &cap, st->n + more, sizeof(int64), EVENTS_MAX_VALUES, EVENTS);
	st->values = AggArrayGrow(st->values, &st->cap, st->n + more, sizeof(float8),
							  EVENTS_MAX_VALUES, EVENTS);
}

/* Appends a pair; there is room for it. */
static inline void
events_push(EventsState *st, int64 ts, float8 value)
{
	st->sorted &= st->n == 0 || ts >= st->ts[st->n - 1];
	st->ts[st->n] = ts;
	st->values[st->n++] = value;
}

/* The group's first row, a row with a NULL, a row that needs more room. */
static pg_noinline Datum
events_add_slow(FunctionCallInfo fcinfo, bool change_point)
{
	EventsState *st = PG_ARGISNULL(0) ? NULL : (EventsState *) PG_GETARG_POINTER(0);
	MemoryContext aggctx = AggStateContext(fcinfo, EVENTS);

	if (st == NULL)
	{
		/* the arguments are checked once, even if every value is NULL */
		KdeHistory *h = KdeHistoryFromArgs(fcinfo, aggctx, 3, !change_point);

		st = events_new(aggctx, change_point, h->size, h->confidence, h->mode, 0);
		pfree(h);
	}
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_POINTER(st);
	events_reserve(st, 1);
	events_push(st, PG_GETARG_TIMESTAMPTZ(1), PG_GETARG_FLOAT8(2));
	PG_RETURN_POINTER(st);
}

/* A row with a time and a value, and room for it: two stores. */
static inline Datum
events_add(FunctionCallInfo fcinfo, bool change_point)
{
	EventsState *st;

	if (unlikely(PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2)))
		return events_add_slow(fcinfo, change_point);
	st = (EventsState *) PG_GETARG_POINTER(0);
	if (unlikely(st->n == st->cap))
		return events_add_slow(fcinfo, change_point);
	events_push(st, PG_GETARG_TIMESTAMPTZ(1), PG_GETARG_FLOAT8(2));
	PG_RETURN_POINTER(st);
}

/* spike_dip_events_transfn(state, ts, value, confidence, history_size [, mode]) */
Datum
detector_events_spike_transfn(PG_FUNCTION_ARGS)
{
	return events_add(fcinfo, false);
}

/* change_point_events_transfn(state, ts, value, confidence, history_size) */
Datum
detector_events_change_transfn(PG_FUNCTION_ARGS)
{
	return events_add(fcinfo, true);
}

/* Appends b's pairs to a's (b is left as it is). */
Datum
detector_events_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggctx = AggStateContext(fcinfo, EVENTS);
	EventsState *a = PG_ARGISNULL(0) ? NULL : (EventsState *) PG_GETARG_POINTER(0);
	EventsState *b = PG_ARGISNULL(1) ? NULL : (EventsState *) PG_GETARG_POINTER(1);

	if (b == NULL)
	{
		if (a == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(a);
	}
	if (a == NULL)
		a = events_new(aggctx, b->change_point, b->size, b->confidence, b->mode, b->n);
	if (b->n == 0)
		PG_RETURN_POINTER(a);
	events_reserve(a, b->n);
	a->sorted = a->sorted && b->sorted && (a->n == 0 || b->ts[0] >= a->ts[a->n - 1]);
	memcpy(a->ts + a->n, b->ts, b->n * sizeof(int64));
	memcpy(a->values + a->n, b->values, b->n * sizeof(float8));
	a->n += b->n;
	PG_RETURN_POINTER(a);
}

Datum
detector_events_serialize(PG_FUNCTION_ARGS)
{
	EventsState *st = (EventsState *) PG_GETARG_POINTER(0);
	EventsHeader h;
	PackPart	parts[3];

	AggStateContext(fcinfo, EVENTS);
	h.n = st->n;
	h.sorted = st->sorted;
	h.change_point = st->change_point;
	h.size = st->size;
	h.mode = st->mode;
	h.confidence = st->confidence;
	parts[0] = (PackPart) {&h, sizeof(h)};
	parts[1] = (PackPart) {st->ts, st->n * sizeof(int64)};
	parts[2] = (PackPart) {st->values, st->n * sizeof(float8)};
	PG_RETURN_BYTEA_P(StatePack(parts, 3));
}

/* Into the current (per-tuple) memory: the combine function copies it. */
Datum
detector_events_deserialize(PG_FUNCTION_ARGS)
{
	EventsHeader h;
	Size		len;
	const char *p;
	EventsState *st;

	AggStateContext(fcinfo, EVENTS);
	p = StateUnpack(PG_GETARG_BYTEA_PP(0), &h, sizeof(h), &len, EVENTS);
	if (h.n < 0 || h.n > EVENTS_MAX_VALUES || h.size < 2 || h.size > PG_INT32_MAX ||
		h.mode < KDE_SPIKES || h.mode > KDE_SPIKES_AND_DIPS ||
		len != h.n * (sizeof(int64) + sizeof(float8)))
		elog(ERROR, "invalid serialized detector events state");
	st = events_new(CurrentMemoryContext, h.change_point != 0, (int32) h.size,
					h.confidence, (KdeMode) h.mode, h.n);
	memcpy(st->ts, p, h.n * sizeof(int64));
	memcpy(st->values, p + h.n * sizeof(int64), h.n * sizeof(float8));
	st->n = h.n;
	st->sorted = h.sorted != 0;
	PG_RETURN_POINTER(st);
}

/* a pair's place in time order: by time, then by arrival (Int64PairCmp) */
typedef struct EventOrder
{
	int64		ts;
	int64		i;
} EventOrder;

/*
 * The flagged rows, in time order, as an array of (ts, value, score,
 * p_value, martingale); an empty array when none is flagged, NULL when the
 * group had no row with a time and a value.
 */
Datum
detector_events_finalfn(PG_FUNCTION_ARGS)
{
	EventsState *st;
	EventOrder *order = NULL;
	KdeHistory *h;
	CompositeCache *rows;
	Oid			elemtype;
	Datum	   *elems = NULL;
	int64		nevents = 0,
				cap = 0,
				k;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (EventsState *) PG_GETARG_POINTER(0);
	if (st->n == 0)
		PG_RETURN_NULL();
	rows = CompositeArrayCache(fcinfo, 5, &elemtype);

	/* the final function may run again on the same state: sort a copy */
	if (!st->sorted)
	{
		order = palloc_extended(st->n * sizeof(EventOrder), MCXT_ALLOC_HUGE);
		for (k = 0; k < st->n; k++)
		{
			order[k].ts = st->ts[k];
			order[k].i = k;
		}
		qsort(order, st->n, sizeof(EventOrder), Int64PairCmp);
	}
	h = palloc(KdeHistorySize(st->size));
	KdeHistoryInit(h, st->size, st->confidence, st->mode);
	for (k = 0; k < st->n; k++)
	{
		int64		i = order ? order[k].i : k;
		float8		x = st->values[i];
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};

		if (st->change_point)
			KdeChangePointStep(h, x);
		else
			KdeSpikeStep(h, x);
		if (!h->alarm)
			continue;
		if (nevents == cap)
		{
			cap = Max(cap * 2, 16);
			if (cap > (int64) MaxArraySize)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("too many flagged rows in one detector events group"),
						 errhint("Raise the confidence, or group by more keys.")));
			elems = elems ? repalloc_huge(elems, cap * sizeof(Datum))
				: palloc_extended(cap * sizeof(Datum), MCXT_ALLOC_HUGE);
		}
		values[0] = TimestampTzGetDatum(st->ts[i]);
		values[1] = Float8GetDatum(x);
		values[2] = Float8GetDatum(h->score);
		values[3] = Float8GetDatum(h->p_value);
		values[4] = Float8GetDatum(h->martingale);
		nulls[4] = isnan(h->martingale);
		elems[nevents++] = CompositeForm(rows, values, nulls);
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, (int) nevents, elemtype, -1, false,
										  TYPALIGN_DOUBLE));
}

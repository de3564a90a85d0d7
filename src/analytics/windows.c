/*-------------------------------------------------------------------------
 * windows.c
 *		Hopping and session windows over event time.
 *
 * Tumbling windows need nothing from us: date_bin(size, ts, origin) is one.
 * hop(ts, size, slide, origin) returns the start of every window
 * [origin + k*slide, origin + k*slide + size) that contains ts, in ascending
 * order, so GROUP BY over it puts each row in size/slide windows.
 * session_id(ts, gap) is a window function: over rows ordered by ts within a
 * partition it numbers sessions from 1, starting a new one whenever a row
 * comes more than gap after the previous row.
 *
 * Both work on timestamps as microseconds; sizes must not contain months or
 * years (their length varies), as date_bin requires.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "analytics/analytics_int.h"

#include "common/int.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/timestamp.h"
#include "windowapi.h"

PG_FUNCTION_INFO_V1(hop);
PG_FUNCTION_INFO_V1(session_id);

/* An interval as microseconds; errors for months, years and non-positive. */
static int64
window_length(const Interval *iv, const char *what)
{
	int64		usecs;

	if (iv->month != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s must not contain months or years", what),
				 errdetail("Months and years have no fixed length in microseconds."),
				 errhint("Use days instead, for example '30 days'.")));
	if (pg_mul_s64_overflow((int64) iv->day, USECS_PER_DAY, &usecs) ||
		pg_add_s64_overflow(usecs, iv->time, &usecs))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("%s is out of range", what)));
	return usecs;
}

int64
PositiveWindowLength(const Interval *iv, const char *what)
{
	int64		usecs = window_length(iv, what);

	if (usecs <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive", what),
				 errhint("Give a positive interval such as '10 minutes'.")));
	return usecs;
}

/*
 * The start of the window [origin + k*width, origin + (k+1)*width) that
 * contains ts: ts minus (ts - origin) mod width, taken in [0, width).
 * Timestamps and the origin must be finite; fname names the caller in the
 * error.
 */
int64
WindowStart(int64 ts, int64 origin, int64 width, const char *fname)
{
	int64		offset;
	int64		rem;

	if (TIMESTAMP_NOT_FINITE(ts) || TIMESTAMP_NOT_FINITE(origin))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamps for %s must be finite", fname),
				 errhint("Filter out rows whose time is infinity before windowing them.")));
	if (pg_sub_s64_overflow(ts, origin, &offset))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp is too far from the origin")));
	rem = offset % width;
	if (rem < 0)
		rem += width;
	return ts - rem;
}

typedef struct HopState
{
	int64		next;			/* next window start to return */
	int64		last;			/* last window start that contains ts */
	int64		slide;
} HopState;

/*
 * hop(ts, size, slide, origin): the windows containing ts start at
 * origin + k*slide for every k with start <= ts < start + size.  The last is
 * k_last = floor((ts - origin) / slide); the first is the smallest k with
 * start > ts - size.  Works for timestamp and timestamptz alike.
 */
/* Windows one row may belong to: a slide tiny against the size is a mistake. */
#define HOP_WINDOWS_MAX	100000

Datum
hop(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	HopState   *st;

	if (SRF_IS_FIRSTCALL())
	{
		int64		ts = PG_GETARG_INT64(0);
		int64		size = PositiveWindowLength(PG_GETARG_INTERVAL_P(1), "window size");
		int64		slide = PositiveWindowLength(PG_GETARG_INTERVAL_P(2), "window slide");
		int64		origin = PG_GETARG_INT64(3);
		int64		last;
		int64		first_limit;
		int64		count;
		MemoryContext old;

		funcctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		st = palloc(sizeof(HopState));
		MemoryContextSwitchTo(old);
		funcctx->user_fctx = st;

		/* the last window containing ts starts at its tumbling window's start */
		last = WindowStart(ts, origin, slide, "hop()");

		/*
		 * Windows start at last, last - slide, ...; a start s qualifies while
		 * ts - s < size.  Their count is ceil((size - (ts - last)) / slide)
		 * when positive.
		 */
		first_limit = size - (ts - last);
		count = first_limit > 0 ? (first_limit + slide - 1) / slide : 0;
		if (count > HOP_WINDOWS_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("hop() would put each row in " INT64_FORMAT " windows, more than %d",
							count, HOP_WINDOWS_MAX),
					 errhint("Use a slide of at least size / %d.", HOP_WINDOWS_MAX)));
		st->slide = slide;
		st->last = last;
		/* windows that would start before the first timestamp are left out */
		if (count > 0 &&
			(pg_sub_s64_overflow(last, (count - 1) * slide, &st->next) || st->next < MIN_TIMESTAMP))
		{
			count = last < MIN_TIMESTAMP ? 0 : (last - MIN_TIMESTAMP) / slide + 1;
			st->next = last - (count > 0 ? (count - 1) * slide : 0);
		}
		funcctx->max_calls = (uint64) count;
	}

	funcctx = SRF_PERCALL_SETUP();
	st = (HopState *) funcctx->user_fctx;
	if (funcctx->call_cntr < funcctx->max_calls)
	{
		int64		start = st->next;

		st->next += st->slide;
		SRF_RETURN_NEXT(funcctx, Int64GetDatum(start));
	}
	SRF_RETURN_DONE(funcctx);
}

/* Per-partition state of session_id(). */
typedef struct SessionState
{
	bool		started;
	int64		prev;			/* time of the previous non-NULL row */
	int64		session;
	int64		gap;
} SessionState;

/*
 * session_id(ts, gap) OVER (PARTITION BY key ORDER BY ts).  The executor
 * calls a window function once per row, in order, so the previous row's
 * time can be kept in partition-local memory instead of being fetched.
 * Rows with a NULL time get NULL and do not end a session.
 */
Datum
session_id(PG_FUNCTION_ARGS)
{
	WindowObject winobj = PG_WINDOW_OBJECT();
	SessionState *st;
	bool		isnull;
	int64		ts;
	int64		diff;

	st = (SessionState *) WinGetPartitionLocalMemory(winobj, sizeof(SessionState));
	ts = DatumGetInt64(WinGetFuncArgCurrent(winobj, 0, &isnull));
	if (isnull)
		PG_RETURN_NULL();

	if (!st->started)
	{
		Interval   *gap;

		gap = DatumGetIntervalP(WinGetFuncArgCurrent(winobj, 1, &isnull));
		if (isnull)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("session gap must not be NULL"),
					 errhint("Give the longest pause within a session, such as '5 minutes'.")));
		st->gap = window_length(gap, "session gap");
		if (st->gap < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("session gap must not be negative"),
					 errhint("Give the longest pause within a session, such as '5 minutes'.")));
		st->started = true;
		st->session = 1;
		st->prev = ts;
		PG_RETURN_INT64(1);
	}

	if (ts < st->prev)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("session_id() needs rows in ascending time order"),
				 errdetail("A row at an earlier time followed a later one in the same partition."),
				 errhint("Add ORDER BY on the time column to the OVER clause.")));
	if (pg_sub_s64_overflow(ts, st->prev, &diff) || diff > st->gap)
		st->session++;
	st->prev = ts;
	PG_RETURN_INT64(st->session);
}

/*
 * A qsort comparator for elements that begin with two int64: by the first,
 * then by the second (an arrival index, which makes the sort stable).
 */
int
Int64PairCmp(const void *a, const void *b)
{
	const int64 *x = a;
	const int64 *y = b;

	if (x[0] != y[0])
		return x[0] < y[0] ? -1 : 1;
	return x[1] < y[1] ? -1 : (x[1] > y[1] ? 1 : 0);
}

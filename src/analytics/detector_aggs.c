/*-------------------------------------------------------------------------
 * detector_aggs.c
 *		SQL aggregates over the detectors of detectors.c.
 *
 * These wrappers only check arguments (once, on a group's first row), keep
 * the state in the aggregate's memory context, skip NULL values the way
 * PostgreSQL's own aggregates do, and turn a state into a result.  The
 * ordered detectors (ewma, ewma_chart, cusum, spike_dip, change_point,
 * robust_zscore) describe the last row they were fed: used as
 * OVER (PARTITION BY key ORDER BY ts) they give each row its verdict.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "analytics/analytics_int.h"

#include <math.h>

#include "fmgr.h"
#include "funcapi.h"
#include "port/pg_bitutils.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/typcache.h"

PG_FUNCTION_INFO_V1(threshold_count_transfn);
PG_FUNCTION_INFO_V1(threshold_count_invfn);
PG_FUNCTION_INFO_V1(outliers_transfn);
PG_FUNCTION_INFO_V1(outliers_combine);
PG_FUNCTION_INFO_V1(outliers_serialize);
PG_FUNCTION_INFO_V1(outliers_deserialize);
PG_FUNCTION_INFO_V1(outliers_finalfn);
PG_FUNCTION_INFO_V1(outlier_summary_finalfn);
PG_FUNCTION_INFO_V1(robust_zscore_transfn);
PG_FUNCTION_INFO_V1(robust_zscore_invfn);
PG_FUNCTION_INFO_V1(robust_zscore_finalfn);
PG_FUNCTION_INFO_V1(ewma_transfn);
PG_FUNCTION_INFO_V1(ewma_finalfn);
PG_FUNCTION_INFO_V1(ewma_chart_transfn);
PG_FUNCTION_INFO_V1(ewma_chart_finalfn);
PG_FUNCTION_INFO_V1(cusum_transfn);
PG_FUNCTION_INFO_V1(cusum_finalfn);
PG_FUNCTION_INFO_V1(spike_dip_transfn);
PG_FUNCTION_INFO_V1(change_point_transfn);
PG_FUNCTION_INFO_V1(kde_finalfn);

#define MAX_HISTORY_SIZE	100000

static void
bad_argument(const char *msg, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", msg),
			 errhint("%s", hint)));
}

/* A float8 argument that must be present; NULL is a bad argument. */
static float8
required_float8(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", name),
				 errhint("Pass a value for %s, or leave it out to use its default.", name)));
	return PG_GETARG_FLOAT8(argno);
}

/*
 * Aggregates cannot have default arguments, so each is declared with several
 * arities over one C function: an argument beyond PG_NARGS() takes its
 * default.
 */
static inline bool
has_arg(FunctionCallInfo fcinfo, int argno)
{
	return argno < PG_NARGS();
}

/*
 * Rows of a composite type, formed fast.  When every attribute is a
 * fixed-width by-value type (the detectors' results are float8 and bool), a
 * row is a copy of a template tuple with its values stored at their
 * offsets; a template is formed once for each pattern of nulls met (a few:
 * spike_dip's martingale, say, is always null).  heap_form_tuple per row
 * was most of the cost of returning a row from a window detector.
 */
#define COMPOSITE_MAX_FAST 8
#define COMPOSITE_SHAPES 4

typedef struct CompositeShape
{
	uint32		nullmask;		/* bit i: attribute i is null */
	Size		len;			/* of the tuple, header included */
	HeapTupleHeader template;
	int			offset[COMPOSITE_MAX_FAST]; /* from the tuple's start */
} CompositeShape;

struct CompositeCache
{
	MemoryContext cxt;			/* of the templates */
	TupleDesc	tupdesc;
	bool		fast;
	int			nshapes;
	CompositeShape shapes[COMPOSITE_SHAPES];
};

/* A cache for rows of tupdesc's type, living in cxt. */
CompositeCache *
CompositeCacheCreate(MemoryContext cxt, TupleDesc tupdesc)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	CompositeCache *cc = palloc0(sizeof(CompositeCache));
	int			i;

	cc->cxt = cxt;
	cc->tupdesc = BlessTupleDesc(CreateTupleDescCopy(tupdesc));
	cc->fast = cc->tupdesc->natts <= COMPOSITE_MAX_FAST;
	for (i = 0; i < cc->tupdesc->natts && cc->fast; i++)
	{
		Form_pg_attribute att = TupleDescAttr(cc->tupdesc, i);

		cc->fast = !att->attisdropped && att->attbyval && att->attlen > 0;
	}
	MemoryContextSwitchTo(old);
	return cc;
}

/* The template of rows with these nulls, formed the first time; NULL when full. */
static CompositeShape *
composite_shape(CompositeCache *cc, uint32 mask, bool *nulls)
{
	Datum		zeros[COMPOSITE_MAX_FAST] = {0};
	MemoryContext old;
	CompositeShape *sh;
	HeapTuple	t;
	Size		off = 0;
	int			i;

	for (i = 0; i < cc->nshapes; i++)
		if (cc->shapes[i].nullmask == mask)
			return &cc->shapes[i];
	if (cc->nshapes == COMPOSITE_SHAPES)
		return NULL;
	sh = &cc->shapes[cc->nshapes++];
	old = MemoryContextSwitchTo(cc->cxt);
	t = heap_form_tuple(cc->tupdesc, zeros, nulls);
	MemoryContextSwitchTo(old);
	sh->nullmask = mask;
	sh->len = t->t_len;
	sh->template = t->t_data;
	/* heap_fill_tuple's layout: each value present at its alignment, in order */
	for (i = 0; i < cc->tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(cc->tupdesc, i);

		if (nulls[i])
			continue;
		off = att_align_nominal(off, att->attalign);
		sh->offset[i] = sh->template->t_hoff + (int) off;
		off += att->attlen;
	}
	return sh;
}

/* A row (a composite datum, in the current memory context). */
Datum
CompositeForm(CompositeCache *cc, Datum *values, bool *nulls)
{
	CompositeShape *sh;
	HeapTupleHeader td;
	uint32		mask = 0;
	int			natts = cc->tupdesc->natts;
	int			i;

	if (!cc->fast)
		return HeapTupleGetDatum(heap_form_tuple(cc->tupdesc, values, nulls));
	for (i = 0; i < natts; i++)
		mask |= (uint32) nulls[i] << i;
	sh = composite_shape(cc, mask, nulls);
	if (sh == NULL)
		return HeapTupleGetDatum(heap_form_tuple(cc->tupdesc, values, nulls));
	td = (HeapTupleHeader) palloc(sh->len);
	memcpy(td, sh->template, sh->len);
	for (i = 0; i < natts; i++)
		if (!nulls[i])
			store_att_byval((char *) td + sh->offset[i], values[i],
							TupleDescAttr(cc->tupdesc, i)->attlen);
	return PointerGetDatum(td);
}

/*
 * For a function returning an array of a composite type of natts
 * attributes: a cache for its elements and the element type, kept per call
 * site.
 */
CompositeCache *
CompositeArrayCache(FunctionCallInfo fcinfo, int natts, Oid *elemtype)
{
	typedef struct ArrayCache
	{
		Oid			elemtype;
		CompositeCache *rows;
	}			ArrayCache;
	ArrayCache *t = (ArrayCache *) fcinfo->flinfo->fn_extra;

	if (t == NULL)
	{
		Oid			elem = get_element_type(get_func_rettype(fcinfo->flinfo->fn_oid));
		TupleDesc	tupdesc;

		if (!OidIsValid(elem))
			elog(ERROR, "function must return an array of rows");
		tupdesc = lookup_rowtype_tupdesc(elem, -1);
		if (tupdesc->natts != natts)
			elog(ERROR, "the result's row type must have %d attributes", natts);
		t = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(ArrayCache));
		t->elemtype = elem;
		t->rows = CompositeCacheCreate(fcinfo->flinfo->fn_mcxt, tupdesc);
		ReleaseTupleDesc(tupdesc);
		fcinfo->flinfo->fn_extra = t;
	}
	*elemtype = t->elemtype;
	return t->rows;
}

/* A row of the function's result type, whose cache is kept per call site. */
static Datum
composite_result(FunctionCallInfo fcinfo, Datum *values, bool *nulls)
{
	CompositeCache *cc = (CompositeCache *) fcinfo->flinfo->fn_extra;

	if (cc == NULL)
	{
		TupleDesc	tupdesc;

		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		cc = CompositeCacheCreate(fcinfo->flinfo->fn_mcxt, tupdesc);
		fcinfo->flinfo->fn_extra = cc;
	}
	return CompositeForm(cc, values, nulls);
}

/* ---- threshold_count(value, threshold): strict, int8 state ---- */

Datum
threshold_count_transfn(PG_FUNCTION_ARGS)
{
	int64		n = PG_GETARG_INT64(0);

	PG_RETURN_INT64(n + (PG_GETARG_FLOAT8(1) > PG_GETARG_FLOAT8(2) ? 1 : 0));
}

Datum
threshold_count_invfn(PG_FUNCTION_ARGS)
{
	int64		n = PG_GETARG_INT64(0);

	PG_RETURN_INT64(n - (PG_GETARG_FLOAT8(1) > PG_GETARG_FLOAT8(2) ? 1 : 0));
}

/* ---- outliers(value, k): values kept for the final pass ---- */

/*
 * The state is one allocation, a 16-byte header followed by the values, and
 * its size is always the smallest power of two (PostgreSQL's chunk sizes) of
 * at least 64 bytes that holds them: a window of 20 values is one 256-byte
 * chunk, and its capacity follows from n alone.  Serializing it for a
 * parallel plan is one memcpy.
 */
typedef struct OutliersState
{
	float8		k;
	int64		n;
	float8		values[FLEXIBLE_ARRAY_MEMBER];
} OutliersState;

#define OUTLIERS_HEADER		offsetof(OutliersState, values)
#define OUTLIERS_MIN_SIZE	64
#define OUTLIERS_MAX_VALUES \
	((int64) ((MaxAllocHugeSize / 2 - OUTLIERS_HEADER) / sizeof(float8)))

static Size
outliers_size(int64 n)
{
	if (n > OUTLIERS_MAX_VALUES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many values in one outliers() group"),
				 errhint("Group by a shorter window or by more keys.")));
	return Max(OUTLIERS_MIN_SIZE,
			   pg_nextpower2_64(OUTLIERS_HEADER + n * sizeof(float8)));
}

/* A state that holds no value yet but has room for n. */
static OutliersState *
outliers_new(MemoryContext cxt, float8 k, int64 n)
{
	OutliersState *st = MemoryContextAllocExtended(cxt, outliers_size(n),
												   MCXT_ALLOC_HUGE);

	st->k = k;
	st->n = 0;
	return st;
}

/* Room for `more` values, by doubling; the state may move. */
static inline OutliersState *
outliers_reserve(OutliersState *st, int64 more)
{
	Size		size = outliers_size(st->n + more);

	if (size == outliers_size(st->n))
		return st;
	return repalloc_huge(st, size);
}

Datum
outliers_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggctx = AggStateContext(fcinfo, "outliers_transfn");
	OutliersState *st = PG_ARGISNULL(0) ? NULL : (OutliersState *) PG_GETARG_POINTER(0);
	int64		n;

	if (PG_ARGISNULL(1))
	{
		if (st == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(st);
	}
	if (st == NULL)
	{
		float8		k = required_float8(fcinfo, 2, "k");

		if (!(k > 0.0) || isinf(k))
			bad_argument("k must be a positive number of standard deviations",
						 "Use 3 to count values beyond mean +/- 3 standard deviations.");
		st = outliers_new(aggctx, k, 0);
	}
	n = st->n;
	/* full when n + header/8 reaches a power of two (6, 14, 30, ... values) */
	if (unlikely(n >= 6 && ((n + 2) & (n + 1)) == 0))
		st = outliers_reserve(st, 1);
	st->values[n] = PG_GETARG_FLOAT8(1);
	st->n = n + 1;
	PG_RETURN_POINTER(st);
}

/*
 * b comes from outliers_deserialize (short-lived memory) or from another
 * aggregate's state: it is copied, never kept.
 */
Datum
outliers_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggctx = AggStateContext(fcinfo, "outliers_combine");
	OutliersState *a = PG_ARGISNULL(0) ? NULL : (OutliersState *) PG_GETARG_POINTER(0);
	OutliersState *b = PG_ARGISNULL(1) ? NULL : (OutliersState *) PG_GETARG_POINTER(1);

	if (b == NULL)
	{
		if (a == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(a);
	}
	if (a == NULL)
		a = outliers_new(aggctx, b->k, b->n);
	else
		a = outliers_reserve(a, b->n);
	memcpy(a->values + a->n, b->values, b->n * sizeof(float8));
	a->n += b->n;
	PG_RETURN_POINTER(a);
}

/* The header and the values as they are in memory (same server, same byte order). */
Datum
outliers_serialize(PG_FUNCTION_ARGS)
{
	OutliersState *st = (OutliersState *) PG_GETARG_POINTER(0);
	Size		len = OUTLIERS_HEADER + st->n * sizeof(float8);
	bytea	   *b;

	AggStateContext(fcinfo, "outliers_serialize");
	b = palloc_extended(VARHDRSZ + len, MCXT_ALLOC_HUGE);
	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), st, len);
	PG_RETURN_BYTEA_P(b);
}

/* Into the current (per-tuple) memory: outliers_combine copies what it keeps. */
Datum
outliers_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	Size		len = VARSIZE_ANY_EXHDR(b);
	OutliersState *st;

	AggStateContext(fcinfo, "outliers_deserialize");
	if (len < OUTLIERS_HEADER || (len - OUTLIERS_HEADER) % sizeof(float8) != 0)
		elog(ERROR, "invalid serialized outliers state");
	st = palloc_extended(len, MCXT_ALLOC_HUGE);
	memcpy(st, VARDATA_ANY(b), len);
	if (st->n != (int64) ((len - OUTLIERS_HEADER) / sizeof(float8)) || !(st->k > 0.0))
		elog(ERROR, "invalid serialized outliers state");
	PG_RETURN_POINTER(st);
}

/*
 * Summarizes n values (a state's, or a window's): s gets n, the sum, the squared deviations, min and max
 * exactly as stats_agg over the same values in the same order would (the
 * mean and standard deviation of the two agree to the last bit in a serial
 * plan), and the result is the number of values with |x - mean| > k * (sample
 * standard deviation), 0 below 2 values.
 */
static int64
OutliersSummarize(const float8 *v, int64 n, float8 k, StatsState *s)
{
	int64		i,
				count = 0;
	float8		sx,
				sxx,
				min,
				max,
				mean,
				limit;

	StatsInit(s);
	if (n == 0)
		return 0;

	/*
	 * The sum and the squared deviations as StatsAdd (and so PostgreSQL's
	 * float8_accum) builds them, without its per-value checks; StatsAdd
	 * itself runs only when something is not finite, for its NaN and
	 * overflow rules.
	 */
	sx = 0.0 + v[0];
	sxx = 0.0;
	for (i = 1; i < n; i++)
	{
		float8		m = (float8) (i + 1);
		float8		tmp;

		sx += v[i];
		tmp = v[i] * m - sx;
		sxx += tmp * tmp / (m * (float8) i);
	}
	if (unlikely(!isfinite(sx) || !isfinite(sxx)))
	{
		for (i = 0; i < n; i++)
			StatsAdd(s, v[i]);
		sx = s->sx;
		sxx = s->sxx;
	}
	else
	{
		/* all finite: no NaN to order; strict, as StatsAdd (-0 and 0 too) */
		min = max = v[0];
		for (i = 1; i < n; i++)
		{
			if (v[i] < min)
				min = v[i];
			if (v[i] > max)
				max = v[i];
		}
		s->n = n;
		s->sx = sx;
		s->sxx = sxx;
		s->min = min;
		s->max = max;
	}
	if (n < 2)
		return 0;
	mean = sx / (float8) n;
	limit = k * sqrt(sxx / ((float8) n - 1.0));
	for (i = 0; i < n; i++)
		count += fabs(v[i] - mean) > limit;
	return count;
}

/* The number of values with |x - mean| > k * (sample standard deviation). */
Datum
outliers_finalfn(PG_FUNCTION_ARGS)
{
	StatsState	s;
	OutliersState *st;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (OutliersState *) PG_GETARG_POINTER(0);
	PG_RETURN_INT64(OutliersSummarize(st->values, st->n, st->k, &s));
}

/*
 * outlier_summary(value, k): the same state as outliers(value, k), so one
 * pass and one state per group give what stats_agg and outliers give
 * together: (n, mean, stddev, min, max, outliers).
 */
Datum
outlier_summary_finalfn(PG_FUNCTION_ARGS)
{
	OutliersState *st;
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (OutliersState *) PG_GETARG_POINTER(0);
	if (OutlierSummaryRow(st->values, st->n, st->k, values, nulls) == 0)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(composite_result(fcinfo, values, nulls));
}

/*
 * outlier_summary's row over n values: (n, mean, stddev, min, max,
 * outliers) into values and nulls (stddev is null below 2 values).
 * Returns n.
 */
int64
OutlierSummaryRow(const float8 *v, int64 n, float8 k, Datum *values, bool *nulls)
{
	StatsState	s;
	int64		count = OutliersSummarize(v, n, k, &s);

	values[0] = Int64GetDatum(s.n);
	values[1] = Float8GetDatum(StatsMean(&s));
	nulls[2] = s.n < 2;
	values[2] = nulls[2] ? (Datum) 0 : Float8GetDatum(sqrt(StatsVariance(&s, true)));
	values[3] = Float8GetDatum(s.min);
	values[4] = Float8GetDatum(s.max);
	values[5] = Int64GetDatum(count);
	return s.n;
}

/* ---- robust_zscore(value, threshold): a deque of the frame's values ---- */

typedef struct RobustState
{
	float8		threshold;
	int			head;			/* ring position of the oldest value */
	int			n;
	int			cap;
	float8	   *ring;
	float8	   *scratch;
	float8		last;			/* the newest value */
} RobustState;

static void
robust_grow(RobustState *st, MemoryContext cxt)
{
	int			cap = st->cap * 2;
	float8	   *ring = MemoryContextAlloc(cxt, cap * sizeof(float8));
	int			i;

	if ((Size) cap * sizeof(float8) > MaxAllocSize / 2)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many values in one robust_zscore() frame"),
				 errhint("Use a frame such as ROWS BETWEEN 100 PRECEDING AND CURRENT ROW.")));
	for (i = 0; i < st->n; i++)
		ring[i] = st->ring[(st->head + i) % st->cap];
	pfree(st->ring);
	pfree(st->scratch);
	st->ring = ring;
	st->scratch = MemoryContextAlloc(cxt, cap * sizeof(float8));
	st->head = 0;
	st->cap = cap;
}

Datum
robust_zscore_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggctx = AggStateContext(fcinfo, "robust_zscore_transfn");
	RobustState *st = PG_ARGISNULL(0) ? NULL : (RobustState *) PG_GETARG_POINTER(0);

	if (st == NULL)
	{
		float8		threshold = has_arg(fcinfo, 2) ?
			required_float8(fcinfo, 2, "threshold") : 3.5;

		if (!(threshold > 0.0))
			bad_argument("threshold must be positive",
						 "The usual threshold for the modified z-score is 3.5.");
		st = MemoryContextAllocZero(aggctx, sizeof(RobustState));
		st->threshold = threshold;
		st->cap = 16;
		st->ring = MemoryContextAlloc(aggctx, st->cap * sizeof(float8));
		st->scratch = MemoryContextAlloc(aggctx, st->cap * sizeof(float8));
	}
	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(st);
	if (st->n == st->cap)
		robust_grow(st, aggctx);
	st->last = PG_GETARG_FLOAT8(1);
	st->ring[(st->head + st->n) % st->cap] = st->last;
	st->n++;
	PG_RETURN_POINTER(st);
}

/* Rows leave a moving frame in the order they entered it. */
Datum
robust_zscore_invfn(PG_FUNCTION_ARGS)
{
	RobustState *st = PG_ARGISNULL(0) ? NULL : (RobustState *) PG_GETARG_POINTER(0);

	AggStateContext(fcinfo, "robust_zscore_invfn");
	if (st == NULL)
		PG_RETURN_NULL();
	if (!PG_ARGISNULL(1) && st->n > 0)
	{
		st->head = (st->head + 1) % st->cap;
		st->n--;
	}
	PG_RETURN_POINTER(st);
}

/* (score, median, mad, is_anomaly) of the newest value in the frame. */
Datum
robust_zscore_finalfn(PG_FUNCTION_ARGS)
{
	RobustState *st = PG_ARGISNULL(0) ? NULL : (RobustState *) PG_GETARG_POINTER(0);
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	float8		score,
				median,
				mad;
	int			i;

	if (st == NULL || st->n == 0)
		PG_RETURN_NULL();
	for (i = 0; i < st->n; i++)
		st->scratch[i] = st->ring[(st->head + i) % st->cap];
	score = RobustZscore(st->scratch, st->n, st->last, &median, &mad);
	values[0] = Float8GetDatum(score);
	values[1] = Float8GetDatum(median);
	values[2] = Float8GetDatum(mad);
	values[3] = BoolGetDatum(fabs(score) > st->threshold);
	PG_RETURN_DATUM(composite_result(fcinfo, values, nulls));
}

/* ---- ewma(value, alpha) ---- */

typedef struct EwmaAggState
{
	float8		alpha;
	EwmaState	ewma;
} EwmaAggState;

Datum
ewma_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggctx = AggStateContext(fcinfo, "ewma_transfn");
	EwmaAggState *st = PG_ARGISNULL(0) ? NULL : (EwmaAggState *) PG_GETARG_POINTER(0);

	if (st == NULL)
	{
		float8		alpha = required_float8(fcinfo, 2, "alpha");

		if (!(alpha > 0.0 && alpha <= 1.0))
			bad_argument("alpha must be in (0, 1]",
						 "alpha is the weight of the newest value; 0.2 is a common choice.");
		st = MemoryContextAllocZero(aggctx, sizeof(EwmaAggState));
		st->alpha = alpha;
	}
	if (!PG_ARGISNULL(1))
		EwmaStep(&st->ewma, st->alpha, PG_GETARG_FLOAT8(1));
	PG_RETURN_POINTER(st);
}

Datum
ewma_finalfn(PG_FUNCTION_ARGS)
{
	EwmaAggState *st = PG_ARGISNULL(0) ? NULL : (EwmaAggState *) PG_GETARG_POINTER(0);

	if (st == NULL || st->ewma.n == 0)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(st->ewma.value);
}

/* ---- ewma_chart(value, lambda, l, mu, sigma, warmup) ---- */

Datum
ewma_chart_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggctx = AggStateContext(fcinfo, "ewma_chart_transfn");
	EwmaChartState *st = PG_ARGISNULL(0) ? NULL : (EwmaChartState *) PG_GETARG_POINTER(0);

	if (st == NULL)
	{
		float8		lambda = has_arg(fcinfo, 2) ?
			required_float8(fcinfo, 2, "lambda") : 0.2;
		float8		L = has_arg(fcinfo, 3) ? required_float8(fcinfo, 3, "l") : 3.0;
		bool		have_mu = has_arg(fcinfo, 4) && !PG_ARGISNULL(4);
		bool		have_sigma = has_arg(fcinfo, 5) && !PG_ARGISNULL(5);
		int32		warmup = 20;

		if (!(lambda > 0.0 && lambda <= 1.0))
			bad_argument("lambda must be in (0, 1]",
						 "lambda is the weight of the newest value; 0.2 is the usual choice.");
		if (!(L > 0.0) || isinf(L))
			bad_argument("l must be a positive number of standard deviations",
						 "3 is the usual width of the control limits.");
		if (have_mu != have_sigma)
			bad_argument("mu and sigma must be given together",
						 "Give both the in-control mean and standard deviation, or neither to estimate them from the first warmup values.");
		if (have_sigma && !(PG_GETARG_FLOAT8(5) > 0.0))
			bad_argument("sigma must be positive",
						 "sigma is the in-control standard deviation of the values.");
		if (has_arg(fcinfo, 6))
		{
			if (PG_ARGISNULL(6))
				bad_argument("warmup must not be NULL",
							 "Leave warmup out to use its default of 20 values.");
			warmup = PG_GETARG_INT32(6);
		}
		if (!have_mu && warmup < 2)
			bad_argument("warmup must be at least 2",
						 "mu and sigma are estimated from the first warmup values; 20 or more is sensible.");
		st = MemoryContextAlloc(aggctx, sizeof(EwmaChartState));
		EwmaChartInit(st, lambda, L, have_mu,
					  have_mu ? PG_GETARG_FLOAT8(4) : 0.0,
					  have_sigma ? PG_GETARG_FLOAT8(5) : 0.0, warmup);
	}
	if (!PG_ARGISNULL(1))
		EwmaChartStep(st, PG_GETARG_FLOAT8(1));
	PG_RETURN_POINTER(st);
}

/* (ewma, lower, upper, is_anomaly); NULL limits while warming up. */
Datum
ewma_chart_finalfn(PG_FUNCTION_ARGS)
{
	EwmaChartState *st = PG_ARGISNULL(0) ? NULL : (EwmaChartState *) PG_GETARG_POINTER(0);
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (st == NULL)
		PG_RETURN_NULL();
	if (st->t == 0)
	{
		if (st->warm.n == 0 && st->estimate)
			PG_RETURN_NULL();
		nulls[0] = nulls[1] = nulls[2] = true;
	}
	values[0] = Float8GetDatum(st->z);
	values[1] = Float8GetDatum(st->lower);
	values[2] = Float8GetDatum(st->upper);
	values[3] = BoolGetDatum(st->alarm);
	PG_RETURN_DATUM(composite_result(fcinfo, values, nulls));
}

/* ---- cusum(value, target, k, h) ---- */

typedef struct CusumAggState
{
	float8		target;
	float8		k;
	float8		h;
	int64		n;
	CusumState	cusum;
} CusumAggState;

Datum
cusum_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggctx = AggStateContext(fcinfo, "cusum_transfn");
	CusumAggState *st = PG_ARGISNULL(0) ? NULL : (CusumAggState *) PG_GETARG_POINTER(0);

	if (st == NULL)
	{
		float8		target = required_float8(fcinfo, 2, "target");
		float8		k = required_float8(fcinfo, 3, "k");
		float8		h = required_float8(fcinfo, 4, "h");

		if (!isfinite(target))
			bad_argument("target must be finite", "target is the in-control mean of the values.");
		if (!(k >= 0.0) || isinf(k))
			bad_argument("k must not be negative",
						 "k is the slack per value, usually half the shift to detect.");
		if (!(h > 0.0) || isinf(h))
			bad_argument("h must be positive",
						 "h is the decision limit, often 4 or 5 standard deviations.");
		st = MemoryContextAllocZero(aggctx, sizeof(CusumAggState));
		st->target = target;
		st->k = k;
		st->h = h;
	}
	if (!PG_ARGISNULL(1))
	{
		CusumStep(&st->cusum, PG_GETARG_FLOAT8(1), st->target, st->k, st->h);
		st->n++;
	}
	PG_RETURN_POINTER(st);
}

/* (upper, lower, is_anomaly) */
Datum
cusum_finalfn(PG_FUNCTION_ARGS)
{
	CusumAggState *st = PG_ARGISNULL(0) ? NULL : (CusumAggState *) PG_GETARG_POINTER(0);
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (st == NULL || st->n == 0)
		PG_RETURN_NULL();
	values[0] = Float8GetDatum(st->cusum.hi);
	values[1] = Float8GetDatum(st->cusum.lo);
	values[2] = BoolGetDatum(st->cusum.alarm);
	PG_RETURN_DATUM(composite_result(fcinfo, values, nulls));
}

/* ---- spike_dip(value, confidence, history_size, mode), change_point ---- */

static KdeMode
kde_mode(text *t)
{
	char	   *s = text_to_cstring(t);

	if (pg_strcasecmp(s, "spikes") == 0)
		return KDE_SPIKES;
	if (pg_strcasecmp(s, "dips") == 0)
		return KDE_DIPS;
	if (pg_strcasecmp(s, "spikesanddips") == 0)
		return KDE_SPIKES_AND_DIPS;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown spike_dip mode \"%s\"", s),
			 errhint("Use 'spikes', 'dips' or 'spikesanddips'.")));
	return KDE_SPIKES_AND_DIPS;		/* keep the compiler quiet */
}

/*
 * An empty history in cxt from the arguments confidence (argument arg),
 * history_size (arg + 1) and, for a spike detector, mode (arg + 2, where
 * the arity has it; two-sided otherwise), all checked.
 */
KdeHistory *
KdeHistoryFromArgs(FunctionCallInfo fcinfo, MemoryContext cxt, int arg, bool spikes)
{
	float8		confidence = required_float8(fcinfo, arg, "confidence");
	KdeMode		mode = KDE_SPIKES_AND_DIPS;
	int32		size;
	KdeHistory *h;

	if (!(confidence >= 1.0 && confidence <= 100.0))
		bad_argument("confidence must be between 1 and 100",
					 "confidence is a percentage; 95 flags values with a p-value of 0.05 or less.");
	if (PG_ARGISNULL(arg + 1))
		bad_argument("history_size must not be NULL",
					 "history_size is the number of past values each one is compared with, such as 100.");
	size = PG_GETARG_INT32(arg + 1);
	if (size < 2 || size > MAX_HISTORY_SIZE)
		bad_argument("history_size must be between 2 and 100000",
					 "history_size is the number of past values each one is compared with, such as 100.");
	if (spikes && has_arg(fcinfo, arg + 2))
	{
		if (PG_ARGISNULL(arg + 2))
			bad_argument("mode must not be NULL", "Use 'spikes', 'dips' or 'spikesanddips'.");
		mode = kde_mode(PG_GETARG_TEXT_PP(arg + 2));
	}
	h = MemoryContextAlloc(cxt, KdeHistorySize(size));
	KdeHistoryInit(h, size, confidence, mode);
	return h;
}

Datum
spike_dip_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggctx = AggStateContext(fcinfo, "spike_dip_transfn");
	KdeHistory *h = PG_ARGISNULL(0) ? NULL : (KdeHistory *) PG_GETARG_POINTER(0);

	if (h == NULL)
		h = KdeHistoryFromArgs(fcinfo, aggctx, 2, true);
	if (!PG_ARGISNULL(1))
		KdeSpikeStep(h, PG_GETARG_FLOAT8(1));
	PG_RETURN_POINTER(h);
}

Datum
change_point_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggctx = AggStateContext(fcinfo, "change_point_transfn");
	KdeHistory *h = PG_ARGISNULL(0) ? NULL : (KdeHistory *) PG_GETARG_POINTER(0);

	if (h == NULL)
		h = KdeHistoryFromArgs(fcinfo, aggctx, 2, false);
	if (!PG_ARGISNULL(1))
		KdeChangePointStep(h, PG_GETARG_FLOAT8(1));
	PG_RETURN_POINTER(h);
}

/* (score, p_value, martingale, is_anomaly) of the last value fed. */
Datum
kde_finalfn(PG_FUNCTION_ARGS)
{
	KdeHistory *h = PG_ARGISNULL(0) ? NULL : (KdeHistory *) PG_GETARG_POINTER(0);
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (h == NULL || h->nvalues == 0)
		PG_RETURN_NULL();
	values[0] = Float8GetDatum(h->score);
	values[1] = Float8GetDatum(h->p_value);
	values[2] = Float8GetDatum(h->martingale);
	nulls[2] = isnan(h->martingale);
	values[3] = BoolGetDatum(h->alarm);
	PG_RETURN_DATUM(composite_result(fcinfo, values, nulls));
}

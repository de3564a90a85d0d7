/*-------------------------------------------------------------------------
 * stats.c
 *		Mergeable summary statistics: the iotstream.stats type, stats_agg,
 *		rollup and the accessors.
 *
 * A StatsState is (n, sum, sxx, min, max), updated the way PostgreSQL's
 * float8 aggregates update theirs (Youngs-Cramer), so that stats_agg agrees
 * with avg/stddev_samp/var_samp on the same rows to the last bit in a serial
 * plan, and merges with the same formula as float8_combine in a parallel one.
 *
 * The one invariant: a state is either empty (n = 0, sum = sxx = 0,
 * min = +Infinity, max = -Infinity) or describes n >= 1 values with
 * min <= max (NaN sorts above every number, as in float8 comparisons).
 *
 * The inverse transition (StatsRemove) undoes an addition exactly for n, sum
 * and sxx.  It cannot know the new minimum after the minimum leaves the
 * frame, so it declines (returns false, and the SQL function NULL) whenever
 * the value leaving is an extreme or not finite: PostgreSQL then recomputes
 * that frame from scratch.  min and max are therefore always exact; a moving
 * window costs O(1) per row except when its extreme leaves it.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "analytics/analytics.h"

#include <math.h>

#include "common/shortest_dec.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/float.h"

PG_FUNCTION_INFO_V1(stats_in);
PG_FUNCTION_INFO_V1(stats_out);
PG_FUNCTION_INFO_V1(stats_recv);
PG_FUNCTION_INFO_V1(stats_send);
PG_FUNCTION_INFO_V1(stats_agg_transfn);
PG_FUNCTION_INFO_V1(stats_agg_invfn);
PG_FUNCTION_INFO_V1(stats_combine);
PG_FUNCTION_INFO_V1(stats_agg_finalfn);
PG_FUNCTION_INFO_V1(stats_count);
PG_FUNCTION_INFO_V1(stats_mean);
PG_FUNCTION_INFO_V1(stats_stddev_samp);
PG_FUNCTION_INFO_V1(stats_stddev_pop);
PG_FUNCTION_INFO_V1(stats_var_samp);
PG_FUNCTION_INFO_V1(stats_var_pop);
PG_FUNCTION_INFO_V1(stats_min);
PG_FUNCTION_INFO_V1(stats_max);
PG_FUNCTION_INFO_V1(stats_zscore);

/* float8 ordering: NaN is above everything, including +Infinity. */
static inline bool
float8_below(float8 a, float8 b)
{
	if (isnan(a))
		return false;
	return isnan(b) || a < b;
}

void
StatsInit(StatsState *s)
{
	s->n = 0;
	s->sx = 0.0;
	s->sxx = 0.0;
	s->min = get_float8_infinity();
	s->max = -get_float8_infinity();
}

void
StatsAdd(StatsState *s, float8 x)
{
	float8		n_old = (float8) s->n;
	float8		n = n_old + 1.0;
	float8		sx = s->sx + x;
	float8		sxx = s->sxx;

	if (s->n > 0)
	{
		float8		tmp = x * n - sx;

		sxx += tmp * tmp / (n * n_old);
		if (isinf(sx) || isinf(sxx))
		{
			/* an overflow from finite inputs is an error, as in float8_accum */
			if (!isinf(s->sx) && !isinf(x))
				float_overflow_error();
			sxx = get_float8_nan();
		}
		if (float8_below(x, s->min))
			s->min = x;
		if (float8_below(s->max, x))
			s->max = x;
	}
	else
	{
		/* a lone Inf or NaN must not report a variance of zero */
		if (isnan(x) || isinf(x))
			sxx = get_float8_nan();
		s->min = x;
		s->max = x;
	}
	s->n++;
	s->sx = sx;
	s->sxx = sxx;
}

/*
 * Undo StatsAdd(s, x) for a value x that was added earlier.  Returns false,
 * leaving s unchanged, when the result could not be exact: x is an extreme
 * of s (the next extreme is unknown) or something is not finite.
 */
bool
StatsRemove(StatsState *s, float8 x)
{
	float8		n,
				tmp;

	if (s->n <= 0)
		return false;
	if (s->n == 1)
	{
		StatsInit(s);
		return true;
	}
	if (!isfinite(x) || !isfinite(s->sx) || !isfinite(s->sxx))
		return false;
	if (!(x > s->min && x < s->max))
		return false;

	n = (float8) s->n;
	tmp = x * n - s->sx;
	s->sxx -= tmp * tmp / (n * (n - 1.0));
	if (s->sxx < 0.0)
		s->sxx = 0.0;			/* rounding */
	s->sx -= x;
	s->n--;
	return true;
}

void
StatsMerge(StatsState *into, const StatsState *from)
{
	float8		n1,
				n2,
				n,
				sx,
				tmp;

	if (from->n == 0)
		return;
	if (into->n == 0)
	{
		*into = *from;
		return;
	}
	n1 = (float8) into->n;
	n2 = (float8) from->n;
	n = n1 + n2;
	sx = into->sx + from->sx;
	if (isinf(sx) && isfinite(into->sx) && isfinite(from->sx))
		float_overflow_error();
	tmp = into->sx / n1 - from->sx / n2;
	into->sxx = into->sxx + from->sxx + n1 * n2 * tmp * tmp / n;
	if (isinf(into->sxx))
	{
		if (isfinite(from->sxx) && isfinite(tmp))
			float_overflow_error();
		into->sxx = get_float8_nan();
	}
	into->sx = sx;
	into->n += from->n;
	if (float8_below(from->min, into->min))
		into->min = from->min;
	if (float8_below(into->max, from->max))
		into->max = from->max;
}

float8
StatsMean(const StatsState *s)
{
	return s->sx / (float8) s->n;
}

/* Sample (n - 1) or population (n) variance; the caller checks n. */
float8
StatsVariance(const StatsState *s, bool sample)
{
	return s->sxx / ((float8) s->n - (sample ? 1.0 : 0.0));
}

/* Checks a state that comes from outside: text, binary or a bad caller. */
static void
stats_validate(const StatsState *s)
{
	bool		ok;

	if (s->n == 0)
		ok = s->sx == 0.0 && s->sxx == 0.0 &&
			isinf(s->min) && s->min > 0 && isinf(s->max) && s->max < 0;
	else
		ok = s->n > 0 && (isnan(s->sxx) || s->sxx >= 0.0) &&
			!float8_below(s->max, s->min);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid iotstream.stats value"),
				 errdetail("A stats value needs n >= 0, sxx >= 0 and min <= max; an empty one has n:0,sum:0,sxx:0,min:Infinity,max:-Infinity."),
				 errhint("Build stats values with iotstream.stats_agg() rather than by hand.")));
}

static char *
stats_expect(char *p, const char *label, const char *orig)
{
	size_t		len = strlen(label);

	while (*p == ' ')
		p++;
	if (strncmp(p, label, len) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type iotstream.stats: \"%s\"", orig),
				 errdetail("Expected \"%s\" at \"%s\".", label, p),
				 errhint("The text form is (n:N,sum:S,sxx:Q,min:A,max:B).")));
	return p + len;
}

Datum
stats_in(PG_FUNCTION_ARGS)
{
	char	   *str = PG_GETARG_CSTRING(0);
	StatsState *s = palloc(sizeof(StatsState));
	char	   *p = str;
	char	   *end;
	long long	n;

	p = stats_expect(p, "(n:", str);
	errno = 0;
	n = strtoll(p, &end, 10);
	if (end == p || errno != 0)
		(void) stats_expect(p, "a count", str);
	s->n = (int64) n;
	p = stats_expect(end, ",sum:", str);
	s->sx = float8in_internal(p, &p, "iotstream.stats", str);
	p = stats_expect(p, ",sxx:", str);
	s->sxx = float8in_internal(p, &p, "iotstream.stats", str);
	p = stats_expect(p, ",min:", str);
	s->min = float8in_internal(p, &p, "iotstream.stats", str);
	p = stats_expect(p, ",max:", str);
	s->max = float8in_internal(p, &p, "iotstream.stats", str);
	p = stats_expect(p, ")", str);
	while (*p == ' ')
		p++;
	if (*p != '\0')
		(void) stats_expect(p, "the end", str);
	stats_validate(s);
	PG_RETURN_POINTER(s);
}

/* Shortest text that reads back to the same double, whatever the GUCs. */
static void
append_float8(StringInfo buf, float8 v)
{
	char		tmp[32];

	double_to_shortest_decimal_buf(v, tmp);
	appendStringInfoString(buf, tmp);
}

Datum
stats_out(PG_FUNCTION_ARGS)
{
	StatsState *s = (StatsState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "(n:" INT64_FORMAT ",sum:", s->n);
	append_float8(&buf, s->sx);
	appendStringInfoString(&buf, ",sxx:");
	append_float8(&buf, s->sxx);
	appendStringInfoString(&buf, ",min:");
	append_float8(&buf, s->min);
	appendStringInfoString(&buf, ",max:");
	append_float8(&buf, s->max);
	appendStringInfoChar(&buf, ')');
	PG_RETURN_CSTRING(buf.data);
}

Datum
stats_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	StatsState *s = palloc(sizeof(StatsState));

	s->n = pq_getmsgint64(buf);
	s->sx = pq_getmsgfloat8(buf);
	s->sxx = pq_getmsgfloat8(buf);
	s->min = pq_getmsgfloat8(buf);
	s->max = pq_getmsgfloat8(buf);
	stats_validate(s);
	PG_RETURN_POINTER(s);
}

Datum
stats_send(PG_FUNCTION_ARGS)
{
	StatsState *s = (StatsState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint64(&buf, s->n);
	pq_sendfloat8(&buf, s->sx);
	pq_sendfloat8(&buf, s->sxx);
	pq_sendfloat8(&buf, s->min);
	pq_sendfloat8(&buf, s->max);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/*
 * The state argument of a transition function: modified in place inside an
 * aggregate (the executor owns that copy), copied otherwise.
 */
static StatsState *
stats_state_arg(FunctionCallInfo fcinfo)
{
	StatsState *s = (StatsState *) PG_GETARG_POINTER(0);
	StatsState *copy;

	if (AggCheckCallContext(fcinfo, NULL))
		return s;
	copy = palloc(sizeof(StatsState));
	*copy = *s;
	return copy;
}

/* stats_agg(float8): strict, so NULL values never reach it. */
Datum
stats_agg_transfn(PG_FUNCTION_ARGS)
{
	StatsState *s = stats_state_arg(fcinfo);

	StatsAdd(s, PG_GETARG_FLOAT8(1));
	PG_RETURN_POINTER(s);
}

/* Returns NULL when it cannot be exact: PostgreSQL recomputes the frame. */
Datum
stats_agg_invfn(PG_FUNCTION_ARGS)
{
	StatsState *s = stats_state_arg(fcinfo);

	if (!StatsRemove(s, PG_GETARG_FLOAT8(1)))
		PG_RETURN_NULL();
	PG_RETURN_POINTER(s);
}

/* Combine function of stats_agg and transition function of rollup. */
Datum
stats_combine(PG_FUNCTION_ARGS)
{
	StatsState *s = stats_state_arg(fcinfo);
	StatsState *other = (StatsState *) PG_GETARG_POINTER(1);

	StatsMerge(s, other);
	PG_RETURN_POINTER(s);
}

/* Like avg() and friends, an aggregate over no values is NULL. */
Datum
stats_agg_finalfn(PG_FUNCTION_ARGS)
{
	StatsState *s;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = (StatsState *) PG_GETARG_POINTER(0);
	if (s->n == 0)
		PG_RETURN_NULL();
	PG_RETURN_POINTER(s);
}

#define STATS_ARG() ((const StatsState *) PG_GETARG_POINTER(0))

Datum
stats_count(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(STATS_ARG()->n);
}

Datum
stats_mean(PG_FUNCTION_ARGS)
{
	const StatsState *s = STATS_ARG();

	if (s->n == 0)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(StatsMean(s));
}

Datum
stats_var_samp(PG_FUNCTION_ARGS)
{
	const StatsState *s = STATS_ARG();

	if (s->n <= 1)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(StatsVariance(s, true));
}

Datum
stats_var_pop(PG_FUNCTION_ARGS)
{
	const StatsState *s = STATS_ARG();

	if (s->n == 0)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(StatsVariance(s, false));
}

Datum
stats_stddev_samp(PG_FUNCTION_ARGS)
{
	const StatsState *s = STATS_ARG();

	if (s->n <= 1)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(sqrt(StatsVariance(s, true)));
}

Datum
stats_stddev_pop(PG_FUNCTION_ARGS)
{
	const StatsState *s = STATS_ARG();

	if (s->n == 0)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(sqrt(StatsVariance(s, false)));
}

Datum
stats_min(PG_FUNCTION_ARGS)
{
	const StatsState *s = STATS_ARG();

	if (s->n == 0)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(s->min);
}

Datum
stats_max(PG_FUNCTION_ARGS)
{
	const StatsState *s = STATS_ARG();

	if (s->n == 0)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(s->max);
}

/*
 * (x - mean) / sample stddev into *z; false when the stddev is undefined
 * (fewer than two values) or zero.
 */
bool
StatsZscore(const StatsState *s, float8 x, float8 *z)
{
	float8		sd;

	if (s->n <= 1)
		return false;
	sd = sqrt(StatsVariance(s, true));
	if (sd == 0.0)
		return false;
	*z = (x - StatsMean(s)) / sd;
	return true;
}

/* zscore(stats, x): StatsZscore, NULL when it is undefined. */
Datum
stats_zscore(PG_FUNCTION_ARGS)
{
	float8		z;

	if (!StatsZscore(STATS_ARG(), PG_GETARG_FLOAT8(1), &z))
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(z);
}

/*-------------------------------------------------------------------------
 * rule_eval.c
 *		Evaluates a rule over a time range of its table.
 *
 * The rule's query reads the rows (or windows) of [from, to) as the table's
 * owner; C detectors score them per key in event-time order; each anomaly
 * goes to an emit function, as the worker.  The detection worker and
 * backtest_rule() run the same code.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "detect/rules_int.h"

#include "common/int.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

/* ---------------------------------------------------------------- evaluation */

/*
 * Feeds one value to a key's row detector.  ewma, cusum and change_point
 * report the row where an alarm begins, spike_dip every spike.
 */
static bool
detector_step(const Rule *r, void *state, float8 x, float8 *score)
{
	switch (r->kind)
	{
		case RULE_SPIKE_DIP:
			{
				KdeHistory *h = state;

				KdeSpikeStep(h, x);
				*score = h->score;
				return h->alarm;
			}
		case RULE_CHANGE_POINT:
			{
				KdeHistory *h = state;
				bool		was = h->alarm;

				KdeChangePointStep(h, x);
				*score = h->martingale;
				return h->alarm && !was;
			}
		case RULE_EWMA:
			{
				EwmaChartState *s = state;
				bool		was = s->alarm;

				EwmaChartStep(s, x);
				*score = s->z;
				return s->alarm && !was;
			}
		case RULE_CUSUM:
			{
				CusumState *s = state;
				bool		was = s->alarm;

				CusumStep(s, x, r->target, r->k, r->h);
				*score = Max(s->hi, s->lo);
				return s->alarm && !was;
			}
		default:
			return false;
	}
}

/*
 * zscore: the z-score of a window's mean against the means of the key's
 * windows that started within history windows before it (the SQL
 * `stats_agg(mean) OVER (RANGE BETWEEN history PRECEDING AND 1 PRECEDING)`);
 * then the window joins them.  True if it is flagged.
 */
static bool
zscore_step(const Rule *r, ZscoreState *s, TimestampTz start, float8 mean, float8 *score)
{
	TimestampTz oldest = start - DetectIntervalUsecs(&r->window) * r->history;
	StatsState h;
	bool		flagged = false;

	StatsInit(&h);
	for (int i = 0; i < s->n; i++)
	{
		const ZscoreWindow *e = &s->w[(s->head + i) % r->history];

		if (e->start >= oldest && e->start < start)
			StatsAdd(&h, e->mean);
	}
	*score = get_float8_nan();
	if (h.n >= r->min_history && StatsZscore(&h, mean, score))
		flagged = fabs(*score) > r->threshold;
	if (s->n < r->history)
		s->w[(s->head + s->n++) % r->history] = (ZscoreWindow) {start, mean};
	else
	{
		s->w[s->head] = (ZscoreWindow) {start, mean};
		s->head = (s->head + 1) % r->history;
	}
	return flagged;
}

/* mad: scores every value of one key's window against that window. */
static int64
mad_window(const Rule *r, const char *key, TimestampTz grp, TimestampTz grp_end,
		   const float8 *v, const TimestampTz *t, int n, float8 *scratch,
		   EmitFn emit, void *arg)
{
	int64		found = 0;

	if (n < r->min_count)
		return 0;
	for (int i = 0; i < n; i++)
	{
		float8		median;
		float8		mad;
		float8		m;

		memcpy(scratch, v, sizeof(float8) * n);
		m = RobustZscore(scratch, n, v[i], &median, &mad);
		if (fabs(m) > r->threshold)
		{
			Anomaly		a = {key, true, grp, grp_end, true, t[i], v[i], m};

			emit(arg, &a);
			found++;
		}
	}
	return found;
}

/*
 * The rule's query returns the columns its detector reads, of their types
 * (see _rule_sql): threshold_count (key, window_start, window_end,
 * event_time, value, score), zscore (grp, grp_end, value, keys...), mad
 * (grp, grp_end, ts, value, keys...), row detectors (ts, value, keys...).
 * A query of another shape (from _evaluate's caller) is refused, not read.
 */
static void
check_shape(const Rule *r, TupleDesc desc, int nfixed)
{
	static const Oid sql_types[6] = {JSONBOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
	FLOAT8OID, FLOAT8OID};
	bool		ok = r->kind == RULE_SQL ? desc->natts == 6 : desc->natts >= nfixed;

	for (int i = 0; ok && i < nfixed; i++)
	{
		Oid			want = r->kind == RULE_SQL ? sql_types[i] :
			i == nfixed - 1 ? FLOAT8OID : TIMESTAMPTZOID;

		Oid			got = TupleDescAttr(desc, i)->atttypid;

		/* timestamp has timestamptz's representation (UTC wall clock) */
		ok = got == want || (want == TIMESTAMPTZOID && got == TIMESTAMPOID);
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the query of rule \"%s\" does not return the columns detector %s reads",
						r->name ? r->name : r->detector, r->detector),
				 errhint("Build the query with the same detector: iotstream._rule_sql() does.")));
}

/* An emit that stores the anomaly as the worker, from inside the owner's query. */
typedef struct OwnerEmit
{
	EmitFn		emit;
	void	   *arg;
	AsOwner    *as;
	Oid			owner;
} OwnerEmit;

static void
emit_as_worker(void *arg, const Anomaly *a)
{
	OwnerEmit  *oe = arg;
	bool		was_owner = oe->as->active;

	if (was_owner)
		AsOwnerEnd(oe->as);
	oe->emit(oe->arg, a);
	if (was_owner)
		AsOwnerBegin(oe->as, oe->owner);
}

/*
 * Evaluates [from, to): emits each anomaly and returns how many; *nrows
 * gets the rows read by row detectors.  With persist, row detectors start
 * from and save iotstream.rule_state.  Inside SPI.
 */
int64
RuleEvaluateRange(Rule *r, SPIPlanPtr plan, TimestampTz from, TimestampTz to,
			   bool persist, EmitFn emit, void *arg, int64 *nrows)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "iotstream rule evaluation",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Datum		args[2] = {TimestampTzGetDatum(from), TimestampTzGetDatum(to)};
	int64		found = 0;
	AsOwner		as = {0};
	OwnerEmit	oe = {emit, arg, &as, r->owner};

	/* the rule's query reads the table as its owner; anomalies are ours */
	emit = emit_as_worker;
	arg = &oe;
	*nrows = 0;
	if (r->kind == RULE_SQL)
	{
		SPITupleTable *tt;
		uint64		nfound;

		AsOwnerBegin(&as, r->owner);
		if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not evaluate rule \"%s\"", r->name ? r->name : r->detector);
		AsOwnerEnd(&as);
		nfound = SPI_processed;
		check_shape(r, SPI_tuptable->tupdesc, 6);
		MemoryContextSwitchTo(cxt);
		tt = SPI_tuptable;
		/* emit() runs statements of its own: SPI_processed changes */
		for (uint64 i = 0; i < nfound; i++)
		{
			HeapTuple	tup = tt->vals[i];
			bool		n2,
						n3,
						n4,
						n5,
						n6;
			Anomaly		a;

			a.key = SPI_getvalue(tup, tt->tupdesc, 1);
			a.window_start = DatumGetTimestampTz(SPI_getbinval(tup, tt->tupdesc, 2, &n2));
			a.window_end = DatumGetTimestampTz(SPI_getbinval(tup, tt->tupdesc, 3, &n3));
			a.event_time = DatumGetTimestampTz(SPI_getbinval(tup, tt->tupdesc, 4, &n4));
			a.value = DatumGetFloat8(SPI_getbinval(tup, tt->tupdesc, 5, &n5));
			a.score = DatumGetFloat8(SPI_getbinval(tup, tt->tupdesc, 6, &n6));
			a.has_window = !n2 && !n3;
			a.has_time = !n4;
			if (n5)
				a.value = get_float8_nan();
			if (n6)
				a.score = get_float8_nan();
			emit(arg, &a);
			found++;
		}
		SPI_freetuptable(tt);
	}
	else
	{
		RuleStates *states = RuleStatesBegin(r, persist, from);
		Portal		portal;
		MemoryContext rowcxt;
		char		cur_key[KEY_MAX] = "";
		KeyState   *cur = NULL;
		bool		have_group = false;
		TimestampTz grp = 0;
		TimestampTz grp_end = 0;
		int			gn = 0;
		int			gcap = 256;
		float8	   *gv = palloc(sizeof(float8) * gcap);
		TimestampTz *gt = palloc(sizeof(TimestampTz) * gcap);
		float8	   *scratch = palloc(sizeof(float8) * gcap);
		Datum	   *values = NULL;
		bool	   *nulls = NULL;
		StringInfoData raw;
		StringInfoData cur_raw;

		/*
		 * The query's fixed columns, then the key columns (see _rule_sql):
		 * row detectors (ts, value), zscore (grp, grp_end, value), mad
		 * (grp, grp_end, ts, value).
		 */
		int			nfixed = r->kind == RULE_MAD ? 4 : r->kind == RULE_ZSCORE ? 3 : 2;
		int			at_grp = r->kind == RULE_MAD || r->kind == RULE_ZSCORE ? 0 : -1;
		int			at_ts = r->kind == RULE_MAD ? 2 : r->kind == RULE_ZSCORE ? -1 : 0;
		int			at_value = nfixed - 1;

		initStringInfo(&raw);
		initStringInfo(&cur_raw);

		/* zscore without saved state reads the history before from too */
		if (r->kind == RULE_ZSCORE && RuleStatesCount(states) == 0)
		{
			int64		back;

			/* a huge window times a long history reads from the beginning */
			if (pg_mul_s64_overflow(DetectIntervalUsecs(&r->window), r->history, &back) ||
				pg_sub_s64_overflow(from, back, &back) || back < MIN_TIMESTAMP)
				back = MIN_TIMESTAMP;
			args[0] = TimestampTzGetDatum(back);
		}
		AsOwnerBegin(&as, r->owner);
		portal = SPI_cursor_open(NULL, plan, args, NULL, false);
		rowcxt = AllocSetContextCreate(cxt, "iotstream rule rows", ALLOCSET_DEFAULT_SIZES);
		for (;;)
		{
			SPITupleTable *tt;
			uint64		got;

			SPI_cursor_fetch(portal, true, FETCH_ROWS);
			tt = SPI_tuptable;
			got = SPI_processed;
			if (got == 0)
				break;
			MemoryContextSwitchTo(rowcxt);
			if (values == NULL)
			{
				check_shape(r, tt->tupdesc, nfixed);
				values = MemoryContextAlloc(cxt, sizeof(Datum) * tt->tupdesc->natts);
				nulls = MemoryContextAlloc(cxt, sizeof(bool) * tt->tupdesc->natts);
			}
			for (uint64 i = 0; i < got; i++)
			{
				const char *key = cur_key;
				bool		new_key;
				Datum		g;
				TimestampTz ts;
				float8		x;

				heap_deform_tuple(tt->vals[i], tt->tupdesc, values, nulls);
				g = at_grp >= 0 ? values[at_grp] : 0;
				ts = at_ts >= 0 ? DatumGetTimestampTz(values[at_ts]) : 0;
				x = DatumGetFloat8(values[at_value]);
				RuleKeyRaw(tt->tupdesc, nfixed, values, nulls, &raw);
				if (cur_key[0] == '\0' || raw.len != cur_raw.len ||
					memcmp(raw.data, cur_raw.data, raw.len) != 0)
				{
					key = RuleKeyJson(r, tt->tupdesc, nfixed, values, nulls, &raw);
					/* its SPI call left SPI's context current */
					MemoryContextSwitchTo(rowcxt);
					resetStringInfo(&cur_raw);
					appendBinaryStringInfo(&cur_raw, raw.data, raw.len);
				}
				new_key = strcmp(key, cur_key) != 0;

				(*nrows)++;
				if (r->kind == RULE_MAD)
				{
					TimestampTz gi = DatumGetTimestampTz(g);

					if (have_group && (new_key || gi != grp))
					{
						MemoryContextSwitchTo(cxt);
						found += mad_window(r, cur_key, grp, grp_end, gv, gt, gn, scratch, emit, arg);
						MemoryContextSwitchTo(rowcxt);
						gn = 0;
					}
					if (new_key)
						strlcpy(cur_key, key, KEY_MAX);
					have_group = true;
					grp = gi;
					grp_end = DatumGetTimestampTz(values[at_grp + 1]);
					if (gn == gcap)
					{
						gcap *= 2;
						gv = repalloc(gv, sizeof(float8) * gcap);
						gt = repalloc(gt, sizeof(TimestampTz) * gcap);
						scratch = repalloc(scratch, sizeof(float8) * gcap);
					}
					gv[gn] = x;
					gt[gn++] = ts;
				}
				else
				{
					float8		score;

					if (new_key || cur == NULL)
					{
						strlcpy(cur_key, key, KEY_MAX);
						cur = RuleStateFor(r, states, cur_key);
					}
					cur->changed = true;
					if (r->kind == RULE_ZSCORE)
					{
						TimestampTz gi = DatumGetTimestampTz(g);

						if (zscore_step(r, cur->state, gi, x, &score) && gi >= from)
						{
							Anomaly		a = {cur_key, true, gi, DatumGetTimestampTz(values[at_grp + 1]),
							false, 0, x, score};

							emit(arg, &a);
							found++;
						}
					}
					else if (detector_step(r, cur->state, x, &score))
					{
						Anomaly		a = {cur_key, false, 0, 0, true, ts, x, score};

						emit(arg, &a);
						found++;
					}
				}
			}
			MemoryContextSwitchTo(cxt);
			MemoryContextReset(rowcxt);
			SPI_freetuptable(tt);
		}
		SPI_cursor_close(portal);
		AsOwnerEnd(&as);
		if (r->kind == RULE_MAD && have_group)
			found += mad_window(r, cur_key, grp, grp_end, gv, gt, gn, scratch, oe.emit, oe.arg);
		RuleStatesEnd(r, states, persist, to);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return found;
}

/*-------------------------------------------------------------------------
 * rule_backtest.c
 *		iotstream._evaluate(): a rule over stored rows, written nowhere.
 *
 * backtest_rule() calls it with fresh detector state; the query runs as
 * the table's owner, which the caller must act for.
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

/* ---------------------------------------------------------------- backtest */

typedef struct BacktestArg
{
	Tuplestorestate *store;
	TupleDesc	desc;
} BacktestArg;

static void
backtest_row(void *arg, const Anomaly *a)
{
	BacktestArg *b = arg;
	Datum		v[6];
	bool		n[6] = {false, !a->has_window, !a->has_window, !a->has_time, false, false};

	v[0] = DirectFunctionCall1(jsonb_in, CStringGetDatum(a->key));
	v[1] = TimestampTzGetDatum(a->window_start);
	v[2] = TimestampTzGetDatum(a->window_end);
	v[3] = TimestampTzGetDatum(a->event_time);
	v[4] = Float8GetDatum(a->value);
	v[5] = Float8GetDatum(a->score);
	tuplestore_putvalues(b->store, b->desc, v, n);
}

/*
 * iotstream._evaluate(detector, params, eval_sql, window, from, to,
 * source_table): the anomalies a rule raises over stored rows, from fresh
 * detector state, unwritten; the query runs as source_table's owner.
 */
PG_FUNCTION_INFO_V1(iotstream_evaluate);
Datum
iotstream_evaluate(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Rule		r;
	BacktestArg b;
	int64		nrows;
	TimestampTz from;
	TimestampTz to;

	RequireArguments(fcinfo, 7, "iotstream._evaluate");
	for (int i = 0; i < 7; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("a backtest needs a rule and a time range"),
					 errhint("Pass from_time and to_time, e.g. now() - interval '1 day' and now().")));
	from = PG_GETARG_TIMESTAMPTZ(4);
	to = PG_GETARG_TIMESTAMPTZ(5);
	if (from > to)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("from_time is after to_time"),
				 errhint("Pass the earlier time first.")));
	InitMaterializedSRF(fcinfo, 0);
	b.store = rsinfo->setResult;
	b.desc = rsinfo->setDesc;

	memset(&r, 0, sizeof(r));
	r.cxt = CurrentMemoryContext;
	r.window = *PG_GETARG_INTERVAL_P(3);	/* zscore's history is in windows */
	if (r.window.month != 0 || r.window.day < 0 || r.window.day > 36525 ||
		DetectIntervalUsecs(&r.window) <= 0 ||
		DetectIntervalUsecs(&r.window) > (int64) 36525 * USECS_PER_DAY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a rule's window must be positive, without months, and at most a century"),
				 errhint("Use for example '1 minute' or '1 hour'.")));
	RuleSetup(&r, text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_GETARG_JSONB_P(1));
	/* the caller may act as the table's owner, and the query runs as that */
	r.owner = OwnerForCaller(PG_GETARG_OID(6));
	SPI_connect();
	RuleEvaluateRange(&r, RulePrepareEval(RelationPlaceholderSubstitute(text_to_cstring(PG_GETARG_TEXT_PP(2)),
																  PLACEHOLDER_SOURCE, PG_GETARG_OID(6)),
									r.owner),
				   from, to, false, backtest_row, &b, &nrows);
	SPI_finish();
	return (Datum) 0;
}

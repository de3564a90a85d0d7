/*-------------------------------------------------------------------------
 * rules.c
 *		Detection rules: evaluated over event time, once per window.
 *
 * A rule has evaluated everything before rule_progress.evaluated_until.
 * Its horizon is the watermark minus the rule's lateness: no row before it
 * can still arrive within the lateness.  Windowed detectors seal a window
 * when the horizon passes its end; row detectors take every row before the
 * horizon.  The detection worker's RuleEvaluate evaluates exactly
 * [evaluated_until, horizon) with the rule's query over the stream table
 * and moves evaluated_until, in one transaction with the anomalies and the
 * detector state.  In each batch's transaction RuleNoteBatch counts the
 * rows before the horizon the batch started from as late, and starts the
 * rule at its first batch.
 *
 * threshold_count is one query that returns the anomalies, built from the
 * analytics aggregates.  The others read rows in key and event-time order
 * and feed them to C: zscore gets each key's window means and compares each
 * with the key's previous windows' means (the ring of them is the key's
 * state); mad scores each value against its key and window (RobustZscore);
 * ewma, cusum, spike_dip and change_point are the detectors of detectors.c,
 * per key across windows.  The state of each key is kept in
 * iotstream.rule_state.  backtest_rule() runs the same evaluation
 * (RuleEvaluateRange) with fresh state and writes nothing.
 *
 * This file loads the definitions; see rules_int.h for the others.
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

static float8
param_number(Jsonb *params, const char *name, float8 dflt)
{
	JsonbValue	key;
	JsonbValue *v;

	key.type = jbvString;
	key.val.string.val = (char *) name;
	key.val.string.len = strlen(name);
	v = findJsonbValueFromContainer(&params->root, JB_FOBJECT, &key);
	if (v == NULL || v->type != jbvNumeric)
		return dflt;
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
}

static bool
param_present(Jsonb *params, const char *name)
{
	JsonbValue	key;

	key.type = jbvString;
	key.val.string.val = (char *) name;
	key.val.string.len = strlen(name);
	return findJsonbValueFromContainer(&params->root, JB_FOBJECT, &key) != NULL;
}

/*
 * A detector parameter within [lo, hi], or its default.  _rule_sql()
 * checks params before they are stored; this checks them again wherever
 * they come from (a row written by hand, _evaluate's caller), so that no
 * value can size an allocation wrongly.
 */
static float8
param_in_range(Jsonb *params, const char *detector, const char *name, float8 dflt,
			   float8 lo, float8 hi)
{
	JsonbValue	key;
	JsonbValue *v;
	float8		x;

	key.type = jbvString;
	key.val.string.val = (char *) name;
	key.val.string.len = strlen(name);
	v = findJsonbValueFromContainer(&params->root, JB_FOBJECT, &key);
	if (v == NULL)
		return dflt;
	x = v->type == jbvNumeric ?
		DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric))) :
		get_float8_nan();
	if (isnan(x) || x < lo || x > hi)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("params.%s of detector %s must be a number between %g and %g",
						name, detector, lo, hi),
				 errhint("See the detector table under \"Detectors\" in docs/detect.md.")));
	return x;
}

/* The detector's settings from params, checked. */
void
RuleSetup(Rule *r, const char *detector, Jsonb *params)
{
	if (params == NULL || !JB_ROOT_IS_OBJECT(params) || JB_ROOT_IS_SCALAR(params))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("params must be a JSON object"),
				 errhint("Pass for example '{\"threshold\": 100, \"min_count\": 5}'.")));
	if (strcmp(detector, "zscore") == 0)
	{
		param_in_range(params, detector, "threshold", 3, 0, get_float8_infinity());
		param_in_range(params, detector, "history", 10, 2, 100000);
		param_in_range(params, detector, "min_history", 3, 2, 100000);
	}
	else if (strcmp(detector, "mad") == 0)
	{
		param_in_range(params, detector, "threshold", 3.5, 0, get_float8_infinity());
		param_in_range(params, detector, "min_count", 5, 3, 1e9);
	}
	else if (strcmp(detector, "spike_dip") == 0 || strcmp(detector, "change_point") == 0)
	{
		param_in_range(params, detector, "confidence", 99, 1, 100);
		param_in_range(params, detector, "history_size", 100, 2, 100000);
	}
	else if (strcmp(detector, "ewma") == 0)
	{
		param_in_range(params, detector, "lambda", 0.2, 1e-9, 1);
		param_in_range(params, detector, "L", 3, 1e-9, get_float8_infinity());
		param_in_range(params, detector, "warmup", 30, 2, 1e9);
		param_in_range(params, detector, "mu", 0, -get_float8_infinity(), get_float8_infinity());
		param_in_range(params, detector, "sigma", 1, 0, get_float8_infinity());
	}
	else if (strcmp(detector, "cusum") == 0)
	{
		param_in_range(params, detector, "target", 0, -get_float8_infinity(), get_float8_infinity());
		param_in_range(params, detector, "k", 0, 0, get_float8_infinity());
		param_in_range(params, detector, "h", 0, 0, get_float8_infinity());
	}
	r->detector = pstrdup(detector);
	r->threshold = param_number(params, "threshold", 3.5);
	r->min_count = (int) param_number(params, "min_count", 5);
	r->confidence = param_number(params, "confidence", 99);
	r->history_size = (int) param_number(params, "history_size", 100);
	r->history = (int) param_number(params, "history", 10);
	r->min_history = (int) param_number(params, "min_history", 3);
	r->lambda = param_number(params, "lambda", 0.2);
	r->L = param_number(params, "L", 3);
	r->warmup = (int) param_number(params, "warmup", 30);
	r->have_mu_sigma = param_present(params, "mu") && param_present(params, "sigma");
	r->mu = param_number(params, "mu", 0);
	r->sigma = param_number(params, "sigma", 1);
	r->target = param_number(params, "target", 0);
	r->k = param_number(params, "k", 0);
	r->h = param_number(params, "h", 0);
	r->mode = KDE_SPIKES_AND_DIPS;
	{
		JsonbValue	key;
		JsonbValue *v;

		key.type = jbvString;
		key.val.string.val = "mode";
		key.val.string.len = 4;
		v = findJsonbValueFromContainer(&params->root, JB_FOBJECT, &key);
		if (v && v->type == jbvString && v->val.string.len == 6 &&
			strncmp(v->val.string.val, "spikes", 6) == 0)
			r->mode = KDE_SPIKES;
		else if (v && v->type == jbvString && v->val.string.len == 4 &&
				 strncmp(v->val.string.val, "dips", 4) == 0)
			r->mode = KDE_DIPS;
	}

	if (strcmp(detector, "threshold_count") == 0)
		r->kind = RULE_SQL;
	else if (strcmp(detector, "zscore") == 0)
		r->kind = RULE_ZSCORE;
	else if (strcmp(detector, "mad") == 0)
		r->kind = RULE_MAD;
	else if (strcmp(detector, "spike_dip") == 0)
		r->kind = RULE_SPIKE_DIP;
	else if (strcmp(detector, "change_point") == 0)
		r->kind = RULE_CHANGE_POINT;
	else if (strcmp(detector, "ewma") == 0)
		r->kind = RULE_EWMA;
	else if (strcmp(detector, "cusum") == 0)
		r->kind = RULE_CUSUM;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown detector \"%s\"", detector),
				 errhint("Use threshold_count, zscore, mad, ewma, cusum, spike_dip or change_point.")));
}

/* A rule's query, prepared in SPI's memory. */
SPIPlanPtr
RulePrepareEval(const char *sql, Oid owner)
{
	Oid			argtypes[2] = {TIMESTAMPTZOID, TIMESTAMPTZOID};
	SPIPlanPtr	plan;
	AsOwner		as;

	AsOwnerBegin(&as, owner);
	plan = SPI_prepare(sql, 2, argtypes);
	AsOwnerEnd(&as);

	if (plan == NULL)
		elog(ERROR, "could not prepare a rule's query: %s", SPI_result_code_string(SPI_result));
	return plan;
}

/*
 * The enabled rules on relid, with their queries prepared; inside SPI.  The
 * plans stay SPI's until RulesKeep (see RollupsLoad).
 */
List *
RulesLoad(Oid relid, MemoryContext cxt)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(relid)};
	List	   *result = NIL;
	SPITupleTable *tt;
	uint64		nrows;

	if (SPI_execute_with_args("SELECT r.rule_id, name, detector, params, severity, alert_topic,"
							  "  window_size, lateness, eval_sql, p.evaluated_until IS NOT NULL"
							  " FROM iotstream.rules r JOIN iotstream.rule_progress p USING (rule_id)"
							  " WHERE source_table = $1 AND enabled ORDER BY rule_id",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read iotstream.rules");
	tt = SPI_tuptable;
	nrows = SPI_processed;
	for (uint64 row = 0; row < nrows; row++)
	{
		HeapTuple	tup = tt->vals[row];
		TupleDesc	desc = tt->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(cxt);
		Rule	   *r = palloc0(sizeof(Rule));
		bool		isnull;
		char	   *sql;

		r->rule_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		r->cxt = cxt;
		r->keep_plans = true;
		r->name = SPI_getvalue(tup, desc, 2);
		RuleSetup(r, SPI_getvalue(tup, desc, 3),
				   DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 4, &isnull)));
		r->params_text = SPI_getvalue(tup, desc, 4);
		r->severity = SPI_getvalue(tup, desc, 5);
		r->alert_topic = SPI_getvalue(tup, desc, 6);
		r->window = *DatumGetIntervalP(SPI_getbinval(tup, desc, 7, &isnull));
		r->lateness = *DatumGetIntervalP(SPI_getbinval(tup, desc, 8, &isnull));
		sql = RelationPlaceholderSubstitute(SPI_getvalue(tup, desc, 9), PLACEHOLDER_SOURCE, relid);
		r->started = DatumGetBool(SPI_getbinval(tup, desc, 10, &isnull));
		r->owner = TableOwner(relid);
		result = lappend(result, r);
		MemoryContextSwitchTo(old);
		r->eval_plan = RulePrepareEval(sql, r->owner);
	}
	return result;
}

/* Keeps the plans of loaded rules past the SPI call (until RulesRelease). */
void
RulesKeep(List *rules)
{
	ListCell   *lc;

	foreach(lc, rules)
		SPI_keepplan(((Rule *) lfirst(lc))->eval_plan);
}

void
RulesRelease(List *rules)
{
	ListCell   *lc;

	foreach(lc, rules)
	{
		Rule	   *r = (Rule *) lfirst(lc);

		SPI_freeplan(r->eval_plan);
		if (r->key_plan)
			SPI_freeplan(r->key_plan);
	}
}

/*-------------------------------------------------------------------------
 * rule_store.c
 *		The detection worker's side of rules: progress, anomalies, late rows.
 *
 * RuleEvaluate evaluates exactly [evaluated_until, horizon) and stores the
 * anomalies, the keys' state and the new evaluated_until in one
 * transaction; RuleNoteBatch counts a batch's late rows in the batch's.
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

static SPIPlanPtr progress_read_plan = NULL;
static SPIPlanPtr progress_write_plan = NULL;
static SPIPlanPtr late_plan = NULL;
static SPIPlanPtr anomaly_plan = NULL;

/* ---------------------------------------------------------------- the worker's side */

typedef struct StoreArg
{
	const Rule *rule;
	const DetectOrigin *origin;
} StoreArg;

static void
prepare_static_plans(void)
{
	if (progress_read_plan == NULL)
	{
		Oid			t1[1] = {INT4OID};

		progress_read_plan = SPI_prepare("SELECT evaluated_until FROM iotstream.rule_progress WHERE rule_id = $1",
										 1, t1);
		if (progress_read_plan == NULL)
			elog(ERROR, "could not prepare the progress read of iotstream rules");
		SPI_keepplan(progress_read_plan);
	}
	if (progress_write_plan == NULL)
	{
		Oid			t2[6] = {INT4OID, TIMESTAMPTZOID, INT8OID, INT8OID, INT8OID, INT8OID};

		progress_write_plan = SPI_prepare("UPDATE iotstream.rule_progress"
										  " SET evaluated_until = $2,"
										  "     windows_evaluated = windows_evaluated + $3,"
										  "     rows_evaluated = rows_evaluated + $4,"
										  "     anomalies = anomalies + $5, late_rows = late_rows + $6,"
										  "     last_evaluation = now()"
										  " WHERE rule_id = $1", 6, t2);
		if (progress_write_plan == NULL)
			elog(ERROR, "could not prepare the progress write of iotstream rules");
		SPI_keepplan(progress_write_plan);
	}
	if (late_plan == NULL)
	{
		Oid			t4[2] = {INT4OID, INT8OID};

		late_plan = SPI_prepare("UPDATE iotstream.rule_progress SET late_rows = late_rows + $2"
								" WHERE rule_id = $1", 2, t4);
		if (late_plan == NULL)
			elog(ERROR, "could not prepare the late count of iotstream rules");
		SPI_keepplan(late_plan);
	}
	if (anomaly_plan == NULL)
	{
		Oid			t3[14] = {INT4OID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
		TEXTOID, FLOAT8OID, FLOAT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};

		anomaly_plan = SPI_prepare("INSERT INTO iotstream.anomalies (rule_id, rule, key, window_start, window_end,"
								   "  event_time, detector, value, score, params, severity, source, source_offsets,"
								   "  alert_topic)"
								   " VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12,"
								   "  $13::jsonb, $14)", 14, t3);
		if (anomaly_plan == NULL)
			elog(ERROR, "could not prepare the anomaly insert of iotstream rules");
		SPI_keepplan(anomaly_plan);
	}
}

static void
store_anomaly(void *arg, const Anomaly *a)
{
	StoreArg   *s = arg;
	const Rule *r = s->rule;
	MemoryContext old = CurrentMemoryContext;
	Datum		v[14];
	char		n[14];

	memset(n, ' ', sizeof(n));
	v[0] = Int32GetDatum(r->rule_id);
	v[1] = CStringGetTextDatum(r->name);
	v[2] = CStringGetTextDatum(a->key);
	v[3] = TimestampTzGetDatum(a->window_start);
	v[4] = TimestampTzGetDatum(a->window_end);
	if (!a->has_window)
		n[3] = n[4] = 'n';
	v[5] = TimestampTzGetDatum(a->event_time);
	if (!a->has_time)
		n[5] = 'n';
	v[6] = CStringGetTextDatum(r->detector);
	v[7] = Float8GetDatum(a->value);
	v[8] = Float8GetDatum(a->score);
	v[9] = CStringGetTextDatum(r->params_text);
	v[10] = CStringGetTextDatum(r->severity);
	v[11] = CStringGetTextDatum(s->origin->source);
	v[12] = CStringGetTextDatum(s->origin->offsets);
	v[13] = r->alert_topic ? CStringGetTextDatum(r->alert_topic) : (Datum) 0;
	if (r->alert_topic == NULL)
		n[13] = 'n';
	if (SPI_execute_plan(anomaly_plan, v, n, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not store an anomaly of rule \"%s\"", r->name);
	/* its NOTIFY and alert go out once the anomaly is durable: see DetectRun */
	(void) set_config_option("synchronous_commit", "on", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	MemoryContextSwitchTo(old);		/* SPI leaves us in its procedure context */
}

/*
 * A rule evaluates at most this often: a window that seals sooner after the
 * last evaluation waits that long (a backlog seals one every few batches),
 * so one query and one save of the keys' state cover several.
 */
#define EVALUATION_MS	200

static bool
row_detector(const Rule *r)
{
	return r->kind == RULE_SPIKE_DIP || r->kind == RULE_CHANGE_POINT ||
		r->kind == RULE_EWMA || r->kind == RULE_CUSUM;
}

/*
 * What the watermark lets the rule evaluate: everything before
 * watermark - lateness, down to a window boundary for windowed detectors.
 */
static TimestampTz
rule_horizon(const Rule *r, TimestampTz watermark)
{
	TimestampTz t = watermark - DetectIntervalUsecs(&r->lateness);

	return row_detector(r) ? t : DetectDateBin(&r->window, t);
}

/*
 * The batch's part, in its transaction: the batch's rows before the
 * horizon of the watermark it started from are late.  The first batch a
 * rule sees starts it, from the horizon of its oldest row.  Inside SPI.
 */
void
RuleNoteBatch(Rule *r, const IngestedRows *rows, bool have_watermark,
			  TimestampTz old_watermark, TimestampTz new_watermark, TimestampTz batch_min)
{
	Oid			types[2] = {INT4OID, TIMESTAMPTZOID};
	Datum		args[2];
	int64		late = 0;
	TimestampTz cutoff;

	prepare_static_plans();
	args[0] = Int32GetDatum(r->rule_id);
	if (!r->started)
	{
		/* rows up to the lateness older than the first may still come */
		args[1] = TimestampTzGetDatum(rule_horizon(r, Min(batch_min, new_watermark)));
		if (SPI_execute_with_args("UPDATE iotstream.rule_progress SET evaluated_until = $2"
								  " WHERE rule_id = $1 AND evaluated_until IS NULL",
								  2, types, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not start rule \"%s\"", r->name);
		r->started = true;
		return;
	}
	if (!have_watermark)
		return;
	cutoff = rule_horizon(r, old_watermark);
	for (int i = 0; i < rows->n; i++)
		if (rows->stored[i] && rows->ts[i] < cutoff)
			late++;
	if (late == 0)
		return;
	args[1] = Int64GetDatum(late);
	if (SPI_execute_plan(late_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not count the late rows of rule \"%s\"", r->name);
}

/*
 * The detection worker's part: evaluates [evaluated_until, horizon) and
 * stores the anomalies, the state and the progress; returns the anomalies
 * raised.  A rule that ran less than EVALUATION_MS ago waits, and sets
 * *deferred.  Inside SPI, in the worker's transaction.
 */
int64
RuleEvaluate(Rule *r, TimestampTz watermark, const DetectOrigin *origin, bool *deferred)
{
	TimestampTz horizon = rule_horizon(r, watermark);
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz from;
	bool		isnull;
	int64		windows = 0;
	int64		nrows = 0;
	int64		found;
	Datum		args[6];
	StoreArg	s = {r, origin};

	prepare_static_plans();
	args[0] = Int32GetDatum(r->rule_id);
	if (SPI_execute_plan(progress_read_plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the progress of rule \"%s\"", r->name);
	if (SPI_processed == 0)
		return 0;				/* dropped meanwhile */
	from = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull || horizon <= from)
		return 0;				/* not started, or nothing sealed */
	if (!TimestampDifferenceExceeds(r->last_evaluation, now, EVALUATION_MS))
	{
		*deferred = true;
		return 0;
	}

	found = RuleEvaluateRange(r, r->eval_plan, from, horizon, true, store_anomaly, &s, &nrows);
	if (!row_detector(r))
		windows = (horizon - from) / DetectIntervalUsecs(&r->window);
	r->last_evaluation = now;

	args[1] = TimestampTzGetDatum(horizon);
	args[2] = Int64GetDatum(windows);
	args[3] = Int64GetDatum(nrows);
	args[4] = Int64GetDatum(found);
	args[5] = Int64GetDatum(0);
	if (SPI_execute_plan(progress_write_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not store the progress of rule \"%s\"", r->name);
	return found;
}

/* Whether the rule's anomalies go to an alert topic. */
bool
RuleAlerts(const Rule *r)
{
	return r->alert_topic != NULL;
}

/*-------------------------------------------------------------------------
 * detect.c
 *		Runs the rules and rollups of a stream table on each ingested batch.
 *
 * The stage after ingest: a source worker calls DetectBatch with the rows
 * IngestBatch stored, in the batch's transaction, before the offsets are
 * stored.  So the rollup merges, the rule progress, the detector state and
 * the anomalies commit together with the rows and the offsets they come
 * from, or not at all: after a crash the batch is read again and does
 * everything again, once.
 *
 * The watermark of a table is the newest event time ingested into it
 * (iotstream.watermarks).  Its row lock, taken first, serializes detection
 * among the sources feeding one table.  Definitions are cached per worker
 * and reloaded when iotstream.detect_catalog.version changes (one cheap
 * query per batch, none per row).
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

struct DetectTarget
{
	Oid			relid;
	char	   *source_name;
	int64		version;		/* of the definitions loaded, 0 = none */
	MemoryContext cxt;			/* the worker's */
	MemoryContext defs_cxt;		/* definitions, rebuilt on reload */
	List	   *rollups;
	List	   *rules;
	SPIPlanPtr	version_plan;
	SPIPlanPtr	lock_plan;
	SPIPlanPtr	update_plan;
	TimestampTz last_evaluation;	/* wall clock, of this worker */
	bool		deferred;		/* sealed windows wait for DetectCatchUp */
};

/*
 * While a source works through a backlog (full batches), rules evaluate at
 * most this often: one query then covers the windows of many batches.  A
 * batch that is not full (a live stream) always evaluates at once.
 */
#define BACKLOG_EVALUATION_MS	1000

DetectTarget *
DetectTargetCreate(Oid relid, const char *source_name, MemoryContext cxt)
{
	DetectTarget *d = MemoryContextAllocZero(cxt, sizeof(DetectTarget));
	Oid			argtypes[2] = {OIDOID, TIMESTAMPTZOID};

	d->relid = relid;
	d->source_name = MemoryContextStrdup(cxt, source_name);
	d->cxt = cxt;
	SPI_connect();
	d->version_plan = SPI_prepare("SELECT version FROM iotstream.detect_catalog", 0, NULL);
	d->lock_plan = SPI_prepare("SELECT watermark FROM iotstream.watermarks WHERE relid = $1 FOR UPDATE",
							   1, argtypes);
	d->update_plan = SPI_prepare("UPDATE iotstream.watermarks SET watermark = $2, updated_at = now()"
								 " WHERE relid = $1", 2, argtypes);
	if (d->version_plan == NULL || d->lock_plan == NULL || d->update_plan == NULL)
		elog(ERROR, "could not prepare iotstream detection statements");
	SPI_keepplan(d->version_plan);
	SPI_keepplan(d->lock_plan);
	SPI_keepplan(d->update_plan);
	SPI_finish();
	return d;
}

/* date_bin(width, t, '2000-01-01 00:00+00'): the start of t's window. */
TimestampTz
DetectDateBin(const Interval *width, TimestampTz t)
{
	return DatumGetTimestampTz(DirectFunctionCall3(timestamptz_bin,
												   IntervalPGetDatum(width),
												   TimestampTzGetDatum(t),
												   TimestampTzGetDatum(0)));
}

/* An interval without months (the SQL API rejects those) in microseconds. */
int64
DetectIntervalUsecs(const Interval *i)
{
	return i->time + (int64) i->day * USECS_PER_DAY;
}

static void
reload(DetectTarget *d, int64 version)
{
	if (d->defs_cxt)
	{
		RulesRelease(d->rules);
		RollupsRelease(d->rollups);
		MemoryContextDelete(d->defs_cxt);
	}
	d->defs_cxt = AllocSetContextCreate(d->cxt, "iotstream rules and rollups",
										ALLOCSET_SMALL_SIZES);
	d->rollups = RollupsLoad(d->relid, d->defs_cxt);
	d->rules = RulesLoad(d->relid, d->defs_cxt);
	d->version = version;
	elog(DEBUG1, "iotstream source \"%s\": %d rules and %d rollups",
		 d->source_name, list_length(d->rules), list_length(d->rollups));
}

/* [{"topic":..., "partition":..., "first":..., "last":...}] of the batch. */
static char *
batch_offsets_json(const IngestedRows *rows)
{
	StringInfoData buf;
	int			np = 0;
	int64	   *first = palloc(sizeof(int64) * rows->n);
	int64	   *last = palloc(sizeof(int64) * rows->n);
	const KafkaMessage **head = palloc(sizeof(KafkaMessage *) * rows->n);

	for (int i = 0; i < rows->n; i++)
	{
		const KafkaMessage *m = &rows->msgs[i];
		int			j;

		for (j = np - 1; j >= 0; j--)
			if (head[j]->partition == m->partition && strcmp(head[j]->topic, m->topic) == 0)
				break;
		if (j < 0)
		{
			j = np++;
			head[j] = m;
			first[j] = last[j] = m->offset;
		}
		first[j] = Min(first[j], m->offset);
		last[j] = Max(last[j], m->offset);
	}
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (int j = 0; j < np; j++)
	{
		if (j > 0)
			appendStringInfoChar(&buf, ',');
		appendStringInfoString(&buf, "{\"topic\":");
		escape_json(&buf, head[j]->topic ? head[j]->topic : "");
		appendStringInfo(&buf, ",\"partition\":%d,\"first\":" INT64_FORMAT ",\"last\":" INT64_FORMAT "}",
						 head[j]->partition, first[j], last[j]);
	}
	appendStringInfoChar(&buf, ']');
	return buf.data;
}

/*
 * Merges the batch into the table's rollups and advances its rules; backlog
 * says more messages are waiting (see BACKLOG_EVALUATION_MS).  Runs in the
 * batch's transaction; an error aborts the batch like an ingest error.
 * Returns true if it raised anomalies that go to an alert topic.
 */
bool
DetectBatch(DetectTarget *d, const IngestedRows *rows, bool backlog)
{
	bool		isnull;
	int64		version;
	bool		have_wm;
	TimestampTz old_wm = 0;
	TimestampTz new_wm;
	TimestampTz batch_min = 0;
	TimestampTz batch_max = 0;
	bool		any = false;
	bool		alerts = false;
	Datum		args[2];
	ListCell   *lc;

	SPI_connect();
	if (SPI_execute_plan(d->version_plan, NULL, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read iotstream.detect_catalog");
	version = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (version != d->version)
		reload(d, version);
	if (d->rules == NIL && d->rollups == NIL)
	{
		SPI_finish();
		return false;
	}

	for (int i = 0; i < rows->n; i++)
	{
		if (!rows->stored[i])
			continue;
		if (!any || rows->ts[i] < batch_min)
			batch_min = rows->ts[i];
		if (!any || rows->ts[i] > batch_max)
			batch_max = rows->ts[i];
		any = true;
	}
	if (!any)
	{
		SPI_finish();
		return false;			/* nothing stored: nothing moves */
	}

	args[0] = ObjectIdGetDatum(d->relid);
	if (SPI_execute_plan(d->lock_plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the iotstream watermark");
	if (SPI_processed == 0)
	{
		SPI_finish();
		return false;			/* dropped since the definitions were read */
	}
	{
		Datum		w = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		have_wm = !isnull;
		if (have_wm)
			old_wm = DatumGetTimestampTz(w);
	}

	foreach(lc, d->rollups)
		RollupMergeBatch((Rollup *) lfirst(lc), rows, have_wm, old_wm);

	new_wm = have_wm ? Max(old_wm, batch_max) : batch_max;
	if (!have_wm || new_wm != old_wm)
	{
		args[1] = TimestampTzGetDatum(new_wm);
		if (SPI_execute_plan(d->update_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not store the iotstream watermark");
	}

	if (d->rules != NIL)
	{
		DetectOrigin origin;
		TimestampTz now = GetCurrentTimestamp();
		bool		evaluate = !backlog ||
			TimestampDifferenceExceeds(d->last_evaluation, now, BACKLOG_EVALUATION_MS);

		origin.source = d->source_name;
		origin.offsets = batch_offsets_json(rows);
		foreach(lc, d->rules)
		{
			Rule	   *r = (Rule *) lfirst(lc);

			if (RuleAdvance(r, rows, new_wm, batch_min, &origin, evaluate) > 0 && RuleAlerts(r))
				alerts = true;
		}
		if (evaluate)
			d->last_evaluation = now;
		d->deferred = !evaluate;
	}
	SPI_finish();
	return alerts;
}

/* Whether a backlog left sealed windows unevaluated (see DetectCatchUp). */
bool
DetectPending(DetectTarget *d)
{
	return d->deferred;
}

/*
 * Evaluates the windows the stored watermark has sealed and a backlog left
 * for later, once the source has caught up; in a transaction of its own.
 * Returns true if it raised anomalies that go to an alert topic.
 */
bool
DetectCatchUp(DetectTarget *d)
{
	IngestedRows none;
	DetectOrigin origin = {d->source_name, "[]"};
	Datum		args[1] = {ObjectIdGetDatum(d->relid)};
	bool		isnull;
	bool		alerts = false;
	TimestampTz wm;
	ListCell   *lc;

	memset(&none, 0, sizeof(none));
	d->deferred = false;
	d->last_evaluation = GetCurrentTimestamp();
	SPI_connect();
	if (SPI_execute_plan(d->lock_plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the iotstream watermark");
	if (SPI_processed == 0)
	{
		SPI_finish();
		return false;
	}
	wm = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!isnull)
		foreach(lc, d->rules)
		{
			Rule	   *r = (Rule *) lfirst(lc);

			if (RuleAdvance(r, &none, wm, wm, &origin, true) > 0 && RuleAlerts(r))
				alerts = true;
		}
	SPI_finish();
	return alerts;
}

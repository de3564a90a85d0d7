/*-------------------------------------------------------------------------
 * detect.c
 *		Runs the rules and rollups of a stream table: the source workers'
 *		part in each batch, and the detection worker's part after it.
 *
 * A source worker calls DetectBatch with the rows IngestBatch stored, in
 * the batch's transaction, after the offsets are stored.  It moves the
 * table's watermark (iotstream.watermarks; its row lock, taken first,
 * serializes the batches of one table), counts
 * the rows that came later than each rule's and rollup's lateness, and
 * writes each rollup's groups of the batch as one delta row.  That is all
 * a batch pays for detection: a few statements, none per row.
 *
 * The table's detection worker calls DetectRun in transactions of its own,
 * woken after each batch commits.  It folds the waiting deltas into the
 * rollup tables and evaluates each rule over what the committed watermark
 * has sealed, storing the anomalies, the detector state and the rule's
 * progress together.  Rows a batch counted as late for a rule are before
 * the rule's horizon at that batch, which is at or past anything the
 * detection worker had evaluated: a row is evaluated exactly once or
 * counted as late, whatever the two workers' interleaving.
 *
 * The watermark is made of the partitions' own: the newest event time
 * stored from each partition (source_offsets.max_event_time).  It is the
 * oldest of those among the partitions still behind their high watermark
 * (or whose high watermark the consumer has not seen yet),
 * but no newer than the newest of all; partitions not heard from for
 * IDLE_PARTITION (a stopped source) do not count, and while one of its
 * assigned partitions has not been heard from at all, a source worker
 * holds the watermark where it is (source/source_worker.c, HOLD_MS).  So while a consumer
 * works through a backlog, one partition read ahead of the others does not
 * make their rows late; once every partition has caught up, it is the
 * newest event time ingested.  It never goes back.
 *
 * Definitions are cached per worker and reloaded when
 * iotstream.detect_catalog.version changes (one cheap query per step).
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "ingest/ingest.h"
#include "detect/detect_int.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#define IDLE_PARTITION	"1 minute"

/* Rollup deltas are folded in at most this often, several batches at once. */
#define APPLY_MS		200

struct DetectTarget
{
	Oid			relid;
	int64		version;		/* of the definitions loaded, 0 = none */
	MemoryContext cxt;			/* the worker's */
	MemoryContext defs_cxt;		/* definitions, rebuilt on reload */
	List	   *rollups;
	List	   *rules;
	SPIPlanPtr	version_plan;
	SPIPlanPtr	lock_plan;
	SPIPlanPtr	update_plan;
	SPIPlanPtr	read_plan;
	SPIPlanPtr	partitions_plan;
	SPIPlanPtr	origin_plan;
	TimestampTz last_apply;
	int			source_id;		/* the table's first source: alerts use it */
	char	   *source_name;
	bool		stale;			/* the table changed since the definitions loaded */
};

/*
 * The rules and rollups cache the columns they read, by number and type.
 * An ALTER TABLE of the table (a column dropped, its type changed)
 * invalidates its relcache entry; this callback marks the definitions
 * stale, and the next step reloads them, so a definition that names a
 * column the table no longer has fails at once, by name, instead of at the
 * next definition change.  (A partition attached or detached invalidates
 * the table too: one reload then.)  A process has a target or two.
 */
static List *targets = NIL;

static void
relcache_changed(Datum arg, Oid relid)
{
	ListCell   *lc;

	foreach(lc, targets)
	{
		DetectTarget *d = lfirst(lc);

		if (relid == InvalidOid || relid == d->relid)
			d->stale = true;
	}
}

static SPIPlanPtr
prepare(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "could not prepare an iotstream detection statement: %s",
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

DetectTarget *
DetectTargetCreate(Oid relid, MemoryContext cxt)
{
	DetectTarget *d = MemoryContextAllocZero(cxt, sizeof(DetectTarget));
	Oid			argtypes[2] = {OIDOID, TIMESTAMPTZOID};

	d->relid = relid;
	d->cxt = cxt;
	if (targets == NIL)
		CacheRegisterRelcacheCallback(relcache_changed, (Datum) 0);
	{
		/* a target lives as long as its worker; so does the list */
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		targets = lappend(targets, d);
		MemoryContextSwitchTo(old);
	}
	SPI_connect();
	d->version_plan = prepare("SELECT version FROM iotstream.detect_catalog", 0, NULL);
	d->lock_plan = prepare("SELECT watermark FROM iotstream.watermarks WHERE relid = $1 FOR UPDATE",
						   1, argtypes);
	d->update_plan = prepare("UPDATE iotstream.watermarks SET watermark = $2, updated_at = now()"
							 " WHERE relid = $1", 2, argtypes);
	d->read_plan = prepare("SELECT watermark FROM iotstream.watermarks WHERE relid = $1", 1, argtypes);
	d->partitions_plan = prepare("SELECT least(min(o.max_event_time)"
								 "  FILTER (WHERE o.high_watermark IS NULL OR o.next_offset < o.high_watermark),"
								 "  max(o.max_event_time))"
								 " FROM iotstream.source_offsets o JOIN iotstream.sources s USING (source_id)"
								 " WHERE s.target = $1 AND o.updated_at > now() - interval '" IDLE_PARTITION "'",
								 1, argtypes);
	d->origin_plan = prepare("SELECT s.source_id, s.name,"
							 "  (SELECT coalesce(jsonb_agg(jsonb_build_object('topic', o.topic,"
							 "     'partition', o.partition, 'next_offset', o.next_offset)"
							 "     ORDER BY o.topic, o.partition), '[]')"
							 "   FROM iotstream.source_offsets o JOIN iotstream.sources x USING (source_id)"
							 "   WHERE x.target = $1)::text"
							 " FROM iotstream.sources s WHERE s.target = $1 ORDER BY s.source_id LIMIT 1",
							 1, argtypes);
	SPI_finish();
	return d;
}

static void
reload(DetectTarget *d, int64 version)
{
	List	   *rollups;
	List	   *rules;

	if (d->defs_cxt)
	{
		RulesRelease(d->rules);
		RollupsRelease(d->rollups);
		MemoryContextDelete(d->defs_cxt);
		/* if loading fails below, the next reload must not free these again */
		d->defs_cxt = NULL;
		d->rules = d->rollups = NIL;
	}
	d->defs_cxt = AllocSetContextCreate(d->cxt, "iotstream rules and rollups",
										ALLOCSET_SMALL_SIZES);
	rollups = RollupsLoad(d->relid, d->defs_cxt);
	rules = RulesLoad(d->relid, d->defs_cxt);
	/* only now that both loaded: a failed load leaves no kept plan behind */
	RollupsKeep(rollups);
	RulesKeep(rules);
	d->rollups = rollups;
	d->rules = rules;
	d->version = version;
	elog(DEBUG1, "iotstream detection of %u: %d rules and %d rollups",
		 d->relid, list_length(d->rules), list_length(d->rollups));
}

/* Reloads the definitions if they changed; inside SPI. */
static void
check_version(DetectTarget *d)
{
	bool		isnull;
	int64		version;

	if (SPI_execute_plan(d->version_plan, NULL, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read iotstream.detect_catalog");
	version = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (version != d->version || d->stale)
	{
		d->stale = false;
		reload(d, version);
	}
}

/*
 * The batch's part: moves the watermark (unless hold), counts late rows
 * and writes the rollup deltas.  Runs in the batch's transaction; an error aborts the
 * batch like an ingest error.  Returns true if the detection worker has
 * something new to do once the batch commits.
 */
bool
DetectBatch(DetectTarget *d, const IngestedRows *rows, bool hold)
{
	bool		isnull;
	bool		have_wm;
	TimestampTz old_wm = 0;
	TimestampTz new_wm;
	TimestampTz batch_min = 0;
	TimestampTz batch_max = 0;
	bool		any = false;
	Datum		args[2];
	ListCell   *lc;

	SPI_connect();
	check_version(d);
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

	new_wm = batch_max;
	if (hold)
		new_wm = have_wm ? old_wm : batch_min;	/* a partition has not been heard from */
	/* not read-only: it must see the offsets this batch just stored */
	else if (SPI_execute_plan(d->partitions_plan, args, NULL, false, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		Datum		w = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			new_wm = DatumGetTimestampTz(w);
	}
	if (have_wm)
		new_wm = Max(old_wm, new_wm);
	if (!have_wm || new_wm != old_wm)
	{
		args[1] = TimestampTzGetDatum(new_wm);
		if (SPI_execute_plan(d->update_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not store the iotstream watermark");
	}

	foreach(lc, d->rules)
		RuleNoteBatch((Rule *) lfirst(lc), rows, have_wm, old_wm, new_wm, batch_min);
	SPI_finish();
	return true;
}

/*
 * The detection worker's part: folds the rollup deltas in and evaluates
 * what the committed watermark has sealed.  Runs in a transaction of its
 * own.  Sets *alerts if it raised anomalies that go to an alert topic;
 * returns true if it put off work that is due (see APPLY_MS and
 * RuleEvaluate): the worker comes back soon.
 */
bool
DetectRun(DetectTarget *d, bool *alerts)
{
	bool		deferred = false;
	bool		isnull;
	Datum		args[1] = {ObjectIdGetDatum(d->relid)};
	TimestampTz wm;
	DetectOrigin origin;
	ListCell   *lc;

	*alerts = false;

	/*
	 * A step that stores no anomaly commits without waiting for its WAL to
	 * reach disk, so the source workers' commits do not queue behind it.
	 * A crash may lose such a step, and only with every later transaction
	 * (WAL is replayed in order): the worker then repeats it from the
	 * stored progress.  store_anomaly turns the wait
	 * back on, so no NOTIFY or alert announces an anomaly a crash could
	 * take back.
	 */
	(void) set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	SPI_connect();
	check_version(d);
	if (d->rollups != NIL)
	{
		TimestampTz now = GetCurrentTimestamp();

		if (TimestampDifferenceExceeds(d->last_apply, now, APPLY_MS))
		{
			foreach(lc, d->rollups)
				RollupApply((Rollup *) lfirst(lc));
			d->last_apply = now;
		}
		else
			deferred = true;
	}
	if (d->rules == NIL)
	{
		SPI_finish();
		return deferred;
	}

	if (SPI_execute_plan(d->read_plan, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the iotstream watermark");
	if (SPI_processed == 0)
	{
		SPI_finish();
		return false;
	}
	wm = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
	{
		SPI_finish();
		return false;			/* nothing ingested yet */
	}

	if (SPI_execute_plan(d->origin_plan, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the sources of an iotstream table");
	origin.source = NULL;
	origin.offsets = "[]";
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		int			id = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));

		if (id != d->source_id)
		{
			d->source_id = id;
			d->source_name = MemoryContextStrdup(d->cxt, SPI_getvalue(tup, SPI_tuptable->tupdesc, 2));
		}
		origin.source = d->source_name;
		origin.offsets = SPI_getvalue(tup, SPI_tuptable->tupdesc, 3);
	}

	foreach(lc, d->rules)
	{
		Rule	   *r = (Rule *) lfirst(lc);

		if (RuleEvaluate(r, wm, &origin, &deferred) > 0 && RuleAlerts(r))
			*alerts = true;
	}
	SPI_finish();
	return deferred;
}

/* The table's first source, whose connection alert topics use; 0 if none. */
int
DetectSource(DetectTarget *d, const char **name)
{
	*name = d->source_name;
	return d->source_id;
}

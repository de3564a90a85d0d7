/*-------------------------------------------------------------------------
 * detect_worker.c
 *		The detection worker of one stream table.
 *
 * The launcher keeps one per table with enabled rules or rollups.  Source
 * workers wake it after each batch that stored rows commits; it then runs
 * DetectRun in a transaction of its own: it folds the rollup deltas into
 * the rollup tables and evaluates what the watermark has sealed (see
 * detect.c).  So detection takes the second core, not the ingest worker's
 * time.  After an evaluation raised anomalies for alert topics it drains
 * the outbox (alerts.c) on the connection of the table's first source.
 *
 * Ingestion goes first.  It runs at a lower CPU priority than the source
 * workers (DETECT_NICE), and while the table's sources drain a backlog
 * (they commit full batches with more waiting behind them) it waits, up
 * to iotstream.detection_yield at a time, then runs one step and waits
 * again: on a small machine every core detection takes slows the drain,
 * and the broker may not keep a backlog for long, while the table keeps
 * every row for detection to catch up on afterwards (rule_status.lag
 * shows by how much).  A fast live stream fills its batches too but keeps
 * up with them, and is evaluated as it arrives.  Nothing is skipped, since
 * it always resumes from its stored progress.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/source.h"
#include "detect/detect_int.h"

#include <sys/resource.h>

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#define RETRY_MS	1000		/* after an error, and between alert retries */
#define IDLE_MS		1000		/* definition changes are noticed this fast */
#define DEFER_MS	100			/* work put off is looked at again */
#define DETECT_NICE	5			/* added to the worker's nice value */
#define BACKLOG_MS	500			/* a backlog is over this long after its
								 * last batch */

static DetectTarget *MyDetect = NULL;
static KafkaSink *MySink = NULL;

static void
detect_exit(int code, Datum arg)
{
	KafkaSinkClose(MySink);
	MySink = NULL;
}

/* Runs one step in a transaction; false (the error logged) if it failed. */
static bool
run_step(const char *activity, bool (*step) (bool *out), bool *out, bool *result,
		 MemoryContext cxt)
{
	volatile bool ok = true;

	WorkerBeginXact(activity);
	PG_TRY();
	{
		MemoryContextSwitchTo(cxt);
		*result = step(out);
		WorkerCommitXact();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(WARNING,
				(errmsg("iotstream detection worker: %s failed: %s", activity, edata->message),
				 errhint("It tries again in a second.")));
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	return ok;
}

static bool
detect_step(bool *alerts)
{
	return DetectRun(MyDetect, alerts);
}

/* Produces one round of unsent alerts; *out: all of them went. */
static bool
alerts_step(bool *done)
{
	const char *name;
	int			id = DetectSource(MyDetect, &name);
	int			sent;

	*done = true;
	if (id == 0)
		return false;			/* no source: no connection to send on */
	sent = AlertsDrain(&MySink, id, name);
	*done = sent == 0;
	return sent >= 0;
}

/*
 * Whether to wait instead of running a step: a source is draining a
 * backlog and the wait that began at *since (0: none yet) is shorter than
 * iotstream.detection_yield.  A step that runs ends the wait.
 */
static bool
yield_to_backlog(TimestampTz *since)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz backlog = iotstream_detection_yield > 0 ? DetectWorkerBacklogAt() : 0;

	if (backlog == 0 || TimestampDifferenceExceeds(backlog, now, BACKLOG_MS) ||
		(*since != 0 && TimestampDifferenceExceeds(*since, now, iotstream_detection_yield)))
	{
		*since = 0;
		return false;
	}
	if (*since == 0)
	{
		*since = now;
		pgstat_report_activity(STATE_IDLE, "waiting while the sources drain a backlog");
	}
	return true;
}

void
iotstream_detect_main(Datum main_arg)
{
	Oid			relid = DatumGetObjectId(main_arg);
	MemoryContext long_cxt;
	MemoryContext step_cxt;
	bool		alerts_pending = true;	/* a crash may have left some */
	TimestampTz alerts_tried_at = 0;
	TimestampTz yield_since = 0;	/* 0: not waiting for a backlog */

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(iotstream_database, NULL, 0);
	/* freed memory goes back only as worker_trim_memory decides */
	WorkerMemoryInit();

	long_cxt = AllocSetContextCreate(TopMemoryContext, "iotstream detection", ALLOCSET_DEFAULT_SIZES);
	step_cxt = AllocSetContextCreate(TopMemoryContext, "iotstream detection step", ALLOCSET_DEFAULT_SIZES);
	errno = 0;
	if (setpriority(PRIO_PROCESS, 0, getpriority(PRIO_PROCESS, 0) + DETECT_NICE) != 0)
		elog(LOG, "iotstream detection worker could not lower its priority: %m");
	/*
	 * Every rule reads a time range of its table that the table's BRIN
	 * index on the time column finds.  Early in a partition's life its
	 * statistics say nothing yet and the planner would read all of it
	 * for each range (a backlog evaluated in steps then reads the
	 * partition again at every step).  The same statements run every
	 * fraction of a second: compiling them (JIT) costs more than it saves.
	 */
	SetConfigOption("enable_seqscan", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);
	DetectWorkerAttach(relid);
	before_shmem_exit(detect_exit, (Datum) 0);
	WorkerBeginXact("loading detection");
	MyDetect = DetectTargetCreate(relid, long_cxt);
	{
		char	   *rel = get_rel_name(relid);

		pgstat_report_appname(psprintf("iotstream detection of %s", rel ? rel : "?"));
	}
	WorkerCommitXact();
	elog(LOG, "iotstream detection worker of table %u started", relid);

	MemoryContextSwitchTo(step_cxt);
	for (;;)
	{
		bool		alerts = false;
		bool		deferred = false;
		bool		ok;
		long		timeout;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/* a batch committing from here on wakes the next round */
		ResetLatch(MyLatch);

		if (yield_to_backlog(&yield_since))
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 BACKLOG_MS, PG_WAIT_EXTENSION);
			continue;
		}

		ok = run_step("evaluating rules", detect_step, &alerts, &deferred, step_cxt);
		if (alerts)
			alerts_pending = true;
		if (alerts_pending &&
			(alerts || TimestampDifferenceExceeds(alerts_tried_at, GetCurrentTimestamp(), RETRY_MS)))
		{
			bool		done = false;
			bool		sent = true;

			alerts_tried_at = GetCurrentTimestamp();
			while (sent && !done)
				if (!run_step("producing alerts", alerts_step, &done, &sent, step_cxt))
					sent = false;
			alerts_pending = !done;
		}
		MemoryContextReset(step_cxt);

		timeout = !ok ? RETRY_MS : deferred ? DEFER_MS : alerts_pending ? RETRY_MS : IDLE_MS;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
	}
}

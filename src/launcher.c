/*-------------------------------------------------------------------------
 * launcher.c
 *		The launcher: it keeps the workers that should run running.
 *
 * Started by shared_preload_libraries, it connects to iotstream.database
 * and keeps one dynamic background worker per running source (or
 * `workers` of them, sharing the consumer group; source/source_worker.c)
 * and one detection worker per stream table with enabled rules or rollups
 * (detect/detect_worker.c), restarting failed ones with exponential
 * backoff.  It looks again every second, and at once when a transaction
 * that changed a definition commits (_wake_launcher).  It also sets up
 * the GUCs and the shared memory of the stages, and the transaction
 * helpers every worker uses.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif
#include "source/source.h"
#include "detect/detect.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

/* GUCs */
char	   *iotstream_database = NULL;
int			iotstream_rule_state_idle = 7 * 24 * 60;
int			iotstream_detection_yield = 10000;
int			iotstream_max_workers = 16;

/* The launcher's own shared memory: where to wake it. */
typedef struct LauncherShared
{
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
} LauncherShared;

static LauncherShared *Shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
iotstream_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(add_size(add_size(sizeof(LauncherShared), SourceSlotsShmemSize()),
									DetectSlotsShmemSize()));
}

static void
iotstream_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	Shared = ShmemInitStruct("iotstream launcher", sizeof(LauncherShared), &found);
	if (!found)
		memset(Shared, 0, sizeof(LauncherShared));
	SourceSlotsShmemInit();
	DetectSlotsShmemInit();
	LWLockRelease(AddinShmemInitLock);
}

/* A worker's transaction: statement time, snapshot, activity. */
void
WorkerBeginXact(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

/*
 * glibc keeps the memory a worker frees, in the middle of its heap, for
 * later: a worker whose largest batch or step was once large stays that
 * large.  Every few seconds, when 4MB or more are free and at least twice
 * as much as the worker holds, the free pages go back to the kernel, so
 * that a worker's private memory is at most about three times what it
 * holds (docs/sources.md, "Memory").  Less is kept for the next step: a
 * detection worker's evaluation each minute needs about two thirds as much
 * again as the worker holds, and handing that back in between would only
 * make its memory swing.
 */
static void
worker_trim_memory(void)
{
#ifdef __GLIBC__
	static TimestampTz last = 0;
	TimestampTz now = GetCurrentTimestamp();

	if (now - last >= 5 * USECS_PER_SEC)
	{
		struct mallinfo2 m = mallinfo2();

		last = now;
		if (m.fordblks >= 4 * 1024 * 1024 && m.fordblks >= 2 * (m.uordblks + m.hblkhd))
			malloc_trim(0);
	}
#endif
}

/*
 * Each batch allocates and frees the same large blocks: glibc would hand
 * those over 128kB back to the kernel at once and map fresh, zeroed pages
 * for the next batch, a page fault every 4kB (a seventh of a source
 * worker's time).  It would also give back the top of the heap whenever a
 * block there is freed, so a detection worker's memory would rise and fall
 * with where its evaluation's blocks happened to land.  They stay in the
 * heap instead, until the trim above.  Source and detection workers call
 * this.
 */
void
WorkerMemoryInit(void)
{
#ifdef __GLIBC__
	mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
#endif
}

void
WorkerCommitXact(void)
{
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	worker_trim_memory();
}

typedef struct LaunchedWorker
{
	bool		detect;			/* a detection worker, of relid */
	Oid			relid;
	int			source_id;
	int			index;			/* of the source's workers */
	char	   *version;		/* the source row as text: a change restarts */
	BackgroundWorkerHandle *handle;
	int			failures;
	TimestampTz started_at;
	TimestampTz next_start;
	bool		wanted;
} LaunchedWorker;

static LaunchedWorker *launched = NULL;
static int	nlaunched = 0;

static LaunchedWorker *
find_launched(bool detect, Oid relid, int source_id, int index)
{
	for (int i = 0; i < nlaunched; i++)
		if (launched[i].detect == detect && launched[i].relid == relid &&
			launched[i].source_id == source_id && launched[i].index == index)
			return &launched[i];
	return NULL;
}

/* Marks the worker wanted, with version: a changed version restarts it. */
static void
want(bool detect, Oid relid, int id, int index, const char *version)
{
	LaunchedWorker *w = find_launched(detect, relid, id, index);

	if (w == NULL)
	{
		launched = launched ? repalloc(launched, sizeof(LaunchedWorker) * (nlaunched + 1)) :
			MemoryContextAlloc(TopMemoryContext, sizeof(LaunchedWorker));
		w = &launched[nlaunched++];
		memset(w, 0, sizeof(LaunchedWorker));
		w->detect = detect;
		w->relid = relid;
		w->source_id = id;
		w->index = index;
	}
	if (w->version && strcmp(w->version, version) != 0 && w->handle)
	{
		/* settings changed: restart with the new ones */
		TerminateBackgroundWorker(w->handle);
		w->failures = 0;
		w->next_start = 0;
	}
	if (w->version)
		pfree(w->version);
	w->version = MemoryContextStrdup(TopMemoryContext, version);
	w->wanted = true;
}

static void
start_worker(LaunchedWorker *w)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;	/* we restart it, with backoff */
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "iotstream");
	if (w->detect)
	{
		snprintf(bgw.bgw_function_name, BGW_MAXLEN, "iotstream_detect_main");
		snprintf(bgw.bgw_name, BGW_MAXLEN, "iotstream detection of %s", w->version);
		snprintf(bgw.bgw_type, BGW_MAXLEN, "iotstream detection worker");
		bgw.bgw_main_arg = ObjectIdGetDatum(w->relid);
	}
	else
	{
		snprintf(bgw.bgw_function_name, BGW_MAXLEN, "iotstream_source_main");
		snprintf(bgw.bgw_name, BGW_MAXLEN, "iotstream source %d worker %d", w->source_id, w->index);
		snprintf(bgw.bgw_type, BGW_MAXLEN, "iotstream source worker");
		bgw.bgw_main_arg = Int32GetDatum(w->source_id);
	}
	bgw.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&bgw, &w->handle))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start an iotstream source worker"),
				 errhint("Raise max_worker_processes.")));
		w->handle = NULL;
	}
	w->started_at = GetCurrentTimestamp();
}

/* Compare what runs with what should run; start, stop and restart. */
static void
launcher_reconcile(void)
{
	TimestampTz now = GetCurrentTimestamp();
	MemoryContext cxt = CurrentMemoryContext;

	for (int i = 0; i < nlaunched; i++)
		launched[i].wanted = false;

	WorkerBeginXact("reading sources");
	if (OidIsValid(get_namespace_oid("iotstream", true)) &&
		OidIsValid(get_relname_relid("sources", get_namespace_oid("iotstream", true))))
	{
		SPI_connect();
		SPI_execute("SELECT s.source_id, w, s::text FROM iotstream.sources s,"
					" generate_series(1, least(greatest(coalesce((s.options->>'workers')::int, 1), 1), 64)) w"
					" WHERE s.running", true, 0);
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			bool		isnull;
			int			id = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
			int			index = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
			want(false, InvalidOid, id, index, SPI_getvalue(tup, SPI_tuptable->tupdesc, 3));
		}
		/* a detection worker per table with enabled rules or rollups */
		SPI_execute("SELECT t::oid, t::text FROM (SELECT source_table FROM iotstream.rules WHERE enabled"
					" UNION SELECT source_table FROM iotstream.rollups) x(t)", true, 0);
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			bool		isnull;
			Oid			relid = DatumGetObjectId(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));

			want(true, relid, 0, 0, SPI_getvalue(tup, SPI_tuptable->tupdesc, 2));
		}
		SPI_finish();
	}
	WorkerCommitXact();
	MemoryContextSwitchTo(cxt);

	for (int i = 0; i < nlaunched; i++)
	{
		LaunchedWorker *w = &launched[i];
		pid_t		pid;
		BgwHandleStatus status = w->handle ? GetBackgroundWorkerPid(w->handle, &pid) : BGWH_STOPPED;

		if (!w->wanted)
		{
			if (status != BGWH_STOPPED)
				TerminateBackgroundWorker(w->handle);
			continue;
		}
		if (status != BGWH_STOPPED)
			continue;
		if (w->handle)
		{
			/* it stopped on its own: back off, unless it had run a while */
			pfree(w->handle);
			w->handle = NULL;
			if (TimestampDifferenceExceeds(w->started_at, now, 60000))
				w->failures = 0;
			w->failures++;
			w->next_start = TimestampTzPlusMilliseconds(now, Min(60000, 500L << Min(w->failures, 7)));
		}
		if (now >= w->next_start)
			start_worker(w);
	}
	/* forget the entries that are neither wanted nor running */
	for (int i = 0; i < nlaunched; i++)
		if (!launched[i].wanted && launched[i].handle == NULL)
			launched[i--] = launched[--nlaunched];
		else if (!launched[i].wanted && launched[i].handle &&
				 GetBackgroundWorkerPid(launched[i].handle, &(pid_t){0}) == BGWH_STOPPED)
		{
			pfree(launched[i].handle);
			launched[i].handle = NULL;
			launched[i--] = launched[--nlaunched];
		}
}

PGDLLEXPORT void iotstream_launcher_main(Datum main_arg);

void
iotstream_launcher_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	Shared->launcher_pid = MyProcPid;
	Shared->launcher_latch = MyLatch;
	BackgroundWorkerInitializeConnection(iotstream_database, NULL, 0);
	pgstat_report_appname("iotstream launcher");

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		launcher_reconcile();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* ---------------------------------------------------------------------
 * SQL-callable: waking the launcher at commit
 * ---------------------------------------------------------------------
 */

static bool wake_registered = false;

static void
wake_at_commit(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT && Shared && Shared->launcher_latch)
		SetLatch(Shared->launcher_latch);
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT)
	{
		UnregisterXactCallback(wake_at_commit, NULL);
		wake_registered = false;
	}
}

/* iotstream._wake_launcher(): the launcher looks at the sources at commit. */
PG_FUNCTION_INFO_V1(iotstream_wake_launcher);
Datum
iotstream_wake_launcher(PG_FUNCTION_ARGS)
{
	if (!wake_registered)
	{
		RegisterXactCallback(wake_at_commit, NULL);
		wake_registered = true;
	}
	PG_RETURN_VOID();
}

/* Called from _PG_init: GUCs, shared memory, and the launcher. */
void
LauncherInit(void)
{
	DefineCustomStringVariable("iotstream.database",
							   "Database whose sources the iotstream launcher runs.",
							   NULL, &iotstream_database, "postgres",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("iotstream.detection_yield",
							"Longest time a detection worker waits while its table's sources drain a backlog.",
							"While sources commit full batches with more waiting behind them, detection waits so "
							"that ingestion gets the CPU, then runs one step and waits again; 0 never waits.",
							&iotstream_detection_yield, 10000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("iotstream.rule_state_idle",
							"How long a rule keeps the state of a key that sends nothing.",
							"A row-by-row rule's key silent this long starts afresh, and its state leaves "
							"iotstream.rule_state: the state rules keep is bounded by the keys that send.",
							&iotstream_rule_state_idle, 7 * 24 * 60, 1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MIN, NULL, NULL, NULL);
	DefineCustomIntVariable("iotstream.max_workers",
							"Maximum number of iotstream source workers.",
							"Each also needs a slot in max_worker_processes.",
							&iotstream_max_workers, 16, 1, 1024,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = iotstream_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = iotstream_shmem_startup;

	{
		BackgroundWorker bgw;

		memset(&bgw, 0, sizeof(bgw));
		bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
		bgw.bgw_restart_time = 5;
		snprintf(bgw.bgw_library_name, BGW_MAXLEN, "iotstream");
		snprintf(bgw.bgw_function_name, BGW_MAXLEN, "iotstream_launcher_main");
		snprintf(bgw.bgw_name, BGW_MAXLEN, "iotstream launcher");
		snprintf(bgw.bgw_type, BGW_MAXLEN, "iotstream launcher");
		RegisterBackgroundWorker(&bgw);
	}
}

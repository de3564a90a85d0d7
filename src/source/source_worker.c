/*-------------------------------------------------------------------------
 * source_worker.c
 *		The source worker: the loop that stores a source's messages.
 *
 * One dynamic background worker per running source (or `workers` of them,
 * sharing the consumer group), kept by the launcher.  It drives a source
 * through the interface of source.h and knows no protocol: it polls
 * batches of up to batch_size messages or batch_ms milliseconds and stores
 * each batch with the next position of every partition it read, in one
 * transaction (ingest/, then detect/); only after Postgres commits does it
 * acknowledge them to the source.  On (re)assignment it seeks to the
 * stored positions.  That is the whole exactly-once argument: rows and
 * positions commit together, and reading always resumes from the
 * positions.
 *
 * Workers wait on their latch and on the source's descriptor; they never
 * sleep.  Their counters live in shared memory (source_status.c).
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/source_int.h"
#include "ingest/ingest.h"
#include "detect/detect.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

/* worker state */
static const SourceOps *Source = NULL;	/* by the source's kind, at start */
static void *MySource = NULL;
static int	pending = 0;		/* messages read and not yet committed */
static int64 seen_errors = 0;	/* consumer errors already reported */

/* ---------------------------------------------------------------------
 * The source worker
 * ---------------------------------------------------------------------
 */


static SourceConfig *MyConfig = NULL;
static IngestTarget *MyTarget = NULL;
static DetectTarget *MyDetect = NULL;

/*
 * The partitions assigned, and which of them this worker has stored rows
 * or offsets of.  Until each is heard from (or known empty), for at most
 * HOLD_MS after the assignment, batches do not move the watermark: a
 * partition whose fetch starts late would otherwise find it moved past its
 * rows by the partitions that started first.
 */
#define HOLD_MS		30000
static SourcePosition *MyAssigned = NULL;
static bool *MyHeard = NULL;
static int	nassigned = 0;
static int	nheard = 0;
static TimestampTz assigned_at = 0;

/* Called by the consumer on assignment: seek to what we stored. */
static void
on_assign(void *arg, SourcePosition *parts, int n)
{
	MemoryContext old = CurrentMemoryContext;
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1] = {Int32GetDatum(MyConfig->source_id)};

	WorkerBeginXact("reading stored offsets");
	SPI_connect();
	SPI_execute_with_args("SELECT topic, partition, next_offset FROM iotstream.source_offsets"
						  " WHERE source_id = $1", 1, argtypes, args, NULL, true, 0);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		char	   *topic = SPI_getvalue(tup, SPI_tuptable->tupdesc, 1);
		bool		isnull;
		int32		partition = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		int64		next = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));

		for (int i = 0; i < n; i++)
			if (parts[i].partition == partition && strcmp(parts[i].topic, topic) == 0)
				parts[i].offset = next;
	}
	SPI_finish();
	WorkerCommitXact();
	MemoryContextSwitchTo(old);

	for (int i = 0; i < nassigned; i++)
		pfree((char *) MyAssigned[i].topic);
	if (MyAssigned)
	{
		pfree(MyAssigned);
		pfree(MyHeard);
	}
	MyAssigned = MemoryContextAlloc(TopMemoryContext, sizeof(SourcePosition) * Max(1, n));
	MyHeard = MemoryContextAlloc(TopMemoryContext, sizeof(bool) * Max(1, n));
	nheard = 0;
	for (int i = 0; i < n; i++)
	{
		MyAssigned[i] = parts[i];
		MyAssigned[i].topic = MemoryContextStrdup(TopMemoryContext, parts[i].topic);
		MyHeard[i] = parts[i].offset >= 0;	/* stored before: its row is there */
		nheard += MyHeard[i];
	}
	nassigned = n;
	assigned_at = GetCurrentTimestamp();
	elog(LOG, "iotstream source \"%s\": assigned %d partitions", MyConfig->name, n);
}

static void
on_revoke(void *arg)
{
	/* nothing is committed until the batch is: drop it, the next owner reads it */
	pending = 0;
	nassigned = nheard = 0;
	Source->release(MySource);
}

/* what source_status shows of this worker's memory: at most once a second */
static void
report_memory(bool now)
{
	static TimestampTz last = 0;
	TimestampTz t = GetCurrentTimestamp();
	SourceMemory m;

	if (!now && t - last < USECS_PER_SEC)
		return;
	last = t;
	m.rss_anon = SourceRssAnon();
	IngestDedupMemory(MyTarget, &m.dedup_bytes, &m.dedup_keys, &m.dedup_filtered_keys);
	m.cached = Source != NULL && MySource != NULL && Source->cached ? Source->cached(MySource) : -1;
	SourceSlotSetMemory(&m);
}

static void
worker_exit(int code, Datum arg)
{
	if (Source != NULL && MySource != NULL)
		Source->close(MySource);
	MySource = NULL;
	SourceSlotRelease();
}

/*
 * The offsets, in the batch's transaction, with each partition's high
 * watermark and newest event time stored (which detection's watermark is
 * made of).  Returns how many messages the batch's partitions hold behind
 * it, as far as their high watermarks are known.
 */
static int64
store_offsets(const SourcePosition *parts, int np, const IngestedRows *rows)
{
	Datum	   *topics = palloc(sizeof(Datum) * np);
	Datum	   *partitions = palloc(sizeof(Datum) * np);
	Datum	   *offsets = palloc(sizeof(Datum) * np);
	Datum	   *highs = palloc(sizeof(Datum) * np);
	Datum	   *newest = palloc(sizeof(Datum) * np);
	bool	   *none = palloc(sizeof(bool) * np);
	Oid			argtypes[6] = {INT4OID, TEXTARRAYOID, INT4ARRAYOID, INT8ARRAYOID, INT8ARRAYOID,
	TIMESTAMPTZARRAYOID};
	Datum		args[6];
	int			dims[1] = {np};
	int			lbs[1] = {1};
	int			p = 0;
	int64		behind = 0;

	for (int i = 0; i < np && nheard < nassigned; i++)
		for (int j = 0; j < nassigned; j++)
			if (!MyHeard[j] && MyAssigned[j].partition == parts[i].partition &&
				strcmp(MyAssigned[j].topic, parts[i].topic) == 0)
			{
				MyHeard[j] = true;
				nheard++;
			}
	for (int i = 0; i < np; i++)
	{
		int64		high = Source->end_offset(MySource, parts[i].topic, parts[i].partition);

		topics[i] = CStringGetTextDatum(parts[i].topic);
		partitions[i] = Int32GetDatum(parts[i].partition);
		offsets[i] = Int64GetDatum(parts[i].offset);
		highs[i] = Int64GetDatum(high);
		if (high > parts[i].offset)
			behind += high - parts[i].offset;
		none[i] = true;
	}
	for (int i = 0; i < rows->n; i++)
	{
		const SourceMessage *m = &rows->msgs[i];

		if (!rows->stored[i])
			continue;
		/* a batch holds runs of one partition: try the last one first */
		if (parts[p].partition != m->partition || strcmp(parts[p].topic, m->topic) != 0)
			for (p = 0; p < np - 1; p++)
				if (parts[p].partition == m->partition && strcmp(parts[p].topic, m->topic) == 0)
					break;
		if (none[p] || rows->ts[i] > DatumGetTimestampTz(newest[p]))
			newest[p] = TimestampTzGetDatum(rows->ts[i]);
		none[p] = false;
	}
	args[0] = Int32GetDatum(MyConfig->source_id);
	args[1] = PointerGetDatum(construct_array(topics, np, TEXTOID, -1, false, TYPALIGN_INT));
	args[2] = PointerGetDatum(construct_array(partitions, np, INT4OID, 4, true, TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_array(offsets, np, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[4] = PointerGetDatum(construct_array(highs, np, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[5] = PointerGetDatum(construct_md_array(newest, none, 1, dims, lbs, TIMESTAMPTZOID, 8,
												 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	SPI_connect();
	if (SPI_execute_with_args("INSERT INTO iotstream.source_offsets AS o"
							  " (source_id, topic, partition, next_offset, high_watermark, max_event_time, updated_at)"
							  " SELECT $1, t, p, n, nullif(h, -1), e, now() FROM unnest($2, $3, $4, $5, $6) u(t, p, n, h, e)"
							  " ON CONFLICT (source_id, topic, partition) DO UPDATE"
							  " SET next_offset = excluded.next_offset,"
							  "     high_watermark = coalesce(excluded.high_watermark, o.high_watermark),"
							  "     max_event_time = greatest(o.max_event_time, excluded.max_event_time),"
							  "     updated_at = excluded.updated_at",
							  6, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not store offsets");
	SPI_finish();
	return behind;
}

/* Whether an assigned partition has not been heard from yet (see HOLD_MS). */
static bool
holding_watermark(void)
{
	if (nheard >= nassigned ||
		TimestampDifferenceExceeds(assigned_at, GetCurrentTimestamp(), HOLD_MS))
		return false;
	for (int j = 0; j < nassigned; j++)
		if (!MyHeard[j] && !Source->drained(MySource, MyAssigned[j].topic, MyAssigned[j].partition))
			return true;
	return false;
}

/*
 * One transaction: the rows, the dead letters, the dedup keys, what the
 * rules and rollups make of the rows, and the offsets.  If the fast path fails, the batch is retried row by row.
 */
static void
process_batch(SourceMessage *msgs, int n, MemoryContext batch_cxt)
{
	SourcePosition *parts = palloc(sizeof(SourcePosition) * (n + 1));
	const int	np = Source->positions(MySource, msgs, n, parts);
	IngestCounts counts;
	IngestedRows rows;

	for (int attempt = 0; attempt < 2; attempt++)
	{
		volatile bool ok = true;
		bool		wake;
		int64		behind;

		memset(&counts, 0, sizeof(counts));
		WorkerBeginXact(attempt == 0 ? "ingesting a batch" : "ingesting a batch row by row");
		PG_TRY();
		{
			MemoryContextSwitchTo(batch_cxt);
			if (Source->in_batch)
				Source->in_batch(MySource, parts, np);
			IngestBatch(MyTarget, msgs, n, attempt > 0, &counts, &rows);
			behind = store_offsets(parts, np, &rows);
			wake = DetectBatch(MyDetect, &rows, holding_watermark());
			WorkerCommitXact();

			/*
			 * A backlog: the batch was full and at least another one waits
			 * behind it (a fast live stream fills its batches too, but
			 * keeps up with them).
			 */
			if (wake)
				DetectWorkerWake(MyConfig->target,
								 n >= MyConfig->batch_size && behind >= MyConfig->batch_size);
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			if (attempt > 0)
				PG_RE_THROW();	/* the worker restarts from the stored offsets */
			MemoryContextSwitchTo(batch_cxt);
			edata = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
			IngestDedupReset(MyTarget);
			SourceSlotSetError(edata->message);
			ok = false;
		}
		PG_END_TRY();
		if (ok)
			break;
	}
	MemoryContextSwitchTo(batch_cxt);
	Source->ack(MySource, parts, np);		/* only after Postgres committed */
	Source->release(MySource);
	SourceSlotCountBatch(counts.messages, counts.rows, counts.dead, counts.duplicates);
	report_memory(false);
}

PGDLLEXPORT void iotstream_source_main(Datum main_arg);

void
iotstream_source_main(Datum main_arg)
{
	int			source_id = DatumGetInt32(main_arg);
	MemoryContext long_cxt;
	MemoryContext batch_cxt;
	SourceMessage *msgs;
	SourceCallbacks cb = {on_assign, on_revoke, NULL};
	char		errbuf[512];
	TimestampTz deadline = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(iotstream_database, NULL, 0);
	WorkerMemoryInit();

	long_cxt = AllocSetContextCreate(TopMemoryContext, "iotstream source", ALLOCSET_DEFAULT_SIZES);
	batch_cxt = AllocSetContextCreate(TopMemoryContext, "iotstream batch", ALLOCSET_DEFAULT_SIZES);
	SourceSlotClaim(source_id);
	before_shmem_exit(worker_exit, (Datum) 0);

	WorkerBeginXact("loading source");
	MyConfig = SourceConfigLoad(source_id, true, long_cxt);
	if (MyConfig == NULL)
	{
		WorkerCommitXact();
		proc_exit(0);			/* stopped or dropped meanwhile */
	}
	Source = SourceOpsFor(MyConfig->kind);
	if (Source == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("iotstream source \"%s\" is of kind \"%s\", which this build cannot read",
						MyConfig->name, MyConfig->kind),
				 errhint("Install the iotstream build that created it, or drop the source.")));
	SourceSlotSetTarget(MyConfig->target);
	MyTarget = IngestTargetCreate(MyConfig->target, MyConfig->mapping, MyConfig->options,
								  MyConfig->name, source_id, long_cxt);
	MyDetect = DetectTargetCreate(MyConfig->target, long_cxt);
	WorkerCommitXact();
	pgstat_report_appname(MyConfig->name);

	MySource = Source->open(MyConfig->props, MyConfig->nprops,
							   (const char *const *) MyConfig->topics, MyConfig->ntopics,
							   &cb, IngestNeedsHeaders(MyTarget), errbuf, sizeof(errbuf));
	if (MySource == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("iotstream source \"%s\" could not start its consumer: %s",
						MyConfig->name, errbuf)));
	SourceSlotSetState("running");
	elog(LOG, "iotstream source \"%s\" started", MyConfig->name);

	msgs = MemoryContextAlloc(long_cxt, sizeof(SourceMessage) * MyConfig->batch_size);
	MemoryContextSwitchTo(batch_cxt);
	for (;;)
	{
		int			got;
		int			base;
		long		timeout;
		const char *kerr;
		int64		nerr;
		pgsocket	sock;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		base = pending;
		got = Source->poll(MySource, msgs + base, MyConfig->batch_size - base);
		if (pending != base)
		{
			/*
			 * A revocation during the poll dropped the batch: what this poll
			 * returned is all that is left, so it starts the batch.
			 */
			memmove(msgs, msgs + base, sizeof(SourceMessage) * got);
			base = 0;
		}
		if (got > 0 && base == 0)
			deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), MyConfig->batch_ms);
		pending = base + got;

		kerr = Source->last_error(MySource, &nerr);
		if (kerr && nerr != seen_errors)
		{
			seen_errors = nerr;
			SourceSlotSetError(kerr);
		}

		if (pending > 0 && (pending >= MyConfig->batch_size ||
							(Source->batch_full && Source->batch_full(MySource)) ||
							GetCurrentTimestamp() >= deadline))
		{
			int			n = pending;

			pending = 0;
			process_batch(msgs, n, batch_cxt);
			MemoryContextReset(batch_cxt);
			continue;
		}
		if (got > 0)
			continue;			/* the queue may hold more */

		report_memory(false);	/* an idle worker's too */
		timeout = pending > 0 ?
			Max(1, TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline)) : 1000;
		sock = Source->fd(MySource);
		if (sock < 0 && Source->idle_ms)
			timeout = Max(1, Min(timeout, Source->idle_ms(MySource)));
		/* a source without a descriptor (files) is polled on the timeout */
		(void) WaitLatchOrSocket(MyLatch,
								 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH |
								 (sock >= 0 ? WL_SOCKET_READABLE : 0),
								 sock, timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

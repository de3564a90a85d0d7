/*-------------------------------------------------------------------------
 * worker.c
 *		The launcher and the source workers.
 *
 * The launcher, started by shared_preload_libraries, connects to
 * iotstream.database and keeps one dynamic background worker per running
 * source (or `workers` of them, sharing the consumer group), and one
 * detection worker per stream table with enabled rules or rollups
 * (detect_worker.c), restarting failed ones with exponential backoff.  A worker consumes batches of up to
 * batch_size messages or batch_ms milliseconds and stores each batch with
 * the next offset of every partition it read, in one transaction; only
 * after Postgres commits does it tell the group.  On (re)assignment it seeks
 * to the stored offsets.  That is the whole exactly-once argument: rows and
 * offsets commit together, and reading always resumes from the offsets.
 *
 * Workers wait on their latch and on a pipe librdkafka writes to when
 * messages arrive; they never sleep.  Counters for iotstream.source_status
 * live in shared memory, one slot per worker.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"

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

#define RATE_SECONDS 60

/* One worker's counters, for iotstream.source_status. */
typedef struct WorkerSlot
{
	slock_t		mutex;
	int			source_id;		/* 0: free */
	Oid			target;			/* its stream table, once loaded */
	pid_t		pid;
	char		state[16];
	int64		messages;
	int64		rows;
	int64		dead;
	int64		duplicates;
	int64		batches;
	int64		rate_second[RATE_SECONDS];	/* epoch second of each bucket */
	int64		rate_messages[RATE_SECONDS];
	int64		rate_rows[RATE_SECONDS];
	TimestampTz started_at;
	TimestampTz last_batch_at;
	TimestampTz last_error_at;
	char		last_error[256];
} WorkerSlot;

/* A detection worker, for source workers to wake after their commits. */
typedef struct DetectSlot
{
	Oid			relid;			/* InvalidOid: free */
	pid_t		pid;
	Latch	   *latch;
	TimestampTz backlog_at;		/* last batch of a backlog committed, 0: none */
} DetectSlot;

typedef struct IotstreamShared
{
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	slock_t		detect_mutex;
	WorkerSlot	slots[FLEXIBLE_ARRAY_MEMBER];
	/* then iotstream_max_workers DetectSlots: see detect_slots() */
} IotstreamShared;

static IotstreamShared *Shared = NULL;
static DetectSlot *MyDetectSlot = NULL;	/* a detection worker's own */
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* GUCs */
char	   *iotstream_database = NULL;
int			iotstream_detection_yield = 10000;
static int	iotstream_max_workers = 16;

/* worker state */
static WorkerSlot *MySlot = NULL;
static KafkaSource *MySource = NULL;
static int	pending = 0;		/* messages read and not yet committed */
static int64 seen_errors = 0;	/* consumer errors already reported */

static Size
shared_size(void)
{
	return add_size(add_size(offsetof(IotstreamShared, slots),
							 mul_size(sizeof(WorkerSlot), iotstream_max_workers)),
					mul_size(sizeof(DetectSlot), iotstream_max_workers));
}

static void
iotstream_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(shared_size());
}

static void
iotstream_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	Shared = ShmemInitStruct("iotstream", shared_size(), &found);
	if (!found)
	{
		memset(Shared, 0, shared_size());
		for (int i = 0; i < iotstream_max_workers; i++)
			SpinLockInit(&Shared->slots[i].mutex);
		SpinLockInit(&Shared->detect_mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

static inline DetectSlot *
detect_slots(void)
{
	return (DetectSlot *) &Shared->slots[iotstream_max_workers];
}

static void
set_state(const char *state)
{
	if (!MySlot)
		return;
	SpinLockAcquire(&MySlot->mutex);
	strlcpy(MySlot->state, state, sizeof(MySlot->state));
	SpinLockRelease(&MySlot->mutex);
}

static void
set_error(const char *msg)
{
	if (!MySlot)
		return;
	SpinLockAcquire(&MySlot->mutex);
	strlcpy(MySlot->last_error, msg, sizeof(MySlot->last_error));
	MySlot->last_error_at = GetCurrentTimestamp();
	SpinLockRelease(&MySlot->mutex);
}

static void
count_batch(const IngestCounts *c)
{
	int64		sec = (int64) time(NULL);
	int			b = sec % RATE_SECONDS;

	SpinLockAcquire(&MySlot->mutex);
	MySlot->messages += c->messages;
	MySlot->rows += c->rows;
	MySlot->dead += c->dead;
	MySlot->duplicates += c->duplicates;
	MySlot->batches++;
	if (MySlot->rate_second[b] != sec)
	{
		MySlot->rate_second[b] = sec;
		MySlot->rate_messages[b] = 0;
		MySlot->rate_rows[b] = 0;
	}
	MySlot->rate_messages[b] += c->messages;
	MySlot->rate_rows[b] += c->rows;
	MySlot->last_batch_at = GetCurrentTimestamp();
	SpinLockRelease(&MySlot->mutex);
}

/* ---------------------------------------------------------------------
 * The source worker
 * ---------------------------------------------------------------------
 */

typedef struct SourceConfig
{
	int			source_id;
	char	   *name;
	Oid			target;
	Jsonb	   *mapping;
	Jsonb	   *options;
	int			batch_size;
	int			batch_ms;
	char	  **topics;
	int			ntopics;
	KafkaProperty *props;
	int			nprops;
} SourceConfig;

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
static KafkaPartition *MyAssigned = NULL;
static bool *MyHeard = NULL;
static int	nassigned = 0;
static int	nheard = 0;
static TimestampTz assigned_at = 0;

/*
 * Reads the source and its librdkafka properties, secrets included; runs in
 * a transaction.  Options with a dot in their name (and "debug") go to
 * librdkafka; the others are ours.
 */
static SourceConfig *
load_config(int source_id, bool running, MemoryContext cxt)
{
	SourceConfig *c = MemoryContextAllocZero(cxt, sizeof(SourceConfig));
	Oid			argtypes[2] = {INT4OID, BOOLOID};
	Datum		args[2] = {Int32GetDatum(source_id), BoolGetDatum(running)};
	MemoryContext old;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	Datum	   *elems;
	int			n;

	SPI_connect();
	if (SPI_execute_with_args("SELECT s.name, s.target::oid, s.mapping, s.options,"
							  "  coalesce((s.options->>'batch_size')::int, 10000),"
							  "  coalesce((s.options->>'batch_ms')::int, 100),"
							  "  s.topics, s.brokers, s.group_id,"
							  "  coalesce(s.options->>'start', 'earliest')"
							  " FROM iotstream.sources s WHERE s.source_id = $1 AND (s.running OR NOT $2)",
							  2, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read iotstream.sources");
	if (SPI_processed == 0)
	{
		SPI_finish();
		return NULL;
	}
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	old = MemoryContextSwitchTo(cxt);
	c->source_id = source_id;
	c->name = SPI_getvalue(tup, desc, 1);
	c->target = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
	d = SPI_getbinval(tup, desc, 3, &isnull);
	c->mapping = isnull ? NULL : DatumGetJsonbPCopy(d);
	c->options = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 4, &isnull));
	c->batch_size = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
	c->batch_ms = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
	deconstruct_array(DatumGetArrayTypePCopy(SPI_getbinval(tup, desc, 7, &isnull)),
					  TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, &n);
	c->topics = palloc(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
		c->topics[i] = TextDatumGetCString(elems[i]);
	c->ntopics = n;
	c->props = palloc(sizeof(KafkaProperty) * 3);
	c->props[0].name = "bootstrap.servers";
	c->props[0].value = SPI_getvalue(tup, desc, 8);
	c->props[1].name = "group.id";
	c->props[1].value = SPI_getvalue(tup, desc, 9);
	c->props[2].name = "auto.offset.reset";
	c->props[2].value = SPI_getvalue(tup, desc, 10);
	c->nprops = 3;
	MemoryContextSwitchTo(old);

	if (SPI_execute_with_args("SELECT o.key, o.value #>> '{}' FROM iotstream.sources s, jsonb_each(s.options) o"
							  " WHERE s.source_id = $1 AND (o.key LIKE '%.%' OR o.key = 'debug')"
							  " UNION ALL"
							  " SELECT o.key, o.value #>> '{}' FROM iotstream.source_secrets x, jsonb_each(x.properties) o"
							  " WHERE x.source_id = $1",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the properties of an iotstream source");
	old = MemoryContextSwitchTo(cxt);
	c->props = repalloc(c->props, sizeof(KafkaProperty) * (c->nprops + SPI_processed));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		c->props[c->nprops].name = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
		c->props[c->nprops].value = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2);
		c->nprops++;
	}
	MemoryContextSwitchTo(old);
	SPI_finish();
	return c;
}

void
WorkerBeginXact(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

void
WorkerCommitXact(void)
{
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* Called by the consumer on assignment: seek to what we stored. */
static void
on_assign(void *arg, KafkaPartition *parts, int n)
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
	MyAssigned = MemoryContextAlloc(TopMemoryContext, sizeof(KafkaPartition) * Max(1, n));
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
	KafkaSourceRelease(MySource);
}

static void
worker_exit(int code, Datum arg)
{
	KafkaSourceClose(MySource);
	MySource = NULL;
	if (MySlot)
	{
		SpinLockAcquire(&MySlot->mutex);
		MySlot->pid = 0;
		strlcpy(MySlot->state, "stopped", sizeof(MySlot->state));
		SpinLockRelease(&MySlot->mutex);
	}
}

/* The next offset of every partition in the batch, for storage and the group. */
pg_noinline static int
batch_offsets(const KafkaMessage *msgs, int n, KafkaPartition *out)
{
	int			np = 0;
	int			j = 0;

	for (int i = 0; i < n; i++)
	{
		/* messages come in runs from one partition: try the last one first */
		if (j >= np || out[j].partition != msgs[i].partition ||
			strcmp(out[j].topic, msgs[i].topic) != 0)
			for (j = 0; j < np; j++)
				if (out[j].partition == msgs[i].partition && strcmp(out[j].topic, msgs[i].topic) == 0)
					break;
		if (j == np)
		{
			out[np].topic = msgs[i].topic;
			out[np].partition = msgs[i].partition;
			out[np].offset = -1;
			np++;
		}
		out[j].offset = Max(out[j].offset, msgs[i].offset + 1);
	}
	return np;
}

/*
 * The offsets, in the batch's transaction, with each partition's high
 * watermark and newest event time stored (which detection's watermark is
 * made of).  Returns how many messages the batch's partitions hold behind
 * it, as far as their high watermarks are known.
 */
static int64
store_offsets(const KafkaPartition *parts, int np, const IngestedRows *rows)
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
		int64		high = KafkaSourceHighWatermark(MySource, parts[i].topic, parts[i].partition);

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
		const KafkaMessage *m = &rows->msgs[i];

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
		if (!MyHeard[j] && !KafkaSourcePartitionEmpty(MySource, MyAssigned[j].topic, MyAssigned[j].partition))
			return true;
	return false;
}

/*
 * One transaction: the rows, the dead letters, the dedup keys, what the
 * rules and rollups make of the rows, and the offsets.  If the fast path fails, the batch is retried row by row.
 */
static void
process_batch(KafkaMessage *msgs, int n, MemoryContext batch_cxt)
{
	KafkaPartition *parts = palloc(sizeof(KafkaPartition) * n);
	const int	np = batch_offsets(msgs, n, parts);
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
			set_error(edata->message);
			ok = false;
		}
		PG_END_TRY();
		if (ok)
			break;
	}
	MemoryContextSwitchTo(batch_cxt);
	KafkaSourceCommit(MySource, parts, np);		/* only after Postgres committed */
	KafkaSourceRelease(MySource);
	count_batch(&counts);
}

static void
claim_slot(int source_id)
{
	for (int i = 0; i < iotstream_max_workers; i++)
	{
		WorkerSlot *s = &Shared->slots[i];

		SpinLockAcquire(&s->mutex);
		if (s->pid == 0 || kill(s->pid, 0) != 0)
		{
			memset((char *) s + sizeof(slock_t), 0, sizeof(WorkerSlot) - sizeof(slock_t));
			s->source_id = source_id;
			s->pid = MyProcPid;
			s->started_at = GetCurrentTimestamp();
			strlcpy(s->state, "starting", sizeof(s->state));
			SpinLockRelease(&s->mutex);
			MySlot = s;
			return;
		}
		SpinLockRelease(&s->mutex);
	}
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("no free iotstream worker slot"),
			 errhint("Raise iotstream.max_workers and restart the server.")));
}

PGDLLEXPORT void iotstream_source_main(Datum main_arg);

void
iotstream_source_main(Datum main_arg)
{
	int			source_id = DatumGetInt32(main_arg);
	MemoryContext long_cxt;
	MemoryContext batch_cxt;
	KafkaMessage *msgs;
	KafkaSourceCallbacks cb = {on_assign, on_revoke, NULL};
	char		errbuf[512];
	TimestampTz deadline = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(iotstream_database, NULL, 0);

	long_cxt = AllocSetContextCreate(TopMemoryContext, "iotstream source", ALLOCSET_DEFAULT_SIZES);
	batch_cxt = AllocSetContextCreate(TopMemoryContext, "iotstream batch", ALLOCSET_DEFAULT_SIZES);
	claim_slot(source_id);
	before_shmem_exit(worker_exit, (Datum) 0);

	WorkerBeginXact("loading source");
	MyConfig = load_config(source_id, true, long_cxt);
	if (MyConfig == NULL)
	{
		WorkerCommitXact();
		proc_exit(0);			/* stopped or dropped meanwhile */
	}
	SpinLockAcquire(&MySlot->mutex);
	MySlot->target = MyConfig->target;
	SpinLockRelease(&MySlot->mutex);
	MyTarget = IngestTargetCreate(MyConfig->target, MyConfig->mapping, MyConfig->options,
								  MyConfig->name, source_id, long_cxt);
	MyDetect = DetectTargetCreate(MyConfig->target, long_cxt);
	WorkerCommitXact();
	pgstat_report_appname(MyConfig->name);

	MySource = KafkaSourceOpen(MyConfig->props, MyConfig->nprops,
							   (const char *const *) MyConfig->topics, MyConfig->ntopics,
							   &cb, IngestNeedsHeaders(MyTarget), errbuf, sizeof(errbuf));
	if (MySource == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("iotstream source \"%s\" could not start its consumer: %s",
						MyConfig->name, errbuf)));
	set_state("running");
	elog(LOG, "iotstream source \"%s\" started", MyConfig->name);

	msgs = MemoryContextAlloc(long_cxt, sizeof(KafkaMessage) * MyConfig->batch_size);
	MemoryContextSwitchTo(batch_cxt);
	for (;;)
	{
		int			got;
		int			base;
		long		timeout;
		const char *kerr;
		int64		nerr;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		base = pending;
		got = KafkaSourcePoll(MySource, msgs + base, MyConfig->batch_size - base);
		if (pending != base)
		{
			/*
			 * A revocation during the poll dropped the batch: what this poll
			 * returned is all that is left, so it starts the batch.
			 */
			memmove(msgs, msgs + base, sizeof(KafkaMessage) * got);
			base = 0;
		}
		if (got > 0 && base == 0)
			deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), MyConfig->batch_ms);
		pending = base + got;

		kerr = KafkaSourceLastError(MySource, &nerr);
		if (kerr && nerr != seen_errors)
		{
			seen_errors = nerr;
			set_error(kerr);
		}

		if (pending > 0 && (pending >= MyConfig->batch_size ||
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

		timeout = pending > 0 ?
			Max(1, TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline)) : 1000;
		(void) WaitLatchOrSocket(MyLatch,
								 WL_LATCH_SET | WL_SOCKET_READABLE | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 KafkaSourceFd(MySource), timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* ---------------------------------------------------------------------
 * Detection workers: their slots, and what they borrow from sources
 * ---------------------------------------------------------------------
 */

static void
detect_detach(int code, Datum arg)
{
	DetectSlot *slots = detect_slots();

	SpinLockAcquire(&Shared->detect_mutex);
	for (int i = 0; i < iotstream_max_workers; i++)
		if (slots[i].pid == MyProcPid)
			slots[i].relid = InvalidOid;
	SpinLockRelease(&Shared->detect_mutex);
}

/* The detection worker of relid takes a slot, so batches can wake it. */
void
DetectWorkerAttach(Oid relid)
{
	DetectSlot *slots = detect_slots();
	int			free_slot = -1;

	SpinLockAcquire(&Shared->detect_mutex);
	for (int i = 0; i < iotstream_max_workers; i++)
	{
		if (slots[i].relid == relid ||
			(free_slot < 0 && (slots[i].relid == InvalidOid || kill(slots[i].pid, 0) != 0)))
			free_slot = i;
		if (slots[i].relid == relid)
			break;
	}
	if (free_slot >= 0)
	{
		slots[free_slot].relid = relid;
		slots[free_slot].pid = MyProcPid;
		slots[free_slot].latch = MyLatch;
		slots[free_slot].backlog_at = 0;
		MyDetectSlot = &slots[free_slot];
	}
	SpinLockRelease(&Shared->detect_mutex);
	if (free_slot >= 0)
		before_shmem_exit(detect_detach, (Datum) 0);
	if (free_slot < 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("no free iotstream detection worker slot"),
				 errhint("Raise iotstream.max_workers and restart the server.")));
}

/*
 * After a batch into relid commits: its detection worker has work.
 * backlog: the source is draining one (see process_batch).
 */
void
DetectWorkerWake(Oid relid, bool backlog)
{
	DetectSlot *slots = detect_slots();
	Latch	   *latch = NULL;
	TimestampTz now = backlog ? GetCurrentTimestamp() : 0;

	SpinLockAcquire(&Shared->detect_mutex);
	for (int i = 0; i < iotstream_max_workers; i++)
		if (slots[i].relid == relid)
		{
			latch = slots[i].latch;
			if (backlog)
				slots[i].backlog_at = now;
			break;
		}
	SpinLockRelease(&Shared->detect_mutex);
	if (latch)
		SetLatch(latch);
}

/* For the detection worker: when a source last committed a batch of a backlog. */
TimestampTz
DetectWorkerBacklogAt(void)
{
	TimestampTz at;

	SpinLockAcquire(&Shared->detect_mutex);
	at = MyDetectSlot->backlog_at;
	SpinLockRelease(&Shared->detect_mutex);
	return at;
}

/*
 * A producer for alert topics on the connection of source source_id: its
 * bootstrap servers and security settings, not its consumer settings.
 * NULL (with the reason in errbuf) if it cannot be opened.  In a
 * transaction.
 */
KafkaSink *
SourceOpenAlertSink(int source_id, char *errbuf, size_t errlen)
{
	SourceConfig *c = load_config(source_id, false, CurrentMemoryContext);
	KafkaProperty *props;
	int			n = 0;

	if (c == NULL)
	{
		snprintf(errbuf, errlen, "source %d no longer exists", source_id);
		return NULL;
	}
	props = palloc(sizeof(KafkaProperty) * c->nprops);
	for (int i = 0; i < c->nprops; i++)
	{
		const char *name = c->props[i].name;

		if (strcmp(name, "bootstrap.servers") == 0 || strcmp(name, "client.id") == 0 ||
			strncmp(name, "security.", 9) == 0 || strncmp(name, "sasl.", 5) == 0 ||
			strncmp(name, "ssl.", 4) == 0 || strncmp(name, "socket.", 7) == 0 ||
			strcmp(name, "broker.address.family") == 0)
			props[n++] = c->props[i];
	}
	return KafkaSinkOpen(props, n, errbuf, errlen);
}

/* ---------------------------------------------------------------------
 * The launcher
 * ---------------------------------------------------------------------
 */

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
 * SQL-callable: waking the launcher at commit, and the status
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

/*
 * iotstream._worker_stats() -> setof (source_id, pid, state, messages, rows,
 *	 dead, duplicates, batches, messages_per_sec, rows_per_sec, started_at,
 *	 last_batch_at, last_error, last_error_at)
 */
PG_FUNCTION_INFO_V1(iotstream_worker_stats);
Datum
iotstream_worker_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		now = (int64) time(NULL);

	InitMaterializedSRF(fcinfo, 0);
	if (Shared == NULL)
		return (Datum) 0;		/* not preloaded */
	for (int i = 0; i < iotstream_max_workers; i++)
	{
		WorkerSlot	s;
		Datum		v[14];
		bool		nulls[14] = {0};
		int64		msgs = 0,
					rows = 0;

		SpinLockAcquire(&Shared->slots[i].mutex);
		memcpy(&s, &Shared->slots[i], sizeof(WorkerSlot));
		SpinLockRelease(&Shared->slots[i].mutex);
		if (s.source_id == 0)
			continue;
		/* a source's counters and errors are for those who may read its table */
		if (!superuser() &&
			(!OidIsValid(s.target) ||
			 !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(s.target)) ||
			 pg_class_aclcheck(s.target, GetUserId(), ACL_SELECT) != ACLCHECK_OK))
			continue;
		for (int b = 0; b < RATE_SECONDS; b++)
			if (s.rate_second[b] > now - RATE_SECONDS)
			{
				msgs += s.rate_messages[b];
				rows += s.rate_rows[b];
			}
		v[0] = Int32GetDatum(s.source_id);
		v[1] = Int32GetDatum(s.pid);
		nulls[1] = s.pid == 0;
		v[2] = CStringGetTextDatum(s.pid == 0 ? "stopped" : s.state);
		v[3] = Int64GetDatum(s.messages);
		v[4] = Int64GetDatum(s.rows);
		v[5] = Int64GetDatum(s.dead);
		v[6] = Int64GetDatum(s.duplicates);
		v[7] = Int64GetDatum(s.batches);
		v[8] = Float8GetDatum(msgs / (double) RATE_SECONDS);
		v[9] = Float8GetDatum(rows / (double) RATE_SECONDS);
		v[10] = TimestampTzGetDatum(s.started_at);
		v[11] = TimestampTzGetDatum(s.last_batch_at);
		nulls[11] = s.last_batch_at == 0;
		v[12] = CStringGetTextDatum(s.last_error);
		nulls[12] = s.last_error[0] == '\0';
		v[13] = TimestampTzGetDatum(s.last_error_at);
		nulls[13] = s.last_error_at == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nulls);
	}
	return (Datum) 0;
}

/* Called from _PG_init: GUCs, shared memory, and the launcher. */
void
WorkerInit(void)
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

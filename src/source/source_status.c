/*-------------------------------------------------------------------------
 * source_status.c
 *		Source workers' counters in shared memory, and _worker_stats().
 *
 * One slot per source worker holds what iotstream.source_status shows:
 * state, totals, per-second rates over the last minute, the last error.
 * A worker writes only its own slot, under the slot's spinlock; the SQL
 * function copies each slot under the same lock and shows a role only
 * the workers of the tables it may read.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/source_int.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#define RATE_SECONDS 60

/* One worker's counters, for iotstream.source_status. */
typedef struct SourceSlot
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
	SourceMemory memory;		/* as of the last report, once a second */
} SourceSlot;

static SourceSlot *Slots = NULL;
static SourceSlot *MySlot = NULL;

Size
SourceSlotsShmemSize(void)
{
	return mul_size(sizeof(SourceSlot), iotstream_max_workers);
}

/* In the shared memory startup hook. */
void
SourceSlotsShmemInit(void)
{
	bool		found;

	Slots = ShmemInitStruct("iotstream source slots", SourceSlotsShmemSize(), &found);
	if (!found)
	{
		memset(Slots, 0, SourceSlotsShmemSize());
		for (int i = 0; i < iotstream_max_workers; i++)
			SpinLockInit(&Slots[i].mutex);
	}
}

/* The worker of source_id takes a free slot. */
void
SourceSlotClaim(int source_id)
{
	for (int i = 0; i < iotstream_max_workers; i++)
	{
		SourceSlot *s = &Slots[i];

		SpinLockAcquire(&s->mutex);
		if (s->pid == 0 || kill(s->pid, 0) != 0)
		{
			memset((char *) s + sizeof(slock_t), 0, sizeof(SourceSlot) - sizeof(slock_t));
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

/* Its stream table, once the worker has read its source. */
void
SourceSlotSetTarget(Oid target)
{
	SpinLockAcquire(&MySlot->mutex);
	MySlot->target = target;
	SpinLockRelease(&MySlot->mutex);
}

/* At exit: the slot is free for the next worker. */
void
SourceSlotRelease(void)
{
	if (MySlot)
	{
		SpinLockAcquire(&MySlot->mutex);
		MySlot->pid = 0;
		strlcpy(MySlot->state, "stopped", sizeof(MySlot->state));
		SpinLockRelease(&MySlot->mutex);
	}
}

void
SourceSlotSetState(const char *state)
{
	if (!MySlot)
		return;
	SpinLockAcquire(&MySlot->mutex);
	strlcpy(MySlot->state, state, sizeof(MySlot->state));
	SpinLockRelease(&MySlot->mutex);
}

void
SourceSlotSetError(const char *msg)
{
	if (!MySlot)
		return;
	SpinLockAcquire(&MySlot->mutex);
	strlcpy(MySlot->last_error, msg, sizeof(MySlot->last_error));
	MySlot->last_error_at = GetCurrentTimestamp();
	SpinLockRelease(&MySlot->mutex);
}

void
SourceSlotCountBatch(int64 messages, int64 rows, int64 dead, int64 duplicates)
{
	int64		sec = (int64) time(NULL);
	int			b = sec % RATE_SECONDS;

	SpinLockAcquire(&MySlot->mutex);
	MySlot->messages += messages;
	MySlot->rows += rows;
	MySlot->dead += dead;
	MySlot->duplicates += duplicates;
	MySlot->batches++;
	if (MySlot->rate_second[b] != sec)
	{
		MySlot->rate_second[b] = sec;
		MySlot->rate_messages[b] = 0;
		MySlot->rate_rows[b] = 0;
	}
	MySlot->rate_messages[b] += messages;
	MySlot->rate_rows[b] += rows;
	MySlot->last_batch_at = GetCurrentTimestamp();
	SpinLockRelease(&MySlot->mutex);
}

/* What the worker's memory holds (SourceSlotReportMemory). */
void
SourceSlotSetMemory(const SourceMemory *m)
{
	if (!MySlot)
		return;
	SpinLockAcquire(&MySlot->mutex);
	MySlot->memory = *m;
	SpinLockRelease(&MySlot->mutex);
}

/*
 * This process's private memory as the kernel counts it (RssAnon in
 * /proc/self/status), in bytes; -1 where there is no such file.
 */
int64
SourceRssAnon(void)
{
	FILE	   *f = fopen("/proc/self/status", "r");
	char		line[256];
	int64		kb = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "RssAnon:", 8) == 0)
		{
			kb = strtoll(line + 8, NULL, 10);
			break;
		}
	fclose(f);
	return kb < 0 ? -1 : kb * 1024;
}

/*
 * iotstream._worker_stats() -> setof (source_id, pid, state, messages, rows,
 *	 dead, duplicates, batches, messages_per_sec, rows_per_sec, started_at,
 *	 last_batch_at, last_error, last_error_at, memory_bytes, dedup_bytes,
 *	 dedup_keys, dedup_filtered_keys, cached)
 */
PG_FUNCTION_INFO_V1(iotstream_worker_stats);
Datum
iotstream_worker_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		now = (int64) time(NULL);

	InitMaterializedSRF(fcinfo, 0);
	if (Slots == NULL)
		return (Datum) 0;		/* not preloaded */
	for (int i = 0; i < iotstream_max_workers; i++)
	{
		SourceSlot	s;
		Datum		v[19];
		bool		nulls[19] = {0};
		int64		msgs = 0,
					rows = 0;

		SpinLockAcquire(&Slots[i].mutex);
		memcpy(&s, &Slots[i], sizeof(SourceSlot));
		SpinLockRelease(&Slots[i].mutex);
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
		v[14] = Int64GetDatum(s.memory.rss_anon);
		nulls[14] = s.memory.rss_anon <= 0;
		v[15] = Int64GetDatum(s.memory.dedup_bytes);
		v[16] = Int64GetDatum(s.memory.dedup_keys);
		v[17] = Int64GetDatum(s.memory.dedup_filtered_keys);
		v[18] = Int64GetDatum(s.memory.cached);
		nulls[18] = s.memory.cached < 0 || s.memory.rss_anon <= 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nulls);
	}
	return (Datum) 0;
}

/*-------------------------------------------------------------------------
 * detect_slots.c
 *		The detection workers' slots in shared memory.
 *
 * A detection worker takes the slot of its table when it starts; a source
 * worker finds it there after each commit, sets its latch and, while it
 * drains a backlog, notes when its last full batch committed (the
 * detection worker yields to it meanwhile).  The launcher sets the slots
 * up at server start.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "detect/detect_int.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

typedef struct DetectSlot
{
	Oid			relid;			/* InvalidOid: free */
	pid_t		pid;
	Latch	   *latch;
	TimestampTz backlog_at;		/* last batch of a backlog committed, 0: none */
} DetectSlot;

typedef struct DetectSlotArray
{
	slock_t		mutex;
	DetectSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} DetectSlotArray;

static DetectSlotArray *DetectSlots = NULL;
static DetectSlot *MyDetectSlot = NULL;	/* a detection worker's own */

Size
DetectSlotsShmemSize(void)
{
	return add_size(offsetof(DetectSlotArray, slots),
					mul_size(sizeof(DetectSlot), iotstream_max_workers));
}

/* In the shared memory startup hook. */
void
DetectSlotsShmemInit(void)
{
	bool		found;

	DetectSlots = ShmemInitStruct("iotstream detection slots", DetectSlotsShmemSize(), &found);
	if (!found)
	{
		memset(DetectSlots, 0, DetectSlotsShmemSize());
		SpinLockInit(&DetectSlots->mutex);
	}
}

static void
detect_detach(int code, Datum arg)
{
	DetectSlot *slots = DetectSlots->slots;

	SpinLockAcquire(&DetectSlots->mutex);
	for (int i = 0; i < iotstream_max_workers; i++)
		if (slots[i].pid == MyProcPid)
			slots[i].relid = InvalidOid;
	SpinLockRelease(&DetectSlots->mutex);
}

/* The detection worker of relid takes a slot, so batches can wake it. */
void
DetectWorkerAttach(Oid relid)
{
	DetectSlot *slots = DetectSlots->slots;
	int			free_slot = -1;

	SpinLockAcquire(&DetectSlots->mutex);
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
	SpinLockRelease(&DetectSlots->mutex);
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
	DetectSlot *slots = DetectSlots->slots;
	Latch	   *latch = NULL;
	TimestampTz now = backlog ? GetCurrentTimestamp() : 0;

	SpinLockAcquire(&DetectSlots->mutex);
	for (int i = 0; i < iotstream_max_workers; i++)
		if (slots[i].relid == relid)
		{
			latch = slots[i].latch;
			if (backlog)
				slots[i].backlog_at = now;
			break;
		}
	SpinLockRelease(&DetectSlots->mutex);
	if (latch)
		SetLatch(latch);
}

/* For the detection worker: when a source last committed a batch of a backlog. */
TimestampTz
DetectWorkerBacklogAt(void)
{
	TimestampTz at;

	SpinLockAcquire(&DetectSlots->mutex);
	at = MyDetectSlot->backlog_at;
	SpinLockRelease(&DetectSlots->mutex);
	return at;
}

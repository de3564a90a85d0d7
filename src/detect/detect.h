/*-------------------------------------------------------------------------
 * detect/detect.h
 *		What other stages may use of continuous detection.
 *
 * A source worker calls DetectBatch in each batch's transaction and wakes
 * the table's detection worker after the commit; the launcher sets up the
 * detection workers' shared memory.
 *-------------------------------------------------------------------------
 */
#ifndef DETECT_DETECT_H
#define DETECT_DETECT_H

#include "iotstream.h"
#include "ingest/ingest.h"

/* in detect.c */

/*
 * The rules and rollups of one stream table.  A source worker calls
 * DetectBatch in each batch's transaction; the table's detection worker
 * calls DetectRun in transactions of its own.
 */
typedef struct DetectTarget DetectTarget;

extern DetectTarget *DetectTargetCreate(Oid relid, MemoryContext cxt);
extern bool DetectBatch(DetectTarget *d, const IngestedRows *rows, bool hold);

/* in detect_slots.c */
extern void DetectWorkerWake(Oid relid, bool backlog);
extern Size DetectSlotsShmemSize(void);
extern void DetectSlotsShmemInit(void);

#endif							/* DETECT_DETECT_H */

/*-------------------------------------------------------------------------
 * detect/detect_int.h
 *		Detection's own declarations: rules, rollups, the worker, alerts.
 *
 * Nothing outside src/detect/ includes it.
 *-------------------------------------------------------------------------
 */
#ifndef DETECT_DETECT_INT_H
#define DETECT_DETECT_INT_H

#include "detect/detect.h"
#include "analytics/analytics.h"
#include "source/source.h"

#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"

/* date_bin(width, t, '2000-01-01 00:00+00'): the start of t's window. */
static inline TimestampTz
DetectDateBin(const Interval *width, TimestampTz t)
{
	return DatumGetTimestampTz(DirectFunctionCall3(timestamptz_bin,
												   IntervalPGetDatum(width),
												   TimestampTzGetDatum(t),
												   TimestampTzGetDatum(0)));
}

/* An interval without months (the SQL API rejects those) in microseconds. */
static inline int64
DetectIntervalUsecs(const Interval *i)
{
	return i->time + (int64) i->day * USECS_PER_DAY;
}

/* in detect.c */
extern bool DetectRun(DetectTarget *d, bool *alerts);
extern int	DetectSource(DetectTarget *d, const char **name);

/* in rollup.c */
typedef struct Rollup Rollup;

extern List *RollupsLoad(Oid relid, MemoryContext cxt);
extern void RollupsKeep(List *rollups);
extern void RollupsRelease(List *rollups);
extern void RollupMergeBatch(Rollup *r, const IngestedRows *rows,
							 bool have_watermark, TimestampTz watermark);
extern void RollupApply(Rollup *r);

/* in rules.c */
typedef struct Rule Rule;

/* Where a rule's rows came from, for its anomalies. */
typedef struct DetectOrigin
{
	const char *source;
	const char *offsets;		/* JSON array of {topic, partition, next_offset} */
} DetectOrigin;

extern List *RulesLoad(Oid relid, MemoryContext cxt);
extern void RulesKeep(List *rules);
extern void RulesRelease(List *rules);
extern void RuleNoteBatch(Rule *r, const IngestedRows *rows, bool have_watermark,
						  TimestampTz old_watermark, TimestampTz new_watermark,
						  TimestampTz batch_min);
extern int64 RuleEvaluate(Rule *r, TimestampTz watermark, const DetectOrigin *origin,
						  bool *deferred);
extern bool RuleAlerts(const Rule *r);

/* in detect_worker.c */
PGDLLEXPORT void iotstream_detect_main(Datum main_arg);

/* in detect_slots.c */
extern void DetectWorkerAttach(Oid relid);
extern TimestampTz DetectWorkerBacklogAt(void);

/* in alerts.c */
extern int	AlertsDrain(KafkaSink **sinkp, int source_id, const char *source);

#endif							/* DETECT_DETECT_INT_H */

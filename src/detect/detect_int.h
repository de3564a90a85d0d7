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

/* in detect.c */
extern bool DetectRun(DetectTarget *d, bool *alerts);
extern int	DetectSource(DetectTarget *d, const char **name);
extern TimestampTz DetectDateBin(const Interval *width, TimestampTz t);
extern int64 DetectIntervalUsecs(const Interval *i);

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
extern void DetectWorkerAttach(Oid relid);
extern TimestampTz DetectWorkerBacklogAt(void);

/* in alerts.c */
extern int	AlertsDrain(KafkaSink **sinkp, int source_id, const char *source);

#endif							/* DETECT_DETECT_INT_H */

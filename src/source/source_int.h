/*-------------------------------------------------------------------------
 * source/source_int.h
 *		The source stage's own declarations.
 *
 * Nothing outside src/source/ includes it.
 *-------------------------------------------------------------------------
 */
#ifndef SOURCE_SOURCE_INT_H
#define SOURCE_SOURCE_INT_H

#include "source/source.h"

/* in source_config.c */
typedef struct SourceConfig
{
	int			source_id;
	char	   *name;
	char	   *kind;			/* iotstream.sources.kind: which SourceOps */
	Oid			target;
	Jsonb	   *mapping;
	Jsonb	   *options;
	int			batch_size;
	int			batch_ms;
	char	  **topics;
	int			ntopics;
	SourceProperty *props;
	int			nprops;
} SourceConfig;

extern SourceConfig *SourceConfigLoad(int source_id, bool running, MemoryContext cxt);
extern const SourceOps *SourceOpsFor(const char *kind);

/* in source_status.c: a worker's own slot */
extern void SourceSlotClaim(int source_id);
extern void SourceSlotSetTarget(Oid target);
extern void SourceSlotSetState(const char *state);
extern void SourceSlotSetError(const char *msg);
extern void SourceSlotCountBatch(int64 messages, int64 rows, int64 dead, int64 duplicates);
extern void SourceSlotRelease(void);

/* A worker's memory, as source_status shows it. */
typedef struct SourceMemory
{
	int64		rss_anon;		/* bytes of private memory */
	int64		dedup_bytes;	/* what dedup holds */
	int64		dedup_keys;		/* keys it holds exactly */
	int64		dedup_filtered_keys;	/* keys behind its filters */
} SourceMemory;

extern void SourceSlotSetMemory(const SourceMemory *m);
extern int64 SourceRssAnon(void);

#endif							/* SOURCE_SOURCE_INT_H */

/*-------------------------------------------------------------------------
 * ingest/ingest_int.h
 *		Ingestion's own declarations: stream tables and batched index inserts.
 *
 * Nothing outside src/ingest/ includes it.
 *-------------------------------------------------------------------------
 */
#ifndef INGEST_INGEST_INT_H
#define INGEST_INGEST_INT_H

#include "ingest/ingest.h"

/* in stream_table.c */

/* What a stream table decides about one row's event time. */
typedef enum StreamRowVerdict
{
	STREAM_ROW_OK = 0,
	STREAM_ROW_NULL_TIME,		/* the time column is NULL */
	STREAM_ROW_TOO_OLD,			/* older than now() - max_past */
	STREAM_ROW_TOO_NEW,			/* newer than now() + max_future */
	STREAM_ROW_OUT_OF_RANGE,	/* outside the years 1 to 9999 */
	STREAM_ROW_NO_PARTITION		/* its partition could not be created */
} StreamRowVerdict;

extern void StreamTableCheck(Oid relid, const char *time_column, const Interval *iv,
							 AttrNumber *attno, Oid *typid);
extern AttrNumber StreamTimeColumn(Oid relid, Oid *typid);
extern void StreamEnsurePartitions(Oid relid, const StreamTime *ts,
								   const bool *isnull, int n,
								   StreamRowVerdict *verdicts, const char **errors);
extern const char *StreamRowVerdictReason(StreamRowVerdict verdict);
extern bool StreamTableFind(Oid relid, bool read_catalog);
extern int	StreamRoutePartitions(Oid relid, const StreamTime *ts, const bool *isnull,
								  int n, StreamRowVerdict *verdicts, bool create);

/* in stream_table_lookup.c */
extern bool StreamTableIs(Oid relid);
extern Oid	IngestExtensionOwner(void);

/* in insert_hint.c */
extern void InsertHintInit(void);
extern void InsertHintRun(Oid relid, void (*step) (void *arg), void *arg);

/* in dedup.c: which keys of a batch were seen within the horizon */
typedef struct DedupState DedupState;

typedef enum DedupVerdict
{
	DEDUP_NEW,					/* not seen within the horizon */
	DEDUP_SEEN,					/* seen: the message is a duplicate */
	DEDUP_MAYBE					/* memory cannot tell: DedupResolve asks the table */
} DedupVerdict;

/* a dedup key: 128 bits of hash of the key columns' values (dedup.c) */
typedef struct DedupKey
{
	uint64		hi;
	uint64		lo;
} DedupKey;

typedef struct DedupUsage
{
	int64		bytes;			/* memory held */
	int64		keys;			/* keys held exactly */
	int64		filtered_keys;	/* keys behind a Bloom filter */
	int64		unfiltered_keys;	/* keys only the table holds */
} DedupUsage;

extern DedupState *DedupCreate(int source_id, const Interval *horizon, int64 budget,
							   MemoryContext cxt);
extern void DedupFree(DedupState *d);
extern void DedupForget(DedupState *d);
extern void DedupBatchBegin(DedupState *d);
extern int	DedupClassify(DedupState *d, DedupKey *keys, int n, DedupVerdict *verdict,
						  bool put_new);
extern void DedupResolve(DedupState *d, const DedupKey *keys, int n, DedupVerdict *verdict);
extern void DedupRemember(DedupState *d, const DedupKey *keys, int n);
extern void DedupMemory(const DedupState *d, DedupUsage *u);

/* in routed_insert.c: rows stored as COPY stores them */
typedef struct RoutedInsert RoutedInsert;

extern RoutedInsert *RoutedInsertBegin(Oid relid, bool statement_triggers, MemoryContext cxt);
extern bool RoutedInsertRow(RoutedInsert *st, const Datum *values, const bool *nulls);
extern void RoutedInsertEnd(RoutedInsert *st, bool statement_triggers);

/* in index_batch.c */
struct ResultRelInfo;
struct TupleTableSlot;
typedef struct IndexBatch IndexBatch;

extern IndexBatch *IndexBatchCreate(struct ResultRelInfo *rri);
extern void IndexBatchInsert(IndexBatch *ib, struct ResultRelInfo *rri,
							 struct TupleTableSlot **slots, int n);

#endif							/* INGEST_INGEST_INT_H */

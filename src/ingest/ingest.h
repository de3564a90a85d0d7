/*-------------------------------------------------------------------------
 * ingest/ingest.h
 *		What other stages may use of ingestion.
 *
 * A source worker stores each batch with IngestBatch, in the transaction
 * that also stores its positions, and hands what it stored on to
 * detection (IngestedRows).
 *-------------------------------------------------------------------------
 */
#ifndef INGEST_INGEST_H
#define INGEST_INGEST_H

#include "iotstream.h"
#include "decode/decode.h"
#include "source/source.h"

/* in stream_table.c */

/*
 * Event time of a row, as microseconds since 2000-01-01 00:00 UTC: the
 * representation of timestamptz.  Columns of type timestamp are read as UTC
 * wall-clock time, date columns as midnight.
 */
typedef int64 StreamTime;

extern StreamTime StreamTimeFromDatum(Datum value, Oid typid);

/* in ingest.c */

typedef struct IngestTarget IngestTarget;

typedef struct IngestCounts
{
	int64		messages;
	int64		rows;
	int64		dead;
	int64		duplicates;
} IngestCounts;

extern IngestTarget *IngestTargetCreate(Oid relid, Jsonb *mapping, Jsonb *options,
										const char *source_name, int source_id,
										MemoryContext cxt);
extern bool IngestNeedsHeaders(const IngestTarget *t);
/*
 * What IngestBatch stored, for the stages after ingest: the decoded rows in
 * the target's column order (natts values per message), which of them were
 * inserted, and their event times.  Valid until the batch context resets.
 */
typedef struct IngestedRows
{
	int			n;				/* messages in the batch */
	int			natts;
	const Datum *values;		/* n * natts */
	const bool *nulls;			/* n * natts */
	const bool *stored;			/* row i was inserted */
	const StreamTime *ts;		/* event time of row i, valid if stored */
	const SourceMessage *msgs;
} IngestedRows;

extern void IngestBatch(IngestTarget *t, const SourceMessage *msgs, int n,
						bool row_by_row, IngestCounts *counts,
						IngestedRows *out);
extern void IngestDedupReset(IngestTarget *t);
/* what a target's dedup holds in memory: bytes, exact keys, filtered keys */
extern void IngestDedupMemory(const IngestTarget *t, int64 *bytes, int64 *keys,
							  int64 *filtered_keys);

#endif							/* INGEST_INGEST_H */

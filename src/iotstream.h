/*-------------------------------------------------------------------------
 * iotstream.h
 *		The one private header of iotstream.
 *
 * Stages talk to each other only through what is declared here:
 * source -> decode -> ingest (into partitions) -> detect -> export.
 *-------------------------------------------------------------------------
 */
#ifndef IOTSTREAM_H
#define IOTSTREAM_H

#include "postgres.h"

#include "access/attnum.h"
#include "datatype/timestamp.h"
#include "utils/jsonb.h"

#define IOTSTREAM_VERSION "0.1.0"

/* in iotstream.c */
extern void _PG_init(void);

/* in stream_table.c */

/*
 * Event time of a row, as microseconds since 2000-01-01 00:00 UTC: the
 * representation of timestamptz.  Columns of type timestamp are read as UTC
 * wall-clock time, date columns as midnight.
 */
typedef int64 StreamTime;

/* What a stream table decides about one row's event time. */
typedef enum StreamRowVerdict
{
	STREAM_ROW_OK = 0,
	STREAM_ROW_NULL_TIME,		/* the time column is NULL */
	STREAM_ROW_TOO_OLD,			/* older than now() - max_past */
	STREAM_ROW_TOO_NEW			/* newer than now() + max_future */
} StreamRowVerdict;

extern bool IsStreamTable(Oid relid);
extern AttrNumber StreamTimeColumn(Oid relid, Oid *typid);
extern StreamTime StreamTimeFromDatum(Datum value, Oid typid);
extern StreamRowVerdict StreamEnsurePartition(Oid relid, StreamTime ts);
extern void StreamEnsurePartitions(Oid relid, const StreamTime *ts,
								   const bool *isnull, int n,
								   StreamRowVerdict *verdicts);
extern const char *StreamRowVerdictReason(StreamRowVerdict verdict);

/* in decode.c */

/* A header of a Kafka message. */
typedef struct KafkaHeader
{
	const char *name;
	const char *value;			/* NULL for a null header value */
	size_t		len;
} KafkaHeader;

/* One Kafka message as the decoder sees it: no librdkafka types here. */
typedef struct KafkaMessage
{
	const char *payload;		/* NULL for a tombstone */
	size_t		payload_len;
	const char *key;			/* NULL if the message has no key */
	size_t		key_len;
	const char *topic;
	int32		partition;
	int64		offset;
	int64		timestamp_ms;	/* -1 if the message has no timestamp */
	int			nheaders;
	const KafkaHeader *headers;
} KafkaMessage;

/* A compiled mapping from messages to the columns of one target table. */
typedef struct DecodePlan DecodePlan;

extern DecodePlan *DecodePlanCreate(Oid relid, Jsonb *mapping, MemoryContext cxt);
extern bool DecodeMessage(DecodePlan *plan, const KafkaMessage *msg,
						  Datum *values, bool *nulls, const char **reason);

/* in worker.c */
extern void WorkerInit(void);

/* in kafka_source.c */

typedef struct KafkaSource KafkaSource;

typedef struct KafkaProperty
{
	const char *name;
	const char *value;
} KafkaProperty;

/* A partition and an offset: the next one to read, or -1 for none known. */
typedef struct KafkaPartition
{
	const char *topic;
	int32		partition;
	int64		offset;
} KafkaPartition;

typedef struct KafkaSourceCallbacks
{
	/* fill parts[i].offset with the stored next offset, or leave -1 */
	void		(*on_assign) (void *arg, KafkaPartition *parts, int n);
	/* drop everything read and not yet committed */
	void		(*on_revoke) (void *arg);
	void	   *arg;
} KafkaSourceCallbacks;

extern KafkaSource *KafkaSourceOpen(const KafkaProperty *props, int nprops,
									const char *const *topics, int ntopics,
									const KafkaSourceCallbacks *cb,
									char *errbuf, size_t errlen);
extern int	KafkaSourceFd(KafkaSource *ks);
extern int	KafkaSourcePoll(KafkaSource *ks, KafkaMessage *out, int max);
extern void KafkaSourceRelease(KafkaSource *ks);
extern void KafkaSourceRewind(KafkaSource *ks, const KafkaPartition *parts, int n);
extern void KafkaSourceCommit(KafkaSource *ks, const KafkaPartition *parts, int n);
extern int64 KafkaSourceHighWatermark(KafkaSource *ks, const char *topic, int32 partition);
extern const char *KafkaSourceLastError(KafkaSource *ks, int64 *count);
extern void KafkaSourceClose(KafkaSource *ks);

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
extern void IngestBatch(IngestTarget *t, const KafkaMessage *msgs, int n,
						bool row_by_row, IngestCounts *counts);
extern void IngestDedupReset(IngestTarget *t);

#endif							/* IOTSTREAM_H */

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

/*
 * A compiled mapping from messages to the columns of one target table.
 *
 * DecodePlanCreate compiles mapping (NULL: keys to columns by name, see
 * decode.c) against relid's tuple descriptor into cxt.  Call it inside a
 * transaction; a bad mapping raises an error with a hint.
 *
 * DecodeMessage fills values/nulls, one entry per attribute of that
 * descriptor (dropped and generated columns come back NULL).  It never
 * raises an error for any message: it returns false with *reason (static
 * or palloc'd, short, naming the column) for a dead letter.  Datums are
 * palloc'd in CurrentMemoryContext.  A plan decodes one message at a time.
 */
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

/*
 * After a successful DecodeMessage: for each column (index attno - 1), true
 * if the message supplied no value at all and the column has a DEFAULT (or
 * is an identity column), so the ingest path should evaluate the default
 * instead of storing the NULL in nulls[].  Valid until the next call.
 */
extern const bool *DecodeUseDefault(const DecodePlan *plan);

/* in json_scan.c */

/* JSON value kinds as the scanner reports them. */
typedef enum JsonTokenType
{
	JTOK_NONE = 0,				/* absent */
	JTOK_NULL,
	JTOK_FALSE,
	JTOK_TRUE,
	JTOK_NUMBER,
	JTOK_STRING,				/* span includes the quotes */
	JTOK_OBJECT,
	JTOK_ARRAY,
	JTOK_RAW,					/* not JSON: raw bytes taken as a string */
	JTOK_BADSHAPE				/* a path went through a non-object value */
} JsonTokenType;

#define JTOK_F_ESCAPES	0x01	/* a string with backslash escapes */
#define JTOK_F_NUL		0x02	/* holds a \u0000 escape somewhere */
#define JTOK_F_BIGNUM	0x04	/* holds a number beyond numeric's safe range */
#define JTOK_F_INTEGRAL	0x08	/* a number without fraction or exponent */

/* A value found in a message: a span of the (validated) payload. */
typedef struct JsonToken
{
	const char *start;
	int			len;
	uint8		type;
	uint8		flags;
} JsonToken;

/* What the scanner stores for a column: the best match so far. */
typedef struct JsonScanSlot
{
	JsonToken	tok;
	int			prio;
} JsonScanSlot;

/* Keys to look for in one JSON object, built once per plan. */
typedef struct JsonKeyNode JsonKeyNode;
typedef struct JsonKeyEntry
{
	const char *name;
	int			len;
	uint32		hash;			/* JsonKeyHash(name) */
	bool		fuzzy;			/* default rule: camelCase/case-insensitive */
	int			ncols;
	int		   *cols;			/* slots that take this key's value */
	JsonKeyNode *child;			/* keys wanted inside it, or NULL */
} JsonKeyEntry;

struct JsonKeyNode
{
	int			nentries;
	JsonKeyEntry *entries;
	int			hashmask;
	int		   *hashtab;		/* entry index + 1, 0 = empty */
};

extern uint32 JsonKeyHash(const char *s, int len);
extern void JsonKeyNodeFinish(JsonKeyNode *node);
extern bool JsonScan(const char *buf, size_t len, const JsonKeyNode *root,
					 JsonScanSlot *slots, JsonToken *whole,
					 const char **error, size_t *error_at);
extern int	JsonUnescape(const char *s, int len, char *dst);

/* in json_scalar.c */
extern bool JsonIsNumber(const char *s, int len, uint8 *flags);
extern bool JsonParseInt64(const char *s, int len, int64 *out,
						   const char **error);
extern bool JsonParseFloat8(const char *s, int len, double *out,
							const char **error);
extern bool JsonParseFloat4(const char *s, int len, float *out,
							const char **error);
extern bool JsonNumericFits(const char *s, int len, int32 typmod);
extern bool JsonParseTimestamp(const char *s, int len, int64 *out,
							   const char **error);
extern bool JsonEpochToTimestamp(const char *s, int len, int64 *out,
								 const char **error);
extern bool JsonParseUuid(const char *s, int len, unsigned char *out);

/* in decode_value.c */

/* The column types the decoder fills. */
typedef enum DecodeKind
{
	DK_TEXT,
	DK_VARCHAR,
	DK_INT2,
	DK_INT4,
	DK_INT8,
	DK_FLOAT4,
	DK_FLOAT8,
	DK_NUMERIC,
	DK_BOOL,
	DK_TIMESTAMPTZ,
	DK_TIMESTAMP,
	DK_DATE,
	DK_UUID,
	DK_JSONB,
	DK_JSON,
	DK_BYTEA,					/* only from $payload and $key */
	DK_UNSUPPORTED
} DecodeKind;

extern bool DecodeValue(DecodeKind kind, int32 typmod, const JsonToken *tok,
						Datum *value, const char **why);
extern Datum DecodeHeaders(const KafkaMessage *msg);

#endif							/* IOTSTREAM_H */

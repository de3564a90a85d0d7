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

/* in stats.c */

/*
 * Mergeable summary statistics of float8 values, kept the way PostgreSQL's
 * own float8 aggregates keep them (Youngs-Cramer): n, the sum sx, and sxx,
 * the sum of squared deviations from the mean.  This struct is also the
 * on-disk layout of the SQL type iotstream.stats (40 bytes, double-aligned).
 * An empty state has n = 0, sx = sxx = 0, min = +Infinity, max = -Infinity.
 */
typedef struct StatsState
{
	int64		n;
	float8		sx;
	float8		sxx;
	float8		min;
	float8		max;
} StatsState;

extern void StatsInit(StatsState *s);
extern void StatsAdd(StatsState *s, float8 x);
extern bool StatsRemove(StatsState *s, float8 x);
extern void StatsMerge(StatsState *into, const StatsState *from);
extern float8 StatsMean(const StatsState *s);
extern float8 StatsVariance(const StatsState *s, bool sample);

/* in detectors.c */

/* Exponentially weighted moving average: s1 = x1, st = a*xt + (1-a)*s(t-1). */
typedef struct EwmaState
{
	int64		n;
	float8		value;
} EwmaState;

extern void EwmaStep(EwmaState *s, float8 alpha, float8 x);

/*
 * EWMA control chart.  mu and sigma are given, or estimated from the first
 * `warmup` values (no alarm before then); t counts the charted values.
 */
typedef struct EwmaChartState
{
	float8		lambda;
	float8		L;
	bool		estimate;		/* mu/sigma come from the warm-up values */
	int32		warmup;
	StatsState	warm;
	float8		mu;
	float8		sigma;
	int64		t;
	float8		z;
	float8		lower;
	float8		upper;
	bool		alarm;
} EwmaChartState;

extern void EwmaChartInit(EwmaChartState *s, float8 lambda, float8 L,
						  bool have_mu_sigma, float8 mu, float8 sigma,
						  int32 warmup);
extern void EwmaChartStep(EwmaChartState *s, float8 x);

/* Tabular CUSUM: hi = max(0, hi + x - target - k), lo likewise downwards. */
typedef struct CusumState
{
	float8		hi;
	float8		lo;
	bool		alarm;
} CusumState;

extern void CusumStep(CusumState *s, float8 x, float8 target, float8 k,
					  float8 h);

/* Which tail of the kernel-density p-value a spike detector uses. */
typedef enum KdeMode
{
	KDE_SPIKES,
	KDE_DIPS,
	KDE_SPIKES_AND_DIPS
} KdeMode;

/*
 * The last `size` values of a series (a ring buffer) and, for change points,
 * the log of a power martingale: O(size) memory per key.  The values follow
 * the struct in the same allocation (KdeHistorySize()).
 */
typedef struct KdeHistory
{
	int32		size;
	int32		nvalues;		/* values held, <= size */
	int32		next;			/* ring position of the next value */
	KdeMode		mode;
	float8		confidence;		/* 1..100 */
	float8		log_martingale;
	/* result of the last step */
	float8		score;
	float8		p_value;
	float8		martingale;		/* NaN when not computed */
	bool		alarm;
	float8		values[FLEXIBLE_ARRAY_MEMBER];
} KdeHistory;

extern Size KdeHistorySize(int32 size);
extern void KdeHistoryInit(KdeHistory *h, int32 size, float8 confidence,
						   KdeMode mode);
extern float8 KdePValue(const KdeHistory *h, float8 x);
extern void KdeSpikeStep(KdeHistory *h, float8 x);
extern void KdeChangePointStep(KdeHistory *h, float8 x);
extern float8 RobustZscore(float8 *values, int n, float8 x, float8 *median,
						   float8 *mad);

#endif							/* IOTSTREAM_H */

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

#include <pthread.h>

#include "access/attnum.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"

/* IOTSTREAM_VERSION comes from the control file, through the Makefile */

/* in iotstream.c */
extern void _PG_init(void);

/* shared by rollup.c and parquet_writer.c */

/*
 * Hash of a short byte string, 8 bytes at a time: device names and metric
 * types cost a few multiplies (hash_bytes was a quarter of the Parquet
 * dictionary thread's time).  For in-memory tables only: it is not stable
 * across versions.
 */
static inline uint32
BytesHash(const char *v, size_t len)
{
	uint64		h = (uint64) len * UINT64CONST(0x9e3779b97f4a7c15);
	uint64		x;

	while (len >= 8)
	{
		memcpy(&x, v, 8);
		h = (h ^ x) * UINT64CONST(0xbf58476d1ce4e5b9);
		h ^= h >> 31;
		v += 8;
		len -= 8;
	}
	if (len > 0)
	{
		x = 0;
		memcpy(&x, v, len);
		h = (h ^ x) * UINT64CONST(0xbf58476d1ce4e5b9);
		h ^= h >> 31;
	}
	h *= UINT64CONST(0x94d049bb133111eb);
	h ^= h >> 32;
	return (uint32) h;
}

/* in owner.c: table code runs as the table's owner (see owner.c) */
typedef struct AsOwner
{
	Oid			saved_user;
	int			saved_sec;
	int			guc_level;
	bool		active;
} AsOwner;

extern Oid	TableOwner(Oid relid);
extern void AsOwnerBegin(AsOwner *s, Oid owner);
extern void AsOwnerEnd(AsOwner *s);
extern Oid	OwnerForCaller(Oid relid);

/* how stored statements name their tables (sql/install/50_detect.sql) */
#define PLACEHOLDER_SOURCE	"\"@iotstream.source@\""
#define PLACEHOLDER_ROLLUP	"\"@iotstream.rollup@\""
#define PLACEHOLDER_DELTA	"\"@iotstream.delta@\""
extern char *RelationPlaceholderSubstitute(const char *sql, const char *placeholder, Oid relid);

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

extern void StreamTableCheck(Oid relid, const char *time_column, const Interval *iv,
							 AttrNumber *attno, Oid *typid);
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
extern char *iotstream_database;
extern void WorkerBeginXact(const char *activity);
extern void WorkerCommitXact(void);
extern int	iotstream_detection_yield;
extern void DetectWorkerAttach(Oid relid);
extern void DetectWorkerWake(Oid relid, bool backlog);
extern TimestampTz DetectWorkerBacklogAt(void);

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
									const KafkaSourceCallbacks *cb, bool headers,
									char *errbuf, size_t errlen);
extern int	KafkaSourceFd(KafkaSource *ks);
extern int	KafkaSourcePoll(KafkaSource *ks, KafkaMessage *out, int max);
extern void KafkaSourceRelease(KafkaSource *ks);
extern void KafkaSourceCommit(KafkaSource *ks, const KafkaPartition *parts, int n);
extern int64 KafkaSourceHighWatermark(KafkaSource *ks, const char *topic, int32 partition);
extern bool KafkaSourcePartitionEmpty(KafkaSource *ks, const char *topic, int32 partition);
extern const char *KafkaSourceLastError(KafkaSource *ks, int64 *count);
extern void KafkaSourceClose(KafkaSource *ks);

/* in index_batch.c */
struct ResultRelInfo;
struct TupleTableSlot;
typedef struct IndexBatch IndexBatch;

extern IndexBatch *IndexBatchCreate(struct ResultRelInfo *rri);
extern void IndexBatchInsert(IndexBatch *ib, struct ResultRelInfo *rri,
							 struct TupleTableSlot **slots, int n);

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
	const KafkaMessage *msgs;
} IngestedRows;

extern void IngestBatch(IngestTarget *t, const KafkaMessage *msgs, int n,
						bool row_by_row, IngestCounts *counts,
						IngestedRows *out);
extern void IngestDedupReset(IngestTarget *t);

/*
 * After a successful DecodeMessage: for each column (index attno - 1), true
 * if the message supplied no value at all and the column has a DEFAULT (or
 * is an identity column), so the ingest path should evaluate the default
 * instead of storing the NULL in nulls[].  Valid until the next call.
 */
extern const bool *DecodeUseDefault(const DecodePlan *plan);
extern bool DecodeNeedsHeaders(const DecodePlan *plan);

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
extern bool StatsZscore(const StatsState *s, float8 x, float8 *z);

/* in windows.c */
extern int64 PositiveWindowLength(const Interval *iv, const char *what);
extern int64 WindowStart(int64 ts, int64 origin, int64 width, const char *fname);
extern int	Int64PairCmp(const void *a, const void *b);

/* The memory context of the aggregate calling; `what` names it in the error. */
static inline MemoryContext
AggStateContext(FunctionCallInfo fcinfo, const char *what)
{
	MemoryContext cxt;

	if (!AggCheckCallContext(fcinfo, &cxt))
		elog(ERROR, "%s called in non-aggregate context", what);
	return cxt;
}

/* in agg_pack.c */
extern void AggTooMany(const char *what) pg_attribute_noreturn();
extern void *AggArrayNew(MemoryContext cxt, int64 cap, Size elem, int64 max,
						 const char *what);
extern void *AggArrayGrow(void *array, int64 *cap, int64 need, Size elem, int64 max,
						  const char *what);
typedef struct PackPart
{
	const void *data;
	Size		len;
} PackPart;
extern bytea *StatePack(const PackPart *parts, int nparts);
extern const char *StateUnpack(bytea *b, void *header, Size hlen, Size *rest,
							   const char *what);

/* in detector_aggs.c */
extern int64 OutlierSummaryRow(const float8 *v, int64 n, float8 k, Datum *values, bool *nulls);
struct TupleDescData;
typedef struct CompositeCache CompositeCache;
extern CompositeCache *CompositeCacheCreate(MemoryContext cxt, struct TupleDescData *tupdesc);
extern Datum CompositeForm(CompositeCache *cc, Datum *values, bool *nulls);
extern CompositeCache *CompositeArrayCache(FunctionCallInfo fcinfo, int natts, Oid *elemtype);


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
/* in detector_aggs.c */
extern KdeHistory *KdeHistoryFromArgs(FunctionCallInfo fcinfo, MemoryContext cxt,
									  int arg, bool spikes);
extern float8 RobustZscore(float8 *values, int n, float8 x, float8 *median,
						   float8 *mad);

/* in thrift_compact.c */

#define THRIFT_MAX_DEPTH 16

/* Element types of a Thrift list, as the compact protocol numbers them. */
typedef enum ThriftElemType
{
	THRIFT_ELEM_I32 = 5,
	THRIFT_ELEM_BINARY = 8,
	THRIFT_ELEM_STRUCT = 12
} ThriftElemType;

/* A growing output buffer plus the field-id stack of the open structs. */
typedef struct ThriftBuf
{
	MemoryContext cxt;
	char	   *data;
	size_t		len;
	size_t		cap;
	int16		last_field;
	int			depth;
	int16		stack[THRIFT_MAX_DEPTH];
} ThriftBuf;

extern void ThriftInit(ThriftBuf *t, MemoryContext cxt);
extern void ThriftReset(ThriftBuf *t);
extern void ThriftFieldBool(ThriftBuf *t, int16 id, bool v);
extern void ThriftFieldI8(ThriftBuf *t, int16 id, int8 v);
extern void ThriftFieldI32(ThriftBuf *t, int16 id, int32 v);
extern void ThriftFieldI64(ThriftBuf *t, int16 id, int64 v);
extern void ThriftFieldBinary(ThriftBuf *t, int16 id, const void *p, size_t len);
extern void ThriftFieldString(ThriftBuf *t, int16 id, const char *s);
extern void ThriftStructBegin(ThriftBuf *t, int16 id);
extern void ThriftListStructBegin(ThriftBuf *t);
extern void ThriftStructEnd(ThriftBuf *t);
extern void ThriftFieldListBegin(ThriftBuf *t, int16 id, ThriftElemType elem, int n);
extern void ThriftListI32(ThriftBuf *t, int32 v);
extern void ThriftListBinary(ThriftBuf *t, const void *p, size_t len);

/* in parquet_writer.c */

/* Parquet physical types (the values of parquet.thrift's Type). */
typedef enum ParquetPhysicalType
{
	PARQUET_BOOLEAN = 0,
	PARQUET_INT32 = 1,
	PARQUET_INT64 = 2,
	PARQUET_FLOAT = 4,
	PARQUET_DOUBLE = 5,
	PARQUET_BYTE_ARRAY = 6,
	PARQUET_FIXED_LEN_BYTE_ARRAY = 7
} ParquetPhysicalType;

/* The annotations iotstream writes (LogicalType plus its ConvertedType). */
typedef enum ParquetLogicalType
{
	PARQUET_LOGICAL_NONE = 0,
	PARQUET_LOGICAL_STRING,
	PARQUET_LOGICAL_JSON,
	PARQUET_LOGICAL_UUID,
	PARQUET_LOGICAL_DECIMAL,
	PARQUET_LOGICAL_DATE,
	PARQUET_LOGICAL_TIMESTAMP_UTC,	/* MICROS, isAdjustedToUTC = true */
	PARQUET_LOGICAL_TIMESTAMP_LOCAL,	/* MICROS, isAdjustedToUTC = false */
	PARQUET_LOGICAL_INT16,
	PARQUET_LOGICAL_INT32,
	PARQUET_LOGICAL_INT64
} ParquetLogicalType;

/* Compression codecs (the values of parquet.thrift's CompressionCodec). */
typedef enum ParquetCodec
{
	PARQUET_CODEC_NONE = 0,
	PARQUET_CODEC_SNAPPY = 1,
	PARQUET_CODEC_GZIP = 2,
	PARQUET_CODEC_ZSTD = 6
} ParquetCodec;

typedef struct ParquetColumnSpec
{
	const char *name;
	ParquetPhysicalType type;
	ParquetLogicalType logical;
	bool		nullable;
	int			precision;		/* DECIMAL only */
	int			scale;			/* DECIMAL only */
	int			type_length;	/* FIXED_LEN_BYTE_ARRAY only */
} ParquetColumnSpec;

typedef struct ParquetWriterOptions
{
	ParquetCodec codec;
	int			level;			/* zstd/gzip level; 0 means the codec default */
	int64		row_group_bytes;	/* cut a row group at this many plain bytes */
	int64		page_bytes;		/* target uncompressed size of a data page */
	int64		dictionary_bytes;	/* fall back to PLAIN past this dictionary */
	bool		dictionary;		/* try dictionary encoding at all */
	int			threads;		/* compress pages on this many threads (1..8) */
	int			nkv;			/* key-value metadata */
	const char **kv_keys;
	const char **kv_values;
} ParquetWriterOptions;

/* Receives the file's bytes in order; must ereport on failure. */
typedef void (*ParquetWriteFn) (void *arg, const void *data, size_t len);

typedef struct ParquetWriter ParquetWriter;

extern void ParquetWriterDefaults(ParquetWriterOptions *opts);
extern ParquetWriter *ParquetWriterCreate(const ParquetColumnSpec *cols, int ncols,
										  const ParquetWriterOptions *opts,
										  ParquetWriteFn write, void *arg);
extern void ParquetWriteColumn(ParquetWriter *w, int col, const char *plain, size_t len,
							   int64 nvalues, const uint8 *defs, int64 nrows);
extern void ParquetEndRows(ParquetWriter *w, int64 nrows);
extern void ParquetWriterFinish(ParquetWriter *w);
extern int64 ParquetWriterRows(ParquetWriter *w);
extern int64 ParquetWriterBytes(ParquetWriter *w);
extern int	ParquetWriterRowGroups(ParquetWriter *w);
extern void ParquetWriterDestroy(ParquetWriter *w);

/* in parquet_encode.c */

struct ZSTD_CCtx_s;

/* A growing byte buffer, reused from page to page. */
typedef struct ParquetBuf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} ParquetBuf;

extern void ParquetBufReserve(MemoryContext cxt, ParquetBuf *b, size_t extra);
extern void ParquetBufSet(MemoryContext cxt, ParquetBuf *b, const void *p, size_t len);
extern void ParquetRleEncode(MemoryContext cxt, ParquetBuf *out, const void *v,
							 int size, int64 n, int bw);
extern int	ParquetBitWidth(uint32 max);
extern size_t ParquetCompressBound(ParquetCodec codec, size_t len);
extern size_t ParquetCompressRaw(ParquetCodec codec, int level,
								 struct ZSTD_CCtx_s *zstd, const char *in,
								 size_t len, char *out, size_t cap);

static inline void
ParquetBufAppend(MemoryContext cxt, ParquetBuf *b, const void *p, size_t len)
{
	if (b->len + len > b->cap)
		ParquetBufReserve(cxt, b, len);
	memcpy(b->data + b->len, p, len);
	b->len += len;
}

/* in parquet_compress.c */

/* One page on its way out: built, then compressed, then written. */
typedef struct ParquetPage
{
	ParquetBuf	raw;
	ParquetBuf	out;
	size_t		outlen;
	int32		num_values;
	int32		encoding;
	bool		dictionary;
	bool		done;			/* ParquetCompressor: compressed */
	struct ParquetPage *next;	/* ParquetCompressor: queue link */
} ParquetPage;

typedef struct ParquetPageWindow ParquetPageWindow;

/* Writes one page given its (possibly compressed) body. */
typedef void (*ParquetPageEmitFn) (void *arg, const ParquetPage *page,
								   const char *body, size_t bodylen);

extern ParquetPageWindow *ParquetPageWindowCreate(MemoryContext cxt, ParquetCodec codec,
												  int level, int threads);
extern ParquetPage *ParquetPageWindowNext(ParquetPageWindow *win,
										  ParquetPageEmitFn emit, void *arg);
extern void ParquetPageWindowFlush(ParquetPageWindow *win,
								   ParquetPageEmitFn emit, void *arg);

typedef struct ParquetCompressor ParquetCompressor;

extern ParquetCompressor *ParquetCompressorCreate(MemoryContext cxt, ParquetCodec codec,
												  int level);
extern bool ParquetCompressorSubmit(ParquetCompressor *pc, ParquetPage *page);
extern bool ParquetThreadStart(pthread_t *tid, void *(*fn) (void *), void *arg);
extern void ParquetThreadStop(pthread_t tid, pthread_mutex_t *lock, pthread_cond_t *cond,
							  bool *stop);
extern void ParquetThreadRelease(pthread_t tid, pthread_mutex_t *lock, pthread_cond_t *cond,
								 bool *started, bool *stop);
extern void ParquetCompressorHelp(ParquetCompressor *pc, int keep);
extern bool ParquetCompressorDone(ParquetCompressor *pc, ParquetPage *page);
extern void ParquetCompressorWait(ParquetCompressor *pc, ParquetPage *page);

/* in parquet_stats.c */

/* Running min/max of a column chunk, in its type's order. */
typedef struct ParquetStats
{
	ParquetPhysicalType type;
	ParquetLogicalType logical;
	MemoryContext cxt;
	bool		has_minmax;
	bool		stats_off;		/* a byte array was too long to track */
	union
	{
		int64		i;
		double		d;
	}			min, max;
	ParquetBuf	minb;			/* byte arrays and FIXED */
	ParquetBuf	maxb;
	bool		prefix_ok;		/* min8/max8 hold the first 8 bytes of both */
	uint64		min8;			/* big-endian: they compare as the bytes do */
	uint64		max8;
} ParquetStats;

extern void ParquetStatsInit(ParquetStats *c, const ParquetColumnSpec *spec, MemoryContext cxt);
extern void ParquetStatsReset(ParquetStats *c);
extern void ParquetStatsAdd(ParquetStats *c, const char *p, size_t len);
extern void ParquetStatsAddPlain(ParquetStats *c, const char *plain, size_t len, int64 n);
extern bool ParquetStatsBytes(ParquetStats *c, MemoryContext cxt, char **min, int32 *minlen,
							  char **max, int32 *maxlen);

/* in parquet_footer.c */

/* What the footer records of one written column chunk. */
typedef struct ParquetChunkMeta
{
	int64		offset;			/* first page */
	int64		dict_offset;	/* -1 without a dictionary page */
	int64		data_offset;
	int64		num_values;		/* rows, nulls included */
	int64		uncompressed;
	int64		compressed;
	int64		null_count;
	bool		dictionary;
	bool		has_minmax;
	int32		minlen;
	int32		maxlen;
	char	   *min;
	char	   *max;
} ParquetChunkMeta;

typedef struct ParquetFooter
{
	ParquetColumnSpec *cols;
	ParquetChunkMeta **chunks;	/* [column][row group] */
	int			ncols;
	int			nrowgroups;
	const int64 *rg_nrows;
	int64		total_rows;
	ParquetCodec codec;
	int			nkv;
	const char **kv_keys;
	const char **kv_values;
} ParquetFooter;

extern void ParquetEncodeFooter(ThriftBuf *t, const ParquetFooter *f);

/* in parquet_file_sink.c */

/* A local-file sink for ParquetWriterCreate(): buffered, fsynced on close. */
typedef struct ParquetFileSink ParquetFileSink;

extern ParquetFileSink *ParquetFileSinkOpen(const char *path);
extern void ParquetFileSinkWrite(void *arg, const void *data, size_t len);
extern void ParquetFileSinkClose(ParquetFileSink *sink);

/* in detect.c */

/*
 * The rules and rollups of one stream table.  A source worker calls
 * DetectBatch in each batch's transaction; the table's detection worker
 * calls DetectRun in transactions of its own.
 */
typedef struct DetectTarget DetectTarget;

extern DetectTarget *DetectTargetCreate(Oid relid, MemoryContext cxt);
extern bool DetectBatch(DetectTarget *d, const IngestedRows *rows, bool hold);
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

/* in kafka_sink.c */
typedef struct KafkaSink KafkaSink;

extern KafkaSink *KafkaSinkOpen(const KafkaProperty *props, int nprops,
								char *errbuf, size_t errlen);
extern bool KafkaSinkProduce(KafkaSink *ks, const char *topic, const char *key,
							 size_t keylen, const char *payload, size_t len);
extern int	KafkaSinkFlush(KafkaSink *ks, int timeout_ms);
extern const char *KafkaSinkLastError(KafkaSink *ks);
extern void KafkaSinkClose(KafkaSink *ks);

/* in alerts.c */
extern int	AlertsDrain(KafkaSink **sinkp, int source_id, const char *source);

/* in worker.c */
extern KafkaSink *SourceOpenAlertSink(int source_id, char *errbuf, size_t errlen);

/* in jsonb_text.c */
extern void JsonbAppendText(StringInfo out, JsonbContainer *root);

/* in write_parquet.c */

/* The files ParquetWriteQuery writes, opened one after another. */
typedef struct ParquetQuerySinks
{
	/* opens file number fileno and says where its bytes go */
	void		(*open) (void *arg, int fileno, ParquetWriteFn *write, void **write_arg);
	/* the file's footer is written: make the file complete */
	void		(*close) (void *arg, int fileno, ParquetWriter *w);
	void	   *arg;
	int64		file_bytes;		/* start a new file past this size; 0: one file */
} ParquetQuerySinks;

extern void ParquetParseOptions(Jsonb *jb, ParquetWriterOptions *w);
extern int	ParquetWriteQuery(const char *query, const ParquetWriterOptions *opts,
							  ParquetQuerySinks *sinks, int64 *rows, int64 *bytes);

/* in azure_blob.c */

/* Where an export writes: a local directory or a blob container. */
typedef struct BlobLocation
{
	bool		local;			/* file://: path is an absolute directory */
	char	   *base;			/* scheme://host[:port] */
	char	   *path_prefix;	/* "/account" on emulators, "" on Azure */
	char	   *account;
	char	   *container;
	char	   *path;			/* folder inside the container, no '/' at either end */
} BlobLocation;

typedef enum BlobAuthKind
{
	BLOB_AUTH_NONE,
	BLOB_AUTH_SHARED_KEY,
	BLOB_AUTH_SAS,
	BLOB_AUTH_BEARER
} BlobAuthKind;

/* How requests are authorized; the secrets never leave this struct. */
typedef struct BlobAuth
{
	BlobAuthKind kind;
	const char *credential;		/* its name, for messages */
	unsigned char key[128];		/* SharedKey, base64-decoded */
	int			keylen;
	const char *sas;			/* query string without '?' */
	const char *bearer;			/* OAuth2 access token */
} BlobAuth;

typedef struct BlobOptions
{
	int			parallel;		/* concurrent Put Block requests */
	size_t		block_size;
	int			max_retries;
	int			timeout_ms;		/* per request */
} BlobOptions;

typedef struct BlobClient BlobClient;
typedef struct BlobUpload BlobUpload;

extern BlobLocation *BlobParseLocation(const char *url);
extern BlobClient *BlobClientCreate(const BlobLocation *loc, const BlobAuth *auth,
									const BlobOptions *opts);
extern void BlobClientDestroy(BlobClient *c);
extern BlobUpload *BlobUploadBegin(BlobClient *c, const char *blob);
extern void BlobUploadWrite(void *arg, const void *data, size_t len);
extern char *BlobUploadRoom(BlobUpload *u, size_t *room);
extern void BlobUploadAppended(BlobUpload *u, size_t n);
extern void BlobUploadFinishBlocks(BlobUpload *u);
extern void BlobUploadCommit(BlobUpload *u);
extern int64 BlobUploadBytes(BlobUpload *u);
extern bool BlobDelete(BlobClient *c, const char *blob);
extern void BlobDeleteUpload(BlobUpload *u);

/* in azure_auth.c */
extern void AzureAuthLoad(const char *name, const BlobLocation *loc, BlobAuth *auth);

#endif							/* IOTSTREAM_H */

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
extern void ParquetWriteNull(ParquetWriter *w, int col);
extern void ParquetWriteBool(ParquetWriter *w, int col, bool v);
extern void ParquetWriteInt32(ParquetWriter *w, int col, int32 v);
extern void ParquetWriteInt64(ParquetWriter *w, int col, int64 v);
extern void ParquetWriteFloat(ParquetWriter *w, int col, float4 v);
extern void ParquetWriteDouble(ParquetWriter *w, int col, float8 v);
extern void ParquetWriteBytes(ParquetWriter *w, int col, const void *p, size_t len);
extern void ParquetEndRow(ParquetWriter *w);
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
extern void ParquetRleEncode(MemoryContext cxt, ParquetBuf *out, const uint8 *v8,
							 const uint32 *v32, int64 n, int bw);
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
} ParquetStats;

extern void ParquetStatsInit(ParquetStats *c, const ParquetColumnSpec *spec, MemoryContext cxt);
extern void ParquetStatsReset(ParquetStats *c);
extern void ParquetStatsAdd(ParquetStats *c, const char *p, size_t len);
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

#endif							/* IOTSTREAM_H */

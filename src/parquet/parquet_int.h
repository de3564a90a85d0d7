/*-------------------------------------------------------------------------
 * parquet/parquet_int.h
 *		The Parquet stage's own declarations: Thrift, encodings, compression,
 *		statistics, the footer, JSON text.
 *
 * Nothing outside src/parquet/ includes it (parquet_writer_int.h holds
 * what only the writer's files share).
 *-------------------------------------------------------------------------
 */
#ifndef PARQUET_PARQUET_INT_H
#define PARQUET_PARQUET_INT_H

#include "parquet/parquet.h"

#include <pthread.h>

#include "lib/stringinfo.h"

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

/* in parquet_schema.c */

#define PARQUET_REQUIRED 0
#define PARQUET_OPTIONAL 1
#define PARQUET_REPEATED 2

/*
 * The physical schema: the caller's nodes plus the repeated groups of LIST
 * and MAP, each with its definition and repetition levels.
 */
typedef struct ParquetSchemaNode
{
	const char *name;
	ParquetNodeKind logical;	/* groups: STRUCT, LIST or MAP; leaves: LEAF */
	int			repetition;
	int			def;			/* definition level when present */
	int			rep;			/* repetition level of its values */
	int			nchildren;
	struct ParquetSchemaNode *children;
	int			leaf;			/* leaves: their column number */
	ParquetColumnSpec spec;		/* leaves */
} ParquetSchemaNode;

typedef struct ParquetSchema
{
	ParquetSchemaNode root;
	int			nleaves;
	ParquetSchemaNode **leaves;
	const char ***paths;		/* per leaf: names from the root's child down */
	int		   *depths;
	int			nelements;		/* schema elements, root included */
	ParquetNode *fields;		/* a copy of what it was built from */
	int			nfields;
} ParquetSchema;

extern ParquetSchema *ParquetSchemaBuild(MemoryContext cxt, const ParquetNode *fields, int nfields);
extern void ParquetSchemaEncode(ThriftBuf *t, const ParquetSchema *s);

/* in parquet_read_footer.c: Thrift compact reading and the footer */

typedef struct ThriftReader
{
	const uint8 *p;
	const uint8 *end;
} ThriftReader;

extern void ParquetReadCorrupt(const char *what) pg_attribute_noreturn();
extern uint64 ThriftReadVarint(ThriftReader *r);
extern int64 ThriftReadZigzag(ThriftReader *r);
extern int	ThriftReadField(ThriftReader *r, int16 *id);
extern int	ThriftReadList(ThriftReader *r, int *elem);
extern const uint8 *ThriftReadBinary(ThriftReader *r, int *len);
extern void ThriftSkip(ThriftReader *r, int type);

typedef struct PqrSchema
{
	char	   *name;
	int			type;			/* physical type, -1 for a group */
	int			repetition;
	int			nchildren;
	int			converted;
	bool		is_list;		/* LIST annotation */
	bool		is_map;			/* MAP annotation */
} PqrSchema;

typedef struct PqrChunk
{
	int64		dict_offset;	/* -1: none */
	int64		data_offset;
	int64		compressed;
	int64		num_values;
	int			codec;
} PqrChunk;

typedef struct PqrFile
{
	PqrSchema    *schema;
	int			nschema;
	int64		num_rows;
	int			nrowgroups;
	int			nleaves;
	PqrChunk	   *chunks;			/* [rowgroup * nleaves + leaf] */
} PqrFile;

extern void ParquetReadFooter(const uint8 *data, size_t len, PqrFile *f);

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
	const ParquetSchema *schema;
	ParquetColumnSpec *cols;	/* the leaves */
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

/* in jsonb_text.c */
extern void JsonbAppendText(StringInfo out, JsonbContainer *root);

/* in parquet_types.c: how a column converts (parquet_query.c converts it) */
/* How one result column becomes Parquet values. */
typedef enum ConvKind
{
	CONV_BOOL,
	CONV_INT2,
	CONV_INT4,
	CONV_INT8,
	CONV_FLOAT4,
	CONV_FLOAT8,
	CONV_DECIMAL,
	CONV_VARLENA,				/* text, varchar, bpchar, json, bytea: raw bytes */
	CONV_NAME,
	CONV_JSONB,
	CONV_UUID,
	CONV_TIMESTAMP,
	CONV_DATE,
	CONV_OUTPUT					/* the type's text output */
} ConvKind;

typedef struct ColumnConv
{
	ConvKind	kind;
	bool		text;			/* a STRING: convert to UTF-8 if needed */
	FmgrInfo	out;			/* CONV_OUTPUT, CONV_DECIMAL */
} ColumnConv;

extern void ParquetMapType(Oid typid, int32 typmod, ParquetColumnSpec *spec, ColumnConv *conv);

/* in parquet_writer.c: a writer of an already built schema */
extern ParquetWriter *ParquetWriterCreateSchema(ParquetSchema *schema,
												const ParquetWriterOptions *opts,
												ParquetWriteFn write, void *arg);

/* in parquet_shred.c: PostgreSQL arrays and composites as nested columns */

/* One leaf column's levels and values for the rows of a batch. */
typedef struct ParquetLeafBatch
{
	ParquetBuf	plain;
	ParquetBuf	defs;			/* a definition level per slot */
	ParquetBuf	reps;			/* a repetition level per slot, if repeated */
	int64		nvalues;
	bool		repeated;		/* the leaf is below a list */
} ParquetLeafBatch;

typedef struct ParquetShred ParquetShred;

extern bool ParquetTypeIsNested(Oid typid, int32 typmod);
extern ParquetShred *ParquetShredPlan(Oid typid, int32 typmod, const char *name,
									  ParquetNode *node);
extern void ParquetShredBind(ParquetShred *sh, const ParquetSchemaNode *node,
							 ParquetLeafBatch *leaves);
extern bool ParquetShredValue(ParquetShred *sh, Datum d, bool isnull, bool convert,
							  StringInfo scratch);
extern void ParquetWriteValue(MemoryContext cxt, ParquetBuf *b, ConvKind kind,
							  const ParquetColumnSpec *spec, ColumnConv *conv, Datum d,
							  bool convert, StringInfo scratch);

/* in parquet_options.c: the writer's options and the file's key-value metadata */
typedef struct ParquetWriteOptions
{
	ParquetWriterOptions w;
	const char **keys;
	const char **values;
} ParquetWriteOptions;

extern void ParquetParseWriteOptions(Jsonb *jb, ParquetWriteOptions *o);

#endif							/* PARQUET_PARQUET_INT_H */

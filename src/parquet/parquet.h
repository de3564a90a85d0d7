/*-------------------------------------------------------------------------
 * parquet/parquet.h
 *		What other stages may use of the Parquet writer.
 *
 * A writer of Parquet files from columns of plain values, and the query
 * receiver that writes a query's rows as files cut at a size (exports use
 * it).  It knows nothing of HTTP: where the bytes go is the caller's.
 *-------------------------------------------------------------------------
 */
#ifndef PARQUET_PARQUET_H
#define PARQUET_PARQUET_H

#include "iotstream.h"

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
struct ParquetNode;

extern ParquetWriter *ParquetWriterCreate(const ParquetColumnSpec *cols, int ncols,
										  const ParquetWriterOptions *opts,
										  ParquetWriteFn write, void *arg);
extern ParquetWriter *ParquetWriterCreateNested(const struct ParquetNode *fields, int nfields,
												const ParquetWriterOptions *opts,
												ParquetWriteFn write, void *arg);
extern void ParquetWriteColumn(ParquetWriter *w, int col, const char *plain, size_t len,
							   int64 nvalues, const uint8 *defs, int64 nrows);
extern void ParquetWriteLeaf(ParquetWriter *w, int col, const char *plain, size_t len,
							 int64 nvalues, const uint8 *defs, const uint8 *reps,
							 int64 nlevels);
extern void ParquetEndRows(ParquetWriter *w, int64 nrows);
extern void ParquetWriterFinish(ParquetWriter *w);
extern void ParquetWriterDestroy(ParquetWriter *w);

/* in parquet_file_info.c */
extern int64 ParquetWriterRows(ParquetWriter *w);
extern int64 ParquetWriterBytes(ParquetWriter *w);
extern int	ParquetWriterRowGroups(ParquetWriter *w);

/* A column's statistics over a whole file (PLAIN bytes, no length prefix). */
typedef struct ParquetFileColumnStats
{
	int64		null_count;
	bool		has_minmax;
	char	   *min;
	int32		minlen;
	char	   *max;
	int32		maxlen;
} ParquetFileColumnStats;

extern const ParquetColumnSpec *ParquetWriterColumns(ParquetWriter *w, int *ncols);
extern const struct ParquetNode *ParquetWriterFields(ParquetWriter *w, int *nfields);
extern void ParquetWriterColumnStats(ParquetWriter *w, int col, ParquetFileColumnStats *out);

/* in parquet_file_sink.c */

/* A local-file sink for ParquetWriterCreate(): buffered, fsynced on close. */
typedef struct ParquetFileSink ParquetFileSink;

extern ParquetFileSink *ParquetFileSinkOpen(const char *path);
extern void ParquetFileSinkWrite(void *arg, const void *data, size_t len);
extern void ParquetFileSinkClose(ParquetFileSink *sink);

/* in parquet_query.c */

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

extern int	ParquetWriteQuery(const char *query, const ParquetWriterOptions *opts,
							  ParquetQuerySinks *sinks, int64 *rows, int64 *bytes);

/* in parquet_schema.c */

/*
 * A node of a nested schema.  Groups are STRUCT (children: its fields),
 * LIST (children[0]: the element) and MAP (children[0]: the value; keys
 * are strings).  A LEAF has the type of spec (spec->nullable decides
 * whether it is optional; its name is the node's); STRING, INT64, INT32 and
 * BOOLEAN are optional leaves of those types.  Every group is optional.
 * Leaf columns are numbered depth-first: ParquetWriteLeaf's col.
 */
typedef enum ParquetNodeKind
{
	PARQUET_NODE_STRUCT,
	PARQUET_NODE_LIST,
	PARQUET_NODE_MAP,
	PARQUET_NODE_STRING,
	PARQUET_NODE_INT64,
	PARQUET_NODE_INT32,
	PARQUET_NODE_BOOLEAN,
	PARQUET_NODE_LEAF
} ParquetNodeKind;

typedef struct ParquetNode
{
	const char *name;
	ParquetNodeKind kind;
	int			nchildren;
	const struct ParquetNode *children;
	const ParquetColumnSpec *spec;	/* PARQUET_NODE_LEAF */
} ParquetNode;

/* in parquet_nested.c */

typedef struct ParquetNestedWriter ParquetNestedWriter;

extern ParquetNestedWriter *ParquetNestedCreate(const ParquetNode *fields, int nfields);
extern void ParquetNestedAddRow(ParquetNestedWriter *w, Jsonb *row);
extern int64 ParquetNestedWrite(ParquetNestedWriter *w, ParquetWriteFn write, void *arg);

/* in parquet_read.c */
extern char **ParquetReadJsonRows(const char *data, size_t len, int64 *nrows);

/* in parquet_options.c */
extern void ParquetWriterDefaults(ParquetWriterOptions *opts);
extern void ParquetParseOptions(Jsonb *jb, ParquetWriterOptions *w);

#endif							/* PARQUET_PARQUET_H */

/*-------------------------------------------------------------------------
 * parquet_writer_int.h
 *		The Parquet writer's insides, shared by parquet_writer.c (pages,
 *		chunks, row groups) and parquet_dict.c (dictionaries and their
 *		thread).  Nothing else includes it.
 *-------------------------------------------------------------------------
 */
#ifndef PARQUET_WRITER_INT_H
#define PARQUET_WRITER_INT_H

#include "iotstream.h"
#include "parquet/parquet_int.h"

#include <pthread.h>

/* rows per batch handed to the dictionary thread */
#define DICT_BATCH_ROWS 16384

/*
 * Raw buffers of early pages kept for the next pages once compressed: memory
 * already faulted in, instead of a fresh megabyte for every page.
 */
#define SPARE_PAGES 4

typedef struct PqColumn
{
	ParquetColumnSpec spec;
	int			width;			/* bytes per fixed-width value, 0 for BYTE_ARRAY */
	int			max_def;		/* its leaf's levels in the schema */
	int			max_rep;
	bool		nested;			/* levels beyond 0/1: defs (and reps) always kept */
	uint8	   *reps;			/* one repetition level per slot (max_rep > 0) */
	int64		reps_cap;

	/* the current chunk (nested leaves: rows are level slots) */
	int64		nrows;
	int64		nnull;
	int64		nvalues;		/* non-null values */
	uint8	   *defs;			/* one definition level per row (nullable) */
	int64		defs_cap;
	bool		defs_kept;		/* defs holds the buffered rows; until a
								 * null comes, every level is 1 and none is
								 * stored */
	ParquetBuf		values;			/* PLAIN values (bools: one byte each) */

	bool		dict_mode;
	bool		dict_failed;	/* a dictionary overflowed once, or did not
								 * pay: stay PLAIN */
	bool		dict_judged;	/* this chunk's dictionary passed dict_pays */
	size_t		dict_raw;		/* PLAIN bytes encoded until it is judged */
	char	   *indices;		/* one per value, of index_size bytes */
	int			index_size;		/* 1, 2 or 4: as the dictionary grows */
	int64		indices_cap;	/* in values of 4 bytes */
	ParquetBuf		dict;			/* PLAIN-encoded dictionary entries */
	uint32		ndict;
	uint32	   *dict_off;		/* entry offsets in dict (BYTE_ARRAY) */
	uint32	   *dict_hash;
	uint32		dict_cap;
	uint32	   *slots;			/* open addressing: entry + 1, 0 is free */
	uint32		nslots;

	ParquetStats stats;			/* of the current chunk */

	/*
	 * While in dict_mode, values wait here (PLAIN form) for the dictionary
	 * thread: the backend fills batch[cur_batch] while the thread encodes
	 * the other one.
	 */
	ParquetBuf	batch[2];
	int64		batch_n[2];
	bool		in_job;			/* its batch is being encoded */
	int64		overflow_n;		/* values of that batch encoded before the
								 * dictionary overflowed, -1 if it did not */
	size_t		overflow_pos;	/* and their bytes */
	bool		slots_full;		/* it stopped there because the hash table
								 * was half full: the backend grows it and
								 * goes on */

	/* pages cut before the end of the row group, compressing meanwhile */
	int64		cut_rows;		/* rows of the chunk in these pages */
	ParquetPage **early;
	int			nearly;
	int			nreaped;		/* early pages whose raw bytes are freed */
	int			nstreamed;		/* early pages already written (column 0) */
	int			early_cap;

	/* the chunks written so far, one per row group */
	ParquetChunkMeta *chunks;
	int			nchunks;
	int			chunks_cap;
} PqColumn;

struct ParquetWriter
{
	MemoryContext cxt;
	ParquetSchema *schema;
	ParquetWriterOptions opts;
	ParquetWriteFn write;
	void	   *write_arg;
	int			ncols;
	PqColumn   *cols;
	int64		offset;			/* bytes written so far */
	int64		rg_rows;
	int64		rg_bytes;		/* plain size of the buffered row group */
	int64		total_rows;
	int			nrowgroups;
	int64	   *rg_nrows;
	int			rg_cap;
	bool		finished;
	ParquetPageWindow *window;	/* pages on their way to compression */
	ParquetChunkMeta *chunk;	/* the chunk being written */
	ParquetCompressor *compressor;	/* NULL: no early pages */
	bool		early_off;		/* the compressor could not start */
	bool		cut_wanted;		/* some PLAIN column holds a page's worth */
	ParquetBuf		levels;
	ParquetBuf	spare[SPARE_PAGES];	/* raw buffers of compressed early pages */
	int			nspare;
	/*
	 * Column 0 streams: its chunk comes first in the row group, so its early
	 * pages are written as soon as they are compressed instead of waiting
	 * for the end of the row group, and their buffers (raw and compressed)
	 * serve the next pages.
	 */
	bool		streaming;		/* column 0's chunk of this row group began */
	int64		rg_streamed;	/* bytes of it written so far */
	ParquetPage *free_pages;	/* written pages, buffers kept */
	ThriftBuf	hdr;
	int			cur_batch;		/* the batch the backend fills */
	int			batch_rows;
	struct PqDictThread *dthread;	/* NULL: dictionaries built on the backend */
	bool		dthread_off;	/* the dictionary thread could not start */
};

/* parquet_writer.c */
extern void PqAddPlainValues(ParquetWriter *w, PqColumn *c, const char *buf,
							 size_t len, int64 n);

/* parquet_dict.c */
extern void PqDictSubmit(ParquetWriter *w);
extern void PqDictDrain(ParquetWriter *w);
extern void PqDictReset(PqColumn *c);

#endif							/* PARQUET_WRITER_INT_H */

/*-------------------------------------------------------------------------
 * parquet_writer.c
 *		A Parquet file encoder: flat schemas, data page v1, dictionary or
 *		PLAIN encoding, statistics, and snappy/gzip/zstd compression.
 *
 * It knows nothing of tuples or of where the bytes go: the caller declares
 * a schema of ParquetColumnSpec, appends values column by column and ends
 * each row, and the file's bytes leave through a write callback in order
 * (a local file sink is provided; the export stage streams to Azure).
 *
 * The one invariant: at most one row group is buffered.  Values are kept
 * per column (dictionary indices or PLAIN bytes, plus definition levels for
 * nullable columns) until the plain size of the row group reaches
 * row_group_bytes; then every column chunk is cut into pages, compressed and
 * written, the buffers are emptied (keeping their capacity), and only the
 * chunk metadata needed for the footer is kept.
 *
 * A dictionary that grows past dictionary_bytes is turned back into PLAIN
 * values for the rest of the row group, and later chunks of that column
 * start as PLAIN.  Statistics (parquet_stats.c) are taken only when a
 * value enters the dictionary, or for every value once in PLAIN.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"

#include <pthread.h>
#include <signal.h>

#include <zstd.h>

#include "common/hashfn.h"
#include "utils/memutils.h"

/* Encodings and page types, as parquet.thrift numbers them. */
#define ENC_PLAIN			0
#define ENC_RLE				3
#define ENC_RLE_DICTIONARY	8
#define PAGE_DATA			0
#define PAGE_DICTIONARY		2

typedef struct PqColumn
{
	ParquetColumnSpec spec;
	int			width;			/* bytes per fixed-width value, 0 for BYTE_ARRAY */

	/* the current chunk */
	int64		nrows;
	int64		nnull;
	int64		nvalues;		/* non-null values */
	uint8	   *defs;			/* one definition level per row (nullable) */
	int64		defs_cap;
	ParquetBuf		values;			/* PLAIN values (bools: one byte each) */

	bool		dict_mode;
	bool		dict_failed;	/* a dictionary overflowed once: stay PLAIN */
	uint32	   *indices;
	int64		indices_cap;
	ParquetBuf		dict;			/* PLAIN-encoded dictionary entries */
	uint32		ndict;
	uint32	   *dict_off;		/* entry offsets in dict (BYTE_ARRAY) */
	uint32	   *dict_hash;
	uint32		dict_cap;
	uint32	   *slots;			/* open addressing: entry + 1, 0 is free */
	uint32		nslots;

	ParquetStats stats;			/* of the current chunk */

	/* the chunks written so far, one per row group */
	ParquetChunkMeta *chunks;
	int			nchunks;
	int			chunks_cap;
} PqColumn;

#define PAGE_WINDOW 8
#define MAX_THREADS 8

/* A page on its way out: built, then compressed, then written. */
typedef struct PageJob
{
	ParquetBuf	raw;
	ParquetBuf	out;
	size_t		outlen;
	int32		num_values;
	int32		encoding;
	bool		dictionary;
} PageJob;

/* One window of pages shared by the threads that compress it. */
typedef struct CompressTask
{
	PageJob    *jobs;
	int			njobs;
	int			next;			/* the next job to take, atomically */
	ParquetCodec codec;
	int			level;
} CompressTask;

typedef struct CompressHelper
{
	CompressTask *task;
	ZSTD_CCtx  *zstd;
	pthread_t	tid;
} CompressHelper;

struct ParquetWriter
{
	MemoryContext cxt;
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
	PageJob		jobs[PAGE_WINDOW];
	int			njobs;
	ZSTD_CCtx  *helper_zstd[MAX_THREADS];
	ParquetBuf		levels;
	ThriftBuf	hdr;
	ZSTD_CCtx  *zstd;
};

/* The ZSTD context is not palloc'd: free it when the writer's memory goes. */
static void
writer_release(void *arg)
{
	ParquetWriter *w = (ParquetWriter *) arg;

	int			i;

	if (w->zstd)
		ZSTD_freeCCtx(w->zstd);
	w->zstd = NULL;
	for (i = 0; i < MAX_THREADS; i++)
	{
		if (w->helper_zstd[i])
			ZSTD_freeCCtx(w->helper_zstd[i]);
		w->helper_zstd[i] = NULL;
	}
}

void
ParquetWriterDefaults(ParquetWriterOptions *opts)
{
	memset(opts, 0, sizeof(ParquetWriterOptions));
	opts->codec = PARQUET_CODEC_ZSTD;
	opts->row_group_bytes = INT64CONST(128) * 1024 * 1024;
	opts->page_bytes = 1024 * 1024;
	opts->dictionary_bytes = 1024 * 1024;
	opts->dictionary = true;
	opts->threads = 2;
}

ParquetWriter *
ParquetWriterCreate(const ParquetColumnSpec *cols, int ncols,
					const ParquetWriterOptions *opts,
					ParquetWriteFn write, void *arg)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "iotstream parquet writer",
											  ALLOCSET_DEFAULT_SIZES);
	ParquetWriter *w = MemoryContextAllocZero(cxt, sizeof(ParquetWriter));
	MemoryContextCallback *cb = MemoryContextAllocZero(cxt, sizeof(MemoryContextCallback));
	int			i;

	w->cxt = cxt;
	w->opts = *opts;
	w->opts.kv_keys = MemoryContextAllocZero(cxt, sizeof(char *) * (opts->nkv + 1));
	w->opts.kv_values = MemoryContextAllocZero(cxt, sizeof(char *) * (opts->nkv + 1));
	for (i = 0; i < opts->nkv; i++)
	{
		w->opts.kv_keys[i] = MemoryContextStrdup(cxt, opts->kv_keys[i]);
		w->opts.kv_values[i] = MemoryContextStrdup(cxt, opts->kv_values[i]);
	}
	if (w->opts.page_bytes <= 0)
		w->opts.page_bytes = 1024 * 1024;
	w->opts.threads = Max(1, Min(w->opts.threads, MAX_THREADS));
	w->write = write;
	w->write_arg = arg;
	w->ncols = ncols;
	w->cols = MemoryContextAllocZero(cxt, sizeof(PqColumn) * Max(ncols, 1));
	for (i = 0; i < ncols; i++)
	{
		PqColumn   *c = &w->cols[i];

		c->spec = cols[i];
		c->spec.name = MemoryContextStrdup(cxt, cols[i].name);
		switch (c->spec.type)
		{
			case PARQUET_BOOLEAN:
				c->width = 1;
				break;
			case PARQUET_INT32:
			case PARQUET_FLOAT:
				c->width = 4;
				break;
			case PARQUET_INT64:
			case PARQUET_DOUBLE:
				c->width = 8;
				break;
			case PARQUET_FIXED_LEN_BYTE_ARRAY:
				if (c->spec.type_length <= 0)
					elog(ERROR, "parquet column \"%s\" has no fixed length", c->spec.name);
				c->width = c->spec.type_length;
				break;
			case PARQUET_BYTE_ARRAY:
				c->width = 0;
				break;
		}
		c->dict_mode = opts->dictionary && c->spec.type != PARQUET_BOOLEAN;
		ParquetStatsInit(&c->stats, &c->spec, cxt);
	}
	ThriftInit(&w->hdr, cxt);
	if (opts->codec == PARQUET_CODEC_ZSTD)
	{
		w->zstd = ZSTD_createCCtx();
		if (w->zstd == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
							errmsg("could not create a zstd compression context")));
	}
	cb->func = writer_release;
	cb->arg = w;
	MemoryContextRegisterResetCallback(cxt, cb);
	/* "PAR1" opens the file */
	write(arg, "PAR1", 4);
	w->offset = 4;
	return w;
}

/* ---- buffering values ---- */

static inline void
add_def(ParquetWriter *w, PqColumn *c, uint8 level)
{
	if (!c->spec.nullable)
		return;
	if (c->nrows >= c->defs_cap)
	{
		int64		cap = Max(c->defs_cap * 2, 1024);

		c->defs = c->defs ? repalloc_huge(c->defs, cap)
			: MemoryContextAllocHuge(w->cxt, cap);
		c->defs_cap = cap;
	}
	c->defs[c->nrows] = level;
}

static void
dict_grow_slots(ParquetWriter *w, PqColumn *c)
{
	uint32		n = c->nslots ? c->nslots * 2 : 1024;
	uint32		mask = n - 1;
	uint32		e;

	if (c->slots)
		pfree(c->slots);
	c->slots = MemoryContextAllocExtended(w->cxt, sizeof(uint32) * n,
										  MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	c->nslots = n;
	for (e = 0; e < c->ndict; e++)
	{
		uint32		s = c->dict_hash[e] & mask;

		while (c->slots[s] != 0)
			s = (s + 1) & mask;
		c->slots[s] = e + 1;
	}
}

/* Turns the buffered dictionary indices back into PLAIN values. */
static void
dict_fallback(ParquetWriter *w, PqColumn *c)
{
	int64		i;

	c->values.len = 0;
	for (i = 0; i < c->nvalues; i++)
	{
		uint32		e = c->indices[i];

		if (c->width > 0)
			ParquetBufAppend(w->cxt, &c->values, c->dict.data + (size_t) e * c->width, c->width);
		else
		{
			uint32		len;

			memcpy(&len, c->dict.data + c->dict_off[e], 4);
			ParquetBufAppend(w->cxt, &c->values, c->dict.data + c->dict_off[e], 4 + len);
		}
	}
	c->dict_mode = false;
	c->dict_failed = true;
	c->ndict = 0;
	c->dict.len = 0;
	memset(c->slots, 0, sizeof(uint32) * c->nslots);
}

/*
 * Buffers one non-null value: v/len is its bytes (for BYTE_ARRAY without the
 * length prefix that its PLAIN form adds).
 */
static void
add_value(ParquetWriter *w, PqColumn *c, const char *v, size_t len)
{
	uint32		len32 = (uint32) len;
	size_t		plain_len = c->width > 0 ? len : len + 4;

	add_def(w, c, 1);
	c->nrows++;
	w->rg_bytes += plain_len;

	if (c->dict_mode)
	{
		uint32		h = hash_bytes((const unsigned char *) v, len);
		uint32		mask,
					s,
					e;

		if (c->ndict * 2 >= c->nslots)
			dict_grow_slots(w, c);
		mask = c->nslots - 1;
		s = h & mask;
		while ((e = c->slots[s]) != 0)
		{
			e--;
			if (c->dict_hash[e] == h)
			{
				if (c->width > 0)
				{
					if (memcmp(c->dict.data + (size_t) e * c->width, v, len) == 0)
						goto found;
				}
				else
				{
					const char *q = c->dict.data + c->dict_off[e];

					if (memcmp(q, &len32, 4) == 0 && memcmp(q + 4, v, len) == 0)
						goto found;
				}
			}
			s = (s + 1) & mask;
		}
		/* a new entry */
		if (c->dict.len + plain_len > (size_t) w->opts.dictionary_bytes)
		{
			dict_fallback(w, c);
			goto plain;
		}
		e = c->ndict;
		if (e >= c->dict_cap)
		{
			uint32		cap = Max(c->dict_cap * 2, 1024);

			c->dict_hash = c->dict_hash ? repalloc_huge(c->dict_hash, sizeof(uint32) * cap)
				: MemoryContextAllocHuge(w->cxt, sizeof(uint32) * cap);
			if (c->width == 0)
				c->dict_off = c->dict_off ? repalloc_huge(c->dict_off, sizeof(uint32) * cap)
					: MemoryContextAllocHuge(w->cxt, sizeof(uint32) * cap);
			c->dict_cap = cap;
		}
		c->dict_hash[e] = h;
		if (c->width == 0)
		{
			c->dict_off[e] = (uint32) c->dict.len;
			ParquetBufAppend(w->cxt, &c->dict, &len32, 4);
		}
		ParquetBufAppend(w->cxt, &c->dict, v, len);
		c->slots[s] = e + 1;
		c->ndict++;
		ParquetStatsAdd(&c->stats, v, len);
found:
		if (c->nvalues >= c->indices_cap)
		{
			int64		cap = Max(c->indices_cap * 2, 1024);

			c->indices = c->indices ? repalloc_huge(c->indices, sizeof(uint32) * cap)
				: MemoryContextAllocHuge(w->cxt, sizeof(uint32) * cap);
			c->indices_cap = cap;
		}
		c->indices[c->nvalues++] = e;
		return;
	}
plain:
	if (c->width == 0)
		ParquetBufAppend(w->cxt, &c->values, &len32, 4);
	ParquetBufAppend(w->cxt, &c->values, v, len);
	c->nvalues++;
	ParquetStatsAdd(&c->stats, v, len);
}

static inline PqColumn *
column(ParquetWriter *w, int col, ParquetPhysicalType type)
{
	PqColumn   *c;

	if (col < 0 || col >= w->ncols)
		elog(ERROR, "parquet column %d out of range", col);
	c = &w->cols[col];
	if (type != c->spec.type)
		elog(ERROR, "parquet column \"%s\" written with the wrong type", c->spec.name);
	return c;
}

void
ParquetWriteNull(ParquetWriter *w, int col)
{
	PqColumn   *c;

	if (col < 0 || col >= w->ncols)
		elog(ERROR, "parquet column %d out of range", col);
	c = &w->cols[col];
	if (!c->spec.nullable)
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("null value in required parquet column \"%s\"", c->spec.name)));
	add_def(w, c, 0);
	c->nrows++;
	c->nnull++;
}

void
ParquetWriteBool(ParquetWriter *w, int col, bool v)
{
	PqColumn   *c = column(w, col, PARQUET_BOOLEAN);
	char		b = v ? 1 : 0;

	add_value(w, c, &b, 1);
}

void
ParquetWriteInt32(ParquetWriter *w, int col, int32 v)
{
	add_value(w, column(w, col, PARQUET_INT32), (char *) &v, 4);
}

void
ParquetWriteInt64(ParquetWriter *w, int col, int64 v)
{
	add_value(w, column(w, col, PARQUET_INT64), (char *) &v, 8);
}

void
ParquetWriteFloat(ParquetWriter *w, int col, float4 v)
{
	add_value(w, column(w, col, PARQUET_FLOAT), (char *) &v, 4);
}

void
ParquetWriteDouble(ParquetWriter *w, int col, float8 v)
{
	add_value(w, column(w, col, PARQUET_DOUBLE), (char *) &v, 8);
}

void
ParquetWriteBytes(ParquetWriter *w, int col, const void *p, size_t len)
{
	PqColumn   *c;

	if (col < 0 || col >= w->ncols)
		elog(ERROR, "parquet column %d out of range", col);
	c = &w->cols[col];
	if (c->spec.type == PARQUET_FIXED_LEN_BYTE_ARRAY)
	{
		if (len != (size_t) c->width)
			elog(ERROR, "parquet column \"%s\" takes %d bytes, not %zu",
				 c->spec.name, c->width, len);
		add_value(w, c, p, len);
	}
	else if (c->spec.type == PARQUET_BYTE_ARRAY)
	{
		if (len > (size_t) PG_INT32_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("value of %zu bytes is too long for parquet column \"%s\"",
							len, c->spec.name)));
		add_value(w, c, p, len);
	}
	else
		elog(ERROR, "parquet column \"%s\" written with the wrong type", c->spec.name);
}

static void flush_row_group(ParquetWriter *w);

void
ParquetEndRow(ParquetWriter *w)
{
	w->rg_rows++;
	w->total_rows++;
	if (w->rg_bytes >= w->opts.row_group_bytes)
		flush_row_group(w);
}

/* ---- encoding pages ---- */

static void
emit(ParquetWriter *w, const void *p, size_t len)
{
	w->write(w->write_arg, p, len);
	w->offset += len;
}

/*
 * Pages are built into a window of PAGE_WINDOW jobs, compressed together
 * (on up to opts.threads threads), then written in order.  Helper threads
 * run only ParquetCompressRaw() on buffers reserved beforehand: they touch
 * no Postgres state, block all signals, and are joined before anything can
 * raise an error.
 */
static void
compress_jobs(CompressTask *t, ZSTD_CCtx *zstd)
{
	for (;;)
	{
		int			i = __atomic_fetch_add(&t->next, 1, __ATOMIC_RELAXED);
		PageJob    *j;

		if (i >= t->njobs)
			break;
		j = &t->jobs[i];
		j->outlen = ParquetCompressRaw(t->codec, t->level, zstd, j->raw.data,
									   j->raw.len, j->out.data, j->out.cap);
	}
}

static void *
helper_main(void *arg)
{
	CompressHelper *h = (CompressHelper *) arg;

	compress_jobs(h->task, h->zstd);
	return NULL;
}

static void
emit_job(ParquetWriter *w, ParquetChunkMeta *m, PageJob *j)
{
	const char *body = w->opts.codec == PARQUET_CODEC_NONE ? j->raw.data : j->out.data;
	size_t		bodylen = w->opts.codec == PARQUET_CODEC_NONE ? j->raw.len : j->outlen;

	if (j->dictionary)
		m->dict_offset = w->offset;
	else if (m->data_offset < 0)
		m->data_offset = w->offset;
	ThriftReset(&w->hdr);
	ThriftFieldI32(&w->hdr, 1, j->dictionary ? PAGE_DICTIONARY : PAGE_DATA);
	ThriftFieldI32(&w->hdr, 2, (int32) j->raw.len);
	ThriftFieldI32(&w->hdr, 3, (int32) bodylen);
	if (j->dictionary)
	{
		ThriftStructBegin(&w->hdr, 7);
		ThriftFieldI32(&w->hdr, 1, j->num_values);
		ThriftFieldI32(&w->hdr, 2, ENC_PLAIN);
		ThriftStructEnd(&w->hdr);
	}
	else
	{
		ThriftStructBegin(&w->hdr, 5);
		ThriftFieldI32(&w->hdr, 1, j->num_values);
		ThriftFieldI32(&w->hdr, 2, j->encoding);
		ThriftFieldI32(&w->hdr, 3, ENC_RLE);
		ThriftFieldI32(&w->hdr, 4, ENC_RLE);
		ThriftStructEnd(&w->hdr);
	}
	ThriftStructEnd(&w->hdr);
	emit(w, w->hdr.data, w->hdr.len);
	emit(w, body, bodylen);
	m->uncompressed += w->hdr.len + j->raw.len;
	m->compressed += w->hdr.len + bodylen;
}

/* Compresses and writes the pages of the window. */
static void
flush_window(ParquetWriter *w, ParquetChunkMeta *m)
{
	CompressTask task;
	CompressHelper helpers[MAX_THREADS];
	int			nhelpers = 0,
				i;

	if (w->njobs == 0)
		return;
	task.jobs = w->jobs;
	task.njobs = w->njobs;
	task.next = 0;
	task.codec = w->opts.codec;
	task.level = w->opts.level;
	for (i = 0; i < w->njobs; i++)
	{
		PageJob    *j = &w->jobs[i];

		if (j->raw.len > (size_t) PG_INT32_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("parquet page of %zu bytes is too large", j->raw.len),
					 errhint("Lower the page_size option.")));
		j->out.len = 0;
		if (w->opts.codec != PARQUET_CODEC_NONE)
			ParquetBufReserve(w->cxt, &j->out, ParquetCompressBound(w->opts.codec, j->raw.len));
	}

	if (w->opts.codec != PARQUET_CODEC_NONE)
	{
		int			want = Min(w->opts.threads - 1, w->njobs - 1);
		sigset_t	all,
					old;

		for (i = 0; i < want; i++)
		{
			if (w->opts.codec == PARQUET_CODEC_ZSTD && w->helper_zstd[i] == NULL &&
				(w->helper_zstd[i] = ZSTD_createCCtx()) == NULL)
				break;
		}
		want = i;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		for (i = 0; i < want; i++)
		{
			helpers[nhelpers].task = &task;
			helpers[nhelpers].zstd = w->helper_zstd[i];
			if (pthread_create(&helpers[nhelpers].tid, NULL, helper_main, &helpers[nhelpers]) != 0)
				break;			/* fewer helpers, same result */
			nhelpers++;
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		compress_jobs(&task, w->zstd);
		for (i = 0; i < nhelpers; i++)
			pthread_join(helpers[i].tid, NULL);
		for (i = 0; i < w->njobs; i++)
			if (w->jobs[i].outlen == 0)
				elog(ERROR, "parquet page compression failed");
	}
	for (i = 0; i < w->njobs; i++)
		emit_job(w, m, &w->jobs[i]);
	w->njobs = 0;
}

/* The next page to fill, after writing the window if it is full. */
static PageJob *
next_page(ParquetWriter *w, ParquetChunkMeta *m, bool dictionary,
		  int32 num_values, int32 encoding)
{
	PageJob    *j;

	if (w->njobs == PAGE_WINDOW)
		flush_window(w, m);
	j = &w->jobs[w->njobs++];
	j->raw.len = 0;
	j->dictionary = dictionary;
	j->num_values = num_values;
	j->encoding = encoding;
	return j;
}

static void
write_chunk(ParquetWriter *w, PqColumn *c)
{
	ParquetChunkMeta *m;
	bool		use_dict = c->dict_mode && c->ndict > 0;
	int			bw = use_dict ? ParquetBitWidth(c->ndict - 1) : 0;
	int64		est,
				npages,
				rows_per_page,
				r = 0,
				v = 0;
	size_t		pos = 0;

	if (c->nchunks >= c->chunks_cap)
	{
		int			cap = Max(c->chunks_cap * 2, 8);

		c->chunks = c->chunks ? repalloc(c->chunks, sizeof(ParquetChunkMeta) * cap)
			: MemoryContextAlloc(w->cxt, sizeof(ParquetChunkMeta) * cap);
		c->chunks_cap = cap;
	}
	m = &c->chunks[c->nchunks++];
	memset(m, 0, sizeof(ParquetChunkMeta));
	m->offset = w->offset;
	m->dict_offset = -1;
	m->data_offset = -1;
	m->num_values = c->nrows;
	m->null_count = c->nnull;
	m->dictionary = use_dict;

	if (use_dict)
	{
		PageJob    *j = next_page(w, m, true, (int32) c->ndict, ENC_PLAIN);

		ParquetBufAppend(w->cxt, &j->raw, c->dict.data, c->dict.len);
		est = c->nvalues * bw / 8;
	}
	else if (c->spec.type == PARQUET_BOOLEAN)
		est = c->nvalues / 8;
	else
		est = c->values.len;

	npages = Max(1, (est + w->opts.page_bytes - 1) / w->opts.page_bytes);
	rows_per_page = Max(1, (c->nrows + npages - 1) / npages);
	do
	{
		int64		r1 = Min(r + rows_per_page, c->nrows);
		int64		n = r1 - r;
		int64		nv = n;
		ParquetBuf *page;

		page = &next_page(w, m, false, (int32) n,
						  use_dict ? ENC_RLE_DICTIONARY : ENC_PLAIN)->raw;
		if (c->spec.nullable)
		{
			int64		k;
			uint32		len32;

			nv = 0;
			for (k = r; k < r1; k++)
				nv += c->defs[k];
			w->levels.len = 0;
			ParquetRleEncode(w->cxt, &w->levels, c->defs + r, NULL, n, 1);
			len32 = (uint32) w->levels.len;
			ParquetBufAppend(w->cxt, page, &len32, 4);
			ParquetBufAppend(w->cxt, page, w->levels.data, w->levels.len);
		}
		if (use_dict)
		{
			char		b = (char) bw;

			ParquetBufAppend(w->cxt, page, &b, 1);
			ParquetRleEncode(w->cxt, page, NULL, c->indices + v, nv, bw);
		}
		else if (c->spec.type == PARQUET_BOOLEAN)
		{
			int64		k;

			ParquetBufReserve(w->cxt, page, (nv + 7) / 8);
			memset(page->data + page->len, 0, (nv + 7) / 8);
			for (k = 0; k < nv; k++)
				if (c->values.data[v + k])
					page->data[page->len + k / 8] |= (char) (1 << (k % 8));
			page->len += (nv + 7) / 8;
		}
		else if (c->width > 0)
			ParquetBufAppend(w->cxt, page, c->values.data + (size_t) v * c->width,
					   (size_t) nv * c->width);
		else
		{
			size_t		end = pos;
			int64		k;

			for (k = 0; k < nv; k++)
			{
				uint32		len;

				memcpy(&len, c->values.data + end, 4);
				end += 4 + (size_t) len;
			}
			ParquetBufAppend(w->cxt, page, c->values.data + pos, end - pos);
			pos = end;
		}
		r = r1;
		v += nv;
	} while (r < c->nrows);
	flush_window(w, m);

	m->has_minmax = ParquetStatsBytes(&c->stats, w->cxt, &m->min, &m->minlen,
									  &m->max, &m->maxlen);

	/* empty the buffers, keeping their memory for the next row group */
	c->nrows = c->nnull = c->nvalues = 0;
	c->values.len = 0;
	c->dict.len = 0;
	c->ndict = 0;
	if (c->slots)
		memset(c->slots, 0, sizeof(uint32) * c->nslots);
	ParquetStatsReset(&c->stats);
	c->dict_mode = w->opts.dictionary && !c->dict_failed &&
		c->spec.type != PARQUET_BOOLEAN;
}

static void
flush_row_group(ParquetWriter *w)
{
	int			i;

	if (w->rg_rows == 0)
		return;
	for (i = 0; i < w->ncols; i++)
		write_chunk(w, &w->cols[i]);
	if (w->nrowgroups >= w->rg_cap)
	{
		int			cap = Max(w->rg_cap * 2, 8);

		w->rg_nrows = w->rg_nrows ? repalloc(w->rg_nrows, sizeof(int64) * cap)
			: MemoryContextAlloc(w->cxt, sizeof(int64) * cap);
		w->rg_cap = cap;
	}
	w->rg_nrows[w->nrowgroups++] = w->rg_rows;
	w->rg_rows = 0;
	w->rg_bytes = 0;
}

/* Writes the last row group and the footer; the writer is then done. */
void
ParquetWriterFinish(ParquetWriter *w)
{
	if (w->finished)
		return;
	flush_row_group(w);
	{
		ParquetFooter f;
		uint32		len32;
		int			i;

		f.cols = palloc(sizeof(ParquetColumnSpec) * Max(w->ncols, 1));
		f.chunks = palloc(sizeof(ParquetChunkMeta *) * Max(w->ncols, 1));
		for (i = 0; i < w->ncols; i++)
		{
			f.cols[i] = w->cols[i].spec;
			f.chunks[i] = w->cols[i].chunks;
		}
		f.ncols = w->ncols;
		f.nrowgroups = w->nrowgroups;
		f.rg_nrows = w->rg_nrows;
		f.total_rows = w->total_rows;
		f.codec = w->opts.codec;
		f.nkv = w->opts.nkv;
		f.kv_keys = w->opts.kv_keys;
		f.kv_values = w->opts.kv_values;
		ThriftReset(&w->hdr);
		ParquetEncodeFooter(&w->hdr, &f);
		emit(w, w->hdr.data, w->hdr.len);
		len32 = (uint32) w->hdr.len;
		emit(w, &len32, 4);
		emit(w, "PAR1", 4);
		pfree(f.cols);
		pfree(f.chunks);
	}
	w->finished = true;
}

int64
ParquetWriterRows(ParquetWriter *w)
{
	return w->total_rows;
}

int64
ParquetWriterBytes(ParquetWriter *w)
{
	return w->offset;
}

int
ParquetWriterRowGroups(ParquetWriter *w)
{
	return w->nrowgroups;
}

void
ParquetWriterDestroy(ParquetWriter *w)
{
	MemoryContextDelete(w->cxt);
}

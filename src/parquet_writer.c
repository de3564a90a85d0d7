/*-------------------------------------------------------------------------
 * parquet_writer.c
 *		A Parquet file encoder: flat schemas, data page v1, dictionary or
 *		PLAIN encoding, statistics, and snappy/gzip/zstd compression.
 *
 * It knows nothing of tuples or of where the bytes go: the caller declares
 * a schema of ParquetColumnSpec, hands over batches of rows one column at a
 * time (PLAIN bytes plus definition levels) and ends each batch, and the
 * file's bytes leave through a write callback in order (a local file sink
 * is provided; the export stage streams to Azure).
 *
 * The one invariant: at most one row group is buffered.  Values are kept
 * per column (dictionary indices or PLAIN bytes, plus definition levels for
 * nullable columns) until the plain size of the row group reaches
 * row_group_bytes; then every column chunk is cut into pages, compressed
 * (parquet_compress.c, on several threads) and written, the buffers are
 * emptied (keeping their capacity), and only the chunk metadata needed for
 * the footer is kept.  A PLAIN column does not wait for the end of the row
 * group: each time it holds a page's worth, at a row boundary, that page is
 * cut and compressed in the background while rows keep coming, and only the
 * compressed page stays in memory until the chunk is written.  Column 0's
 * chunk comes first in the row group, so its early pages do not even wait:
 * they are written as soon as they are compressed, and their buffers serve
 * the next pages.
 *
 * Dictionaries are built off the backend's thread: values of dictionary
 * columns are queued in batches of DICT_BATCH_ROWS rows, and a helper
 * thread looks them up and indexes them while the backend produces the next
 * batch (on memory the backend reserved, so the thread never allocates).
 * A dictionary that grows past dictionary_bytes, or that does not pay for
 * itself on a chunk's first values (dict_pays), is turned back into PLAIN
 * values for the rest of the row group, and later chunks of that column
 * start as PLAIN.  Indices are kept in one, two or four bytes, as the
 * dictionary grows.  Statistics (parquet_stats.c) are taken only when a
 * value enters the dictionary, or for every value once in PLAIN.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"

#include <pthread.h>

#include "common/hashfn.h"
#include "utils/memutils.h"

/*
 * Raw buffers of early pages kept for the next pages once compressed: memory
 * already faulted in, instead of a fresh megabyte for every page.
 */
#define SPARE_PAGES 4

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
		c->index_size = 1;
		ParquetStatsInit(&c->stats, &c->spec, cxt);
	}
	ThriftInit(&w->hdr, cxt);
	w->window = ParquetPageWindowCreate(cxt, w->opts.codec, w->opts.level, w->opts.threads);
	if (w->opts.threads > 1)
		w->compressor = ParquetCompressorCreate(cxt, w->opts.codec, w->opts.level);
	/* "PAR1" opens the file */
	write(arg, "PAR1", 4);
	w->offset = 4;
	return w;
}

/* ---- buffering values ---- */

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

/* Index i of c. */
static inline uint32
index_get(const PqColumn *c, int64 i)
{
	switch (c->index_size)
	{
		case 1:
			return ((const uint8 *) c->indices)[i];
		case 2:
			return ((const uint16 *) c->indices)[i];
		default:
			return ((const uint32 *) c->indices)[i];
	}
}

/*
 * Widens the n indices of c to size bytes each, in place (the memory is
 * reserved for 4 bytes each), last first.  Indices take one byte while the
 * dictionary has at most 256 entries and two up to 65,536: the index
 * arrays were most of a narrow export's fresh memory.
 */
static void
index_widen(PqColumn *c, int64 n, int size)
{
	int64		i;

	for (i = n - 1; i >= 0; i--)
	{
		uint32		e = index_get(c, i);

		if (size == 2)
			((uint16 *) c->indices)[i] = (uint16) e;
		else
			((uint32 *) c->indices)[i] = e;
	}
	c->index_size = size;
}

/* Turns the buffered dictionary indices back into PLAIN values. */
static void
dict_fallback(ParquetWriter *w, PqColumn *c)
{
	int64		i;

	c->values.len = 0;
	for (i = 0; i < c->nvalues; i++)
	{
		uint32		e = index_get(c, i);

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

/* Hash of a value for the dictionary: a cheap mix for 4 and 8 bytes. */
static inline uint32
value_hash(const char *v, size_t len, int width)
{
	if (width == 8)
	{
		uint64		x;

		memcpy(&x, v, 8);
		x ^= x >> 33;
		x *= UINT64CONST(0xff51afd7ed558ccd);
		x ^= x >> 33;
		x *= UINT64CONST(0xc4ceb9fe1a85ec53);
		x ^= x >> 33;
		return (uint32) x;
	}
	if (width == 4)
	{
		uint32		x;

		memcpy(&x, v, 4);
		return murmurhash32(x);
	}
	return BytesHash(v, len);
}

/*
 * Whether dictionary entry e holds v.  Fixed widths compare with constant
 * sizes, which the compiler turns into a load and a compare: a library
 * memcmp per probe was an eighth of the time of a narrow export.
 */
static inline bool
dict_entry_equals(const PqColumn *c, uint32 e, const char *v, size_t len)
{
	const char *q;
	uint32		qlen;

	switch (c->width)
	{
		case 4:
			return memcmp(c->dict.data + (size_t) e * 4, v, 4) == 0;
		case 8:
			return memcmp(c->dict.data + (size_t) e * 8, v, 8) == 0;
		case 16:
			return memcmp(c->dict.data + (size_t) e * 16, v, 16) == 0;
		case 0:
			q = c->dict.data + c->dict_off[e];
			memcpy(&qlen, q, 4);
			return qlen == len && memcmp(q + 4, v, len) == 0;
		default:
			return memcmp(c->dict.data + (size_t) e * c->width, v, len) == 0;
	}
}

/*
 * Takes PLAIN values i0 .. n-1 of a batch (buf; value i0 at byte pos0) into
 * the dictionary of c, appending their indices.  The backend reserved room
 * for all of them beforehand (dict_prepare), so this allocates nothing and
 * may run on the dictionary thread.  It stops at the first new entry that
 * would outgrow dictionary_bytes (the backend then turns the column to
 * PLAIN) or fill the hash table past half (the backend grows it and calls
 * again), and records in overflow_n/overflow_pos how far it got.
 */
static void
dict_encode_values(PqColumn *c, size_t dictionary_bytes, const char *buf,
				   int64 n, int64 i0, size_t pos0)
{
	const char *p = buf + pos0;
	int64		nv = c->nvalues;
	uint32		prev = nv > 0 ? index_get(c, nv - 1) : 0;
	uint32		ndict = c->ndict;
	uint32		mask = c->nslots - 1;
	int64		i;

	c->overflow_n = -1;
	c->slots_full = false;
	for (i = i0; i < n; i++)
	{
		const char *v;
		size_t		vlen;
		size_t		plain_len;
		uint32		h,
					s,
					e;

		if (c->width > 0)
		{
			v = p;
			vlen = plain_len = c->width;
		}
		else
		{
			uint32		len32;

			memcpy(&len32, p, 4);
			v = p + 4;
			vlen = len32;
			plain_len = vlen + 4;
		}
		/* sensor data repeats itself: first try the previous value */
		if (nv > 0 && dict_entry_equals(c, prev, v, vlen))
		{
			e = prev;
			goto found;
		}
		h = value_hash(v, vlen, c->width);
		s = h & mask;
		while ((e = c->slots[s]) != 0)
		{
			e--;
			if (c->dict_hash[e] == h && dict_entry_equals(c, e, v, vlen))
				goto found;
			s = (s + 1) & mask;
		}
		/* a new entry */
		if (c->dict.len + plain_len > dictionary_bytes ||
			(uint64) (ndict + 1) * 2 > c->nslots)
		{
			c->slots_full = c->dict.len + plain_len <= dictionary_bytes;
			c->overflow_n = i;
			c->overflow_pos = p - buf;
			break;
		}
		e = ndict;
		if (e == 256 && c->index_size == 1)
			index_widen(c, nv, 2);
		else if (e == 65536 && c->index_size == 2)
			index_widen(c, nv, 4);
		c->dict_hash[e] = h;
		if (c->width == 0)
			c->dict_off[e] = (uint32) c->dict.len;
		memcpy(c->dict.data + c->dict.len, p, plain_len);
		c->dict.len += plain_len;
		c->slots[s] = e + 1;
		ndict++;
		ParquetStatsAdd(&c->stats, v, vlen);
found:
		switch (c->index_size)
		{
			case 1:
				((uint8 *) c->indices)[nv] = (uint8) e;
				break;
			case 2:
				((uint16 *) c->indices)[nv] = (uint16) e;
				break;
			default:
				((uint32 *) c->indices)[nv] = e;
				break;
		}
		nv++;
		prev = e;
		p += plain_len;
	}
	c->nvalues = nv;
	c->ndict = ndict;
}

/* Appends n values in PLAIN form (len bytes) as PLAIN values. */
static void
add_plain_values(ParquetWriter *w, PqColumn *c, const char *buf, size_t len, int64 n)
{
	ParquetBufAppend(w->cxt, &c->values, buf, len);
	ParquetStatsAddPlain(&c->stats, buf, len, n);
	c->nvalues += n;
	if (c->values.len >= (size_t) w->opts.page_bytes && w->compressor && !w->early_off)
		w->cut_wanted = true;
}

/* ---- the dictionary thread ---- */

/* early pages queued for the compressor before the backend lends a hand */
#define EARLY_BACKLOG 2

/* rows per batch handed to the dictionary thread */
#define DICT_BATCH_ROWS 16384

/*
 * One helper thread builds the dictionaries of a batch of rows while the
 * backend produces the next batch.  Like the compression helpers, it runs
 * nothing but dict_encode_values() on memory reserved beforehand: no
 * palloc, no ereport, every signal blocked.  It is stopped and joined by a
 * reset callback of the writer's memory context, before that memory goes
 * away (including at abort).
 */
typedef struct PqDictThread
{
	ParquetWriter *w;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool		started;
	bool		stop;
	bool		busy;			/* a batch is being encoded */
	int			job;			/* which batch */
	pthread_t	tid;
} PqDictThread;

/* Encodes batch b of every column queued for it. */
static void
encode_batch(ParquetWriter *w, int b)
{
	int			i;

	for (i = 0; i < w->ncols; i++)
	{
		PqColumn   *c = &w->cols[i];

		if (c->in_job)
			dict_encode_values(c, (size_t) w->opts.dictionary_bytes,
							   c->batch[b].data, c->batch_n[b], 0, 0);
	}
}

static void *
dict_thread_main(void *arg)
{
	PqDictThread *t = (PqDictThread *) arg;

	pthread_mutex_lock(&t->lock);
	for (;;)
	{
		while (!t->busy && !t->stop)
			pthread_cond_wait(&t->cond, &t->lock);
		if (t->stop)
			break;
		pthread_mutex_unlock(&t->lock);
		encode_batch(t->w, t->job);
		pthread_mutex_lock(&t->lock);
		t->busy = false;
		pthread_cond_broadcast(&t->cond);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

static void
dict_thread_release(void *arg)
{
	PqDictThread *t = (PqDictThread *) arg;

	if (t->started)
	{
		/* a batch under way finishes first: its memory is still there */
		ParquetThreadStop(t->tid, &t->lock, &t->cond, &t->stop);
		t->started = false;
	}
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
}

/* A dictionary thread, started; NULL if it could not start. */
static PqDictThread *
dict_thread_start(ParquetWriter *w)
{
	PqDictThread *t = MemoryContextAllocZero(w->cxt, sizeof(PqDictThread));
	MemoryContextCallback *cb = MemoryContextAllocZero(w->cxt, sizeof(MemoryContextCallback));

	t->w = w;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	cb->func = dict_thread_release;
	cb->arg = t;
	MemoryContextRegisterResetCallback(w->cxt, cb);
	if (!ParquetThreadStart(&t->tid, dict_thread_main, t))
		return NULL;
	t->started = true;
	return t;
}

/* Waits until the dictionary thread has no batch. */
static void
dict_wait(ParquetWriter *w)
{
	PqDictThread *t = w->dthread;

	if (t == NULL)
		return;
	pthread_mutex_lock(&t->lock);
	while (t->busy)
		pthread_cond_wait(&t->cond, &t->lock);
	pthread_mutex_unlock(&t->lock);
}

/*
 * Reserves what encoding batch b of c may need, so that the dictionary
 * thread never allocates: an index per value, an entry per value and the
 * dictionary bytes (at most the batch's).  The hash table grows only as
 * entries come (dict_settle): sized for a whole batch of new values, it
 * was mostly empty pages to clear for a dictionary of a thousand entries.
 */
static void
dict_prepare(ParquetWriter *w, PqColumn *c, int b)
{
	int64		n = c->batch_n[b];
	uint32		need = c->ndict + (uint32) n;

	if (c->nvalues + n > c->indices_cap)
	{
		int64		cap = Max(c->indices_cap * 2, Max(c->nvalues + n, 1024));

		/*
		 * Room for the rows a row group will likely hold, at once: growing
		 * by doubling copied the array again and again (a fifth of a narrow
		 * export's page faults).  Pages never touched cost nothing.
		 */
		if (w->rg_bytes > 0)
		{
			double		rows = (double) w->rg_rows * w->opts.row_group_bytes / w->rg_bytes;

			cap = Max(cap, (int64) Min(rows + DICT_BATCH_ROWS, (double) (64 * 1024 * 1024)));
		}

		c->indices = c->indices ? repalloc_huge(c->indices, sizeof(uint32) * cap)
			: MemoryContextAllocHuge(w->cxt, sizeof(uint32) * cap);
		c->indices_cap = cap;
	}
	if (need > c->dict_cap)
	{
		uint32		cap = Max(c->dict_cap * 2, Max(need, 1024));

		c->dict_hash = c->dict_hash ? repalloc_huge(c->dict_hash, sizeof(uint32) * cap)
			: MemoryContextAllocHuge(w->cxt, sizeof(uint32) * cap);
		if (c->width == 0)
			c->dict_off = c->dict_off ? repalloc_huge(c->dict_off, sizeof(uint32) * cap)
				: MemoryContextAllocHuge(w->cxt, sizeof(uint32) * cap);
		c->dict_cap = cap;
	}
	ParquetBufReserve(w->cxt, &c->dict,
					  Min(c->batch[b].len, (size_t) w->opts.dictionary_bytes));
	if (c->slots == NULL)
		dict_grow_slots(w, c);
}

/* values a chunk's dictionary is judged on (dict_pays) */
#define DICT_JUDGE_VALUES 4096

/*
 * Whether the dictionary of c pays for itself on the values encoded so far
 * (raw PLAIN bytes): its entries plus the bit-packed indices must take less
 * than the PLAIN values, as parquet-mr judges its first page.  Unique ids
 * and raw measurements fail at once, instead of filling dictionary_bytes
 * with entries used once before falling back.
 */
static bool
dict_pays(const PqColumn *c, size_t raw)
{
	int			bw = ParquetBitWidth(c->ndict > 0 ? c->ndict - 1 : 0);
	uint64		index_bytes = ((uint64) c->nvalues * bw + 7) / 8;

	return c->dict.len + index_bytes < raw;
}

/*
 * After batch b of the columns queued for it was encoded: a column whose
 * dictionary overflowed, or does not pay on the chunk's first
 * DICT_JUDGE_VALUES values, becomes PLAIN, with the rest of that batch and
 * the other batch (newer rows) appended as PLAIN values.
 */
static void
dict_settle(ParquetWriter *w, int b)
{
	int			i;

	for (i = 0; i < w->ncols; i++)
	{
		PqColumn   *c = &w->cols[i];

		if (!c->in_job)
			continue;
		c->in_job = false;
		while (c->slots_full)
		{
			dict_grow_slots(w, c);
			dict_encode_values(c, (size_t) w->opts.dictionary_bytes, c->batch[b].data,
							   c->batch_n[b], c->overflow_n, c->overflow_pos);
		}
		if (c->overflow_n < 0 && !c->dict_judged)
		{
			c->dict_raw += c->batch[b].len;
			if (c->nvalues >= DICT_JUDGE_VALUES)
			{
				c->dict_judged = true;
				if (!dict_pays(c, c->dict_raw))
				{
					/* every value of the batch is encoded: none is left */
					c->overflow_n = c->batch_n[b];
					c->overflow_pos = c->batch[b].len;
				}
			}
		}
		if (c->overflow_n >= 0)
		{
			ParquetBuf *other = &c->batch[b ^ 1];

			dict_fallback(w, c);
			add_plain_values(w, c, c->batch[b].data + c->overflow_pos,
							 c->batch[b].len - c->overflow_pos,
							 c->batch_n[b] - c->overflow_n);
			add_plain_values(w, c, other->data, other->len, c->batch_n[b ^ 1]);
			other->len = 0;
			c->batch_n[b ^ 1] = 0;
		}
		c->batch[b].len = 0;
		c->batch_n[b] = 0;
	}
}

/* Queues batch b of every dictionary column that has values in it. */
static bool
dict_queue(ParquetWriter *w, int b)
{
	bool		any = false;
	int			i;

	for (i = 0; i < w->ncols; i++)
	{
		PqColumn   *c = &w->cols[i];

		if (c->dict_mode && c->batch_n[b] > 0)
		{
			dict_prepare(w, c, b);
			c->in_job = true;
			any = true;
		}
	}
	return any;
}

/*
 * Every DICT_BATCH_ROWS rows: settles the batch the thread finished and
 * hands it the one just filled; the backend goes on with the other.
 * Without a thread, the batch is encoded here.
 */
static void
dict_submit(ParquetWriter *w)
{
	PqDictThread *t;
	int			b = w->cur_batch;

	w->batch_rows = 0;
	if (w->dthread == NULL && w->opts.threads > 1 && !w->dthread_off)
	{
		w->dthread = dict_thread_start(w);
		if (w->dthread == NULL)
			w->dthread_off = true;	/* no thread to be had: stay on the backend */
	}
	t = w->dthread;
	dict_wait(w);
	if (t)
		dict_settle(w, b ^ 1);
	if (!dict_queue(w, b))
		return;
	if (t == NULL)
	{
		encode_batch(w, b);
		dict_settle(w, b);
		return;
	}
	pthread_mutex_lock(&t->lock);
	t->job = b;
	t->busy = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	w->cur_batch = b ^ 1;
}

/* Before a row group is written: every queued value is in its dictionary. */
static void
dict_drain(ParquetWriter *w)
{
	int			b = w->cur_batch;

	w->batch_rows = 0;
	dict_wait(w);
	if (w->dthread)
		dict_settle(w, b ^ 1);
	if (dict_queue(w, b))
	{
		encode_batch(w, b);
		dict_settle(w, b);
	}
}

/*
 * Takes a batch of rows of one column: nrows definition levels (defs; NULL
 * when every row has a value) and the nvalues non-null values, in PLAIN
 * form (len bytes; BYTE_ARRAY values with their 4-byte length prefix,
 * booleans one byte each).  Callers give every column the same rows, then
 * call ParquetEndRows.  Whole batches are cheap where values one by one
 * were not: a dictionary column queues the bytes for its thread with one
 * copy, a PLAIN column takes them with one copy and a typed statistics loop.
 */
void
ParquetWriteColumn(ParquetWriter *w, int col, const char *plain, size_t len,
				   int64 nvalues, const uint8 *defs, int64 nrows)
{
	PqColumn   *c;

	if (col < 0 || col >= w->ncols)
		elog(ERROR, "parquet column %d out of range", col);
	c = &w->cols[col];
	if (defs != NULL && nvalues < nrows)
	{
		if (!c->spec.nullable)
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("null value in required parquet column \"%s\"", c->spec.name)));
		if (c->nrows + nrows > c->defs_cap)
		{
			int64		cap = Max(c->defs_cap * 2, Max(c->nrows + nrows, 1024));

			c->defs = c->defs ? repalloc_huge(c->defs, cap)
				: MemoryContextAllocHuge(w->cxt, cap);
			c->defs_cap = cap;
		}
		if (!c->defs_kept)
		{
			/* the first null: the rows before it were all present */
			memset(c->defs, 1, c->nrows);
			c->defs_kept = true;
		}
		memcpy(c->defs + c->nrows, defs, nrows);
	}
	else if (c->defs_kept)
	{
		if (c->nrows + nrows > c->defs_cap)
		{
			int64		cap = Max(c->defs_cap * 2, c->nrows + nrows);

			c->defs = repalloc_huge(c->defs, cap);
			c->defs_cap = cap;
		}
		memset(c->defs + c->nrows, 1, nrows);
	}
	c->nrows += nrows;
	c->nnull += nrows - nvalues;
	w->rg_bytes += len;
	if (nvalues == 0)
		return;
	if (c->dict_mode)
	{
		ParquetBufAppend(w->cxt, &c->batch[w->cur_batch], plain, len);
		c->batch_n[w->cur_batch] += nvalues;
	}
	else
		add_plain_values(w, c, plain, len, nvalues);
}

static void flush_row_group(ParquetWriter *w);
static void cut_early_pages(ParquetWriter *w);

/* Ends the batch of nrows rows every column was given. */
void
ParquetEndRows(ParquetWriter *w, int64 nrows)
{
	w->rg_rows += nrows;
	w->total_rows += nrows;
	w->batch_rows += nrows;
	if (w->batch_rows >= DICT_BATCH_ROWS)
		dict_submit(w);
	if (w->rg_bytes >= w->opts.row_group_bytes)
		flush_row_group(w);
	else if (w->cut_wanted)
		cut_early_pages(w);
}

/* ---- encoding pages ---- */

static void
emit(ParquetWriter *w, const void *p, size_t len)
{
	w->write(w->write_arg, p, len);
	w->offset += len;
}

/* Writes one page, compressed or not, of the chunk being written. */
static void
emit_page(void *arg, const ParquetPage *j, const char *body, size_t bodylen)
{
	ParquetWriter *w = (ParquetWriter *) arg;
	ParquetChunkMeta *m = w->chunk;

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

/* The next page of the chunk to fill. */
static ParquetBuf *
next_page(ParquetWriter *w, bool dictionary, int32 num_values, int32 encoding)
{
	ParquetPage *j = ParquetPageWindowNext(w->window, emit_page, w);

	j->dictionary = dictionary;
	j->num_values = num_values;
	j->encoding = encoding;
	return &j->raw;
}

/*
 * Appends to page the definition levels and values of buffered rows
 * [r, r1), whose first non-null value is number v; *pos is the byte offset
 * of that value in PLAIN byte-array buffers.  Returns the non-null count.
 */
static int64
build_page(ParquetWriter *w, PqColumn *c, ParquetBuf *page, int64 r, int64 r1,
		   bool use_dict, int bw, int64 v, size_t *pos)
{
	int64		n = r1 - r;
	int64		nv = n;

	if (c->spec.nullable)
	{
		int64		k;
		uint32		len32;

		w->levels.len = 0;
		if (c->defs_kept)
		{
			nv = 0;
			for (k = r; k < r1; k++)
				nv += c->defs[k];
			ParquetRleEncode(w->cxt, &w->levels, c->defs + r, 1, n, 1);
		}
		else if (n > 0)
		{
			/* no null among these rows: one RLE run of level 1 */
			uint64		hdr = (uint64) n << 1;

			ParquetBufReserve(w->cxt, &w->levels, 11);
			while (hdr >= 0x80)
			{
				w->levels.data[w->levels.len++] = (char) ((hdr & 0x7F) | 0x80);
				hdr >>= 7;
			}
			w->levels.data[w->levels.len++] = (char) hdr;
			w->levels.data[w->levels.len++] = 1;
		}
		len32 = (uint32) w->levels.len;
		ParquetBufAppend(w->cxt, page, &len32, 4);
		ParquetBufAppend(w->cxt, page, w->levels.data, w->levels.len);
	}
	if (use_dict)
	{
		char		b = (char) bw;

		ParquetBufAppend(w->cxt, page, &b, 1);
		ParquetRleEncode(w->cxt, page, c->indices + v * c->index_size,
						 c->index_size, nv, bw);
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
		size_t		end = *pos;
		int64		k;

		for (k = 0; k < nv; k++)
		{
			uint32		len;

			memcpy(&len, c->values.data + end, 4);
			end += 4 + (size_t) len;
		}
		ParquetBufAppend(w->cxt, page, c->values.data + *pos, end - *pos);
		*pos = end;
	}
	return nv;
}

/* The metadata of a new chunk of c, starting at the current offset. */
static ParquetChunkMeta *
start_chunk(ParquetWriter *w, PqColumn *c)
{
	ParquetChunkMeta *m;

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
	return m;
}

/*
 * Writes a compressed early page of column 0 (c) at once, its chunk being
 * the first of the row group, and keeps the page's buffers for the next.
 */
static void
stream_page(ParquetWriter *w, PqColumn *c, ParquetPage *j)
{
	int64		before = w->offset;

	if (!w->streaming)
	{
		(void) start_chunk(w, c);
		w->streaming = true;
	}
	w->chunk = &c->chunks[c->nchunks - 1];
	if (j->outlen == 0)
		elog(ERROR, "parquet page compression failed");
	emit_page(w, j, j->out.data, j->outlen);
	w->rg_streamed += w->offset - before;
	c->nstreamed++;
	j->raw.len = 0;
	j->next = w->free_pages;
	w->free_pages = j;
}

/*
 * Frees (or keeps for the next pages) the raw bytes of early pages already
 * compressed, in order; column 0's are written (stream_page).
 */
static void
reap_early_pages(ParquetWriter *w, PqColumn *c)
{
	while (c->nreaped < c->nearly && ParquetCompressorDone(w->compressor, c->early[c->nreaped]))
	{
		ParquetPage *j = c->early[c->nreaped++];

		if (c == &w->cols[0])
		{
			stream_page(w, c, j);
			continue;
		}
		if (w->nspare < SPARE_PAGES)
		{
			w->spare[w->nspare] = j->raw;
			w->spare[w->nspare++].len = 0;
		}
		else
			pfree(j->raw.data);
		j->raw.data = NULL;		/* raw.len stays: the header needs it */
		j->raw.cap = 0;
		if (j->outlen > 0 && j->outlen < j->out.cap)
		{
			j->out.data = repalloc(j->out.data, j->outlen);
			j->out.cap = j->outlen;
		}
	}
}

/*
 * Cuts the buffered rows of every PLAIN column holding a page's worth into
 * a page and hands it to the background compressor, so that compression
 * overlaps the production of the next rows.
 */
static void
cut_early_pages(ParquetWriter *w)
{
	int			i;

	w->cut_wanted = false;
	for (i = 0; i < w->ncols; i++)
	{
		PqColumn   *c = &w->cols[i];
		ParquetPage *j;
		size_t		pos = 0;

		if (c->dict_mode || c->values.len < (size_t) w->opts.page_bytes)
			continue;
		reap_early_pages(w, c);
		if (c->nearly >= c->early_cap)
		{
			int			cap = Max(c->early_cap * 2, 16);

			c->early = c->early ? repalloc(c->early, sizeof(ParquetPage *) * cap)
				: MemoryContextAlloc(w->cxt, sizeof(ParquetPage *) * cap);
			c->early_cap = cap;
		}
		if (i == 0 && w->free_pages)
		{
			j = w->free_pages;
			w->free_pages = j->next;
		}
		else
		{
			j = MemoryContextAllocZero(w->cxt, sizeof(ParquetPage));
			if (w->nspare > 0)
				j->raw = w->spare[--w->nspare];
		}
		/* the whole page at once: growing it by doubling copied it again and again */
		ParquetBufReserve(w->cxt, &j->raw, c->values.len + (c->defs_kept ? c->nrows / 4 : 0) + 32);
		build_page(w, c, &j->raw, 0, c->nrows, false, 0, 0, &pos);
		j->num_values = (int32) c->nrows;
		j->encoding = ENC_PLAIN;
		if (!ParquetCompressorSubmit(w->compressor, j))
		{
			/* no thread: keep buffering, compress at the end as usual */
			pfree(j->raw.data);
			pfree(j->out.data);
			pfree(j);
			w->early_off = true;
			return;
		}
		c->early[c->nearly++] = j;
		/* the thread is behind: the backend compresses some pages too */
		ParquetCompressorHelp(w->compressor, EARLY_BACKLOG);
		c->cut_rows += c->nrows;
		c->nrows = 0;
		c->defs_kept = false;
		c->nvalues = 0;
		c->values.len = 0;
	}
}

static void
write_early_pages(ParquetWriter *w, PqColumn *c)
{
	int			i;

	if (c->nearly > c->nstreamed)
		ParquetCompressorHelp(w->compressor, 0);

	for (i = c->nstreamed; i < c->nearly; i++)
	{
		ParquetPage *j = c->early[i];

		ParquetCompressorWait(w->compressor, j);
		emit_page(w, j, j->out.data, j->outlen);
		if (j->raw.data)
			pfree(j->raw.data);
		pfree(j->out.data);
		pfree(j);
	}
	c->nearly = 0;
	c->nreaped = 0;
	c->nstreamed = 0;
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

	/* column 0 may have begun its chunk already (stream_page) */
	if (c == &w->cols[0] && w->streaming)
		m = &c->chunks[c->nchunks - 1];
	else
		m = start_chunk(w, c);
	w->chunk = m;
	m->num_values = c->cut_rows + c->nrows;
	m->null_count = c->nnull;
	m->dictionary = use_dict;

	if (use_dict)
	{
		ParquetBuf *page = next_page(w, true, (int32) c->ndict, ENC_PLAIN);

		ParquetBufAppend(w->cxt, page, c->dict.data, c->dict.len);
		est = c->nvalues * bw / 8;
	}
	else if (c->spec.type == PARQUET_BOOLEAN)
		est = c->nvalues / 8;
	else
		est = c->values.len;

	/* the pages cut early come first (there is no dictionary then) */
	write_early_pages(w, c);

	npages = Max(1, (est + w->opts.page_bytes - 1) / w->opts.page_bytes);
	rows_per_page = Max(1, (c->nrows + npages - 1) / npages);
	if (c->nrows > 0 || m->data_offset < 0)
	do
	{
		int64		r1 = Min(r + rows_per_page, c->nrows);
		int64		n = r1 - r;
		int64		nv = n;
		ParquetBuf *page;

		page = next_page(w, false, (int32) n,
						 use_dict ? ENC_RLE_DICTIONARY : ENC_PLAIN);
		nv = build_page(w, c, page, r, r1, use_dict, bw, v, &pos);
		r = r1;
		v += nv;
	} while (r < c->nrows);
	ParquetPageWindowFlush(w->window, emit_page, w);

	m->has_minmax = ParquetStatsBytes(&c->stats, w->cxt, &m->min, &m->minlen,
									  &m->max, &m->maxlen);

	/* empty the buffers, keeping their memory for the next row group */
	c->nrows = c->nnull = c->nvalues = 0;
	c->defs_kept = false;
	c->cut_rows = 0;
	c->values.len = 0;
	c->dict.len = 0;
	c->ndict = 0;
	c->index_size = 1;
	c->dict_judged = false;
	c->dict_raw = 0;
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
	dict_drain(w);
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
	w->streaming = false;
	w->rg_streamed = 0;
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

/*
 * Bytes of the file's finished row groups (all of it once finished): what
 * column 0 streamed of the row group under way does not count yet, so that
 * callers cutting files by size still cut them on a row group.
 */
int64
ParquetWriterBytes(ParquetWriter *w)
{
	return w->offset - w->rg_streamed;
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

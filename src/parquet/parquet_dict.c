/*-------------------------------------------------------------------------
 * parquet_dict.c
 *		Dictionary encoding for the Parquet writer: the per-chunk
 *		dictionaries, the thread that builds them, and the fallback to
 *		PLAIN.
 *
 * Values of dictionary columns are queued in batches of DICT_BATCH_ROWS
 * rows (PqDictSubmit); a helper thread looks them up and indexes them
 * while the backend produces the next batch, on memory the backend
 * reserved, so the thread never allocates.  A dictionary that grows past
 * dictionary_bytes, or that does not pay for itself on a chunk's first
 * values (dict_pays), is turned back into PLAIN values for the rest of the
 * row group, and later chunks of that column start as PLAIN.  Indices are
 * kept in one, two or four bytes as the dictionary grows; the hash table
 * grows as entries come.  parquet_writer.c writes the chunks.
 *-------------------------------------------------------------------------
 */
#include "parquet_writer_int.h"

#include "common/hashfn.h"
#include "utils/memutils.h"

/* Doubles the hash table of c (or makes its first), re-inserting the entries. */
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

/* ---- the dictionary thread ---- */

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

	/* a batch under way finishes first: its memory is still there */
	ParquetThreadRelease(t->tid, &t->lock, &t->cond, &t->started, &t->stop);
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
			PqAddPlainValues(w, c, c->batch[b].data + c->overflow_pos,
							 c->batch[b].len - c->overflow_pos,
							 c->batch_n[b] - c->overflow_n);
			PqAddPlainValues(w, c, other->data, other->len, c->batch_n[b ^ 1]);
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
void
PqDictSubmit(ParquetWriter *w)
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
void
PqDictDrain(ParquetWriter *w)
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

/* Empties the dictionary of c for its next chunk, keeping its memory. */
void
PqDictReset(PqColumn *c)
{
	c->dict.len = 0;
	c->ndict = 0;
	c->index_size = 1;
	c->dict_judged = false;
	c->dict_raw = 0;
	if (c->slots)
		memset(c->slots, 0, sizeof(uint32) * c->nslots);
}
